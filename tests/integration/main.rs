//! Integration tests: the real gateway on 127.0.0.1:0 in front of recording
//! upstreams, driven over real sockets.

mod support;

mod auth_admin;
mod cli;
mod compose;
mod forward_auth;
mod forward_auth_caddy;
mod forward_auth_envoy;
mod forward_auth_traefik;
mod forwarding;
mod glewlwyd;
mod hostile;
mod identity;
mod idp_client;
mod idp_redirects;
mod layout;
mod limits;
mod live_sessions;
mod login;
mod login_throttle;
mod logout;
mod parking;
mod pooling;
mod properties;
mod refresh;
mod revocation;
mod routing;
mod session;
mod shutdown;
mod slow_forms;
mod store_redis;
mod streaming;
mod timeouts;
mod tls_h2;
mod tokens;
mod tunnels;
mod upstream_errors;
mod websocket;
