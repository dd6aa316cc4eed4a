//! Authenticated keys are served from memory, and a revocation still takes effect within a
//! second on every replica: two engines over one PostgreSQL (and a revocation on the replica
//! that serves the key, which takes effect at once).
#![cfg(all(feature = "sqlite", feature = "postgres", feature = "testing"))]

use std::sync::Arc;

use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::api::{CreateApiKey, CreateUser, ErrorCode};
use onmemos_core::auth_cache::MAX_STALENESS;
use onmemos_core::model::Role;
use onmemos_core::ports::Database;
use onmemos_core::{Engine, Principal};

async fn replica(url: &str) -> Engine {
    let db: Arc<dyn Database> = Arc::new(
        SqlDatabase::open(url)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    Engine::builder(db)
        .build()
        .await
        .unwrap_or_else(|e| panic!("engine: {e}"))
}

/// The first admin of `engine` (bootstrapped).
async fn admin_of(engine: &Engine) -> onmemos_core::api::CreatedUser {
    engine
        .users()
        .bootstrap(CreateUser {
            email: "root@example.com".into(),
            name: None,
            role: Some(Role::Admin),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn code_of(engine: &Engine, secret: &str) -> Option<ErrorCode> {
    engine
        .api_keys()
        .authenticate(secret)
        .await
        .err()
        .map(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_stops_working_on_the_other_within_a_second() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let admin = admin_of(&a).await;
    let root: Principal = a
        .api_keys()
        .authenticate(&admin.api_key.secret)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created = a
        .api_keys()
        .create(
            &root,
            CreateApiKey {
                name: "short-lived".into(),
                scopes: None,
                expires_at: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let secret = created.secret.clone();
    // Both replicas authenticate it (A keeps it in memory).
    for engine in [&a, &b] {
        assert_eq!(code_of(engine, &secret).await, None);
    }
    // B revokes it: at once on B, within a second on A.
    b.api_keys()
        .revoke(
            &b.api_keys()
                .authenticate(&admin.api_key.secret)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            created.key.id,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code_of(&b, &secret).await, Some(ErrorCode::ApiKeyRevoked));
    // Once an epoch read made after the revocation is the one A trusts, A refuses it: wait
    // past the longest an earlier read vouches for.
    tokio::time::sleep(MAX_STALENESS).await;
    assert_eq!(code_of(&a, &secret).await, Some(ErrorCode::ApiKeyRevoked));
    // The admin's own key still works on both (only its revoked key is refused).
    for engine in [&a, &b] {
        assert_eq!(code_of(engine, &admin.api_key.secret).await, None);
    }
    // An unknown key is never served from memory.
    let other = onmemos_core::passport::Secret::generate();
    assert_eq!(
        code_of(&a, other.expose()).await,
        Some(ErrorCode::InvalidApiKey)
    );
}

#[tokio::test]
async fn uses_of_a_key_reach_the_database_in_batches() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let a = replica(&url).await;
    let admin = admin_of(&a).await;
    a.api_keys()
        .authenticate(&admin.api_key.secret)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The monitor's pass writes what is pending.
    let mut report = onmemos_core::monitor::PassReport::default();
    a.monitor()
        .tick_due(a.clock().now(), &mut report)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stored = a
            .database()
            .api_keys()
            .get(admin.user.id, admin.api_key.key.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|k| k.last_used_at);
        if stored.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the use never reached the database"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
