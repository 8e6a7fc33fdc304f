//! The authorize stage: the app's route policy.
//!
//! Input: the verified identity and the app's `required_roles`. Output:
//! continue, or [`AuthError::Forbidden`] (a 403 page) when the user lacks any of
//! them. Roles come from the claim named by `idp.roles_claim` (FusionAuth's
//! is `roles`).

use super::app::AppAuth;
use super::error::AuthError;
use super::model::Identity;

/// Whether the user may use the app.
pub fn stage(auth: &AppAuth, identity: &Identity) -> Result<(), AuthError> {
    let missing = auth
        .config
        .required_roles
        .iter()
        .find(|role| !identity.roles.iter().any(|r| r == *role));
    match missing {
        None => Ok(()),
        Some(role) => {
            tracing::info!(
                sub = identity.sub.as_deref().unwrap_or(""),
                role = role.as_str(),
                "missing required role"
            );
            Err(AuthError::Forbidden)
        }
    }
}
