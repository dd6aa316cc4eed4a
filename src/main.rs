//! The `onmemos` command: the server with embedded defaults, admin tasks, and user commands
//! over the HTTP client.

mod cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::run().await
}
