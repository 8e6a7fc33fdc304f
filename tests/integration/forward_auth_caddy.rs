//! Forward-auth behind Caddy (`forward_auth`, examples/forward-auth/Caddyfile).
