//! `gateway`: a reverse-proxy authentication gateway for web apps that cannot
//! be changed.
//!
//! It routes each request by host (and optional path prefix) to the app that
//! owns it and streams it to that app's upstream, HTTP/1.1 and HTTP/2, plain or
//! TLS, with WebSocket upgrades, `X-Forwarded-*` and request ids.
//!
//! ```text
//! accept    TCP or TLS, HTTP/1.1 + HTTP/2            proxy::server, proxy::connection
//! route     host (+ path prefix) → app               proxy::route
//! login     own pages, session, verify, refresh,     auth::*
//!           authorize, identity headers
//! forward   hop-by-hop out, X-Forwarded-* in,        proxy::forward, proxy::headers
//!           streamed both ways, upgrades
//! answer    upstream's, or the gateway's own page    error, pages
//! ```
//!
//! [`pipeline`] runs those stages in order: the file to read first. The
//! folders are the layers, and imports run one way:
//!
//! | module | what lives there | may import |
//! |---|---|---|
//! | [`pipeline`], [`error`], [`pages`] | the request path, errors → answers | everything |
//! | [`proxy`] | the reverse-proxy core; knows nothing of login | `config`, `ops` |
//! | [`front`] | forward-auth: an ingress's subrequest read, its answers shaped | `config`, `ops`, `proxy`, `store`, `auth` |
//! | [`events`] | revocation inputs: IdP webhooks, back-channel logout, the admin API | `config`, `ops`, `store`, `auth` |
//! | [`auth`] | the login workflow; knows nothing of sockets | `config`, `ops`, `store` |
//! | [`store`] | state replicas share: in-process or Redis | `config`, `ops` |
//! | [`ops`] | admin listener, metrics, logging | `config` |
//! | [`config`] | raw → validated configuration | nothing |
//!
//! A test (`tests/integration/layout.rs`) keeps that table and the absence
//! of import cycles true.
//!
//! The library's entry point is [`serve`], called by the binary and by tests
//! with listeners bound beforehand:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = gateway::Config::load("config.toml".as_ref())?;
//! let listeners = gateway::Listeners::bind(&config).await?;
//! gateway::serve(listeners, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod front;
pub mod ops;
pub mod pages;
pub mod pipeline;
pub mod proxy;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use config::{Config, ConfigError};
pub use proxy::server::Listeners;

use ops::{admin, metrics};
use pipeline::Gateway;

/// Serves until `shutdown` resolves, then drains gracefully: builds the
/// request path's state, starts loading the IdPs' keys, the admin listener,
/// metrics upkeep and the watch over live connections of revoked sessions,
/// and hands the proxy listener to the proxy core.
pub async fn serve(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let prometheus = metrics::install();
    let gateway = Arc::new(Gateway::new(config).map_err(std::io::Error::other)?);
    // Background work ends as soon as shutdown starts; the admin listener
    // with it.
    let background = CancellationToken::new();
    for idp in &gateway.idps {
        tokio::spawn(idp.clone().load(background.clone()));
    }
    gateway.store.start(&background);
    tracing::info!(store = gateway.store.describe(), "shared state");
    // Tunnels outlive the start of shutdown (they are cut at the end of the
    // grace period), and so does the watch that ends those of revoked
    // sessions: it stops with them, or when this function returns.
    let watching = gateway.lifecycle.stop.child_token();
    tokio::spawn(
        gateway
            .live
            .clone()
            .watch(gateway.store.clone(), watching.clone()),
    );
    let _watching = watching.drop_guard();
    warn_about_development_settings(&gateway.config);
    ops::open_files::check(&gateway.config.server);
    for variable in &gateway.config.ignored_variables {
        tracing::debug!(
            variable = variable.as_str(),
            "ignoring environment variable: only GATEWAY_<SECTION>__<KEY> variables are configuration"
        );
    }
    tracing::info!(apps = gateway.config.apps.len(), "starting");
    if let Some(config) = &gateway.config.forward_auth {
        tracing::info!(
            on = front::forward_auth::describe(config),
            "forward-auth endpoint for an ingress"
        );
    }
    if let Some(admin_listener) = listeners.admin {
        let addr = admin_listener.local_addr()?;
        let ready = gateway.clone();
        let events = gateway.events().map(Arc::new);
        if let Some(events) = &events {
            tracing::info!(on = events.describe(), "session-ending endpoints");
        }
        let other: Option<admin::Other> = events.map(|events| {
            let other: admin::Other = Arc::new(move |req| {
                let events = events.clone();
                Box::pin(async move { events.answer(req).await })
            });
            other
        });
        tokio::spawn(admin::serve(
            admin_listener,
            Arc::new(move || ready.is_ready()),
            prometheus.clone(),
            other,
            background.clone(),
        ));
        tracing::info!(%addr, "admin listening (/healthz, /readyz, /metrics)");
    } else if gateway.events().is_some() {
        tracing::warn!(
            "[events] endpoints are configured but server.admin_listen is off: they are not served"
        );
    }
    tokio::spawn(metrics::upkeep(prometheus, background.clone()));
    let shutdown = async {
        shutdown.await;
        background.cancel();
    };
    proxy::server::run(
        listeners.proxy,
        gateway.clone(),
        &gateway.config.server,
        &gateway.lifecycle,
        shutdown,
    )
    .await
}

/// Says loudly what a production deployment should not run with.
fn warn_about_development_settings(config: &Config) {
    for app in &config.apps {
        match &app.auth {
            None => tracing::warn!(
                app = app.name.as_str(),
                "app served WITHOUT login (auth = false): every request reaches it anonymously"
            ),
            Some(auth) if !auth.jwt_cookie.secure => tracing::warn!(
                app = app.name.as_str(),
                "cookies.secure = false: session cookies travel over plain HTTP; for development only"
            ),
            Some(_) => {}
        }
    }
}
