//! `[server]`, `[server.tls]`, `[log]` and `[upstream]`: listeners, client
//! connection limits, logging and how upstreams are spoken to.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;

use super::error::{invalid, ConfigError};
use super::tls;
use super::values::{duration, duration_or_zero, header_name, ip_net, socket_addr};

/// Request headers apps trust to rewrite their idea of the URL, the client
/// or the scheme (old Symfony, Zend and IIS rewriting serve
/// `X-Original-URL: /admin` as `/admin`): by default accepted only from
/// `server.trusted_proxies`.
pub const TRUSTED_ONLY_HEADERS: [&str; 9] = [
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "X-Forwarded-Server",
    "X-Real-IP",
    "True-Client-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
];

/// `[server]`: what the gateway listens on and how it treats client connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the proxy listener.
    pub listen: SocketAddr,
    /// Address of the admin listener (health, readiness, metrics); `None` disables it.
    pub admin_listen: Option<SocketAddr>,
    /// TLS termination on the proxy listener; `None` serves plain HTTP (and h2c).
    pub tls: Option<TlsConfig>,
    /// Worker threads, each an event loop serving its share of the
    /// connections; `None` uses one per core.
    pub worker_threads: Option<usize>,
    /// Longest time a client may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// An HTTP/1 keep-alive connection quiet for this long gives back its
    /// per-connection buffers (the socket stays open).
    pub idle_release_after: Duration,
    /// Largest request head (HTTP/1) or header list (HTTP/2) accepted, in bytes.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-*` headers are trusted and appended to.
    pub trusted_proxies: Vec<IpNet>,
    /// Request headers accepted only from `trusted_proxies`; removed when
    /// any other peer sends them.
    pub trusted_only_headers: Vec<HeaderName>,
    /// Forward request headers whose name has an `_` (nginx's
    /// `underscores_in_headers`); `false` drops them. The `_` spelling of a
    /// header the gateway sets or trusts is dropped either way.
    pub underscores_in_headers: bool,
    /// Accept HTTP/2 (h2c prior knowledge, or ALPN `h2` under TLS).
    pub http2: bool,
    /// Most client connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Most client connections open at once from one client IP (IPv6: one
    /// /64); 0 turns the per-IP cap off. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Most HTTP/2 streams (requests) a client may have open on one connection
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub http2_max_concurrent_streams: u32,
    /// Most response bytes buffered per HTTP/2 stream for a client that
    /// does not read.
    pub http2_max_send_buf_size: usize,
    /// An upgraded tunnel (WebSocket) with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// An upgraded tunnel is closed this long after the upgrade, busy or not.
    pub tunnel_max_lifetime: Duration,
}

/// `[server.tls]`: certificate and key, already loaded.
#[derive(Clone)]
pub struct TlsConfig {
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
    /// The rustls server configuration built from them (ALPN `h2` when
    /// `server.http2` is on, and `http/1.1`).
    pub server_config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `gateway=debug,info`;
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    /// Human-readable or JSON lines.
    pub format: LogFormat,
    /// Emit one `info` line per request (method, path, status, duration).
    pub access: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Multi-field human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[upstream]`: connection behaviour towards every app.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect timeout; exceeded → 504.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head; exceeded → 504.
    pub response_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per upstream and worker thread.
    pub pool_max_idle_per_host: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    listen: String,
    admin_listen: Option<String>,
    tls: Option<RawTls>,
    worker_threads: Option<usize>,
    header_read_timeout: String,
    idle_timeout: String,
    idle_release_after: String,
    max_header_bytes: usize,
    shutdown_grace: String,
    trusted_proxies: Vec<String>,
    trusted_only_headers: Vec<String>,
    underscores_in_headers: bool,
    http2: bool,
    max_connections: usize,
    max_connections_per_ip: usize,
    http2_max_concurrent_streams: u32,
    http2_max_send_buf_size: usize,
    tunnel_idle_timeout: String,
    tunnel_max_lifetime: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            admin_listen: Some("127.0.0.1:9090".into()),
            tls: None,
            worker_threads: None,
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            idle_release_after: "20ms".into(),
            max_header_bytes: 16 * 1024,
            shutdown_grace: "10s".into(),
            trusted_proxies: Vec::new(),
            trusted_only_headers: TRUSTED_ONLY_HEADERS.iter().map(|&h| h.to_owned()).collect(),
            underscores_in_headers: false,
            http2: true,
            max_connections: 10_000,
            max_connections_per_ip: 1024,
            // nginx's default; with the send buffer below, at most 16 MiB of
            // answers held for one client that stops reading.
            http2_max_concurrent_streams: 128,
            http2_max_send_buf_size: 128 * 1024,
            tunnel_idle_timeout: "5m".into(),
            tunnel_max_lifetime: "24h".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    level: String,
    format: LogFormat,
    access: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: LogFormat::Pretty,
            access: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawUpstream {
    connect_timeout: String,
    response_timeout: String,
    pool_idle_timeout: String,
    pool_max_idle_per_host: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: "3s".into(),
            response_timeout: "30s".into(),
            pool_idle_timeout: "90s".into(),
            pool_max_idle_per_host: 64,
        }
    }
}

/// Accepted `server.http2_max_send_buf_size`: from one full-size frame
/// (RFC 9113 §4.2) to 16 MiB.
const H2_SEND_BUF: std::ops::RangeInclusive<usize> = 16 * 1024..=16 * 1024 * 1024;

impl RawServer {
    pub(super) fn validate(self) -> Result<ServerConfig, ConfigError> {
        let listen = socket_addr("server.listen", &self.listen)?;
        let admin_listen = match self.admin_listen.as_deref() {
            None | Some("") => None,
            Some(s) => Some(socket_addr("server.admin_listen", s)?),
        };
        if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
            return Err(invalid(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        let tls = match self.tls {
            None => None,
            Some(t) => Some(TlsConfig {
                server_config: tls::server_config(&t.cert, &t.key, self.http2)?,
                cert: t.cert,
                key: t.key,
            }),
        };
        if self.worker_threads == Some(0) {
            return Err(invalid("server.worker_threads", "must be at least 1"));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err(invalid(
                "server.max_header_bytes",
                format!(
                    "{} is out of range (1024 to 1048576)",
                    self.max_header_bytes
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(invalid(
                "server.http2_max_concurrent_streams",
                "must be at least 1",
            ));
        }
        if !H2_SEND_BUF.contains(&self.http2_max_send_buf_size) {
            return Err(invalid(
                "server.http2_max_send_buf_size",
                format!(
                    "{} is out of range ({} to {})",
                    self.http2_max_send_buf_size,
                    H2_SEND_BUF.start(),
                    H2_SEND_BUF.end()
                ),
            ));
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| ip_net(&format!("server.trusted_proxies[{i}]"), s))
            .collect::<Result<_, _>>()?;
        let trusted_only_headers = self
            .trusted_only_headers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let key = format!("server.trusted_only_headers[{i}]");
                header_name(&key, s)?.ok_or_else(|| invalid(key, "must name a header"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ServerConfig {
            listen,
            admin_listen,
            tls,
            worker_threads: self.worker_threads,
            header_read_timeout: duration("server.header_read_timeout", &self.header_read_timeout)?,
            idle_timeout: duration("server.idle_timeout", &self.idle_timeout)?,
            idle_release_after: duration_or_zero(
                "server.idle_release_after",
                &self.idle_release_after,
            )?,
            max_header_bytes: self.max_header_bytes,
            shutdown_grace: duration_or_zero("server.shutdown_grace", &self.shutdown_grace)?,
            trusted_proxies,
            trusted_only_headers,
            underscores_in_headers: self.underscores_in_headers,
            http2: self.http2,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            http2_max_send_buf_size: self.http2_max_send_buf_size,
            tunnel_idle_timeout: duration("server.tunnel_idle_timeout", &self.tunnel_idle_timeout)?,
            tunnel_max_lifetime: duration("server.tunnel_max_lifetime", &self.tunnel_max_lifetime)?,
        })
    }
}

impl RawLog {
    pub(super) fn validate(self) -> Result<LogConfig, ConfigError> {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            return Err(invalid(
                "log.level",
                format!("{:?} is not a valid filter: {e}", self.level),
            ));
        }
        Ok(LogConfig {
            level: self.level,
            format: self.format,
            access: self.access,
        })
    }
}

impl RawUpstream {
    pub(super) fn validate(self) -> Result<UpstreamConfig, ConfigError> {
        Ok(UpstreamConfig {
            connect_timeout: duration("upstream.connect_timeout", &self.connect_timeout)?,
            response_timeout: duration("upstream.response_timeout", &self.response_timeout)?,
            pool_idle_timeout: duration("upstream.pool_idle_timeout", &self.pool_idle_timeout)?,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
}
