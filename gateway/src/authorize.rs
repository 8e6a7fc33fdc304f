//! The authorize stage: the app's route policy.
//!
//! Input: the verified identity and the app's `required_roles`. Output:
//! continue, or [`Error::Forbidden`] (a 403 page) when the user lacks any of
//! them. Roles come from the claim named by `idp.roles_claim` (FusionAuth's
//! is `roles`).

use crate::auth::{AppAuth, Identity};
use crate::error::Error;

/// Whether the user may use the app.
pub fn stage(auth: &AppAuth, identity: &Identity) -> Result<(), Error> {
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
            Err(Error::Forbidden)
        }
    }
}
