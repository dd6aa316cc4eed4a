//! The object store: every object as JSON under (resource, namespace, name), one
//! monotonically increasing resourceVersion for the whole cluster, and a window of recent
//! changes that watches resume from (older versions answer `410 Expired`, as after an etcd
//! compaction).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::resources::{self, ResourceType};
use crate::status::{ApiError, FieldError};

/// How many changes a watch can resume across.
const HISTORY: usize = 10_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl ChangeKind {
    /// The watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion it made.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The object's resource.
    pub resource: &'static ResourceType,
    /// Its namespace (`""` for cluster objects).
    pub namespace: String,
    /// The object after the change (before it, for a deletion, with the deletion's version).
    pub object: Value,
    /// The object before a modification (so a watch can tell an object that moved into or
    /// out of its selector).
    pub previous: Option<Value>,
}

type Key = (&'static str, &'static str, String, String);

/// A receiver of every change from some version on.
pub type Changes = broadcast::Receiver<Arc<Change>>;

fn key(resource: &ResourceType, namespace: &str, name: &str) -> Key {
    (
        resource.group,
        resource.plural,
        namespace.to_owned(),
        name.to_owned(),
    )
}

struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this version are no longer in `history`.
    compacted: u64,
}

/// The cluster's objects.
pub struct Store {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Store")
            .field("resource_version", &state.rv)
            .field("objects", &state.objects.len())
            .finish()
    }
}

/// The parts of an object a filter looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only objects in this namespace (`None`: every namespace).
    pub namespace: Option<String>,
    /// Labels.
    pub labels: crate::selectors::LabelSelector,
    /// Fields.
    pub fields: crate::selectors::FieldSelector,
}

impl Filter {
    /// Whether `object` (in `namespace`) passes.
    pub fn matches(&self, namespace: &str, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self.labels.matches(&crate::selectors::labels_of(object))
            && self.fields.matches(object)
    }
}

/// `now` as the apiserver writes timestamps (RFC 3339, whole seconds, UTC).
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The string at JSON `pointer` in `v`, or `""`.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An object's `metadata.name`, or `""`.
pub(crate) fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn random_suffix() -> String {
    // The apiserver's alphabet for generated names (no vowels, no look-alikes).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl Store {
    /// A store with the namespaces every cluster has.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(4096);
        let store = Self {
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 1,
            }),
            changes,
        };
        let ns = resources::find("", "v1", "namespaces");
        if let Some(ns) = ns {
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let _ = store.create(ns, "", json!({"metadata": {"name": name}}), false);
            }
        }
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion of the cluster.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The version at and below which changes are forgotten.
    pub fn compacted(&self) -> u64 {
        self.lock().compacted
    }

    /// Forgets every change up to now: watches from an older version get `410 Expired`.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.compacted = state.rv;
    }

    fn record(&self, state: &mut State, change: Change) {
        let change = Arc::new(change);
        state.history.push_back(change.clone());
        while state.history.len() > HISTORY {
            if let Some(old) = state.history.pop_front() {
                state.compacted = old.rv;
            }
        }
        // No watcher is fine.
        let _ = self.changes.send(change);
    }

    /// Writes one change: the next resourceVersion on `object`, the object stored (or removed,
    /// for a deletion), and the change recorded for watches. The object as written.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        state: &mut State,
        resource: &'static ResourceType,
        namespace: &str,
        k: Key,
        kind: ChangeKind,
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        state.rv += 1;
        let rv = state.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        match kind {
            ChangeKind::Deleted => {
                state.objects.remove(&k);
            }
            ChangeKind::Added | ChangeKind::Modified => {
                state.objects.insert(k, object.clone());
            }
        }
        self.record(
            state,
            Change {
                rv,
                kind,
                resource,
                namespace: namespace.to_owned(),
                object: object.clone(),
                previous,
            },
        );
        object
    }

    /// The object, if it exists.
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&key(resource, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// Every object of `resource` passing `filter`, in (namespace, name) order, and the
    /// resourceVersion they were read at.
    pub fn list(&self, resource: &ResourceType, filter: &Filter) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .iter()
            .filter(|((g, p, ns, _), o)| {
                *g == resource.group && *p == resource.plural && filter.matches(ns, o)
            })
            .map(|(_, o)| o.clone())
            .collect();
        (items, state.rv)
    }

    /// Checks a namespaced write's namespace: it must exist and not be terminating.
    fn check_namespace(
        state: &State,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !resource.namespaced {
            return Ok(());
        }
        let Some(ns_type) = resources::find("", "v1", "namespaces") else {
            return Ok(());
        };
        match state.objects.get(&key(ns_type, "", namespace)) {
            None => Err(ApiError::not_found(ns_type, namespace)),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(
                    resource,
                    name,
                    &format!(
                        "unable to create new content in namespace {namespace} because it is being terminated"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object; `dry_run` checks and answers without storing.
    pub fn create(
        &self,
        resource: &'static ResourceType,
        namespace: &str,
        mut object: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        if object.get("metadata").is_none_or(|m| !m.is_object()) {
            object["metadata"] = json!({});
        }
        let mut state = self.lock();
        let generate = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut name = name_of(&object).to_owned();
        if name.is_empty()
            && let Some(prefix) = &generate
        {
            name = format!("{prefix}{}", random_suffix());
            object["metadata"]["name"] = json!(name);
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                resource,
                "",
                &[FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        let bad_name = if resource.plural == "namespaces" {
            crate::names::dns_label(&name)
        } else {
            crate::names::dns_subdomain(&name)
        };
        if let Some(why) = bad_name {
            return Err(ApiError::invalid(
                resource,
                &name,
                &[FieldError::invalid("metadata.name", name.clone(), why)],
            ));
        }
        Self::check_namespace(&state, resource, namespace, &name)?;
        let k = key(resource, namespace, &name);
        if state.objects.contains_key(&k) {
            return Err(ApiError::already_exists(resource, &name));
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let meta = &mut object["metadata"];
        if resource.namespaced {
            meta["namespace"] = json!(namespace);
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(timestamp());
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        if resource.has_spec {
            meta["generation"] = json!(1);
        }
        crate::defaults::on_create(resource, &mut object);
        crate::defaults::on_write(resource, &mut object);
        if dry_run {
            object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
            return Ok(object);
        }
        Ok(self.write(
            &mut state,
            resource,
            namespace,
            k,
            ChangeKind::Added,
            object,
            None,
        ))
    }

    /// Replaces an object (`PUT`). With `status`, only its status changes; without, its
    /// status is kept for resources that have a status subresource. A `resourceVersion` in
    /// the body must be the current one (`409 Conflict` otherwise).
    pub fn replace(
        &self,
        resource: &'static ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let body_name = name_of(&object);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        self.modify(resource, namespace, name, status, dry_run, |_| Ok(object))
    }

    /// Applies `change` to the current object under the store's lock (patches, scale,
    /// controllers); the result is written as a `PUT` would write it.
    pub fn modify(
        &self,
        resource: &'static ResourceType,
        namespace: &str,
        name: &str,
        status: bool,
        dry_run: bool,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let k = key(resource, namespace, name);
        let Some(current) = state.objects.get(&k).cloned() else {
            return Err(ApiError::not_found(resource, name));
        };
        let changed = change(&current)?;
        if !changed.is_object() {
            return Err(ApiError::bad_request("the result must be a JSON object"));
        }
        if !name_of(&changed).is_empty() && name_of(&changed) != name {
            return Err(ApiError::invalid(
                resource,
                name,
                &[FieldError::invalid(
                    "metadata.name",
                    name_of(&changed),
                    "field is immutable",
                )],
            ));
        }
        if let Some(asked) = changed
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !asked.is_empty()
            && Some(asked)
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::stale(resource, name));
        }
        let mut next = merge_update(resource, &current, changed, status);
        crate::defaults::on_write(resource, &mut next);
        self.commit(&mut state, resource, namespace, k, &current, next, dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        state: &mut State,
        resource: &'static ResourceType,
        namespace: &str,
        k: Key,
        current: &Value,
        next: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if next == *current {
            // Nothing changed: the apiserver writes nothing and keeps the version.
            return Ok(next);
        }
        if dry_run {
            return Ok(next);
        }
        // A deleting object whose last finalizer went is removed.
        let finalized = next.pointer("/metadata/deletionTimestamp").is_some()
            && next
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        Ok(if finalized {
            self.write(
                state,
                resource,
                namespace,
                k,
                ChangeKind::Deleted,
                next,
                None,
            )
        } else {
            let previous = Some(current.clone());
            self.write(
                state,
                resource,
                namespace,
                k,
                ChangeKind::Modified,
                next,
                previous,
            )
        })
    }

    /// Deletes an object: at once, or — while it has finalizers, or `graceful` asks for
    /// it — by marking it with `deletionTimestamp` first. `precondition` is a
    /// `resourceVersion` and/or `uid` the object must still have.
    pub fn delete(
        &self,
        resource: &'static ResourceType,
        namespace: &str,
        name: &str,
        precondition: &Preconditions,
        graceful: Option<u64>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let k = key(resource, namespace, name);
        let Some(current) = state.objects.get(&k).cloned() else {
            return Err(ApiError::not_found(resource, name));
        };
        if let Some(uid) = &precondition.uid
            && current.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
        {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    current
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &precondition.resource_version
            && current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(rv)
        {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                ),
            ));
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // A namespace is emptied by the namespace controller before it goes.
        let namespace_object = resource.group.is_empty() && resource.plural == "namespaces";
        if has_finalizers || graceful.is_some() || namespace_object {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut next = current.clone();
            next["metadata"]["deletionTimestamp"] = json!(timestamp());
            if let Some(grace) = graceful {
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            if namespace_object {
                next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                next["status"]["phase"] = json!("Terminating");
            }
            if dry_run {
                return Ok(next);
            }
            let previous = Some(current);
            let kind = ChangeKind::Modified;
            return Ok(self.write(&mut state, resource, namespace, k, kind, next, previous));
        }
        if dry_run {
            return Ok(current);
        }
        let kind = ChangeKind::Deleted;
        Ok(self.write(&mut state, resource, namespace, k, kind, current, None))
    }

    /// Removes a namespace whose content is gone (the namespace controller's last step).
    pub fn remove_namespace(&self, name: &str) {
        if let Some(ns) = resources::find("", "v1", "namespaces") {
            self.remove(ns, "", name);
        }
    }

    /// Removes an object whatever its finalizers and grace (a kubelet's last step for a
    /// deleted pod); whether it was there.
    pub fn remove(&self, resource: &'static ResourceType, namespace: &str, name: &str) -> bool {
        let mut state = self.lock();
        let k = key(resource, namespace, name);
        let Some(gone) = state.objects.get(&k).cloned() else {
            return false;
        };
        self.write(
            &mut state,
            resource,
            namespace,
            k,
            ChangeKind::Deleted,
            gone,
            None,
        );
        true
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> Changes {
        self.changes.subscribe()
    }

    /// Every object of `resource` passing `filter`, the version they were read at, and a
    /// receiver of every change after it (no change can fall between the two).
    pub fn list_and_watch(
        &self,
        resource: &ResourceType,
        filter: &Filter,
    ) -> (Vec<Value>, u64, Changes) {
        let state = self.lock();
        let receiver = self.changes.subscribe();
        let items = state
            .objects
            .iter()
            .filter(|((g, p, ns, _), o)| {
                *g == resource.group && *p == resource.plural && filter.matches(ns, o)
            })
            .map(|(_, o)| o.clone())
            .collect();
        (items, state.rv, receiver)
    }

    /// The changes after `rv` (none for `None`), then a receiver of every later change.
    /// `410 Expired` when changes after `rv` were already forgotten.
    pub fn watch_from(&self, rv: Option<u64>) -> Result<(Vec<Arc<Change>>, Changes), ApiError> {
        let state = self.lock();
        let receiver = self.changes.subscribe();
        let Some(rv) = rv else {
            return Ok((Vec::new(), receiver));
        };
        if rv < state.compacted {
            return Err(ApiError::expired(rv, state.compacted));
        }
        let past = state
            .history
            .iter()
            .filter(|c| c.rv > rv)
            .cloned()
            .collect();
        Ok((past, receiver))
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// What a delete requires of the object (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    /// The uid it must have.
    pub uid: Option<String>,
    /// The resourceVersion it must have.
    pub resource_version: Option<String>,
}

/// The object a write stores: the body's fields, with what the server owns kept from
/// `current` (uid, creation time, deletion marks, generation bumped on spec changes, and the
/// status or everything but the status, depending on `status`).
fn merge_update(resource: &ResourceType, current: &Value, body: Value, status: bool) -> Value {
    let mut next = if status {
        let mut next = current.clone();
        next["status"] = body.get("status").cloned().unwrap_or(Value::Null);
        if next["status"].is_null()
            && let Some(m) = next.as_object_mut()
        {
            m.remove("status");
        }
        next
    } else {
        let mut next = body;
        let keeps_status = resource.has_subresource("status");
        if keeps_status {
            match current.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        next
    };
    next["apiVersion"] = json!(resource.api_version());
    next["kind"] = json!(resource.kind);
    if next.get("metadata").is_none_or(|m| !m.is_object()) {
        next["metadata"] = json!({});
    }
    for owned in [
        "uid",
        "creationTimestamp",
        "namespace",
        "name",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match current.pointer(&format!("/metadata/{owned}")) {
            Some(v) => next["metadata"][owned] = v.clone(),
            None => {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove(owned);
                }
            }
        }
    }
    if resource.has_spec && !status && next.get("spec") != current.get("spec") {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    next
}
