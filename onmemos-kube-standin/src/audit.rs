//! Which verbs on which resources clients used, as RBAC names them — so a test can hold a
//! Role or ClusterRole to exactly what a program does.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::http::Method;

/// One kind of access: what an RBAC rule would have to allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource, with its subresource after a slash (`pods`, `pods/exec`).
    pub resource: String,
}

/// The accesses seen so far.
#[derive(Debug, Default)]
pub(crate) struct Audit(Mutex<BTreeSet<Access>>);

impl Audit {
    /// Notes a request to `resource` (`pods/exec`), named or not, with `watch` asked.
    pub(crate) fn note(
        &self,
        method: &Method,
        group: &str,
        resource: String,
        named: bool,
        watch: bool,
    ) {
        let websocket = resource.ends_with("/exec")
            || resource.ends_with("/attach")
            || resource.ends_with("/portforward");
        let verb = match *method {
            // Since Kubernetes 1.31 a WebSocket upgrade (a GET) needs `create` on these.
            Method::GET if websocket => "create",
            Method::GET if named => "get",
            Method::GET if watch => "watch",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => return,
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(Access {
                verb: verb.to_owned(),
                group: group.to_owned(),
                resource,
            });
    }

    /// Everything seen, sorted.
    pub(crate) fn seen(&self) -> Vec<Access> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
