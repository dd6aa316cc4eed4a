//! [`serve`]: the router on a listener, with the connection bounds an unauthenticated client
//! cannot exhaust: a deadline for each request's headers (which also closes idle keep-alive
//! connections), a cap on connections served at once, and a file-descriptor budget that
//! leaves room for the server's own files.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ServerConfig;

/// Descriptors kept free for the database, the store, sessions and logs when the connection
/// cap is fitted to the process's descriptor limit.
const RESERVED_FDS: u64 = 128;

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
///
/// Each connection must send a request's headers within `config.header_timeout_secs` of
/// opening, and of finishing its previous response (so an idle keep-alive connection is
/// closed then too); at most `config.max_connections` are served at once (more wait in the
/// listen backlog). The cap is lowered, with a warning, when the process's descriptor limit
/// (raised to its hard limit first) could not hold it. WebSocket upgrades work as usual.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let cap = connection_cap(config.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let header_timeout = Duration::from_secs(config.header_timeout_secs.max(1));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(header_timeout))
        .keep_alive_timeout(header_timeout);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait
                    // a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            // The first bytes are awaited before hyper tells HTTP/1 from HTTP/2, which has no
            // deadline of its own: a connection that sends nothing is closed at the header
            // deadline like one that sends too little.
            let mut first = [0u8; 1];
            let arrived = tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
            if !matches!(arrived, Ok(Ok(1..))) {
                drop(permit);
                return;
            }
            let service = TowerToHyperService::new(app);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `wanted` connections, or fewer when the descriptor limit (raised to its hard limit where
/// allowed) cannot hold them and [`RESERVED_FDS`] more.
fn connection_cap(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let wanted = wanted.max(1);
    let mut limit = getrlimit(Resource::Nofile);
    let need = wanted as u64 + RESERVED_FDS;
    if limit.current.is_some_and(|c| c < need) {
        let raised = rustix::process::Rlimit {
            current: limit.maximum.map(|max| max.min(need)).or(Some(need)),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    match limit.current {
        Some(current) if current < need => {
            let fitted = usize::try_from(current.saturating_sub(RESERVED_FDS))
                .unwrap_or(1)
                .max(1);
            tracing::warn!(
                wanted,
                fitted,
                descriptors = current,
                "max_connections lowered to fit the descriptor limit"
            );
            fitted
        }
        _ => wanted,
    }
}
