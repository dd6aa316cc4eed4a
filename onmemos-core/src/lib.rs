//! # onmemos-core
//!
//! The centre of OnMemOS: the four port traits, the services and the engine, over the domain
//! model and error model of [`onmemos_types`] (re-exported here as `api`, `id`, `model`,
//! `error` and `validation`). Its only I/O of its own is reading the host name once, when no `sessions.node` is
//! configured (sessions on local compute belong to the node that started them), and it depends
//! on no database, object-store, Kubernetes or HTTP crate: every other effect goes through a
//! port. Backends (in `onmemos-backends`) implement the ports, and the server
//! (`onmemos-server`) is a thin HTTP layer over the [`Engine`].
//!
//! ```text
//! client ──HTTP/WS──▶ server ──▶ Engine services ──▶ ports (traits) ◀── backends
//! ```

pub mod auth_cache;
pub mod clock;
pub mod engine;
pub mod ledger;
pub mod model;
pub mod monitor;
pub mod passport;
pub mod ports;
pub mod principal;
pub mod services;
mod shared;
mod terminal;

pub use onmemos_types::{api, error, id, validation};

#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{Engine, EngineBuilder, EngineConfig, SessionSettings, StorageSettings};
pub use error::{Error, ErrorKind, Result};
pub use principal::Principal;
