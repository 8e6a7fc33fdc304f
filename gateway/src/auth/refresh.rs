//! The refresh stage: a new JWT for a request whose JWT has expired (or is
//! about to), on the same request.
//!
//! Input: the app, the request's [`Session`] and what the verify stage made of
//! its JWT. Output: the identity to forward with and the `Set-Cookie` values
//! for the answer, or an [`AuthError`]: `LoginRequired` (no usable refresh
//! cookie, the binding check failed, or the IdP refused the refresh: the
//! cookies are cleared) or `IdpUnavailable` (503, cookies untouched: nobody
//! is logged out because the IdP blinked).
//!
//! Binding (the article's stolen-refresh-token attack): by default a refresh
//! happens only for a JWT whose signature and claims verified and which
//! failed on time alone, and whose `sub` and `sid` match those sealed into
//! the refresh cookie. A refresh cookie with a garbage, foreign or missing JWT
//! buys nothing. `session.binding = "relaxed"` drops this for deployments that
//! want the article's literal behaviour.
//!
//! Concurrent requests with the same refresh token share one IdP call
//! ([`SingleFlight`](super::single_flight::SingleFlight)), and requests
//! arriving within `session.refresh_grace` after it reuse its result, so an
//! IdP with one-time-use refresh tokens never sees a replay. Across
//! replicas the same holds through the store
//! ([`Store::once`](crate::store::Store::once)): one replica
//! calls the IdP and shares its outcome, sealed with the session key, with
//! the others. While the store cannot coordinate the replicas (Redis
//! unreachable), and for `session.refresh_grace` after they may have lost
//! sight of each other's results (a replica back from an outage, Redis
//! restarted or flushed), a refusal may be the IdP refusing a replay of a
//! token another replica has just rotated: it answers 503 with the cookies
//! kept ([`RefreshFailure::Contested`]), never a logout, and is not shared.
//!
//! A session on the revocation list (logged out, revoked) is not refreshed:
//! its cookies are cleared as if the IdP had refused.

use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use super::app::{unix_now, AppAuth};
use super::error::AuthError;
use super::idp::IdpError;
use super::model::{Checked, Identity, RefreshCookie, RefreshFailure, RefreshResult, Refreshed};
use super::revocation;
use super::session::{self, Session};
use super::single_flight::Role;
use super::verify::VerifyError;
use crate::store::{Coordination, Flight};

/// The identity to forward with, and cookies to add to the answer.
#[derive(Debug)]
pub struct Renewed {
    /// The (possibly new) identity.
    pub identity: Arc<Identity>,
    /// `Set-Cookie` values for the new session; empty if nothing changed.
    pub set_cookies: Vec<HeaderValue>,
}

/// Refreshes if the session allows it. `checked` is the verify stage's
/// verdict on the presented JWT (`Valid` here means "valid but due for an
/// early refresh").
pub async fn stage(
    auth: &Arc<AppAuth>,
    session: &Session,
    checked: Result<Checked, VerifyError>,
    relogin: impl FnOnce(bool) -> AuthError,
) -> Result<Renewed, AuthError> {
    let (presented, still_valid) = match &checked {
        Ok(Checked::Valid(id)) => (Some(id.clone()), Some(id.clone())),
        Ok(Checked::Expired(id)) => (Some(id.clone()), None),
        Err(VerifyError::Revoked) => {
            tracing::info!("JWT of a revoked session; login required");
            return Err(relogin(true));
        }
        Err(e) => {
            if session.jwt.is_some() {
                tracing::info!(reason = %e, "JWT refused");
            }
            (None, None)
        }
    };
    let Some(cookie) = &session.refresh(auth) else {
        return match still_valid {
            Some(identity) => Ok(Renewed {
                identity,
                set_cookies: Vec::new(),
            }),
            None => Err(relogin(session.jwt.is_some())),
        };
    };
    if auth.session.strict_binding {
        let bound = presented.as_ref().is_some_and(|id| {
            id.sub == cookie.sub && (cookie.sid.is_none() || id.sid == cookie.sid)
        });
        if !bound {
            tracing::warn!(
                jwt = if presented.is_some() {
                    "another session's"
                } else {
                    "missing or invalid"
                },
                "refresh cookie presented without its own JWT; not refreshing"
            );
            return Err(relogin(true));
        }
    }

    if let Some(sid) = &cookie.sid {
        let id = revocation::session(&auth.store, &auth.config.client.id, sid);
        if auth.store.is_revoked(&id, 0, unix_now()) {
            tracing::info!("refresh cookie of a revoked session; login required");
            return Err(relogin(true));
        }
    }

    let work = {
        let auth = auth.clone();
        let cookie = cookie.clone();
        let jwt = session.jwt.clone();
        move || async move { across_replicas(&auth, cookie, jwt).await }
    };
    let shared = auth
        .flight
        .run(
            &cookie.token,
            Instant::now(),
            auth.session.refresh_grace,
            work,
        )
        .await;
    let result = match shared {
        Some((result, role)) => {
            match role {
                Role::Leader => {}
                Role::Follower => auth.metrics.refresh_waiter("follower"),
                Role::Late => auth.metrics.refresh_waiter("late"),
            }
            result
        }
        None => Err(RefreshFailure::Unavailable),
    };
    match result {
        Ok(refreshed) => {
            let rotated = refreshed.refresh.token != cookie.token;
            Ok(Renewed {
                identity: refreshed.identity.clone(),
                set_cookies: session::store(
                    auth,
                    &refreshed.jwt,
                    rotated.then_some(&refreshed.refresh),
                    session,
                ),
            })
        }
        Err(RefreshFailure::Rejected | RefreshFailure::Invalid) => Err(relogin(true)),
        Err(RefreshFailure::Unavailable | RefreshFailure::Contested) => match still_valid {
            // Refreshing early failed: the JWT itself is still good.
            Some(identity) => Ok(Renewed {
                identity,
                set_cookies: Vec::new(),
            }),
            None => Err(AuthError::IdpUnavailable("refresh")),
        },
        Err(RefreshFailure::Unpublished(kept)) => {
            let set_cookies = match kept.token != cookie.token {
                true => session::store_refresh(auth, &kept, session),
                false => Vec::new(),
            };
            match still_valid {
                Some(identity) => Ok(Renewed {
                    identity,
                    set_cookies,
                }),
                None => Err(AuthError::RefreshUnverifiable(set_cookies)),
            }
        }
    }
}

/// A refresh outcome as replicas share it (sealed in the store).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "o", rename_all = "lowercase")]
enum Shared {
    Ok { jwt: String, refresh: RefreshCookie },
    Rejected,
    Invalid,
    Unpublished { refresh: RefreshCookie },
}

/// The refresh once across replicas (this replica's requests have already
/// coalesced): the replica that wins the store's lock calls the IdP and
/// shares the outcome; the others take it from the store.
async fn across_replicas(
    auth: &Arc<AppAuth>,
    cookie: RefreshCookie,
    jwt: Option<String>,
) -> RefreshResult {
    let key = auth
        .store
        .digest(&[b"refresh", auth.app.as_bytes(), cookie.token.as_bytes()]);
    let context = format!("{}/refresh/{key}", auth.app);
    let seal_context = context.as_str();
    let flight = auth
        .store
        .once(
            &key,
            auth.session.refresh_grace,
            |coordination| async move {
                let result = match refresh(auth, cookie, jwt).await {
                    Err(RefreshFailure::Rejected) if coordination == Coordination::Unsure => {
                        contested();
                        Err(RefreshFailure::Contested)
                    }
                    result => result,
                };
                let shared = match &result {
                    Ok(r) => Some(Shared::Ok {
                        jwt: r.jwt.clone(),
                        refresh: r.refresh.clone(),
                    }),
                    Err(RefreshFailure::Rejected) => Some(Shared::Rejected),
                    Err(RefreshFailure::Invalid) => Some(Shared::Invalid),
                    Err(RefreshFailure::Unpublished(kept)) => Some(Shared::Unpublished {
                        refresh: (**kept).clone(),
                    }),
                    // Not kept: the next request tries again.
                    Err(RefreshFailure::Unavailable | RefreshFailure::Contested) => None,
                };
                let sealed = shared.map(|s| {
                    let plain = serde_json::to_string(&s).unwrap_or_default();
                    auth.sealer.seal(seal_context, &plain)
                });
                (result, sealed)
            },
        )
        .await;
    match flight {
        Flight::Led(result) => {
            if let Ok(refreshed) = &result {
                auth.record_session(&refreshed.identity, None, false).await;
            }
            result
        }
        // Refused with the others held off, but Redis failed before they
        // could see the outcome: they may try the token too.
        Flight::Alone(Err(RefreshFailure::Rejected)) => {
            contested();
            Err(RefreshFailure::Contested)
        }
        Flight::Alone(result) => result,
        Flight::Joined(sealed) => {
            auth.metrics.refresh_waiter("replica");
            joined(auth, &context, &sealed).await
        }
    }
}

/// Says why a refusal is answered with 503.
fn contested() {
    tracing::warn!(
        "the IdP refused a refresh while the replicas could not be sure to see each other's \
         results (store unreachable, or lately restarted, flushed or out of some replica's \
         reach): possibly a replay of a token another replica rotated; answering 503 and \
         keeping the cookies"
    );
}

/// Another replica's outcome, opened and made this replica's.
async fn joined(auth: &AppAuth, context: &str, sealed: &str) -> RefreshResult {
    let Some(shared) = auth
        .sealer
        .open(context, sealed)
        .and_then(|plain| serde_json::from_str::<Shared>(&plain).ok())
    else {
        tracing::error!(
            "another replica's refresh result does not open: do all replicas share \
             session.cookie_key?"
        );
        return Err(RefreshFailure::Unavailable);
    };
    match shared {
        Shared::Rejected => Err(RefreshFailure::Rejected),
        Shared::Invalid => Err(RefreshFailure::Invalid),
        Shared::Unpublished { refresh } => Err(RefreshFailure::Unpublished(Arc::new(refresh))),
        Shared::Ok { jwt, refresh } => match auth.check_issued(&jwt, unix_now()).await {
            Ok(Checked::Valid(identity) | Checked::Expired(identity)) => Ok(Arc::new(Refreshed {
                jwt,
                refresh,
                identity,
            })),
            Err(VerifyError::Revoked) => Err(RefreshFailure::Rejected),
            Err(e) => {
                // Verified by the replica that refreshed, not here (keys not
                // loaded yet, or settings that differ): nothing to forward
                // with, but the rotated refresh token must reach the browser.
                tracing::warn!(reason = %e, "another replica's refreshed JWT does not verify here");
                Err(RefreshFailure::Unpublished(Arc::new(refresh)))
            }
        },
    }
}

/// The IdP call and the check of what it returns (runs once per flight).
async fn refresh(auth: &AppAuth, cookie: RefreshCookie, jwt: Option<String>) -> RefreshResult {
    let Some(idp) = auth.idp.client() else {
        auth.metrics.refresh("unavailable");
        return Err(RefreshFailure::Unavailable);
    };
    let tokens = match idp
        .refresh(&auth.config.client, &cookie.token, jwt.as_deref())
        .await
    {
        Ok(tokens) => tokens,
        Err(IdpError::Rejected { status }) => {
            tracing::info!(status, "IdP refused the refresh token; login required");
            auth.metrics.refresh("rejected");
            return Err(RefreshFailure::Rejected);
        }
        Err(e) => {
            tracing::warn!(error = %e, "refresh failed: IdP unavailable");
            auth.metrics.refresh("unavailable");
            return Err(RefreshFailure::Unavailable);
        }
    };
    match auth.check_issued(&tokens.access_token, unix_now()).await {
        Ok(Checked::Valid(identity)) => {
            auth.metrics.refresh("success");
            Ok(Arc::new(Refreshed {
                jwt: tokens.access_token,
                refresh: RefreshCookie {
                    token: tokens.refresh_token.unwrap_or(cookie.token),
                    sub: identity.sub.clone(),
                    sid: identity.sid.clone(),
                },
                identity,
            }))
        }
        Err(VerifyError::UnknownKid(kid)) => {
            // The JWKS (fetched again just now) lacks the key the IdP signs
            // with, or could not be fetched: the IdP is not in a state to
            // serve this refresh. The session stays, with the refresh token
            // the IdP just issued (same subject and session: it refreshed
            // this very cookie); the next request tries again with it.
            tracing::warn!(kid, "the IdP's refreshed JWT names a key its JWKS lacks");
            auth.metrics.refresh("unavailable");
            Err(RefreshFailure::Unpublished(Arc::new(RefreshCookie {
                token: tokens.refresh_token.unwrap_or(cookie.token),
                sub: cookie.sub,
                sid: cookie.sid,
            })))
        }
        other => {
            let why = match other {
                Ok(_) => "already expired".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::error!(reason = %why, "the IdP's refreshed JWT does not verify");
            auth.metrics.refresh("invalid");
            Err(RefreshFailure::Invalid)
        }
    }
}
