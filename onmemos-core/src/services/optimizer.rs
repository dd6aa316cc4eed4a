//! The cost optimizer, as a service: a snapshot in, a report out.

use crate::Engine;
use crate::api::OptimizationReport;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Scope;
use crate::ports::optimizer::OptimizationRequest;
use crate::principal::Principal;

/// Runs the engine's optimizer.
#[derive(Debug, Clone, Copy)]
pub struct OptimizerService<'a> {
    engine: &'a Engine,
}

impl<'a> OptimizerService<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// Recommendations for `request`. Needs the `optimizer:run` scope. The computation runs on
    /// a blocking thread, so a large snapshot does not hold up the runtime's workers.
    pub async fn recommend(
        &self,
        caller: &Principal,
        request: OptimizationRequest,
    ) -> Result<OptimizationReport> {
        caller.require(Scope::OptimizerRun)?;
        request.snapshot.validate()?;
        let optimizer = self.engine.optimizer_provider().cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "no optimizer is configured on this server",
            )
        })?;
        let runtime = tokio::runtime::Handle::current();
        let recommendations =
            tokio::task::spawn_blocking(move || runtime.block_on(optimizer.recommend(&request)))
                .await
                .map_err(|e| Error::internal(format!("the optimizer stopped: {e}")))??;
        Ok(OptimizationReport::new(recommendations))
    }
}
