//! The `gateway` binary: parse arguments, start logging, load the config,
//! bind, and hand over to the library's `serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc returns freed pages to the system promptly (parked idle
/// connections really give their buffers back) and allocates faster than the
/// system allocator on the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reverse-proxy authentication gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    /// Configuration file (TOML); `GATEWAY_…` environment variables override it.
    #[arg(long, short = 'c', global = true, default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and exit (0 if valid).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match gateway::Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gateway: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Check) = cli.command {
        // Builds what `serve` would build (login pages rendered with sample
        // values, keys, caches), without binding or calling anyone.
        if let Err(e) = gateway::pipeline::Gateway::new(config.clone()) {
            eprintln!("gateway: invalid configuration: {e}");
            return ExitCode::from(2);
        }
        print!("{}", summary(&cli.config, &config));
        return ExitCode::SUCCESS;
    }
    gateway::ops::telemetry::init(&config.log);
    // Before any thread or socket exists: every connection is a descriptor.
    gateway::ops::open_files::raise();
    // The accept loop, the admin listener and background work; requests are
    // served on the worker threads `serve` starts.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "gateway stopped");
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: gateway::Config) -> std::io::Result<()> {
    let listeners = gateway::Listeners::bind(&config).await?;
    gateway::serve(listeners, config, shutdown_signal()).await
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// What `gateway check` prints: the effective settings after all layers.
fn summary(path: &std::path::Path, config: &gateway::Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let s = &config.server;
    let _ = writeln!(out, "{}: ok", path.display());
    let _ = writeln!(
        out,
        "listen {} ({}), admin {}",
        s.listen,
        if s.tls.is_some() { "https" } else { "http" },
        s.admin_listen.map_or("off".to_owned(), |a| a.to_string())
    );
    let _ = writeln!(out, "store {}", config.store.describe());
    if let Some(fa) = &config.forward_auth {
        let nets: Vec<String> = fa.ingresses.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "forward-auth {} for {:?} at {}, refresh by {:?}",
            fa.path,
            fa.ingress,
            nets.join(","),
            fa.refresh
        );
    }
    for app in &config.apps {
        let hosts: Vec<String> = app.hosts.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "app {}: {} {} -> {}",
            app.name,
            hosts.join(","),
            app.path_prefix,
            app.upstream.url
        );
        match &app.auth {
            None => {
                let _ = writeln!(out, "  login: off (served without login)");
            }
            Some(auth) => {
                let idp = &auth.idp;
                let _ = writeln!(
                    out,
                    "  login: client {} at {} ({:?}), {}/login, cookies {} + {}{}",
                    auth.client.id,
                    idp.issuer
                        .as_deref()
                        .or(idp.token_endpoint.as_ref().map(|u| u.as_str()))
                        .unwrap_or("?"),
                    idp.kind,
                    auth.gateway_path,
                    auth.jwt_cookie.wire_name(),
                    auth.refresh_cookie.wire_name(),
                    if auth.jwt_cookie.secure {
                        ""
                    } else {
                        " (NOT secure)"
                    }
                );
            }
        }
    }
    out
}
