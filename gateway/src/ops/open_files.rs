//! The open-files limit (`RLIMIT_NOFILE`): every client connection is a file
//! descriptor, and each proxied one may hold an upstream socket too.
//!
//! [`raise`] lifts the soft limit to the hard limit, as Go's runtime does at
//! start-up: the usual soft limit of 1024 would cap the gateway far below
//! `server.max_connections`, while the hard limit is what the administrator
//! granted (`ulimit -Hn`, systemd's `LimitNOFILE=`, the container runtime's
//! `--ulimit`). The binary calls it before its runtime starts. [`check`]
//! exports the limit in effect as `gateway_open_files_limit` and warns when the
//! connection caps do not fit in it.

use rlimit::Resource;

use super::metrics;
use crate::config::ServerConfig;

/// Descriptors counted for everything but client connections and their
/// upstream sockets: the listeners, admin connections, the IdP client, idle
/// pooled upstream connections, the runtimes' own.
pub const RESERVED: u64 = 128;

/// Raises the soft open-files limit to the hard limit and logs the result.
pub fn raise() {
    let before = match rlimit::getrlimit(Resource::NOFILE) {
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "open files limit unknown");
            return;
        }
    };
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit > before => {
            tracing::info!(limit, raised_from = before, "open files limit")
        }
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(
            limit = before,
            error = %e,
            "open files limit could not be raised to the hard limit"
        ),
    }
}

/// Descriptors `server`'s caps may need: a client socket and an upstream
/// socket per connection, plus [`RESERVED`].
pub fn needed(server: &ServerConfig) -> u64 {
    (server.max_connections as u64)
        .saturating_mul(2)
        .saturating_add(RESERVED)
}

/// Exports the soft limit in effect and warns when `server.max_connections`
/// does not fit in it.
pub fn check(server: &ServerConfig) {
    let Ok((limit, _)) = rlimit::getrlimit(Resource::NOFILE) else {
        return;
    };
    metrics::open_files_limit(limit);
    let needed = needed(server);
    if needed > limit {
        tracing::warn!(
            limit,
            needed,
            max_connections = server.max_connections,
            "server.max_connections does not fit in the open files limit (each \
             connection may hold an upstream socket too): raise the hard limit \
             (ulimit -Hn, LimitNOFILE=) or lower server.max_connections; past \
             the limit, accepting fails"
        );
    }
}
