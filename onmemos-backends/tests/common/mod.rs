//! Helpers shared by the engine-level tests of this crate.
#![allow(dead_code)]

use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::api::{CreateUser, CreateWorkspace, PageRequest};
use onmemos_core::id::{UserId, WorkspaceId};
use onmemos_core::model::{
    GrantSource, LedgerOp, MicroCredits, Transfer, TransferId, TransferKind,
};
use onmemos_core::ports::Database;
use onmemos_core::{Engine, Principal};

/// A fresh SQLite database, and a fresh PostgreSQL one when a server is configured.
pub async fn databases() -> Vec<(&'static str, SqlDatabase)> {
    let dir = tempfile::tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"))
        .keep();
    let mut dbs = vec![(
        "sqlite",
        SqlDatabase::open(&format!("sqlite://{}", dir.join("s.db").display()))
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}")),
    )];
    if let Some(url) = fresh_postgres_url().await {
        dbs.push((
            "postgres",
            SqlDatabase::open(&url)
                .await
                .unwrap_or_else(|e| panic!("postgres: {e}")),
        ));
    }
    dbs
}

/// A new member with a workspace named `workspace` and `credits` micro-credits.
pub async fn member_with_workspace(
    engine: &Engine,
    workspace: &str,
    credits: MicroCredits,
) -> (Principal, WorkspaceId) {
    let created = engine
        .users()
        .bootstrap(CreateUser {
            email: format!("{}@example.com", WorkspaceId::new()),
            name: None,
            role: None,
        })
        .await
        .unwrap_or_else(|e| panic!("user: {e}"));
    let user = Principal::for_user(&created.user);
    let id = engine
        .workspaces()
        .create(
            &user,
            CreateWorkspace {
                name: workspace.into(),
                description: None,
                env: Default::default(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"))
        .id;
    grant(engine, user.user_id(), credits).await;
    (user, id)
}

/// Grants `amount` purchased micro-credits to `user` (nothing when it is 0).
pub async fn grant(engine: &Engine, user: UserId, amount: MicroCredits) {
    if amount == 0 {
        return;
    }
    engine
        .credits()
        .execute(&LedgerOp::Grant {
            id: TransferId::random("grant"),
            user,
            amount,
            source: GrantSource::Purchase,
            priority: 0,
            expires_at: None,
            reference: None,
        })
        .await
        .unwrap_or_else(|e| panic!("grant: {e}"));
}

/// Every post in the ledger, oldest first.
pub async fn all_posts(db: &dyn Database) -> Vec<Transfer> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .ledger()
            .transfers(
                None,
                Some(TransferKind::Post),
                PageRequest { limit: 200, after },
            )
            .await
            .unwrap_or_else(|e| panic!("transfers: {e}"));
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => after = c.parse().ok(),
            None => return all,
        }
    }
}

/// Checks that `user` has nothing held and paid exactly `paid`.
pub async fn check_paid(db: &dyn Database, user: UserId, paid: MicroCredits) {
    let balance = db
        .ledger()
        .balance(user)
        .await
        .unwrap_or_else(|e| panic!("balance: {e}"));
    assert_eq!(
        balance.counters.debits_pending, 0,
        "a hold outlived the session"
    );
    assert_eq!(balance.counters.debits_posted, paid, "what the user paid");
}

/// The kinds of a session's events, oldest first.
pub async fn event_kinds(
    engine: &Engine,
    user: &Principal,
    id: onmemos_core::id::SessionId,
) -> Vec<onmemos_core::model::SessionEventKind> {
    engine
        .sessions()
        .events(user, id, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("events: {e}"))
        .into_iter()
        .map(|e| e.kind)
        .collect()
}
