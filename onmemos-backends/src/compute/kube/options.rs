//! `kube://` URLs: which cluster, and how sessions are laid out on it.
//!
//! ```text
//! kube://                      the kubeconfig's current context
//! kube://CONTEXT               a named context of the kubeconfig
//! kube://in-cluster            the service account of the pod the server runs in
//!   ?flavour=gke|eks|plain     spot and GPU selectors, workload identity (default plain)
//!   &namespace_prefix=onmemos- the start of every workspace namespace's name
//!   &image_pull_secrets=a,b    secrets every session pod pulls its image with
//!   &identity=TEMPLATE         the cloud identity each workspace's service account is bound
//!                              to: {workspace}, {workspace_hex}, {namespace}, {owner} are
//!                              replaced (gke: a Google service account; eks: an IAM role ARN)
//!   &capacity_labels=eks|karpenter   which labels choose spot on EKS (default eks)
//!   &gpu_accelerator=nvidia-l4 the GKE accelerator GPU sessions ask for
//!   &run_as_user=1000|image    the user sessions run as (image: the image's own, maybe root)
//!   &start_timeout_secs=300    how long a pod may stay unscheduled before its session fails
//!   &max_pods=20               the pods a workspace's quota allows
//!   &azure_secret=NAME         the secret the Azure Blob CSI driver reads the account key from
//!   &call_timeout_secs=15      how long one call to the API server may stall before it is
//!                              retried (watches, exec and terminals are streams: not bounded)
//! ```

use std::time::Duration;

use onmemos_core::{Error, Result};

/// Which cluster to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// The kubeconfig's current context (`KUBECONFIG`, else `~/.kube/config`).
    CurrentContext,
    /// A named context of the kubeconfig.
    Context(String),
    /// The service account of the pod this process runs in.
    InCluster,
}

/// Whose Kubernetes: decides the spot and GPU node selectors and how identities are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Google Kubernetes Engine.
    Gke,
    /// Amazon Elastic Kubernetes Service.
    Eks,
    /// Any other cluster: spot placement by the `onmemos.dev/capacity` label of its nodes.
    Plain,
}

impl Flavour {
    /// `gke`, `eks`, `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gke => "gke",
            Self::Eks => "eks",
            Self::Plain => "plain",
        }
    }
}

/// Which node labels say spot or on-demand on EKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityLabels {
    /// Managed node groups: `eks.amazonaws.com/capacityType: SPOT | ON_DEMAND`.
    Eks,
    /// Karpenter: `karpenter.sh/capacity-type: spot | on-demand`.
    Karpenter,
}

/// The user session containers run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// This uid and gid, never root (`runAsNonRoot`).
    User(i64),
    /// Whatever the image says, root included (images that need it).
    Image,
}

/// Everything a `kube://` URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeOptions {
    /// Which cluster.
    pub source: ClusterSource,
    /// Whose Kubernetes.
    pub flavour: Flavour,
    /// The start of every workspace namespace's name.
    pub namespace_prefix: String,
    /// Secrets every session pod pulls its image with.
    pub image_pull_secrets: Vec<String>,
    /// The identity template each workspace's service account is bound to.
    pub identity: Option<String>,
    /// Which labels choose spot capacity on EKS.
    pub capacity_labels: CapacityLabels,
    /// The GKE accelerator GPU sessions ask for.
    pub gpu_accelerator: Option<String>,
    /// The user sessions run as.
    pub run_as: RunAs,
    /// How long a pod may stay unscheduled (or its image unpulled) before its session fails.
    pub start_timeout: Duration,
    /// Pods a workspace's quota allows.
    pub max_pods: u32,
    /// The secret holding the Azure storage account's key, for the Blob CSI driver.
    pub azure_secret: Option<String>,
    /// How long one call to the API server may stall before it is retried.
    pub call_timeout: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            source: ClusterSource::CurrentContext,
            flavour: Flavour::Plain,
            namespace_prefix: "onmemos-".into(),
            image_pull_secrets: Vec::new(),
            identity: None,
            capacity_labels: CapacityLabels::Eks,
            gpu_accelerator: None,
            run_as: RunAs::User(1000),
            start_timeout: Duration::from_secs(300),
            max_pods: 20,
            azure_secret: None,
            call_timeout: Duration::from_secs(15),
        }
    }
}

impl KubeOptions {
    /// Reads a `kube://` URL; an unknown option, or a value out of place, is a configuration
    /// error naming it.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |what: String| Error::configuration(format!("compute_url {url:?}: {what}"));
        let rest = url
            .strip_prefix("kube://")
            .ok_or_else(|| bad("a Kubernetes compute URL starts with kube://".into()))?;
        let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
        let host = host.trim_end_matches('/');
        let mut options = Self {
            source: match host {
                "" => ClusterSource::CurrentContext,
                "in-cluster" => ClusterSource::InCluster,
                context => ClusterSource::Context(
                    percent_encoding::percent_decode_str(context)
                        .decode_utf8()
                        .map_err(|_| bad("the context name is not UTF-8".into()))?
                        .into_owned(),
                ),
            },
            ..Self::default()
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim().to_owned();
            match &*key {
                "flavour" | "flavor" => {
                    options.flavour = match &*value {
                        "gke" => Flavour::Gke,
                        "eks" => Flavour::Eks,
                        "plain" => Flavour::Plain,
                        other => {
                            return Err(bad(format!(
                                "flavour {other:?} is not one of gke, eks, plain"
                            )));
                        }
                    }
                }
                "namespace_prefix" => {
                    let ok = value.len() <= 20
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
                    if !ok {
                        return Err(bad(format!(
                            "namespace_prefix {value:?} must be at most 20 lowercase letters, digits and '-', starting with a letter"
                        )));
                    }
                    options.namespace_prefix = value;
                }
                "image_pull_secrets" => {
                    options.image_pull_secrets = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "identity" if !value.is_empty() => options.identity = Some(value),
                "capacity_labels" => {
                    options.capacity_labels = match &*value {
                        "eks" => CapacityLabels::Eks,
                        "karpenter" => CapacityLabels::Karpenter,
                        other => {
                            return Err(bad(format!(
                                "capacity_labels {other:?} is not one of eks, karpenter"
                            )));
                        }
                    }
                }
                "gpu_accelerator" if !value.is_empty() => options.gpu_accelerator = Some(value),
                "run_as_user" => {
                    options.run_as = match &*value {
                        "image" => RunAs::Image,
                        n => match n.parse::<i64>() {
                            Ok(uid) if uid > 0 => RunAs::User(uid),
                            _ => {
                                return Err(bad(format!(
                                    "run_as_user {n:?} is neither a uid above 0 nor `image`"
                                )));
                            }
                        },
                    }
                }
                "start_timeout_secs" => {
                    options.start_timeout = match value.parse::<u64>() {
                        Ok(s @ 1..=3600) => Duration::from_secs(s),
                        _ => {
                            return Err(bad(format!(
                                "start_timeout_secs {value:?} is not a number of seconds from 1 to 3600"
                            )));
                        }
                    }
                }
                "max_pods" => {
                    options.max_pods = match value.parse::<u32>() {
                        Ok(n @ 1..=10_000) => n,
                        _ => {
                            return Err(bad(format!(
                                "max_pods {value:?} is not a number from 1 to 10000"
                            )));
                        }
                    }
                }
                "azure_secret" if !value.is_empty() => options.azure_secret = Some(value),
                "call_timeout_secs" => {
                    options.call_timeout = match value.parse::<u64>() {
                        Ok(s @ 1..=600) => Duration::from_secs(s),
                        _ => {
                            return Err(bad(format!(
                                "call_timeout_secs {value:?} is not a number of seconds from 1 to 600"
                            )));
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (or an empty value); the options are flavour, namespace_prefix, image_pull_secrets, identity, capacity_labels, gpu_accelerator, run_as_user, start_timeout_secs, max_pods, azure_secret, call_timeout_secs"
                    )));
                }
            }
        }
        if options.identity.is_some() && options.flavour == Flavour::Plain {
            return Err(bad(
                "identity needs flavour gke (Workload Identity) or eks (IRSA): a plain cluster has no cloud identity to bind".into(),
            ));
        }
        if options.capacity_labels == CapacityLabels::Karpenter && options.flavour != Flavour::Eks {
            return Err(bad("capacity_labels applies to flavour eks only".into()));
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_sources_and_every_option_are_read() {
        assert_eq!(
            KubeOptions::parse("kube://").map(|o| o.source).ok(),
            Some(ClusterSource::CurrentContext)
        );
        assert_eq!(
            KubeOptions::parse("kube://in-cluster")
                .map(|o| o.source)
                .ok(),
            Some(ClusterSource::InCluster)
        );
        let o = KubeOptions::parse(
            "kube://gke_proj_europe-west1_main?flavour=gke&namespace_prefix=ws-&image_pull_secrets=a,%20b&identity={workspace_hex}@proj.iam.gserviceaccount.com&gpu_accelerator=nvidia-l4&run_as_user=image&start_timeout_secs=30&max_pods=5&azure_secret=key",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            o,
            KubeOptions {
                source: ClusterSource::Context("gke_proj_europe-west1_main".into()),
                flavour: Flavour::Gke,
                namespace_prefix: "ws-".into(),
                image_pull_secrets: vec!["a".into(), "b".into()],
                identity: Some("{workspace_hex}@proj.iam.gserviceaccount.com".into()),
                capacity_labels: CapacityLabels::Eks,
                gpu_accelerator: Some("nvidia-l4".into()),
                run_as: RunAs::Image,
                start_timeout: Duration::from_secs(30),
                max_pods: 5,
                azure_secret: Some("key".into()),
                call_timeout: Duration::from_secs(15),
            }
        );
    }

    #[test]
    fn an_unknown_option_or_a_bad_value_is_named() {
        for (url, named) in [
            ("kube://?flavor=aks", "flavour \"aks\""),
            ("kube://?namespace=x", "unknown option \"namespace\""),
            ("kube://?namespace_prefix=Bad_", "namespace_prefix \"Bad_\""),
            ("kube://?run_as_user=0", "run_as_user \"0\""),
            ("kube://?start_timeout_secs=0", "start_timeout_secs \"0\""),
            ("kube://?max_pods=lots", "max_pods \"lots\""),
            ("kube://?call_timeout_secs=0", "call_timeout_secs \"0\""),
            ("kube://?identity=x", "identity needs flavour gke"),
            ("kube://?capacity_labels=karpenter", "flavour eks only"),
            ("kube://?identity=", "unknown option \"identity\""),
        ] {
            let e = KubeOptions::parse(url)
                .err()
                .map(|e| e.message().to_owned());
            assert!(
                e.as_deref().is_some_and(|m| m.contains(named)),
                "{url}: {e:?} does not name {named}"
            );
        }
    }
}
