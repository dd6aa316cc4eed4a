//! The local store against a tree that a session has filled with links, FIFOs, odd names and
//! deep directories: nothing outside a workspace is read, written, counted or deleted, and
//! nothing blocks. Every check runs with both resolvers.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use onmemos_core::ErrorKind;
use onmemos_core::ports::StorageProvider;
use onmemos_core::ports::storage::{GetOptions, PutOptions};
use onmemos_core::testing::storage::bytes_stream;

use super::LocalStorage;
use super::tree::Resolver;

const RESOLVERS: [Resolver; 2] = [Resolver::Openat2, Resolver::PerComponent];

fn store(dir: &Path, resolver: Resolver) -> LocalStorage {
    LocalStorage::open_with(dir, resolver).unwrap_or_else(|e| panic!("open: {e}"))
}

fn write(path: &Path, body: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
    }
    std::fs::write(path, body).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

fn link(target: impl AsRef<Path>, at: &Path) {
    std::os::unix::fs::symlink(target.as_ref(), at)
        .unwrap_or_else(|e| panic!("symlink {at:?}: {e}"));
}

async fn read(store: &LocalStorage, path: &str) -> onmemos_core::Result<Vec<u8>> {
    let got = store.get(path, GetOptions::default()).await?;
    let chunks: Vec<Bytes> = got.body.try_collect().await?;
    Ok(chunks.concat())
}

fn kind<T>(result: onmemos_core::Result<T>) -> Option<ErrorKind> {
    result.err().map(|e| e.kind())
}

/// A root with two workspaces, `a` (the attacker's, full of plants) and `b` (the victim's), a
/// secret beside the root, and what the attacker's session planted.
struct Planted {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    secret: std::path::PathBuf,
}

fn planted() -> Planted {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path().join("storage");
    let secret = dir.path().join("onmemos.db");
    write(&secret, b"every key digest");
    write(&root.join("workspaces/b/secret.txt"), b"b's secret");
    write(&root.join("workspaces/b/dir/deep.txt"), b"b's deep file");
    let a = root.join("workspaces/a");
    write(&a.join("mine.txt"), b"a's own");
    link("../b", &a.join("victim"));
    link("..", &a.join("all"));
    link(&secret, &a.join("db"));
    link(&secret, &a.join("db-file"));
    std::fs::create_dir_all(a.join("sub")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    link("../../b/dir", &a.join("sub/through"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        a.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    Planted {
        _dir: dir,
        root,
        secret,
    }
}

fn victim_intact(p: &Planted) {
    let b = p.root.join("workspaces/b");
    assert_eq!(
        std::fs::read(b.join("secret.txt")).ok().as_deref(),
        Some(&b"b's secret"[..])
    );
    assert_eq!(
        std::fs::read(b.join("dir/deep.txt")).ok().as_deref(),
        Some(&b"b's deep file"[..])
    );
    let mut names: Vec<_> = std::fs::read_dir(&b)
        .unwrap_or_else(|e| panic!("read_dir: {e}"))
        .map(|e| e.map(|e| e.file_name()).unwrap_or_default())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dir", "secret.txt"],
        "nothing was added to the victim"
    );
    assert_eq!(
        std::fs::read(&p.secret).ok().as_deref(),
        Some(&b"every key digest"[..])
    );
}

#[tokio::test]
async fn links_planted_in_a_workspace_are_never_followed() {
    for resolver in RESOLVERS {
        let p = planted();
        let s = store(&p.root, resolver);
        // Reads through every plant are missing objects.
        for path in [
            "workspaces/a/victim/secret.txt",
            "workspaces/a/all/b/secret.txt",
            "workspaces/a/db",
            "workspaces/a/sub/through/deep.txt",
            "workspaces/a/victim",
        ] {
            assert_eq!(
                kind(read(&s, path).await),
                Some(ErrorKind::NotFound),
                "{resolver:?} get {path}"
            );
            assert_eq!(
                kind(s.head(path).await),
                Some(ErrorKind::NotFound),
                "{resolver:?} head {path}"
            );
            let copied = s.copy(path, "workspaces/a/copied").await;
            assert_eq!(
                kind(copied),
                Some(ErrorKind::NotFound),
                "{resolver:?} copy {path}"
            );
        }
        // Writes through a link on the way are refused, and create nothing in the victim.
        for path in [
            "workspaces/a/victim/new.txt",
            "workspaces/a/all/b/new.txt",
            "workspaces/a/sub/through/new.txt",
        ] {
            let put = s
                .put(
                    path,
                    bytes_stream(vec![Bytes::from_static(b"x")]),
                    PutOptions::default(),
                )
                .await;
            assert_eq!(
                kind(put),
                Some(ErrorKind::Conflict),
                "{resolver:?} put {path}"
            );
            let upload = s
                .create_upload(path, 1, None)
                .await
                .unwrap_or_else(|e| panic!("create_upload: {e}"));
            let completed = s.complete_upload(path, &upload, &[]).await;
            assert_eq!(
                kind(completed),
                Some(ErrorKind::Conflict),
                "{resolver:?} complete {path}"
            );
        }
        // A put at a link's own name replaces the link, never what it points at.
        s.put(
            "workspaces/a/db",
            bytes_stream(vec![Bytes::from_static(b"mine now")]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put over a link: {e}"));
        assert_eq!(
            read(&s, "workspaces/a/db").await.ok().as_deref(),
            Some(&b"mine now"[..])
        );
        // Deletes through a link remove nothing behind it.
        for path in [
            "workspaces/a/victim/secret.txt",
            "workspaces/a/sub/through/deep.txt",
        ] {
            s.delete(path)
                .await
                .unwrap_or_else(|e| panic!("delete {path}: {e}"));
        }
        victim_intact(&p);
        // Listing and usage see the workspace's own regular files only.
        let listed = s
            .list("workspaces/a/", None, 100)
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        let paths: Vec<&str> = listed.objects.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            ["workspaces/a/db", "workspaces/a/mine.txt"],
            "{resolver:?}"
        );
        let usage = s
            .usage_bytes("workspaces/a/")
            .await
            .unwrap_or_else(|e| panic!("usage: {e}"));
        assert_eq!(usage, 8 + 7, "{resolver:?}");
        // Deleting the workspace removes its links, not their targets.
        let removed = s
            .delete_prefix("workspaces/a/")
            .await
            .unwrap_or_else(|e| panic!("delete_prefix: {e}"));
        assert_eq!(removed, 2, "{resolver:?}: db and mine.txt");
        assert!(
            !p.root.join("workspaces/a").exists(),
            "{resolver:?}: the workspace is gone"
        );
        victim_intact(&p);
    }
}

#[tokio::test]
async fn a_fifo_or_a_directory_is_no_object_and_nothing_blocks() {
    for resolver in RESOLVERS {
        let p = planted();
        let s = store(&p.root, resolver);
        let got =
            tokio::time::timeout(Duration::from_secs(30), read(&s, "workspaces/a/pipe")).await;
        let got = got.unwrap_or_else(|_| panic!("{resolver:?}: reading a FIFO blocked"));
        assert_eq!(kind(got), Some(ErrorKind::NotFound), "{resolver:?}");
        assert_eq!(
            kind(s.head("workspaces/a/sub").await),
            Some(ErrorKind::NotFound)
        );
        // A put cannot replace a directory of objects.
        let put = s
            .put(
                "workspaces/b/dir",
                bytes_stream(vec![Bytes::from_static(b"x")]),
                PutOptions::default(),
            )
            .await;
        assert_eq!(kind(put), Some(ErrorKind::Conflict), "{resolver:?}");
        victim_intact(&p);
    }
}

#[tokio::test]
async fn names_that_are_not_utf8_count_and_go_but_are_not_listed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let s = store(dir.path(), Resolver::detect());
    let ws = dir.path().join("workspaces/w");
    write(&ws.join("ok.txt"), b"12345");
    write(
        &ws.join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        &[0; 1000],
    );
    let usage = s
        .usage_bytes("workspaces/w/")
        .await
        .unwrap_or_else(|e| panic!("usage: {e}"));
    assert_eq!(usage, 1005, "every byte stored counts against the quota");
    let listed = s
        .list("workspaces/w/", None, 10)
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(listed.objects.len(), 1);
    assert_eq!(s.delete_prefix("workspaces/w/").await.ok(), Some(2));
    assert!(!ws.exists());
}

#[tokio::test]
async fn a_tree_deeper_than_the_open_directories_is_walked_whole() {
    for resolver in RESOLVERS {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let s = store(dir.path(), resolver);
        let mut path = dir.path().join("workspaces/w");
        let mut expected = Vec::new();
        for depth in 0..100 {
            path.push(format!("d{depth:03}"));
            if depth % 10 == 9 {
                write(&path.join("f"), b"abc");
                let rel = path
                    .strip_prefix(dir.path())
                    .unwrap_or_else(|e| panic!("{e}"));
                expected.push(format!("{}/f", rel.display()));
            }
        }
        // A sibling after the deep branch, reached only by climbing back up through `..`.
        write(&dir.path().join("workspaces/w/z.txt"), b"z");
        expected.push("workspaces/w/z.txt".to_owned());
        expected.sort();
        let usage = s
            .usage_bytes("workspaces/w/")
            .await
            .unwrap_or_else(|e| panic!("usage: {e}"));
        assert_eq!(usage, 10 * 3 + 1, "{resolver:?}");
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .list("workspaces/w/", after.as_deref(), 3)
                .await
                .unwrap_or_else(|e| panic!("list: {e}"));
            listed.extend(page.objects.into_iter().map(|o| o.path));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            listed, expected,
            "{resolver:?}: in path order, across pages"
        );
        let removed = s
            .delete_prefix("workspaces/w/")
            .await
            .unwrap_or_else(|e| panic!("delete: {e}"));
        assert_eq!(removed, 11, "{resolver:?}");
        assert!(!dir.path().join("workspaces/w").exists(), "{resolver:?}");
    }
}

#[tokio::test]
async fn errors_never_name_a_path_of_the_server() {
    let p = planted();
    let s = store(&p.root, Resolver::detect());
    let root = p.root.display().to_string();
    write(&p.root.join("workspaces/a/file"), b"");
    let errors = [
        s.put(
            "workspaces/a/file/under",
            bytes_stream(vec![]),
            PutOptions::default(),
        )
        .await
        .err(),
        s.head("workspaces/a/victim/secret.txt").await.err(),
        s.put(
            "workspaces/a/x",
            bytes_stream(vec![]),
            PutOptions {
                if_absent: true,
                ..Default::default()
            },
        )
        .await
        .err()
        .and(None),
        s.create_upload("workspaces/a/huge", u64::MAX, None)
            .await
            .err(),
    ];
    let mut seen = 0;
    for e in errors.into_iter().flatten() {
        seen += 1;
        assert!(!e.message().contains(&root), "{e}");
        assert!(!e.message().contains("/tmp"), "{e}");
    }
    assert_eq!(seen, 3);
    // The refused upload left nothing in the staging area.
    let staged = std::fs::read_dir(p.root.join(".onmemos-staging/uploads"))
        .unwrap_or_else(|e| panic!("read_dir: {e}"))
        .count();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn the_conformance_suite_holds_with_either_resolver() {
    for resolver in RESOLVERS {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let s = std::sync::Arc::new(store(dir.path(), resolver));
        let held = onmemos_core::testing::storage::run_all(s).await;
        assert!(held.len() >= 12, "{resolver:?}: {held:?}");
    }
}

#[tokio::test]
async fn the_etag_a_put_returns_is_the_one_reads_see() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let s = store(dir.path(), Resolver::detect());
    let body = vec![
        Bytes::from(vec![7u8; 3_000_000]),
        Bytes::from_static(b"tail"),
    ];
    let put = s
        .put("w/a.bin", bytes_stream(body), PutOptions::default())
        .await
        .unwrap_or_else(|e| panic!("put: {e}"));
    let head = s
        .head("w/a.bin")
        .await
        .unwrap_or_else(|e| panic!("head: {e}"));
    assert_eq!(put, head);
    let upload = s
        .create_upload("w/b.bin", 5, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.put_part("w/b.bin", &upload, 0, Bytes::from_static(b"hello"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = s
        .complete_upload("w/b.bin", &upload, &["0".into()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Some(done), s.head("w/b.bin").await.ok());
}

/// Temporary files are named by the store, not after the object: a segment of the longest
/// length a file system allows is stored like any other.
#[tokio::test]
async fn segments_of_254_and_255_bytes_are_stored() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let s = store(dir.path(), Resolver::detect());
    for len in [254, 255] {
        let path = format!("w/{}", "n".repeat(len));
        s.put(
            &path,
            bytes_stream(vec![Bytes::from_static(b"long")]),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(
            read(&s, &path).await.ok().as_deref(),
            Some(&b"long"[..]),
            "{len}"
        );
        let upload = s
            .create_upload(&path, 2, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.put_part(&path, &upload, 0, Bytes::from_static(b"up"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.complete_upload(&path, &upload, &["0".into()])
            .await
            .unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(
            read(&s, &path).await.ok().as_deref(),
            Some(&b"up"[..]),
            "{len}"
        );
    }
}
