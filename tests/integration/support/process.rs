//! The real `gateway` binary as a child process, for what only a process can
//! show: command-line behaviour, exit codes, signals.
//!
//! Children get an explicit environment (nothing inherited: no stray
//! `GATEWAY_…` overrides, no `RUST_LOG`). A served gateway listens on port 0
//! for both listeners and the test reads the bound addresses from its own
//! JSON start-up log, so there is no pick-a-free-port race. Every wait is
//! bounded, and a child still running when its handle is dropped is killed
//! (by its own pid, through [`std::process::Child::kill`]) and reaped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `gateway` binary Cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// Longest a `gateway check`/`--help` style run may take.
const RUN_BOUND: Duration = Duration::from_secs(30);
/// Longest a served gateway may take to bind and report ready.
const START_BOUND: Duration = Duration::from_secs(15);

/// A `gateway` command with a clean environment plus `env`, output piped.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    command_with_open_files(args, env, None)
}

/// Where util-linux's `prlimit` may live (an absolute path: the child's
/// environment is empty, so there is no `PATH` to search).
const PRLIMIT: &[&str] = &["/usr/bin/prlimit", "/bin/prlimit"];

/// The open-files limits (`RLIMIT_NOFILE`) of this test process: the
/// children inherit them. From `/proc/self/limits`.
pub fn open_files_limits() -> OpenFiles {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("/proc/self/limits lists open files");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [soft, hard] => OpenFiles { soft, hard },
        _ => panic!("unexpected /proc/self/limits line: {line:?}"),
    }
}

/// Soft and hard `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

/// Like [`command`], started through `prlimit --nofile=SOFT:HARD` when
/// `open_files` is given (prlimit sets the limits, then execs the gateway,
/// so the child's pid is the gateway's).
fn command_with_open_files(
    args: &[&str],
    env: &[(&str, &str)],
    open_files: Option<OpenFiles>,
) -> Command {
    let mut cmd = match open_files {
        None => Command::new(BIN),
        Some(limits) => {
            let prlimit = PRLIMIT
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or_else(|| {
                    panic!("prlimit not found in {PRLIMIT:?}: install util-linux (apt-get install util-linux)")
                });
            let mut cmd = Command::new(prlimit);
            cmd.arg(format!("--nofile={}:{}", limits.soft, limits.hard))
                .arg("--")
                .arg(BIN);
            cmd
        }
    };
    cmd.args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Lines of one output pipe, collected by a thread until EOF.
struct Captured {
    lines: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Captured {
    fn new(pipe: impl Read + Send + 'static) -> Captured {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        Captured {
            lines,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        let lines = self.lines.lock().expect("lock");
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Whether the pipe reached EOF and every line is collected.
    fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for EOF (the child has exited, so it comes promptly).
    fn finish(&mut self) -> String {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.text()
    }
}

/// A finished `gateway` run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `gateway ARGS` with exactly `env` as its environment and waits (at most
/// 30 s) for it to exit.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut child = command(args, env)
        .spawn()
        .expect("spawn the gateway binary");
    let mut stdout = Captured::new(child.stdout.take().expect("stdout"));
    let mut stderr = Captured::new(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + RUN_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`gateway {}` still running after {RUN_BOUND:?}; stderr:\n{}",
                args.join(" "),
                stderr.text()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// A served gateway in its own process.
pub struct GatewayProcess {
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    child: Child,
    exited: Option<ExitStatus>,
    stdout: Captured,
    stderr: Captured,
    _dir: tempfile::TempDir,
}

/// Builder: `GatewayProcess::builder().server(…).app(…).start().await`.
#[derive(Default)]
pub struct GatewayProcessBuilder {
    server: String,
    sections: String,
    apps: String,
    level: Option<String>,
    env: Vec<(String, String)>,
    open_files: Option<OpenFiles>,
    /// A whole configuration file, used instead of the pieces above.
    config: Option<String>,
}

impl GatewayProcessBuilder {
    /// Raw TOML lines for `[server]` (`listen` and `admin_listen` are set already).
    pub fn server(mut self, toml: &str) -> Self {
        self.server.push_str(toml);
        self.server.push('\n');
        self
    }

    /// Raw TOML for other sections (`[upstream]` …; `[log]` is set already).
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push_str(toml);
        self.sections.push('\n');
        self
    }

    /// An `[[apps]]` entry `name` on `host` forwarding to `upstream`.
    pub fn app(mut self, name: &str, host: &str, upstream: SocketAddr) -> Self {
        self.apps.push_str(&format!(
            "[[apps]]\nname = {name:?}\nhosts = [{host:?}]\nupstream = \"http://{upstream}\"\nauth = false\n\n"
        ));
        self
    }

    /// `log.level` instead of `warn,gateway=info`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.level = Some(level.to_owned());
        self
    }

    /// An environment variable for the child (its environment is otherwise empty).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the child with these open-files limits (through `prlimit`).
    pub fn open_files(mut self, limits: OpenFiles) -> Self {
        self.open_files = Some(limits);
        self
    }

    /// A whole configuration file instead of `server`, `section`, `app` and
    /// `log_level`. It must listen on `127.0.0.1:0` for both listeners and
    /// log JSON lines including the gateway's `info` lines (see
    /// [`Self::toml`]), which tell the bound addresses.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_owned());
        self
    }

    /// The configuration file the process gets. Logs are JSON lines at `warn`,
    /// plus the gateway's own `info` lines (start-up addresses, signals,
    /// drain outcome), which the tests read.
    pub fn toml(&self) -> String {
        if let Some(config) = &self.config {
            return config.clone();
        }
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n\
             [log]\nlevel = {:?}\nformat = \"json\"\naccess = false\n\n{}\n{}",
            self.server,
            self.level.as_deref().unwrap_or("warn,gateway=info"),
            self.sections,
            self.apps
        )
    }

    /// Spawns the binary and waits (bounded) until both listeners are bound
    /// and `/readyz` answers 200.
    pub async fn start(self) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, self.toml()).expect("write config");
        let path = path.to_str().expect("utf-8 temp path").to_owned();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut child = command_with_open_files(&["--config", &path], &env, self.open_files)
            .spawn()
            .expect("spawn the gateway binary");
        let stdout = Captured::new(child.stdout.take().expect("stdout"));
        let stderr = Captured::new(child.stderr.take().expect("stderr"));
        let mut process = GatewayProcess {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            child,
            exited: None,
            stdout,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + START_BOUND;
        loop {
            let proxy = process.logged_addr("gateway ready");
            let admin = process.logged_addr("admin listening");
            if let (Some(proxy), Some(admin)) = (proxy, admin) {
                process.addr = proxy;
                process.admin = admin;
                break;
            }
            process.assert_starting(deadline, "log its listen addresses");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        loop {
            if let Ok((200, _)) = http_get(process.admin, "admin", "/readyz").await {
                return process;
            }
            process.assert_starting(deadline, "answer /readyz with 200");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl GatewayProcess {
    pub fn builder() -> GatewayProcessBuilder {
        GatewayProcessBuilder::default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `SIGNAL` (`"TERM"`, `"INT"` …) to this child with `kill(1)`.
    /// Refuses once the child has been reaped (its pid may be reused).
    pub fn signal(&mut self, signal: &str) {
        assert!(
            self.try_exit_status().is_none(),
            "gateway exited before SIG{signal} could be sent:\n{}",
            self.logs()
        );
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// The exit status if the child has exited (reaping it).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits up to `bound` for the child to exit; panics (with its logs) if it
    /// does not.
    pub async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.try_exit_status() {
                // Let the readers collect the last lines before anyone looks.
                let eof_by = Instant::now() + Duration::from_secs(5);
                while !(self.stdout.is_finished() && self.stderr.is_finished())
                    && Instant::now() < eof_by
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway (pid {}) still running {bound:?} later; logs:\n{}",
                self.pid(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the child wrote so far, stdout then stderr.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout.text(), self.stderr.text())
    }

    /// The `message` of every JSON log line so far.
    pub fn log_messages(&self) -> Vec<String> {
        self.log_lines()
            .iter()
            .filter_map(|line| line["fields"]["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// The `fields` of every JSON log line whose message starts with `prefix`.
    pub fn logged(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.log_lines()
            .into_iter()
            .filter(|line| {
                line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(prefix))
            })
            .map(|line| line["fields"].clone())
            .collect()
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The `addr` field of the first log line whose message starts with `prefix`.
    fn logged_addr(&self, prefix: &str) -> Option<SocketAddr> {
        self.log_lines().iter().find_map(|line| {
            let fields = &line["fields"];
            if !fields["message"].as_str()?.starts_with(prefix) {
                return None;
            }
            fields["addr"].as_str()?.parse().ok()
        })
    }

    fn assert_starting(&mut self, deadline: Instant, what: &str) {
        if let Some(status) = self.try_exit_status() {
            panic!(
                "gateway exited ({status}) before it could {what}; logs:\n{}",
                self.logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not {what} within {START_BOUND:?}; logs:\n{}",
            self.logs()
        );
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET` on a fresh connection (`Connection: close`), bounded by 5 s:
/// the status code and body. Errors if the connection cannot be made or the
/// answer is not HTTP.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 5 s"))??;
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not HTTP: {answer:?}"),
        )
    };
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .ok_or_else(bad)?;
    Ok((status, body))
}

/// Whether a connection attempt to `addr` is refused right now (nothing
/// listens). A connect that hangs for a second counts as not refused.
pub async fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
