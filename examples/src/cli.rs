//! The command line shared by the demo app binaries.

use std::error::Error;

/// Command-line options.
struct Options {
    listen: String,
    threads: Option<usize>,
}

/// The `main` of a demo app binary: parses `--listen ADDR` and `--threads N`,
/// binds, prints where it listens, and serves with `serve` until killed.
pub fn main<F, Fut>(name: &str, default_listen: &str, serve: F) -> Result<(), Box<dyn Error>>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let Some(options) = parse_args(std::env::args().skip(1), default_listen)? else {
        println!("usage: {name} [--listen ADDR (default {default_listen})] [--threads N]");
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
        println!("{name} listening on http://{}", listener.local_addr()?);
        serve(listener).await?;
        Ok(())
    })
}

/// Parses `--listen ADDR` and `--threads N` (also `--flag=value`).
/// Returns `None` when help was requested.
fn parse_args(
    mut args: impl Iterator<Item = String>,
    default_listen: &str,
) -> Result<Option<Options>, Box<dyn Error>> {
    let mut options = Options {
        listen: default_listen.to_owned(),
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
