//! Metric names, label sets and cheap per-app handles.
//!
//! Every metric the gateway exports is named here, once. Handles are resolved
//! once per (app, method, status class) and cached, so recording a request is
//! an atomic add, not a registry lookup. The Prometheus recorder is process-wide
//! (several gateways in one test process share it; the `app` label tells them
//! apart).

use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `app`, `method` and `status` class (`2xx`…).
pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
/// Time from sending a request upstream to its response head, by `app`.
pub const UPSTREAM_DURATION_SECONDS: &str = "gateway_upstream_duration_seconds";
/// Client connections currently open.
pub const OPEN_CONNECTIONS: &str = "gateway_open_connections";
/// Client connections accepted since start.
pub const CONNECTIONS_TOTAL: &str = "gateway_connections_total";
/// WebSocket (and other HTTP/1.1 `Upgrade`) tunnels currently open.
pub const OPEN_TUNNELS: &str = "gateway_open_tunnels";
/// Client connections closed at accept, by `reason` (`global`:
/// `server.max_connections`; `per_ip`: `server.max_connections_per_ip`).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "gateway_connections_refused_total";
/// Tunnels ended, by `reason` (`closed`, `error`, `idle`, `lifetime`,
/// `revoked`: the session it was opened with ended, `shutdown`).
pub const TUNNELS_CLOSED_TOTAL: &str = "gateway_tunnels_closed_total";
/// The soft open-files limit (`RLIMIT_NOFILE`) the gateway runs with.
pub const OPEN_FILES_LIMIT: &str = "gateway_open_files_limit";

/// Idle HTTP/1 connections holding only their socket (buffers released).
pub const PARKED_CONNECTIONS: &str = "gateway_parked_connections";

/// Login attempts, by `app` and `outcome` (`success`, `rejected`,
/// `unavailable`, `csrf`, `throttled`).
pub const LOGINS_TOTAL: &str = "gateway_logins_total";
/// Logouts, by `app` and `revoked` (`true`, `false`: the IdP was not reached).
pub const LOGOUTS_TOTAL: &str = "gateway_logouts_total";
/// Refreshes done at the IdP, by `app` and `outcome` (`success`, `rejected`,
/// `unavailable`, `invalid`).
pub const REFRESHES_TOTAL: &str = "gateway_refreshes_total";
/// Requests that shared another request's refresh instead of calling the IdP,
/// by `app` and `role` (`follower`: joined while it ran; `late`: within the grace period).
pub const REFRESH_WAITERS_TOTAL: &str = "gateway_refresh_waiters_total";
/// JWKS fetches, by `reason` (`startup`; `unknown_kid`: a client's token,
/// rate-limited; `issued_kid`: a token the IdP has just issued) and `outcome`
/// (`success`, `failure`).
pub const JWKS_FETCHES_TOTAL: &str = "gateway_jwks_fetches_total";
/// Token verification cache lookups, by `app` and `result` (`hit`, `miss`).
pub const TOKEN_CACHE_TOTAL: &str = "gateway_token_cache_total";
/// Login attempts refused by throttling, by `app` and `by` (`ip`, `username`).
pub const LOGIN_THROTTLED_TOTAL: &str = "gateway_login_throttled_total";
/// Login and logout forms that did not arrive within `login.form_timeout`
/// (answered 408), by `app` and `form` (`login`, `logout`).
pub const FORM_TIMEOUTS_TOTAL: &str = "gateway_form_timeouts_total";

/// 1 while Redis answers (`[store] kind = "redis"`: replicas share state),
/// 0 while each replica goes on with its own; absent with a memory store.
pub const STORE_UP: &str = "gateway_store_up";
/// Entries on this replica's copy of the revocation list.
pub const REVOCATIONS: &str = "gateway_revocations";
/// Redis operations that failed or timed out, by `op`.
pub const STORE_ERRORS_TOTAL: &str = "gateway_store_errors_total";

/// The `app` label of requests that matched no app.
pub const NO_APP: &str = "(none)";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(UPSTREAM_DURATION_SECONDS.to_owned()),
                    LATENCY_BUCKETS,
                )
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first (an embedding
            // program's); then that one receives the metrics.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "Requests answered, by app, method and status class."
    );
    metrics::describe_histogram!(
        UPSTREAM_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a request upstream to receiving its response head."
    );
    metrics::describe_gauge!(OPEN_CONNECTIONS, "Client connections currently open.");
    metrics::describe_counter!(CONNECTIONS_TOTAL, "Client connections accepted.");
    metrics::describe_gauge!(OPEN_TUNNELS, "Upgraded (WebSocket) tunnels currently open.");
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Client connections closed at accept because a connection cap was reached, by reason."
    );
    metrics::describe_counter!(
        TUNNELS_CLOSED_TOTAL,
        "Upgraded (WebSocket) tunnels ended, by reason."
    );
    metrics::describe_gauge!(
        OPEN_FILES_LIMIT,
        "The soft open-files limit (RLIMIT_NOFILE) the gateway runs with."
    );
    metrics::describe_counter!(LOGINS_TOTAL, "Login attempts, by app and outcome.");
    metrics::describe_counter!(
        LOGOUTS_TOTAL,
        "Logouts, by app and whether the IdP revoked the token."
    );
    metrics::describe_counter!(
        REFRESHES_TOTAL,
        "Refreshes done at the IdP, by app and outcome."
    );
    metrics::describe_counter!(
        REFRESH_WAITERS_TOTAL,
        "Requests that shared another request's refresh, by app and role."
    );
    metrics::describe_counter!(JWKS_FETCHES_TOTAL, "JWKS fetches, by reason and outcome.");
    metrics::describe_counter!(
        TOKEN_CACHE_TOTAL,
        "Verified-token cache lookups, by app and result."
    );
    metrics::describe_counter!(
        LOGIN_THROTTLED_TOTAL,
        "Login attempts refused by throttling, by app and key kind."
    );
    metrics::describe_counter!(
        FORM_TIMEOUTS_TOTAL,
        "Login and logout forms not received within login.form_timeout, by app and form."
    );
    metrics::describe_gauge!(
        STORE_UP,
        "1 while Redis answers and replicas share state, 0 while each replica uses its own."
    );
    metrics::describe_gauge!(
        REVOCATIONS,
        "Entries on this replica's copy of the revocation list."
    );
    metrics::describe_counter!(
        STORE_ERRORS_TOTAL,
        "Redis operations that failed or timed out, by operation."
    );
    metrics::describe_gauge!(
        PARKED_CONNECTIONS,
        "Idle HTTP/1 keep-alive connections whose buffers are released."
    );
}

/// Cached handles for one app's metrics.
pub struct AppMetrics {
    name: &'static str,
    requests: [[OnceLock<Counter>; CLASSES.len()]; METHODS.len()],
    upstream_duration: Histogram,
}

impl AppMetrics {
    /// Handles for the app called `name` (leaked once: apps live as long as the process).
    pub fn new(name: &str) -> AppMetrics {
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        AppMetrics {
            name,
            requests: Default::default(),
            upstream_duration: metrics::histogram!(UPSTREAM_DURATION_SECONDS, "app" => name),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &Method, status: StatusCode) {
        let m = method_index(method);
        let c = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.requests[m][c]
            .get_or_init(|| {
                metrics::counter!(REQUESTS_TOTAL, "app" => self.name, "method" => METHODS[m], "status" => CLASSES[c])
            })
            .increment(1);
    }

    /// Records the upstream's time to response head.
    pub fn upstream_latency(&self, elapsed: Duration) {
        self.upstream_duration.record(elapsed.as_secs_f64());
    }
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// Cached handles for connection-level metrics.
pub struct ConnectionMetrics {
    /// [`OPEN_CONNECTIONS`].
    pub open: metrics::Gauge,
    /// [`CONNECTIONS_TOTAL`].
    pub accepted: Counter,
    /// [`OPEN_TUNNELS`].
    pub tunnels: metrics::Gauge,
    /// [`PARKED_CONNECTIONS`].
    pub parked: metrics::Gauge,
    /// [`CONNECTIONS_REFUSED_TOTAL`] with `reason="global"`.
    pub refused_global: Counter,
    /// [`CONNECTIONS_REFUSED_TOTAL`] with `reason="per_ip"`.
    pub refused_per_ip: Counter,
    /// [`TUNNELS_CLOSED_TOTAL`], one handle per reason.
    pub tunnels_closed: TunnelCloses,
}

/// [`TUNNELS_CLOSED_TOTAL`] by `reason`.
pub struct TunnelCloses {
    /// Both sides finished.
    pub closed: Counter,
    /// Reading or writing a side failed.
    pub error: Counter,
    /// Quiet for `server.tunnel_idle_timeout`.
    pub idle: Counter,
    /// Open for `server.tunnel_max_lifetime`.
    pub lifetime: Counter,
    /// Cut by its handler: the session it was opened with was revoked.
    pub revoked: Counter,
    /// Cut at the end of the shutdown grace period.
    pub shutdown: Counter,
}

/// The connection-level handles (resolved on first use, after [`install`]).
pub fn connections() -> &'static ConnectionMetrics {
    static HANDLES: OnceLock<ConnectionMetrics> = OnceLock::new();
    HANDLES.get_or_init(|| ConnectionMetrics {
        open: metrics::gauge!(OPEN_CONNECTIONS),
        accepted: metrics::counter!(CONNECTIONS_TOTAL),
        tunnels: metrics::gauge!(OPEN_TUNNELS),
        parked: metrics::gauge!(PARKED_CONNECTIONS),
        refused_global: metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "global"),
        refused_per_ip: metrics::counter!(CONNECTIONS_REFUSED_TOTAL, "reason" => "per_ip"),
        tunnels_closed: TunnelCloses {
            closed: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "closed"),
            error: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "error"),
            idle: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "idle"),
            lifetime: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "lifetime"),
            revoked: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "revoked"),
            shutdown: metrics::counter!(TUNNELS_CLOSED_TOTAL, "reason" => "shutdown"),
        },
    })
}

/// Records the soft open-files limit in effect.
pub fn open_files_limit(limit: u64) {
    metrics::gauge!(OPEN_FILES_LIMIT).set(limit as f64);
}

/// Cached handles for one app's login workflow.
pub struct AuthMetrics {
    name: &'static str,
    cache_hit: Counter,
    cache_miss: Counter,
}

impl AuthMetrics {
    /// Handles for the app called `name`.
    pub fn new(name: &str) -> AuthMetrics {
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        AuthMetrics {
            name,
            cache_hit: metrics::counter!(TOKEN_CACHE_TOTAL, "app" => name, "result" => "hit"),
            cache_miss: metrics::counter!(TOKEN_CACHE_TOTAL, "app" => name, "result" => "miss"),
        }
    }

    /// A token verification served from the cache (`true`) or computed.
    pub fn cache(&self, hit: bool) {
        if hit {
            self.cache_hit.increment(1);
        } else {
            self.cache_miss.increment(1);
        }
    }

    /// A login attempt's outcome.
    pub fn login(&self, outcome: &'static str) {
        metrics::counter!(LOGINS_TOTAL, "app" => self.name, "outcome" => outcome).increment(1);
    }

    /// A logout, and whether the IdP revoked the token.
    pub fn logout(&self, revoked: bool) {
        let revoked = if revoked { "true" } else { "false" };
        metrics::counter!(LOGOUTS_TOTAL, "app" => self.name, "revoked" => revoked).increment(1);
    }

    /// A refresh call's outcome.
    pub fn refresh(&self, outcome: &'static str) {
        metrics::counter!(REFRESHES_TOTAL, "app" => self.name, "outcome" => outcome).increment(1);
    }

    /// A request that shared a refresh (`follower` or `late`).
    pub fn refresh_waiter(&self, role: &'static str) {
        metrics::counter!(REFRESH_WAITERS_TOTAL, "app" => self.name, "role" => role).increment(1);
    }

    /// A login attempt refused by throttling (`ip` or `username`).
    pub fn throttled(&self, by: &'static str) {
        metrics::counter!(LOGIN_THROTTLED_TOTAL, "app" => self.name, "by" => by).increment(1);
    }

    /// A login or logout form (`login`, `logout`) not received in time.
    pub fn form_timeout(&self, form: &'static str) {
        metrics::counter!(FORM_TIMEOUTS_TOTAL, "app" => self.name, "form" => form).increment(1);
    }
}

/// Handles for the store's metrics.
#[derive(Debug)]
pub struct StoreMetrics {
    up: metrics::Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics::new()
    }
}

impl StoreMetrics {
    /// Handles for the store.
    pub fn new() -> StoreMetrics {
        StoreMetrics {
            up: metrics::gauge!(STORE_UP),
        }
    }

    /// Redis answers (`true`) or not.
    pub fn up(&self, up: bool) {
        self.up.set(if up { 1.0 } else { 0.0 });
    }

    /// A failed or timed-out operation.
    pub fn error(&self, op: &'static str) {
        metrics::counter!(STORE_ERRORS_TOTAL, "op" => op).increment(1);
    }
}

/// Records the size of the local revocation list.
pub fn revocations(entries: usize) {
    metrics::gauge!(REVOCATIONS).set(entries as f64);
}

/// Counts one JWKS fetch.
pub fn jwks_fetch(reason: &'static str, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!(JWKS_FETCHES_TOTAL, "reason" => reason, "outcome" => outcome).increment(1);
}

/// Histograms accumulate samples until drained; drains them regularly even
/// if nobody scrapes, until `cancel` fires.
pub async fn upkeep(handle: PrometheusHandle, cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
