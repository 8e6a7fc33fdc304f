//! Run with: cargo run -p gateway-examples --bin store -- --listen 127.0.0.1:3001
//!
//! The demo store app, an upstream that knows nothing about authentication.
//!
//! Options:
//! * `--listen ADDR`: address to listen on (default `127.0.0.1:3001`).
//! * `--threads N`: number of tokio worker threads (default: one per CPU).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    gateway_examples::cli::main("store", "127.0.0.1:3001", gateway_examples::store::serve)
}
