//! The request path: one function that runs the stages in order.
//!
//! ```text
//! handle (outer): request id, span, metrics, Error → response, a refresh's
//!                 cookies on whatever answer
//!   └─ run (inner):
//!        one meaning one well-formed host, one normal path (or 400)
//!        route      host (+ path prefix) → app, or 404
//!        clean      the client's hop-by-hop fields, trailers, identity headers
//!                   in any spelling, trusted-only headers, every app's
//!                   gateway cookies: out, on every route
//!        login      the app's own endpoints under its reserved prefix
//!        public     public paths skip the session stages
//!        session    the app's JWT and sealed refresh cookies
//!        verify     signature, algorithm, iss, aud, client, time (cached per token)
//!        refresh    expired: single-flight refresh at the IdP, new cookies
//!        authorize  required roles
//!        identity   the verified identity's headers in
//!        forward    X-Forwarded-* in, stream to the upstream; a tunnel or a
//!                   streaming body of a session is watched until it ends
//!        response   upstream Set-Cookie for any gateway cookie dropped
//! ```
//!
//! Each stage is a plain function returning "continue" or an [`Error`] that
//! the outer handler turns into the answer (a login redirect, 401 JSON, a
//! page).
//!
//! What an authenticated request leaves open after its answer's head (a
//! WebSocket tunnel, a body still streaming) is put on the [`Watchlist`]
//! with the identity it was opened with, and ends within a moment of that
//! session's logout or revocation (see [`crate::auth::live`]).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::{LOCATION, SET_COOKIE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::auth::app::{self, unix_now, AppAuth, LoginShared};
use crate::auth::error::{AuthError, Relogin};
use crate::auth::gate::{self, Standing, Visit};
use crate::auth::idp_state::IdpState;
use crate::auth::live::Watchlist;
use crate::auth::login::endpoint as login;
use crate::auth::model::{Identity, IDENTITY_PREFIX};
use crate::auth::refresh::Renewed;
use crate::auth::session;
use crate::auth::{authorize, cookies, identity, public};
use crate::config::forward_auth::{DeliverCookies, ForwardAuthConfig, Ingress};
use crate::config::{AppConfig, Config, RefreshMode};
use crate::error::Error;
use crate::events::endpoint::Events;
use crate::front::forward_auth;
use crate::ops::metrics::{AppMetrics, NO_APP};
use crate::pages;
use crate::proxy::body::Body;
use crate::proxy::cut::Cut;
use crate::proxy::forward::{self, ClientSide, Target};
use crate::proxy::headers::{self, ClientRules};
use crate::proxy::path::{self, BadPath};
use crate::proxy::pool::{self, Upstream};
use crate::proxy::request_id;
use crate::proxy::route::{self, HostError, Router};
use crate::proxy::server::{ConnInfo, Handler, Lifecycle};
use crate::proxy::workers;
use crate::store::Store;

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
    /// Every app's gateway cookies: out of every upstream request, and no
    /// upstream may set them.
    cookie_names: Vec<Box<str>>,
    login: LoginShared,
    /// The state replicas share (started by [`crate::serve`]).
    pub store: Arc<Store>,
    /// Authenticated tunnels and streaming bodies, by session (watched by
    /// a task [`crate::serve`] starts).
    pub live: Arc<Watchlist>,
}

/// One app with its runtime state.
struct App {
    config: AppConfig,
    /// What this app's client may not send.
    client_rules: ClientRules,
    metrics: AppMetrics,
    upstream: Upstream,
    auth: Option<Arc<AppAuth>>,
}

impl Gateway {
    /// Builds the routing table, per-app state, the upstream pool and the
    /// login workflow's state and the store (not yet connected). Fails on a
    /// login page template that does not compile, or a store URL the Redis
    /// client refuses.
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
        let secret = config
            .session
            .cookie_key
            .as_ref()
            .map(|k| k.expose().as_bytes());
        let store = Arc::new(Store::new(&config.store, &config.login, secret)?);
        let built = app::build(&config.apps, &config.session, &store)?;
        let server = &config.server;
        let apps = config
            .apps
            .iter()
            .zip(built.apps)
            .map(|(app, auth)| App {
                client_rules: ClientRules::new(
                    server.trusted_only_headers.clone(),
                    !server.underscores_in_headers,
                    auth.as_ref()
                        .map(|a| a.extra_identity_headers.clone())
                        .unwrap_or_default(),
                    vec![IDENTITY_PREFIX],
                ),
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
            idps: built.idps,
            cookie_names: built.cookie_names,
            login: LoginShared::new(&config.login, store.clone()),
            store,
            live: Arc::default(),
            config,
        })
    }

    /// The session-ending endpoints `[events]` turns on, over the apps with
    /// login; `None` when none is on.
    pub fn events(&self) -> Option<Events> {
        let auths = self.apps.iter().filter_map(|a| a.auth.clone()).collect();
        Events::new(
            &self.config.events,
            auths,
            self.idps.clone(),
            self.store.clone(),
        )
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
    /// The cookies of a refresh made for this request: they reach the
    /// browser whatever the answer (with one-time-use refresh tokens the old
    /// cookie is dead once the grace period ends).
    set_cookies: Vec<HeaderValue>,
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
        set_cookies: Vec::new(),
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
    for cookie in ctx.set_cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
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
    mut req: Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, Error> {
    let gateway = &conn.handler;

    // forward-auth: an ingress asking about a request it proxies itself
    if let Some(config) = &gateway.config.forward_auth {
        if forward_auth::is_auth_path(config, req.uri().path()) {
            return Box::pin(forward_auth(conn, config, req, ctx)).await;
        }
    }

    // one request, one meaning: one well-formed host, one normal path (the
    // one every stage below reads and the upstream receives)
    let host = one_meaning(&mut req)?;
    // route, on the path without its `;params`; which of the app's own pages
    // and public paths it is, decided on that path too
    let name = path::without_params(req.uri().path());
    let app = route_to_app(gateway, &host, &name, ctx)?;
    let (own_page, public) = match &app.auth {
        Some(auth) => (login::owns(auth, &name), public::is_public(auth, &name)),
        None => (false, false),
    };

    // the client's headers cleaned before the gateway adds any: hop-by-hop,
    // trailers, identity headers in any spelling, what only trusted proxies
    // may send; and every app's gateway cookies, on every route
    let version = req.version();
    let upgrade =
        headers::clean_request(req.headers_mut(), version, conn.trusted, &app.client_rules);
    // the session the request is forwarded for, if any
    let mut session = None;
    match app.auth.as_ref().filter(|_| !public) {
        // no session to read (no login, or a public path): the gateway's
        // cookies out all the same
        None => session::strip(&gateway.cookie_names, req.headers_mut()),
        Some(auth) => {
            // the login stages
            if own_page {
                return own_page_answer(conn, auth, req).await;
            }
            match guard(auth, &mut req, ctx).await? {
                Step::Continue(identity) => session = Some((identity, auth)),
                Step::Respond(response) => return Ok(*response),
            }
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
            upgrade,
        },
        // asked only of an answer that goes on streaming
        || session.map(|(identity, auth)| watched(&gateway.live, identity, auth)),
    )
    .await?;
    app.metrics.upstream_latency(upstream_time);
    drop_gateway_cookies(&gateway.cookie_names, &mut response);
    Ok(response)
}

/// Forward-auth mode: the ingress's subrequest about an original request,
/// which runs the stages proxy mode runs up to `identity` (same routing,
/// normal path, public paths and roles) and answers the ingress instead of
/// forwarding. A refresh's cookies go on the allowing answer only where the
/// ingress copies them to the browser (`forward_auth.refresh =
/// "set-cookie"`); otherwise a page load is sent to the app's refresh page
/// and the subrequest never refreshes.
async fn forward_auth(
    conn: &ConnInfo<Gateway>,
    config: &ForwardAuthConfig,
    req: Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Response<Body>, Error> {
    let gateway = &conn.handler;
    let ingress = config.ingress;
    let mut original = forward_auth::original(config, conn.peer.ip(), req)?;
    let host = one_meaning(&mut original)?;
    let name = path::without_params(original.uri().path());
    let app = route_to_app(gateway, &host, &name, ctx)?;
    let anonymous = match &app.auth {
        None => true,
        Some(auth) => login::owns(auth, &name) || public::is_public(auth, &name),
    };
    let (Some(auth), false) = (app.auth.as_ref(), anonymous) else {
        session::strip(&gateway.cookie_names, original.headers_mut());
        return Ok(forward_auth::allow(
            ingress,
            None,
            original.headers(),
            Vec::new(),
        ));
    };
    let back = original
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let target = Visit {
        path_and_query: &back,
        navigation: gate::is_navigation(&original),
    };
    let refresh_page = || {
        forward_auth::refresh_elsewhere(
            ingress,
            &gate::with_return_to(&auth.config.refresh_path(), &back),
            target.navigation,
        )
    };
    let headers = original.headers_mut();
    let decided = match session::take_if_valid(auth, headers, unix_now()) {
        Some(identity) => Ok((identity, Vec::new())),
        None => {
            let session = session::read(auth, headers);
            match config.refresh {
                DeliverCookies::SetCookie => gate::authenticate(auth, &session, target)
                    .await
                    .map(|r| (r.identity, r.set_cookies)),
                DeliverCookies::Redirect => match gate::standing(auth, &session, target).await {
                    Ok(Standing::Valid(identity)) => Ok((identity, Vec::new())),
                    Ok(Standing::NeedsRefresh) => return Ok(refresh_page()),
                    Err(e) => Err(e),
                },
            }
        }
    };
    let (identity, cookies) = match decided {
        Ok(decided) => decided,
        Err(AuthError::LoginRequired(relogin)) if ingress.needs_401() => {
            return Ok(forward_auth::login_required_for_nginx(*relogin));
        }
        // nginx turns a 503 into a 500 and drops its cookies, and Envoy
        // answers any 5xx with its own status and none of the gateway's
        // headers: the refresh token the IdP issued reaches the browser on a
        // 401 (a page load goes on to the refresh page, which answers the
        // 503 itself; for Envoy a 302 there)
        Err(AuthError::RefreshUnverifiable(cookies))
            if ingress.needs_401() || ingress == Ingress::Envoy =>
        {
            let relogin = Relogin {
                location: gate::with_return_to(&auth.config.refresh_path(), &back),
                navigation: target.navigation,
                challenge: gate::challenge(auth),
                clear: cookies,
            };
            return match ingress.needs_401() {
                true => Ok(forward_auth::login_required_for_nginx(relogin)),
                false => Err(AuthError::LoginRequired(Box::new(relogin)).into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    // a refresh made here whose cookies the ingress cannot carry: the
    // refresh page picks up the same result (single-flight and grace)
    if !forward_auth::can_carry(ingress, cookies.len()) {
        return Ok(refresh_page());
    }
    authorize::stage(auth, &identity)?;
    session::strip(&gateway.cookie_names, original.headers_mut());
    Ok(forward_auth::allow(
        ingress,
        Some(&identity),
        original.headers(),
        cookies,
    ))
}

/// One request, one meaning: its one well-formed host (returned), and its
/// path made normal in place (the one every stage reads and the upstream
/// receives), or 400.
fn one_meaning<B>(req: &mut Request<B>) -> Result<HeaderValue, Error> {
    let host = route::request_host(req.uri(), req.headers())?;
    if let Cow::Owned(normal) = path::normalise(req.uri().path())? {
        *req.uri_mut() = with_path(req.uri(), &normal)?;
    }
    Ok(host)
}

/// The app serving `host` and `name` (a normal path without its
/// `;params`), noted in the request's context and span; 404 if none.
fn route_to_app<'g>(
    gateway: &'g Gateway,
    host: &HeaderValue,
    name: &str,
    ctx: &mut RequestCtx,
) -> Result<&'g App, Error> {
    let host = host.to_str().map_err(|_| HostError::Malformed)?;
    let index = gateway
        .router
        .find(host, name)
        .ok_or_else(|| Error::UnknownHost {
            host: host.to_owned(),
        })?;
    ctx.app = Some(index);
    let app = &gateway.apps[index];
    tracing::Span::current().record("app", app.config.name.as_str());
    Ok(app)
}

/// `uri` with its path replaced by `normal` (query, scheme and authority
/// kept).
fn with_path(uri: &Uri, normal: &str) -> Result<Uri, Error> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal.to_owned(),
    };
    let invalid = || Error::Path(BadPath("not a valid path once normal"));
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|_| invalid())?);
    Uri::from_parts(parts).map_err(|_| invalid())
}

/// A tunnel or streaming body of `identity`'s session, on the watch list
/// until it ends, and ended when the session is revoked.
fn watched(live: &Arc<Watchlist>, identity: Arc<Identity>, auth: &Arc<AppAuth>) -> Cut {
    let (token, registration) = live.register(identity, auth.clone());
    Cut::new(token, registration)
}

/// What the login stages decided.
enum Step {
    /// Forward the request for this identity (its headers set, gateway
    /// cookies out); a refresh's cookies wait in the request's context for
    /// the answer.
    Continue(Arc<Identity>),
    /// Answer with this instead (a refresh redirect; boxed: rare).
    Respond(Box<Response<Body>>),
}

/// The gateway's own pages on the app's host (boxed: rare, and kept out of
/// the per-request future).
async fn own_page_answer(
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
/// neither for the gateway's own pages nor on a public path.
async fn guard(
    auth: &Arc<AppAuth>,
    req: &mut Request<Incoming>,
    ctx: &mut RequestCtx,
) -> Result<Step, Error> {
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
            Box::pin(gate::authenticate(auth, &session, Visit::of(req))).await?
        }
    };
    if !renewed.set_cookies.is_empty()
        && auth.session.refresh_mode == RefreshMode::Redirect
        && req.method() == Method::GET
        && gate::is_navigation(req)
    {
        return Ok(Step::Respond(Box::new(reload(req, renewed.set_cookies))));
    }
    // a refresh's cookies go out whatever happens next (403, 502, 504)
    ctx.set_cookies = renewed.set_cookies;
    // authorize
    authorize::stage(auth, &renewed.identity)?;
    identity::apply(req.headers_mut(), &renewed.identity);
    Ok(Step::Continue(renewed.identity))
}

/// The article's redirect variant: new cookies, then the same URL again.
fn reload(req: &Request<Incoming>, cookies: Vec<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // The path is normal (no `//` or `\`), so this stays on the origin; a
    // target that would not is never written.
    let target = match target.as_bytes() {
        [b'/', b'/' | b'\\', ..] | [] => "/",
        [b'/', ..] => target,
        _ => "/",
    };
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

/// Drops every upstream `Set-Cookie` that would set one of the gateway's
/// cookies (any app's), whatever app answered.
fn drop_gateway_cookies(names: &[Box<str>], response: &mut Response<Body>) {
    let headers = response.headers_mut();
    if names.is_empty() || !headers.contains_key(SET_COOKIE) {
        return;
    }
    let sets = |c: &HeaderValue| cookies::sets_any(c.as_bytes(), names);
    if headers.get_all(SET_COOKIE).iter().any(sets) {
        let upstream: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
        headers.remove(SET_COOKIE);
        for cookie in upstream {
            if sets(&cookie) {
                tracing::warn!("upstream Set-Cookie for a gateway cookie dropped");
            } else {
                headers.append(SET_COOKIE, cookie);
            }
        }
    }
}

/// The client's address for throttling: the peer, or, behind trusted
/// proxies, the first untrusted hop of `X-Forwarded-For` from the right.
fn client_ip(conn: &ConnInfo<Gateway>, headers: &http::HeaderMap) -> std::net::IpAddr {
    let trusted = &conn.handler.config.server.trusted_proxies;
    crate::proxy::client_ip::client_ip(conn.peer.ip(), headers, trusted)
}
