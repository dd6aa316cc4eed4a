use serde::{Deserialize, Serialize};

use crate::model::{MicroCredits, Placement, Resources};

/// Prices in micro-credits (SPEC §2). Configurable; served read-only at `GET /v1/pricing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PriceBook {
    /// Per vCPU-hour.
    pub vcpu_hour: MicroCredits,
    /// Per GiB of memory per hour.
    pub memory_gib_hour: MicroCredits,
    /// Per GPU-hour.
    pub gpu_hour: MicroCredits,
    /// Per GiB of storage per 30-day month.
    pub storage_gib_month: MicroCredits,
    /// Discount on compute for spot placement, in percent (0–100).
    pub spot_discount_percent: u8,
}

impl Default for PriceBook {
    /// 0.04 credits per vCPU-hour, 0.005 per GiB-hour, 1 per GPU-hour, 0.02 per GiB-month,
    /// 60 % off on spot.
    fn default() -> Self {
        Self {
            vcpu_hour: 40_000,
            memory_gib_hour: 5_000,
            gpu_hour: 1_000_000,
            storage_gib_month: 20_000,
            spot_discount_percent: 60,
        }
    }
}

impl PriceBook {
    /// The hourly rate of a session with `resources` on `placement`, in micro-credits per hour,
    /// rounded up. Computed in `i128` from milli-vCPU and MiB, so no precision is lost.
    pub fn hourly_rate(&self, resources: &Resources, placement: Placement) -> MicroCredits {
        let cpu = i128::from(resources.cpu_millis) * i128::from(self.vcpu_hour);
        let mem = i128::from(resources.memory_mib) * i128::from(self.memory_gib_hour);
        let gpu = i128::from(resources.gpu) * i128::from(self.gpu_hour);
        // cpu is per 1000 milli-vCPU, memory per 1024 MiB: bring both to a common denominator.
        let numerator = cpu * 1024 + mem * 1000 + gpu * 1024 * 1000;
        let mut rate = div_ceil(numerator, 1024 * 1000);
        if placement == Placement::Spot {
            let keep = 100 - i128::from(self.spot_discount_percent.min(100));
            rate = div_ceil(rate * keep, 100);
        }
        clamp(rate)
    }

    /// Checks the prices, naming the bad one.
    pub fn validate(&self) -> crate::Result<()> {
        for (name, v) in [
            ("vcpu_hour", self.vcpu_hour),
            ("memory_gib_hour", self.memory_gib_hour),
            ("gpu_hour", self.gpu_hour),
            ("storage_gib_month", self.storage_gib_month),
        ] {
            if !(0..=crate::model::MAX_TRANSFER).contains(&v) {
                return Err(crate::Error::configuration(format!(
                    "pricing.{name} must be between 0 and {}",
                    crate::model::MAX_TRANSFER
                )));
            }
        }
        if self.spot_discount_percent > 100 {
            return Err(crate::Error::configuration(
                "pricing.spot_discount_percent must be at most 100",
            ));
        }
        Ok(())
    }
}

fn div_ceil(n: i128, d: i128) -> i128 {
    (n + d - 1).div_euclid(d)
}

fn clamp(v: i128) -> MicroCredits {
    MicroCredits::try_from(v).unwrap_or(MicroCredits::MAX)
}

/// The cost of running at `rate_per_hour` for `elapsed_ms`: `ceil(rate × ms / 3,600,000)`.
///
/// Sessions are charged cumulatively — each tick charges `cost(total so far) − cost(total at
/// the previous tick)` — so the sum of the charges equals the cost of the whole duration exactly,
/// however the time was split into ticks.
///
/// ```
/// use onmemos_types::model::cost_of;
/// let rate = 123_457; // micro-credits per hour
/// let ticks = [999, 1, 35_000, 3_564_000];
/// let mut total = 0;
/// let mut charged = 0;
/// for t in ticks {
///     let before = cost_of(rate, total);
///     total += t;
///     charged += cost_of(rate, total) - before;
/// }
/// assert_eq!(charged, cost_of(rate, total));
/// assert_eq!(cost_of(rate, 3_600_000), rate);
/// ```
pub fn cost_of(rate_per_hour: MicroCredits, elapsed_ms: i64) -> MicroCredits {
    if rate_per_hour <= 0 || elapsed_ms <= 0 {
        return 0;
    }
    clamp(div_ceil(
        i128::from(rate_per_hour) * i128::from(elapsed_ms),
        3_600_000,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_price_book() {
        let book = PriceBook::default();
        let r = Resources {
            cpu_millis: 1000,
            memory_mib: 1024,
            gpu: 0,
            disk_gib: 1,
        };
        assert_eq!(book.hourly_rate(&r, Placement::OnDemand), 45_000);
        assert_eq!(book.hourly_rate(&r, Placement::Spot), 18_000);
        let gpu = Resources { gpu: 1, ..r };
        assert_eq!(book.hourly_rate(&gpu, Placement::OnDemand), 1_045_000);
        let odd = Resources {
            cpu_millis: 333,
            memory_mib: 100,
            gpu: 0,
            disk_gib: 1,
        };
        // 0.333 × 40000 + 100/1024 × 5000 = 13320 + 488.28… → rounded up.
        assert_eq!(book.hourly_rate(&odd, Placement::OnDemand), 13_809);
    }

    #[test]
    fn any_split_of_the_same_time_charges_the_same() {
        // A deterministic pseudo-random walk over many splits and rates.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..500 {
            let rate = (next() % 50_000_000) as i64 + 1;
            let mut total = 0i64;
            let mut charged = 0i64;
            for _ in 0..(next() % 200) {
                let before = cost_of(rate, total);
                total += (next() % 120_000) as i64;
                charged += cost_of(rate, total) - before;
            }
            assert_eq!(charged, cost_of(rate, total), "rate {rate}, total {total}");
        }
    }

    #[test]
    fn no_overflow_at_the_extremes() {
        assert_eq!(cost_of(MicroCredits::MAX, i64::MAX), MicroCredits::MAX);
        assert_eq!(cost_of(-5, 10), 0);
        assert_eq!(cost_of(5, -10), 0);
        assert_eq!(
            cost_of(1, 1),
            1,
            "any started millisecond of a paid rate costs something"
        );
    }
}
