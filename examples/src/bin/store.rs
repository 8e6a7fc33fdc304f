//! Run with: cargo run -p gateway-examples --bin store -- --listen 127.0.0.1:3001
//!
//! The demo store app, an upstream that knows nothing about authentication.
//!
//! Options:
//! * `--listen ADDR`: address to listen on (default `127.0.0.1:3001`).
//! * `--threads N`: number of tokio worker threads (default: one per CPU).

use std::error::Error;

const NAME: &str = "store";
const DEFAULT_LISTEN: &str = "127.0.0.1:3001";

/// Command-line options.
struct Options {
    listen: String,
    threads: Option<usize>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let Some(options) = parse_args(std::env::args().skip(1))? else {
        println!("usage: {NAME} [--listen ADDR (default {DEFAULT_LISTEN})] [--threads N]");
        return Ok(());
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = options.threads {
        runtime.worker_threads(threads);
    }
    runtime.build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|err| format!("cannot listen on {}: {err}", options.listen))?;
        println!("{NAME} listening on http://{}", listener.local_addr()?);
        gateway_examples::store::serve(listener).await?;
        Ok(())
    })
}

/// Parses `--listen ADDR` and `--threads N` (also `--flag=value`).
/// Returns `None` when help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, Box<dyn Error>> {
    let mut options = Options {
        listen: DEFAULT_LISTEN.to_owned(),
        threads: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => options.listen = value()?,
            "--threads" => {
                let threads = value()?;
                match threads.parse::<usize>() {
                    Ok(n) if n > 0 => options.threads = Some(n),
                    _ => {
                        return Err(format!(
                            "--threads: expected a positive integer, got {threads:?}"
                        )
                        .into())
                    }
                }
            }
            _ => return Err(format!("unknown argument {flag:?} (try --help)").into()),
        }
    }
    Ok(Some(options))
}
