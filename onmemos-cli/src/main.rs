//! The `onmemos` command: the server with embedded defaults, admin tasks, and user commands
//! over the HTTP client.

fn main() -> std::process::ExitCode {
    // A `.env` file is loaded into the environment here, before any thread exists: changing
    // the environment is only sound while the process has one thread (the runtime, started
    // next, has several). Variables already set win.
    let _ = dotenvy::dotenv();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(onmemos_cli::run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
