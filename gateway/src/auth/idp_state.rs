//! An IdP as the gateway uses it: its HTTP client and its signing keys.
//!
//! Endpoints come from the config or from OIDC discovery, keys from the JWKS
//! (fetched at start-up in the background, and again when a token names a
//! key id not seen yet, so key rotation at the IdP needs no restart: at most
//! once per `jwks_refetch_interval` for tokens clients present, whenever
//! needed for tokens the IdP has just issued). Shared by every app with the
//! same IdP settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_util::sync::CancellationToken;

use super::idp::{self, Endpoints, Idp};
use super::verify::Keys;
use crate::config::{IdpSettings, Kind};
use crate::ops::metrics;

/// An IdP as the gateway uses it: client and keys.
pub struct IdpState {
    settings: IdpSettings,
    client: ArcSwapOption<Idp>,
    keys: ArcSwap<Keys>,
    /// Keys (and endpoints) loaded: `/readyz` waits for this.
    ready: AtomicBool,
    /// When a token's unknown `kid` last caused a JWKS fetch.
    refetched: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for IdpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpState")
            .field("issuer", &self.settings.issuer)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether tokens may be signed with published keys: with HMAC algorithms
/// only, a JWKS (even one that discovery names) is never fetched. Glewlwyd in
/// HS256 mode answers 403 there.
fn needs_jwks(settings: &IdpSettings) -> bool {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    settings
        .algorithms
        .iter()
        .any(|a| !matches!(a, HS256 | HS384 | HS512))
}

fn hmac_keys(settings: &IdpSettings) -> Keys {
    Keys::new(
        None,
        settings.hmac_secret.as_ref().map(|s| s.expose().as_bytes()),
    )
}

impl IdpState {
    /// The state for `settings`; nothing is fetched until [`IdpState::load`].
    pub fn new(settings: IdpSettings) -> IdpState {
        let client = (!settings.discovery)
            .then(|| settings.token_endpoint.clone())
            .flatten()
            .and_then(|token| {
                build_client(
                    &settings,
                    idp::Discovered {
                        token_endpoint: token,
                        jwks_uri: settings.jwks_uri.clone(),
                        revocation_endpoint: settings.revocation_endpoint.clone(),
                    },
                )
            });
        let ready = client.is_some() && !needs_jwks(&settings);
        IdpState {
            keys: ArcSwap::from_pointee(hmac_keys(&settings)),
            client: ArcSwapOption::new(client.map(Arc::new)),
            ready: AtomicBool::new(ready),
            refetched: tokio::sync::Mutex::new(None),
            settings,
        }
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &IdpSettings {
        &self.settings
    }

    /// Endpoints known and keys loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The signing keys loaded now.
    pub fn keys(&self) -> Arc<Keys> {
        self.keys.load_full()
    }

    /// The IdP client, once its endpoints are known.
    pub fn client(&self) -> Option<Arc<Idp>> {
        self.client.load_full()
    }

    /// Discovers endpoints (if configured) and loads the JWKS, retrying
    /// with backoff until both are done or `stop` fires.
    pub async fn load(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let wait = |backoff: &mut Duration| {
            let d = *backoff;
            *backoff = (*backoff * 2).min(Duration::from_secs(10));
            d
        };
        while self.client.load().is_none() {
            let Some(issuer) = self.settings.issuer.as_deref() else {
                return;
            };
            match idp::discover(issuer, self.settings.timeout).await {
                Ok(found) => {
                    let found = idp::Discovered {
                        token_endpoint: self
                            .settings
                            .token_endpoint
                            .clone()
                            .unwrap_or(found.token_endpoint),
                        jwks_uri: self.settings.jwks_uri.clone().or(found.jwks_uri),
                        revocation_endpoint: self
                            .settings
                            .revocation_endpoint
                            .clone()
                            .or(found.revocation_endpoint),
                    };
                    match build_client(&self.settings, found) {
                        Some(client) => self.client.store(Some(Arc::new(client))),
                        None => return,
                    }
                    tracing::info!(issuer, "IdP endpoints discovered");
                }
                Err(e) => {
                    tracing::warn!(issuer, error = %e, "OIDC discovery failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait(&mut backoff)) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
        let Some(client) = self.client() else { return };
        if client.endpoints().jwks.is_none() || !needs_jwks(&self.settings) {
            self.ready.store(true, Ordering::Release);
            return;
        }
        loop {
            match self.fetch(&client, "startup").await {
                Ok(()) => {
                    self.ready.store(true, Ordering::Release);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS fetch failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait(&mut backoff)) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn fetch(&self, client: &Idp, reason: &'static str) -> Result<(), idp::IdpError> {
        let result = client.fetch_jwks().await;
        metrics::jwks_fetch(reason, result.is_ok());
        let set = result?;
        let secret = self.settings.hmac_secret.as_ref();
        let keys = Keys::new(Some(&set), secret.map(|s| s.expose().as_bytes()));
        tracing::info!(keys = ?keys, reason, "JWKS loaded");
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// A token named `kid`, which the current keys lack: fetch the JWKS
    /// again. Concurrent callers share one fetch (a fetch that started after
    /// the caller asked is as fresh as its own would be). A token a client
    /// presented ([`KidSource::Client`]) causes a fetch only if the last one
    /// was at least the configured interval ago, so random key ids cannot
    /// hammer the IdP; a token the IdP has just issued
    /// ([`KidSource::Issued`]) always may, so that such a flood cannot use
    /// up the budget a real rotation needs. True if `kid` is now known.
    pub async fn refetch_for(&self, kid: &str, source: KidSource) -> bool {
        let asked = Instant::now();
        let mut last = self.refetched.lock().await;
        if self.keys.load().has_kid(kid) {
            return true;
        }
        if last.is_some_and(|at| at >= asked) {
            return false;
        }
        if source == KidSource::Client
            && last.is_some_and(|at| at.elapsed() < self.settings.jwks_refetch_interval)
        {
            return false;
        }
        let Some(client) = self.client() else {
            return false;
        };
        *last = Some(Instant::now());
        let reason = match source {
            KidSource::Client => "unknown_kid",
            KidSource::Issued => "issued_kid",
        };
        match self.fetch(&client, reason).await {
            Ok(()) => {
                self.ready.store(true, Ordering::Release);
                self.keys.load().has_kid(kid)
            }
            Err(e) => {
                tracing::warn!(error = %e, kid, "JWKS refetch failed");
                false
            }
        }
    }
}

impl IdpState {
    /// Fetches the JWKS again now (the IdP says its keys changed); shares a
    /// fetch under way like [`IdpState::refetch_for`].
    pub async fn refetch(&self) -> bool {
        let asked = Instant::now();
        let mut last = self.refetched.lock().await;
        if last.is_some_and(|at| at >= asked) {
            return true;
        }
        let Some(client) = self.client() else {
            return false;
        };
        *last = Some(Instant::now());
        match self.fetch(&client, "event").await {
            Ok(()) => {
                self.ready.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refetch failed");
                false
            }
        }
    }
}

/// Where a token with an unknown key id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KidSource {
    /// A client presented it (a cookie): refetches are rate-limited.
    Client,
    /// The IdP has just issued it (password grant, refresh): a refetch is
    /// always allowed, since only a real grant at the IdP produces one.
    Issued,
}

fn build_client(settings: &IdpSettings, found: idp::Discovered) -> Option<Idp> {
    let jwt_refresh = match settings.kind {
        Kind::Fusionauth => {
            let base = settings
                .api_url
                .clone()
                .unwrap_or_else(|| found.token_endpoint.clone());
            base.join("/api/jwt/refresh").ok()
        }
        Kind::Oauth2 => None,
    };
    let endpoints = Endpoints {
        kind: settings.kind,
        token: found.token_endpoint,
        jwt_refresh,
        revocation: found.revocation_endpoint,
        jwks: found.jwks_uri,
        api_key: settings.api_key.clone(),
        scope: settings.scope.clone(),
    };
    match Idp::new(endpoints, settings.timeout) {
        Ok(idp) => Some(idp),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the IdP client");
            None
        }
    }
}
