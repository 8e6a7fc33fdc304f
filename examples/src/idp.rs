//! A development identity provider ("dev IdP"). **For development, demos and
//! tests only: never use it in production.** It keeps every session in
//! memory, generates a new signing key at each start (restarting it logs
//! everyone out), reads its users and client secrets from a plain TOML file
//! and has no rate limiting, lockout, auditing or administration.
//!
//! It speaks [FusionAuth]'s API as far as the gateway uses it, so the gateway
//! can be tried without installing FusionAuth:
//!
//! | Endpoint | What it does |
//! |---|---|
//! | `POST /oauth2/token` | `grant_type=password` (RFC 6749 §4.3) and `grant_type=refresh_token` (§6); client authentication by HTTP Basic or `client_id`/`client_secret` in the form |
//! | `POST /api/jwt/refresh` | FusionAuth's JWT refresh: JSON `{"refreshToken", "token"}` → `{"token", "refreshToken", "refreshTokenId"}` |
//! | `DELETE /api/jwt/refresh` | FusionAuth's revocation, with the API key in `Authorization`: `?token=…` (or a form body `token=…`), `?userId=…`, `?applicationId=…`, or `/api/jwt/refresh/{refreshTokenId}` |
//! | `POST /oauth2/revoke` | RFC 7009 revocation (client authentication, form `token`); always 200 |
//! | `POST /oauth2/introspect` | RFC 7662 introspection of access and refresh tokens |
//! | `GET /.well-known/openid-configuration` | discovery: issuer and endpoint URLs |
//! | `GET /.well-known/jwks.json` | the RSA public key (RS256) |
//!
//! Access tokens are RS256 JWTs with FusionAuth's claims (`iss`, `aud` and
//! `applicationId` = the client id, `sub` = the user id, `sid` = the refresh
//! token id, `roles`, `email`, `preferred_username`, `authenticationType`,
//! …). Refresh tokens are opaque random strings; with one-time-use rotation
//! on (the default) each refresh returns a new one, and presenting a used
//! one again (a replay: someone else holds a copy) revokes the whole session.
//!
//! With a [`Webhook`] configured, every revocation of refresh tokens (the
//! RFC 7009 endpoint, as at a gateway logout, and `DELETE /api/jwt/refresh`
//! for a token, a session, a user or an application) is posted there as
//! FusionAuth's signed `jwt.refresh-token.revoke` event, so that a gateway
//! with `[events]` refuses the revoked sessions' JWTs at once. A user's
//! tokens are revoked with the API key:
//! `curl -X DELETE -H 'Authorization: dev-api-key-change-me'
//! 'http://127.0.0.1:9011/api/jwt/refresh?userId=<id>'`.
//!
//! Users and clients come from a TOML file (see [`Directory`]);
//! `examples/users.toml` holds the demo ones, whose password is
//! [`DEMO_PASSWORD`]. Passwords are stored as argon2id hashes; the `idp`
//! binary's `hash-password` command makes new ones.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use gateway_examples::idp::{self, DevIdpConfig, Directory};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9011").await?;
//! let config = DevIdpConfig::new(Directory::demo()?);
//! idp::serve(listener, config, std::future::pending()).await
//! # }
//! ```
//!
//! [FusionAuth]: https://fusionauth.io/docs/lifecycle/authenticate-users/oauth/endpoints

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, PRAGMA, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The issuer (and base URL) used when none is configured.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:9011";
/// The address the `idp` binary and the demo listen on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9011";
/// The API key accepted by `DELETE /api/jwt/refresh` when none is configured.
pub const DEFAULT_API_KEY: &str = "dev-api-key-change-me";
/// The password of every user in the demo users file (`examples/users.toml`).
pub const DEMO_PASSWORD: &str = "password";
/// The demo users file, compiled in (see [`Directory::demo`]).
const DEMO_USERS: &str = include_str!("../users.toml");
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// How the dev IdP behaves.
#[derive(Debug, Clone)]
pub struct DevIdpConfig {
    /// The `iss` claim and the base of every URL in the discovery document,
    /// e.g. `http://127.0.0.1:9011` (a trailing `/` is ignored).
    pub issuer: String,
    /// Users and clients.
    pub users: Directory,
    /// Lifetime of access tokens (`exp` − `iat`, `expires_in`).
    pub access_ttl: Duration,
    /// Lifetime of a session's refresh token, counted from the password
    /// grant (FusionAuth's "Fixed" expiration: refreshing does not extend it).
    pub refresh_ttl: Duration,
    /// One-time-use refresh tokens: every refresh returns a new refresh
    /// token and the old one dies; reusing a dead one revokes the session.
    pub rotate_refresh: bool,
    /// The API key `DELETE /api/jwt/refresh` requires in `Authorization`.
    pub api_key: String,
    /// Where to send FusionAuth-style `jwt.refresh-token.revoke` webhooks
    /// when refresh tokens are revoked, if anywhere.
    pub webhook: Option<Webhook>,
}

/// A webhook receiver, such as the gateway's `events.webhook_path` on its
/// admin listener: every revocation of refresh tokens is posted there as a
/// FusionAuth `jwt.refresh-token.revoke` event, signed like FusionAuth
/// signs webhooks (an `X-FusionAuth-Signature-JWT` header: HS256 with
/// `signing_secret` over `{"request_body_sha256": base64(SHA-256(body))}`).
/// Fire and forget: one attempt, [`WEBHOOK_TIMEOUT`] at most, failures
/// logged.
#[derive(Clone)]
pub struct Webhook {
    /// The URL posted to, e.g. `http://127.0.0.1:9090/events/fusionauth`.
    pub url: String,
    /// The HMAC key of the signature (the gateway's
    /// `events.webhook_signing_secret`).
    pub signing_secret: String,
    /// Also sent as `Authorization: Bearer …`, if set (the gateway's
    /// `events.webhook_secret`).
    pub bearer: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("signing_secret", &"***")
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The longest a webhook delivery may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);

impl DevIdpConfig {
    /// The defaults for `users`: issuer [`DEFAULT_ISSUER`], access tokens
    /// for 60 s (short, so refreshes show in the demo), refresh tokens for
    /// 8 h, rotation on, API key [`DEFAULT_API_KEY`].
    pub fn new(users: Directory) -> DevIdpConfig {
        DevIdpConfig {
            issuer: DEFAULT_ISSUER.to_owned(),
            users,
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(8 * 60 * 60),
            rotate_refresh: true,
            api_key: DEFAULT_API_KEY.to_owned(),
            webhook: None,
        }
    }
}

/// One user who can log in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name (FusionAuth logs in by e-mail address or username;
    /// either is accepted, case-insensitively).
    pub username: String,
    /// The user id: the `sub` claim and the `userId` in responses.
    pub id: String,
    /// The argon2id hash of the password, in PHC format
    /// (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub password: String,
    /// E-mail address (`email` claim).
    #[serde(default)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Roles (`roles` claim), the same in every application.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One OAuth client (a FusionAuth application): one per gateway app.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// The client id: the tokens' `aud` and `applicationId`.
    pub id: String,
    /// The client secret.
    pub secret: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

/// The users and clients the dev IdP knows, read from TOML:
///
/// ```toml
/// [[users]]
/// username = "richard@example.com"
/// id = "00000000-0000-0000-0000-000000000001"
/// password = "$argon2id$v=19$m=19456,t=2,p=1$…"
/// email = "richard@example.com"
/// name = "Richard Hendricks"
/// roles = ["customer"]
///
/// [[clients]]
/// id = "store"
/// secret = "store-secret"
/// ```
///
/// Without `[[clients]]` the clients are `store`/`store-secret` and
/// `forums`/`forums-secret`.
#[derive(Debug, Clone)]
pub struct Directory {
    users: Vec<User>,
    clients: Vec<Client>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    users: Vec<User>,
    clients: Option<Vec<Client>>,
}

impl Directory {
    /// Checks and wraps users and clients: ids and login names must be
    /// unique, password hashes must parse, client ids and secrets non-empty.
    pub fn new(users: Vec<User>, clients: Vec<Client>) -> io::Result<Directory> {
        let mut ids = HashSet::new();
        let mut logins = HashSet::new();
        for user in &users {
            if user.id.is_empty() || !ids.insert(user.id.as_str()) {
                return Err(invalid(format!(
                    "user id {:?} is empty or repeated",
                    user.id
                )));
            }
            let mut names = vec![user.username.to_lowercase()];
            if let Some(email) = &user.email {
                if !email.eq_ignore_ascii_case(&user.username) {
                    names.push(email.to_lowercase());
                }
            }
            for name in names {
                if name.is_empty() || !logins.insert(name.clone()) {
                    return Err(invalid(format!("login {name:?} is empty or repeated")));
                }
            }
            PasswordHash::new(&user.password).map_err(|e| {
                invalid(format!(
                    "user {:?}: password is not a PHC hash ({e}); make one with \
                     `cargo run -p gateway-examples --bin idp -- hash-password`",
                    user.username
                ))
            })?;
        }
        let mut client_ids = HashSet::new();
        for client in &clients {
            if client.id.is_empty() || client.secret.is_empty() {
                return Err(invalid("a client has an empty id or secret".to_owned()));
            }
            if !client_ids.insert(client.id.as_str()) {
                return Err(invalid(format!("client id {:?} is repeated", client.id)));
            }
        }
        Ok(Directory { users, clients })
    }

    /// Parses the TOML text of a users file.
    pub fn parse(text: &str) -> io::Result<Directory> {
        let file: DirectoryFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let clients = file.clients.unwrap_or_else(|| {
            ["store", "forums"]
                .into_iter()
                .map(|id| Client {
                    id: id.to_owned(),
                    secret: format!("{id}-secret"),
                })
                .collect()
        });
        Directory::new(file.users, clients)
    }

    /// Reads a users file.
    pub fn load(path: &Path) -> io::Result<Directory> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Directory::parse(&text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// The demo users and clients (`examples/users.toml`, compiled in):
    /// `richard@example.com` (roles `customer`) and `monica@example.com`
    /// (`customer`, `admin`), both with password [`DEMO_PASSWORD`]; clients
    /// `store`/`store-secret` and `forums`/`forums-secret`.
    pub fn demo() -> io::Result<Directory> {
        Directory::parse(DEMO_USERS)
    }

    /// The users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The clients.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The user logging in as `login` (username or e-mail, any case).
    fn find_login(&self, login: &str) -> Option<&User> {
        self.users.iter().find(|user| {
            user.username.eq_ignore_ascii_case(login)
                || user
                    .email
                    .as_deref()
                    .is_some_and(|email| email.eq_ignore_ascii_case(login))
        })
    }

    fn find_id(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|user| user.id == id)
    }

    /// The client with this id and secret (secret compared in constant time).
    fn authenticate(&self, id: &str, secret: &str) -> Option<&Client> {
        let client = self.clients.iter().find(|client| client.id == id)?;
        constant_time_eq(client.secret.as_bytes(), secret.as_bytes()).then_some(client)
    }
}

/// Hashes `password` with argon2id (m=19456 KiB, t=2, p=1) and a random
/// salt, in PHC format, for the `password` field of a users file.
pub fn hash_password(password: &str) -> io::Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Whether `password` matches the PHC `hash`.
fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io::Error::other("no randomness"))?;
    Ok(bytes)
}

/// A random UUID (version 4), for ids.
fn random_uuid() -> io::Result<String> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A new opaque refresh token: 32 random bytes, base64url.
fn random_token() -> io::Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// What the session store keys tokens by: their SHA-256, so the map never
/// holds a usable token.
type TokenKey = [u8; 32];

fn token_key(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The RSA signing key and its public JWK.
struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl Signer {
    /// A fresh 2048-bit RSA key; `kid` is its RFC 7638 thumbprint.
    fn generate() -> io::Result<Signer> {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::rsa::{KeyPair, KeySize};

        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| io::Error::other("cannot generate an RSA key"))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| io::Error::other("cannot export the RSA key"))?;
        let pkcs1 = pkcs8_inner_key(pkcs8.as_ref())
            .ok_or_else(|| io::Error::other("unexpected PKCS#8 layout"))?;
        let encoding = EncodingKey::from_rsa_der(pkcs1);
        let mut jwk =
            Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(io::Error::other)?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(io::Error::other)?;
        jwk.common.key_id = Some(kid);
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(io::Error::other)?;
        Ok(Signer {
            encoding,
            decoding,
            jwk,
        })
    }

    fn kid(&self) -> &str {
        self.jwk.common.key_id.as_deref().unwrap_or_default()
    }

    fn sign(&self, claims: &Value) -> Result<String, Failure> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| Failure::Internal(format!("cannot sign: {e}")))
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208):
/// for RSA, the PKCS#1 `RSAPrivateKey` that `EncodingKey::from_rsa_der` takes.
fn pkcs8_inner_key(der: &[u8]) -> Option<&[u8]> {
    let (0x30, info, _) = der_tlv(der)? else {
        return None;
    };
    let (0x02, _version, rest) = der_tlv(info)? else {
        return None;
    };
    let (0x30, _algorithm, rest) = der_tlv(rest)? else {
        return None;
    };
    let (0x04, key, _) = der_tlv(rest)? else {
        return None;
    };
    Some(key)
}

/// One DER tag-length-value: `(tag, value, rest)`.
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, rest)
    };
    let (value, rest) = rest.split_at_checked(len)?;
    Some((tag, value, rest))
}

/// One login's refresh token, across rotations (FusionAuth: one refresh
/// token record whose value changes under one-time use).
struct Session {
    /// The refresh token id: the `sid` claim, `refresh_token_id`.
    id: String,
    user_id: String,
    client_id: String,
    scope: String,
    /// When the user typed the password (`auth_time`).
    auth_time: u64,
    expires_at: u64,
    revoked: bool,
}

/// A refresh token value.
struct TokenRecord {
    session: String,
    /// Already exchanged (one-time use): presenting it again is a replay.
    used: bool,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Session>,
    by_token: HashMap<TokenKey, TokenRecord>,
}

impl Sessions {
    /// Forgets sessions past their expiry, and their tokens.
    fn prune(&mut self, now: u64) {
        self.by_id.retain(|_, session| session.expires_at > now);
        let by_id = &self.by_id;
        self.by_token
            .retain(|_, record| by_id.contains_key(&record.session));
    }

    fn session_of(&self, token: &str) -> Option<&Session> {
        let record = self.by_token.get(&token_key(token))?;
        self.by_id.get(&record.session)
    }
}

/// Why a request failed, before it becomes a response.
enum Failure {
    /// A 4xx (or other) response, ready to send.
    Response(Box<Response<Body>>),
    /// A 500 with this log message.
    Internal(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Internal(e.to_string())
    }
}

type Body = Full<Bytes>;

/// The running IdP: configuration, key and sessions.
struct Idp {
    issuer: String,
    users: Directory,
    access_ttl: u64,
    refresh_ttl: u64,
    rotate: bool,
    api_key: String,
    signer: Signer,
    /// A hash checked for unknown logins, so that the time taken does not
    /// tell whether a user exists.
    dummy_hash: String,
    sessions: Mutex<Sessions>,
    /// The webhook receiver and the client that posts to it.
    webhook: Option<(Webhook, reqwest::Client)>,
}

/// What an access token is issued for.
struct Grant<'a> {
    client_id: &'a str,
    scope: &'a str,
    /// The session (refresh token id), when a refresh token goes with it.
    sid: Option<&'a str>,
    now: u64,
    /// When the user typed the password.
    auth_time: u64,
    /// FusionAuth's `authenticationType`: `PASSWORD` or `REFRESH_TOKEN`.
    authentication_type: &'a str,
}

/// What a successful grant produced.
struct Issued {
    access_token: String,
    user_id: String,
    scope: String,
    /// The current refresh token and its id (the session id).
    refresh: Option<(String, String)>,
}

impl Idp {
    fn new(config: DevIdpConfig) -> io::Result<Idp> {
        let dummy_hash = hash_password(&random_token()?)?;
        Ok(Idp {
            issuer: config.issuer.trim_end_matches('/').to_owned(),
            users: config.users,
            access_ttl: config.access_ttl.as_secs(),
            refresh_ttl: config.refresh_ttl.as_secs(),
            rotate: config.rotate_refresh,
            api_key: config.api_key,
            signer: Signer::generate()?,
            dummy_hash,
            sessions: Mutex::new(Sessions::default()),
            webhook: match config.webhook {
                Some(webhook) => {
                    let client = reqwest::Client::builder()
                        .timeout(WEBHOOK_TIMEOUT)
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(io::Error::other)?;
                    Some((webhook, client))
                }
                None => None,
            },
        })
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        // A panic while holding the lock leaves consistent maps behind.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn route(&self, parts: &Parts, body: Bytes) -> Response<Body> {
        let path = parts.uri.path();
        let method = &parts.method;
        let result = match path {
            "/" if method == Method::GET => Ok(self.home()),
            "/.well-known/openid-configuration" if method == Method::GET => Ok(self.discovery()),
            "/.well-known/jwks.json" if method == Method::GET => Ok(self.jwks()),
            "/oauth2/token" if method == Method::POST => self.token(parts, &body).await,
            "/oauth2/revoke" if method == Method::POST => self.revoke(parts, &body),
            "/oauth2/introspect" if method == Method::POST => self.introspect(parts, &body),
            "/api/jwt/refresh" if method == Method::POST => self.jwt_refresh(parts, &body),
            "/api/jwt/refresh" if method == Method::DELETE => {
                self.delete_refresh(parts, &body, None)
            }
            _ if method == Method::DELETE && path.starts_with("/api/jwt/refresh/") => {
                let id = &path["/api/jwt/refresh/".len()..];
                self.delete_refresh(parts, &body, Some(id))
            }
            "/"
            | "/.well-known/openid-configuration"
            | "/.well-known/jwks.json"
            | "/oauth2/token"
            | "/oauth2/revoke"
            | "/oauth2/introspect"
            | "/api/jwt/refresh" => Ok(empty(StatusCode::METHOD_NOT_ALLOWED)),
            _ => Ok(json_response(
                StatusCode::NOT_FOUND,
                &json!({ "error": "not_found", "error_description": "No such endpoint on the development IdP." }),
            )),
        };
        match result {
            Ok(response) => response,
            Err(Failure::Response(response)) => *response,
            Err(Failure::Internal(message)) => {
                tracing::error!(target: "dev_idp", %message, "request failed");
                oauth_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "Internal error.",
                    None,
                )
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    fn home(&self) -> Response<Body> {
        let text = format!(
            "DEVELOPMENT IdP - not for production.\n\n\
             A stand-in for FusionAuth for trying the gateway. Endpoints:\n\
             POST   {0}/oauth2/token\n\
             POST   {0}/oauth2/revoke\n\
             POST   {0}/oauth2/introspect\n\
             POST   {0}/api/jwt/refresh\n\
             DELETE {0}/api/jwt/refresh\n\
             GET    {0}/.well-known/openid-configuration\n\
             GET    {0}/.well-known/jwks.json\n",
            self.issuer
        );
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }

    fn discovery(&self) -> Response<Body> {
        json_response(
            StatusCode::OK,
            &json!({
                "issuer": self.issuer,
                "token_endpoint": self.url("/oauth2/token"),
                "jwks_uri": self.url("/.well-known/jwks.json"),
                "revocation_endpoint": self.url("/oauth2/revoke"),
                "introspection_endpoint": self.url("/oauth2/introspect"),
                "grant_types_supported": ["password", "refresh_token"],
                "response_types_supported": [],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "offline_access"],
                "claims_supported": [
                    "applicationId", "aud", "auth_time", "authenticationType", "email",
                    "email_verified", "exp", "iat", "iss", "jti", "name", "preferred_username",
                    "roles", "scope", "sid", "sub"
                ],
                "service_documentation": "development IdP - not for production",
            }),
        )
    }

    fn jwks(&self) -> Response<Body> {
        let set = JwkSet {
            keys: vec![self.signer.jwk.clone()],
        };
        let value = serde_json::to_value(&set).unwrap_or(Value::Null);
        let mut response = json_response(StatusCode::OK, &value);
        response.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        response
    }

    /// `POST /oauth2/token`.
    async fn token(&self, parts: &Parts, body: &[u8]) -> Result<Response<Body>, Failure> {
        let form = parse_form(parts, body)?;
        let client = self.client_auth(&parts.headers, &form)?;
        let issued = match form.get("grant_type").map(String::as_str) {
            Some("password") => {
                let (Some(login), Some(password)) = (form.get("username"), form.get("password"))
                else {
                    return Err(oauth_failure(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "username and password are required.",
                        None,
                    ));
                };
                let scope = form.get("scope").map_or("", String::as_str);
                self.password_grant(client, login, password, scope).await?
            }
            Some("refresh_token") => {
                let Some(token) = form.get("refresh_token") else {
                    return Err(oauth_failure(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "refresh_token is required.",
                        Some("missing_refresh_token"),
                    ));
                };
                self.refresh(token, Some(&client.id))?
            }
            Some(_) => {
                return Err(oauth_failure(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "Only the password and refresh_token grants are supported.",
                    Some("invalid_grant_type"),
                ))
            }
            None => {
                return Err(oauth_failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required.",
                    Some("missing_grant_type"),
                ))
            }
        };
        let mut answer = json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "userId": issued.user_id,
        });
        if !issued.scope.is_empty() {
            answer["scope"] = Value::String(issued.scope);
        }
        if let Some((token, id)) = issued.refresh {
            answer["refresh_token"] = Value::String(token);
            answer["refresh_token_id"] = Value::String(id);
        }
        let mut response = json_response(StatusCode::OK, &answer);
        response
            .headers_mut()
            .insert(PRAGMA, HeaderValue::from_static("no-cache"));
        Ok(response)
    }

    /// Checks the password, then issues an access token (and a refresh
    /// token, for `offline_access`).
    async fn password_grant(
        &self,
        client: &Client,
        login: &str,
        password: &str,
        scope: &str,
    ) -> Result<Issued, Failure> {
        let user = self.users.find_login(login);
        // Unknown users are checked against a dummy hash: same work, same time.
        let hash = user.map_or(&self.dummy_hash, |user| &user.password).clone();
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .map_err(|e| Failure::Internal(format!("password check failed: {e}")))?;
        let user = match user {
            Some(user) if matches => user,
            _ => {
                tracing::info!(target: "dev_idp", client = %client.id, %login, "password grant refused");
                return Err(oauth_failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The user credentials are invalid.",
                    Some("invalid_user_credentials"),
                ));
            }
        };
        let scope = scope.split_whitespace().collect::<Vec<_>>().join(" ");
        let now = now();
        let refresh = if scope.split(' ').any(|s| s == "offline_access") {
            let session_id = random_uuid()?;
            let token = random_token()?;
            let mut sessions = self.sessions();
            sessions.prune(now);
            sessions.by_token.insert(
                token_key(&token),
                TokenRecord {
                    session: session_id.clone(),
                    used: false,
                },
            );
            sessions.by_id.insert(
                session_id.clone(),
                Session {
                    id: session_id.clone(),
                    user_id: user.id.clone(),
                    client_id: client.id.clone(),
                    scope: scope.clone(),
                    auth_time: now,
                    expires_at: now.saturating_add(self.refresh_ttl),
                    revoked: false,
                },
            );
            Some((token, session_id))
        } else {
            None
        };
        let access_token = self.access_token(
            user,
            &Grant {
                client_id: &client.id,
                scope: &scope,
                sid: refresh.as_ref().map(|(_, sid)| sid.as_str()),
                now,
                auth_time: now,
                authentication_type: "PASSWORD",
            },
        )?;
        tracing::info!(target: "dev_idp", client = %client.id, user = %user.username,
            sid = refresh.as_ref().map_or("", |(_, sid)| sid.as_str()), "password grant");
        Ok(Issued {
            access_token,
            user_id: user.id.clone(),
            scope,
            refresh,
        })
    }

    /// Exchanges a refresh token. `client_id`: the authenticated client,
    /// which must own the token (`None` for `/api/jwt/refresh`, which has
    /// no client authentication).
    fn refresh(&self, token: &str, client_id: Option<&str>) -> Result<Issued, Failure> {
        let refused = |description: &str| {
            oauth_failure(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                description,
                Some("refresh_token_not_found"),
            )
        };
        let now = now();
        let key = token_key(token);
        let mut sessions = self.sessions();
        let Some(record) = sessions.by_token.get(&key) else {
            return Err(refused("The refresh token is unknown, expired or revoked."));
        };
        let (session_id, used) = (record.session.clone(), record.used);
        let Some(session) = sessions.by_id.get_mut(&session_id) else {
            return Err(refused("The refresh token is unknown, expired or revoked."));
        };
        if client_id.is_some_and(|id| id != session.client_id) {
            return Err(refused("The refresh token was issued to another client."));
        }
        if session.revoked || session.expires_at <= now {
            return Err(refused("The refresh token is unknown, expired or revoked."));
        }
        if used {
            // Replay of a one-time-use token: someone else holds a copy.
            session.revoked = true;
            tracing::warn!(target: "dev_idp", sid = %session.id,
                "refresh token reused: session revoked");
            return Err(refused(
                "The refresh token was already used; the session is revoked.",
            ));
        }
        let (user_id, client, scope, auth_time) = (
            session.user_id.clone(),
            session.client_id.clone(),
            session.scope.clone(),
            session.auth_time,
        );
        let current = if self.rotate {
            let next = random_token()?;
            if let Some(record) = sessions.by_token.get_mut(&key) {
                record.used = true;
            }
            sessions.by_token.insert(
                token_key(&next),
                TokenRecord {
                    session: session_id.clone(),
                    used: false,
                },
            );
            next
        } else {
            token.to_owned()
        };
        drop(sessions);
        let Some(user) = self.users.find_id(&user_id) else {
            return Err(refused("The user no longer exists."));
        };
        let access_token = self.access_token(
            user,
            &Grant {
                client_id: &client,
                scope: &scope,
                sid: Some(&session_id),
                now,
                auth_time,
                authentication_type: "REFRESH_TOKEN",
            },
        )?;
        tracing::info!(target: "dev_idp", client = %client, user = %user.username,
            sid = %session_id, rotated = self.rotate, "refresh");
        Ok(Issued {
            access_token,
            user_id,
            scope,
            refresh: Some((current, session_id)),
        })
    }

    /// A signed access token for `user`.
    fn access_token(&self, user: &User, grant: &Grant<'_>) -> Result<String, Failure> {
        let mut claims = json!({
            "aud": grant.client_id,
            "exp": grant.now.saturating_add(self.access_ttl),
            "iat": grant.now,
            "iss": self.issuer,
            "sub": user.id,
            "jti": random_uuid()?,
            "authenticationType": grant.authentication_type,
            "applicationId": grant.client_id,
            "roles": user.roles,
            "preferred_username": user.username,
            "auth_time": grant.auth_time,
        });
        if let Some(email) = &user.email {
            claims["email"] = Value::String(email.clone());
            claims["email_verified"] = Value::Bool(true);
        }
        if let Some(name) = &user.name {
            claims["name"] = Value::String(name.clone());
        }
        if !grant.scope.is_empty() {
            claims["scope"] = Value::String(grant.scope.to_owned());
        }
        if let Some(sid) = grant.sid {
            claims["sid"] = Value::String(sid.to_owned());
        }
        self.signer.sign(&claims)
    }

    /// `POST /api/jwt/refresh` (FusionAuth): no client authentication; the
    /// refresh token comes in the JSON body or the `refresh_token` cookie.
    fn jwt_refresh(&self, parts: &Parts, body: &[u8]) -> Result<Response<Body>, Failure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RefreshRequest {
            refresh_token: Option<String>,
        }
        let request: RefreshRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RefreshRequest {
                refresh_token: None,
            }
        } else {
            serde_json::from_slice(body).map_err(|e| {
                api_failure(
                    "[invalid]json",
                    &format!("The request body is not valid JSON: {e}"),
                )
            })?
        };
        let token = request
            .refresh_token
            .filter(|token| !token.is_empty())
            .or_else(|| cookie(&parts.headers, "refresh_token"));
        let Some(token) = token else {
            return Err(api_failure(
                "[blank]refreshToken",
                "You must specify the refreshToken.",
            ));
        };
        let issued = self
            .refresh(&token, None)
            .map_err(|failure| match failure {
                Failure::Response(_) => api_failure(
                    "[invalid]refreshToken",
                    "The refresh token is expired, was not found, or has been revoked.",
                ),
                internal => internal,
            })?;
        let (refresh_token, refresh_token_id) = issued.refresh.unwrap_or_default();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "token": issued.access_token,
                "refreshToken": refresh_token,
                "refreshTokenId": refresh_token_id,
            }),
        ))
    }

    /// `DELETE /api/jwt/refresh[/{id}]` (FusionAuth), with the API key.
    fn delete_refresh(
        &self,
        parts: &Parts,
        body: &[u8],
        id: Option<&str>,
    ) -> Result<Response<Body>, Failure> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !constant_time_eq(key, self.api_key.as_bytes()) {
            return Ok(empty(StatusCode::UNAUTHORIZED));
        }
        let mut params: HashMap<String, String> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if is_form(&parts.headers) {
            params.extend(url::form_urlencoded::parse(body).into_owned());
        }
        let mut sessions = self.sessions();
        let matching: Vec<String> = if let Some(id) = id {
            sessions
                .by_id
                .get(id)
                .map(|s| s.id.clone())
                .into_iter()
                .collect()
        } else if let Some(token) = params.get("token") {
            sessions
                .session_of(token)
                .map(|s| s.id.clone())
                .into_iter()
                .collect()
        } else {
            let user = params.get("userId");
            let application = params.get("applicationId");
            if user.is_none() && application.is_none() {
                return Ok(json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({ "generalErrors": [{
                        "code": "[missing]parameters",
                        "message": "Give a token, a refresh token id, a userId or an applicationId."
                    }] }),
                ));
            }
            sessions
                .by_id
                .values()
                .filter(|s| user.is_none_or(|u| *u == s.user_id))
                .filter(|s| application.is_none_or(|a| *a == s.client_id))
                .map(|s| s.id.clone())
                .collect()
        };
        let single = id.is_some() || params.contains_key("token");
        if matching.is_empty() && single {
            return Ok(empty(StatusCode::NOT_FOUND));
        }
        let mut events = Vec::new();
        for session_id in &matching {
            if let Some(session) = sessions.by_id.get_mut(session_id) {
                if single {
                    events.push(Revoked::session(session));
                }
                session.revoked = true;
            }
        }
        drop(sessions);
        tracing::info!(target: "dev_idp", count = matching.len(), "refresh tokens revoked (API)");
        if !single {
            // FusionAuth sends one event for a user's or an application's
            // tokens, whether or not any were left.
            events.push(Revoked {
                user_id: params.get("userId").cloned(),
                application_id: params.get("applicationId").cloned(),
                refresh_token: None,
            });
        }
        for revoked in &events {
            self.notify(revoked);
        }
        Ok(empty(StatusCode::OK))
    }

    /// `POST /oauth2/revoke` (RFC 7009): revokes the session of a refresh
    /// token issued to the calling client; 200 whatever the token.
    fn revoke(&self, parts: &Parts, body: &[u8]) -> Result<Response<Body>, Failure> {
        let form = parse_form(parts, body)?;
        let client = self.client_auth(&parts.headers, &form)?;
        let Some(token) = form.get("token") else {
            return Err(oauth_failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is required.",
                Some("missing_token"),
            ));
        };
        let mut sessions = self.sessions();
        let owned = sessions
            .session_of(token)
            .filter(|s| s.client_id == client.id)
            .map(|s| s.id.clone());
        let mut revoked = None;
        if let Some(session) = owned.and_then(|id| sessions.by_id.get_mut(&id)) {
            if !session.revoked {
                revoked = Some(Revoked::session(session));
            }
            session.revoked = true;
            tracing::info!(target: "dev_idp", client = %client.id, sid = %session.id,
                "refresh token revoked");
        }
        drop(sessions);
        if let Some(revoked) = revoked {
            self.notify(&revoked);
        }
        Ok(empty(StatusCode::OK))
    }

    /// `POST /oauth2/introspect` (RFC 7662) for the calling client's tokens.
    fn introspect(&self, parts: &Parts, body: &[u8]) -> Result<Response<Body>, Failure> {
        let form = parse_form(parts, body)?;
        let client = self.client_auth(&parts.headers, &form)?;
        let Some(token) = form.get("token") else {
            return Err(oauth_failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is required.",
                Some("missing_token"),
            ));
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&client.id]);
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &self.signer.decoding, &validation) {
            let mut answer = data.claims;
            answer["active"] = Value::Bool(true);
            return Ok(json_response(StatusCode::OK, &answer));
        }
        let now = now();
        let sessions = self.sessions();
        let active = sessions.by_token.get(&token_key(token)).and_then(|record| {
            let session = sessions.by_id.get(&record.session)?;
            let live = !record.used
                && !session.revoked
                && session.expires_at > now
                && session.client_id == client.id;
            live.then(|| {
                json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "client_id": session.client_id,
                    "sub": session.user_id,
                    "sid": session.id,
                    "scope": session.scope,
                    "exp": session.expires_at,
                    "iat": session.auth_time,
                    "iss": self.issuer,
                })
            })
        });
        Ok(json_response(
            StatusCode::OK,
            &active.unwrap_or_else(|| json!({ "active": false })),
        ))
    }

    /// Authenticates the client: HTTP Basic (RFC 6749 §2.3.1, id and secret
    /// form-urlencoded) or `client_id` + `client_secret` in the form.
    fn client_auth(
        &self,
        headers: &HeaderMap,
        form: &HashMap<String, String>,
    ) -> Result<&Client, Failure> {
        let refused = |basic: bool| {
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The client could not be verified. Verify your client_id and client_secret.",
                Some("invalid_client_authentication"),
            );
            if basic {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"dev-idp\""),
                );
            }
            Failure::Response(Box::new(response))
        };
        let (id, secret, basic) = match headers.get(AUTHORIZATION) {
            Some(value) => {
                let (id, secret) = basic_credentials(value).ok_or_else(|| refused(true))?;
                if form.contains_key("client_secret")
                    || form.get("client_id").is_some_and(|form_id| *form_id != id)
                {
                    return Err(oauth_failure(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Use one client authentication method.",
                        Some("invalid_client_authentication_scheme"),
                    ));
                }
                (id, secret, true)
            }
            None => match (form.get("client_id"), form.get("client_secret")) {
                (Some(id), Some(secret)) => (id.clone(), secret.clone(), false),
                _ => return Err(refused(false)),
            },
        };
        self.users
            .authenticate(&id, &secret)
            .ok_or_else(|| refused(basic))
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(text: &str) -> Option<String> {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The form body of an OAuth endpoint; a parameter given twice is an
/// `invalid_request` (RFC 6749 §3.2).
fn parse_form(parts: &Parts, body: &[u8]) -> Result<HashMap<String, String>, Failure> {
    if !is_form(&parts.headers) {
        return Err(oauth_failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
            None,
        ));
    }
    let mut form = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body).into_owned() {
        match form.entry(name) {
            Entry::Vacant(entry) => {
                entry.insert(value);
            }
            Entry::Occupied(entry) => {
                return Err(oauth_failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("Parameter {} given twice.", entry.key()),
                    None,
                ))
            }
        }
    }
    Ok(form)
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An OAuth error (FusionAuth's shape: `error`, `error_description`,
/// `error_reason`).
fn oauth_error(
    status: StatusCode,
    error: &str,
    description: &str,
    reason: Option<&str>,
) -> Response<Body> {
    let mut body = json!({ "error": error, "error_description": description });
    if let Some(reason) = reason {
        body["error_reason"] = Value::String(reason.to_owned());
    }
    json_response(status, &body)
}

fn oauth_failure(
    status: StatusCode,
    error: &str,
    description: &str,
    reason: Option<&str>,
) -> Failure {
    Failure::Response(Box::new(oauth_error(status, error, description, reason)))
}

/// A 400 in the shape of FusionAuth's `/api` errors.
fn api_failure(code: &str, message: &str) -> Failure {
    Failure::Response(Box::new(json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "fieldErrors": { "refreshToken": [{ "code": code, "message": message }] } }),
    )))
}

/// What a revocation revoked, for its webhook event.
struct Revoked {
    /// The user whose tokens were revoked (`None`: an application's).
    user_id: Option<String>,
    /// The one application, if the revocation was limited to one.
    application_id: Option<String>,
    /// The single refresh token revoked: its id (the JWTs' `sid`) and when
    /// its session began.
    refresh_token: Option<(String, u64)>,
}

impl Revoked {
    /// One session's refresh token.
    fn session(session: &Session) -> Revoked {
        Revoked {
            user_id: Some(session.user_id.clone()),
            application_id: Some(session.client_id.clone()),
            refresh_token: Some((session.id.clone(), session.auth_time)),
        }
    }
}

impl Idp {
    /// The `jwt.refresh-token.revoke` event for `revoked`, shaped like
    /// FusionAuth's ("Events & Webhooks → JWT Refresh Token Revoke").
    fn revoke_event(&self, revoked: &Revoked, created_ms: u64) -> io::Result<Value> {
        let ttl = self.access_ttl;
        let ttls: serde_json::Map<String, Value> = match &revoked.application_id {
            Some(app) => [(app.clone(), json!(ttl))].into_iter().collect(),
            None => self
                .users
                .clients()
                .iter()
                .map(|c| (c.id.clone(), json!(ttl)))
                .collect(),
        };
        let mut event = json!({
            "type": "jwt.refresh-token.revoke",
            "id": random_uuid()?,
            "createInstant": created_ms,
            "applicationTimeToLiveInSeconds": ttls,
        });
        if let Some(app) = &revoked.application_id {
            event["applicationId"] = json!(app);
        }
        if let Some(user_id) = &revoked.user_id {
            event["userId"] = json!(user_id);
            if let Some(user) = self.users.find_id(user_id) {
                let mut described =
                    json!({ "id": user.id, "username": user.username, "active": true });
                if let Some(email) = &user.email {
                    described["email"] = json!(email);
                }
                event["user"] = described;
            }
        }
        if let Some((id, started)) = &revoked.refresh_token {
            event["refreshToken"] = json!({
                "id": id,
                "applicationId": revoked.application_id,
                "userId": revoked.user_id,
                "insertInstant": started.saturating_mul(1000),
                "startInstant": started.saturating_mul(1000),
            });
        }
        Ok(json!({ "event": event }))
    }

    /// Sends the webhook for `revoked`, if one is configured, without
    /// waiting for it.
    fn notify(&self, revoked: &Revoked) {
        let Some((webhook, client)) = &self.webhook else {
            return;
        };
        let created_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let event = match self.revoke_event(revoked, created_ms) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(target: "dev_idp", error = %e, "webhook not sent");
                return;
            }
        };
        let body = event.to_string();
        let signature = match webhook_signature(webhook.signing_secret.as_bytes(), body.as_bytes())
        {
            Ok(signature) => signature,
            Err(e) => {
                tracing::error!(target: "dev_idp", error = %e, "webhook not signed");
                return;
            }
        };
        let mut request = client
            .post(&webhook.url)
            .header(CONTENT_TYPE, "application/json")
            .header("X-FusionAuth-Signature-JWT", signature)
            .body(body);
        if let Some(bearer) = &webhook.bearer {
            request = request.bearer_auth(bearer);
        }
        let (url, id) = (webhook.url.clone(), event["event"]["id"].clone());
        tokio::spawn(async move {
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(target: "dev_idp", %url, %id, "webhook jwt.refresh-token.revoke sent");
                }
                Ok(response) => {
                    tracing::warn!(target: "dev_idp", %url, %id, status = %response.status(),
                        "webhook jwt.refresh-token.revoke refused");
                }
                Err(e) => {
                    tracing::warn!(target: "dev_idp", %url, %id, error = %e,
                        "webhook jwt.refresh-token.revoke not delivered");
                }
            }
        });
    }
}

/// FusionAuth's `X-FusionAuth-Signature-JWT` for `body`: a JWT, HS256 with
/// `secret`, whose one claim `request_body_sha256` is the standard base64
/// (padded) of the body's SHA-256.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> io::Result<String> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let claims = json!({
        "request_body_sha256": base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(io::Error::other)
}

/// Serves the dev IdP on `listener` until `shutdown` completes, then closes
/// every connection and returns.
///
/// Generates the RSA signing key first (a fraction of a second). HTTP/1.1
/// and HTTP/2, one task per connection; accept errors are logged and
/// retried, never fatal.
pub async fn serve(
    listener: TcpListener,
    config: DevIdpConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let idp = tokio::task::spawn_blocking(move || Idp::new(config))
        .await
        .map_err(io::Error::other)??;
    let idp = Arc::new(idp);
    crate::common::serve_until("idp", listener, shutdown, move |req| {
        let idp = Arc::clone(&idp);
        async move { handle(&idp, req).await }
    })
    .await
}

/// Reads the body (at most 64 KiB) and routes the request.
async fn handle(idp: &Idp, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => idp.route(&parts, collected.to_bytes()).await,
        Err(_) => empty(StatusCode::PAYLOAD_TOO_LARGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const STORE: (&str, &str) = ("store", "store-secret");
    const FORUMS: (&str, &str) = ("forums", "forums-secret");
    const RICHARD: &str = "richard@example.com";
    const MONICA: &str = "monica@example.com";

    fn idp_with(change: impl FnOnce(&mut DevIdpConfig)) -> Result<Idp, Box<dyn std::error::Error>> {
        let mut config = DevIdpConfig::new(Directory::demo()?);
        config.issuer = "http://idp.test/".to_owned();
        change(&mut config);
        Ok(Idp::new(config)?)
    }

    fn idp() -> Result<Idp, Box<dyn std::error::Error>> {
        idp_with(|_| {})
    }

    /// Sends one request straight to the router: `(status, JSON body or Null)`.
    async fn call(
        idp: &Idp,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(())?.into_parts();
        let response = idp.route(&parts, Bytes::from(body.to_owned())).await;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, value))
    }

    fn basic((id, secret): (&str, &str)) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    fn form(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    /// `POST /oauth2/token` with Basic client authentication.
    async fn token(
        idp: &Idp,
        client: (&str, &str),
        pairs: &[(&str, &str)],
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let auth = basic(client);
        call(
            idp,
            Method::POST,
            "/oauth2/token",
            &[FORM, ("authorization", &auth)],
            &form(pairs),
        )
        .await
    }

    async fn login(
        idp: &Idp,
        client: (&str, &str),
        user: &str,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, body) = token(
            idp,
            client,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", DEMO_PASSWORD),
                ("scope", "openid offline_access"),
            ],
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        Ok(body)
    }

    fn text<'a>(value: &'a Value, key: &str) -> &'a str {
        value[key].as_str().unwrap_or_default()
    }

    /// Verifies `jwt` with the key published at the JWKS endpoint, the way
    /// the gateway does: by `kid`, RS256, `iss` and `aud` checked.
    async fn verify_with_jwks(
        idp: &Idp,
        jwt: &str,
        audience: &str,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, jwks) = call(idp, Method::GET, "/.well-known/jwks.json", &[], "").await?;
        assert_eq!(status, StatusCode::OK);
        let set: JwkSet = serde_json::from_value(jwks)?;
        let header = jsonwebtoken::decode_header(jwt)?;
        assert_eq!(header.alg, Algorithm::RS256);
        let kid = header.kid.ok_or("no kid")?;
        let jwk = set.find(&kid).ok_or("kid not in the JWKS")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&["http://idp.test"]);
        validation.set_audience(&[audience]);
        let data = jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk)?, &validation)?;
        Ok(data.claims)
    }

    #[test]
    fn demo_users_have_the_demo_password() -> TestResult {
        let directory = Directory::demo()?;
        let names: Vec<_> = directory
            .users()
            .iter()
            .map(|u| u.username.as_str())
            .collect();
        assert_eq!(names, [RICHARD, MONICA]);
        for user in directory.users() {
            assert!(
                verify_password(&user.password, DEMO_PASSWORD),
                "{}",
                user.username
            );
            assert!(!verify_password(&user.password, "Password"));
        }
        let clients: Vec<_> = directory.clients().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(clients, ["store", "forums"]);
        assert!(!format!("{directory:?}").contains("store-secret"));
        Ok(())
    }

    #[test]
    fn users_files_are_checked() -> TestResult {
        let hash = hash_password("pw")?;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(&hash, "pw"));
        let user = |id: &str, name: &str, password: &str| {
            format!("[[users]]\nusername = {name:?}\nid = {id:?}\npassword = {password:?}\n")
        };
        // Default clients when none are listed.
        let directory = Directory::parse(&user("1", "a", &hash))?;
        assert_eq!(directory.clients().len(), 2);
        assert!(directory.authenticate("forums", "forums-secret").is_some());
        assert!(directory.authenticate("forums", "store-secret").is_none());
        // Repeated ids or logins, plain-text passwords, unknown keys: refused.
        let repeated_id = format!("{}{}", user("1", "a", &hash), user("1", "b", &hash));
        let repeated_login = format!("{}{}", user("1", "a", &hash), user("2", "A", &hash));
        for bad in [
            repeated_id,
            repeated_login,
            user("1", "a", "password"),
            "[[users]]\nusername = \"a\"\nid = \"1\"\npasword = \"x\"\n".to_owned(),
            "[[clients]]\nid = \"store\"\nsecret = \"\"\n".to_owned(),
        ] {
            assert!(Directory::parse(&bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn password_grant_issues_fusionauth_style_tokens() -> TestResult {
        let idp = idp()?;
        // Login by e-mail, in any case.
        let body = login(&idp, STORE, "Monica@Example.com").await?;
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 60);
        assert_eq!(body["userId"], "00000000-0000-0000-0000-000000000002");
        let refresh = text(&body, "refresh_token");
        assert!(refresh.len() >= 43, "{refresh}");
        let claims = verify_with_jwks(&idp, text(&body, "access_token"), "store").await?;
        assert_eq!(claims["iss"], "http://idp.test");
        assert_eq!(claims["aud"], "store");
        assert_eq!(claims["applicationId"], "store");
        assert_eq!(claims["sub"], "00000000-0000-0000-0000-000000000002");
        assert_eq!(claims["sid"], body["refresh_token_id"]);
        assert_eq!(claims["roles"], json!(["customer", "admin"]));
        assert_eq!(claims["email"], MONICA);
        assert_eq!(claims["preferred_username"], MONICA);
        assert_eq!(claims["authenticationType"], "PASSWORD");
        assert_eq!(claims["scope"], "openid offline_access");
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        assert_eq!(exp.zip(iat).map(|(exp, iat)| exp - iat), Some(60));
        assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() == 36));

        // client_secret_post works too; without offline_access, no refresh token.
        let (status, body) = call(
            &idp,
            Method::POST,
            "/oauth2/token",
            &[FORM],
            &form(&[
                ("grant_type", "password"),
                ("username", RICHARD),
                ("password", DEMO_PASSWORD),
                ("client_id", "forums"),
                ("client_secret", "forums-secret"),
            ]),
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none());
        let claims = verify_with_jwks(&idp, text(&body, "access_token"), "forums").await?;
        assert_eq!(claims["roles"], json!(["customer"]));
        assert!(claims.get("sid").is_none());
        Ok(())
    }

    #[tokio::test]
    async fn password_grant_refuses_bad_credentials_and_clients() -> TestResult {
        let idp = idp()?;
        for (user, password) in [(RICHARD, "wrong"), ("nobody@example.com", DEMO_PASSWORD)] {
            let (status, body) = token(
                &idp,
                STORE,
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ],
            )
            .await?;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(body["error"], "invalid_grant");
            assert!(body["error_description"].is_string());
        }
        let good = [
            ("grant_type", "password"),
            ("username", RICHARD),
            ("password", DEMO_PASSWORD),
        ];
        for client in [("store", "forums-secret"), ("shop", "store-secret")] {
            let (status, body) = token(&idp, client, &good).await?;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"], "invalid_client");
        }
        // No client authentication at all.
        let (status, body) =
            call(&idp, Method::POST, "/oauth2/token", &[FORM], &form(&good)).await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::UNAUTHORIZED, &json!("invalid_client"))
        );
        // Malformed requests.
        let (status, body) = token(&idp, STORE, &[("grant_type", "client_credentials")]).await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("unsupported_grant_type"))
        );
        let (status, body) = token(
            &idp,
            STORE,
            &[("grant_type", "password"), ("grant_type", "password")],
        )
        .await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_request"))
        );
        Ok(())
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = |raw: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        };
        let decoded = header("my+app:p%3Ass%25w+rd")
            .ok()
            .and_then(|h| basic_credentials(&h));
        assert_eq!(decoded, Some(("my app".to_owned(), "p:ss%w rd".to_owned())));
        assert_eq!(
            header("no-colon").ok().and_then(|h| basic_credentials(&h)),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
    }

    #[tokio::test]
    async fn refresh_rotates_and_a_replay_revokes_the_chain() -> TestResult {
        let idp = idp()?;
        let first = login(&idp, STORE, RICHARD).await?;
        let (rt1, sid) = (
            text(&first, "refresh_token"),
            text(&first, "refresh_token_id"),
        );

        // OAuth refresh grant: a new token, the same session.
        let (status, second) = token(
            &idp,
            STORE,
            &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{second}");
        let rt2 = text(&second, "refresh_token");
        assert_ne!(rt2, rt1);
        assert_eq!(second["refresh_token_id"], sid);
        let claims = verify_with_jwks(&idp, text(&second, "access_token"), "store").await?;
        assert_eq!(claims["sid"], sid);
        assert_eq!(claims["authenticationType"], "REFRESH_TOKEN");

        // Another client cannot use it (and does not burn it).
        let (status, _) = token(
            &idp,
            FORUMS,
            &[("grant_type", "refresh_token"), ("refresh_token", rt2)],
        )
        .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // FusionAuth's JWT refresh API: rotates again.
        let request = json!({ "refreshToken": rt2, "token": second["access_token"] }).to_string();
        let json_type = ("content-type", "application/json");
        let (status, third) = call(
            &idp,
            Method::POST,
            "/api/jwt/refresh",
            &[json_type],
            &request,
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{third}");
        let rt3 = text(&third, "refreshToken");
        assert!(rt3 != rt2 && rt3 != rt1);
        assert_eq!(third["refreshTokenId"], sid);
        verify_with_jwks(&idp, text(&third, "token"), "store").await?;

        // Replaying rt1 (already used) fails and revokes the session: the
        // current token rt3 dies with it.
        let (status, body) = token(
            &idp,
            STORE,
            &[("grant_type", "refresh_token"), ("refresh_token", rt1)],
        )
        .await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
        );
        let request = json!({ "refreshToken": rt3 }).to_string();
        let (status, body) = call(
            &idp,
            Method::POST,
            "/api/jwt/refresh",
            &[json_type],
            &request,
        )
        .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["fieldErrors"]["refreshToken"].is_array());

        // Other sessions are untouched.
        let other = login(&idp, STORE, RICHARD).await?;
        let (status, _) = token(
            &idp,
            STORE,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&other, "refresh_token")),
            ],
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        Ok(())
    }

    #[tokio::test]
    async fn reusable_refresh_tokens_and_expiry() -> TestResult {
        let idp = idp_with(|config| config.rotate_refresh = false)?;
        let body = login(&idp, STORE, RICHARD).await?;
        let rt = text(&body, "refresh_token");
        for _ in 0..2 {
            let (status, again) = token(
                &idp,
                STORE,
                &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            )
            .await?;
            assert_eq!(status, StatusCode::OK, "{again}");
            assert_eq!(again["refresh_token"], rt);
        }

        let expired = idp_with(|config| config.refresh_ttl = Duration::ZERO)?;
        let body = login(&expired, STORE, RICHARD).await?;
        let (status, body) = token(
            &expired,
            STORE,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&body, "refresh_token")),
            ],
        )
        .await?;
        assert_eq!(
            (status, &body["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
        );
        let (status, _) = token(
            &expired,
            STORE,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "made-up"),
            ],
        )
        .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        Ok(())
    }

    #[tokio::test]
    async fn revocation_by_api_key_and_rfc7009() -> TestResult {
        let idp = idp()?;
        let refresh_status = |rt: String| {
            let idp = &idp;
            async move {
                let pairs = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ];
                token(idp, STORE, &pairs).await.map(|(status, _)| status)
            }
        };

        // DELETE /api/jwt/refresh with a form body: wrong key 401, then 200.
        let rt = text(&login(&idp, STORE, RICHARD).await?, "refresh_token").to_owned();
        let body = form(&[("token", &rt)]);
        let (status, _) = call(
            &idp,
            Method::DELETE,
            "/api/jwt/refresh",
            &[FORM, ("authorization", "wrong")],
            &body,
        )
        .await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = call(&idp, Method::DELETE, "/api/jwt/refresh", &[FORM], &body).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let key = ("authorization", DEFAULT_API_KEY);
        let (status, _) = call(
            &idp,
            Method::DELETE,
            "/api/jwt/refresh",
            &[FORM, key],
            &body,
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refresh_status(rt).await?, StatusCode::BAD_REQUEST);

        // ?token=… in the query; unknown tokens are 404.
        let rt = text(&login(&idp, STORE, RICHARD).await?, "refresh_token").to_owned();
        let uri = format!("/api/jwt/refresh?{}", form(&[("token", &rt)]));
        let (status, _) = call(&idp, Method::DELETE, &uri, &[key], "").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refresh_status(rt).await?, StatusCode::BAD_REQUEST);
        let (status, _) = call(
            &idp,
            Method::DELETE,
            "/api/jwt/refresh?token=nope",
            &[key],
            "",
        )
        .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // By refresh token id, and all of a user's.
        let first = login(&idp, STORE, RICHARD).await?;
        let uri = format!("/api/jwt/refresh/{}", text(&first, "refresh_token_id"));
        let (status, _) = call(&idp, Method::DELETE, &uri, &[key], "").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            refresh_status(text(&first, "refresh_token").to_owned()).await?,
            StatusCode::BAD_REQUEST
        );
        let monica = text(&login(&idp, STORE, MONICA).await?, "refresh_token").to_owned();
        let richard = text(&login(&idp, STORE, RICHARD).await?, "refresh_token").to_owned();
        let uri = "/api/jwt/refresh?userId=00000000-0000-0000-0000-000000000001";
        let (status, _) = call(&idp, Method::DELETE, uri, &[key], "").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(refresh_status(richard).await?, StatusCode::BAD_REQUEST);
        assert_eq!(refresh_status(monica.clone()).await?, StatusCode::OK);

        // RFC 7009: 200 for anything; only the owning client revokes.
        let auth = |client| basic(client);
        let revoke = |client: (&'static str, &'static str), token: String| {
            let idp = &idp;
            async move {
                let auth = auth(client);
                let body = form(&[("token", &token), ("token_type_hint", "refresh_token")]);
                call(
                    idp,
                    Method::POST,
                    "/oauth2/revoke",
                    &[FORM, ("authorization", &auth)],
                    &body,
                )
                .await
                .map(|(status, _)| status)
            }
        };
        let rt = text(&login(&idp, STORE, MONICA).await?, "refresh_token").to_owned();
        assert_eq!(revoke(FORUMS, rt.clone()).await?, StatusCode::OK);
        assert_eq!(refresh_status(rt.clone()).await?, StatusCode::OK);
        assert_eq!(revoke(STORE, "unknown".to_owned()).await?, StatusCode::OK);
        // The refresh above rotated rt; revoking the old value still ends the session.
        assert_eq!(revoke(STORE, rt).await?, StatusCode::OK);
        assert_eq!(refresh_status(monica).await?, StatusCode::BAD_REQUEST);
        assert_eq!(
            revoke(("store", "bad"), "x".to_owned()).await?,
            StatusCode::UNAUTHORIZED
        );
        Ok(())
    }

    /// The events and signatures the IdP sends are the ones the gateway's
    /// webhook endpoint parses and authenticates.
    #[test]
    fn revocation_webhooks_are_what_the_gateway_understands() -> TestResult {
        use gateway::events::action::Action;
        use gateway::events::signature::{Authenticator, SignatureCheck};

        let idp = idp()?;
        let created = 1_800_000_000_123;
        let richard = "00000000-0000-0000-0000-000000000001";
        let user = Revoked {
            user_id: Some(richard.to_owned()),
            application_id: None,
            refresh_token: None,
        };
        let body = idp.revoke_event(&user, created)?.to_string();
        let event = gateway::events::fusionauth::parse(body.as_bytes(), 60)?;
        assert_eq!(event.event_type, "jwt.refresh-token.revoke");
        assert!(
            matches!(&event.actions[..], [Action::User { sub, client_id: None, before: 1_800_000_000, .. }] if sub == richard),
            "{event:?}"
        );
        let session = Revoked {
            user_id: Some(richard.to_owned()),
            application_id: Some("store".to_owned()),
            refresh_token: Some(("sid-1".to_owned(), 1_700_000_000)),
        };
        let again = idp.revoke_event(&session, created)?.to_string();
        let parsed = gateway::events::fusionauth::parse(again.as_bytes(), 60)?;
        assert_ne!(parsed.id, event.id, "a fresh id per event");
        assert!(
            matches!(&parsed.actions[..], [Action::Session { sid, client_id: Some(c), until: 1_800_000_061 }] if sid == "sid-1" && c == "store"),
            "{parsed:?}"
        );

        let secret = b"a webhook signing key, 32 bytes!";
        let check = SignatureCheck::new(Some(secret), false, vec![Algorithm::HS256], 0)
            .ok_or("no check")?;
        let authenticator = Authenticator::new(Some(check), None).ok_or("no authenticator")?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-fusionauth-signature-jwt",
            HeaderValue::from_str(&webhook_signature(secret, body.as_bytes())?)?,
        );
        let none = gateway::auth::verify::Keys::new(None, None);
        authenticator.check(&headers, body.as_bytes(), &none, now())?;
        assert!(authenticator
            .check(&headers, again.as_bytes(), &none, now())
            .is_err());
        Ok(())
    }

    #[tokio::test]
    async fn introspection() -> TestResult {
        let idp = idp()?;
        let body = login(&idp, STORE, RICHARD).await?;
        let introspect = |client: (&str, &str), token: &str| {
            let auth = basic(client);
            let body = form(&[("token", token)]);
            let idp = &idp;
            async move {
                call(
                    idp,
                    Method::POST,
                    "/oauth2/introspect",
                    &[FORM, ("authorization", &auth)],
                    &body,
                )
                .await
                .map(|(_, value)| value)
            }
        };
        let access = introspect(STORE, text(&body, "access_token")).await?;
        assert_eq!(access["active"], true);
        assert_eq!(access["sub"], "00000000-0000-0000-0000-000000000001");
        let refresh = introspect(STORE, text(&body, "refresh_token")).await?;
        assert_eq!(refresh["active"], true);
        assert_eq!(refresh["sid"], body["refresh_token_id"]);
        assert_eq!(
            introspect(FORUMS, text(&body, "access_token")).await?["active"],
            false
        );
        assert_eq!(
            introspect(STORE, "garbage").await?,
            json!({ "active": false })
        );
        Ok(())
    }

    #[tokio::test]
    async fn discovery_and_jwks() -> TestResult {
        let idp = idp()?;
        let (status, doc) = call(
            &idp,
            Method::GET,
            "/.well-known/openid-configuration",
            &[],
            "",
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["issuer"], "http://idp.test");
        assert_eq!(doc["token_endpoint"], "http://idp.test/oauth2/token");
        assert_eq!(doc["jwks_uri"], "http://idp.test/.well-known/jwks.json");
        assert_eq!(doc["revocation_endpoint"], "http://idp.test/oauth2/revoke");
        assert_eq!(
            doc["introspection_endpoint"],
            "http://idp.test/oauth2/introspect"
        );
        assert_eq!(
            doc["grant_types_supported"],
            json!(["password", "refresh_token"])
        );

        let (_, jwks) = call(&idp, Method::GET, "/.well-known/jwks.json", &[], "").await?;
        let keys = jwks["keys"].as_array().ok_or("no keys")?;
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(
            (&key["kty"], &key["alg"], &key["use"], &key["e"]),
            (
                &json!("RSA"),
                &json!("RS256"),
                &json!("sig"),
                &json!("AQAB")
            )
        );
        // 2048-bit modulus: 256 bytes, 342 base64url characters.
        assert_eq!(key["n"].as_str().map(str::len), Some(342));
        assert_eq!(key["kid"].as_str(), Some(idp.signer.kid()));

        let (status, _) = call(&idp, Method::POST, "/.well-known/jwks.json", &[], "").await?;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = call(&idp, Method::GET, "/api/user", &[], "").await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        Ok(())
    }

    #[test]
    fn pkcs8_parser_rejects_garbage() {
        assert_eq!(pkcs8_inner_key(&[]), None);
        assert_eq!(pkcs8_inner_key(&[0x30, 0x05, 0x02]), None);
        assert_eq!(pkcs8_inner_key(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        // SEQUENCE { INTEGER 0, SEQUENCE {}, OCTET STRING "ab" }
        let der = [
            0x30, 0x09, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x02, b'a', b'b',
        ];
        assert_eq!(pkcs8_inner_key(&der), Some(&b"ab"[..]));
    }

    #[tokio::test]
    async fn serves_over_tcp_until_shutdown() -> TestResult {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = DevIdpConfig::new(Directory::demo()?);
        let server = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            stream.read_to_string(&mut response),
        )
        .await??;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains("\"token_endpoint\":\"http://127.0.0.1:9011/oauth2/token\""),
            "{response}"
        );
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server).await???;
        Ok(())
    }
}
