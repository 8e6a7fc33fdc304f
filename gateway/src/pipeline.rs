//! The request path: one function that runs the stages in order.
//!
//! ```text
//! handle (outer): request id, span, metrics, Error → response
//!   └─ run (inner):
//!        route      host (+ path prefix) → app, or 404
//!        identity   client-sent identity headers out (every route)
//!        login      the app's own endpoints under its reserved prefix
//!        public     public paths skip the session stages
//!        session    the app's JWT and sealed refresh cookies
//!        verify     signature, algorithm, iss, aud, client, time (cached per token)
//!        refresh    expired: single-flight refresh at the IdP, new cookies
//!        authorize  required roles
//!        forward    gateway cookies out, identity headers in, hop-by-hop out,
//!                   X-Forwarded-* in, stream to the upstream
//!        response   + Set-Cookie from a refresh; upstream cookies that would
//!                   overwrite the gateway's dropped
//! ```
//!
//! Each stage is a plain function returning "continue" or an [`Error`] that
//! the outer handler turns into the answer (a login redirect, 401 JSON, a
//! page).

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::{ACCEPT, HOST, LOCATION, SET_COOKIE, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::auth::app::{self, unix_now, AppAuth, LoginShared};
use crate::auth::error::{AuthError, Relogin};
use crate::auth::idp_state::IdpState;
use crate::auth::login::endpoint as login;
use crate::auth::model::Checked;
use crate::auth::refresh::{self, Renewed};
use crate::auth::session::{self, Session};
use crate::auth::verify::VerifyError;
use crate::auth::{authorize, identity, public};
use crate::config::{AppConfig, Config, RefreshMode};
use crate::error::Error;
use crate::ops::metrics::{AppMetrics, NO_APP};
use crate::pages;
use crate::proxy::body::Body;
use crate::proxy::forward::{self, ClientSide, Target};
use crate::proxy::pool::{self, Upstream};
use crate::proxy::request_id;
use crate::proxy::route::Router;
use crate::proxy::server::{ConnInfo, Handler, Lifecycle};
use crate::proxy::workers;

/// Everything the request path shares, built once at start-up.
pub struct Gateway {
    /// The configuration it runs with.
    pub config: Config,
    router: Router,
    apps: Vec<App>,
    unrouted: AppMetrics,
    /// Tunnels, the stop token and whether the listener accepts (`/readyz`
    /// also waits for the IdPs).
    pub lifecycle: Lifecycle,
    /// The IdPs the apps use (keys load in the background).
    pub idps: Vec<Arc<IdpState>>,
    login: LoginShared,
}

/// One app with its runtime state.
struct App {
    config: AppConfig,
    metrics: AppMetrics,
    upstream: Upstream,
    auth: Option<Arc<AppAuth>>,
}

impl Gateway {
    /// Builds the routing table, per-app state, the upstream pool and the
    /// login workflow's state. Fails only on a login page template that
    /// does not compile.
    pub fn new(config: Config) -> Result<Gateway, String> {
        let router = Router::new(
            config
                .apps
                .iter()
                .enumerate()
                .map(|(i, app)| (i, app.hosts.as_slice(), app.path_prefix.as_str())),
        );
        let u = &config.upstream;
        let settings = Arc::new(pool::Settings::new(
            u.connect_timeout,
            u.pool_idle_timeout,
            u.pool_max_idle_per_host,
            workers::count(config.server.worker_threads),
        ));
        let (auths, idps) = app::build(&config.apps, &config.session)?;
        let apps = config
            .apps
            .iter()
            .zip(auths)
            .map(|(app, auth)| App {
                auth,
                metrics: AppMetrics::new(&app.name),
                upstream: Upstream::new(
                    app.upstream.scheme.clone(),
                    app.upstream.authority.clone(),
                    settings.clone(),
                ),
                config: app.clone(),
            })
            .collect();
        Ok(Gateway {
            router,
            apps,
            unrouted: AppMetrics::new(NO_APP),
            lifecycle: Lifecycle::default(),
            idps,
            login: LoginShared::new(&config.login),
            config,
        })
    }

    /// Whether `/readyz` should say ready: accepting, and every IdP's
    /// endpoints and keys loaded.
    pub fn is_ready(&self) -> bool {
        self.lifecycle.accepting.load(Ordering::Acquire)
            && self.idps.iter().all(|idp| idp.is_ready())
    }
}

impl Handler for Gateway {
    fn handle(
        conn: Arc<ConnInfo<Gateway>>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static {
        handle(conn, req)
    }
}

/// Per-request facts the outer handler needs after the inner one ran.
struct RequestCtx {
    request_id: HeaderValue,
    app: Option<usize>,
}

/// The outer handler: owns the request id, the span, metrics, and the
/// conversion of errors into responses. Never fails.
async fn handle(
    conn: Arc<ConnInfo<Gateway>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = conn.activity.begin_request();
    let gateway = &conn.handler;
    // Only the access log needs the clock here.
    let started = gateway.config.log.access.then(Instant::now);
    let method = req.method().clone();
    let json = pages::wants_json(req.headers());
    let mut ctx = RequestCtx {
        request_id: request_id::from_incoming(req.headers().get(request_id::HEADER)),
        app: None,
    };
    let span = tracing::info_span!(
        "request",
        id = ctx.request_id.to_str().unwrap_or(""),
        method = %method,
        path = req.uri().path(),
        app = tracing::field::Empty,
    );
    // A disabled span (log level above `info`) would only cost the wrapper's
    // copy of the whole request future.
    let result = match span.is_disabled() {
        true => run(&conn, req, &mut ctx).await,
        false => run(&conn, req, &mut ctx).instrument(span.clone()).await,
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let status = error.status();
            if status.is_server_error() {
                tracing::warn!(parent: &span, error = %error, status = status.as_u16(), "request failed");
            } else {
                tracing::debug!(parent: &span, error = %error, status = status.as_u16(), "request refused");
            }
            error.into_response(&ctx.request_id, json)
        }
    };
    let status = response.status();
    let metrics = match ctx.app {
        Some(i) => &gateway.apps[i].metrics,
        None => &gateway.unrouted,
    };
    metrics.request(&method, status);
    if let Some(started) = started {
        tracing::info!(
            parent: &span,
            status = status.as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
        .headers_mut()
        .insert(request_id::HEADER, ctx.request_id);
    // The connection stays busy until hyper has written the whole body.
    response.body_mut().hold(in_flight);
    Ok(response)
}

/// The inner handler: the stages, in order.
async fn run(
    conn: &ConnInfo<Gateway>,
    req: Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, Error> {
    let gateway = &conn.handler;

    // route
    let host = request_host(&req)?;
    let host_text = host.to_str().map_err(|_| Error::MissingHost)?;
    let index = gateway
        .router
        .find(host_text, req.uri().path())
        .ok_or_else(|| Error::UnknownHost {
            host: host_text.to_owned(),
        })?;
    ctx.app = Some(index);
    let app = &gateway.apps[index];
    tracing::Span::current().record("app", app.config.name.as_str());

    // identity headers out, then the login stages
    let mut req = req;
    identity::strip_client(req.headers_mut(), app.auth.as_deref());
    let mut set_cookies = Vec::new();
    if let Some(auth) = &app.auth {
        if login::owns(auth, req.uri().path()) {
            return own_page(conn, auth, req).await;
        }
        match guard(auth, &mut req).await? {
            Step::Continue(cookies) => set_cookies = cookies,
            Step::Respond(response) => return Ok(response),
        }
    }

    // forward
    let (mut response, upstream_time) = forward::forward(
        gateway.config.upstream.response_timeout,
        &gateway.lifecycle.tunnels,
        &gateway.lifecycle.stop,
        req,
        Target {
            upstream: &app.upstream,
            preserve_host: app.config.preserve_host,
            host_header: &app.config.upstream.host_header,
        },
        ClientSide {
            peer: &conn.peer_value,
            proto: conn.proto,
            trusted: conn.trusted,
            host: &host,
            request_id: &ctx.request_id,
        },
    )
    .await?;
    app.metrics.upstream_latency(upstream_time);
    if let Some(auth) = &app.auth {
        finish_response(auth, &mut response, set_cookies);
    }
    Ok(response)
}

/// What the login stages decided.
enum Step {
    /// Forward the request (identity headers set, gateway cookies out) and
    /// add these `Set-Cookie` values to the answer.
    Continue(Vec<HeaderValue>),
    /// Answer with this instead (a refresh redirect).
    Respond(Response<Body>),
}

/// The gateway's own pages on the app's host (boxed: rare, and kept out of
/// the per-request future).
async fn own_page(
    conn: &ConnInfo<Gateway>,
    auth: &Arc<AppAuth>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let caller = login::Caller {
        ip: client_ip(conn, req.headers()),
    };
    let page = Box::pin(login::endpoint(auth, &conn.handler.login, caller, req)).await?;
    Ok(page.map(Body::full))
}

/// The login stages of an app with login, in order, for a request that is
/// not for the gateway's own pages.
async fn guard(auth: &Arc<AppAuth>, req: &mut Request<Incoming>) -> Result<Step, Error> {
    // public paths: no session, but never the gateway's cookies
    if public::is_public(auth, req.uri().path()) {
        session::strip(auth, req.headers_mut());
        return Ok(Step::Continue(Vec::new()));
    }
    // session + verify: the steady state is a cached token, no await
    let now = unix_now();
    let renewed = match session::take_if_valid(auth, req.headers_mut(), now) {
        Some(identity) => Renewed {
            identity,
            set_cookies: Vec::new(),
        },
        // verify in full, refresh (boxed: rare)
        None => {
            let session = session::take(auth, req.headers_mut());
            Box::pin(authenticate(auth, &session, req)).await?
        }
    };
    if !renewed.set_cookies.is_empty()
        && auth.session.refresh_mode == RefreshMode::Redirect
        && req.method() == Method::GET
        && is_navigation(req)
    {
        return Ok(Step::Respond(reload(req, renewed.set_cookies)));
    }
    // authorize
    authorize::stage(auth, &renewed.identity)?;
    identity::apply(req.headers_mut(), &renewed.identity);
    Ok(Step::Continue(renewed.set_cookies))
}

/// The session, verify and refresh stages: the identity to forward with.
async fn authenticate(
    auth: &Arc<AppAuth>,
    session: &Session,
    req: &Request<Incoming>,
) -> Result<Renewed, AuthError> {
    let now = unix_now();
    let checked = match &session.jwt {
        Some(jwt) => auth.check(jwt, now).await,
        None => Err(VerifyError::Malformed),
    };
    match checked {
        Ok(Checked::Valid(identity)) if !auth.due_for_refresh(&identity, now) => Ok(Renewed {
            identity,
            set_cookies: Vec::new(),
        }),
        checked => {
            refresh::stage(auth, session, checked, |clear| {
                relogin(auth, req, session, clear)
            })
            .await
        }
    }
}

/// Sends the client to the login page (or tells an API client to log in).
fn relogin(auth: &AppAuth, req: &Request<Incoming>, session: &Session, clear: bool) -> AuthError {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!(
        "{}?return_to={}",
        auth.config.login_path(),
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    AuthError::LoginRequired(Box::new(Relogin {
        location,
        navigation: is_navigation(req),
        challenge: login::challenge(auth),
        clear: if clear {
            session::clear(auth, session)
        } else {
            Vec::new()
        },
    }))
}

/// A browser loading a page: GET or HEAD, HTML accepted, not a script's
/// request and not a WebSocket upgrade.
fn is_navigation<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    matches!(*req.method(), Method::GET | Method::HEAD)
        && !headers.contains_key(UPGRADE)
        && !headers.contains_key("x-requested-with")
        && headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The article's redirect variant: new cookies, then the same URL again.
fn reload(req: &Request<Incoming>, cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(location) = HeaderValue::from_str(target) {
        response.headers_mut().insert(LOCATION, location);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Drops upstream cookies that would overwrite the gateway's, then adds
/// the refresh's cookies.
fn finish_response(auth: &AppAuth, response: &mut Response<Body>, set_cookies: Vec<HeaderValue>) {
    let headers = response.headers_mut();
    if headers.contains_key(SET_COOKIE) {
        let upstream: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
        if upstream.iter().any(|c| session::is_gateway_cookie(auth, c)) {
            headers.remove(SET_COOKIE);
            for cookie in upstream {
                if session::is_gateway_cookie(auth, &cookie) {
                    tracing::warn!("upstream Set-Cookie for a gateway cookie dropped");
                } else {
                    headers.append(SET_COOKIE, cookie);
                }
            }
        }
    }
    for cookie in set_cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

/// The client's address for throttling: the peer, or, behind trusted
/// proxies, the first untrusted hop of `X-Forwarded-For` from the right.
fn client_ip(conn: &ConnInfo<Gateway>, headers: &http::HeaderMap) -> std::net::IpAddr {
    let trusted = &conn.handler.config.server.trusted_proxies;
    crate::proxy::client_ip::client_ip(conn.peer.ip(), headers, trusted)
}

/// The host the client asked for: the URI authority (HTTP/2, absolute-form)
/// or else the `Host` header (RFC 9112 §3.2.2).
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, Error> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).map_err(|_| Error::MissingHost);
    }
    match req.headers().get(HOST) {
        Some(host) if !host.is_empty() => Ok(host.clone()),
        _ => Err(Error::MissingHost),
    }
}
