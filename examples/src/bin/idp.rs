//! Run with: cargo run -p gateway-examples --bin idp
//!
//! The DEVELOPMENT identity provider: a stand-in for FusionAuth to try the
//! gateway with. Not for production (see `gateway_examples::idp`).
//!
//! ```text
//! idp [--listen ADDR] [--users FILE] [--issuer URL] [--access-ttl DUR]
//!     [--refresh-ttl DUR] [--no-rotate] [--api-key KEY]
//!     [--webhook-url URL --webhook-secret SECRET]
//! idp hash-password [PASSWORD]
//! ```
//!
//! * `--listen ADDR`: address to listen on (default `127.0.0.1:9011`).
//! * `--users FILE`: users and clients (default: the demo file,
//!   `examples/users.toml`).
//! * `--issuer URL`: `iss` claim and base of the discovery URLs (default
//!   `http://` + the address it listens on).
//! * `--access-ttl DUR`: access token lifetime, e.g. `60s`, `5m` (default 60s).
//! * `--refresh-ttl DUR`: refresh token lifetime (default 8h).
//! * `--no-rotate`: reusable refresh tokens instead of one-time use.
//! * `--api-key KEY`: API key for `DELETE /api/jwt/refresh` (default
//!   `dev-api-key-change-me`).
//! * `--webhook-url URL`, `--webhook-secret SECRET`: post a signed
//!   FusionAuth `jwt.refresh-token.revoke` webhook to URL (e.g. the
//!   gateway's `http://127.0.0.1:9090/events/fusionauth`) whenever refresh
//!   tokens are revoked, signed HS256 with SECRET (the gateway's
//!   `events.webhook_signing_secret`; at least 16 bytes). Also read from
//!   the environment as `IDP_WEBHOOK_SECRET`.
//!
//! `hash-password` prints the argon2id hash of PASSWORD (or of the first
//! line of standard input) for the `password` field of a users file.

use std::error::Error;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use gateway_examples::idp::{self, DevIdpConfig, Directory};

/// The demo users file, next to this crate's manifest.
const DEMO_USERS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/users.toml");

const USAGE: &str = "\
usage: idp [--listen ADDR] [--users FILE] [--issuer URL] [--access-ttl DUR]
           [--refresh-ttl DUR] [--no-rotate] [--api-key KEY]
           [--webhook-url URL --webhook-secret SECRET]
       idp hash-password [PASSWORD]

DEVELOPMENT IdP - not for production.
  --listen ADDR       listen address (default 127.0.0.1:9011)
  --users FILE        users and clients, TOML (default: examples/users.toml)
  --issuer URL        iss claim and discovery base (default http://ADDR)
  --access-ttl DUR    access token lifetime (default 60s)
  --refresh-ttl DUR   refresh token lifetime (default 8h)
  --no-rotate         reusable refresh tokens (default: one-time use)
  --api-key KEY       API key for DELETE /api/jwt/refresh
                      (default dev-api-key-change-me)
  --webhook-url URL   post signed jwt.refresh-token.revoke webhooks here
  --webhook-secret S  their HMAC signing key (or IDP_WEBHOOK_SECRET)
  hash-password       print the argon2id hash of PASSWORD (or of a line
                      read from standard input)";

struct Options {
    listen: String,
    users: PathBuf,
    issuer: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    rotate: bool,
    api_key: String,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("hash-password") {
        args.next();
        return hash_password(args.next());
    }
    let Some(options) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let users = Directory::load(&options.users)?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let addr = listener.local_addr()?;
        let mut config = DevIdpConfig::new(users);
        config.issuer = options.issuer.unwrap_or_else(|| format!("http://{addr}"));
        config.access_ttl = options.access_ttl;
        config.refresh_ttl = options.refresh_ttl;
        config.rotate_refresh = options.rotate;
        config.api_key = options.api_key;
        config.webhook = match (options.webhook_url, options.webhook_secret) {
            (Some(url), Some(signing_secret)) => Some(idp::Webhook {
                url,
                signing_secret,
                bearer: None,
            }),
            _ => None,
        };
        println!();
        println!("  DEVELOPMENT IdP — not for production");
        println!("  listening on http://{addr}, issuer {}", config.issuer);
        println!(
            "  access tokens {}, refresh tokens {} ({})",
            humantime::format_duration(config.access_ttl),
            humantime::format_duration(config.refresh_ttl),
            if config.rotate_refresh {
                "one-time use"
            } else {
                "reusable"
            }
        );
        for user in config.users.users() {
            println!(
                "  user   {}  roles [{}]",
                user.username,
                user.roles.join(", ")
            );
        }
        for client in config.users.clients() {
            println!("  client {}", client.id);
        }
        if let Some(webhook) = &config.webhook {
            println!("  revocations are posted (signed) to {}", webhook.url);
        }
        println!("  Stop with Ctrl-C.");
        println!();
        idp::serve(listener, config, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}

/// `idp hash-password [PASSWORD]`.
fn hash_password(password: Option<String>) -> Result<(), Box<dyn Error>> {
    let password = match password {
        Some(password) => password,
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("Password (shown as typed): ");
                std::io::stderr().flush()?;
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    println!("{}", idp::hash_password(&password)?);
    Ok(())
}

/// Parses the flags (also `--flag=value`); `None` when help was asked for.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, Box<dyn Error>> {
    let mut options = Options {
        listen: idp::DEFAULT_LISTEN.to_owned(),
        users: PathBuf::from(DEMO_USERS_FILE),
        issuer: None,
        access_ttl: Duration::from_secs(60),
        refresh_ttl: Duration::from_secs(8 * 60 * 60),
        rotate: true,
        api_key: idp::DEFAULT_API_KEY.to_owned(),
        webhook_url: None,
        webhook_secret: std::env::var("IDP_WEBHOOK_SECRET").ok(),
    };
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => options.listen = value()?,
            "--users" => options.users = value()?.into(),
            "--issuer" => options.issuer = Some(value()?),
            "--access-ttl" => options.access_ttl = duration(&flag, &value()?)?,
            "--refresh-ttl" => options.refresh_ttl = duration(&flag, &value()?)?,
            "--api-key" => options.api_key = value()?,
            "--no-rotate" => options.rotate = false,
            "--webhook-url" => options.webhook_url = Some(value()?),
            "--webhook-secret" => options.webhook_secret = Some(value()?),
            _ => return Err(format!("unknown argument {flag:?} (try --help)").into()),
        }
    }
    if options.api_key.is_empty() {
        return Err("--api-key must not be empty".into());
    }
    if let Some(url) = &options.webhook_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--webhook-url: {url:?} is not an http(s) URL").into());
        }
        match &options.webhook_secret {
            None => {
                return Err("--webhook-url needs --webhook-secret (or IDP_WEBHOOK_SECRET)".into())
            }
            Some(secret) if secret.len() < 16 => {
                return Err("--webhook-secret: at least 16 bytes".into())
            }
            Some(_) => {}
        }
    }
    Ok(Some(options))
}

fn duration(flag: &str, text: &str) -> Result<Duration, Box<dyn Error>> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{flag}: {text:?} is not a duration like 60s or 8h: {e}"))?;
    if duration < Duration::from_secs(1) {
        return Err(format!("{flag}: at least 1s").into());
    }
    Ok(duration)
}
