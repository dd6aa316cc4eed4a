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
    /// How long a session's terminal stays attached after its last shell socket leaves, in
    /// seconds: a socket that reconnects within it gets the same terminal and its scrollback.
    pub shell_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shell_grace_secs: 60,
        }
    }
}
