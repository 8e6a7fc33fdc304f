//! `TestGateway`: the real `gateway::serve` on 127.0.0.1:0, configured from TOML.
//!
//! Apps are served without login (`auth = false`) unless given
//! [`AppSpec::login`]; [`TestGatewayBuilder::idp`] writes the `[idp]`,
//! `[session]` and `[login]` sections for a [`TestIdp`].

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::idp::{TestIdp, API_KEY, HMAC_SECRET, ISSUER};
use super::process::GatewayProcess;
use super::{Client, POLL_ATTEMPTS, POLL_INTERVAL};

/// `[session] cookie_key` of test gateways (48 bytes).
pub const COOKIE_KEY: &str = "test cookie key: forty-eight bytes, no more, ok!";

/// TOML lines `key = value`, one per key: setting a key again replaces it, so
/// defaults can be overridden without writing a key twice (invalid TOML).
#[derive(Default, Clone)]
pub struct Keys(Vec<(String, String)>);

impl Keys {
    /// Sets every `key = value` line of `toml`, replacing earlier values.
    pub fn set(&mut self, toml: &str) {
        for line in toml.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let key = line
                .split_once('=')
                .map_or(line, |(k, _)| k)
                .trim()
                .to_owned();
            match self.0.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = line.to_owned(),
                None => self.0.push((key, line.to_owned())),
            }
        }
    }

    /// Sets `line` unless `key` is already set.
    pub fn set_default(&mut self, key: &str, line: &str) {
        if !self.0.iter().any(|(k, _)| k == key) {
            self.0.push((key.to_owned(), line.to_owned()));
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `[name]` and the lines, or nothing when empty.
    fn table(&self, name: &str) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut out = format!("[{name}]\n");
        for (_, line) in &self.0 {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// One `[[apps]]` entry.
pub struct AppSpec {
    pub name: String,
    pub hosts: Vec<String>,
    pub prefix: String,
    pub upstream: String,
    pub extra: String,
    /// `(client_id, client_secret)`: the app has login.
    pub login: Option<(String, String)>,
    /// `[apps.cookies]`.
    pub cookies: Keys,
    /// `[apps.headers]`.
    pub headers: Keys,
    /// `[apps.idp]`.
    pub idp: Keys,
}

impl AppSpec {
    /// An app called `name` on `host` forwarding to `upstream` (an address).
    pub fn new(name: &str, host: &str, upstream: SocketAddr) -> AppSpec {
        AppSpec {
            name: name.into(),
            hosts: vec![host.into()],
            prefix: "/".into(),
            upstream: format!("http://{upstream}"),
            extra: String::new(),
            login: None,
            cookies: Keys::default(),
            headers: Keys::default(),
            idp: Keys::default(),
        }
    }

    /// Puts the app behind the login workflow as IdP client `client_id`, with
    /// cookies that are not `Secure` (the tests speak plain HTTP).
    pub fn login(mut self, client_id: &str, client_secret: &str) -> Self {
        self.login = Some((client_id.into(), client_secret.into()));
        self.cookies.set_default("secure", "secure = false");
        self
    }

    /// `key = value` lines for `[apps.cookies]` (replacing earlier values).
    pub fn cookies(mut self, toml: &str) -> Self {
        self.cookies.set(toml);
        self
    }

    /// `key = value` lines for `[apps.headers]`.
    pub fn headers(mut self, toml: &str) -> Self {
        self.headers.set(toml);
        self
    }

    /// `key = value` lines for `[apps.idp]` (this app's IdP overrides).
    pub fn app_idp(mut self, toml: &str) -> Self {
        self.idp.set(toml);
        self
    }

    pub fn hosts(mut self, hosts: &[&str]) -> Self {
        self.hosts = hosts.iter().map(|h| h.to_string()).collect();
        self
    }

    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn upstream_url(mut self, url: &str) -> Self {
        self.upstream = url.into();
        self
    }

    /// Raw TOML lines added to this app's table.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    fn toml(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|h| format!("{h:?}")).collect();
        let auth = match &self.login {
            None => "auth = false\n".to_owned(),
            Some((id, secret)) => format!("client_id = {id:?}\nclient_secret = {secret:?}\n"),
        };
        // Sub-tables come after every plain key of the app (`extra` included).
        format!(
            "[[apps]]\nname = {:?}\nhosts = [{}]\npath_prefix = {:?}\nupstream = {:?}\n{}{}\n{}{}{}\n",
            self.name,
            hosts.join(", "),
            self.prefix,
            self.upstream,
            auth,
            self.extra,
            self.cookies.table("apps.cookies"),
            self.headers.table("apps.headers"),
            self.idp.table("apps.idp"),
        )
    }
}

/// A running in-process gateway.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Builder: `TestGateway::new().app(…).server("…").start().await`.
#[derive(Default)]
pub struct TestGatewayBuilder {
    apps: Vec<AppSpec>,
    server: String,
    sections: String,
    idp: Keys,
    session: Keys,
    login: Keys,
}

impl TestGateway {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> TestGatewayBuilder {
        TestGatewayBuilder::default()
    }

    /// The common case: one app, `store`, on `store.example.com`, in front of
    /// `upstream`, with default settings.
    pub async fn store(upstream: SocketAddr) -> TestGateway {
        TestGateway::new()
            .app(AppSpec::new("store", "store.example.com", upstream))
            .start()
            .await
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls the admin `/readyz` until it answers 200, within the polling
    /// bound; returns whether it did.
    pub async fn wait_ready(&self) -> bool {
        let admin = Client::new(self.admin);
        for _ in 0..POLL_ATTEMPTS {
            if admin.get("admin", "/readyz").await.status == 200 {
                return true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        false
    }

    /// Stops accepting, drains, and waits for `serve` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("serve result");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestGatewayBuilder {
    pub fn app(mut self, app: AppSpec) -> Self {
        self.apps.push(app);
        self
    }

    /// Raw TOML lines for `[server]`.
    pub fn server(mut self, toml: &str) -> Self {
        self.server.push_str(toml);
        self.server.push('\n');
        self
    }

    /// Raw TOML for other sections (`[upstream]` …).
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push_str(toml);
        self.sections.push('\n');
        self
    }

    /// `[idp]` for `idp` (explicit endpoints, both dialects' addresses, RS256
    /// or HS256 as the IdP signs, leeway 0s), plus `[session] cookie_key` and
    /// `[login] min_failure_time = "50ms"`.
    pub fn idp(mut self, idp: &TestIdp) -> Self {
        let url = |path: &str| format!("{:?}", idp.url(path).to_string());
        self.idp.set(&format!(
            "kind = \"oauth2\"\nissuer = {ISSUER:?}\ndiscovery = false\n\
             token_endpoint = {}\njwks_uri = {}\nrevocation_endpoint = {}\n\
             api_url = {:?}\napi_key = {API_KEY:?}\nleeway = \"0s\"",
            url("/oauth2/token"),
            url("/.well-known/jwks.json"),
            url("/oauth2/revoke"),
            format!("http://{}", idp.addr),
        ));
        if idp.is_hs256() {
            let secret = String::from_utf8(HMAC_SECRET.to_vec()).expect("utf-8 secret");
            self.idp.set(&format!(
                "algorithms = [\"HS256\"]\nhmac_secret = {secret:?}"
            ));
        } else {
            self.idp.set("algorithms = [\"RS256\"]");
        }
        self.session.set(&format!("cookie_key = {COOKIE_KEY:?}"));
        self.login.set("min_failure_time = \"50ms\"");
        self
    }

    /// `key = value` lines for `[idp]`, replacing what [`Self::idp`] wrote.
    pub fn idp_config(mut self, toml: &str) -> Self {
        self.idp.set(toml);
        self
    }

    /// `key = value` lines for `[session]`.
    pub fn session_config(mut self, toml: &str) -> Self {
        self.session.set(toml);
        self
    }

    /// `key = value` lines for `[login]`.
    pub fn login_config(mut self, toml: &str) -> Self {
        self.login.set(toml);
        self
    }

    /// Starts, then waits (bounded, without failing) for `/readyz`: a gateway
    /// with login is ready once it holds the IdP's keys.
    pub async fn start_ready(self) -> TestGateway {
        let gateway = self.start().await;
        gateway.wait_ready().await;
        gateway
    }

    /// The TOML this builder produces (listen addresses are replaced by
    /// pre-bound ephemeral listeners).
    pub fn toml(&self) -> String {
        self.toml_with_log("access = false")
    }

    /// [`Self::toml`] with `log` as the `[log]` table's lines.
    fn toml_with_log(&self, log: &str) -> String {
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n[log]\n{log}\n{}\n",
            self.server, self.sections
        );
        for (name, keys) in [
            ("idp", &self.idp),
            ("session", &self.session),
            ("login", &self.login),
        ] {
            if !keys.is_empty() {
                toml.push_str(&keys.table(name));
                toml.push('\n');
            }
        }
        for app in &self.apps {
            toml.push_str(&app.toml());
        }
        toml
    }

    /// The same configuration served by the real binary in its own process
    /// (its own metrics, its own runtime: one replica as deployed), with
    /// JSON logs at `warn,gateway=info`; ready when this returns.
    pub async fn spawn(self) -> GatewayProcess {
        let toml =
            self.toml_with_log("level = \"warn,gateway=info\"\nformat = \"json\"\naccess = false");
        GatewayProcess::builder().config(&toml).start().await
    }

    pub async fn start(self) -> TestGateway {
        let config = gateway::Config::from_toml(&self.toml()).expect("test config is valid");
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = proxy.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let listeners = gateway::Listeners {
            proxy,
            admin: Some(admin),
        };
        let task = tokio::spawn(gateway::serve(listeners, config, async {
            let _ = rx.await;
        }));
        TestGateway {
            addr,
            admin: admin_addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}
