//! Seeded synthetic clusters, for tests, benchmarks and trying the optimizer without a
//! cluster. The same seed gives the same cluster on every machine (SplitMix64, no dependency).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use onmemos_core::ports::optimizer::{
    CapacityType, ClusterSnapshot, DisruptionBudget, NodeInfo, NodeOffering, OfficeHoursSchedule,
    OptimizationRequest, OptimizerPolicy, PodInfo, ResourceVector, Taint, TaintEffect, Toleration,
    UsageSeries, WorkloadInfo,
};

const GIB: u64 = 1024 * 1024 * 1024;

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterShape {
    /// Instance types on offer (each in every zone, on-demand and spot).
    pub instance_types: usize,
    /// Existing nodes.
    pub nodes: usize,
    /// Pods (besides one daemonset pod per node).
    pub pods: usize,
    /// Zones.
    pub zones: usize,
    /// Share of pods with a node selector or a toleration.
    pub constrained_share: f64,
    /// Owners with a PDB.
    pub pdbs: usize,
}

/// A synthetic cluster and the offerings it may buy from.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticCluster {
    /// The snapshot (its `offerings` are empty; see `offerings`).
    pub snapshot: ClusterSnapshot,
    /// What may be bought.
    pub offerings: Vec<NodeOffering>,
}

/// Instance types of the usual shapes: 1:2, 1:4 and 1:8 GiB per vCPU, 2 to 64 vCPUs, a few
/// with GPUs, priced per vCPU and GiB with noise, as cloud list prices are.
pub fn offerings(rng: &mut Rng, types: usize, zones: usize) -> Vec<NodeOffering> {
    let mut out = Vec::new();
    let families = [("c", 2u64, 0.034), ("m", 4, 0.048), ("r", 8, 0.063)];
    for t in 0..types {
        let (family, gib_per_cpu, base) = families[t % 3];
        let vcpus = 2u64 << (t / 3 % 6);
        let generation = 4 + (t / 18) % 5;
        let gpus = u32::from(t % 23 == 22);
        let noise = 0.85 + 0.3 * rng.unit();
        let price = (base * vcpus as f64 * noise + f64::from(gpus) * 0.9) * 1e6;
        let name = format!("{family}{generation}x{t}.{}xlarge", vcpus / 4);
        let label = if t % 11 == 10 { Some("gpu-pool") } else { None };
        for z in 0..zones {
            for capacity_type in [CapacityType::OnDemand, CapacityType::Spot] {
                let factor = match capacity_type {
                    CapacityType::OnDemand => 1.0,
                    CapacityType::Spot => 0.35 + 0.3 * rng.unit(),
                };
                out.push(NodeOffering {
                    instance_type: name.clone(),
                    zone: format!("zone-{z}"),
                    capacity_type,
                    allocatable: ResourceVector {
                        cpu_millis: vcpus * 1000 - 100,
                        memory_bytes: vcpus * gib_per_cpu * GIB - GIB / 2,
                        gpus,
                        pods: 110,
                    },
                    price_per_hour: (price * factor).round() as i64,
                    interruption_band: (capacity_type == CapacityType::Spot)
                        .then(|| rng.below(5) as u8),
                    labels: label
                        .map(|l| BTreeMap::from([("pool".to_owned(), l.to_owned())]))
                        .unwrap_or_default(),
                    taints: label
                        .map(|l| {
                            vec![Taint {
                                key: "dedicated".into(),
                                value: Some(l.into()),
                                effect: TaintEffect::NoSchedule,
                            }]
                        })
                        .unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// A cluster of `shape`: existing nodes drawn from the on-demand offerings and loosely
/// packed, pods of web-service sizes (100m–4 vCPU, 128 MiB–8 GiB) spread over owners.
pub fn cluster(seed: u64, shape: &ClusterShape) -> SyntheticCluster {
    let mut rng = Rng::new(seed);
    let offerings = offerings(&mut rng, shape.instance_types, shape.zones);
    let on_demand: Vec<&NodeOffering> = offerings
        .iter()
        .filter(|o| o.capacity_type == CapacityType::OnDemand && o.allocatable.gpus == 0)
        .collect();
    let taken_at: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    let mut nodes = Vec::with_capacity(shape.nodes);
    let mut pods = Vec::with_capacity(shape.pods + shape.nodes);
    let daemon = ResourceVector {
        cpu_millis: 50,
        memory_bytes: 64 << 20,
        gpus: 0,
        pods: 1,
    };
    let mut free = Vec::with_capacity(shape.nodes);
    for n in 0..shape.nodes {
        let o = *rng.pick(&on_demand);
        let name = format!("node-{n}");
        nodes.push(NodeInfo {
            name: name.clone(),
            instance_type: o.instance_type.clone(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type,
            allocatable: o.allocatable,
            price_per_hour: o.price_per_hour,
            labels: o.labels.clone(),
            taints: o.taints.clone(),
        });
        pods.push(PodInfo {
            name: format!("kube-system/agent-{n}"),
            owner: Some("DaemonSet/agent".into()),
            requests: daemon,
            limits: None,
            node: Some(name),
            daemonset: true,
            priority: 1000,
            node_selector: BTreeMap::new(),
            tolerations: vec![Toleration {
                key: None,
                value: None,
                effect: None,
            }],
            usage: None,
        });
        let a = o.allocatable;
        free.push([
            a.cpu_millis - daemon.cpu_millis,
            a.memory_bytes - daemon.memory_bytes,
            u64::from(a.pods - 1),
        ]);
    }
    let owners = (shape.pods / 8).max(1);
    for p in 0..shape.pods {
        let cpu = 100 * (1 + rng.below(20)) * if rng.unit() < 0.1 { 2 } else { 1 };
        let memory = (128 << 20) * (1 + rng.below(32));
        let owner = rng.below(owners as u64);
        let constrained = rng.unit() < shape.constrained_share;
        let requests = ResourceVector {
            cpu_millis: cpu,
            memory_bytes: memory,
            gpus: 0,
            pods: 1,
        };
        // Running where it fits (first fit from a random node), else pending.
        let start = rng.below(shape.nodes.max(1) as u64) as usize;
        let mut node = None;
        if !constrained {
            for k in 0..shape.nodes {
                let n = (start + k) % shape.nodes;
                if nodes[n].taints.is_empty()
                    && free[n][0] >= cpu
                    && free[n][1] >= memory
                    && free[n][2] >= 1
                {
                    free[n][0] -= cpu;
                    free[n][1] -= memory;
                    free[n][2] -= 1;
                    node = Some(nodes[n].name.clone());
                    break;
                }
            }
        }
        pods.push(PodInfo {
            name: format!("default/pod-{p}"),
            owner: Some(format!("Deployment/app-{owner}")),
            requests,
            limits: None,
            node,
            daemonset: false,
            priority: 0,
            node_selector: if constrained {
                BTreeMap::from([("pool".to_owned(), "gpu-pool".to_owned())])
            } else {
                BTreeMap::new()
            },
            tolerations: if constrained {
                vec![Toleration {
                    key: Some("dedicated".into()),
                    value: Some("gpu-pool".into()),
                    effect: Some(TaintEffect::NoSchedule),
                }]
            } else {
                Vec::new()
            },
            usage: None,
        });
    }
    let disruption_budgets = (0..shape.pdbs.min(owners))
        .map(|o| DisruptionBudget {
            name: format!("app-{o}"),
            owner: format!("Deployment/app-{o}"),
            max_unavailable: rng.below(3) as u32,
        })
        .collect();
    SyntheticCluster {
        snapshot: ClusterSnapshot {
            taken_at,
            region: None,
            nodes,
            pods,
            disruption_budgets,
            offerings: Vec::new(),
            workloads: Vec::new(),
        },
        offerings,
    }
}

/// A container's usage: a daily cycle with noise, `days` of samples every `step_secs`.
pub fn usage(rng: &mut Rng, start: DateTime<Utc>, days: u32, step_secs: u32) -> UsageSeries {
    let samples = (u64::from(days) * 86_400 / u64::from(step_secs)) as usize;
    let base_cpu = 50.0 + 950.0 * rng.unit();
    let base_memory = (128.0 + 2048.0 * rng.unit()) * 1048576.0;
    let mut cpu_millis = Vec::with_capacity(samples);
    let mut memory_bytes = Vec::with_capacity(samples);
    let mut state = rng.next_u64();
    for i in 0..samples {
        // An inline xorshift: the series is long, the call overhead of `Rng` shows.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state >> 40) as f64 / (1u64 << 24) as f64;
        let phase = (i as f64 * f64::from(step_secs) / 86_400.0 * std::f64::consts::TAU).sin();
        cpu_millis.push((base_cpu * (1.0 + 0.5 * phase) * (0.7 + 0.6 * noise)) as u32);
        memory_bytes.push((base_memory * (1.0 + 0.1 * phase + 0.05 * noise)) as u64);
    }
    UsageSeries {
        start,
        step_secs,
        cpu_millis,
        memory_bytes,
        oom_kills: 0,
    }
}

/// A running-nowhere pod of `owner` requesting `requests` (one pod slot), with `usage`.
pub fn pod_with_usage(
    name: &str,
    owner: &str,
    requests: (u64, u64),
    usage: UsageSeries,
) -> PodInfo {
    PodInfo {
        name: name.to_owned(),
        owner: Some(owner.to_owned()),
        requests: ResourceVector {
            cpu_millis: requests.0,
            memory_bytes: requests.1,
            gpus: 0,
            pods: 1,
        },
        limits: None,
        node: None,
        daemonset: false,
        priority: 0,
        node_selector: BTreeMap::new(),
        tolerations: Vec::new(),
        usage: Some(usage),
    }
}

/// A small demonstration request: a 12-node cluster in `us-east-1` with its offerings, two
/// days of 30-minute usage on every pod (on the pods' request scale, so some are oversized and
/// some not), two deployments that tolerate interruption, and an office-hours schedule (Paris,
/// weekdays 08:00–19:00) for one of them. What `onmemos optimize` is tried on.
pub fn demo_request(seed: u64) -> OptimizationRequest {
    let shape = ClusterShape {
        instance_types: 24,
        nodes: 12,
        pods: 60,
        zones: 3,
        constrained_share: 0.0,
        pdbs: 2,
    };
    let SyntheticCluster {
        mut snapshot,
        offerings,
    } = cluster(seed, &shape);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let start = snapshot.taken_at - Duration::days(2);
    for pod in snapshot.pods.iter_mut().filter(|p| !p.daemonset) {
        let mut u = usage(&mut rng, start, 2, 1800);
        // Scale the series to the pod: it uses 20–120% of what it requests at its busiest.
        let target = pod.requests.cpu_millis as f64 * (0.2 + rng.unit());
        let peak = f64::from(u.cpu_millis.iter().copied().max().unwrap_or(1).max(1));
        u.cpu_millis
            .iter_mut()
            .for_each(|v| *v = (f64::from(*v) * target / peak) as u32);
        let target = pod.requests.memory_bytes as f64 * (0.2 + rng.unit());
        let peak = u.memory_bytes.iter().copied().max().unwrap_or(1).max(1) as f64;
        u.memory_bytes
            .iter_mut()
            .for_each(|v| *v = (*v as f64 * target / peak) as u64);
        pod.usage = Some(u);
    }
    snapshot.region = Some("us-east-1".into());
    snapshot.offerings = offerings;
    snapshot.workloads = ["Deployment/app-0", "Deployment/app-1"]
        .into_iter()
        .map(|name| WorkloadInfo {
            name: name.into(),
            replicas: 10,
            requests: ResourceVector {
                cpu_millis: 500,
                memory_bytes: GIB,
                gpus: 0,
                pods: 1,
            },
            interruptible: true,
            max_interruption_risk: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
        })
        .collect();
    OptimizationRequest {
        snapshot,
        policy: OptimizerPolicy {
            schedules: vec![OfficeHoursSchedule {
                name: "paris-office".into(),
                workloads: vec!["Deployment/app-2".into()],
                weekdays: ["mon", "tue", "wed", "thu", "fri"]
                    .map(str::to_owned)
                    .to_vec(),
                wake: "08:00".into(),
                sleep: "19:00".into(),
                time_zone: "Europe/Paris".into(),
                exclusions: Vec::new(),
                sleep_replicas: 0,
            }],
            ..OptimizerPolicy::default()
        },
    }
}
