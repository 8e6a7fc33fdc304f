//! A small HTTP client for tests: no redirects, no cookie magic, explicit
//! `Host`, HTTP/1.1 or h2c prior knowledge.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// HTTP/1.1 (pooled) or h2c client against one gateway address.
pub struct Client {
    addr: SocketAddr,
    /// `None`: h2c prior knowledge, one connection per request.
    pool: Option<hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Client {
            addr,
            pool: Some(pool),
        }
    }

    /// h2c with prior knowledge; the host goes in `:authority`.
    pub fn h2c(addr: SocketAddr) -> Client {
        Client { addr, pool: None }
    }

    pub async fn get(&self, host: &str, path: &str) -> Reply {
        self.send(Method::GET, host, path, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, host, path, headers, Bytes::new())
            .await
    }

    pub async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let uri = match self.pool {
            Some(_) => format!("http://{}{}", self.addr, path),
            None => format!("http://{host}{path}"),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body.into()))
            .expect("request");
        let h = req.headers_mut();
        if self.pool.is_some() {
            h.insert(
                http::header::HOST,
                HeaderValue::from_str(host).expect("host"),
            );
        }
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let response = match &self.pool {
            Some(pool) => pool.request(req).await.expect("request to the gateway"),
            None => {
                let tcp = tokio::net::TcpStream::connect(self.addr)
                    .await
                    .expect("connect");
                let (mut sender, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    hyper_util::rt::TokioIo::new(tcp),
                )
                .await
                .expect("h2 handshake");
                tokio::spawn(conn);
                sender
                    .send_request(req)
                    .await
                    .expect("h2 request to the gateway")
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// Reads from a raw connection until the bytes end with `upstream store`
/// (the default recording upstream's body): one or more whole responses.
/// Panics if the connection closes first or nothing arrives within 5 s.
pub async fn read_store_response(tcp: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while !all.ends_with(b"upstream store") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&all)
        );
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}
