//! The HTTP face: one handler that parses a Kubernetes API path the way the apiserver's
//! request-info resolver does, then serves discovery, reads, lists, watches and writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::resources::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, Filter, Preconditions, Store};
use crate::{StandInState, patch, watch};

/// What a request addresses.
#[derive(Debug)]
pub(crate) struct Target {
    pub resource: &'static ResourceType,
    /// `""` for cluster objects or lists across every namespace.
    pub namespace: String,
    /// `None` for the collection.
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// The parsed query of a request.
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}. Only 'All' is supported"
            ))),
        }
    }

    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid value for {key}: {v:?} is not a number"))
                })
            })
            .transpose()
    }

    pub(crate) fn filter_for_watch(&self, namespace: &str) -> Result<Filter, ApiError> {
        self.filter(namespace)
    }

    fn filter(&self, namespace: &str) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        Ok(Filter {
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            labels,
            fields,
        })
    }
}

/// Resolves a path under `/api/v1` or `/apis/{group}/{version}` (`rest`: the segments after).
fn target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| resources::find(group, version, plural);
    match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            let resource = find(plural)?;
            match tail {
                [] => Some(Target {
                    resource,
                    namespace: (*ns).into(),
                    name: None,
                    subresource: None,
                }),
                [name] => Some(Target {
                    resource,
                    namespace: (*ns).into(),
                    name: Some((*name).into()),
                    subresource: None,
                }),
                [name, sub] if resource.has_subresource(sub) => Some(Target {
                    resource,
                    namespace: (*ns).into(),
                    name: Some((*name).into()),
                    subresource: Some((*sub).into()),
                }),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let resource = find(plural)?;
            match tail {
                [] => Some(Target {
                    resource,
                    namespace: String::new(),
                    name: None,
                    subresource: None,
                }),
                [name] if !resource.namespaced => Some(Target {
                    resource,
                    namespace: String::new(),
                    name: Some((*name).into()),
                    subresource: None,
                }),
                [name, sub] if !resource.namespaced && resource.has_subresource(sub) => {
                    Some(Target {
                        resource,
                        namespace: String::new(),
                        name: Some((*name).into()),
                        subresource: Some((*sub).into()),
                    })
                }
                _ => None,
            }
        }
        [] => None,
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

/// Parses a request body as JSON, or YAML for the YAML media types.
pub(crate) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json"
        | "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "*/*"
        | "" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding from json: illegal base64 data or syntax error: {e}"
            ))
        }),
        "application/yaml" | "application/apply-patch+yaml" => serde_json::from_slice(body)
            .or_else(|_| crate::yaml::parse(body))
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Removes `apiVersion` and `kind` from list items, as the apiserver's JSON lists do.
fn bare(mut item: Value) -> Value {
    if let Some(m) = item.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    item
}

fn list_kind(resource: &ResourceType) -> String {
    format!("{}List", resource.kind)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    v: String,
    rv: u64,
    start: String,
}

fn item_key(item: &Value) -> String {
    format!(
        "{}/{}",
        item.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        item.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// The handler of every API request.
pub(crate) async fn handle(State(state): State<Arc<StandInState>>, request: Request) -> Response {
    match state.faults.take(request.method(), request.uri().path()) {
        Some(crate::faults::FaultKind::Status(code)) => {
            return crate::faults::error(code).into_response();
        }
        Some(crate::faults::FaultKind::Stall(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let path = request.uri().path().to_owned();
    match dispatch(state, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(%path, error = %e, "answered with an error");
            e.into_response()
        }
    }
}

async fn dispatch(state: Arc<StandInState>, request: Request) -> Result<Response, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    match segments.as_slice() {
        ["version"] => return Ok(json_response(StatusCode::OK, &crate::discovery::version())),
        ["openapi", "v3"] => return Ok(json_response(StatusCode::OK, &crate::openapi::index())),
        ["openapi", "v3", rest @ ..] => {
            return crate::openapi::document(&rest.join("/"))
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::no_route(&path));
        }
        ["healthz" | "readyz" | "livez"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            return Ok(json_response(
                StatusCode::OK,
                &crate::discovery::core_versions(),
            ));
        }
        ["apis"] => {
            return Ok(json_response(
                StatusCode::OK,
                &crate::discovery::group_list(),
            ));
        }
        ["api", "v1"] => {
            return crate::discovery::resource_list("", "v1")
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::no_route(&path));
        }
        ["apis", group] => {
            return crate::discovery::api_group(group)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::no_route(&path));
        }
        ["apis", group, version] => {
            return crate::discovery::resource_list(group, version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::no_route(&path));
        }
        _ => {}
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_route(&path)),
    };
    let Some(target) = target(group, version, rest) else {
        return Err(ApiError::no_route(&path));
    };
    let query = Query::parse(request.uri().query());
    state.audit.note(
        &method,
        target.resource.group,
        match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.resource.plural),
            None => target.resource.plural.to_owned(),
        },
        target.name.is_some(),
        query.flag("watch"),
    );
    if let (Some(name), Some("log"), &Method::GET) = (
        target.name.as_deref(),
        target.subresource.as_deref(),
        &method,
    ) {
        return crate::kubelet::logs(&state, &target.namespace, name, &query).await;
    }
    if target.resource.group == "metrics.k8s.io" {
        return crate::metrics::serve(&state, &method, &target);
    }
    if target.subresource.as_deref() == Some("exec") {
        return crate::exec::serve(state.clone(), &target, request).await;
    }
    if target.subresource.as_deref() == Some("attach") {
        return crate::exec::serve_attach(state.clone(), &target, request).await;
    }
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("the request body could not be read: {e}")))?;
    let store = &state.store;
    match (
        &method,
        target.name.as_deref(),
        target.subresource.as_deref(),
    ) {
        (&Method::GET, None, None) if query.flag("watch") => {
            watch::serve(state.clone(), &target, &query).map(|b| {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    b,
                )
                    .into_response()
            })
        }
        (&Method::GET, None, None) => list(store, &target, &query),
        (&Method::GET, Some(name), None | Some("status")) => {
            let object = store.get(target.resource, &target.namespace, name)?;
            Ok(json_response(StatusCode::OK, &object))
        }
        (&Method::GET, Some(name), Some("scale")) => {
            let object = store.get(target.resource, &target.namespace, name)?;
            Ok(json_response(
                StatusCode::OK,
                &crate::scale::scale_of(&object),
            ))
        }
        (&Method::POST, None, None) => {
            if target.resource.read_only {
                return Err(ApiError::method_not_supported(target.resource, "create"));
            }
            let object = parse_body(&headers, &body)?;
            check_identity(target.resource, &target.namespace, &object)?;
            let warning =
                crate::fields::check(target.resource, &object, query.get("fieldValidation"))?;
            let created =
                store.create(target.resource, &target.namespace, object, query.dry_run()?)?;
            Ok(with_warning(
                json_response(StatusCode::CREATED, &created),
                warning,
            ))
        }
        (&Method::POST, Some(name), Some("eviction")) => crate::eviction::evict(
            &state,
            &target.namespace,
            name,
            &headers,
            &body,
            query.dry_run()?,
        ),
        (&Method::POST, Some(name), Some("binding")) => {
            let binding = parse_body(&headers, &body)?;
            let node = binding
                .pointer("/target/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("a Binding needs target.name"))?;
            crate::scheduler::bind(&state, &target.namespace, name, node)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (&Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let object = parse_body(&headers, &body)?;
            check_identity(target.resource, &target.namespace, &object)?;
            let warning =
                crate::fields::check(target.resource, &object, query.get("fieldValidation"))?;
            let replaced = store.replace(
                target.resource,
                &target.namespace,
                name,
                object,
                sub == Some("status"),
                query.dry_run()?,
            )?;
            Ok(with_warning(
                json_response(StatusCode::OK, &replaced),
                warning,
            ))
        }
        (&Method::PUT, Some(name), Some("scale")) => {
            let scale = parse_body(&headers, &body)?;
            let replicas = scale
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::bad_request("a Scale needs spec.replicas"))?;
            let updated = crate::scale::set_replicas(
                store,
                target.resource,
                &target.namespace,
                name,
                replicas,
                query.dry_run()?,
            )?;
            Ok(json_response(
                StatusCode::OK,
                &crate::scale::scale_of(&updated),
            ))
        }
        (&Method::PATCH, Some(name), sub) => {
            let patched = patch::apply(store, &target, name, sub, &headers, &body, &query)?;
            let status = if patched.1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let out = if sub == Some("scale") {
                crate::scale::scale_of(&patched.0)
            } else {
                patched.0
            };
            Ok(json_response(status, &out))
        }
        (&Method::DELETE, Some(name), None) => {
            delete(&state, &target, name, &headers, &body, &query)
        }
        (&Method::DELETE, None, None) => delete_collection(&state, &target, &query),
        _ => Err(ApiError::method_not_supported(
            target.resource,
            method.as_str(),
        )),
    }
}

/// `response` with a `Warning` header, when there is one.
fn with_warning(mut response: Response, warning: Option<String>) -> Response {
    if let Some(w) = warning.and_then(|w| w.parse().ok()) {
        response.headers_mut().insert("warning", w);
    }
    response
}

/// The body's kind, apiVersion and namespace must agree with the path.
fn check_identity(
    resource: &ResourceType,
    namespace: &str,
    object: &Value,
) -> Result<(), ApiError> {
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != resource.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) does not match the kind of the request ({})",
            resource.kind
        )));
    }
    if let Some(av) = object.get("apiVersion").and_then(Value::as_str)
        && av != resource.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if resource.namespaced
        && let Some(ns) = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        && !ns.is_empty()
        && ns != namespace
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn list(store: &Store, target: &Target, query: &Query) -> Result<Response, ApiError> {
    let filter = query.filter(&target.namespace)?;
    let (mut items, rv) = store.list(target.resource, &filter);
    let mut list_rv = rv;
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<Continue>(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: invalid token"))?;
        if decoded.rv < store.compacted() {
            return Err(ApiError::expired_continue());
        }
        list_rv = decoded.rv;
        items.retain(|i| item_key(i) > decoded.start);
    }
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if let Some(limit) = query.number("limit")?.filter(|l| *l > 0)
        && items.len() as u64 > limit
    {
        let remaining = items.len() as u64 - limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let start = items.last().map(item_key).unwrap_or_default();
        let token = serde_json::to_vec(&Continue {
            v: "meta.k8s.io/v1".into(),
            rv: list_rv,
            start,
        })
        .map_err(ApiError::internal)?;
        metadata["continue"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        metadata["remainingItemCount"] = json!(remaining);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": list_kind(target.resource),
            "apiVersion": target.resource.api_version(),
            "metadata": metadata,
            "items": items.into_iter().map(bare).collect::<Vec<_>>(),
        }),
    ))
}

/// `DeleteOptions` from the body or the query.
fn delete_options(headers: &HeaderMap, body: &Bytes, query: &Query) -> Result<Value, ApiError> {
    let mut options = if body.is_empty() {
        json!({})
    } else {
        parse_body(headers, body)?
    };
    if let Some(g) = query.number("gracePeriodSeconds")? {
        options["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = query.get("propagationPolicy") {
        options["propagationPolicy"] = json!(p);
    }
    Ok(options)
}

fn delete(
    state: &StandInState,
    target: &Target,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    query: &Query,
) -> Result<Response, ApiError> {
    if target.resource.read_only {
        return Err(ApiError::method_not_supported(target.resource, "delete"));
    }
    let options = delete_options(headers, body, query)?;
    let dry_run = query.dry_run()?
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let preconditions = Preconditions {
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let graceful = if target.resource.group.is_empty() && target.resource.plural == "pods" {
        crate::kubelet::deletion_grace(state, &target.namespace, name, &options)
    } else {
        None
    };
    let deleted = state.store.delete(
        target.resource,
        &target.namespace,
        name,
        &preconditions,
        graceful,
        dry_run,
    )?;
    Ok(json_response(StatusCode::OK, &deleted))
}

fn delete_collection(
    state: &StandInState,
    target: &Target,
    query: &Query,
) -> Result<Response, ApiError> {
    if target.resource.read_only {
        return Err(ApiError::method_not_supported(
            target.resource,
            "deletecollection",
        ));
    }
    let filter = query.filter(&target.namespace)?;
    let (items, rv) = state.store.list(target.resource, &filter);
    let dry_run = query.dry_run()?;
    let mut deleted = Vec::new();
    for item in items {
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Ok(gone) = state.store.delete(
            target.resource,
            &ns,
            &name,
            &Preconditions::default(),
            None,
            dry_run,
        ) {
            deleted.push(bare(gone));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": list_kind(target.resource),
            "apiVersion": target.resource.api_version(),
            "metadata": { "resourceVersion": rv.to_string() },
            "items": deleted,
        }),
    ))
}

/// One watch event line.
pub(crate) fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// The event type a watch of `target` with `filter` sees for `change`, if any. A change that
/// moves an object into the selection is `ADDED` to it, one that moves it out `DELETED`.
pub(crate) fn event_for(change: &Change, target: &Target, filter: &Filter) -> Option<&'static str> {
    if !std::ptr::eq(change.resource, target.resource) {
        return None;
    }
    let now = filter.matches(&change.namespace, &change.object);
    match change.kind {
        crate::store::ChangeKind::Modified => {
            let before = change
                .previous
                .as_ref()
                .map_or(now, |p| filter.matches(&change.namespace, p));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
        kind => now.then(|| kind.as_str()),
    }
}

/// A body that streams `chunks`.
pub(crate) fn streaming(chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Body {
    use futures_util::StreamExt as _;
    Body::from_stream(chunks.map(Ok::<_, std::convert::Infallible>))
}

/// How long a watch lasts when the client does not say (the apiserver picks 30–60 min).
pub(crate) const DEFAULT_WATCH: Duration = Duration::from_secs(1800);
