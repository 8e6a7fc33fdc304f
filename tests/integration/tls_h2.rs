//! HTTP/2 (h2c prior knowledge, and ALPN `h2` under TLS) and TLS termination
//! with a certificate generated for the test; bad TLS files stop start-up with
//! a message naming the key.

use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::timeout;

use crate::support::tls::{self, TestCert};
use crate::support::{AppSpec, Client, RecordingUpstream, TestGateway};

const HOST_NAME: &str = "store.example.com";
const STEP: Duration = Duration::from_secs(5);

/// A minimal valid configuration with `tls` (a `[server.tls]` table) added.
fn config_with_tls(tls: &str) -> String {
    format!(
        "{tls}\n[[apps]]\nname = \"store\"\nhosts = [\"{HOST_NAME}\"]\nupstream = \"http://127.0.0.1:3001\"\nauth = false\n"
    )
}

fn config_error(toml: &str) -> String {
    match gateway::Config::from_toml(toml) {
        Ok(_) => panic!("config unexpectedly valid:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

async fn tls_gateway(cert: &TestCert, upstream: &RecordingUpstream) -> TestGateway {
    TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, upstream.addr))
        .section(&cert.server_tls_section())
        .start()
        .await
}

#[tokio::test]
async fn h2c_prior_knowledge_is_forwarded_as_http1() {
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, store.addr))
        .start()
        .await;
    let reply = timeout(STEP, Client::h2c(gw.addr).get(HOST_NAME, "/h2c?q=1"))
        .await
        .expect("h2c reply within 5 s");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "upstream store");
    let seen = store.last();
    assert_eq!(seen.version, Version::HTTP_11, "upstream hop is HTTP/1.1");
    assert_eq!(seen.header("host"), Some(HOST_NAME));
    assert_eq!(
        seen.uri.path_and_query().map(|p| p.as_str()),
        Some("/h2c?q=1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn tls_with_alpn_h2() {
    let cert = TestCert::generate(HOST_NAME);
    let store = RecordingUpstream::start("store").await;
    let gw = tls_gateway(&cert, &store).await;

    let stream = tls::connect(gw.addr, HOST_NAME, &cert.cert_der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the gateway picks h2 when offered"
    );
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake over TLS");
    tokio::spawn(conn);
    let request = Request::get(format!("https://{HOST_NAME}/x"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = timeout(STEP, sender.send_request(request))
        .await
        .expect("response within 5 s")
        .expect("h2 response from the gateway");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("body within 5 s")
        .expect("body")
        .to_bytes();
    assert_eq!(body, "upstream store");

    let seen = store.last();
    assert_eq!(seen.version, Version::HTTP_11, "upstream hop is HTTP/1.1");
    assert_eq!(seen.uri.path(), "/x");
    assert_eq!(seen.header("host"), Some(HOST_NAME));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-host"), Some(HOST_NAME));
}

#[tokio::test]
async fn tls_with_alpn_http1() {
    let cert = TestCert::generate(HOST_NAME);
    let store = RecordingUpstream::start("store").await;
    let gw = tls_gateway(&cert, &store).await;

    let stream = tls::connect(gw.addr, HOST_NAME, &cert.cert_der, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http1 handshake over TLS");
    tokio::spawn(conn);
    let request = Request::get("/y")
        .header(HOST, HOST_NAME)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = timeout(STEP, sender.send_request(request))
        .await
        .expect("response within 5 s")
        .expect("http1 response from the gateway");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_11);
    let body = timeout(STEP, response.into_body().collect())
        .await
        .expect("body within 5 s")
        .expect("body")
        .to_bytes();
    assert_eq!(body, "upstream store");

    let seen = store.last();
    assert_eq!(seen.uri.path(), "/y");
    assert_eq!(seen.header("host"), Some(HOST_NAME));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
}

#[tokio::test]
async fn tls_with_http2_off_negotiates_http1() {
    let cert = TestCert::generate(HOST_NAME);
    let store = RecordingUpstream::start("store").await;
    let gw = TestGateway::new()
        .app(AppSpec::new("store", HOST_NAME, store.addr))
        .server("http2 = false")
        .section(&cert.server_tls_section())
        .start()
        .await;
    let stream = tls::connect(gw.addr, HOST_NAME, &cert.cert_der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "h2 is not offered when server.http2 = false"
    );
}

#[tokio::test]
async fn tls_client_that_does_not_trust_the_certificate_is_refused() {
    let cert = TestCert::generate(HOST_NAME);
    let other = TestCert::generate(HOST_NAME);
    let store = RecordingUpstream::start("store").await;
    let gw = tls_gateway(&cert, &store).await;

    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls::client_config(
        &other.cert_der,
        &[b"h2"],
    )));
    let tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from(HOST_NAME).expect("name");
    let result = timeout(STEP, connector.connect(name.to_owned(), tcp))
        .await
        .expect("handshake finishes within 5 s");
    assert!(
        result.is_err(),
        "the handshake must fail against an untrusted certificate"
    );
    assert!(store.requests().is_empty());
}

#[test]
fn missing_tls_cert_file_is_named() {
    let cert = TestCert::generate(HOST_NAME);
    let missing = cert.dir.path().join("does-not-exist.pem");
    let e = config_error(&config_with_tls(&tls::tls_section(
        &missing,
        &cert.key_path,
    )));
    assert!(e.contains("server.tls.cert"), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");
}

#[test]
fn missing_tls_key_file_is_named() {
    let cert = TestCert::generate(HOST_NAME);
    let missing = cert.dir.path().join("no-key.pem");
    let e = config_error(&config_with_tls(&tls::tls_section(
        &cert.cert_path,
        &missing,
    )));
    assert!(e.contains("server.tls.key"), "{e}");
    assert!(e.contains(&missing.display().to_string()), "{e}");
}

#[test]
fn tls_key_that_does_not_match_the_cert_is_named() {
    let one = TestCert::generate(HOST_NAME);
    let two = TestCert::generate(HOST_NAME);
    let e = config_error(&config_with_tls(&tls::tls_section(
        &one.cert_path,
        &two.key_path,
    )));
    assert!(e.contains("server.tls.key"), "{e}");
    assert!(e.contains(&two.key_path.display().to_string()), "{e}");
    assert!(
        !e.contains("server.tls.cert"),
        "the certificate is fine: {e}"
    );
}

#[test]
fn tls_cert_file_without_a_certificate_is_named() {
    let cert = TestCert::generate(HOST_NAME);
    // A key file where the certificate should be.
    let e = config_error(&config_with_tls(&tls::tls_section(
        &cert.key_path,
        &cert.key_path,
    )));
    assert!(e.contains("server.tls.cert"), "{e}");
    assert!(e.contains(&cert.key_path.display().to_string()), "{e}");
}

#[test]
fn valid_tls_files_load() {
    let cert = TestCert::generate(HOST_NAME);
    let config = gateway::Config::from_toml(&config_with_tls(&cert.server_tls_section()))
        .expect("valid TLS config");
    let tls = config.server.tls.expect("TLS configured");
    assert_eq!(tls.cert, cert.cert_path);
    assert_eq!(
        tls.server_config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}
