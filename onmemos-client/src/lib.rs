//! # onmemos-client
//!
//! A typed async client for the OnMemOS HTTP API.
//!
//! ```no_run
//! # async fn demo() -> onmemos_client::Result<()> {
//! use onmemos_client::Client;
//! use onmemos_types::api::CreateWorkspace;
//!
//! let client = Client::from_env()?; // ONMEMOS_URL, ONMEMOS_API_KEY (or a .env file)
//! let ws = client
//!     .workspaces()
//!     .create(&CreateWorkspace { name: "research".into(), description: None, env: Default::default() })
//!     .await?;
//! println!("created {}", ws.id);
//! # Ok(()) }
//! ```

mod client;
mod error;
#[cfg(feature = "python")]
mod python;
mod resources;
pub mod retry;
mod shell;
mod storage;
mod stream;

pub use client::{Client, ClientBuilder, DEFAULT_URL, RequestTimeout};
pub use error::{Error, ErrorKind, Result, kind_of_code};
pub use onmemos_types::api::SessionLifetime;
pub use resources::{
    ApiKeys, Credits, Estimates, Optimizer, Sessions, Templates, Users, Workspaces,
};
pub use retry::RetryPolicy;
pub use shell::{Shell, ShellEvent, ShellOptions};
pub use storage::{ByteStream, Download, Progress, Storage, TRANSFER_TIMEOUT};
pub use stream::{Cursor, Items};

/// The wire types the client sends and receives.
pub use onmemos_types::api;
/// Typed ids.
pub use onmemos_types::id;
/// The domain types the API returns.
pub use onmemos_types::model;
/// The optimizer's request types (cluster snapshot, policy) and its recommendations.
pub use onmemos_types::optimizer;
