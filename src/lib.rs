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
//! | [`core`] | `onmemos-core` | domain, ports, services, [`Engine`], errors |
//! | [`backends`] | `onmemos-backends` | port implementations: SQLite and PostgreSQL, local compute |
//! | [`server`] | `onmemos-server` | the axum router |
//! | [`client`] | `onmemos-client` | the typed HTTP client |
//! | [`optimizer`] | `onmemos-optimizer` | cost optimizer engines |
//!
//! and holds the configuration of `onmemos serve` ([`config`]).

pub mod config;

pub use onmemos_backends as backends;
pub use onmemos_client as client;
pub use onmemos_core as core;
pub use onmemos_core::{Engine, Error, ErrorKind, Result};
pub use onmemos_optimizer as optimizer;
pub use onmemos_server as server;
