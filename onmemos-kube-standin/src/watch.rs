//! Watches: newline-delimited events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`),
//! resumed from a resourceVersion, with synthetic `ADDED` events for the current state when
//! none is given (or `0`, or with `sendInitialEvents`), bookmarks, `timeoutSeconds`, and an
//! `ERROR` event carrying `410 Expired` when the version asked for is no longer kept.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::StandInState;
use crate::api::{DEFAULT_WATCH, Query, Target, event_for, event_line, streaming};
use crate::status::ApiError;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn bookmark(target: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    event_line(
        "BOOKMARK",
        &json!({
            "kind": target.resource.kind,
            "apiVersion": target.resource.api_version(),
            "metadata": metadata,
        }),
    )
}

/// The body of a watch of `target`.
pub(crate) fn serve(
    state: Arc<StandInState>,
    target: &Target,
    query: &Query,
) -> Result<Body, ApiError> {
    let filter = query.filter_for_watch(&target.namespace)?;
    let asked = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0");
    let asked: Option<u64> = asked
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))
        })
        .transpose()?;
    let send_initial = match query.get("sendInitialEvents") {
        Some("true") => {
            if query.get("resourceVersionMatch") != Some("NotOlderThan") {
                return Err(ApiError::invalid_options(
                    "resourceVersionMatch",
                    "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
                ));
            }
            true
        }
        Some("false") | None => asked.is_none(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for sendInitialEvents: {other:?}"
            )));
        }
    };
    let bookmarks = matches!(query.get("allowWatchBookmarks"), Some("true"));
    let timeout = query
        .number("timeoutSeconds")?
        .map_or(DEFAULT_WATCH, Duration::from_secs);

    let target = crate::api::Target {
        resource: target.resource,
        namespace: target.namespace.clone(),
        name: None,
        subresource: None,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut epoch = state.watch_epoch.subscribe();
    let start = if send_initial {
        let (items, rv, receiver) = state.store.list_and_watch(target.resource, &filter);
        Ok((
            items
                .into_iter()
                .map(|i| event_line("ADDED", &i))
                .collect::<Vec<_>>(),
            rv,
            receiver,
            true,
        ))
    } else {
        state.store.watch_from(asked).map(|(past, receiver)| {
            let lines = past
                .iter()
                .filter_map(|c| {
                    event_for(c, &target, &filter).map(|kind| event_line(kind, &c.object))
                })
                .collect::<Vec<_>>();
            (lines, asked.unwrap_or(0), receiver, false)
        })
    };
    tokio::spawn(async move {
        let (lines, mut last_rv, mut changes, initial_end) = match start {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                return;
            }
        };
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if initial_end && bookmarks && tx.send(bookmark(&target, last_rv, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = tx.closed() => return,
                _ = epoch.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = last_rv.max(state.store.resource_version());
                    if tx.send(bookmark(&target, rv, false)).await.is_err() {
                        return;
                    }
                }
                change = changes.recv() => match change {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        if let Some(kind) = event_for(&change, &target, &filter)
                            && tx.send(event_line(kind, &change.object)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Changes were missed: the watcher must relist.
                        let e = ApiError::expired(last_rv, state.store.resource_version());
                        let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(streaming(stream))
}
