//! Integration tests: the real gateway on 127.0.0.1:0 in front of recording
//! upstreams, driven over real sockets.

mod support;

mod cli;
mod forwarding;
mod idp_client;
mod parking;
mod pooling;
mod routing;
mod shutdown;
mod streaming;
mod timeouts;
mod tls_h2;
mod upstream_errors;
mod websocket;
