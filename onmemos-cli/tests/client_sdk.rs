//! The client against a real `onmemos serve`: lists read as lazy streams over every page, a
//! command's output and a session's events streamed, storage, and a shell that survives a
//! lost connection.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, client, create_user, onmemos, secret, sh, start, start_session};
use futures::{StreamExt, TryStreamExt};
use onmemos::client::api::{
    CreateWorkspace, EventListParams, ExecStreamLine, ListParams, ObjectListParams,
    ShellServerFrame,
};
use onmemos::client::id::SessionId;
use onmemos::client::model::{SessionEventKind, Workspace};
use onmemos::client::{Client, Shell, ShellEvent};

/// A server, and an admin with 100 credits.
async fn funded(dir: &std::path::Path) -> (Server, Client, String) {
    let created = create_user(onmemos(dir), "sdk@example.com", true);
    let key = secret(&created);
    let server = start(dir).await;
    let admin = client(&server.url, &key);
    common::buy_credits(&admin, 100_000_000).await;
    (server, admin, key)
}

async fn workspace(client: &Client, name: &str) -> Workspace {
    client
        .workspaces()
        .create(&CreateWorkspace {
            name: name.into(),
            description: None,
            env: Default::default(),
        })
        .await
        .unwrap_or_else(|e| panic!("create workspace: {e}"))
}

#[tokio::test]
async fn lists_stream_every_page_and_output_and_events_stream_as_they_come() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (_server, admin, _) = funded(dir.path()).await;

    // Seven workspaces read three to a page: every one, once, in id order.
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(workspace(&admin, &format!("ws-{i}")).await.id);
    }
    let streamed: Vec<_> = admin
        .workspaces()
        .list_all(ListParams::first(3))
        .map_ok(|w| w.id)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("list_all: {e}"));
    assert_eq!(streamed, created);
    let two: Vec<_> = admin
        .workspaces()
        .list_all(ListParams::first(3))
        .take(2)
        .collect()
        .await;
    assert_eq!(two.len(), 2);

    // Storage: five objects, two to a page.
    let ws = workspace(&admin, "files").await;
    let mut paths = BTreeSet::new();
    for i in 0..5 {
        let path = format!("data/{i}.txt");
        admin
            .storage()
            .upload_bytes(ws.id, &path, format!("file {i}"))
            .await
            .unwrap_or_else(|e| panic!("upload: {e}"));
        paths.insert(path);
    }
    let listed: BTreeSet<_> = admin
        .storage()
        .list_all(
            ws.id,
            ObjectListParams {
                limit: Some(2),
                ..Default::default()
            },
        )
        .map_ok(|o| o.path)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("storage list_all: {e}"));
    assert_eq!(listed, paths);
    let read = admin
        .storage()
        .read(ws.id, "data/3.txt")
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(&read[..], b"file 3");

    // A command's output, line by line, then its exit code.
    let s = start_session(&admin, ws.id).await;
    let lines: Vec<ExecStreamLine> = admin
        .sessions()
        .exec_stream(
            s.id,
            &sh("echo one; echo two >&2; sleep 0.2; echo three; exit 3"),
        )
        .await
        .unwrap_or_else(|e| panic!("exec_stream: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("exec_stream lines: {e}"));
    let stdout: String = lines
        .iter()
        .filter_map(|l| match l {
            ExecStreamLine::Stdout { data, .. } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    let stderr: String = lines
        .iter()
        .filter_map(|l| match l {
            ExecStreamLine::Stderr { data, .. } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(stdout, "one\nthree\n");
    assert_eq!(stderr, "two\n");
    assert_eq!(
        lines.last(),
        Some(&ExecStreamLine::Exit { exit_code: Some(3) })
    );

    // Following the events: the stream ends with the session's final event.
    let follow = admin
        .sessions()
        .follow_events(s.id, None)
        .await
        .unwrap_or_else(|e| panic!("follow_events: {e}"));
    admin
        .sessions()
        .stop(s.id)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let followed: Vec<_> = tokio::time::timeout(Duration::from_secs(30), follow.try_collect())
        .await
        .unwrap_or_else(|_| panic!("the event stream did not end with the session"))
        .unwrap_or_else(|e: onmemos::client::Error| panic!("follow: {e}"));
    assert!(
        matches!(
            followed.last().map(|e| &e.kind),
            Some(SessionEventKind::Stopped { .. })
        ),
        "{followed:?}"
    );
    assert!(
        followed
            .iter()
            .any(|e| matches!(e.kind, SessionEventKind::Started))
    );
    // The recorded events, one to a page, are the ones followed.
    let paged: Vec<_> = admin
        .sessions()
        .events_all(
            s.id,
            EventListParams {
                after: None,
                limit: Some(1),
            },
        )
        .map_ok(|e| e.seq)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("events_all: {e}"));
    assert_eq!(paged, followed.iter().map(|e| e.seq).collect::<Vec<_>>());
}

/// A TCP proxy to `upstream` whose open connections can be cut at once.
struct Severable {
    url: String,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::AbortHandle,
}

impl Severable {
    async fn start(upstream: &str) -> Self {
        let (listener, url) = common::listen().await;
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let open = Arc::new(Mutex::new(Vec::new()));
        let tasks = open.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                tasks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(task.abort_handle());
            }
        });
        Self {
            url,
            open,
            accepting: accepting.abort_handle(),
        }
    }

    /// Cuts every connection and stops listening: connecting is refused from now on.
    fn shut(&self) {
        self.accepting.abort();
        self.sever();
    }

    /// Drops every connection open now (both sides see it closed).
    fn sever(&self) -> usize {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for task in &open {
            task.abort();
        }
        open.len()
    }
}

/// Reads from `shell` until its output contains `needle`; everything read, and whether a
/// reconnection was seen.
async fn read_until(shell: &mut Shell, needle: &str) -> (String, bool) {
    let mut text = String::new();
    let mut reconnected = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains(needle) {
        let event = tokio::time::timeout_at(deadline, shell.next())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not appear; got {text:?}"));
        match event {
            Some(Ok(ShellEvent::Output(bytes))) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Ok(ShellEvent::Reconnected { .. })) => reconnected = true,
            Some(Ok(ShellEvent::Control(_))) => {}
            Some(Err(e)) => panic!("shell: {e} (read so far: {text:?})"),
            None => panic!("the shell ended before {needle:?}; got {text:?}"),
        }
    }
    (text, reconnected)
}

async fn shell_of(client: &Client, id: SessionId) -> Shell {
    client
        .shell(id)
        .await
        .unwrap_or_else(|e| panic!("shell: {e}"))
}

#[tokio::test]
async fn a_shell_reconnects_to_the_same_terminal_and_gets_only_what_it_missed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (server, admin, key) = funded(dir.path()).await;
    let ws = workspace(&admin, "shell").await;
    let s = start_session(&admin, ws.id).await;
    let proxy = Severable::start(&server.url).await;
    let through_proxy = client(&proxy.url, &key);

    let mut shell = shell_of(&through_proxy, s.id).await;
    shell
        .send(b"export MARK=kept-$((40+2)); echo before-$((1+1))\n")
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    read_until(&mut shell, "before-2").await;

    assert_eq!(proxy.sever(), 1, "one shell connection was open");
    // Output produced while the connection is down is replayed after reconnecting.
    admin
        .sessions()
        .exec(s.id, &sh("true"))
        .await
        .unwrap_or_else(|e| panic!("exec: {e}"));
    let mut events = Vec::new();
    let reconnected = loop {
        match tokio::time::timeout(Duration::from_secs(20), shell.next()).await {
            Ok(Some(Ok(ShellEvent::Reconnected { attempts }))) => break attempts,
            Ok(Some(Ok(other))) => events.push(other),
            other => panic!("no reconnection after the cut: {other:?} after {events:?}"),
        }
    };
    assert!(reconnected >= 1);
    shell
        .send(b"echo after-$MARK\n")
        .await
        .unwrap_or_else(|e| panic!("send after reconnecting: {e}"));
    let (text, again) = read_until(&mut shell, "after-kept-42").await;
    assert!(!again, "a second reconnection: {text:?}");
    // The output it already had (`before-2`) is not sent twice.
    assert!(!text.contains("before-2"), "replayed: {text:?}");

    // Once the session stops, the shell ends instead of reconnecting.
    admin
        .sessions()
        .stop(s.id)
        .await
        .unwrap_or_else(|e| panic!("stop: {e}"));
    let mut exit = None;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(20), shell.next())
        .await
        .unwrap_or_else(|_| panic!("the shell did not end with the session"))
    {
        if let Ok(ShellEvent::Control(ShellServerFrame::Exit { reason, .. })) = event {
            exit = Some(reason);
        }
    }
    assert_eq!(exit.as_deref(), Some("user"));
}

#[tokio::test]
async fn a_shell_away_for_more_than_the_scrollback_is_told_what_it_lost() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (server, admin, key) = funded(dir.path()).await;
    let ws = workspace(&admin, "away").await;
    let s = start_session(&admin, ws.id).await;
    let proxy = Severable::start(&server.url).await;
    let mut shell = shell_of(&client(&proxy.url, &key), s.id).await;
    // 100,000 bytes of output a second from now, then a marker, then a file saying it is done.
    shell
        .send(b"sleep 1; head -c 100000 /dev/zero | tr '\\0' a; echo; echo done-$((1+1)); touch away.done\n")
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    read_until(&mut shell, "done-$((1+1))").await;
    assert_eq!(proxy.sever(), 1);
    // Away until the shell has written it all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = admin
            .sessions()
            .exec(s.id, &sh("test -e away.done"))
            .await
            .unwrap_or_else(|e| panic!("exec: {e}"));
        if out.exit_code == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shell did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut notice = None;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("done-2") {
        match tokio::time::timeout_at(deadline, shell.next()).await {
            Ok(Some(Ok(ShellEvent::Control(ShellServerFrame::Notice { message, .. })))) => {
                notice = Some(message);
            }
            Ok(Some(Ok(ShellEvent::Output(bytes)))) => {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("after the cut: {other:?}; read {} bytes", text.len()),
        }
    }
    let notice = notice.unwrap_or_else(|| panic!("no notice of the lost output"));
    let lost: u64 = notice
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{notice}"));
    // 100,001 bytes and the marker went out while away; 64 KiB of them were kept.
    assert!((100_001 - 65_536..100_001).contains(&lost), "{notice}");
    let replayed_a = text.bytes().filter(|&b| b == b'a').count();
    assert!(
        replayed_a > 60_000,
        "the kept part is replayed: {replayed_a}"
    );
}

#[tokio::test]
async fn a_shell_gives_up_reconnecting_after_its_window() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (server, admin, key) = funded(dir.path()).await;
    let ws = workspace(&admin, "gone").await;
    let s = start_session(&admin, ws.id).await;
    let proxy = Severable::start(&server.url).await;
    let options = onmemos::client::ShellOptions {
        reconnect_within: Duration::from_secs(1),
        ..Default::default()
    };
    let mut shell = client(&proxy.url, &key)
        .shell_with(s.id, options)
        .await
        .unwrap_or_else(|e| panic!("shell: {e}"));
    shell
        .send(b"echo up\n")
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    read_until(&mut shell, "up").await;
    proxy.shut();
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(20), shell.next()).await {
            Ok(Some(Ok(ShellEvent::Output(_) | ShellEvent::Control(_)))) => {}
            Ok(Some(Err(e))) => break e,
            other => panic!("expected the reconnection to fail: {other:?}"),
        }
    };
    assert_eq!(err.kind(), onmemos::client::ErrorKind::Network, "{err}");
    assert!(
        err.to_string().contains("not re-established within 1s"),
        "{err}"
    );
}
