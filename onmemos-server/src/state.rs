//! What every handler shares.

use std::sync::Arc;

use onmemos_core::Engine;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The state of the router: the engine, the settings and the metrics, behind one pointer
/// (every layer and extractor clones the state for each request).
#[derive(Debug, Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] points to.
#[derive(Debug)]
pub struct SharedState {
    /// The engine the handlers call.
    pub engine: Engine,
    /// The HTTP settings.
    pub config: ServerConfig,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Per-key request rates.
    pub(crate) rates: crate::rate_limit::KeyRates,
}

impl AppState {
    /// The state of a router over `engine` with `config`.
    pub(crate) fn new(engine: Engine, config: ServerConfig) -> Self {
        Self(Arc::new(SharedState {
            engine,
            metrics: Metrics::default(),
            rates: crate::rate_limit::KeyRates::new(&config),
            config,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}
