//! A real Glewlwyd (Debian's `glewlwyd` package, 2.7.5) on loopback, for
//! interop tests: throw-away state in a temp dir, configured over its admin
//! REST API, killed (by the pid of the child spawned here) when dropped.
//!
//! Bring-up: the sqlite database from the package's own init SQL (admin user
//! `admin`/`password`, scopes `openid`, `g_profile`, `g_admin`), an RSA key
//! made with rcgen, a libconfig file, `glewlwyd --config-file=…` on a port
//! picked by binding 127.0.0.1:0 and releasing it (retried when another
//! process took the port first: Glewlwyd then exits at once), ready once its
//! own log says it started and `GET /config` answers 200. Then over the admin
//! API: scope `gateway`, an OIDC plugin named `oidc` (RS256, or HS256 with
//! [`HMAC_SECRET`]), confidential clients `store` and `forums`, users
//! [`ALICE`] and [`BOB`].
//!
//! A missing `glewlwyd` or `sqlite3` is a failure, never a skip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::auth::{FORUMS_HOST, STORE_HOST};
use super::gateway::{AppSpec, TestGatewayBuilder, COOKIE_KEY};
use super::{TestGateway, POLL_ATTEMPTS, POLL_INTERVAL};

/// What to run when the programs are missing (the test command does it in CI).
pub const INSTALL_HINT: &str = "install with: sudo apt-get install -y glewlwyd sqlite3";

/// The package's init SQL, and the compressed copy in its docs.
const INIT_SQL: &str = "/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3";
const INIT_SQL_GZ: &str = "/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz";

/// The admin account the init SQL creates.
const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "password";

/// The OIDC plugin instance's name: its endpoints live under `/api/oidc`.
pub const PLUGIN: &str = "oidc";
/// The scope the gateway asks for (besides `openid`).
pub const GATEWAY_SCOPE: &str = "gateway";

/// Default access token lifetime: short, so tests see expiry in seconds.
pub const ACCESS_TTL_SECS: u64 = 3;
/// Refresh token lifetime: outlives every test.
const REFRESH_TTL_SECS: u64 = 3600;

/// The HS256 shared secret (`jwt-type: "sha"`), ≥ 32 bytes as the gateway wants.
pub const HMAC_SECRET: &str = "glewlwyd interop hmac secret: at least thirty-two bytes";

/// Attempts at starting Glewlwyd on a fresh port before giving up (another
/// process can take a released ephemeral port before Glewlwyd binds it).
const START_ATTEMPTS: usize = 3;
/// What Glewlwyd logs once it listens, and when it could not.
const STARTED_LINE: &str = "Glewlwyd started on port";
const BIND_FAILED_LINE: &str = "Error starting glewlwyd webserver";

/// A user at Glewlwyd.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub username: &'static str,
    pub password: &'static str,
    pub email: &'static str,
}

pub const ALICE: User = User {
    username: "alice",
    password: "alice-password-1",
    email: "alice@example.com",
};
pub const BOB: User = User {
    username: "bob",
    password: "bob-password-2",
    email: "bob@example.com",
};

/// The confidential clients: `(client_id, client_secret)`, the same as the
/// store and forums apps of [`super::auth`] use.
pub const CLIENTS: [(&str, &str); 2] = [("store", "store-secret"), ("forums", "forums-secret")];

/// Options for the OIDC plugin.
#[derive(Debug, Clone)]
pub struct GlewlwydBuilder {
    access_ttl: u64,
    one_use: bool,
    hs256: bool,
}

/// A running Glewlwyd with the plugin, clients and users configured.
pub struct Glewlwyd {
    pub port: u16,
    hs256: bool,
    child: Child,
    dir: TempDir,
    http: reqwest::Client,
    /// `GLEWLWYD2_SESSION_ID=…` of the admin's session.
    admin_cookie: String,
}

impl Glewlwyd {
    /// Builder: `Glewlwyd::new().one_use_refresh().start().await`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> GlewlwydBuilder {
        GlewlwydBuilder {
            access_ttl: ACCESS_TTL_SECS,
            one_use: false,
            hs256: false,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The OIDC plugin's issuer, `http://127.0.0.1:PORT/api/oidc`.
    pub fn issuer(&self) -> String {
        format!("{}/api/{PLUGIN}", self.base())
    }

    pub fn is_hs256(&self) -> bool {
        self.hs256
    }

    /// Glewlwyd's own log so far (for failure messages).
    pub fn log(&self) -> String {
        read_logs(self.dir.path())
    }

    /// The `[idp]` keys that make the gateway work with this Glewlwyd.
    pub fn idp_toml(&self) -> String {
        let algorithms = if self.hs256 {
            format!("algorithms = [\"HS256\"]\nhmac_secret = {HMAC_SECRET:?}")
        } else {
            "algorithms = [\"RS256\"]".to_owned()
        };
        format!(
            "kind = \"oauth2\"\n\
             issuer = {:?}\n\
             scope = \"openid {GATEWAY_SCOPE}\"\n\
             audience = \"off\"\n\
             client_claim = \"client_id\"\n\
             identity_claim = \"username\"\n\
             leeway = \"0s\"\n\
             {algorithms}",
            self.issuer()
        )
    }

    /// A gateway builder pointed at this Glewlwyd (discovery from the
    /// issuer), with the cookie key and a short login failure delay.
    pub fn gateway(&self) -> TestGatewayBuilder {
        TestGateway::new()
            .idp_config(&self.idp_toml())
            .session_config(&format!("cookie_key = {COOKIE_KEY:?}"))
            .login_config("min_failure_time = \"50ms\"")
    }

    /// The refresh tokens Glewlwyd holds for `username` (admin impersonation
    /// of the profile API `GET /api/oidc/token`): objects with `client_id`,
    /// `enabled`, `issued_at`, `token_hash`, … (never the token itself).
    pub async fn refresh_tokens(&self, username: &str) -> Vec<Value> {
        let url = format!("{}/token?impersonate={username}", self.issuer());
        let reply = self
            .http
            .get(&url)
            .header(reqwest::header::COOKIE, &self.admin_cookie)
            .send()
            .await
            .expect("list refresh tokens");
        let status = reply.status();
        let body = reply.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {url}: {body}\n{}", self.log());
        match serde_json::from_str(&body) {
            Ok(Value::Array(tokens)) => tokens,
            other => panic!("GET {url}: not a JSON array: {other:?}: {body}"),
        }
    }

    /// [`Self::refresh_tokens`] of `username` issued to `client_id`.
    pub async fn client_refresh_tokens(&self, username: &str, client_id: &str) -> Vec<Value> {
        self.refresh_tokens(username)
            .await
            .into_iter()
            .filter(|t| t["client_id"] == client_id)
            .collect()
    }

    /// A password grant straight at the token endpoint (client auth Basic):
    /// the status and the body (Glewlwyd's errors have an empty one).
    pub async fn password_grant(
        &self,
        client: (&str, &str),
        user: &str,
        password: &str,
    ) -> (u16, String) {
        let reply = self
            .http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(client.0, Some(client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
                ("scope", &format!("openid {GATEWAY_SCOPE}")),
            ])
            .send()
            .await
            .expect("password grant");
        let status = reply.status().as_u16();
        (status, reply.text().await.unwrap_or_default())
    }

    /// `POST /api/auth/` as the admin: the session cookie.
    async fn admin_login(http: &reqwest::Client, base: &str) -> String {
        let reply = http
            .post(format!("{base}/api/auth/"))
            .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("admin login");
        assert_eq!(reply.status(), 200, "admin login at Glewlwyd");
        reply
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.starts_with("GLEWLWYD2_SESSION_ID="))
            .map(str::to_owned)
            .expect("Glewlwyd's admin login set no session cookie")
    }

    /// `POST {base}/api/{path}` with `body` as the admin; must answer 200.
    async fn admin_post(&self, path: &str, body: &Value) {
        let url = format!("{}/api/{path}", self.base());
        let reply = self
            .http
            .post(&url)
            .header(reqwest::header::COOKIE, &self.admin_cookie)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = reply.status();
        let text = reply.text().await.unwrap_or_default();
        assert_eq!(status, 200, "POST {url}: {text}\n{}", self.log());
    }
}

impl GlewlwydBuilder {
    /// Access token lifetime in seconds.
    pub fn access_ttl(mut self, secs: u64) -> Self {
        self.access_ttl = secs;
        self
    }

    /// `refresh-token-one-use: always`: every refresh rotates the refresh
    /// token, and a replayed one revokes the whole chain.
    pub fn one_use_refresh(mut self) -> Self {
        self.one_use = true;
        self
    }

    /// `jwt-type: "sha"`: HS256 access tokens signed with [`HMAC_SECRET`].
    pub fn hs256(mut self) -> Self {
        self.hs256 = true;
        self
    }

    /// Starts Glewlwyd and configures it; panics (never skips) when the
    /// programs are missing or it does not come up in time.
    pub async fn start(self) -> Glewlwyd {
        let glewlwyd = find_program("glewlwyd", &["/usr/sbin/glewlwyd", "/usr/bin/glewlwyd"])
            .unwrap_or_else(|| panic!("the glewlwyd binary is missing; {INSTALL_HINT}"));
        let sqlite3 = find_program("sqlite3", &["/usr/bin/sqlite3"])
            .unwrap_or_else(|| panic!("the sqlite3 binary is missing; {INSTALL_HINT}"));
        let dir = tempfile::tempdir().expect("temp dir");
        create_database(&sqlite3, &dir.path().join("glewlwyd.db"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client");

        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            write_config(dir.path(), port);
            let Some(child) = launch(&glewlwyd, dir.path()).await else {
                last_log = read_logs(dir.path());
                continue;
            };
            let base = format!("http://127.0.0.1:{port}");
            wait_for_config(&http, &base, dir.path()).await;
            let admin_cookie = Glewlwyd::admin_login(&http, &base).await;
            let glw = Glewlwyd {
                port,
                hs256: self.hs256,
                child,
                dir,
                http,
                admin_cookie,
            };
            self.configure(&glw).await;
            return glw;
        }
        panic!("Glewlwyd did not start in {START_ATTEMPTS} attempts:\n{last_log}");
    }

    async fn configure(&self, glw: &Glewlwyd) {
        glw.admin_post(
            "scope/",
            &json!({
                "name": GATEWAY_SCOPE, "display_name": "Gateway",
                "description": "The gateway's apps",
                "password_required": true, "password_max_age": 0, "scheme": {},
            }),
        )
        .await;

        let (jwt_type, key, cert) = if self.hs256 {
            ("sha", HMAC_SECRET.to_owned(), String::new())
        } else {
            let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
            ("rsa", pair.serialize_pem(), pair.public_key_pem())
        };
        let one_use = if self.one_use { "always" } else { "never" };
        glw.admin_post(
            "mod/plugin/",
            &json!({
                "module": "oidc", "name": PLUGIN, "display_name": "OpenID Connect",
                "enabled": true,
                "parameters": {
                    "iss": glw.issuer(),
                    "jwt-type": jwt_type, "jwt-key-size": "256",
                    "key": key, "cert": cert,
                    "access-token-duration": self.access_ttl,
                    "refresh-token-duration": REFRESH_TTL_SECS,
                    "refresh-token-rolling": true,
                    "refresh-token-one-use": one_use,
                    "code-duration": 600,
                    "allow-non-oidc": true,
                    "auth-type-code-enabled": false,
                    "auth-type-token-enabled": false,
                    "auth-type-id-token-enabled": false,
                    "auth-type-none-enabled": false,
                    "auth-type-password-enabled": true,
                    "auth-type-client-enabled": false,
                    "auth-type-refresh-enabled": true,
                    "jwks-show": true,
                    "introspection-revocation-allowed": true,
                    "introspection-revocation-allow-target-client": true,
                    "subject-type": "public",
                    "additional-parameters": [
                        {"user-parameter": "username", "token-parameter": "username"},
                        {"user-parameter": "email", "token-parameter": "email"},
                    ],
                },
            }),
        )
        .await;

        for (client_id, secret) in CLIENTS {
            glw.admin_post(
                "client/",
                &json!({
                    "client_id": client_id, "name": client_id,
                    "client_secret": secret, "confidential": true, "enabled": true,
                    "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"],
                    "authorization_type": ["password", "refresh_token"],
                    "redirect_uri": [format!("http://{client_id}.example.com/")],
                    "scope": [],
                }),
            )
            .await;
        }
        for user in [ALICE, BOB] {
            glw.admin_post(
                "user/",
                &json!({
                    "username": user.username, "name": user.username,
                    "email": user.email, "password": user.password, "enabled": true,
                    "scope": ["openid", GATEWAY_SCOPE, "g_profile"],
                }),
            )
            .await;
        }
    }
}

impl Drop for Glewlwyd {
    fn drop(&mut self) {
        // Our own child, by its pid; then reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store app on [`STORE_HOST`] as Glewlwyd client `store`.
pub fn store_app(upstream: std::net::SocketAddr) -> AppSpec {
    AppSpec::new("store", STORE_HOST, upstream).login(CLIENTS[0].0, CLIENTS[0].1)
}

/// The forums app on [`FORUMS_HOST`] as Glewlwyd client `forums`.
pub fn forums_app(upstream: std::net::SocketAddr) -> AppSpec {
    AppSpec::new("forums", FORUMS_HOST, upstream).login(CLIENTS[1].0, CLIENTS[1].1)
}

/// `name` at one of `candidates`, or on `PATH`.
fn find_program(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
}

/// The init SQL, from the package's dbconfig copy or its gzipped doc copy.
fn init_sql() -> Vec<u8> {
    if let Ok(sql) = std::fs::read(INIT_SQL) {
        return sql;
    }
    let out = Command::new("gzip")
        .args(["-dc", INIT_SQL_GZ])
        .output()
        .unwrap_or_else(|e| panic!("gzip -dc {INIT_SQL_GZ}: {e}; {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "neither {INIT_SQL} nor {INIT_SQL_GZ} is readable; {INSTALL_HINT}"
    );
    out.stdout
}

/// Creates the database at `path` from the init SQL, in one transaction
/// (statement by statement with fsyncs it takes over a second).
fn create_database(sqlite3: &Path, path: &Path) {
    use std::io::Write;
    let mut script = b"PRAGMA synchronous=OFF;\nBEGIN;\n".to_vec();
    script.extend_from_slice(&init_sql());
    script.extend_from_slice(b"\nCOMMIT;\n");
    let mut child = Command::new(sqlite3)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}; {INSTALL_HINT}", sqlite3.display()));
    child
        .stdin
        .take()
        .expect("sqlite3 stdin")
        .write_all(&script)
        .expect("write the init SQL");
    let out = child.wait_with_output().expect("sqlite3");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3 {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A port the OS just handed out on 127.0.0.1, released for Glewlwyd.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Glewlwyd's config file (libconfig). `use_secure_connection` must not be
/// written at all: 2.7.5 then wants certificate files even when it is false.
fn write_config(dir: &Path, port: u16) {
    let config = format!(
        r#"port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
api_prefix="api"
log_mode="file"
log_level="INFO"
log_file="{log}"
cookie_secure=0
session_key="GLEWLWYD2_SESSION_ID"
session_expiration=3600
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = {{ type = "sqlite3"; path = "{db}"; }};
"#,
        log = dir.join("glewlwyd.log").display(),
        db = dir.join("glewlwyd.db").display(),
    );
    // A fresh log per attempt, so the start-up lines read are this attempt's.
    let _ = std::fs::remove_file(dir.join("glewlwyd.log"));
    std::fs::write(dir.join("glewlwyd.conf"), config).expect("write glewlwyd.conf");
}

/// Starts Glewlwyd and waits (bounded) until its log says it listens:
/// `Some(child)`; `None` when it could not bind its port (exited, to retry on
/// another). Any other early exit, or no word in time, fails the test.
async fn launch(glewlwyd: &Path, dir: &Path) -> Option<Child> {
    let output = |name: &str| {
        File::create(dir.join(name))
            .map(Stdio::from)
            .expect("create an output file")
    };
    let mut child = Command::new(glewlwyd)
        .arg(format!(
            "--config-file={}",
            dir.join("glewlwyd.conf").display()
        ))
        .stdin(Stdio::null())
        .stdout(output("stdout.log"))
        .stderr(output("stderr.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}; {INSTALL_HINT}", glewlwyd.display()));
    for _ in 0..POLL_ATTEMPTS {
        let log = std::fs::read_to_string(dir.join("glewlwyd.log")).unwrap_or_default();
        if log.contains(STARTED_LINE) {
            return Some(child);
        }
        if let Some(status) = child.try_wait().expect("poll glewlwyd") {
            assert!(
                log.contains(BIND_FAILED_LINE),
                "glewlwyd exited at start-up ({status}):\n{}",
                read_logs(dir)
            );
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "glewlwyd did not start within the polling bound:\n{}",
        read_logs(dir)
    );
}

/// Waits (bounded) for `GET /config` to answer 200.
async fn wait_for_config(http: &reqwest::Client, base: &str, dir: &Path) {
    for _ in 0..POLL_ATTEMPTS {
        if let Ok(reply) = http.get(format!("{base}/config")).send().await {
            if reply.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("{base}/config never answered 200:\n{}", read_logs(dir));
}

/// Glewlwyd's log file, stdout and stderr.
fn read_logs(dir: &Path) -> String {
    ["glewlwyd.log", "stdout.log", "stderr.log"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            format!("--- {name}\n{text}")
        })
        .collect()
}
