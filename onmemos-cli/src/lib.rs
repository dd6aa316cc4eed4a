//! # onmemos-cli
//!
//! The `onmemos` command: the server with embedded defaults (`onmemos serve`), administration
//! on the database (`onmemos admin`), and every user command over the HTTP client.
//!
//! As a library it offers what the command is made of, for programs that start OnMemOS the
//! way `onmemos serve` does: its configuration ([`config::ServeConfig`], with the same files,
//! environment variables and defaults) and [`run`], the command line itself.

pub mod config;

mod cli;

pub use cli::run;
