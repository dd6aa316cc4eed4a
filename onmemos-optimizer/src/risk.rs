//! The spot interruption risk model.
//!
//! A spot pool's monthly interruption rate `r` is modelled as a latent logistic variable on the
//! logit scale, `logit(r) ~ Logistic(w·x, s)`, where `x` are the pool's features (family class,
//! generation, size, architecture, attribute letters, operating system, region, savings, price
//! volatility, and the bands of neighbouring pools). The Spot Advisor reports `r` only as a
//! band, so each pool is an interval-censored observation: the model is an ordered logit whose
//! cutpoints are the feed's own band edges, fitted by maximum likelihood (full-batch Adam,
//! L2-regularised, deterministic).
//!
//! From the fitted distribution the model gives, for any pool:
//!
//! - the probability of each band, when the pool's band is unknown (a type or region the
//!   advisor does not cover, or a band to second-guess);
//! - the expected monthly interruption probability `E[r]`, and, when the band is known,
//!   `E[r | band]` — the band's interval refined by everything else known of the pool, in place
//!   of its midpoint.
//!
//! See `docs/optimizer.md` for what it was trained on and what it cannot know.

use std::collections::BTreeMap;

use onmemos_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::{
    Architecture, BandRange, OperatingSystem, PoolKey, SpotAdvisorFeed, parse_aws_name,
};

/// The shipped model, trained by `train_risk_model` on the public Spot Advisor snapshot.
const SHIPPED: &str = include_str!("../models/spot-risk-v1.json");

/// Classes of instance family, the first feature group.
const CLASSES: [&str; 7] = [
    "general",
    "burstable",
    "compute",
    "memory",
    "storage",
    "accelerated",
    "hpc",
];

/// Attribute letters after the generation that carry meaning (`d` local NVMe, `n` network…).
const ATTRIBUTES: [char; 6] = ['d', 'n', 'a', 'i', 'e', 'z'];

fn family_class(family: &str) -> &'static str {
    match family {
        "t" => "burstable",
        "c" => "compute",
        "r" | "x" | "z" | "u-" | "u" => "memory",
        "i" | "d" | "h" | "im" | "is" => "storage",
        "p" | "g" | "inf" | "trn" | "f" | "vt" | "dl" | "gr" => "accelerated",
        "hpc" => "hpc",
        _ => "general",
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// What the model is told about one spot pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolFeatures {
    /// Instance type name.
    pub instance_type: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Region.
    pub region: String,
    /// Operating system.
    pub os: OperatingSystem,
    /// Spot savings over on-demand in percent, if known.
    pub savings_pct: Option<f64>,
    /// Coefficient of variation of the pool's spot price history, if one was given.
    pub price_volatility: Option<f64>,
    /// Mean logit of the band midpoints of the same type in other regions, if any.
    pub type_elsewhere: Option<f64>,
    /// Mean logit of the band midpoints of the same family and generation in this region.
    pub family_here: Option<f64>,
}

/// Band midpoints' logits averaged over `bands` (the neighbour features).
fn mean_logit(bands: &[BandRange], of: impl Iterator<Item = u8>) -> Option<f64> {
    let (sum, n) = of.fold((0.0, 0u32), |(s, n), b| {
        (s + logit(bands[usize::from(b)].midpoint()), n + 1)
    });
    (n > 0).then(|| sum / f64::from(n))
}

/// Neighbour lookups over a set of known pools.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    by_type: BTreeMap<(String, OperatingSystem), Vec<(String, u8)>>,
    by_family: BTreeMap<(String, OperatingSystem, String), Vec<(String, u8)>>,
}

pub(crate) fn family_generation(instance_type: &str) -> String {
    parse_aws_name(instance_type).map_or_else(
        || instance_type.to_owned(),
        |n| format!("{}{}", n.family, n.generation),
    )
}

/// The bands of `pools` (name, band) but the one named `except`.
fn bands_except(pools: Option<&Vec<(String, u8)>>, except: &str) -> Vec<u8> {
    pools.map_or_else(Vec::new, |pools| {
        pools
            .iter()
            .filter(|(name, _)| name != except)
            .map(|(_, band)| *band)
            .collect()
    })
}

impl Neighbours {
    /// Indexes `pools` (each with its band) for neighbour features.
    pub fn new<'a>(pools: impl IntoIterator<Item = (&'a PoolKey, u8)>) -> Self {
        let mut n = Self::default();
        for (key, band) in pools {
            n.by_type
                .entry((key.instance_type.clone(), key.os))
                .or_default()
                .push((key.region.clone(), band));
            n.by_family
                .entry((
                    key.region.clone(),
                    key.os,
                    family_generation(&key.instance_type),
                ))
                .or_default()
                .push((key.instance_type.clone(), band));
        }
        n
    }

    /// The bands of the same type in other regions.
    pub fn type_elsewhere(&self, key: &PoolKey) -> Vec<u8> {
        let pools = self.by_type.get(&(key.instance_type.clone(), key.os));
        bands_except(pools, &key.region)
    }

    /// The bands of other types of the same family and generation in the same region.
    pub fn family_here(&self, key: &PoolKey) -> Vec<u8> {
        let family = (
            key.region.clone(),
            key.os,
            family_generation(&key.instance_type),
        );
        bands_except(self.by_family.get(&family), &key.instance_type)
    }

    /// The features of `key`, its own band left out.
    pub fn features(
        &self,
        feed: &SpotAdvisorFeed,
        key: &PoolKey,
        savings_pct: Option<f64>,
    ) -> PoolFeatures {
        let vcpus = feed
            .instance_types
            .get(&key.instance_type)
            .map_or(0, |t| t.vcpus);
        PoolFeatures {
            instance_type: key.instance_type.clone(),
            vcpus,
            region: key.region.clone(),
            os: key.os,
            savings_pct,
            price_volatility: None,
            type_elsewhere: mean_logit(&feed.bands, self.type_elsewhere(key).into_iter()),
            family_here: mean_logit(&feed.bands, self.family_here(key).into_iter()),
        }
    }
}

/// A trained interruption model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskModel {
    /// Format version.
    pub version: u32,
    /// What it was trained on, for humans.
    pub trained_on: String,
    /// Feature names, in the order of `weights`.
    pub features: Vec<String>,
    /// Weights of the latent mean.
    pub weights: Vec<f64>,
    /// Log of the latent scale `s`.
    pub log_scale: f64,
    /// The bands (their edges are the cutpoints).
    pub bands: Vec<BandRange>,
    /// Regions with their own weight.
    pub regions: Vec<String>,
    /// Held-out evaluation at training time.
    pub evaluation: Option<Evaluation>,
}

/// A prediction for one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskPrediction {
    /// Probability of each band.
    pub band_probabilities: Vec<f64>,
    /// Expected monthly interruption probability.
    pub interruption_probability: f64,
}

impl RiskModel {
    /// The model shipped with the crate.
    pub fn shipped() -> Result<Self> {
        Self::from_json(SHIPPED)
    }

    /// Reads a serialised model.
    pub fn from_json(json: &str) -> Result<Self> {
        let model: Self = serde_json::from_str(json)
            .map_err(|e| Error::invalid("model", format!("risk model: {e}")))?;
        let expected = feature_names(&model.regions).len();
        if model.weights.len() != expected || model.bands.len() < 2 {
            return Err(Error::invalid(
                "model",
                format!(
                    "risk model: {} weights for {expected} features, {} bands",
                    model.weights.len(),
                    model.bands.len()
                ),
            ));
        }
        Ok(model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn cutpoints(&self) -> Vec<f64> {
        cutpoints(&self.bands)
    }

    fn mean(&self, features: &PoolFeatures) -> f64 {
        dot(&self.weights, &encode(features, &self.regions))
    }

    /// The prediction for a pool whose band is unknown.
    pub fn predict(&self, features: &PoolFeatures) -> RiskPrediction {
        let mu = self.mean(features);
        let s = self.log_scale.exp();
        let cuts = self.cutpoints();
        RiskPrediction {
            band_probabilities: band_probabilities(mu, s, &cuts),
            interruption_probability: expected_rate(mu, s, f64::NEG_INFINITY, f64::INFINITY),
        }
    }

    /// The neighbour feature for pools with these bands: the mean logit of their midpoints
    /// (`None` for no pool), as [`PoolFeatures::type_elsewhere`] and
    /// [`PoolFeatures::family_here`] expect.
    pub fn neighbour_feature(&self, bands: impl Iterator<Item = u8>) -> Option<f64> {
        let last = self.bands.len().saturating_sub(1);
        mean_logit(&self.bands, bands.map(|b| b.min(last as u8)))
    }

    /// The expected monthly interruption probability of a pool, given its band when known.
    pub fn interruption_probability(&self, features: &PoolFeatures, band: Option<u8>) -> f64 {
        let mu = self.mean(features);
        let s = self.log_scale.exp();
        let cuts = self.cutpoints();
        let (lo, hi) = match band {
            Some(b) => interval(&cuts, usize::from(b).min(cuts.len())),
            None => (f64::NEG_INFINITY, f64::INFINITY),
        };
        expected_rate(mu, s, lo, hi)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The logit of each band's upper edge but the last.
fn cutpoints(bands: &[BandRange]) -> Vec<f64> {
    bands[..bands.len() - 1]
        .iter()
        .map(|b| logit(b.upper_pct / 100.0))
        .collect()
}

/// The latent interval of band `k`.
fn interval(cuts: &[f64], k: usize) -> (f64, f64) {
    let lo = if k == 0 {
        f64::NEG_INFINITY
    } else {
        cuts[k - 1]
    };
    let hi = cuts.get(k).copied().unwrap_or(f64::INFINITY);
    (lo, hi)
}

fn band_probabilities(mu: f64, s: f64, cuts: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut below = 0.0;
    for c in cuts {
        let cdf = sigmoid((c - mu) / s);
        out.push((cdf - below).max(0.0));
        below = cdf;
    }
    out.push((1.0 - below).max(0.0));
    out
}

/// `E[σ(z)]` for `z ~ Logistic(mu, s)` truncated to `(lo, hi]`, by the midpoint rule over the
/// truncated quantiles.
fn expected_rate(mu: f64, s: f64, lo: f64, hi: f64) -> f64 {
    const STEPS: usize = 256;
    let f_lo = if lo.is_finite() {
        sigmoid((lo - mu) / s)
    } else {
        0.0
    };
    let f_hi = if hi.is_finite() {
        sigmoid((hi - mu) / s)
    } else {
        1.0
    };
    if f_hi - f_lo < 1e-12 {
        // The model puts (almost) no mass in the interval: its nearer edge.
        let edge = if mu <= lo { lo } else { hi };
        return sigmoid(edge);
    }
    let mut sum = 0.0;
    for i in 0..STEPS {
        let u = f_lo + (f_hi - f_lo) * ((i as f64 + 0.5) / STEPS as f64);
        sum += sigmoid(mu + s * logit(u));
    }
    sum / STEPS as f64
}

/// Feature names for a region vocabulary.
pub fn feature_names(regions: &[String]) -> Vec<String> {
    let mut names = vec!["intercept".to_owned()];
    names.extend(CLASSES.iter().skip(1).map(|c| format!("class={c}")));
    names.extend(
        [
            "generation",
            "log2_vcpus",
            "metal",
            "arm64",
            "flex",
            "windows",
            "savings",
            "savings_unknown",
            "price_volatility",
            "type_elsewhere",
            "type_elsewhere_unknown",
            "family_here",
            "family_here_unknown",
        ]
        .map(str::to_owned),
    );
    names.extend(ATTRIBUTES.iter().map(|a| format!("attr={a}")));
    names.extend(regions.iter().skip(1).map(|r| format!("region={r}")));
    names
}

/// Encodes features in the order of [`feature_names`]. The first class and the first region
/// are the reference levels.
fn encode(f: &PoolFeatures, regions: &[String]) -> Vec<f64> {
    let parsed = parse_aws_name(&f.instance_type);
    let class = parsed
        .as_ref()
        .map_or("general", |p| family_class(&p.family));
    let mut x = vec![1.0];
    x.extend(
        CLASSES
            .iter()
            .skip(1)
            .map(|c| if *c == class { 1.0 } else { 0.0 }),
    );
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let generation = parsed.as_ref().map_or(5.0, |p| f64::from(p.generation));
    let attributes = parsed
        .as_ref()
        .map(|p| p.attributes.clone())
        .unwrap_or_default();
    let base = attributes.split('-').next().unwrap_or_default().to_owned();
    let neighbour = |v: Option<f64>| match v {
        Some(l) => (l / 2.0, 0.0),
        None => (0.0, 1.0),
    };
    let (type_elsewhere, type_unknown) = neighbour(f.type_elsewhere);
    let (family_here, family_unknown) = neighbour(f.family_here);
    x.extend([
        (generation - 5.0) / 2.0,
        (f64::from(f.vcpus.max(1))).log2() / 4.0,
        flag(parsed.as_ref().is_some_and(|p| p.size.starts_with("metal"))),
        flag(
            parsed
                .as_ref()
                .is_some_and(|p| p.architecture == Architecture::Arm64),
        ),
        flag(attributes.contains("flex")),
        flag(f.os == OperatingSystem::Windows),
        f.savings_pct.map_or(0.0, |s| s / 100.0),
        flag(f.savings_pct.is_none()),
        f.price_volatility.unwrap_or(0.0),
        type_elsewhere,
        type_unknown,
        family_here,
        family_unknown,
    ]);
    x.extend(ATTRIBUTES.iter().map(|a| flag(base.contains(*a))));
    x.extend(regions.iter().skip(1).map(|r| flag(*r == f.region)));
    x
}

/// One training or evaluation example: a pool's features and its observed band.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The pool.
    pub key: PoolKey,
    /// Its features (its own band left out).
    pub features: PoolFeatures,
    /// Its band.
    pub band: u8,
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingOptions {
    /// Full-batch Adam iterations.
    pub iterations: u32,
    /// Adam step size.
    pub learning_rate: f64,
    /// L2 penalty on every weight but the intercept.
    pub l2: f64,
    /// Share of pools held out for evaluation, chosen by a hash of the pool.
    pub held_out: f64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            iterations: 400,
            learning_rate: 0.05,
            l2: 1e-3,
            held_out: 0.2,
        }
    }
}

/// Whether a pool is held out: FNV-1a of its key, so the split is stable across runs and
/// machines.
pub fn is_held_out(key: &PoolKey, share: f64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let os = match key.os {
        OperatingSystem::Linux => "L",
        OperatingSystem::Windows => "W",
    };
    for b in key
        .region
        .bytes()
        .chain(os.bytes())
        .chain(key.instance_type.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 10_000) as f64 / 10_000.0 < share
}

/// Splits the feed into training and held-out examples. Neighbour features of both come from
/// the training pools only, so no held-out band leaks into any feature.
pub fn examples(feed: &SpotAdvisorFeed, held_out: f64) -> (Vec<Example>, Vec<Example>) {
    let training_pools = feed
        .advice
        .iter()
        .filter(|(k, _)| !is_held_out(k, held_out))
        .map(|(k, a)| (k, a.band));
    let neighbours = Neighbours::new(training_pools);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (key, advice) in &feed.advice {
        let example = Example {
            key: key.clone(),
            features: neighbours.features(feed, key, Some(f64::from(advice.savings_pct))),
            band: advice.band,
        };
        if is_held_out(key, held_out) {
            test.push(example);
        } else {
            train.push(example);
        }
    }
    (train, test)
}

/// Fits the model on `train` (deterministic: same input, same weights).
pub fn train(
    bands: &[BandRange],
    train: &[Example],
    options: TrainingOptions,
    trained_on: String,
) -> RiskModel {
    let regions: Vec<String> = train
        .iter()
        .map(|e| e.key.region.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let xs: Vec<Vec<f64>> = train
        .iter()
        .map(|e| encode(&e.features, &regions))
        .collect();
    let dim = feature_names(&regions).len();
    let cuts = cutpoints(bands);
    // Parameters: the weights, then log s.
    let mut params: Vec<f64> = vec![0.0; dim + 1];
    let mut m = vec![0.0; dim + 1];
    let mut v = vec![0.0; dim + 1];
    let (beta1, beta2, eps) = (0.9, 0.999, 1e-8);
    let n = train.len().max(1) as f64;
    for step in 1..=options.iterations {
        let mut grad = vec![0.0; dim + 1];
        let s = params[dim].exp();
        for (x, e) in xs.iter().zip(train) {
            let mu = dot(&params[..dim], x);
            let (lo, hi) = interval(&cuts, usize::from(e.band));
            let (a, b) = ((lo - mu) / s, (hi - mu) / s);
            let (fa, fb) = (sigmoid(a), sigmoid(b));
            let p = (fb - fa).max(1e-12);
            let (da, db) = (fa * (1.0 - fa), fb * (1.0 - fb));
            // d(-log p)/dmu and d(-log p)/dlog s.
            let d_mu = (db - da) / (s * p);
            let term = |d: f64, u: f64| if u.is_finite() { d * u } else { 0.0 };
            let d_logs = (term(db, b) - term(da, a)) / p;
            for (g, xi) in grad[..dim].iter_mut().zip(x) {
                *g += d_mu * xi;
            }
            grad[dim] += d_logs;
        }
        for (i, g) in grad.iter_mut().enumerate() {
            *g /= n;
            if i != 0 && i != dim {
                *g += options.l2 * params[i];
            }
        }
        let (c1, c2) = (1.0 - pow_steps(beta1, step), 1.0 - pow_steps(beta2, step));
        for i in 0..=dim {
            m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i];
            v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
            params[i] -= options.learning_rate * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
    }
    let log_scale = params[dim];
    params.truncate(dim);
    RiskModel {
        version: 1,
        trained_on,
        features: feature_names(&regions),
        weights: params,
        log_scale,
        bands: bands.to_vec(),
        regions,
        evaluation: None,
    }
}

fn pow_steps(beta: f64, step: u32) -> f64 {
    beta.powi(i32::try_from(step).unwrap_or(i32::MAX))
}

/// Scores of one predictor on the held-out pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The predictor.
    pub name: String,
    /// Mean negative log-likelihood of the observed band (nats).
    pub log_loss: f64,
    /// Multi-class Brier score over the bands (0 perfect, 2 worst).
    pub brier: f64,
    /// Brier score of the binary event "monthly interruptions of 10% or more" (band ≥ 2).
    pub brier_high: f64,
    /// Log-loss of that binary event.
    pub log_loss_high: f64,
    /// Share of pools whose predicted monthly interruption probability falls in their band.
    pub band_hit_rate: f64,
    /// Calibration of the binary event: (mean predicted, observed share, pools) per decile of
    /// prediction.
    pub calibration: Vec<(f64, f64, usize)>,
}

/// The held-out evaluation: the model next to its baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Held-out pools.
    pub pools: usize,
    /// The model, then the baselines.
    pub scores: Vec<Scores>,
}

impl Evaluation {
    /// A fixed-width table for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!(
            "held-out pools: {}\n{:<16} {:>9} {:>8} {:>12} {:>13} {:>9}\n",
            self.pools,
            "predictor",
            "log-loss",
            "brier",
            "brier(>=10%)",
            "logloss(>=10%)",
            "band-hit"
        );
        for s in &self.scores {
            out += &format!(
                "{:<16} {:>9.4} {:>8.4} {:>12.4} {:>13.4} {:>9.3}\n",
                s.name, s.log_loss, s.brier, s.brier_high, s.log_loss_high, s.band_hit_rate
            );
        }
        if let Some(model) = self.scores.first() {
            out += "calibration of P(>=10%) for the model (mean predicted / observed / pools):\n";
            for (p, o, n) in &model.calibration {
                out += &format!("  {p:.3} / {o:.3} / {n}\n");
            }
        }
        out
    }
}

/// Scores band distributions and rate predictions against the observed bands.
fn score(
    name: &str,
    bands: &[BandRange],
    predictions: &[(Vec<f64>, f64)],
    observed: &[u8],
) -> Scores {
    let n = observed.len().max(1) as f64;
    let (mut ll, mut brier, mut bh, mut llh, mut hits) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut pairs = Vec::with_capacity(observed.len());
    for ((probs, rate), &y) in predictions.iter().zip(observed) {
        let y = usize::from(y);
        ll -= probs[y].max(1e-12).ln();
        brier += probs
            .iter()
            .enumerate()
            .map(|(k, p)| (p - if k == y { 1.0 } else { 0.0 }).powi(2))
            .sum::<f64>();
        let p_high: f64 = probs[2.min(probs.len() - 1)..]
            .iter()
            .sum::<f64>()
            .clamp(1e-12, 1.0 - 1e-12);
        let o_high = if y >= 2 { 1.0 } else { 0.0 };
        bh += (p_high - o_high).powi(2);
        llh -= if y >= 2 {
            p_high.ln()
        } else {
            (1.0 - p_high).ln()
        };
        let band = &bands[y];
        if *rate * 100.0 > band.lower_pct && *rate * 100.0 <= band.upper_pct {
            hits += 1.0;
        }
        pairs.push((p_high, o_high));
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let calibration = pairs
        .chunks(pairs.len().div_ceil(10).max(1))
        .map(|c| {
            let k = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / k,
                c.iter().map(|p| p.1).sum::<f64>() / k,
                c.len(),
            )
        })
        .collect();
    Scores {
        name: name.to_owned(),
        log_loss: ll / n,
        brier: brier / n,
        brier_high: bh / n,
        log_loss_high: llh / n,
        band_hit_rate: hits / n,
        calibration,
    }
}

/// Evaluates `model` on `test` next to two baselines: `prior` (the training band frequencies
/// for every pool) and `band midpoint` (the naive lookup: the same type's bands in other
/// regions — their smoothed frequencies as the distribution, the midpoint of their mean as the
/// rate — falling back to the prior).
pub fn evaluate(model: &RiskModel, train: &[Example], test: &[Example]) -> Evaluation {
    let k = model.bands.len();
    let mut prior = vec![1.0; k];
    for e in train {
        prior[usize::from(e.band)] += 1.0;
    }
    let total: f64 = prior.iter().sum();
    prior.iter_mut().for_each(|p| *p /= total);
    let prior_rate: f64 = prior
        .iter()
        .zip(&model.bands)
        .map(|(p, b)| p * b.midpoint())
        .sum();

    let neighbours = Neighbours::new(train.iter().map(|e| (&e.key, e.band)));
    let observed: Vec<u8> = test.iter().map(|e| e.band).collect();
    let model_preds: Vec<(Vec<f64>, f64)> = test
        .iter()
        .map(|e| {
            let p = model.predict(&e.features);
            (p.band_probabilities, p.interruption_probability)
        })
        .collect();
    let prior_preds: Vec<(Vec<f64>, f64)> =
        test.iter().map(|_| (prior.clone(), prior_rate)).collect();
    let midpoint_preds: Vec<(Vec<f64>, f64)> = test
        .iter()
        .map(|e| {
            let elsewhere = neighbours.type_elsewhere(&e.key);
            if elsewhere.is_empty() {
                return (prior.clone(), prior_rate);
            }
            let mut counts = vec![0.5; k];
            for b in &elsewhere {
                counts[usize::from(*b)] += 1.0;
            }
            let sum: f64 = counts.iter().sum();
            let rate = elsewhere
                .iter()
                .map(|b| model.bands[usize::from(*b)].midpoint())
                .sum::<f64>()
                / elsewhere.len() as f64;
            (counts.into_iter().map(|c| c / sum).collect(), rate)
        })
        .collect();
    Evaluation {
        pools: test.len(),
        scores: vec![
            score("model", &model.bands, &model_preds, &observed),
            score("band midpoint", &model.bands, &midpoint_preds, &observed),
            score("prior", &model.bands, &prior_preds, &observed),
        ],
    }
}

/// Trains on the feed's training split and evaluates on the held-out split: the training
/// command's whole job.
pub fn train_and_evaluate(feed: &SpotAdvisorFeed, options: TrainingOptions) -> RiskModel {
    let (train_set, test_set) = examples(feed, options.held_out);
    let trained_on = format!(
        "AWS Spot Advisor feed: {} pools in {} regions ({} for training, {} held out); \
         no price history",
        feed.advice.len(),
        feed.regions().len(),
        train_set.len(),
        test_set.len()
    );
    let mut model = train(&feed.bands, &train_set, options, trained_on);
    model.evaluation = Some(evaluate(&model, &train_set, &test_set));
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bands() -> Vec<BandRange> {
        [
            (0.0, 5.0),
            (5.0, 11.0),
            (11.0, 16.0),
            (16.0, 22.0),
            (22.0, 100.0),
        ]
        .iter()
        .enumerate()
        .map(|(i, (lo, hi))| BandRange {
            index: i as u8,
            label: format!("b{i}"),
            lower_pct: *lo,
            upper_pct: *hi,
        })
        .collect()
    }

    #[test]
    fn truncated_expectation_stays_inside_the_band() {
        let cuts = cutpoints(&bands());
        for mu in [-4.0, -2.0, 0.0, 2.0] {
            for k in 0..5 {
                let (lo, hi) = interval(&cuts, k);
                let r = expected_rate(mu, 0.7, lo, hi);
                let b = &bands()[k];
                assert!(
                    r * 100.0 >= b.lower_pct - 1e-9 && r * 100.0 <= b.upper_pct + 1e-9,
                    "mu {mu} band {k}: {r}"
                );
            }
            let p = band_probabilities(mu, 0.7, &cuts);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn training_recovers_a_planted_effect() {
        // Windows pools sit two bands higher than Linux pools of the same type: the fitted
        // weight of `windows` must be clearly positive and the predictions must follow.
        let mut train_set = Vec::new();
        for (i, t) in ["m5.large", "c5.xlarge", "r5.2xlarge", "m6g.large"]
            .iter()
            .enumerate()
        {
            for os in [OperatingSystem::Linux, OperatingSystem::Windows] {
                let band = (i % 2) as u8 + if os == OperatingSystem::Windows { 2 } else { 0 };
                for region in ["r1", "r2", "r3"] {
                    let key = PoolKey {
                        region: region.into(),
                        os,
                        instance_type: (*t).into(),
                    };
                    train_set.push(Example {
                        features: PoolFeatures {
                            instance_type: (*t).into(),
                            vcpus: 2,
                            region: region.into(),
                            os,
                            savings_pct: Some(60.0),
                            price_volatility: None,
                            type_elsewhere: None,
                            family_here: None,
                        },
                        key,
                        band,
                    });
                }
            }
        }
        let model = train(
            &bands(),
            &train_set,
            TrainingOptions::default(),
            "test".into(),
        );
        let w = model
            .features
            .iter()
            .position(|f| f == "windows")
            .unwrap_or(0);
        assert!(
            model.weights[w] > 0.5,
            "windows weight {}",
            model.weights[w]
        );
        let linux = model
            .predict(&train_set[0].features)
            .interruption_probability;
        let windows = model
            .predict(&train_set[3].features)
            .interruption_probability;
        assert!(windows > linux, "{windows} <= {linux}");
    }
}
