//! Real ingresses in front of the gateway in forward-auth mode, each started
//! from the config shipped in `examples/forward-auth/` with only addresses,
//! ports and run-time paths changed: the tests prove the files users copy.
//!
//! Each runs on a free 127.0.0.1 port in a temp dir of its own and is
//! killed by the pid of the child spawned here when dropped. A missing
//! program is a failure that says what to install, never a skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::{POLL_ATTEMPTS, POLL_INTERVAL};

/// The directory of the shipped forward-auth configs.
pub const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/forward-auth");

/// The hosts of the shipped configs.
pub const STORE: &str = "store.localhost";
pub const FORUMS: &str = "forums.localhost";

/// The addresses the shipped configs use, replaced by the test's.
pub const SHIPPED_GATEWAY: &str = "127.0.0.1:8080";
pub const SHIPPED_STORE: &str = "127.0.0.1:3001";
pub const SHIPPED_FORUMS: &str = "127.0.0.1:3002";
pub const SHIPPED_LISTEN: &str = "127.0.0.1:8000";

/// Attempts at starting on a fresh port (another process can take a port
/// between its release and the ingress binding it).
const START_ATTEMPTS: usize = 3;

/// Where the ingress sends what: the gateway and the two apps.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub gateway: SocketAddr,
    pub store: SocketAddr,
    pub forums: SocketAddr,
}

/// A shipped config file's text.
pub fn shipped(file: &str) -> String {
    let path = Path::new(SHIPPED).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("shipped config {}: {e}", path.display()))
}

/// `text` with the shipped addresses replaced by `backends` and `listen`;
/// every shipped address must occur (a test must not run a config it did
/// not rewrite).
pub fn rewrite(text: &str, backends: &Backends, listen: SocketAddr) -> String {
    let mut text = text.to_owned();
    for (from, to) in [
        (SHIPPED_GATEWAY, backends.gateway),
        (SHIPPED_STORE, backends.store),
        (SHIPPED_FORUMS, backends.forums),
        (SHIPPED_LISTEN, listen),
    ] {
        assert!(
            text.contains(from),
            "the shipped config no longer mentions {from}"
        );
        text = text.replace(from, &to.to_string());
    }
    text
}

/// A program in the usual places (a non-login root shell may lack
/// `/usr/sbin` on `PATH`), or on `PATH`.
pub fn find(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .collect();
    candidates.extend(extra.iter().map(PathBuf::from));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(program)));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// A free port on 127.0.0.1 (released at once: the ingress binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running ingress, ours.
pub struct Ingress {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Its name, for messages.
    pub name: &'static str,
    dir: TempDir,
    child: Child,
}

impl Ingress {
    /// Runs `program` (arguments from `args`, given the temp dir and the
    /// port to listen on, after `prepare` wrote its files there) and waits
    /// (bounded) until the port accepts; a fresh port on each attempt.
    pub async fn start(
        name: &'static str,
        program: &Path,
        prepare: impl Fn(&Path, SocketAddr),
        args: impl Fn(&Path) -> Vec<String>,
    ) -> Ingress {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            prepare(dir.path(), addr);
            let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("log");
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
            let mut child = Command::new(program)
                .args(args(dir.path()))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("start {name} ({}): {e}", program.display()));
            for _ in 0..POLL_ATTEMPTS * 2 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Ingress {
                        addr,
                        name,
                        dir,
                        child,
                    };
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = log_of(dir.path());
        }
        panic!("{name} did not start in {START_ATTEMPTS} attempts:\n{last_log}");
    }

    /// Its output so far (for failure messages).
    pub fn log(&self) -> String {
        log_of(self.dir.path())
    }

    /// The ingress's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn log_of(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stdout.log", "stderr.log", "error.log"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            out.push_str(&format!("--- {name}\n{text}\n"));
        }
    }
    out
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the nginx tests say when it is missing (`tests/run` installs it).
pub const NGINX_MISSING: &str =
    "nginx not found: install it with `apt-get install nginx-light` (it has auth_request)";

/// Debian's nginx with the shipped `nginx.conf`: run-time paths (pid,
/// logs, temp files) in the temp dir, workers as the current user.
pub async fn nginx(backends: Backends) -> Ingress {
    let text = shipped("nginx.conf");
    run_nginx("nginx", move |listen| rewrite(&text, &backends, listen)).await
}

/// nginx set up the way ingress-nginx (the Kubernetes controller) sets
/// itself up for the annotations of the shipped
/// `kubernetes-ingress-nginx.yaml` (`auth-url` with `?host=`,
/// `auth-response-headers`, `auth-signin` to the refresh page), as its
/// template writes the locations: the subrequest carries the gateway's
/// `Host`, `X-Original-URL` built from the client's `Host` header, and
/// `X-Original-Method`; a 401 goes to `auth-signin`. (ingress-nginx escapes
/// the return-to with a module nginx-light lacks; the tests' paths need no
/// escaping.)
pub async fn ingress_nginx_like(backends: Backends) -> Ingress {
    run_nginx("nginx as ingress-nginx", move |listen| {
        format!(
            r#"
http {{
    upstream gateway {{ server {gateway}; keepalive 8; }}
    upstream store {{ server {store}; keepalive 8; }}
    server {{
        listen {listen};
        server_name store.localhost;
        underscores_in_headers off;

        location = /_external-auth-Lw-Prefix {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header Host gateway.gateway.svc.cluster.local;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Sent-From "nginx-ingress-controller";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Auth-Request-Redirect $request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://gateway/.gateway-auth?host=store.localhost;
        }}

        location @store-signin {{
            internal;
            return 302 http://$host/.gateway/refresh?return_to=$request_uri;
        }}

        location / {{
            auth_request /_external-auth-Lw-Prefix;
            auth_request_set $authHeader0 $upstream_http_x_auth_request_user;
            proxy_set_header 'X-Auth-Request-User' $authHeader0;
            auth_request_set $authHeader1 $upstream_http_x_auth_request_email;
            proxy_set_header 'X-Auth-Request-Email' $authHeader1;
            auth_request_set $authHeader2 $upstream_http_x_auth_request_roles;
            proxy_set_header 'X-Auth-Request-Roles' $authHeader2;
            auth_request_set $authHeader3 $upstream_http_cookie;
            proxy_set_header 'Cookie' $authHeader3;
            error_page 401 = @store-signin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_pass http://store;
        }}

        # the second Ingress: the gateway's pages, no auth
        location /.gateway/ {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_pass http://gateway;
        }}
    }}
}}
"#,
            gateway = backends.gateway,
            store = backends.store,
        )
    })
    .await
}

/// Runs nginx with the `http {}` configuration `config` makes for a listen
/// address: run-time paths (pid, logs, temp files) in a temp dir, workers
/// as the current user.
async fn run_nginx(
    name: &'static str,
    config: impl Fn(SocketAddr) -> String + Send + 'static,
) -> Ingress {
    let program = find("nginx", &[]).unwrap_or_else(|| panic!("{NGINX_MISSING}"));
    let prepare = move |dir: &Path, listen: SocketAddr| {
        let d = dir.display();
        let mut config = config(listen);
        let temp = format!(
            "http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
        );
        assert!(
            config.contains("\nhttp {\n"),
            "the nginx config has an http block"
        );
        config = config.replacen("\nhttp {\n", &format!("\n{temp}"), 1);
        // Run as root, the workers would switch to nobody and lose the temp
        // dir; keep them as us.
        let root = effective_uid() == Some(0);
        let events = match config.contains("\nevents ") {
            true => "",
            false => "events {}\n",
        };
        let head = format!(
            "{}daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n{events}",
            if root { "user root;\n" } else { "" }
        );
        std::fs::write(dir.join("nginx.conf"), head + &config).expect("write nginx.conf");
    };
    Ingress::start(name, &program, prepare, |dir| {
        let d = dir.display().to_string();
        vec![
            "-p".into(),
            format!("{d}/"),
            "-c".into(),
            format!("{d}/nginx.conf"),
            "-e".into(),
            format!("{d}/error.log"),
        ]
    })
    .await
}

/// This process's effective user id, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
