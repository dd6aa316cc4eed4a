//! The `StorageProvider` conformance suite.
//!
//! The checks are split in two halves:
//! - **read checks** take the store and a [`Seeder`] that writes the objects they read, so a
//!   store whose writes cannot be exercised (an emulator without the upload path) still runs
//!   them, seeded some other way;
//! - **write checks** take only the store.
//!
//! Every check works under its own fresh prefix, so the checks may share one store, and each
//! panics with a message saying what did not hold.
//!
//! ```ignore
//! onmemos_core::storage_conformance!(|| async { Some(my_store()) });
//! onmemos_core::storage_read_conformance!(|| async { Some((my_store(), my_seeder())) });
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::api::ErrorCode;
use crate::error::{Error, ErrorKind, Result};
use crate::ports::StorageProvider;
use crate::ports::storage::{ByteStream, GetOptions, PresignMethod, PutOptions};

/// Writes objects for the read checks.
#[async_trait]
pub trait Seeder: Send + Sync {
    /// Writes `body` at `path` (relative to the store's root), panicking on failure.
    async fn seed(&self, path: &str, body: Bytes);
}

/// Seeds through the store's own `put`.
#[derive(Debug, Clone)]
pub struct PutSeeder(pub Arc<dyn StorageProvider>);

#[async_trait]
impl Seeder for PutSeeder {
    async fn seed(&self, path: &str, body: Bytes) {
        self.0
            .put(path, bytes_stream(vec![body]), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("seed {path}: {e}"));
    }
}

/// A stream of these chunks.
pub fn bytes_stream(chunks: Vec<Bytes>) -> ByteStream {
    futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// `len` deterministic pseudo-random bytes drawn from `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fresh prefix for one check.
fn scope(check: &str) -> String {
    format!("conformance/{check}-{}/", uuid::Uuid::now_v7().simple())
}

async fn read_all(store: &dyn StorageProvider, path: &str, options: GetOptions) -> Result<Bytes> {
    let got = store.get(path, options).await?;
    let chunks: Vec<Bytes> = got.body.try_collect().await?;
    Ok(chunks.concat().into())
}

async fn content(store: &dyn StorageProvider, path: &str) -> Bytes {
    read_all(store, path, GetOptions::default())
        .await
        .unwrap_or_else(|e| panic!("get {path}: {e}"))
}

fn ranged(range: std::ops::Range<u64>) -> GetOptions {
    GetOptions {
        range: Some(range),
        ..GetOptions::default()
    }
}

fn expect_error<T>(what: &str, result: Result<T>, code: ErrorCode) -> Error {
    match result {
        Ok(_) => panic!("{what}: expected {code}, got a success"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e}");
            e
        }
    }
}

fn expect_kind<T>(what: &str, result: Result<T>, kind: ErrorKind) {
    match result {
        Ok(_) => panic!("{what}: expected {kind:?}, got a success"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Read checks
// ---------------------------------------------------------------------------------------------

/// Get, ranges (clipped at the end, refused past it), head, etags and missing objects.
pub async fn get_head_and_ranges(store: Arc<dyn StorageProvider>, seed: Arc<dyn Seeder>) {
    let at = scope("ranges");
    let path = format!("{at}docs/a.txt");
    let body = pattern(1, 1000);
    seed.seed(&path, body.clone().into()).await;

    let head = store
        .head(&path)
        .await
        .unwrap_or_else(|e| panic!("head: {e}"));
    assert_eq!(head.path, path);
    assert_eq!(head.size, 1000);
    assert_eq!(&content(&*store, &path).await[..], &body[..]);

    let got = store
        .get(&path, ranged(10..20))
        .await
        .unwrap_or_else(|e| panic!("range get: {e}"));
    assert_eq!(got.range, 10..20);
    assert_eq!(
        got.meta.size, 1000,
        "a ranged get reports the whole object's size"
    );
    let part: Vec<Bytes> = got
        .body
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("range body: {e}"));
    assert_eq!(&part.concat()[..], &body[10..20]);

    let tail = read_all(&*store, &path, ranged(990..5000))
        .await
        .unwrap_or_else(|e| panic!("a range past the end is clipped: {e}"));
    assert_eq!(&tail[..], &body[990..]);

    expect_error(
        "a range starting at the end",
        read_all(&*store, &path, ranged(1000..1010)).await,
        ErrorCode::RangeNotSatisfiable,
    );
    expect_error(
        "an empty range",
        read_all(&*store, &path, ranged(5..5)).await,
        ErrorCode::RangeNotSatisfiable,
    );

    if let Some(etag) = &head.etag {
        let matched = GetOptions {
            if_match: Some(etag.clone()),
            ..GetOptions::default()
        };
        let same = read_all(&*store, &path, matched)
            .await
            .unwrap_or_else(|e| panic!("get if-match the current etag: {e}"));
        assert_eq!(same.len(), 1000);
        let stale = GetOptions {
            if_match: Some("\"not-the-etag\"".into()),
            ..GetOptions::default()
        };
        expect_error(
            "get if-match a stale etag",
            read_all(&*store, &path, stale).await,
            ErrorCode::PreconditionFailed,
        );
    }

    let missing = format!("{at}docs/missing.txt");
    expect_kind(
        "head of a missing object",
        store.head(&missing).await,
        ErrorKind::NotFound,
    );
    expect_kind(
        "get of a missing object",
        read_all(&*store, &missing, GetOptions::default()).await,
        ErrorKind::NotFound,
    );
}

/// Listing pages through more than 1000 objects in path order with cursors, and prefixes
/// match as strings.
pub async fn list_paginates_in_path_order(store: Arc<dyn StorageProvider>, seed: Arc<dyn Seeder>) {
    let at = scope("list");
    let mut expected: Vec<String> = (0..1001).map(|i| format!("{at}many/{i:05}")).collect();
    let others = [format!("{at}manyx"), format!("{at}other/x")];
    futures_util::stream::iter(expected.iter().chain(others.iter()))
        .for_each_concurrent(32, |path| {
            let seed = seed.clone();
            async move { seed.seed(path, Bytes::from_static(b"x")).await }
        })
        .await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&format!("{at}many/"), after.as_deref(), 400)
            .await
            .unwrap_or_else(|e| panic!("list page {pages}: {e}"));
        pages += 1;
        assert!(page.objects.len() <= 400, "a page holds at most the limit");
        seen.extend(page.objects.iter().map(|o| o.path.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(
                    Some(&next),
                    seen.last(),
                    "the cursor is the page's last path"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3, "1001 objects in pages of 400");
    expected.sort();
    assert_eq!(seen, expected, "every object once, in path order");

    let loose = store
        .list(&format!("{at}many"), None, 2000)
        .await
        .unwrap_or_else(|e| panic!("list by a string prefix: {e}"));
    assert_eq!(
        loose.objects.len(),
        1002,
        "`many` matches `many/…` and `manyx`"
    );
    assert!(loose.next.is_none());
    assert_eq!(
        loose.objects.last().map(|o| o.path.as_str()),
        Some(others[0].as_str())
    );

    let none = store
        .list(&format!("{at}nothing/"), None, 10)
        .await
        .unwrap_or_else(|e| panic!("empty list: {e}"));
    assert!(none.objects.is_empty() && none.next.is_none());
}

/// Unicode and spaces in names survive writing, listing and reading.
pub async fn unicode_and_spaces_in_names(store: Arc<dyn StorageProvider>, seed: Arc<dyn Seeder>) {
    let at = scope("names");
    let names = [
        format!("{at}ünï cödé/файл с пробелом.txt"),
        format!("{at}a b/c  d.txt"),
        format!("{at}数据/😀 emoji.bin"),
        format!("{at}percent%20and+plus&amp.txt"),
    ];
    for (i, name) in names.iter().enumerate() {
        seed.seed(name, Bytes::from(format!("content {i}"))).await;
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            &content(&*store, name).await[..],
            format!("content {i}").as_bytes(),
            "{name}"
        );
    }
    let listed = store
        .list(&at, None, 100)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
    want.sort_unstable();
    let got: Vec<&str> = listed.objects.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(got, want);
}

/// Deleting one object, a missing one, and a prefix; usage counts what is left.
pub async fn deletes_and_usage(store: Arc<dyn StorageProvider>, seed: Arc<dyn Seeder>) {
    let at = scope("delete");
    for (path, len) in [("d/1", 10), ("d/2", 20), ("d/sub/3", 30), ("dx", 40)] {
        seed.seed(&format!("{at}{path}"), pattern(len, len as usize).into())
            .await;
    }
    assert_eq!(
        store
            .usage_bytes(&at)
            .await
            .unwrap_or_else(|e| panic!("usage: {e}")),
        100
    );
    // Many prefixes at once (more than a machine has cores), each measured, in their order.
    let prefixes: Vec<String> = ["d/", "nothing/", "", "d/sub/"]
        .iter()
        .cycle()
        .take(12)
        .map(|p| format!("{at}{p}"))
        .collect();
    assert_eq!(
        store
            .usage_bytes_of(&prefixes)
            .await
            .unwrap_or_else(|e| panic!("usage of many: {e}")),
        [60, 0, 100, 30].repeat(3)
    );
    assert_eq!(
        store.usage_bytes_of(&[]).await.ok(),
        Some(Vec::new()),
        "no prefix"
    );
    store
        .delete(&format!("{at}d/1"))
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    expect_kind(
        "head after delete",
        store.head(&format!("{at}d/1")).await,
        ErrorKind::NotFound,
    );
    store
        .delete(&format!("{at}d/1"))
        .await
        .unwrap_or_else(|e| panic!("deleting a missing object is not an error: {e}"));
    let removed = store
        .delete_prefix(&format!("{at}d/"))
        .await
        .unwrap_or_else(|e| panic!("delete prefix: {e}"));
    assert_eq!(removed, 2, "d/2 and d/sub/3");
    assert_eq!(
        &content(&*store, &format!("{at}dx")).await[..],
        &pattern(40, 40)[..],
        "an object beside the prefix stays"
    );
    assert_eq!(
        store
            .usage_bytes(&at)
            .await
            .unwrap_or_else(|e| panic!("usage: {e}")),
        40
    );
}

// ---------------------------------------------------------------------------------------------
// Write checks
// ---------------------------------------------------------------------------------------------

/// A put returns the object's metadata; an overwrite replaces the content; paths that would
/// leave the root are refused.
pub async fn put_overwrite_and_bad_paths(store: Arc<dyn StorageProvider>) {
    let at = scope("put");
    let path = format!("{at}p.txt");
    let put = PutOptions {
        content_type: Some("text/plain".into()),
        ..PutOptions::default()
    };
    let meta = store
        .put(&path, bytes_stream(vec![Bytes::from_static(b"first")]), put)
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!((meta.path.as_str(), meta.size), (path.as_str(), 5));
    let meta = store
        .put(
            &path,
            bytes_stream(vec![
                Bytes::from_static(b"sec"),
                Bytes::from_static(b"ond!"),
            ]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("overwrite: {e}"));
    assert_eq!(meta.size, 7);
    assert_eq!(&content(&*store, &path).await[..], b"second!");

    let empty = format!("{at}empty");
    let meta = store
        .put(&empty, bytes_stream(vec![]), PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("empty put: {e}"));
    assert_eq!(meta.size, 0);
    assert!(content(&*store, &empty).await.is_empty());

    for bad in [
        format!("{at}../escape"),
        format!("{at}a/./b"),
        format!("{at}a//b"),
    ] {
        expect_kind(
            &format!("put {bad:?}"),
            store
                .put(&bad, bytes_stream(vec![]), PutOptions::default())
                .await,
            ErrorKind::InvalidInput,
        );
    }
}

/// 64 MiB streamed in odd-sized chunks goes in parts and reads back identical.
pub async fn multipart_64_mib(store: Arc<dyn StorageProvider>) {
    const SIZE: usize = 64 * 1024 * 1024;
    let at = scope("multipart");
    let path = format!("{at}big.bin");
    let data = Bytes::from(pattern(64, SIZE));
    let chunk = 1024 * 1024 + 7;
    let chunks: Vec<Bytes> = (0..SIZE)
        .step_by(chunk)
        .map(|start| data.slice(start..(start + chunk).min(SIZE)))
        .collect();
    let meta = store
        .put(&path, bytes_stream(chunks), PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("64 MiB put: {e}"));
    assert_eq!(meta.size, SIZE as u64);

    let got = store
        .get(&path, GetOptions::default())
        .await
        .unwrap_or_else(|e| panic!("64 MiB get: {e}"));
    let mut hash = Sha256::new();
    let mut len = 0;
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("64 MiB body: {e}"));
        len += chunk.len();
        hash.update(&chunk);
    }
    assert_eq!(len, SIZE);
    assert_eq!(hash.finalize(), Sha256::digest(&data), "content differs");

    let middle = read_all(&*store, &path, ranged(40_000_000..40_000_100))
        .await
        .unwrap_or_else(|e| panic!("range in a multipart object: {e}"));
    assert_eq!(&middle[..], &data[40_000_000..40_000_100]);
    store
        .delete(&path)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
}

/// `if_absent` creates once and then refuses, small or larger than a part, leaving the first
/// content.
pub async fn conditional_create(store: Arc<dyn StorageProvider>) {
    let at = scope("create");
    let small = format!("{at}once.txt");
    let create = PutOptions {
        if_absent: true,
        ..PutOptions::default()
    };
    store
        .put(
            &small,
            bytes_stream(vec![Bytes::from_static(b"one")]),
            create.clone(),
        )
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    expect_kind(
        "second create",
        store
            .put(
                &small,
                bytes_stream(vec![Bytes::from_static(b"two")]),
                create.clone(),
            )
            .await,
        ErrorKind::Conflict,
    );
    assert_eq!(&content(&*store, &small).await[..], b"one");

    let large = format!("{at}once.bin");
    let big = |seed| bytes_stream(vec![Bytes::from(pattern(seed, 17 * 1024 * 1024))]);
    store
        .put(&large, big(1), create.clone())
        .await
        .unwrap_or_else(|e| panic!("large create: {e}"));
    expect_kind(
        "second large create",
        store.put(&large, big(2), create).await,
        ErrorKind::Conflict,
    );
    let kept = content(&*store, &large).await;
    assert_eq!(
        Sha256::digest(&kept),
        Sha256::digest(pattern(1, 17 * 1024 * 1024))
    );
    let listed = store
        .list(&at, None, 10)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(
        listed.objects.len(),
        2,
        "no staging object is visible: {listed:?}"
    );
}

/// Eight writers racing on one key leave exactly one writer's content, whole.
pub async fn concurrent_writers_to_one_key(store: Arc<dyn StorageProvider>) {
    let at = scope("race");
    let path = format!("{at}contended.bin");
    let len = 3 * 1024 * 1024 + 11;
    let writers = (0u8..8).map(|i| {
        let store = store.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let body = vec![
                Bytes::from(vec![i; len / 2]),
                Bytes::from(vec![i; len - len / 2]),
            ];
            store
                .put(&path, bytes_stream(body), PutOptions::default())
                .await
        })
    });
    for writer in futures_util::future::join_all(writers).await {
        writer
            .unwrap_or_else(|e| panic!("writer task: {e}"))
            .unwrap_or_else(|e| panic!("writer: {e}"));
    }
    let got = content(&*store, &path).await;
    assert_eq!(got.len(), len);
    assert!(
        got.iter().all(|b| *b == got[0]) && got[0] < 8,
        "the content mixes writers"
    );
}

/// A copy is an object of its own; copying a missing object is not found.
pub async fn copy_is_independent(store: Arc<dyn StorageProvider>) {
    let at = scope("copy");
    let (from, to) = (format!("{at}from"), format!("{at}sub/to"));
    store
        .put(
            &from,
            bytes_stream(vec![Bytes::from_static(b"original")]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    store
        .copy(&from, &to)
        .await
        .unwrap_or_else(|e| panic!("copy: {e}"));
    store
        .put(
            &from,
            bytes_stream(vec![Bytes::from_static(b"changed")]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("overwrite: {e}"));
    assert_eq!(&content(&*store, &to).await[..], b"original");
    expect_kind(
        "copy of a missing object",
        store.copy(&format!("{at}missing"), &format!("{at}x")).await,
        ErrorKind::NotFound,
    );
}

/// A body that fails halfway leaves nothing behind, small or in parts, and never replaces the
/// object it would have overwritten.
pub async fn failed_upload_leaves_nothing(store: Arc<dyn StorageProvider>) {
    let at = scope("interrupted");
    let kept = format!("{at}kept.txt");
    store
        .put(
            &kept,
            bytes_stream(vec![Bytes::from_static(b"keep me")]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    let failing = |len: usize| -> ByteStream {
        let data = Bytes::from(pattern(9, len));
        let mut chunks: Vec<Result<Bytes>> = (0..len)
            .step_by(1024 * 1024)
            .map(|s| Ok(data.slice(s..(s + 1024 * 1024).min(len))))
            .collect();
        chunks.push(Err(Error::invalid("body", "the client went away")));
        futures_util::stream::iter(chunks).boxed()
    };
    for (name, len) in [("small", 1000), ("parts", 20 * 1024 * 1024)] {
        let path = format!("{at}{name}.bin");
        expect_kind(
            &format!("{name} interrupted upload"),
            store.put(&path, failing(len), PutOptions::default()).await,
            ErrorKind::InvalidInput,
        );
        expect_kind(
            &format!("{name} interrupted upload leaves no object"),
            store.head(&path).await,
            ErrorKind::NotFound,
        );
        expect_kind(
            &format!("{name} interrupted overwrite"),
            store.put(&kept, failing(len), PutOptions::default()).await,
            ErrorKind::InvalidInput,
        );
        assert_eq!(&content(&*store, &kept).await[..], b"keep me");
    }
    let listed = store
        .list(&at, None, 10)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let paths: Vec<&str> = listed.objects.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, [kept.as_str()]);
}

/// An upload in parts: parts go in any order and may be written again, nothing is visible
/// before completion, the object is the parts in order after it, and an aborted upload leaves
/// nothing.
pub async fn uploads_in_parts(store: Arc<dyn StorageProvider>) {
    let at = scope("parts");
    let path = format!("{at}big.bin");
    // The store picks the part size; ask for one part more than the first two.
    let probe = store
        .create_upload(&format!("{at}probe.bin"), 1, None)
        .await
        .unwrap_or_else(|e| panic!("create_upload: {e}"));
    let part_size = usize::try_from(probe.part_size).unwrap_or_else(|e| panic!("{e}"));
    store
        .abort_upload(&format!("{at}probe.bin"), &probe)
        .await
        .unwrap_or_else(|e| panic!("abort_upload: {e}"));
    let sizes = [part_size, part_size, part_size / 3 + 1];
    let upload = store
        .create_upload(
            &path,
            sizes.iter().sum::<usize>() as u64,
            Some("application/octet-stream"),
        )
        .await
        .unwrap_or_else(|e| panic!("create_upload: {e}"));
    assert_eq!(
        upload.part_size, probe.part_size,
        "the part size of a small object"
    );
    let parts: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| Bytes::from(pattern(i as u64 + 7, len)))
        .collect();
    let mut tags = vec![String::new(); parts.len()];
    for number in [2u32, 0, 1] {
        if number == 1 {
            // A part written again replaces the first attempt.
            store
                .put_part(&path, &upload, 1, Bytes::from(pattern(99, part_size)))
                .await
                .unwrap_or_else(|e| panic!("put_part 1 (first attempt): {e}"));
        }
        let body = parts[number as usize].clone();
        tags[number as usize] = store
            .put_part(&path, &upload, number, body)
            .await
            .unwrap_or_else(|e| panic!("put_part {number}: {e}"));
    }
    expect_kind(
        "head before completion",
        store.head(&path).await,
        ErrorKind::NotFound,
    );
    let listed = store
        .list(&at, None, 10)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert!(listed.objects.is_empty(), "{:?}", listed.objects);
    let meta = store
        .complete_upload(&path, &upload, &tags)
        .await
        .unwrap_or_else(|e| panic!("complete_upload: {e}"));
    assert_eq!(meta.size, sizes.iter().sum::<usize>() as u64);
    let expected: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    assert!(
        content(&*store, &path).await == expected,
        "the parts in order"
    );

    let abandoned = format!("{at}abandoned.bin");
    let upload = store
        .create_upload(&abandoned, part_size as u64, None)
        .await
        .unwrap_or_else(|e| panic!("create_upload: {e}"));
    store
        .put_part(&abandoned, &upload, 0, Bytes::from(pattern(3, part_size)))
        .await
        .unwrap_or_else(|e| panic!("put_part: {e}"));
    store
        .abort_upload(&abandoned, &upload)
        .await
        .unwrap_or_else(|e| panic!("abort_upload: {e}"));
    expect_kind(
        "head of an aborted upload",
        store.head(&abandoned).await,
        ErrorKind::NotFound,
    );
    let listed = store
        .list(&at, None, 10)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let paths: Vec<&str> = listed.objects.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, [path.as_str()]);
}

/// Presigning works exactly when the capabilities say so.
pub async fn presign_matches_capabilities(store: Arc<dyn StorageProvider>) {
    let path = format!("{}signed.txt", scope("presign"));
    let expires = Duration::from_secs(300);
    for method in [PresignMethod::Get, PresignMethod::Put] {
        let signed = store.presign(method, &path, expires).await;
        if store.capabilities().presign {
            let url = signed.unwrap_or_else(|e| panic!("presign {method:?}: {e}"));
            assert!(url.starts_with("http"), "{url}");
        } else {
            expect_error(
                "presign without the capability",
                signed,
                ErrorCode::Unsupported,
            );
        }
    }
}

/// Runs the read checks against a store seeded by `seeder` (see the module docs).
#[macro_export]
macro_rules! storage_read_conformance {
    ($make:expr) => {
        $crate::storage_read_conformance!(@checks $make;
            get_head_and_ranges,
            list_paginates_in_path_order,
            unicode_and_spaces_in_names,
            deletes_and_usage,
        );
    };
    (@checks $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let make = $make;
                let made: Option<(
                    ::std::sync::Arc<dyn $crate::ports::StorageProvider>,
                    ::std::sync::Arc<dyn $crate::testing::storage::Seeder>,
                )> = make().await;
                if let Some((store, seeder)) = made {
                    $crate::testing::storage::$check(store, seeder).await;
                }
            }
        )+
    };
}

/// Runs every check against a writable store (`None` from `$make` skips the suite).
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        mod read_checks {
            #[allow(unused_imports)]
            use super::*;
            $crate::storage_read_conformance!(|| async {
                let make = $make;
                let store: Option<::std::sync::Arc<dyn $crate::ports::StorageProvider>> =
                    make().await;
                store.map(|s| {
                    let seeder: ::std::sync::Arc<dyn $crate::testing::storage::Seeder> =
                        ::std::sync::Arc::new($crate::testing::storage::PutSeeder(s.clone()));
                    (s, seeder)
                })
            });
        }
        $crate::storage_conformance!(@checks $make;
            put_overwrite_and_bad_paths,
            multipart_64_mib,
            conditional_create,
            concurrent_writers_to_one_key,
            copy_is_independent,
            failed_upload_leaves_nothing,
            uploads_in_parts,
            presign_matches_capabilities,
        );
    };
    (@checks $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let make = $make;
                let store: Option<::std::sync::Arc<dyn $crate::ports::StorageProvider>> =
                    make().await;
                if let Some(store) = store {
                    $crate::testing::storage::$check(store).await;
                }
            }
        )+
    };
}

/// Runs every check of the suite on `store`, one after the other, read checks seeded through
/// the store's own `put`; returns the names of the checks, all of which held (a check that
/// does not hold panics, saying what). For a program (an example, a smoke test) rather than a
/// test harness, where [`storage_conformance!`](crate::storage_conformance) is the way.
pub async fn run_all(store: Arc<dyn StorageProvider>) -> Vec<&'static str> {
    let seed: Arc<dyn Seeder> = Arc::new(PutSeeder(store.clone()));
    let mut held = Vec::new();
    macro_rules! run {
        ($($check:ident($($arg:expr),*);)+) => {$(
            $check($($arg.clone()),*).await;
            held.push(stringify!($check));
        )+};
    }
    run! {
        get_head_and_ranges(store, seed);
        list_paginates_in_path_order(store, seed);
        unicode_and_spaces_in_names(store, seed);
        deletes_and_usage(store, seed);
        put_overwrite_and_bad_paths(store);
        multipart_64_mib(store);
        conditional_create(store);
        concurrent_writers_to_one_key(store);
        copy_is_independent(store);
        failed_upload_leaves_nothing(store);
        uploads_in_parts(store);
        presign_matches_capabilities(store);
    }
    held
}
