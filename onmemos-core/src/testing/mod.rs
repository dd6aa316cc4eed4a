//! Conformance suites for the port traits (feature `testing`).
//!
//! A backend implementer runs the same suite the project runs on its own backends:
//!
//! ```ignore
//! onmemos_core::database_conformance!(|| async { my_fresh_database().await });
//! ```
//!
//! Each check panics with a message saying what did not hold.

pub mod compute;
pub mod database;
pub mod ledger;
pub mod storage;
