//! What every handler shares.

use std::sync::Arc;

use onmemos_core::Engine;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// The state of the router: the engine, the settings and the metrics.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine the handlers call.
    pub engine: Engine,
    /// The HTTP settings.
    pub config: Arc<ServerConfig>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-key request rates.
    pub(crate) rates: Arc<crate::rate_limit::KeyRates>,
}
