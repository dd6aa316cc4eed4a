//! Settings of the HTTP layer.

use serde::{Deserialize, Serialize};

/// Bounds every request is held to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a request may take, in seconds (answered with 503 and `Retry-After`).
    pub request_timeout_secs: u64,
    /// How long a connection may take to send a request's headers, in seconds, counted from
    /// when it opened or finished its previous response: it closes slow-header connections and
    /// idle keep-alive connections alike ([`serve`](crate::serve)).
    pub header_timeout_secs: u64,
    /// The most connections served at once; further ones wait in the listen backlog until one
    /// ends ([`serve`](crate::serve)).
    pub max_connections: usize,
    /// Requests per second each API key may make, sustained; `0` for no limit. Past it,
    /// requests answer 429 `rate_limited` with `Retry-After`.
    pub rate_limit_per_second: u32,
    /// Requests an API key may make at once above the sustained rate.
    pub rate_limit_burst: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            header_timeout_secs: 15,
            max_connections: 1024,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
        }
    }
}
