//! The shipped Traefik dynamic config (examples/forward-auth/traefik.toml), parsed:
//! Traefik has no Debian package here, so it is checked, not run.
