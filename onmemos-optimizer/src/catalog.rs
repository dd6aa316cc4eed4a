//! The pricing catalog: instance types, on-demand and spot prices, Spot Advisor bands; and
//! loaders for the public formats they come in.
//!
//! Prices are integer micro-units of the catalog's currency per hour (the public feeds are in
//! USD; with the default one-credit-per-dollar price book they are micro-credits). Decimal
//! strings are converted exactly, rounding half up at the sixth decimal.

use std::collections::{BTreeMap, BTreeSet};

use onmemos_core::error::{Error, Result};
use onmemos_core::model::MicroCredits;
use onmemos_core::ports::optimizer::{CapacityType, NodeOffering, ResourceVector};
use serde::{Deserialize, Serialize};

/// Bytes in a MiB.
const MIB: u64 = 1024 * 1024;
/// Pods a node of any type may hold unless told otherwise (the kubelet's default).
pub const DEFAULT_MAX_PODS: u32 = 110;

/// CPU architecture of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// x86-64 (Intel, AMD).
    X86_64,
    /// 64-bit ARM (AWS Graviton, GCE Axion/Ampere).
    Arm64,
}

/// Operating system of a spot pool; the Spot Advisor reports each separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OperatingSystem {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
}

/// An instance (machine) type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceType {
    /// Its name (`m5.large`, `n2-standard-8`).
    pub name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// GPUs (0 when the source does not say).
    pub gpus: u32,
    /// CPU architecture.
    pub architecture: Architecture,
}

impl InstanceType {
    /// Its capacity as a resource vector, with the default pod limit.
    pub fn capacity(&self) -> ResourceVector {
        ResourceVector {
            cpu_millis: u64::from(self.vcpus) * 1000,
            memory_bytes: self.memory_mib * MIB,
            gpus: self.gpus,
            pods: DEFAULT_MAX_PODS,
        }
    }
}

/// A Spot Advisor interruption band: the share of instances the pool reclaimed over the
/// trailing month, as a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandRange {
    /// Band index, 0 (least interrupted) upwards.
    pub index: u8,
    /// Its label (`<5%`, `5-10%`, …).
    pub label: String,
    /// Lower edge in percent (the previous band's upper edge, 0 for the first).
    pub lower_pct: f64,
    /// Upper edge in percent, as the feed gives it (5, 11, 16, 22, 100).
    pub upper_pct: f64,
}

impl BandRange {
    /// The band's midpoint as a probability (the naive reading of a band).
    pub fn midpoint(&self) -> f64 {
        (self.lower_pct + self.upper_pct) / 200.0
    }
}

/// What the Spot Advisor says of one spot pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotAdvice {
    /// Interruption band index.
    pub band: u8,
    /// Savings of spot over on-demand, in percent (may be negative).
    pub savings_pct: i32,
}

impl SpotAdvice {
    /// The spot price for an on-demand price: `on_demand × (1 − savings)`, rounded down.
    pub fn spot_price(&self, on_demand: MicroCredits) -> MicroCredits {
        on_demand * i64::from(100 - self.savings_pct) / 100
    }
}

/// One pool the Spot Advisor reports on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PoolKey {
    /// Region (`us-east-1`).
    pub region: String,
    /// Operating system.
    pub os: OperatingSystem,
    /// Instance type.
    pub instance_type: String,
}

/// The AWS Spot Advisor feed (`spot-advisor-data.json`), parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotAdvisorFeed {
    /// The instance catalog it carries (vCPU and memory per type).
    pub instance_types: BTreeMap<String, InstanceType>,
    /// Its interruption bands, by index.
    pub bands: Vec<BandRange>,
    /// Advice per pool.
    pub advice: BTreeMap<PoolKey, SpotAdvice>,
}

#[derive(Deserialize)]
struct RawFeed {
    instance_types: BTreeMap<String, RawType>,
    ranges: Vec<RawRange>,
    spot_advisor: BTreeMap<String, BTreeMap<String, BTreeMap<String, RawAdvice>>>,
}

#[derive(Deserialize)]
struct RawType {
    cores: u32,
    ram_gb: f64,
}

#[derive(Deserialize)]
struct RawRange {
    index: u8,
    label: String,
    max: f64,
}

#[derive(Deserialize)]
struct RawAdvice {
    s: i32,
    r: u8,
}

fn invalid(source: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(source.to_owned(), format!("{source}: {message}"))
}

impl SpotAdvisorFeed {
    /// Parses the feed's JSON; errors name the path of the offending value.
    pub fn from_json(json: &str) -> Result<Self> {
        const SRC: &str = "spot advisor feed";
        let de = &mut serde_json::Deserializer::from_str(json);
        let raw: RawFeed = serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(SRC, format_args!("at `{}`: {}", e.path(), e.inner())))?;

        let mut bands = Vec::with_capacity(raw.ranges.len());
        let mut lower = 0.0;
        for (position, range) in raw.ranges.iter().enumerate() {
            if usize::from(range.index) != position {
                return Err(invalid(
                    SRC,
                    format_args!("ranges[{position}] has index {}", range.index),
                ));
            }
            if range.max.is_nan() || range.max <= lower || range.max > 100.0 {
                return Err(invalid(
                    SRC,
                    format_args!(
                        "ranges[{position}] upper edge {} is not above {lower} and at most 100",
                        range.max
                    ),
                ));
            }
            bands.push(BandRange {
                index: range.index,
                label: range.label.clone(),
                lower_pct: lower,
                upper_pct: range.max,
            });
            lower = range.max;
        }
        if bands.is_empty() {
            return Err(invalid(SRC, "`ranges` is empty"));
        }

        let mut instance_types = BTreeMap::new();
        for (name, t) in raw.instance_types {
            if t.cores == 0 || t.ram_gb.is_nan() || t.ram_gb <= 0.0 {
                return Err(invalid(
                    SRC,
                    format_args!("instance_types.{name} has no cores or memory"),
                ));
            }
            let parsed = parse_aws_name(&name)
                .ok_or_else(|| invalid(SRC, format_args!("instance type name `{name}`")))?;
            instance_types.insert(
                name.clone(),
                InstanceType {
                    architecture: parsed.architecture,
                    name,
                    vcpus: t.cores,
                    memory_mib: (t.ram_gb * 1024.0).round() as u64,
                    gpus: 0,
                },
            );
        }

        let mut advice = BTreeMap::new();
        for (region, by_os) in raw.spot_advisor {
            for (os_name, by_type) in by_os {
                let os = match os_name.as_str() {
                    "Linux" => OperatingSystem::Linux,
                    "Windows" => OperatingSystem::Windows,
                    other => {
                        return Err(invalid(
                            SRC,
                            format_args!(
                                "spot_advisor.{region}: unknown operating system `{other}`"
                            ),
                        ));
                    }
                };
                for (instance_type, a) in by_type {
                    if usize::from(a.r) >= bands.len() {
                        return Err(invalid(
                            SRC,
                            format_args!(
                                "spot_advisor.{region}.{os_name}.{instance_type}: band {} is not one of the {} ranges",
                                a.r,
                                bands.len()
                            ),
                        ));
                    }
                    if !(-100..=100).contains(&a.s) {
                        return Err(invalid(
                            SRC,
                            format_args!(
                                "spot_advisor.{region}.{os_name}.{instance_type}: savings {}% is outside -100..=100",
                                a.s
                            ),
                        ));
                    }
                    advice.insert(
                        PoolKey {
                            region: region.clone(),
                            os,
                            instance_type,
                        },
                        SpotAdvice {
                            band: a.r,
                            savings_pct: a.s,
                        },
                    );
                }
            }
        }
        Ok(Self {
            instance_types,
            bands,
            advice,
        })
    }

    /// The regions the feed covers.
    pub fn regions(&self) -> BTreeSet<&str> {
        self.advice.keys().map(|k| k.region.as_str()).collect()
    }
}

/// What an AWS instance type's name says about it (`m6gd.2xlarge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTypeName {
    /// The family letters (`m`, `inf`, `u-`).
    pub family: String,
    /// Its generation (6).
    pub generation: u32,
    /// The attribute letters after the generation (`gd`, `i-flex`).
    pub attributes: String,
    /// The size (`2xlarge`, `metal`).
    pub size: String,
    /// The architecture the attributes imply.
    pub architecture: Architecture,
}

/// Parses an AWS instance type name; `None` when it does not look like one.
pub fn parse_aws_name(name: &str) -> Option<AwsTypeName> {
    let (prefix, size) = name.split_once('.')?;
    let family: String = prefix
        .chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
        .collect();
    let rest = &prefix[family.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // `u-6tb1`: the digits are memory, not a generation; treat it as generation 1.
    let generation = if family.ends_with('-') {
        1
    } else {
        digits.parse().ok()?
    };
    let attributes = rest[digits.len()..].to_owned();
    if family.is_empty() || size.is_empty() {
        return None;
    }
    let base = attributes.split('-').next().unwrap_or_default();
    let architecture = if family == "a" || (base.contains('g') && family != "g" && family != "p") {
        Architecture::Arm64
    } else if (family == "g" || family == "p") && base.starts_with('g') {
        // `g5g`, `p6g`: the second `g` is Graviton.
        Architecture::Arm64
    } else {
        Architecture::X86_64
    };
    Some(AwsTypeName {
        family,
        generation,
        attributes,
        size: size.to_owned(),
        architecture,
    })
}

/// One row of an on-demand price table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandPrice {
    /// Region.
    pub region: String,
    /// Instance type.
    pub instance_type: String,
    /// Price per hour, micro-USD.
    pub price_per_hour: MicroCredits,
}

/// Parses a decimal amount (`0.019344`) into micro-units, exactly, rounding half up past the
/// sixth decimal. Negative, empty, exponent and non-numeric strings are refused.
pub fn parse_micros(text: &str) -> Option<MicroCredits> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut micros: i64 = 0;
    for i in 0..6 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    let round_up = frac.as_bytes().get(6).is_some_and(|b| *b >= b'5');
    whole
        .checked_mul(1_000_000)?
        .checked_add(micros + i64::from(round_up))
}

/// A parsed CSV: the header checked against `expected`, then rows of fields with their line
/// numbers. No quoting: the public price tables have none.
fn csv_rows<'a>(
    source: &str,
    text: &'a str,
    expected: &[&str],
) -> Result<Vec<(usize, Vec<&'a str>)>> {
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim_end_matches('\r'))
        .ok_or_else(|| invalid(source, "is empty"))?;
    let got: Vec<&str> = header.split(',').collect();
    if got != expected {
        return Err(invalid(
            source,
            format_args!("header is `{header}`, expected `{}`", expected.join(",")),
        ));
    }
    let mut rows = Vec::new();
    for (index, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < expected.len() {
            return Err(invalid(
                source,
                format_args!(
                    "line {}: {} fields, expected {}",
                    index + 1,
                    fields.len(),
                    expected.len()
                ),
            ));
        }
        rows.push((index + 1, fields));
    }
    Ok(rows)
}

fn price_field(source: &str, line: usize, column: &str, value: &str) -> Result<MicroCredits> {
    parse_micros(value).ok_or_else(|| {
        invalid(
            source,
            format_args!("line {line}: {column} `{value}` is not a non-negative decimal"),
        )
    })
}

/// [`price_field`] for a column that may be empty.
fn optional_price_field(
    source: &str,
    line: usize,
    column: &str,
    value: &str,
) -> Result<Option<MicroCredits>> {
    if value.is_empty() {
        Ok(None)
    } else {
        price_field(source, line, column, value).map(Some)
    }
}

/// Parses an on-demand price table, `region,instance_type,usd_per_hour`.
pub fn parse_on_demand_csv(text: &str) -> Result<Vec<OnDemandPrice>> {
    const SRC: &str = "on-demand price table";
    let mut seen = BTreeSet::new();
    csv_rows(SRC, text, &["region", "instance_type", "usd_per_hour"])?
        .into_iter()
        .map(|(line, f)| {
            if f[0].is_empty() || f[1].is_empty() {
                return Err(invalid(
                    SRC,
                    format_args!("line {line}: empty region or type"),
                ));
            }
            if !seen.insert((f[0], f[1])) {
                return Err(invalid(
                    SRC,
                    format_args!("line {line}: {} {} appears twice", f[0], f[1]),
                ));
            }
            Ok(OnDemandPrice {
                region: f[0].to_owned(),
                instance_type: f[1].to_owned(),
                price_per_hour: price_field(SRC, line, "usd_per_hour", f[2])?,
            })
        })
        .collect()
}

/// A GCE machine type's prices (`gce-machine-prices.csv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GceMachinePrice {
    /// Machine type (`n2-standard-8`).
    pub machine_type: String,
    /// On-demand price per hour, micro-USD.
    pub on_demand: MicroCredits,
    /// Preemptible (spot) price per hour, if the source has one.
    pub preemptible: Option<MicroCredits>,
}

/// Parses `machine_type,usd_per_hour_ondemand,usd_per_hour_preemptible`.
pub fn parse_gce_machine_csv(text: &str) -> Result<Vec<GceMachinePrice>> {
    const SRC: &str = "GCE machine price table";
    csv_rows(
        SRC,
        text,
        &[
            "machine_type",
            "usd_per_hour_ondemand",
            "usd_per_hour_preemptible",
        ],
    )?
    .into_iter()
    .map(|(line, f)| {
        Ok(GceMachinePrice {
            machine_type: f[0].to_owned(),
            on_demand: price_field(SRC, line, "usd_per_hour_ondemand", f[1])?,
            preemptible: optional_price_field(SRC, line, "usd_per_hour_preemptible", f[2])?,
        })
    })
    .collect()
}

/// A GCE per-unit price of one family (`gce-family-unit-prices.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GceUnitPrice {
    /// Machine family (`n2`), or `default`.
    pub family: String,
    /// `predefined`, `custom` or `fallback`.
    pub shape: String,
    /// `cpu` or `memory`.
    pub resource: String,
    /// On-demand price per vCPU-hour or GiB-hour, micro-USD (may round to 0 below a micro).
    pub on_demand: MicroCredits,
    /// The multiplier the source applies for preemptible capacity.
    pub preemptible_multiplier: f64,
}

/// Parses the GCE family unit price table.
pub fn parse_gce_unit_csv(text: &str) -> Result<Vec<GceUnitPrice>> {
    const SRC: &str = "GCE family unit price table";
    csv_rows(
        SRC,
        text,
        &[
            "family",
            "shape",
            "resource",
            "unit",
            "usd_per_unit_hour_ondemand",
            "usd_per_unit_hour_preemptible",
            "preemptible_multiplier",
        ],
    )?
    .into_iter()
    .map(|(line, f)| {
        if !matches!(f[2], "cpu" | "memory") {
            return Err(invalid(
                SRC,
                format_args!("line {line}: resource `{}` is not cpu or memory", f[2]),
            ));
        }
        let multiplier: f64 = f[6]
            .parse()
            .ok()
            .filter(|m: &f64| (0.0..=1.0).contains(m))
            .ok_or_else(|| {
                invalid(
                    SRC,
                    format_args!("line {line}: multiplier `{}` is not in [0, 1]", f[6]),
                )
            })?;
        Ok(GceUnitPrice {
            family: f[0].to_owned(),
            shape: f[1].to_owned(),
            resource: f[2].to_owned(),
            on_demand: price_field(SRC, line, "usd_per_unit_hour_ondemand", f[4])?,
            preemptible_multiplier: multiplier,
        })
    })
    .collect()
}

/// A GCE add-on price (GPU, disk) per unit-hour (`gce-addon-prices.csv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GceAddonPrice {
    /// `gpu`, `boot_disk` or `local_ssd`.
    pub item_type: String,
    /// The item (`nvidia-tesla-t4`).
    pub item: String,
    /// On-demand price per unit-hour, micro-USD.
    pub on_demand: MicroCredits,
    /// Preemptible price per unit-hour, if the source has one.
    pub preemptible: Option<MicroCredits>,
}

/// Parses the GCE add-on price table.
pub fn parse_gce_addon_csv(text: &str) -> Result<Vec<GceAddonPrice>> {
    const SRC: &str = "GCE add-on price table";
    csv_rows(
        SRC,
        text,
        &[
            "item_type",
            "item",
            "unit",
            "usd_per_unit_hour_ondemand",
            "usd_per_unit_hour_preemptible",
            "note",
        ],
    )?
    .into_iter()
    .map(|(line, f)| {
        Ok(GceAddonPrice {
            item_type: f[0].to_owned(),
            item: f[1].to_owned(),
            on_demand: price_field(SRC, line, "usd_per_unit_hour_ondemand", f[3])?,
            preemptible: optional_price_field(SRC, line, "usd_per_unit_hour_preemptible", f[4])?,
        })
    })
    .collect()
}

/// Instance types with prices and spot advice: what the engines buy from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Instance types by name.
    pub instance_types: BTreeMap<String, InstanceType>,
    /// On-demand price per (region, type).
    pub on_demand: BTreeMap<(String, String), MicroCredits>,
    /// Spot advice per pool.
    pub advice: BTreeMap<PoolKey, SpotAdvice>,
    /// The advisor's bands (empty without a feed).
    pub bands: Vec<BandRange>,
}

impl Catalog {
    /// A catalog from the Spot Advisor feed and on-demand prices.
    pub fn from_aws(feed: SpotAdvisorFeed, on_demand: Vec<OnDemandPrice>) -> Self {
        Self {
            instance_types: feed.instance_types,
            on_demand: on_demand
                .into_iter()
                .map(|p| ((p.region, p.instance_type), p.price_per_hour))
                .collect(),
            advice: feed.advice,
            bands: feed.bands,
        }
    }

    /// The spot price of a Linux pool: on-demand × (1 − savings), when both are known.
    pub fn spot_price(&self, region: &str, instance_type: &str) -> Option<MicroCredits> {
        let od = *self
            .on_demand
            .get(&(region.to_owned(), instance_type.to_owned()))?;
        let advice = self.advice.get(&PoolKey {
            region: region.to_owned(),
            os: OperatingSystem::Linux,
            instance_type: instance_type.to_owned(),
        })?;
        Some(advice.spot_price(od))
    }

    /// Every offering in `region` for each of `zones`: on-demand where priced, spot where the
    /// advisor also reports the (Linux) pool. The feed is per region, so each zone gets the
    /// region's band and price.
    pub fn offerings(&self, region: &str, zones: &[String]) -> Vec<NodeOffering> {
        let mut out = Vec::new();
        for ((r, name), &od) in &self.on_demand {
            if r != region {
                continue;
            }
            let Some(t) = self.instance_types.get(name) else {
                continue;
            };
            let advice = self.advice.get(&PoolKey {
                region: region.to_owned(),
                os: OperatingSystem::Linux,
                instance_type: name.clone(),
            });
            for zone in zones {
                let offering = |capacity_type, price, band| NodeOffering {
                    instance_type: name.clone(),
                    zone: zone.clone(),
                    capacity_type,
                    allocatable: t.capacity(),
                    price_per_hour: price,
                    interruption_band: band,
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                };
                out.push(offering(CapacityType::OnDemand, od, None));
                if let Some(a) = advice {
                    out.push(offering(CapacityType::Spot, a.spot_price(od), Some(a.band)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_exact_and_round_half_up() {
        assert_eq!(parse_micros("0.204000"), Some(204_000));
        assert_eq!(parse_micros("0.019343999999999997"), Some(19_344));
        assert_eq!(parse_micros("0.0000004"), Some(0));
        assert_eq!(parse_micros("0.0000005"), Some(1));
        assert_eq!(parse_micros("12"), Some(12_000_000));
        assert_eq!(parse_micros(".5"), Some(500_000));
        for bad in ["", ".", "-1", "1e3", "0.1.2", "abc", " 1"] {
            assert_eq!(parse_micros(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn aws_names_parse() {
        let m = parse_aws_name("m6gd.2xlarge").unwrap_or_else(|| panic!("parse"));
        assert_eq!(
            (m.family.as_str(), m.generation, m.attributes.as_str()),
            ("m", 6, "gd")
        );
        assert_eq!(m.architecture, Architecture::Arm64);
        for (name, arch) in [
            ("c5.large", Architecture::X86_64),
            ("a1.medium", Architecture::Arm64),
            ("g4dn.xlarge", Architecture::X86_64),
            ("g5g.xlarge", Architecture::Arm64),
            ("c7i-flex.large", Architecture::X86_64),
            ("r8g.metal-24xl", Architecture::Arm64),
            ("t4g.nano", Architecture::Arm64),
        ] {
            let p = parse_aws_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.architecture, arch, "{name}");
        }
        let u = parse_aws_name("u-6tb1.metal").unwrap_or_else(|| panic!("u"));
        assert_eq!(u.family, "u-");
        assert!(parse_aws_name("nodot").is_none());
        assert!(parse_aws_name("5x.large").is_none());
    }

    #[test]
    fn csv_errors_name_the_line_and_column() {
        let e = parse_on_demand_csv("region,instance_type,usd_per_hour\nus-east-1,m5.large,abc\n")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message().contains("line 2") && e.message().contains("usd_per_hour"));
        let e = parse_on_demand_csv("region,type,price\n")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message().contains("header"), "{}", e.message());
        let e = parse_on_demand_csv(
            "region,instance_type,usd_per_hour\nus-east-1,m5.large,1\nus-east-1,m5.large,2\n",
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message().contains("twice"));
        let e = parse_gce_unit_csv(
            "family,shape,resource,unit,usd_per_unit_hour_ondemand,usd_per_unit_hour_preemptible,preemptible_multiplier\nn2,predefined,disk,GiB,1,1,0.5\n",
        )
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert!(e.message().contains("disk"));
    }
}
