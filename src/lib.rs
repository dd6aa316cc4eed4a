//! # OnMemOS
//!
//! An embeddable engine for metered cloud workspaces: isolated sessions with a shell, per-workspace
//! storage, templates, cost estimates, prepaid credits with spend limits, scoped API keys, and a
//! cost optimizer for the clusters underneath.
//!
//! This facade re-exports the crates of the project:
//!
//! | module | crate | what |
//! | --- | --- | --- |
//! | module | crate | feature | what |
//! | --- | --- | --- | --- |
//! | [`types`] | `onmemos-types` | always | wire types, ids, models, the error table |
//! | [`core`] | `onmemos-core` | always | ports, services, [`Engine`] |
//! | [`backends`] | `onmemos-backends` | `sqlite`, `postgres`, `local-compute`, `local-storage`, `s3`, `gcs`, `azure` | port implementations |
//! | `server` | `onmemos-server` | `server` (default) | the axum router |
//! | `client` | `onmemos-client` | `client` | the typed HTTP client |
//! | `optimizer` | `onmemos-optimizer` | `optimizer` | cost optimizer engines |
//!
//! The defaults are the engine with SQLite, local compute, local storage and the HTTP router.
//! An embedder who wants only the engine and SQLite writes
//! `onmemos = { version = "0.1", default-features = false, features = ["sqlite"] }` and
//! compiles no HTTP stack. The `onmemos` command is the `onmemos-cli` package.

pub use onmemos_backends as backends;
#[cfg(feature = "client")]
pub use onmemos_client as client;
pub use onmemos_core as core;
pub use onmemos_core::{Engine, Error, ErrorKind, Result};
#[cfg(feature = "optimizer")]
pub use onmemos_optimizer as optimizer;
#[cfg(feature = "server")]
pub use onmemos_server as server;
pub use onmemos_types as types;
