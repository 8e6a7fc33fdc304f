//! Run with: cargo run --release -p gateway-examples --bin demo [-- --config config.toml]
//!
//! The all-in-one demo: starts the development IdP (on 127.0.0.1:9011, users
//! from `examples/users.toml`), the store and forums demo apps on the
//! upstream addresses named in the config, then the gateway in front of them,
//! in one process, and prints where to go and whom to log in as. Stop it
//! with Ctrl-C.
//!
//! The IdP tells the gateway about revoked refresh tokens: unless the config
//! sets up `[events]` webhooks itself, the demo turns on the gateway's
//! FusionAuth webhook endpoint (on the admin listener) with a signing key
//! made at start-up, and the IdP posts its signed
//! `jwt.refresh-token.revoke` events there. Revoking a user at the IdP
//! (`DELETE /api/jwt/refresh?userId=…`) then sends their next click to the
//! login page.

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
    let mut config =
        gateway::Config::load(&path).map_err(|e| format!("invalid configuration: {e}"))?;
    let webhook = revocation_webhook(&mut config)?;
    gateway::ops::telemetry::init(&config.log);
    tokio::runtime::Runtime::new()?.block_on(run(config, webhook))
}

/// Where the IdP posts its revocation webhooks: the gateway's webhook
/// endpoint on its admin listener, with the HMAC key the gateway checks.
/// Turns the endpoint on, with a fresh key, when the config leaves it off;
/// `None` (with a note) when the gateway has no admin listener or a webhook
/// set up without a signing key.
fn revocation_webhook(
    config: &mut gateway::Config,
) -> Result<Option<idp::Webhook>, Box<dyn Error>> {
    use base64::Engine as _;
    use gateway::config::events::Webhook;

    let Some(admin) = config.server.admin_listen else {
        println!("note: no admin listener, so the IdP's revocations do not reach the gateway");
        return Ok(None);
    };
    let webhook = config.events.webhook.get_or_insert_with(|| Webhook {
        path: "/events/fusionauth".to_owned(),
        signing_secret: None,
        signing_idp_keys: false,
        secret: None,
        ttl: std::time::Duration::from_secs(60 * 60),
    });
    if webhook.signing_secret.is_none() && webhook.secret.is_none() && !webhook.signing_idp_keys {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness for the webhook key")?;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        webhook.signing_secret = Some(gateway::config::Secret::new(key));
    }
    let Some(signing_secret) = &webhook.signing_secret else {
        println!(
            "note: [events] webhooks have no webhook_signing_secret, so the IdP's revocations \
             do not reach the gateway"
        );
        return Ok(None);
    };
    Ok(Some(idp::Webhook {
        url: format!("http://{admin}{}", webhook.path),
        signing_secret: signing_secret.expose().to_owned(),
        bearer: webhook.secret.as_ref().map(|s| s.expose().to_owned()),
    }))
}

async fn run(config: gateway::Config, webhook: Option<idp::Webhook>) -> Result<(), Box<dyn Error>> {
    // The development IdP first: the gateway reads its discovery document.
    let users = Directory::load(Path::new(DEMO_USERS_FILE))?;
    let idp_listener = TcpListener::bind(idp::DEFAULT_LISTEN).await.map_err(|e| {
        format!(
            "cannot start the development IdP on {}: {e}",
            idp::DEFAULT_LISTEN
        )
    })?;
    let mut idp_config = DevIdpConfig::new(users);
    let revoke_example = idp_config.users.users().first().map(|user| {
        format!(
            "curl -X DELETE -H 'Authorization: {}' '{}/api/jwt/refresh?userId={}'",
            idp_config.api_key,
            idp::DEFAULT_ISSUER,
            user.id
        )
    });
    let webhook_url = webhook.as_ref().map(|w| w.url.clone());
    idp_config.webhook = webhook;
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
    if let (Some(url), Some(example)) = (&webhook_url, &revoke_example) {
        println!("  Revoke a user at the IdP (it tells the gateway at {url}):");
        println!("    {example}");
    }
    println!("  Stop with Ctrl-C.");
    println!();
    gateway::serve(listeners, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
