//! Rightsizing: requests and limits from usage, the way the Kubernetes Vertical Pod Autoscaler's
//! recommender computes them.
//!
//! - Each workload (a pod owner; a bare pod on its own) gets two **decaying histograms** with
//!   exponential buckets (the first 10 millicores or 10 MB wide, each next one 5% wider). Every
//!   sample weighs `2^((t − taken_at) / half_life)` (half-life 24 h), so last week counts half
//!   as much as yesterday's... and the whole history still counts.
//! - **CPU** takes every sample. **Memory** takes one sample per 24-hour window of a pod's
//!   series: the window's peak, since memory is sized for the peak and not the typical minute.
//! - **Estimates**: the target is the p90 of each histogram, the lower bound the p50, the upper
//!   bound the p95 (a percentile is the upper edge of the bucket it falls in, so it overstates by
//!   at most one bucket, 5%). Each gets a 15% **safety margin**. The bounds then widen with little
//!   history: the upper is multiplied by `1 + 1/confidence`, the lower by `(1 + 0.001/confidence)⁻²`,
//!   where **confidence** is the history in days (the shorter of the span covered and the sample
//!   count over one sample per minute). Floors: 25 millicores, 250 MiB.
//! - **OOM bump**: a workload whose pods were OOM-killed gets its memory estimates raised to at
//!   least `max(peak × 1.2, peak + 100 MiB)`, the peak being the highest memory seen.
//! - A **change is recommended** when a current request lies outside `[lower, upper]`; the
//!   recommended requests are the targets, and limits keep their current ratio to requests.
//! - The **saving** prices the request change with per-core and per-GiB hourly prices fitted to
//!   the cluster's node prices ([`UnitPrices::fit`]), times the replicas, over a 30-day month. It
//!   becomes real money once the packer frees the nodes.

use std::collections::BTreeMap;

use onmemos_core::error::{Error, Result};
use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{
    ClusterSnapshot, PodInfo, Recommendation, RecommendationKind, ResourceVector, UsageSeries,
};
use serde::{Deserialize, Serialize};

use crate::placement::{HOURS_PER_MONTH, credits};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
const DAY_SECS: i64 = 86_400;

/// The recommender's parameters (the VPA's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RightsizingOptions {
    /// Half-life of a sample's weight, in hours (infinite: no decay).
    pub half_life_hours: f64,
    /// Percentile of the target.
    pub target_percentile: f64,
    /// Percentile of the lower bound.
    pub lower_percentile: f64,
    /// Percentile of the upper bound.
    pub upper_percentile: f64,
    /// Fraction added to every estimate.
    pub safety_margin: f64,
    /// Smallest CPU recommended, in millicores.
    pub min_cpu_millis: u64,
    /// Smallest memory recommended, in bytes.
    pub min_memory_bytes: u64,
    /// After an OOM kill, memory is at least the peak times this...
    pub oom_bump_ratio: f64,
    /// ...and at least the peak plus this many bytes.
    pub oom_min_bump_bytes: u64,
}

impl Default for RightsizingOptions {
    fn default() -> Self {
        Self {
            half_life_hours: 24.0,
            target_percentile: 0.9,
            lower_percentile: 0.5,
            upper_percentile: 0.95,
            safety_margin: 0.15,
            min_cpu_millis: 25,
            min_memory_bytes: 250 * 1024 * 1024,
            oom_bump_ratio: 1.2,
            oom_min_bump_bytes: 100 * 1024 * 1024,
        }
    }
}

impl RightsizingOptions {
    /// Checks that every parameter is meaningful.
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, ok: bool, v: f64, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("rightsizing.{field}"),
                    format!("{field} must be {what}, got {v}"),
                ))
            }
        };
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let h = self.half_life_hours;
        check("half_life_hours", h > 0.0, h, "positive")?;
        for (field, v) in [
            ("target_percentile", self.target_percentile),
            ("lower_percentile", self.lower_percentile),
            ("upper_percentile", self.upper_percentile),
        ] {
            check(field, unit(v), v, "in [0, 1]")?;
        }
        let m = self.safety_margin;
        check(
            "safety_margin",
            m >= 0.0 && m.is_finite(),
            m,
            "finite and non-negative",
        )?;
        let r = self.oom_bump_ratio;
        check(
            "oom_bump_ratio",
            r >= 1.0 && r.is_finite(),
            r,
            "finite and at least 1",
        )
    }
}

/// Exponential bucket boundaries: bucket `i` starts at `first × (ratio^i − 1) / (ratio − 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    first: f64,
    ratio: f64,
    starts: Vec<f64>,
    /// Bucket of each integer value below its length (a lookup for the hot CPU path).
    small: Vec<u8>,
}

impl Buckets {
    /// Buckets from `first` wide, each `ratio` times wider, up to `max`.
    pub fn new(first: f64, ratio: f64, max: f64) -> Self {
        let count = ((max * (ratio - 1.0) / first + 1.0).ln() / ratio.ln()).ceil() as usize + 1;
        let starts: Vec<f64> = (0..count)
            .map(|i| first * (ratio.powi(i as i32) - 1.0) / (ratio - 1.0))
            .collect();
        let mut b = Self {
            first,
            ratio,
            starts,
            small: Vec::new(),
        };
        if b.starts.len() <= usize::from(u8::MAX) {
            b.small = (0..1u32 << 16)
                .map(|v| b.find(f64::from(v)) as u8)
                .collect();
        }
        b
    }

    /// The VPA's CPU buckets, in millicores: 10 m first, 5% growth, up to 1,000 cores.
    pub fn cpu() -> Self {
        Self::new(10.0, 1.05, 1_000_000.0)
    }

    /// The VPA's memory buckets, in bytes: 10 MB first, 5% growth, up to 1 TB.
    pub fn memory() -> Self {
        Self::new(1e7, 1.05, 1e12)
    }

    /// How many buckets there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none (never, for buckets built by [`Buckets::new`]).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Where bucket `i` starts.
    pub fn start(&self, i: usize) -> f64 {
        self.starts[i]
    }

    /// The bucket holding `value`.
    pub fn find(&self, value: f64) -> usize {
        if value <= 0.0 {
            return 0;
        }
        let guess =
            ((value * (self.ratio - 1.0) / self.first + 1.0).ln() / self.ratio.ln()) as usize;
        let mut i = guess.min(self.starts.len() - 1);
        // The logarithm can land one off at a boundary; the table decides.
        while i + 1 < self.starts.len() && self.starts[i + 1] <= value {
            i += 1;
        }
        while i > 0 && self.starts[i] > value {
            i -= 1;
        }
        i
    }

    fn find_small(&self, value: u32) -> usize {
        match self.small.get(value as usize) {
            Some(&i) => usize::from(i),
            None => self.find(f64::from(value)),
        }
    }
}

/// A histogram of weighted samples over [`Buckets`].
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    weights: Vec<f64>,
    total: f64,
}

impl Histogram {
    /// An empty histogram over `buckets`.
    pub fn new(buckets: &Buckets) -> Self {
        Self {
            weights: vec![0.0; buckets.len()],
            total: 0.0,
        }
    }

    /// Adds `value` with `weight`.
    pub fn add(&mut self, buckets: &Buckets, value: f64, weight: f64) {
        self.weights[buckets.find(value)] += weight;
        self.total += weight;
    }

    /// Total weight.
    pub fn total_weight(&self) -> f64 {
        self.total
    }

    /// The `p`-th percentile: the upper edge of the first bucket where the cumulative weight
    /// reaches `p` of the total (the start of the last bucket if it is that one); 0 when empty.
    pub fn percentile(&self, buckets: &Buckets, p: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let threshold = p * self.total;
        let mut sum = 0.0;
        let last = self.weights.len() - 1;
        let mut bucket = last;
        for (i, w) in self.weights.iter().enumerate() {
            sum += w;
            if sum >= threshold && *w > 0.0 {
                bucket = i;
                break;
            }
        }
        if bucket < last {
            buckets.start(bucket + 1)
        } else {
            buckets.start(bucket)
        }
    }

    /// Share of the weight in buckets that start at or above `value`.
    pub fn share_from(&self, buckets: &Buckets, value: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let from = buckets.find(value) + 1;
        self.weights[from.min(self.weights.len())..]
            .iter()
            .sum::<f64>()
            / self.total
    }
}

/// The weight of a sample `offset_secs` after `reference` (usually negative).
fn decay(offset_secs: f64, half_life_secs: f64) -> f64 {
    (offset_secs / half_life_secs).exp2()
}

fn check_series(pod: &PodInfo, u: &UsageSeries) -> Result<()> {
    if u.step_secs == 0 {
        return Err(Error::invalid(
            "usage.step_secs",
            format!("pod {}: usage step_secs must be positive", pod.name),
        ));
    }
    if u.cpu_millis.len() != u.memory_bytes.len() {
        return Err(Error::invalid(
            "usage",
            format!(
                "pod {}: {} cpu samples but {} memory samples",
                pod.name,
                u.cpu_millis.len(),
                u.memory_bytes.len()
            ),
        ));
    }
    Ok(())
}

/// Adds a series to the CPU histogram and its daily memory peaks to the memory histogram.
fn add_series(
    u: &UsageSeries,
    reference: chrono::DateTime<chrono::Utc>,
    options: &RightsizingOptions,
    (cpu_buckets, cpu): (&Buckets, &mut Histogram),
    (memory_buckets, memory): (&Buckets, &mut Histogram),
) -> u64 {
    let half_life = options.half_life_hours * 3600.0;
    let step = f64::from(u.step_secs);
    let offset = (u.start - reference).num_milliseconds() as f64 / 1000.0;
    let factor = decay(step, half_life);
    let mut weight = decay(offset, half_life);
    let mut total = 0.0;
    for &v in &u.cpu_millis {
        cpu.weights[cpu_buckets.find_small(v)] += weight;
        total += weight;
        weight *= factor;
    }
    cpu.total += total;
    let per_window = (DAY_SECS / i64::from(u.step_secs)).max(1) as usize;
    let mut peak_seen = 0;
    for (w, window) in u.memory_bytes.chunks(per_window).enumerate() {
        let peak = window.iter().copied().max().unwrap_or(0);
        peak_seen = peak_seen.max(peak);
        let last = (w * per_window + window.len() - 1) as f64;
        memory.add(
            memory_buckets,
            peak as f64,
            decay(offset + last * step, half_life),
        );
    }
    peak_seen
}

/// A lower bound, target and upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimates {
    /// Below this, the request is too small.
    pub lower: u64,
    /// What to request.
    pub target: u64,
    /// Above this, the request is too large.
    pub upper: u64,
}

impl Estimates {
    fn contains(&self, v: u64) -> bool {
        (self.lower..=self.upper).contains(&v)
    }
}

/// Per-core and per-GiB hourly prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitPrices {
    /// Micro-credits per vCPU-hour.
    pub per_core_hour: f64,
    /// Micro-credits per GiB-hour.
    pub per_gib_hour: f64,
}

impl UnitPrices {
    /// Least-squares prices, non-negative, with no intercept, from (cores, GiB, price per hour)
    /// points such as a cluster's nodes.
    pub fn fit(points: impl IntoIterator<Item = (f64, f64, f64)>) -> Self {
        let (mut cc, mut cm, mut mm, mut cp, mut mp) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (c, m, p) in points {
            cc += c * c;
            cm += c * m;
            mm += m * m;
            cp += c * p;
            mp += m * p;
        }
        let det = cc * mm - cm * cm;
        let (a, b) = if det.abs() > 1e-9 * (cc * mm).max(1.0) {
            ((cp * mm - mp * cm) / det, (mp * cc - cp * cm) / det)
        } else {
            (-1.0, -1.0)
        };
        if a >= 0.0 && b >= 0.0 {
            return Self {
                per_core_hour: a,
                per_gib_hour: b,
            };
        }
        // One price is negative (or the points are collinear): the better of the two
        // one-resource fits.
        let a = if cc > 0.0 { (cp / cc).max(0.0) } else { 0.0 };
        let b = if mm > 0.0 { (mp / mm).max(0.0) } else { 0.0 };
        // Residual sums of squares, less the common Σp².
        if a * a * cc - 2.0 * a * cp <= b * b * mm - 2.0 * b * mp {
            Self {
                per_core_hour: a,
                per_gib_hour: 0.0,
            }
        } else {
            Self {
                per_core_hour: 0.0,
                per_gib_hour: b,
            }
        }
    }

    /// Prices fitted to the snapshot's on-demand nodes and offerings.
    pub fn of_cluster(snapshot: &ClusterSnapshot) -> Self {
        use onmemos_core::ports::optimizer::CapacityType::OnDemand;
        let point = |r: &ResourceVector, price: MicroCredits| {
            (
                r.cpu_millis as f64 / 1000.0,
                r.memory_bytes as f64 / GIB,
                price as f64,
            )
        };
        Self::fit(
            snapshot
                .nodes
                .iter()
                .filter(|n| n.capacity_type == OnDemand && n.allocatable.gpus == 0)
                .map(|n| point(&n.allocatable, n.price_per_hour))
                .chain(
                    snapshot
                        .offerings
                        .iter()
                        .filter(|o| o.capacity_type == OnDemand && o.allocatable.gpus == 0)
                        .map(|o| point(&o.allocatable, o.price_per_hour)),
                ),
        )
    }

    /// Price per hour of `cpu_millis` and `memory_bytes`.
    pub fn per_hour(&self, cpu_millis: f64, memory_bytes: f64) -> f64 {
        cpu_millis / 1000.0 * self.per_core_hour + memory_bytes / GIB * self.per_gib_hour
    }
}

/// What the recommender says of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// The owner (`Deployment/web`), or the pod of a bare pod.
    pub workload: String,
    /// Pods of it in the snapshot.
    pub replicas: u32,
    /// Current requests (of its first pod).
    pub current: ResourceVector,
    /// Current limits.
    pub current_limits: Option<ResourceVector>,
    /// CPU estimates, in millicores.
    pub cpu: Estimates,
    /// Memory estimates, in bytes.
    pub memory: Estimates,
    /// Days of history the estimates rest on.
    pub confidence_days: f64,
    /// OOM kills seen.
    pub oom_kills: u32,
    /// Whether a current request lies outside its bounds.
    pub change: bool,
    /// Recommended requests (the targets).
    pub requests: ResourceVector,
    /// Recommended limits (current limits scaled with their requests).
    pub limits: Option<ResourceVector>,
    /// Monthly saving of the change over all replicas, in micro-credits (negative: it costs).
    pub monthly_savings: MicroCredits,
    /// Share of the (decayed) daily memory peaks above the recommended memory limit (or request).
    pub memory_risk: f64,
}

struct Group<'a> {
    name: String,
    pods: Vec<&'a PodInfo>,
}

fn groups(snapshot: &ClusterSnapshot) -> Result<Vec<Group<'_>>> {
    let mut by_owner: BTreeMap<String, Vec<&PodInfo>> = BTreeMap::new();
    for pod in &snapshot.pods {
        if let Some(u) = &pod.usage {
            check_series(pod, u)?;
            if u.cpu_millis.is_empty() {
                continue;
            }
            let key = pod.owner.clone().unwrap_or_else(|| pod.name.clone());
            by_owner.entry(key).or_default().push(pod);
        }
    }
    Ok(by_owner
        .into_iter()
        .map(|(name, pods)| Group { name, pods })
        .collect())
}

fn scale(v: f64, factor: f64) -> u64 {
    (v * factor).ceil() as u64
}

fn size_group(
    group: &Group<'_>,
    reference: chrono::DateTime<chrono::Utc>,
    options: &RightsizingOptions,
    prices: &UnitPrices,
    (cpu_buckets, memory_buckets): (&Buckets, &Buckets),
) -> Sizing {
    let mut cpu = Histogram::new(cpu_buckets);
    let mut memory = Histogram::new(memory_buckets);
    let (mut first, mut last, mut samples, mut oom_kills, mut peak) =
        (i64::MAX, i64::MIN, 0u64, 0u32, 0u64);
    let mut per_day = f64::INFINITY;
    for pod in &group.pods {
        let Some(u) = &pod.usage else { continue };
        peak = peak.max(add_series(
            u,
            reference,
            options,
            (cpu_buckets, &mut cpu),
            (memory_buckets, &mut memory),
        ));
        let start = u.start.timestamp();
        first = first.min(start);
        last = last.max(start + i64::from(u.step_secs) * u.cpu_millis.len() as i64);
        samples += u.cpu_millis.len() as u64;
        per_day = per_day.min(DAY_SECS as f64 / f64::from(u.step_secs));
        oom_kills += u.oom_kills;
    }
    // The VPA's confidence: days of history, but no more than the samples would fill at the
    // densest step seen.
    let span_days = (last - first) as f64 / DAY_SECS as f64;
    let confidence = span_days.min(samples as f64 / per_day).max(1e-3);
    let margin = 1.0 + options.safety_margin;
    let upper_factor = margin * (1.0 + 1.0 / confidence);
    let lower_factor = margin * (1.0 + 0.001 / confidence).powi(-2);
    let estimates = |h: &Histogram, buckets: &Buckets, min: u64| Estimates {
        lower: scale(
            h.percentile(buckets, options.lower_percentile),
            lower_factor,
        )
        .max(min),
        target: scale(h.percentile(buckets, options.target_percentile), margin).max(min),
        upper: scale(
            h.percentile(buckets, options.upper_percentile),
            upper_factor,
        )
        .max(min),
    };
    let cpu_est = estimates(&cpu, cpu_buckets, options.min_cpu_millis);
    let mut memory_est = estimates(&memory, memory_buckets, options.min_memory_bytes);
    if oom_kills > 0 {
        let bumped =
            scale(peak as f64, options.oom_bump_ratio).max(peak + options.oom_min_bump_bytes);
        memory_est.lower = memory_est.lower.max(bumped);
        memory_est.target = memory_est.target.max(bumped);
        memory_est.upper = memory_est.upper.max(bumped);
    }
    let pod = group.pods[0];
    let current = pod.requests;
    let change =
        !cpu_est.contains(current.cpu_millis) || !memory_est.contains(current.memory_bytes);
    let requests = ResourceVector {
        cpu_millis: cpu_est.target,
        memory_bytes: memory_est.target,
        ..current
    };
    let ratio = |limit: u64, request: u64, new: u64| {
        if request == 0 {
            limit
        } else {
            scale(new as f64, limit as f64 / request as f64)
        }
    };
    let limits = pod.limits.map(|l| ResourceVector {
        cpu_millis: ratio(l.cpu_millis, current.cpu_millis, requests.cpu_millis),
        memory_bytes: ratio(l.memory_bytes, current.memory_bytes, requests.memory_bytes),
        ..l
    });
    let replicas = group.pods.len() as u32;
    // Every pod's own requests, should they differ from the first's.
    let saving = group
        .pods
        .iter()
        .map(|p| {
            prices.per_hour(
                p.requests.cpu_millis as f64 - requests.cpu_millis as f64,
                p.requests.memory_bytes as f64 - requests.memory_bytes as f64,
            )
        })
        .sum::<f64>()
        * HOURS_PER_MONTH;
    let memory_ceiling = limits.map_or(requests.memory_bytes, |l| l.memory_bytes);
    Sizing {
        workload: group.name.clone(),
        replicas,
        current,
        current_limits: pod.limits,
        cpu: cpu_est,
        memory: memory_est,
        confidence_days: confidence,
        oom_kills,
        change,
        requests,
        limits,
        monthly_savings: saving.round() as MicroCredits,
        memory_risk: memory.share_from(memory_buckets, memory_ceiling as f64),
    }
}

/// `f` over `items` on every core, in order.
fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Sizes every workload of the snapshot with usage, on all cores, in the order of their names.
pub fn rightsize(
    snapshot: &ClusterSnapshot,
    prices: &UnitPrices,
    options: &RightsizingOptions,
) -> Result<Vec<Sizing>> {
    options.validate()?;
    let buckets = (&Buckets::cpu(), &Buckets::memory());
    Ok(par_map(&groups(snapshot)?, |g| {
        size_group(g, snapshot.taken_at, options, prices, buckets)
    }))
}

/// The baseline the histograms are measured against: each workload's exact weighted
/// percentiles (CPU target and memory target, before margins), by sorting every sample, on
/// every core as [`rightsize`] is.
pub fn exact_targets(
    snapshot: &ClusterSnapshot,
    options: &RightsizingOptions,
) -> Result<Vec<(String, f64, f64)>> {
    options.validate()?;
    let half_life = options.half_life_hours * 3600.0;
    let percentile = |mut samples: Vec<(f64, f64)>| {
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = samples.iter().map(|s| s.1).sum();
        let threshold = options.target_percentile * total;
        let mut sum = 0.0;
        for (v, w) in &samples {
            sum += w;
            if sum >= threshold {
                return *v;
            }
        }
        samples.last().map_or(0.0, |s| s.0)
    };
    Ok(par_map(&groups(snapshot)?, |g| {
        let (mut cpu, mut memory) = (Vec::new(), Vec::new());
        for u in g.pods.iter().filter_map(|p| p.usage.as_ref()) {
            let offset = (u.start - snapshot.taken_at).num_milliseconds() as f64 / 1000.0;
            let step = f64::from(u.step_secs);
            for (i, &v) in u.cpu_millis.iter().enumerate() {
                cpu.push((f64::from(v), decay(offset + i as f64 * step, half_life)));
            }
            let per_window = (DAY_SECS / i64::from(u.step_secs)).max(1) as usize;
            for (w, window) in u.memory_bytes.chunks(per_window).enumerate() {
                let last = (w * per_window + window.len() - 1) as f64;
                let peak = window.iter().copied().max().unwrap_or(0) as f64;
                memory.push((peak, decay(offset + last * step, half_life)));
            }
        }
        (g.name.clone(), percentile(cpu), percentile(memory))
    }))
}

fn mib(bytes: u64) -> String {
    format!("{}Mi", (bytes as f64 / MIB).ceil())
}

impl Sizing {
    /// The sizing as a recommendation, when it recommends a change.
    pub fn recommendation(&self) -> Option<Recommendation> {
        if !self.change {
            return None;
        }
        let mut summary = format!(
            "set requests to cpu {}m, memory {} (now {}m, {})",
            self.requests.cpu_millis,
            mib(self.requests.memory_bytes),
            self.current.cpu_millis,
            mib(self.current.memory_bytes)
        );
        if let Some(l) = self.limits {
            summary.push_str(&format!(
                "; limits cpu {}m, memory {}",
                l.cpu_millis,
                mib(l.memory_bytes)
            ));
        }
        let mut details = vec![
            format!(
                "cpu: lower {}m, target {}m (p90 + 15%), upper {}m",
                self.cpu.lower, self.cpu.target, self.cpu.upper
            ),
            format!(
                "memory: lower {}, target {} (p90 of daily peaks + 15%), upper {}",
                mib(self.memory.lower),
                mib(self.memory.target),
                mib(self.memory.upper)
            ),
            format!(
                "confidence: {:.1} day(s) of history over {} replica(s)",
                self.confidence_days, self.replicas
            ),
            format!(
                "saving {} credits per month over {} replica(s)",
                credits(self.monthly_savings as f64),
                self.replicas
            ),
        ];
        if self.oom_kills > 0 {
            details.push(format!(
                "{} OOM kill(s): memory raised to at least max(peak × 1.2, peak + 100Mi)",
                self.oom_kills
            ));
        }
        Some(Recommendation {
            kind: RecommendationKind::Rightsizing,
            target: self.workload.clone(),
            summary,
            monthly_savings: self.monthly_savings,
            risk: self.memory_risk,
            details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_their_formula() {
        let b = Buckets::cpu();
        assert_eq!(b.start(0), 0.0);
        assert!((b.start(1) - 10.0).abs() < 1e-9);
        assert!((b.start(2) - 20.5).abs() < 1e-9);
        for v in [0u32, 1, 9, 10, 11, 20, 21, 903, 65_535, 65_536, 999_999] {
            let i = b.find(f64::from(v));
            assert!(b.start(i) <= f64::from(v), "{v}");
            assert!(i + 1 == b.len() || f64::from(v) < b.start(i + 1), "{v}");
            assert_eq!(b.find_small(v), i, "{v}");
        }
    }

    #[test]
    fn unit_prices_recover_a_linear_price_book() {
        let points = [(2.0, 8.0), (4.0, 16.0), (8.0, 16.0), (2.0, 16.0)]
            .map(|(c, m)| (c, m, 30_000.0 * c + 4_000.0 * m));
        let p = UnitPrices::fit(points);
        assert!((p.per_core_hour - 30_000.0).abs() < 1e-6, "{p:?}");
        assert!((p.per_gib_hour - 4_000.0).abs() < 1e-6, "{p:?}");
        // Collinear points (every node 1:4) give one price, not a negative one.
        let p = UnitPrices::fit([(1.0, 4.0, 10.0), (2.0, 8.0, 20.0)]);
        assert!(p.per_core_hour >= 0.0 && p.per_gib_hour >= 0.0, "{p:?}");
        assert!((p.per_hour(1000.0, 4.0 * GIB) - 10.0).abs() < 1e-6, "{p:?}");
    }
}
