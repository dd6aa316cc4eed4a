//! Helpers for tests that need a real database (feature `testing`).
//!
//! PostgreSQL tests read the server from `ONMEMOS_TEST_POSTGRES_URL` (`scripts/test.sh` starts
//! one and sets it). Each call makes a fresh database on it. Without the variable, tests are
//! skipped loudly on a developer machine and fail in CI (`CI` set), so they never skip there.

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "ONMEMOS_TEST_POSTGRES_URL";

/// The URL of a new, empty database on the test PostgreSQL server, or `None` (after saying so
/// on stderr) when no server is configured outside CI.
///
/// # Panics
/// In CI when the variable is unset, and when the server cannot create a database: a test
/// that cannot reach its database must fail, not pass.
#[cfg(feature = "postgres")]
pub async fn fresh_postgres_url() -> Option<String> {
    use sqlx::Connection;

    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Some(admin_url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{POSTGRES_URL_VAR} is not set: in CI the PostgreSQL tests must run (scripts/test.sh starts a server)"
            );
        }
        eprintln!(
            "SKIPPED: PostgreSQL test without a server; run scripts/test.sh, or set {POSTGRES_URL_VAR}=postgres://…"
        );
        return None;
    };
    let name = format!(
        "onmemos_t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros()
    );
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let _ = conn.close().await;
    Some(replace_database(&admin_url, &name))
}

/// `url` pointing at database `name` instead.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The live processes (zombies excluded) that carry the `LocalCompute` marker of `session`
/// (`ONMEMOS_SESSION=<session>@…`), read from `/proc`: what must be empty once it stopped.
pub fn session_processes(session: &str) -> Vec<i32> {
    let marker = format!("ONMEMOS_SESSION={session}@");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            if stat.rsplit_once(')')?.1.trim_start().starts_with('Z') {
                return None;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|v| v.starts_with(marker.as_bytes()))
                .then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        use super::replace_database as r;
        assert_eq!(r("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(
            r("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(r("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
