//! Revocation inputs: what the IdP says about sessions that must end before
//! their tokens expire, parsed and checked, turned into [`action::Action`]s.
//!
//! May import `config`, `ops`, `store`, `auth` and itself; nothing above
//! (`pipeline`, `error`, `pages`) and nothing of `proxy`: the parsers are
//! pure functions of bytes, keys and `now`, and nothing here knows of
//! sockets.
//!
//! - [`signature`]: is a webhook request really from the IdP (a signed body
//!   digest, a shared secret, or both)?
//! - [`fusionauth`]: a FusionAuth webhook event → its actions.
//! - [`backchannel`]: an OpenID Connect back-channel logout token → its
//!   action.
//! - [`action`]: the actions, and the rule every identifier in them passes.
//!
//! - [`endpoint`]: the requests themselves, on the admin listener (with the
//!   admin API): caps bodies, authenticates, drops repeated event ids and
//!   `jti`s, applies the actions to the revocation list, and maps every
//!   error to one generic answer.

pub mod action;
pub mod backchannel;
pub mod endpoint;
pub mod fusionauth;
pub mod signature;

#[cfg(test)]
mod testing;
