//! Run with: cargo run --release -p gateway-examples --bin demo [-- --config config.toml]
//!
//! The all-in-one demo: starts the development IdP (on 127.0.0.1:9011, users
//! from `examples/users.toml`), the store and forums demo apps on the
//! upstream addresses named in the config, then the gateway in front of them,
//! in one process, and prints where to go and whom to log in as. Stop it
//! with Ctrl-C.

use std::error::Error;
use std::path::{Path, PathBuf};

use gateway_examples::idp::{self, DevIdpConfig, Directory};
use tokio::net::TcpListener;

/// The demo users file, next to this crate's manifest.
const DEMO_USERS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/users.toml");

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut path = PathBuf::from("config.toml");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = args.next().ok_or("--config needs a file")?.into(),
            "-h" | "--help" => {
                println!("usage: demo [--config FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let config = gateway::Config::load(&path).map_err(|e| format!("invalid configuration: {e}"))?;
    gateway::ops::telemetry::init(&config.log);
    tokio::runtime::Runtime::new()?.block_on(run(config))
}

async fn run(config: gateway::Config) -> Result<(), Box<dyn Error>> {
    // The development IdP first: the gateway reads its discovery document.
    let users = Directory::load(Path::new(DEMO_USERS_FILE))?;
    let idp_listener = TcpListener::bind(idp::DEFAULT_LISTEN).await.map_err(|e| {
        format!(
            "cannot start the development IdP on {}: {e}",
            idp::DEFAULT_LISTEN
        )
    })?;
    let idp_config = DevIdpConfig::new(users);
    let logins: Vec<String> = idp_config
        .users
        .users()
        .iter()
        .map(|user| {
            format!(
                "{} / {}  (roles: {})",
                user.username,
                idp::DEMO_PASSWORD,
                user.roles.join(", ")
            )
        })
        .collect();
    tokio::spawn(async move {
        if let Err(e) = idp::serve(idp_listener, idp_config, std::future::pending()).await {
            tracing::error!(error = %e, "the development IdP stopped");
        }
    });
    for app in &config.apps {
        let addr = app.upstream.authority.as_str();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot start the {} demo app on {addr}: {e}", app.name))?;
        match app.name.as_str() {
            "forums" => tokio::spawn(gateway_examples::forums::serve(listener)),
            _ => tokio::spawn(gateway_examples::store::serve(listener)),
        };
    }
    let listeners = gateway::Listeners::bind(&config).await?;
    let port = listeners.proxy.local_addr()?.port();
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!();
    println!("  The gateway is running. Open:");
    for app in &config.apps {
        for host in &app.hosts {
            println!("    {:<8} {scheme}://{host}:{port}/", app.name);
        }
    }
    println!("  (or: curl -H 'Host: store.localhost' http://127.0.0.1:{port}/shopping-cart)");
    println!(
        "  Log in as (DEVELOPMENT IdP on {}, not for production):",
        idp::DEFAULT_ISSUER
    );
    for login in &logins {
        println!("    {login}");
    }
    println!("  Stop with Ctrl-C.");
    println!();
    gateway::serve(listeners, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
