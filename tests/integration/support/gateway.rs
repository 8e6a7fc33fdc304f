//! `TestGateway`: the real `gateway::serve` on 127.0.0.1:0, configured from TOML.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One `[[apps]]` entry.
pub struct AppSpec {
    pub name: String,
    pub hosts: Vec<String>,
    pub prefix: String,
    pub upstream: String,
    pub extra: String,
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
        }
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
        format!(
            "[[apps]]\nname = {:?}\nhosts = [{}]\npath_prefix = {:?}\nupstream = {:?}\n{}\n",
            self.name,
            hosts.join(", "),
            self.prefix,
            self.upstream,
            self.extra
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

    /// The TOML this builder produces (listen addresses are replaced by
    /// pre-bound ephemeral listeners).
    pub fn toml(&self) -> String {
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n[log]\naccess = false\n{}\n",
            self.server, self.sections
        );
        for app in &self.apps {
            toml.push_str(&app.toml());
        }
        toml
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
