//! Cost estimates: the exact price of a configuration for a duration, what such sessions
//! really cost before (p50/p90 from history), and cheaper ways to run the same work.

use crate::api::{
    Alternative, CompareRequest, Comparison, Confidence, Estimate, EstimateRequest, HistorySource,
};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{MicroCredits, Placement, Resources, Scope, cost_of};
use crate::ports::SessionSample;
use crate::principal::Principal;
use crate::validation::validate;

/// The most finished sessions an estimate learns from.
const HISTORY: u32 = 200;
/// Fewer of the caller's own sessions than this, and the template's history is used.
const OWN_HISTORY_MIN: usize = 5;

/// Estimates for the calling user.
#[derive(Debug)]
pub struct EstimateService<'e> {
    engine: &'e Engine,
}

/// The `q`-quantile (0–1) of sorted values, nearest rank.
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl<'e> EstimateService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Quotes one configuration.
    pub async fn quote(&self, caller: &Principal, request: EstimateRequest) -> Result<Estimate> {
        caller.require(Scope::CreditsRead)?;
        validate(&request)?;
        let template = match &request.template {
            Some(t) => Some(self.engine.sessions().resolve_template(caller, t).await?),
            None => None,
        };
        let resources = request
            .resources
            .or(template.as_ref().map(|t| t.resources))
            .ok_or_else(|| {
                Error::invalid("template", "give a template or resources to estimate")
            })?;
        let pricing = self.engine.config().pricing;
        let duration_ms = i64::try_from(request.duration_secs)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        let rate = pricing.hourly_rate(&resources, request.placement);
        let expected = cost_of(rate, duration_ms);

        // History: the caller's own sessions of the template if there are enough, else all.
        let (history, samples) = match &template {
            None => (HistorySource::None, Vec::new()),
            Some(t) => {
                let repo = self.engine.database().sessions();
                let own = repo.history(t.id, Some(caller.user_id()), HISTORY).await?;
                if own.len() >= OWN_HISTORY_MIN {
                    (HistorySource::User, own)
                } else {
                    let all = repo.history(t.id, None, HISTORY).await?;
                    if all.is_empty() {
                        (HistorySource::None, all)
                    } else {
                        (HistorySource::Template, all)
                    }
                }
            }
        };
        // Past durations, priced at this configuration's rate.
        let mut costs: Vec<i64> = samples
            .iter()
            .map(|s: &SessionSample| cost_of(rate, s.duration_ms))
            .collect();
        costs.sort_unstable();
        let n = costs.len();
        let confidence = match n {
            0..=4 => Confidence::Low,
            5..=19 => Confidence::Medium,
            _ => Confidence::High,
        };
        let (p50, p90) = if n >= OWN_HISTORY_MIN {
            (
                quantile(&costs, 0.5).unwrap_or(expected),
                quantile(&costs, 0.9).unwrap_or(expected),
            )
        } else {
            (expected, expected)
        };

        let available = self
            .engine
            .database()
            .ledger()
            .balance(caller.user_id())
            .await?
            .available;
        Ok(Estimate {
            resources,
            placement: request.placement,
            rate_micros_per_hour: rate,
            duration_secs: request.duration_secs,
            expected_cost_micros: expected,
            p50_cost_micros: p50,
            p90_cost_micros: p90,
            history,
            samples: u32::try_from(n).unwrap_or(u32::MAX),
            confidence,
            available_micros: available,
            affordable: available >= expected,
            alternatives: self.alternatives(&resources, request.placement, duration_ms, expected),
        })
    }

    /// Cheaper configurations of the same work: spot capacity, half the CPU, half the memory,
    /// the smallest GPU count — each only when it really is cheaper.
    fn alternatives(
        &self,
        resources: &Resources,
        placement: Placement,
        duration_ms: i64,
        expected: MicroCredits,
    ) -> Vec<Alternative> {
        let pricing = self.engine.config().pricing;
        let spot_ok = self.engine.compute().is_some_and(|c| c.capabilities().spot);
        let mut options: Vec<(String, Resources, Placement)> = Vec::new();
        if placement == Placement::OnDemand {
            options.push((
                "spot capacity (may be reclaimed)".into(),
                *resources,
                Placement::Spot,
            ));
        }
        if resources.cpu_millis >= 200 {
            let half = Resources {
                cpu_millis: (resources.cpu_millis / 2).max(100),
                ..*resources
            };
            options.push((
                format!(
                    "{} vCPU instead of {}",
                    millis(half.cpu_millis),
                    millis(resources.cpu_millis)
                ),
                half,
                placement,
            ));
        }
        if resources.memory_mib >= 256 {
            let half = Resources {
                memory_mib: (resources.memory_mib / 2).max(128),
                ..*resources
            };
            options.push((
                format!(
                    "{} MiB of memory instead of {}",
                    half.memory_mib, resources.memory_mib
                ),
                half,
                placement,
            ));
        }
        if resources.gpu > 1 {
            let one = Resources {
                gpu: 1,
                ..*resources
            };
            options.push((
                format!("1 GPU instead of {}", resources.gpu),
                one,
                placement,
            ));
        }
        let mut out: Vec<Alternative> = options
            .into_iter()
            .map(|(description, resources, placement)| {
                let cost = cost_of(pricing.hourly_rate(&resources, placement), duration_ms);
                Alternative {
                    description,
                    resources,
                    placement,
                    available: placement == Placement::OnDemand || spot_ok,
                    expected_cost_micros: cost,
                    saving_micros: expected - cost,
                }
            })
            .filter(|a| a.saving_micros > 0)
            .collect();
        out.sort_by_key(|a| a.expected_cost_micros);
        out
    }

    /// Quotes several configurations side by side.
    pub async fn compare(&self, caller: &Principal, request: CompareRequest) -> Result<Comparison> {
        caller.require(Scope::CreditsRead)?;
        validate(&request)?;
        let mut estimates = Vec::with_capacity(request.configurations.len());
        for (i, configuration) in request.configurations.into_iter().enumerate() {
            let estimate = self.quote(caller, configuration).await.map_err(|e| {
                let field = format!("configurations[{i}].{}", e.field().unwrap_or_default());
                Error::invalid(field, e.message().to_owned())
            })?;
            estimates.push(estimate);
        }
        let cheapest = estimates
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.expected_cost_micros)
            .map_or(0, |(i, _)| i);
        Ok(Comparison {
            estimates,
            cheapest,
        })
    }
}

/// `1500` → `1.5`.
fn millis(m: u32) -> String {
    if m.is_multiple_of(1000) {
        format!("{}", m / 1000)
    } else {
        format!("{}", f64::from(m) / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.9), Some(90));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(10));
        assert_eq!(quantile(&[7], 0.9), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
