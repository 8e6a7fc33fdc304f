//! TLS termination: PEM certificate chain and private key → rustls server config.
//!
//! Input: the two file paths from `[server.tls]`. Output: an
//! `Arc<rustls::ServerConfig>` offering ALPN `h2` (when HTTP/2 is on) and `http/1.1`.
//! Failure: a config error naming `server.tls.cert` or `server.tls.key` and
//! what is wrong (missing file, no certificate in it, key does not match).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::ConfigError;

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message,
    }
}

/// Loads `cert` and `key` and builds the server configuration; ALPN offers
/// `h2` only when `http2` is on.
pub fn server_config(
    cert: &Path,
    key: &Path,
    http2: bool,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let read = |k: &str, path: &Path| {
        std::fs::read(path).map_err(|e| invalid(k, format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read("server.tls.cert", cert)?;
    let key_pem = read("server.tls.key", key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            invalid(
                "server.tls.cert",
                format!("{}: bad PEM: {e}", cert.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(invalid(
            "server.tls.cert",
            format!("{}: no CERTIFICATE block found", cert.display()),
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            "server.tls.key",
            format!("{}: no usable private key: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("server.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            invalid(
                "server.tls.key",
                format!("{} does not match the certificate: {e}", key.display()),
            )
        })?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}
