//! Workspace storage over real sockets: the router served on loopback with files on the local
//! file system, reqwest for well-formed requests and raw TCP for the ones a client library
//! would clean up (escaping paths, uploads cut off halfway).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use onmemos_core::clock::{Clock, ManualClock, SystemClock};
use onmemos_core::{Engine, EngineConfig, StorageSettings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    engine: Engine,
    storage_dir: PathBuf,
    _dir: tempfile::TempDir,
}

async fn server(quota_bytes: u64) -> Server {
    server_with(quota_bytes, Arc::new(SystemClock)).await
}

async fn server_with(quota_bytes: u64, clock: Arc<dyn Clock>) -> Server {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let storage_dir = dir.path().join("storage");
    let config = EngineConfig {
        storage: StorageSettings {
            quota_bytes,
            ..StorageSettings::default()
        },
        ..EngineConfig::default()
    };
    let engine = common::engine_in(dir.path(), clock, config).await;
    let addr = common::serve(engine.clone()).await;
    Server {
        base: format!("http://{addr}"),
        addr,
        http: reqwest::Client::new(),
        engine,
        storage_dir: storage_dir.canonicalize().unwrap_or(storage_dir),
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

impl Server {
    /// A member with credits and a workspace: their key and the workspace id.
    async fn user(&self, email: &str) -> (String, String) {
        let key = common::funded_member(&self.engine, email, 10_000_000).await;
        let ws = self
            .request(reqwest::Method::POST, "/v1/workspaces", &key)
            .json(&json!({"name": "lab"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("workspace: {e}"));
        let ws: Value = ws.json().await.unwrap_or_default();
        (key, ws["id"].as_str().unwrap_or_default().to_owned())
    }

    fn request(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let resp = request.send().await.unwrap_or_else(|e| panic!("send: {e}"));
        Reply {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            bytes: resp.bytes().await.unwrap_or_default(),
        }
    }

    /// A request on the object at `path` of workspace `ws`.
    fn file(
        &self,
        method: reqwest::Method,
        ws: &str,
        path: &str,
        key: &str,
    ) -> reqwest::RequestBuilder {
        self.request(method, &format!("/v1/workspaces/{ws}/files/{path}"), key)
    }

    async fn put(&self, key: &str, ws: &str, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let req = self.file(reqwest::Method::PUT, ws, path, key).body(body);
        self.send(req).await
    }

    async fn get(&self, key: &str, ws: &str, path: &str) -> Reply {
        let req = self.file(reqwest::Method::GET, ws, path, key);
        self.send(req).await
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` over raw
    /// TCP, exactly as written; returns the status, or `None` when the server closed first.
    async fn raw(&self, head: &str, body: &[u8]) -> Option<u16> {
        let mut tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let request = format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        tcp.write_all(request.as_bytes()).await.ok()?;
        tcp.write_all(body).await.ok()?;
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer);
        text.split(' ').nth(1)?.parse().ok()
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

fn pattern(len: usize) -> Vec<u8> {
    onmemos_core::testing::storage::pattern(len as u64, len)
}

#[tokio::test]
async fn files_stream_both_ways_with_ranges_etags_and_listings() {
    let s = server(1 << 30).await;
    let (key, ws) = s.user("ada@example.com").await;
    let data = pattern(3 * 1024 * 1024 + 5);

    // A streamed body without a length, in uneven chunks.
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(100_003)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let up = s
        .put(
            &key,
            &ws,
            "data/big%20file.bin",
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!(up.status, 201, "{:?}", up.json());
    assert_eq!(up.json()["path"], "data/big file.bin");
    assert_eq!(up.json()["size"], data.len());
    let etag = up.header("etag").to_owned();
    assert!(etag.starts_with('"'), "an etag is sent quoted: {etag:?}");

    let whole = s.get(&key, &ws, "data/big%20file.bin").await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), data.len().to_string());
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert!(
        whole.bytes[..] == data[..],
        "the download differs from the upload"
    );

    let ranged = |range: &'static str| {
        s.file(reqwest::Method::GET, &ws, "data/big%20file.bin", &key)
            .header("range", range)
    };
    let part = s.send(ranged("bytes=100-199")).await;
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 100-199/{}", data.len())
    );
    assert_eq!(&part.bytes[..], &data[100..200]);
    let tail = s.send(ranged("bytes=-10")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(&tail.bytes[..], &data[data.len() - 10..]);
    let past = s.send(ranged("bytes=999999999-")).await;
    assert_eq!(
        (past.status, past.code().as_str()),
        (416, "range_not_satisfiable")
    );
    assert_eq!(
        past.header("content-range"),
        format!("bytes */{}", data.len())
    );
    // A Range the server does not understand is ignored (RFC 9110): the whole object.
    for odd in [
        "lines=1-2",
        "bytes=5-2",
        "bytes=x-",
        "bytes=-",
        "bytes=0-1,4-5",
    ] {
        let whole = s.send(ranged(odd)).await;
        assert_eq!(whole.status, 200, "{odd}");
        assert_eq!(whole.bytes.len(), data.len(), "{odd}");
    }
    // Downloads are never sniffed nor shown inline in the API's origin.
    assert_eq!(part.header("x-content-type-options"), "nosniff");
    assert_eq!(part.header("content-disposition"), "attachment");

    let cached = s
        .send(
            s.file(reqwest::Method::GET, &ws, "data/big%20file.bin", &key)
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(cached.status, 304);
    assert!(cached.bytes.is_empty());

    let head = s
        .send(s.file(reqwest::Method::HEAD, &ws, "data/big%20file.bin", &key))
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), data.len().to_string());
    assert_eq!(head.header("etag"), etag);

    // Create-only uploads.
    let once = s
        .send(
            s.file(reqwest::Method::PUT, &ws, "once.txt", &key)
                .header("if-none-match", "*")
                .body("first"),
        )
        .await;
    assert_eq!(once.status, 201);
    let twice = s
        .send(
            s.file(reqwest::Method::PUT, &ws, "once.txt", &key)
                .header("if-none-match", "*")
                .body("second"),
        )
        .await;
    assert_eq!((twice.status, twice.code().as_str()), (409, "conflict"));
    assert_eq!(&s.get(&key, &ws, "once.txt").await.bytes[..], b"first");

    // Listing: pages in path order, prefixes as strings.
    for name in ["data/a.csv", "data/b.csv", "data/c.csv", "notes.md"] {
        assert_eq!(s.put(&key, &ws, name, name.to_owned()).await.status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("prefix", "data/".to_owned()), ("limit", "2".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = s
            .send(
                s.request(
                    reqwest::Method::GET,
                    &format!("/v1/workspaces/{ws}/files"),
                    &key,
                )
                .query(&query),
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.json());
        let body = page.json();
        seen.extend(
            body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["path"].as_str().unwrap_or_default().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "data/a.csv",
            "data/b.csv",
            "data/big file.bin",
            "data/c.csv"
        ]
    );
    let usage = s
        .send(s.request(
            reqwest::Method::GET,
            &format!("/v1/workspaces/{ws}/storage"),
            &key,
        ))
        .await;
    let expected: usize = data.len() + 5 + 3 * "data/a.csv".len() + "notes.md".len();
    assert_eq!(usage.json()["bytes"], expected, "{:?}", usage.json());

    // Local storage cannot presign: said plainly.
    let presign = s
        .send(
            s.request(
                reqwest::Method::POST,
                &format!("/v1/workspaces/{ws}/files:presign"),
                &key,
            )
            .json(&json!({"path": "notes.md", "method": "GET"})),
        )
        .await;
    assert_eq!(
        (presign.status, presign.code().as_str()),
        (501, "unsupported")
    );
    // Nor does it give away how the store lays out its keys.
    let message = presign.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !message.contains("workspaces/") && !message.contains(&ws.to_string()),
        "{message}"
    );

    let deleted = s
        .send(s.file(reqwest::Method::DELETE, &ws, "notes.md", &key))
        .await;
    assert_eq!(deleted.status, 204);
    let gone = s.get(&key, &ws, "notes.md").await;
    assert_eq!((gone.status, gone.code().as_str()), (404, "not_found"));

    // Deleting the workspace deletes its files.
    let removed = s
        .send(s.request(
            reqwest::Method::DELETE,
            &format!("/v1/workspaces/{ws}"),
            &key,
        ))
        .await;
    assert_eq!(removed.status, 204);
    assert_eq!(files_under(&s.storage_dir), Vec::<String>::new());
}

#[tokio::test]
async fn paths_that_could_escape_the_workspace_are_refused() {
    let s = server(1 << 30).await;
    let (key, ws) = s.user("eve@example.com").await;
    assert_eq!(s.put(&key, &ws, "kept.txt", "keep").await.status, 201);
    std::fs::write(s.storage_dir.join("outside.txt"), "untouched")
        .unwrap_or_else(|e| panic!("{e}"));
    let long = "a".repeat(300);
    let deep = ["d"; 600].join("/");
    for raw in [
        "../../outside.txt",
        "..%2F..%2Foutside.txt",
        "%2e%2e/%2e%2e/outside.txt",
        "a/%2E%2E/%2E%2E/%2E%2E/outside.txt",
        "%252e%252e/outside.txt",
        "nul%00byte",
        "line%0Abreak",
        "back%5C..%5Cslash",
        "a//b",
        "%2Fabsolute",
        "trailing/",
        long.as_str(),
        deep.as_str(),
    ] {
        let path = format!("/v1/workspaces/{ws}/files/{raw}");
        let status = s
            .raw(
                &format!("PUT {path} HTTP/1.1\r\nAuthorization: Bearer {key}\r\nContent-Length: 4"),
                b"evil",
            )
            .await;
        assert_eq!(status, Some(400), "PUT {raw}");
        let read = s
            .raw(
                &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {key}"),
                b"",
            )
            .await;
        assert_eq!(read, Some(400), "GET {raw}");
    }
    assert_eq!(
        std::fs::read_to_string(s.storage_dir.join("outside.txt")).unwrap_or_default(),
        "untouched"
    );
    let mut left = files_under(&s.storage_dir);
    left.retain(|f| f != "outside.txt");
    assert_eq!(left, [format!("workspaces/{ws}/kept.txt")]);
    assert_eq!(&s.get(&key, &ws, "kept.txt").await.bytes[..], b"keep");
}

#[tokio::test]
async fn the_quota_refuses_uploads_before_and_while_they_stream() {
    let quota = 1024 * 1024;
    let s = server(quota).await;
    let (key, ws) = s.user("bob@example.com").await;

    // Announced too large: refused before a byte is read.
    let big = s
        .put(&key, &ws, "big.bin", pattern(quota as usize + 1))
        .await;
    assert_eq!((big.status, big.code().as_str()), (413, "quota_exceeded"));
    assert!(
        big.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("quota")
    );

    // Not announced: refused when the bytes pass the quota, nothing kept.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..12)
        .map(|i| Ok(Bytes::from(vec![i as u8; 100_000])))
        .collect();
    let streamed = s
        .put(
            &key,
            &ws,
            "streamed.bin",
            reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
        )
        .await;
    assert_eq!(
        (streamed.status, streamed.code().as_str()),
        (413, "quota_exceeded")
    );
    assert_eq!(
        files_under(&s.storage_dir),
        Vec::<String>::new(),
        "nothing partial is kept"
    );

    let third = quota as usize * 6 / 10;
    assert_eq!(s.put(&key, &ws, "a.bin", pattern(third)).await.status, 201);
    let over = s.put(&key, &ws, "b.bin", pattern(third)).await;
    assert_eq!(over.status, 413);
    // Replacing an object counts only the difference.
    let bigger = quota as usize * 9 / 10;
    let replaced = s.put(&key, &ws, "a.bin", pattern(bigger)).await;
    assert_eq!(replaced.status, 201, "{:?}", replaced.json());
    assert_eq!(s.get(&key, &ws, "a.bin").await.bytes.len(), bigger);
    assert_eq!(
        files_under(&s.storage_dir),
        [format!("workspaces/{ws}/a.bin")]
    );
}

impl Server {
    /// Starts a resumable upload; returns its JSON.
    async fn start_upload(&self, key: &str, ws: &str, path: &str, size: u64) -> Reply {
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/workspaces/{ws}/uploads"),
                key,
            )
            .json(&json!({"path": path, "size": size}));
        self.send(req).await
    }

    async fn put_part(&self, key: &str, ws: &str, upload: &str, n: u32, body: Vec<u8>) -> Reply {
        let path = format!("/v1/workspaces/{ws}/uploads/{upload}/parts/{n}");
        self.send(self.request(reqwest::Method::PUT, &path, key).body(body))
            .await
    }

    async fn upload_call(
        &self,
        method: reqwest::Method,
        key: &str,
        ws: &str,
        upload: &str,
        tail: &str,
    ) -> Reply {
        let path = format!("/v1/workspaces/{ws}/uploads/{upload}{tail}");
        self.send(self.request(method, &path, key)).await
    }
}

/// The numbers of the parts an upload's JSON lists.
fn part_numbers(upload: &Value) -> Vec<u64> {
    upload["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["number"].as_u64())
        .collect()
}

#[tokio::test]
async fn a_resumable_upload_survives_failed_parts_and_completes() {
    let s = server(1 << 30).await;
    let (key, ws) = s.user("resume@example.com").await;
    let size = 2 * 8 * 1024 * 1024 + 12_345;
    let content = pattern(size);
    let started = s.start_upload(&key, &ws, "data/big.bin", size as u64).await;
    assert_eq!(started.status, 201, "{:?}", started.json());
    let upload = started.json();
    let id = upload["id"].as_str().unwrap_or_default().to_owned();
    let part_size = upload["part_size"].as_u64().unwrap_or(0) as usize;
    assert_eq!(upload["part_count"], json!(size.div_ceil(part_size)));
    let part = |n: usize| content[n * part_size..((n + 1) * part_size).min(size)].to_vec();

    // Part 1 arrives; part 0 is cut short (the connection failed, say) and refused.
    assert_eq!(s.put_part(&key, &ws, &id, 1, part(1)).await.status, 200);
    let short = s
        .put_part(&key, &ws, &id, 0, part(0)[..1000].to_vec())
        .await;
    assert_eq!(
        (short.status, short.code().as_str()),
        (400, "invalid_request")
    );
    assert!(
        short.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must be")
    );
    let too_far = s.put_part(&key, &ws, &id, 3, part(2)).await;
    assert_eq!(too_far.status, 400, "{:?}", too_far.json());

    // A client resuming asks what arrived, and completing early names what is missing.
    let status = s
        .upload_call(reqwest::Method::GET, &key, &ws, &id, "")
        .await;
    assert_eq!(part_numbers(&status.json()), [1]);
    let early = s
        .upload_call(reqwest::Method::POST, &key, &ws, &id, "/complete")
        .await;
    assert_eq!(early.status, 409, "{:?}", early.json());
    assert!(
        early.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("0, 2")
    );
    assert_eq!(s.get(&key, &ws, "data/big.bin").await.status, 404);

    for n in [2, 0] {
        assert_eq!(
            s.put_part(&key, &ws, &id, n as u32, part(n)).await.status,
            200
        );
    }
    let done = s
        .upload_call(reqwest::Method::POST, &key, &ws, &id, "/complete")
        .await;
    assert_eq!(done.status, 201, "{:?}", done.json());
    assert_eq!(done.json()["size"], json!(size));
    let got = s.get(&key, &ws, "data/big.bin").await;
    assert!(
        got.bytes[..] == content[..],
        "the object is the parts in order"
    );
    // The upload is gone, and so are its staged parts.
    let gone = s
        .upload_call(reqwest::Method::GET, &key, &ws, &id, "")
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        files_under(&s.storage_dir),
        [format!("workspaces/{ws}/data/big.bin")]
    );
}

#[tokio::test]
async fn uploads_in_progress_count_against_the_quota_until_they_end() {
    let quota = 1024 * 1024;
    let s = server(quota).await;
    let (key, ws) = s.user("promise@example.com").await;
    let over = s.start_upload(&key, &ws, "huge.bin", quota + 1).await;
    assert_eq!((over.status, over.code().as_str()), (413, "quota_exceeded"));

    let promised = s.start_upload(&key, &ws, "a.bin", quota * 6 / 10).await;
    assert_eq!(promised.status, 201);
    let id = promised.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The promised bytes are not free for anything else...
    let put = s.put(&key, &ws, "b.bin", pattern(quota as usize / 2)).await;
    assert_eq!((put.status, put.code().as_str()), (413, "quota_exceeded"));
    let second = s.start_upload(&key, &ws, "c.bin", quota / 2).await;
    assert_eq!(second.status, 413);
    // ...until the upload is abandoned.
    let aborted = s
        .upload_call(reqwest::Method::DELETE, &key, &ws, &id, "")
        .await;
    assert_eq!(aborted.status, 204);
    assert_eq!(
        s.put(&key, &ws, "b.bin", pattern(quota as usize / 2))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn an_abandoned_upload_expires_and_frees_its_parts() {
    let clock = Arc::new(ManualClock::at_unix_millis(1_800_000_000_000));
    let s = server_with(1 << 30, clock.clone()).await;
    let (key, ws) = s.user("late@example.com").await;
    let started = s.start_upload(&key, &ws, "late.bin", 100).await;
    let id = started.json()["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        s.put_part(&key, &ws, &id, 0, pattern(100)).await.status,
        200
    );
    assert_eq!(files_under(&s.storage_dir).len(), 1, "the staged part");

    let ttl = StorageSettings::default().upload_ttl_secs;
    clock.advance(chrono::Duration::seconds(
        i64::try_from(ttl).unwrap_or(0) - 1,
    ));
    let pass = s
        .engine
        .monitor()
        .run_once()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pass.uploads_expired, 0);
    clock.advance(chrono::Duration::seconds(2));
    let pass = s
        .engine
        .monitor()
        .run_once()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pass.uploads_expired, 1);
    let gone = s
        .upload_call(reqwest::Method::GET, &key, &ws, &id, "")
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(files_under(&s.storage_dir), Vec::<String>::new());
}

#[tokio::test]
async fn an_upload_cut_off_halfway_leaves_nothing() {
    let s = server(1 << 30).await;
    let (key, ws) = s.user("cut@example.com").await;
    assert_eq!(
        s.put(&key, &ws, "kept.bin", pattern(1000)).await.status,
        201
    );
    for (name, sent) in [("small.bin", 1000), ("large.bin", 20 * 1024 * 1024)] {
        // Announces 64 MiB, sends part of it, hangs up.
        let mut tcp = tokio::net::TcpStream::connect(s.addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let head = format!(
            "PUT /v1/workspaces/{ws}/files/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\n\r\n",
            64 * 1024 * 1024
        );
        tcp.write_all(head.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tcp.write_all(&pattern(sent))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drop(tcp);
        // The server notices, aborts the upload and removes what it wrote.
        let mut clean = false;
        for _ in 0..100 {
            let files = files_under(&s.storage_dir);
            if files == [format!("workspaces/{ws}/kept.bin")] {
                clean = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(clean, "{name}: left {:?}", files_under(&s.storage_dir));
        let head = s.get(&key, &ws, name).await;
        assert_eq!(head.status, 404, "{name}");
    }
    assert_eq!(
        &s.get(&key, &ws, "kept.bin").await.bytes[..],
        &pattern(1000)[..]
    );
}

#[tokio::test]
async fn sessions_see_their_workspace_files() {
    let s = server(1 << 30).await;
    let (key, ws) = s.user("sam@example.com").await;
    assert_eq!(
        s.put(&key, &ws, "in/hello.txt", "from the API")
            .await
            .status,
        201
    );
    let created = s
        .send(
            s.request(reqwest::Method::POST, "/v1/sessions", &key)
                .json(&json!({"workspace_id": ws, "template": "python"})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    let session = created.json()["id"].as_str().unwrap_or_default().to_owned();
    let exec = |command: &str| {
        s.request(
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/exec"),
            &key,
        )
        .json(&json!({"command": ["sh", "-c", command]}))
    };
    let read = s.send(exec("cat files/in/hello.txt")).await;
    assert_eq!(read.json()["stdout"], "from the API", "{:?}", read.json());
    let wrote = s.send(exec("echo from the session > files/out.txt")).await;
    assert_eq!(wrote.json()["exit_code"], 0, "{:?}", wrote.json());
    assert_eq!(
        &s.get(&key, &ws, "out.txt").await.bytes[..],
        b"from the session\n"
    );
    let stop = s
        .send(s.request(
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/stop"),
            &key,
        ))
        .await;
    assert_eq!(stop.status, 200);
}
