//! Forward-auth behind Envoy (`ext_authz`, examples/forward-auth/envoy.yaml).
