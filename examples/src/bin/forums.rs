//! Run with: cargo run -p gateway-examples --bin forums -- --listen 127.0.0.1:3002
//!
//! The demo forums app, an upstream that knows nothing about authentication.
//!
//! Options:
//! * `--listen ADDR`: address to listen on (default `127.0.0.1:3002`).
//! * `--threads N`: number of tokio worker threads (default: one per CPU).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gateway_examples::cli::main("forums", "127.0.0.1:3002", gateway_examples::forums::serve)
}
