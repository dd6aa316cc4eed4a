//! Helpers for tests that need real services (feature `testing`).
//!
//! Tests read each service from a variable that `scripts/test.sh` sets after starting it:
//! PostgreSQL from `ONMEMOS_TEST_POSTGRES_URL` (each call makes a fresh database on it), S3
//! (moto) from `ONMEMOS_TEST_S3_ENDPOINT`, Azure Blob (Azurite) from
//! `ONMEMOS_TEST_AZURE_ENDPOINT` and GCS (fake-gcs-server) from `ONMEMOS_TEST_GCS_ENDPOINT`, each
//! with a bucket or container `onmemos-test`. Without the variable, tests are skipped loudly on
//! a developer machine and fail in CI (`CI` set), so they never skip there.

/// The variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "ONMEMOS_TEST_POSTGRES_URL";

/// The value of `var`, naming a test service: `None` (after saying so on stderr) when it is
/// unset outside CI.
///
/// # Panics
/// In CI when the variable is unset: there the suites that need the service never skip.
pub fn service_url(var: &str, service: &str, example: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|u| !u.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var_os("CI").is_some() => panic!(
            "{var} is not set: in CI the {service} tests must run (scripts/test.sh starts the service)"
        ),
        None => {
            eprintln!(
                "SKIPPED: {service} test without a server; run scripts/test.sh (it installs and starts one), or set {var}={example}"
            );
            None
        }
    }
}

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
    let admin_url = service_url(POSTGRES_URL_VAR, "PostgreSQL", "postgres://…")?;
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

/// The bucket (or container) the test script creates on each object-store emulator.
pub const TEST_BUCKET: &str = "onmemos-test";

/// The variable naming the S3 endpoint (moto) for tests.
pub const S3_ENDPOINT_VAR: &str = "ONMEMOS_TEST_S3_ENDPOINT";
/// The variable naming the Azure Blob endpoint (Azurite, with the account in its path).
pub const AZURE_ENDPOINT_VAR: &str = "ONMEMOS_TEST_AZURE_ENDPOINT";
/// The variable naming the GCS endpoint (fake-gcs-server) for tests.
pub const GCS_ENDPOINT_VAR: &str = "ONMEMOS_TEST_GCS_ENDPOINT";
/// The well-known key of Azurite's development account `devstoreaccount1`.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The URL and options of a fresh prefix of the test bucket on the emulator of `scheme`
/// (`s3`, `az` or `gs`), or `None` when it is not configured outside CI.
pub fn emulator_store(scheme: &str) -> Option<(String, crate::storage::StorageOptions)> {
    let (var, service, example) = match scheme {
        "s3" => (S3_ENDPOINT_VAR, "S3 (moto)", "http://127.0.0.1:PORT"),
        "az" => (
            AZURE_ENDPOINT_VAR,
            "Azure Blob (Azurite)",
            "http://127.0.0.1:PORT/devstoreaccount1",
        ),
        _ => (
            GCS_ENDPOINT_VAR,
            "GCS (fake-gcs-server)",
            "http://127.0.0.1:PORT",
        ),
    };
    let endpoint = service_url(var, service, example)?;
    let options: &[(&str, &str)] = match scheme {
        "s3" => &[
            ("endpoint", &endpoint),
            ("allow_http", "true"),
            ("region", "us-east-1"),
            ("access_key_id", "test"),
            ("secret_access_key", "test"),
            ("virtual_hosted_style_request", "false"),
        ],
        "az" => &[
            ("endpoint", &endpoint),
            ("allow_http", "true"),
            ("account_name", "devstoreaccount1"),
            ("access_key", AZURITE_KEY),
        ],
        _ => &[
            ("base_url", &endpoint),
            (
                "service_account_key",
                r#"{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
            ),
        ],
    };
    let prefix = uuid::Uuid::now_v7().simple();
    Some((
        format!("{scheme}://{TEST_BUCKET}/t{prefix}"),
        options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    ))
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

/// Running sessions seeded straight into a database, as the session service would leave them
/// after starting them (no compute behind them): for billing simulations and benchmarks.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The sessions, in the order they were made.
    pub sessions: Vec<onmemos_core::model::SessionRecord>,
    /// Their owners.
    pub users: Vec<onmemos_core::id::UserId>,
}

/// Seeds `n` running sessions started at `t0`, `per_user` to an owner (each owner with one
/// workspace and a grant far larger than they will spend), each with its first hold placed
/// for `window` and its first check due at `t0 + interval`. Rates vary from session to
/// session. Sessions belong to node `node`.
///
/// # Errors
/// What the database answers when a write fails.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub async fn seed_fleet(
    db: &crate::db::SqlDatabase,
    n: usize,
    per_user: usize,
    t0: chrono::DateTime<chrono::Utc>,
    interval: chrono::Duration,
    window: chrono::Duration,
    node: &str,
) -> onmemos_core::Result<Fleet> {
    use onmemos_core::id::{SessionId, TemplateId, UserId, WorkspaceId};
    use onmemos_core::model::{
        GrantSource, LedgerOp, Placement, Resources, Role, Session, SessionLimits, SessionRecord,
        SessionStatus, Template, TemplateCategory, User, Workspace, cost_of,
    };
    use onmemos_core::ports::Database;

    let per_user = per_user.max(1);
    let owners = n.div_ceil(per_user);
    let mut users = Vec::with_capacity(owners);
    let mut workspaces = Vec::with_capacity(owners);
    for i in 0..owners {
        let user = User {
            id: UserId::new(),
            email: format!("fleet-{i}-{}@fleet.test", UserId::new()),
            name: None,
            role: Role::Member,
            created_at: t0,
        };
        db.users().insert(&user, None).await?;
        let workspace = Workspace {
            id: WorkspaceId::new(),
            owner_id: user.id,
            name: format!("fleet-{i}"),
            description: None,
            env: Default::default(),
            created_at: t0,
            updated_at: t0,
        };
        db.workspaces().insert(&workspace).await?;
        users.push(user.id);
        workspaces.push(workspace.id);
    }
    let resources = Resources {
        cpu_millis: 1000,
        memory_mib: 1024,
        gpu: 0,
        disk_gib: 10,
    };
    let limits = SessionLimits {
        max_duration_secs: 30 * 86_400,
        max_cost_micros: 1_000_000_000_000,
        idle_timeout_secs: 30 * 86_400,
    };
    let template = Template {
        id: TemplateId::new(),
        name: format!("fleet-{}", TemplateId::new().to_string().to_lowercase()),
        owner_id: users.first().copied(),
        builtin: false,
        description: None,
        category: TemplateCategory::Custom,
        image: "fleet".into(),
        resources,
        env: Default::default(),
        default_limits: limits,
        tags: Vec::new(),
        expected_start_ms: 0,
        usage_count: 0,
        created_at: t0,
    };
    db.templates().insert(&template).await?;
    let grants: Vec<LedgerOp> = users
        .iter()
        .map(|&user| LedgerOp::Grant {
            id: onmemos_core::model::TransferId::random("fleet-grant"),
            user,
            amount: 1_000_000_000_000,
            source: GrantSource::Purchase,
            priority: 10,
            expires_at: None,
            reference: None,
        })
        .collect();
    for chunk in grants.chunks(2000) {
        for outcome in db.ledger().apply_batch(chunk, t0).await? {
            outcome?;
        }
    }
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let owner = i / per_user;
        let rate = 40_000 + (i as i64 % 97) * 1_013;
        let id = SessionId::new();
        sessions.push(SessionRecord {
            session: Session {
                id,
                workspace_id: workspaces[owner],
                owner_id: users[owner],
                template_id: template.id,
                status: SessionStatus::Running,
                limits,
                placement: Placement::OnDemand,
                resources,
                rate_micros_per_hour: rate,
                cost_micros: 0,
                stop_reason: None,
                failure: None,
                created_at: t0,
                started_at: Some(t0),
                stopped_at: None,
                last_activity_at: t0,
            },
            node: node.to_owned(),
            version: 1,
            tick: 0,
            hold: Some(onmemos_core::services::step_id(id, "hold", 0)),
            billed_ms: 0,
            covered_until: Some(t0 + window),
            next_check_at: Some(t0 + interval),
            warned: 0,
        });
    }
    let holds: Vec<LedgerOp> = sessions
        .iter()
        .map(|r| LedgerOp::Hold {
            id: onmemos_core::services::step_id(r.session.id, "hold", 0),
            user: r.session.owner_id,
            amount: cost_of(r.session.rate_micros_per_hour, window.num_milliseconds()),
            timeout_at: t0 + window + window,
            reference: Some(format!("session {}", r.session.id)),
        })
        .collect();
    for chunk in holds.chunks(4000) {
        for outcome in db.ledger().apply_batch(chunk, t0).await? {
            outcome?;
        }
    }
    db.insert_sessions(&sessions).await?;
    // Planner statistics, as autovacuum keeps them on a PostgreSQL that has been running: a
    // fleet measured straight after seeding would be planned as if its tables were empty.
    if db.dialect() == crate::db::Dialect::Postgres {
        sqlx::query("ANALYZE")
            .execute(db.writer())
            .await
            .map_err(|e| {
                onmemos_core::Error::internal("analyze the seeded fleet").with_source(e)
            })?;
    }
    Ok(Fleet { sessions, users })
}
