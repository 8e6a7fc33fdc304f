//! The public-path stage: paths an app serves without login.
//!
//! Input: the request's normal path with `;params` left out (made once, for
//! every stage and the upstream alike, before routing) and the app's public
//! patterns. Output: whether the path is public. Because the path is already
//! normal, `/static/../cart`, `/static/%2e%2e/cart` or `/static/..;/cart`
//! arrive as `/cart` and need a login.

use super::app::AppAuth;

/// Whether `path` (normal, without params) is one of the app's public paths.
pub fn is_public(auth: &AppAuth, path: &str) -> bool {
    auth.config.public_paths.iter().any(|p| p.matches(path))
}
