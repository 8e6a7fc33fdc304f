//! Debian's Caddy with the shipped `examples/forward-auth/Caddyfile`.

use std::net::SocketAddr;
use std::path::Path;

use super::ingress::{find, rewrite, shipped, Backends, Ingress};

/// What the Caddy tests say when it is missing (`tests/run` installs it).
pub const CADDY_MISSING: &str = "caddy not found: install it with `apt-get install caddy`";

/// Caddy takes its listen address in two parts: the port from the site
/// addresses, the interface from `bind`. The file states the whole address
/// (127.0.0.1:8000) in its opening comment, which `rewrite` replaces with
/// the backends' addresses; the sites' ports are replaced here, and `bind`
/// must be 127.0.0.1, where the tests listen.
const SHIPPED_SITES: &str = "http://store.localhost:8000, http://forums.localhost:8000 {";
const SHIPPED_BIND: &str = "\tbind 127.0.0.1\n";

/// Starts Caddy in front of `backends`: `caddy run` with the shipped
/// Caddyfile, its state (`HOME`, `XDG_DATA_HOME`, `XDG_CONFIG_HOME`) in the
/// temp dir.
pub async fn start(backends: Backends) -> Ingress {
    let caddy = find("caddy", &[]).unwrap_or_else(|| panic!("{CADDY_MISSING}"));
    // env(1) sets the variables and execs Caddy in its place: the child's
    // pid is Caddy's.
    let env = find("env", &[]).expect("env(1)");
    let text = shipped("Caddyfile");
    assert!(
        text.contains(SHIPPED_SITES),
        "the shipped Caddyfile no longer has the sites {SHIPPED_SITES:?}"
    );
    assert!(
        text.contains(SHIPPED_BIND),
        "the shipped Caddyfile no longer binds to 127.0.0.1"
    );
    let prepare = move |dir: &Path, listen: SocketAddr| {
        assert!(listen.ip().is_loopback(), "{listen}");
        let sites = SHIPPED_SITES.replace(":8000", &format!(":{}", listen.port()));
        let config = rewrite(&text.replace(SHIPPED_SITES, &sites), &backends, listen);
        std::fs::write(dir.join("Caddyfile"), config).expect("write Caddyfile");
        for state in ["home", "data", "config"] {
            std::fs::create_dir_all(dir.join(state)).expect("state dir");
        }
    };
    Ingress::start("caddy", &env, prepare, move |dir| {
        let d = dir.display();
        vec![
            format!("HOME={d}/home"),
            format!("XDG_DATA_HOME={d}/data"),
            format!("XDG_CONFIG_HOME={d}/config"),
            caddy.display().to_string(),
            "run".into(),
            "--config".into(),
            format!("{d}/Caddyfile"),
            "--adapter".into(),
            "caddyfile".into(),
        ]
    })
    .await
}
