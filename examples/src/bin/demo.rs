//! Run with: cargo run --release -p gateway-examples --bin demo [-- --config config.toml]
//!
//! The all-in-one demo: starts the store and forums demo apps on the upstream
//! addresses named in the config, then the gateway in front of them, in one
//! process, and prints where to go. Stop it with Ctrl-C.

use std::error::Error;
use std::path::PathBuf;

use tokio::net::TcpListener;

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
    gateway::telemetry::init(&config.log);
    tokio::runtime::Runtime::new()?.block_on(run(config))
}

async fn run(config: gateway::Config) -> Result<(), Box<dyn Error>> {
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
    println!("  Stop with Ctrl-C.");
    println!();
    gateway::serve(listeners, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
