//! TLS helpers: a self-signed certificate written to a temporary directory,
//! the `[server.tls]` section that points at it, and a client connector that
//! trusts it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate and its key as PEM files in a temporary directory
/// (removed on drop).
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_der: CertificateDer<'static>,
}

impl TestCert {
    /// A certificate for `host`, generated with `rcgen`.
    pub fn generate(host: &str) -> TestCert {
        let certified = rcgen::generate_simple_self_signed(vec![host.to_owned()])
            .expect("generate certificate");
        let dir = tempfile::TempDir::new().expect("temp dir");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
        std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
        TestCert {
            dir,
            cert_path,
            key_path,
            cert_der: certified.cert.der().clone(),
        }
    }

    /// The `[server.tls]` table for this certificate, as TOML.
    pub fn server_tls_section(&self) -> String {
        tls_section(&self.cert_path, &self.key_path)
    }
}

/// A `[server.tls]` table naming `cert` and `key`.
pub fn tls_section(cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "[server.tls]\ncert = {}\nkey = {}\n",
        toml_string(&cert.display().to_string()),
        toml_string(&key.display().to_string())
    )
}

/// A TOML basic string (paths of temporary directories need no more than this).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A rustls client configuration (aws-lc-rs) trusting only `root`, offering `alpn`.
pub fn client_config(root: &CertificateDer<'static>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("add test root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Connects to `addr` over TLS with SNI `server_name`, trusting `root` and
/// offering `alpn`; the handshake is bounded by 5 s.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    root: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let connector = TlsConnector::from(Arc::new(client_config(root, alpn)));
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the gateway");
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("TLS handshake within 5 s")
        .expect("TLS handshake")
}
