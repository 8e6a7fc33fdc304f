//! The endpoints that end sessions, on the admin listener: FusionAuth's
//! webhooks, OpenID Connect back-channel logout, and the admin API.
//!
//! Input: a request the admin listener does not answer itself. Output: the
//! answer, after the revocations it asks for are on the list (this replica
//! at once; the others through the store). Every body is read within
//! [`READ_TIMEOUT`] and up to [`MAX_BODY`]; every failure gets one generic
//! answer (the log says which check failed). A repeated FusionAuth event id
//! or logout token `jti` changes nothing.
//!
//! - `POST {events.webhook_path}`: 401 unless authentic, 400 for a body
//!   that is no event, 200 otherwise (unknown event types included, so that
//!   FusionAuth does not retry them).
//! - `POST {events.backchannel_path}`: 200 once the logout is recorded, 400
//!   for anything else (OIDC Back-Channel Logout 1.0 §2.8), `no-store`.
//! - `POST /admin/revoke` with `Authorization: Bearer {events.admin_token}`
//!   and a JSON body `{"user": sub}`, `{"user": sub, "app": name}`,
//!   `{"session": sid, "app": name}` or `{"app": name}`: 200 with what was
//!   revoked; 401 without the token; 400 for anything else.
//! - `GET /admin/sessions?user={sub}` with the same token: the sessions the
//!   gateway has seen for the user (session id, app, first login, last
//!   refresh, the login's address), kept in Redis for the refresh cookie's
//!   lifetime and recorded at login and refresh only; 503 without Redis.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::action::{identifier, Action};
use super::backchannel::{self, Limits};
use super::fusionauth;
use super::signature::{Authenticator, SharedSecret, SignatureCheck};
use crate::auth::app::{AppAuth, SESSIONS_SEAL};
use crate::auth::idp_state::IdpState;
use crate::auth::revocation;
use crate::auth::verify::Keys;
use crate::config::events::{Backchannel, Webhook};
use crate::config::EventsConfig;
use crate::store::{unix_now, Entry, Store};

/// Largest body read.
pub const MAX_BODY: usize = 64 * 1024;
/// A body must arrive whole within this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an event id or `jti` is remembered (FusionAuth retries within
/// minutes; a logout token is refused once older than its max age anyway).
const SEEN_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The answer type of the admin listener.
pub type Answer = Response<Full<Bytes>>;

/// The session-ending endpoints, as configured.
pub struct Events {
    webhook: Option<(Webhook, Authenticator)>,
    backchannel: Option<Backchannel>,
    admin_token: Option<SharedSecret>,
    apps: Vec<Arc<AppAuth>>,
    idps: Vec<Arc<IdpState>>,
    store: Arc<Store>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("webhook", &self.webhook.as_ref().map(|(w, _)| &w.path))
            .field("backchannel", &self.backchannel.as_ref().map(|b| &b.path))
            .field("admin", &self.admin_token.is_some())
            .finish()
    }
}

impl Events {
    /// The endpoints `config` turns on, for `apps` (those with login) and
    /// their `idps`; `None` when none is on.
    pub fn new(
        config: &EventsConfig,
        apps: Vec<Arc<AppAuth>>,
        idps: Vec<Arc<IdpState>>,
        store: Arc<Store>,
    ) -> Option<Events> {
        let webhook = config.webhook.as_ref().and_then(|w| {
            let algorithms = idps
                .iter()
                .flat_map(|i| i.settings().algorithms.iter().copied())
                .chain([
                    jsonwebtoken::Algorithm::HS256,
                    jsonwebtoken::Algorithm::HS384,
                    jsonwebtoken::Algorithm::HS512,
                ])
                .collect::<Vec<_>>();
            let signature = SignatureCheck::new(
                w.signing_secret.as_ref().map(|s| s.expose().as_bytes()),
                w.signing_idp_keys,
                algorithms,
                60,
            );
            let secret = w.secret.as_ref().map(SharedSecret::bearer);
            Authenticator::new(signature, secret).map(|a| (w.clone(), a))
        });
        let events = Events {
            webhook,
            backchannel: config.backchannel.clone(),
            admin_token: config.admin_token.as_ref().map(SharedSecret::bearer),
            apps,
            idps,
            store,
        };
        let on = events.webhook.is_some()
            || events.backchannel.is_some()
            || events.admin_token.is_some();
        on.then_some(events)
    }

    /// What the endpoints answer at start-up, for the log.
    pub fn describe(&self) -> String {
        let mut on = Vec::new();
        if let Some((w, _)) = &self.webhook {
            on.push(format!("FusionAuth webhooks at {}", w.path));
        }
        if let Some(b) = &self.backchannel {
            on.push(format!("back-channel logout at {}", b.path));
        }
        if self.admin_token.is_some() {
            on.push("admin API at /admin/".to_owned());
        }
        on.join(", ")
    }

    /// Answers a request the admin listener does not answer itself.
    pub async fn answer(&self, req: Request<Incoming>) -> Answer {
        let path = req.uri().path().to_owned();
        if self.webhook.as_ref().is_some_and(|(w, _)| w.path == path) {
            return post_only(req, |req| self.webhook(req)).await;
        }
        if self.backchannel.as_ref().is_some_and(|b| b.path == path) {
            let mut answer = post_only(req, |req| self.backchannel(req)).await;
            answer
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return answer;
        }
        if self.admin_token.is_some() && path == "/admin/revoke" {
            return post_only(req, |req| self.admin_revoke(req)).await;
        }
        if self.admin_token.is_some() && path == "/admin/sessions" {
            if req.method() != Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            }
            return self.admin_sessions(req).await;
        }
        text(StatusCode::NOT_FOUND, "not found\n")
    }

    async fn webhook(&self, req: Request<Incoming>) -> Answer {
        let Some((webhook, authenticator)) = &self.webhook else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let (parts, body) = req.into_parts();
        let Some(body) = read(body).await else {
            return text(StatusCode::BAD_REQUEST, "bad request\n");
        };
        let now = unix_now();
        // Against any of the IdPs' published keys (or none): authentic if
        // one accepts; otherwise the first refusal stands for all.
        let keys: Vec<Arc<Keys>> = if authenticator.uses_idp_keys() && !self.idps.is_empty() {
            self.idps.iter().map(|idp| idp.keys()).collect()
        } else {
            vec![Arc::new(Keys::new(None, None))]
        };
        let mut authentic = Ok(());
        for (i, keys) in keys.iter().enumerate() {
            match authenticator.check(&parts.headers, &body, keys, now) {
                Ok(()) => {
                    authentic = Ok(());
                    break;
                }
                Err(e) if i == 0 => authentic = Err(e),
                Err(_) => {}
            }
        }
        if let Err(e) = authentic {
            tracing::warn!(reason = ?e, "webhook refused: not authentic");
            return text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        }
        let event = match fusionauth::parse(&body, webhook.ttl.as_secs()) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(reason = ?e, "webhook refused: not an event");
                return text(StatusCode::BAD_REQUEST, "bad request\n");
            }
        };
        if !self.store.first_seen("event", &event.id, SEEN_FOR).await {
            tracing::info!(id = event.id, "webhook: event already handled");
            return text(StatusCode::OK, "ok\n");
        }
        tracing::info!(
            id = event.id,
            event = event.event_type,
            actions = event.actions.len(),
            "webhook"
        );
        for action in &event.actions {
            self.apply(action, now).await;
        }
        text(StatusCode::OK, "ok\n")
    }

    async fn backchannel(&self, req: Request<Incoming>) -> Answer {
        let Some(config) = &self.backchannel else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let Some(body) = read(req.into_body()).await else {
            return text(StatusCode::BAD_REQUEST, "bad request\n");
        };
        let now = unix_now();
        let limits = Limits {
            max_age: config.max_age.as_secs(),
            access_ttl: config.ttl.as_secs(),
        };
        // Addressed to one app's client: the app whose keys and policy
        // accept it (others refuse it for its audience).
        let mut last_error = None;
        for auth in &self.apps {
            let logout =
                match backchannel::logout(&body, &auth.idp.keys(), &auth.policy, &limits, now) {
                    Ok(logout) => logout,
                    Err(e) => {
                        last_error = Some(e);
                        continue;
                    }
                };
            let issuer = auth.policy.issuer.as_deref().unwrap_or("");
            let seen = format!("{issuer}\n{}", logout.jti);
            if self.store.first_seen("jti", &seen, SEEN_FOR).await {
                tracing::info!(app = auth.app, "back-channel logout");
                self.apply(&logout.action, now).await;
            } else {
                tracing::info!(
                    app = auth.app,
                    "back-channel logout token replayed; ignored"
                );
            }
            return text(StatusCode::OK, "");
        }
        tracing::warn!(reason = ?last_error, "back-channel logout refused");
        text(StatusCode::BAD_REQUEST, "bad request\n")
    }

    async fn admin_revoke(&self, req: Request<Incoming>) -> Answer {
        let Some(token) = &self.admin_token else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let (parts, body) = req.into_parts();
        if token.check(&parts.headers).is_err() {
            tracing::warn!("admin API: missing or wrong token");
            return text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        }
        let Some(body) = read(body).await else {
            return text(StatusCode::BAD_REQUEST, "bad request\n");
        };
        let Ok(request) = serde_json::from_slice::<RevokeRequest>(&body) else {
            return text(StatusCode::BAD_REQUEST, "bad request: expected {\"user\": …}, {\"session\": …, \"app\": …} or {\"app\": …}\n");
        };
        let now = unix_now();
        let app = match &request.app {
            None => None,
            Some(name) => match self.apps.iter().find(|a| a.app == *name) {
                Some(app) => Some(app),
                None => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "bad request: no app with login of that name\n",
                    )
                }
            },
        };
        // Tokens are issued in whole seconds: everything issued up to now.
        let until = now.saturating_add(self.longest_ttl());
        let client_id = app.map(|a| a.config.client.id.clone());
        let action = match (&request.user, &request.session, &client_id) {
            (Some(sub), None, _) if identifier(sub) => Action::User {
                sub: sub.clone(),
                client_id,
                before: now,
                until,
            },
            (None, Some(sid), Some(_)) if identifier(sid) => Action::Session {
                sid: sid.clone(),
                client_id,
                until,
            },
            (None, None, Some(client_id)) => Action::App {
                client_id: client_id.clone(),
                before: now,
                until,
            },
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "bad request: expected {\"user\": …}, {\"user\": …, \"app\": …}, {\"session\": …, \"app\": …} or {\"app\": …}\n",
                )
            }
        };
        tracing::info!(?action, "admin API: revoke");
        self.apply(&action, now).await;
        // The user's refresh tokens at the IdP too, where it has the call:
        // otherwise the browser refreshes into a new session.
        let idp = match &action {
            Action::User { sub, client_id, .. } => {
                Some(self.revoke_at_idp(sub, client_id.as_deref(), app).await)
            }
            _ => None,
        };
        let mut answer = text(
            StatusCode::OK,
            serde_json::json!({"revoked": true, "until": until, "idp": idp}).to_string(),
        );
        answer
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        answer
    }

    async fn admin_sessions(&self, req: Request<Incoming>) -> Answer {
        let Some(token) = &self.admin_token else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        if token.check(req.headers()).is_err() {
            tracing::warn!("admin API: missing or wrong token");
            return text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        }
        let user = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(name, _)| name == "user")
            .map(|(_, value)| value.into_owned());
        let Some(user) = user.filter(|u| identifier(u)) else {
            return text(StatusCode::BAD_REQUEST, "bad request: ?user=<sub>\n");
        };
        let key = self.store.digest(&[b"sessions", user.as_bytes()]);
        let Some(fields) = self.store.sessions(&key).await else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "session lists need [store] kind = \"redis\", reachable\n",
            );
        };
        // `{hash}:{login|refresh}` → one object per session; values sealed.
        let Some(opener) = self.apps.first() else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let mut sessions: std::collections::BTreeMap<String, serde_json::Value> =
            std::collections::BTreeMap::new();
        for (field, sealed) in fields {
            let Some((session, what)) = field.rsplit_once(':') else {
                continue;
            };
            let Some(seen) = opener
                .sealer
                .open(SESSIONS_SEAL, &sealed)
                .and_then(|plain| serde_json::from_str::<serde_json::Value>(&plain).ok())
            else {
                continue;
            };
            let entry = sessions
                .entry(session.to_owned())
                .or_insert_with(|| serde_json::json!({}));
            entry["session"] = seen["session"].clone();
            entry["app"] = seen["app"].clone();
            match what {
                "login" => {
                    entry["first_login"] = seen["at"].clone();
                    entry["last_address"] = seen["address"].clone();
                }
                _ => entry["last_refresh"] = seen["at"].clone(),
            }
        }
        let body = serde_json::json!({
            "user": user,
            "sessions": sessions.into_values().collect::<Vec<_>>(),
        });
        let mut answer = text(StatusCode::OK, body.to_string());
        answer
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        answer
    }

    /// Revokes `sub`'s refresh tokens at the IdP of `app` (or of every app),
    /// best effort: what happened, for the answer.
    async fn revoke_at_idp(
        &self,
        sub: &str,
        client_id: Option<&str>,
        app: Option<&Arc<AppAuth>>,
    ) -> &'static str {
        let mut idps: Vec<&Arc<IdpState>> = Vec::new();
        for auth in self
            .apps
            .iter()
            .filter(|a| app.is_none_or(|one| Arc::ptr_eq(a, one)))
        {
            if !idps.iter().any(|i| Arc::ptr_eq(i, &auth.idp)) {
                idps.push(&auth.idp);
            }
        }
        let mut outcome = "revoked";
        for idp in idps {
            let result = match idp.client() {
                Some(client) => client.revoke_user(sub, client_id).await,
                None => Err(crate::auth::idp::IdpError::Unavailable(
                    "the IdP is not loaded yet".into(),
                )),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "admin API: refresh tokens not revoked at the IdP");
                outcome = "not revoked (see the log)";
            }
        }
        outcome
    }

    /// How long after now a token issued now can be valid: the longest JWT
    /// lifetime the gateway knows of (the webhook's assumed one).
    fn longest_ttl(&self) -> u64 {
        self.webhook
            .as_ref()
            .map(|(w, _)| w.ttl)
            .or(self.backchannel.as_ref().map(|b| b.ttl))
            .unwrap_or(Duration::from_secs(3600))
            .as_secs()
    }

    /// Puts what `action` names on the revocation list, or refetches keys.
    async fn apply(&self, action: &Action, now: u64) {
        let store = &self.store;
        match action {
            Action::User {
                sub,
                client_id,
                before,
                until,
            } => {
                let id = revocation::user(store, sub, client_id.as_deref());
                let entry = Entry {
                    before: *before,
                    until: *until,
                };
                store.revoke(&id, entry, now).await;
            }
            Action::Session {
                sid,
                client_id,
                until,
            } => {
                let entry = Entry {
                    before: u64::MAX,
                    until: *until,
                };
                // Without a client, the session of that id at any client.
                let clients: Vec<&str> = match client_id {
                    Some(c) => vec![c.as_str()],
                    None => self
                        .apps
                        .iter()
                        .map(|a| a.config.client.id.as_str())
                        .collect(),
                };
                for client in clients {
                    store
                        .revoke(&revocation::session(store, client, sid), entry, now)
                        .await;
                }
            }
            Action::App {
                client_id,
                before,
                until,
            } => {
                let entry = Entry {
                    before: *before,
                    until: *until,
                };
                store
                    .revoke(&revocation::client(store, client_id), entry, now)
                    .await;
            }
            Action::RefetchKeys => {
                for idp in &self.idps {
                    idp.refetch().await;
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    user: Option<String>,
    session: Option<String>,
    app: Option<String>,
}

async fn post_only<F, Fut>(req: Request<Incoming>, then: F) -> Answer
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    if req.method() != Method::POST {
        let mut answer = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        answer
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return answer;
    }
    then(req).await
}

/// The whole body, if it arrives within [`READ_TIMEOUT`] and fits in
/// [`MAX_BODY`].
async fn read(body: Incoming) -> Option<Bytes> {
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Some(collected.to_bytes()),
        _ => None,
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
