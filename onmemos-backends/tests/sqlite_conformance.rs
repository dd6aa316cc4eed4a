//! The `Database` conformance suite on SQLite: each check gets a fresh database file.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

use onmemos_backends::db::sqlite::SqliteDatabase;
use onmemos_core::ports::Database;

async fn fresh() -> Arc<dyn Database> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("conformance.db");
    // Keep the directory for the life of the test process.
    std::mem::forget(dir);
    let db = SqliteDatabase::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_or_else(|e| panic!("open SQLite: {e}"));
    Arc::new(db)
}

onmemos_core::database_conformance!(|| fresh());

#[tokio::test]
async fn in_memory_database_also_conforms() {
    let db: Arc<dyn Database> = Arc::new(
        SqliteDatabase::open("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    );
    onmemos_core::testing::database::workspaces_crud_and_owner_scoping(db.clone()).await;
    onmemos_core::testing::database::templates_visibility_filters_and_builtins(db).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("re.db").display());
    let db = SqliteDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    onmemos_core::testing::database::users_round_trip_and_unique_email(Arc::new(db.clone())).await;
    let before = db.users().count().await.unwrap_or_default();
    db.close().await;
    let again = SqliteDatabase::open(&url)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(again.users().count().await.ok(), Some(before));
    assert!(before > 0);
}

#[tokio::test]
async fn unknown_scheme_and_disabled_feature_are_configuration_errors() {
    let err = onmemos_backends::db::connect("mysql://x").await.err();
    assert_eq!(
        err.as_ref().map(|e| e.kind()),
        Some(onmemos_core::ErrorKind::Configuration)
    );
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("mysql")
    );
    let err = onmemos_backends::db::connect("postgres://localhost/x")
        .await
        .err();
    assert!(
        err.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("`postgres` feature")
    );
}
