//! # onmemos-types
//!
//! What crosses the wire between an OnMemOS server and its clients: the request and response
//! bodies of the HTTP API ([`api`]), the ids ([`id`]), the domain models that are their own wire
//! form ([`model`]), the optimizer's snapshot and recommendations ([`optimizer`]), and the one
//! error model with its table of wire codes ([`Error`], [`ErrorKind`], [`api::ErrorCode`]).
//!
//! It is plain data: serde, chrono, uuid and validation rules, and no runtime. The client (and
//! so the Python wheel) depends on this crate and not on `onmemos-core`, which re-exports it.
//! The `openapi` feature adds `utoipa` schema derives for the server's OpenAPI document.

pub mod api;
pub mod error;
pub mod id;
pub mod model;
pub mod optimizer;
pub mod time;
pub mod validation;

pub use error::{Error, ErrorKind, Result};
