//! `RedisServer`: Debian's `redis-server` on a free 127.0.0.1 port, for the
//! shared-store tests: persistence off (`--save ""`, `--appendonly no`, a
//! temp dir as `--dir`), optionally with a password (`--requirepass`) or TLS
//! only (`--port 0 --tls-port …`, a CA and server certificate made with
//! rcgen). The tests can stop it in its tracks (`SIGSTOP`/`SIGCONT`), kill
//! it and start it again empty on the same port, flush it, and send it
//! commands (through the `redis` crate, over TLS too). It is killed by the
//! pid of the child spawned here when dropped.
//!
//! A missing `redis-server` is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{POLL_ATTEMPTS, POLL_INTERVAL};

/// What the tests say when the program is missing (`tests/run` installs it).
pub const MISSING: &str = "redis-server not found: install it with `apt-get install redis-server`";

/// Attempts at starting on a fresh port before giving up (another process
/// can take a released ephemeral port before Redis binds it).
const START_ATTEMPTS: usize = 3;
/// Longest one command from the test may take (a paused server never
/// answers: the tests do not send it commands then).
const COMMAND_BOUND: Duration = Duration::from_secs(5);

/// TLS material for a TLS-only server: a CA, and a server certificate for
/// `127.0.0.1` signed by it.
pub struct RedisTls {
    /// The CA certificate (PEM), what clients trust.
    pub ca_pem: String,
    /// Its file, for `store.tls_ca_file`.
    pub ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl RedisTls {
    fn generate(dir: &Path) -> RedisTls {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gateway test Redis CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");

        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server certificate");

        let ca_file = dir.join("ca.pem");
        let cert_file = dir.join("server.pem");
        let key_file = dir.join("server.key");
        std::fs::write(&ca_file, ca.pem()).expect("write CA");
        std::fs::write(&cert_file, cert.pem()).expect("write server certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write server key");
        RedisTls {
            ca_pem: ca.pem(),
            ca_file,
            cert_file,
            key_file,
        }
    }
}

/// Options: a password, TLS.
#[derive(Debug, Default, Clone)]
pub struct RedisBuilder {
    password: Option<String>,
    tls: bool,
}

impl RedisBuilder {
    /// `--requirepass password`.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// TLS only: `--port 0 --tls-port P`, clients not asked for certificates.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts it and waits (bounded) until it answers `PING`.
    pub async fn start(self) -> RedisServer {
        let binary = find_redis_server().unwrap_or_else(|| panic!("{MISSING}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = self.tls.then(|| RedisTls::generate(dir.path()));
        let mut server = RedisServer {
            port: 0,
            binary,
            dir,
            password: self.password,
            tls,
            child: None,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if server.launch().await {
                return server;
            }
        }
        panic!(
            "redis-server did not start in {START_ATTEMPTS} attempts:\n{}",
            server.log()
        );
    }
}

/// A running `redis-server`, ours.
pub struct RedisServer {
    port: u16,
    binary: PathBuf,
    dir: TempDir,
    password: Option<String>,
    tls: Option<RedisTls>,
    child: Option<Child>,
}

impl RedisServer {
    /// Builder: `RedisServer::builder().password("…").start().await`.
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    /// A plain server without a password.
    pub async fn start() -> RedisServer {
        RedisServer::builder().start().await
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://…` for a TLS server; never
    /// with the password.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The TLS material of a TLS server.
    pub fn tls(&self) -> Option<&RedisTls> {
        self.tls.as_ref()
    }

    /// The `[store]` section that points a gateway here with `key_prefix`
    /// (the password, the CA file, as the server needs).
    pub fn store_section(&self, key_prefix: &str) -> String {
        let mut section = format!(
            "[store]\nkind = \"redis\"\nurl = {:?}\nkey_prefix = {key_prefix:?}\n",
            self.url()
        );
        if let Some(password) = &self.password {
            section.push_str(&format!("password = {password:?}\n"));
        }
        if let Some(tls) = &self.tls {
            section.push_str(&format!(
                "tls_ca_file = {:?}\n",
                tls.ca_file.to_str().expect("utf-8 temp path")
            ));
        }
        section
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Redis's own log and its standard error so far (for failure
    /// messages).
    pub fn log(&self) -> String {
        ["redis.log", "stderr.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect()
    }

    /// `SIGSTOP`: the server keeps its sockets open and answers nothing
    /// (a hung Redis, as clients see one).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// `SIGCONT` after [`RedisServer::pause`]: it answers what it was sent.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// Kills the server (`SIGKILL`, by its pid) and reaps it: its data is
    /// gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port; waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.launch().await,
            "redis-server could not bind port {} again:\n{}",
            self.port,
            self.log()
        );
    }

    /// A client for this server (password and CA included).
    pub fn client(&self) -> redis::Client {
        use redis::IntoConnectionInfo;
        let mut info = self
            .url()
            .as_str()
            .into_connection_info()
            .expect("connection info");
        if let Some(password) = &self.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        match &self.tls {
            Some(tls) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(tls.ca_pem.clone().into_bytes()),
                },
            ),
            None => redis::Client::open(info),
        }
        .expect("redis client")
    }

    /// Runs `cmd` on a fresh connection (bounded); panics on an error.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self.try_query(cmd).await {
            Ok(value) => value,
            Err(e) => panic!("redis {cmd:?}: {e}\n{}", self.log()),
        }
    }

    /// [`RedisServer::query`] that returns the error.
    pub async fn try_query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let client = self.client();
        let run = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            cmd.query_async::<T>(&mut connection).await
        };
        match tokio::time::timeout(COMMAND_BOUND, run).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {COMMAND_BOUND:?}")),
        }
    }

    /// `FLUSHALL`: every key gone, as after a restart.
    pub async fn flushall(&self) {
        let () = self.query(&redis::cmd("FLUSHALL")).await;
    }

    /// Every key, by `SCAN` (bounded).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        for _ in 0..10_000 {
            let (next, batch): (u64, Vec<String>) = self
                .query(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000))
                .await;
            keys.extend(batch);
            if next == 0 {
                keys.sort();
                keys.dedup();
                return keys;
            }
            cursor = next;
        }
        panic!("SCAN did not finish");
    }

    /// Spawns the server on `self.port` and waits (bounded) for `PING`:
    /// `false` if it exited because the port was taken.
    async fn launch(&mut self) -> bool {
        for name in ["redis.log", "stderr.log"] {
            let _ = std::fs::remove_file(self.dir.path().join(name));
        }
        let port = self.port.to_string();
        let dir = self
            .dir
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_owned();
        let log = format!("{dir}/redis.log");
        let mut args: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));
        push(&["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        push(&["--dir", &dir, "--logfile", &log, "--daemonize", "no"]);
        match &self.tls {
            None => push(&["--port", &port]),
            Some(tls) => {
                let path = |p: &PathBuf| p.to_str().expect("utf-8 temp path").to_owned();
                push(&["--port", "0", "--tls-port", &port]);
                push(&["--tls-cert-file", &path(&tls.cert_file)]);
                push(&["--tls-key-file", &path(&tls.key_file)]);
                push(&["--tls-ca-cert-file", &path(&tls.ca_file)]);
                push(&["--tls-auth-clients", "no"]);
            }
        }
        if let Some(password) = &self.password {
            push(&["--requirepass", password]);
        }
        let mut child = Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("stderr.log")).expect("stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}; {MISSING}", self.binary.display()));
        for _ in 0..POLL_ATTEMPTS {
            if let Some(status) = child.try_wait().expect("poll redis-server") {
                let log = self.log();
                assert!(
                    log.contains("Address already in use"),
                    "redis-server exited at start-up ({status}):\n{log}"
                );
                return false;
            }
            if self.answers_ping().await {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "redis-server did not answer PING within the polling bound:\n{}",
            self.log()
        );
    }

    async fn answers_ping(&self) -> bool {
        let client = self.client();
        let ping = async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), ping).await,
            Ok(Ok(pong)) if pong == "PONG"
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Our own child, by its pid (SIGKILL ends a stopped process too).
        self.kill();
    }
}

/// `redis-server` at Debian's path or on `PATH`.
fn find_redis_server() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    [PathBuf::from("/usr/bin/redis-server")]
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
}

/// A port the OS just handed out on 127.0.0.1, released for Redis.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
