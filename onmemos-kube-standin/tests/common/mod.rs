//! Where the client-side tests run: a real cluster when `KUBECONFIG` is set, else a fresh
//! stand-in. Each test works in a namespace of its own, deleted when it ends.

#![allow(dead_code)]

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use onmemos_kube_standin::StandIn;

/// A cluster to test against.
pub struct Env {
    /// A client of it.
    pub client: kube::Client,
    /// A kubeconfig for kubectl.
    pub kubeconfig: PathBuf,
    /// The stand-in, when the tests run on one (the scripting tests need it).
    pub standin: Option<StandIn>,
    /// This test's namespace.
    pub namespace: String,
}

impl Env {
    /// A cluster and a fresh namespace in it.
    pub async fn new() -> Self {
        let (client, kubeconfig, standin) = match std::env::var_os("KUBECONFIG") {
            Some(path) => {
                let client = kube::Client::try_default()
                    .await
                    .unwrap_or_else(|e| panic!("KUBECONFIG is set but no client: {e}"));
                (client, PathBuf::from(path), None)
            }
            None => {
                let standin = StandIn::start()
                    .await
                    .unwrap_or_else(|e| panic!("start: {e}"));
                let client = standin.client().unwrap_or_else(|e| panic!("client: {e}"));
                (client, standin.kubeconfig().to_path_buf(), Some(standin))
            }
        };
        let namespace = Self::new_namespace(&client).await;
        Self {
            client,
            kubeconfig,
            standin,
            namespace,
        }
    }

    /// A client that does not retry 429s and 5xxs (kube retries them by default).
    pub async fn client_without_retries(&self) -> kube::Client {
        let mut config = match &self.standin {
            Some(s) => kube::Config::new(s.url().parse().unwrap_or_else(|e| panic!("{e}"))),
            None => kube::Config::infer()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        };
        config.default_retry = false;
        config.default_namespace = self.namespace.clone();
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a namespace with a fresh name.
    pub async fn new_namespace(client: &kube::Client) -> String {
        let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": name } }))
                .unwrap_or_else(|e| panic!("{e}"));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("namespace: {e}"));
        name
    }

    /// The stand-in, or `None` after saying the test is skipped on a real cluster.
    pub fn standin(&self, test: &str) -> Option<&StandIn> {
        if self.standin.is_none() {
            eprintln!(
                "SKIPPED on a real cluster: {test} scripts the cluster, which only the stand-in can do"
            );
        }
        self.standin.as_ref()
    }

    /// Deletes the test's namespace.
    pub async fn finish(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}
