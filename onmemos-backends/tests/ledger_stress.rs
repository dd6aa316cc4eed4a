//! The ledger under random load, on SQLite and PostgreSQL.
//!
//! - Model check: one seeded sequence of operations applied to the in-memory reference ledger,
//!   SQLite and PostgreSQL gives the same answer at every step, errors included.
//! - Concurrency: 64 clients, 100,000 mixed operations (grants, holds, full and partial posts,
//!   voids, expiries, replays), then: money conserved, no negative balance, zero drift between
//!   counters and transfers, exactly one transfer per id, every acknowledged transfer stored.
//!   Also with the clients split over two replicas sharing one PostgreSQL.
//! - Group commit: operations submitted together keep their own outcomes.
//!
//! Both print their seed; `ONMEMOS_SEED=<n>` replays a run.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use onmemos_core::id::UserId;
use onmemos_core::ledger::{ReferenceLedger, reconcile};
use onmemos_core::model::{
    GrantSource, LedgerOp, MicroCredits, Role, Transfer, TransferId, TransferKind, User,
};
use onmemos_core::ports::{Database, LedgerRepo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    let seed = std::env::var("ONMEMOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed: {seed} (replay with ONMEMOS_SEED={seed})");
    seed
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

async fn sqlite() -> SqlDatabase {
    let dir = tempfile::tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"))
        .keep();
    SqlDatabase::open(&format!("sqlite://{}", dir.join("ledger.db").display()))
        .await
        .unwrap_or_else(|e| panic!("sqlite: {e}"))
}

async fn postgres() -> Option<SqlDatabase> {
    let url = fresh_postgres_url().await?;
    Some(
        SqlDatabase::open(&url)
            .await
            .unwrap_or_else(|e| panic!("postgres: {e}")),
    )
}

async fn users(dbs: &[&SqlDatabase], n: usize) -> Vec<UserId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = UserId::new();
        let u = User {
            id,
            email: format!("u{i}-{}@stress.test", id.as_uuid().simple()),
            name: None,
            role: Role::Member,
            created_at: t0(),
        };
        for db in dbs {
            db.users()
                .insert(&u, None)
                .await
                .unwrap_or_else(|e| panic!("user: {e}"));
        }
        ids.push(id);
    }
    ids
}

/// Generates operations against what has happened so far.
struct Generator {
    rng: StdRng,
    users: Vec<UserId>,
    holds: Vec<(TransferId, MicroCredits)>,
    done: Vec<LedgerOp>,
    next: u64,
    prefix: String,
}

impl Generator {
    fn new(seed: u64, users: Vec<UserId>, prefix: &str) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            users,
            holds: Vec::new(),
            done: Vec::new(),
            next: 0,
            prefix: prefix.into(),
        }
    }

    fn id(&mut self, kind: &str) -> TransferId {
        self.next += 1;
        TransferId::new(format!("{}{kind}-{}", self.prefix, self.next))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next operation at `now`; `None` means "run the expiry".
    fn op(&mut self, now: DateTime<Utc>) -> Option<LedgerOp> {
        let user = self.users[self.rng.random_range(0..self.users.len())];
        let roll = self.rng.random_range(0..100);
        Some(match roll {
            0..=14 => LedgerOp::Grant {
                id: self.id("g"),
                user,
                amount: self.rng.random_range(1..5_000),
                source: if self.rng.random_bool(0.5) {
                    GrantSource::Purchase
                } else {
                    GrantSource::Promotion
                },
                priority: self.rng.random_range(0..3),
                expires_at: self
                    .rng
                    .random_bool(0.4)
                    .then(|| now + Duration::milliseconds(self.rng.random_range(1..20_000))),
                reference: None,
            },
            15..=44 => LedgerOp::Hold {
                id: self.id("h"),
                user,
                amount: self.rng.random_range(1..3_000),
                timeout_at: now + Duration::milliseconds(self.rng.random_range(1..10_000)),
                reference: Some(format!("session-{}", self.rng.random_range(0..50))),
            },
            45..=69 if !self.holds.is_empty() => {
                let (hold, held) = self.holds[self.rng.random_range(0..self.holds.len())].clone();
                // Mostly partial or full posts; sometimes more than held (refused).
                let amount = match self.rng.random_range(0..10) {
                    0 => held + 1,
                    1..=3 => held,
                    _ => self.rng.random_range(0..=held),
                };
                LedgerOp::Post {
                    id: self.id("p"),
                    hold,
                    amount,
                }
            }
            70..=79 if !self.holds.is_empty() => {
                let (hold, _) = self.holds[self.rng.random_range(0..self.holds.len())].clone();
                LedgerOp::Void {
                    id: self.id("v"),
                    hold,
                }
            }
            80..=89 if !self.done.is_empty() => {
                self.done[self.rng.random_range(0..self.done.len())].clone()
            }
            90..=92 => LedgerOp::Post {
                id: self.id("p"),
                hold: self.id("missing"),
                amount: 1,
            },
            93..=94 if !self.done.is_empty() => {
                // The id of an earlier operation, with another amount: refused.
                let earlier = self.done[self.rng.random_range(0..self.done.len())]
                    .id()
                    .clone();
                LedgerOp::Grant {
                    id: earlier,
                    user,
                    amount: 1_000_000,
                    source: GrantSource::Purchase,
                    priority: 0,
                    expires_at: None,
                    reference: None,
                }
            }
            _ => return None,
        })
    }

    fn record(&mut self, op: &LedgerOp, result: &onmemos_core::Result<Transfer>) {
        if let Ok(t) = result {
            if t.kind == TransferKind::Hold && !self.holds.iter().any(|(h, _)| *h == t.id) {
                self.holds.push((t.id.clone(), t.amount));
            }
            if !self.done.iter().any(|d| d.id() == op.id()) {
                self.done.push(op.clone());
            }
        }
    }
}

/// A transfer without its sequence number (PostgreSQL sequences may skip numbers).
fn shape(t: &Transfer) -> Transfer {
    Transfer {
        seq: 0,
        ..t.clone()
    }
}

fn outcome(r: &onmemos_core::Result<Transfer>) -> Result<Transfer, String> {
    match r {
        Ok(t) => Ok(shape(t)),
        Err(e) => Err(e.code().as_str().to_owned()),
    }
}

async fn apply(
    ledger: &dyn LedgerRepo,
    op: &LedgerOp,
    now: DateTime<Utc>,
) -> onmemos_core::Result<Transfer> {
    op.validate_at(now)?;
    ledger.execute(op, now).await
}

/// The databases' expiries at `now` are the model's.
async fn expiries_agree(
    model: &ReferenceLedger,
    dbs: &[(&str, &dyn LedgerRepo)],
    now: DateTime<Utc>,
    at: &str,
) {
    let expected: Vec<Transfer> = model
        .expire_due(now)
        .await
        .unwrap_or_default()
        .iter()
        .map(shape)
        .collect();
    for (name, db) in dbs {
        let got: Vec<Transfer> = db
            .expire_due(now)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .iter()
            .map(shape)
            .collect();
        assert_eq!(got, expected, "{at} ({name}): expiry");
    }
}

/// Every user's final balance is the model's on every database, and each database
/// reconciles; returns each database's reconciliation.
async fn end_states_agree<'a>(
    model: &ReferenceLedger,
    dbs: &[(&'a str, &dyn LedgerRepo)],
    users: &[UserId],
    seed: u64,
) -> Vec<(&'a str, onmemos_core::model::Reconciliation)> {
    for user in users {
        let expected = model.balance(*user).await.unwrap_or_else(|e| panic!("{e}"));
        for (name, db) in dbs {
            assert_eq!(
                db.balance(*user).await.ok().as_ref(),
                Some(&expected),
                "{name}: final balance (seed {seed})"
            );
        }
    }
    let mut out = Vec::new();
    for (name, db) in dbs {
        let r = reconcile(*db).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_consistent(), "{name}: {r:?}");
        out.push((*name, r));
    }
    out
}

/// The databases a model check runs on (PostgreSQL when configured) and a generator of
/// operations for four users they share, with ids starting with `prefix`.
async fn model_world(seed: u64, prefix: &str) -> (SqlDatabase, Option<SqlDatabase>, Generator) {
    let lite = sqlite().await;
    let pg = postgres().await;
    let mut sql: Vec<&SqlDatabase> = vec![&lite];
    sql.extend(pg.iter());
    let generator = Generator::new(seed, users(&sql, 4).await, prefix);
    (lite, pg, generator)
}

/// The ledgers of a model check's databases, by name.
fn ledgers<'a>(
    lite: &'a SqlDatabase,
    pg: Option<&'a SqlDatabase>,
) -> Vec<(&'static str, &'a dyn LedgerRepo)> {
    let mut dbs: Vec<(&'static str, &'a dyn LedgerRepo)> = vec![("sqlite", lite.ledger())];
    dbs.extend(pg.map(|pg| ("postgres", pg.ledger())));
    dbs
}

#[tokio::test]
async fn reference_sqlite_and_postgres_agree_step_by_step() {
    let seed = seed();
    let (lite, pg, mut generator) = model_world(seed, "m-").await;
    let dbs = ledgers(&lite, pg.as_ref());
    let model = ReferenceLedger::new();
    let mut now = t0();
    for step in 0..3_000 {
        now += Duration::milliseconds(generator.rng.random_range(0..400));
        match generator.op(now) {
            Some(op) => {
                let expected = apply(&model, &op, now).await;
                for (name, db) in &dbs {
                    let got = apply(*db, &op, now).await;
                    assert_eq!(
                        outcome(&got),
                        outcome(&expected),
                        "step {step} ({name}, seed {seed}): {op:?}"
                    );
                }
                generator.record(&op, &expected);
            }
            None => {
                expiries_agree(&model, &dbs, now, &format!("step {step}, seed {seed}")).await;
            }
        }
    }
    for (name, r) in end_states_agree(&model, &dbs, &generator.users, seed).await {
        assert!(
            r.transfers > 1_000,
            "{name}: only {} transfers: the sequence did too little",
            r.transfers
        );
    }
    assert!(
        generator.holds.len() > 100,
        "too few holds succeeded to exercise settlement"
    );
}

/// The same model check with batches: groups of 1 to 16 operations go to the databases through
/// `apply_batch` — later operations of a group settle holds placed earlier in it, replay its
/// ids, and meet refusals — and every outcome must be the reference's, one after another.
#[tokio::test]
async fn reference_sqlite_and_postgres_agree_batch_by_batch() {
    let seed = seed();
    let (lite, pg, mut generator) = model_world(seed, "b-").await;
    let dbs = ledgers(&lite, pg.as_ref());
    let model = ReferenceLedger::new();
    let mut now = t0();
    let (mut refused, mut settled_in_batch) = (0usize, 0usize);
    for batch in 0..400 {
        now += Duration::milliseconds(generator.rng.random_range(0..2_000));
        let size = generator.rng.random_range(1..=16);
        let mut ops = Vec::new();
        let mut expected = Vec::new();
        let mut placed = std::collections::HashSet::new();
        let mut settle_next: Option<(TransferId, i64)> = None;
        while ops.len() < size {
            // Half the holds a batch places are settled by the same batch.
            let next = match settle_next.take() {
                Some((hold, held)) if generator.rng.random_bool(0.5) => Some(LedgerOp::Post {
                    id: generator.id("p"),
                    hold,
                    amount: generator.rng.random_range(0..=held),
                }),
                Some((hold, _)) => Some(LedgerOp::Void {
                    id: generator.id("v"),
                    hold,
                }),
                None => generator.op(now),
            };
            let Some(op) = next else {
                break;
            };
            if op.validate_at(now).is_err() {
                continue;
            }
            if let LedgerOp::Post { hold, .. } | LedgerOp::Void { hold, .. } = &op
                && placed.contains(hold)
            {
                settled_in_batch += 1;
            }
            let result = model.execute(&op, now).await;
            if let Ok(t) = &result
                && t.kind == TransferKind::Hold
                && placed.insert(t.id.clone())
                && generator.rng.random_bool(0.5)
            {
                settle_next = Some((t.id.clone(), t.amount));
            }
            refused += usize::from(result.is_err());
            generator.record(&op, &result);
            expected.push(outcome(&result));
            ops.push(op);
        }
        for (name, db) in &dbs {
            let got: Vec<Result<Transfer, String>> = db
                .apply_batch(&ops, now)
                .await
                .unwrap_or_else(|e| panic!("{name}: batch {batch}: {e}"))
                .iter()
                .map(outcome)
                .collect();
            assert_eq!(
                got, expected,
                "batch {batch} ({name}, seed {seed}): {ops:?}"
            );
        }
        if batch % 10 == 9 {
            expiries_agree(&model, &dbs, now, &format!("batch {batch}, seed {seed}")).await;
        }
    }
    end_states_agree(&model, &dbs, &generator.users, seed).await;
    assert!(
        refused > 20,
        "too few refusals ({refused}) to exercise them"
    );
    assert!(
        settled_in_batch > 20,
        "too few holds settled in the batch that placed them ({settled_in_batch})"
    );
}

const CLIENTS: usize = 64;
const OPERATIONS: usize = 100_000;

/// `CLIENTS` clients share `operations` mixed operations; client `c` goes through
/// `replicas[c % replicas.len()]` (several handles on one PostgreSQL act as server replicas,
/// each with its own commit queue).
async fn hammer(replicas: Vec<Arc<SqlDatabase>>, operations: usize, seed: u64) {
    let db = replicas[0].clone();
    let users = users(&[&db], 16).await;
    let clock = Arc::new(AtomicI64::new(t0().timestamp_millis()));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let db = replicas[client % replicas.len()].clone();
        let users = users.clone();
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let mut generator = Generator::new(
                seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                users,
                &format!("c{client}-"),
            );
            let mut acknowledged: HashMap<TransferId, Transfer> = HashMap::new();
            for _ in 0..operations / CLIENTS {
                let now = DateTime::from_timestamp_millis(clock.fetch_add(1, Ordering::Relaxed))
                    .unwrap_or_default();
                match generator.op(now) {
                    Some(op) => {
                        let result = apply(db.ledger(), &op, now).await;
                        if let Ok(t) = &result {
                            // A replay must return exactly what the first call returned.
                            if let Some(first) = acknowledged.get(&t.id) {
                                assert_eq!(first, t, "replay of {} changed its answer", t.id);
                            }
                            acknowledged.insert(t.id.clone(), t.clone());
                        } else if let Err(e) = &result {
                            assert!(
                                e.kind() != onmemos_core::ErrorKind::Internal
                                    && e.kind() != onmemos_core::ErrorKind::Unavailable,
                                "{op:?}: {e}"
                            );
                        }
                        generator.record(&op, &result);
                    }
                    None => {
                        db.ledger()
                            .expire_due(now)
                            .await
                            .unwrap_or_else(|e| panic!("expire: {e}"));
                    }
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = HashMap::new();
    for task in tasks {
        acknowledged.extend(
            task.await
                .unwrap_or_else(|e| panic!("client panicked: {e}")),
        );
    }
    // Every acknowledged transfer is stored, unchanged, once.
    for (id, t) in &acknowledged {
        assert_eq!(
            db.ledger().transfer(id).await.ok().flatten().as_ref(),
            Some(t),
            "acknowledged transfer {id} lost or changed"
        );
    }
    let (count, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM ledger_transfers")
            .fetch_one(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count, distinct, "a transfer id was stored twice");
    let r = reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(r.is_consistent(), "seed {seed}: {r:#?}");
    for u in &users {
        let b = db
            .ledger()
            .balance(*u)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(b.available >= 0, "negative balance: {b:?}");
        let granted: MicroCredits = b.grants.iter().map(|g| g.free()).sum();
        assert_eq!(
            granted, b.available,
            "grants do not add up to the balance: {b:?}"
        );
    }
    eprintln!(
        "{} transfers, {} acknowledged operations, {} accounts",
        r.transfers,
        acknowledged.len(),
        r.accounts
    );
    assert!(
        acknowledged.len() > operations / 10,
        "too few operations succeeded: {}",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_on_sqlite() {
    hammer(vec![Arc::new(sqlite().await)], OPERATIONS, seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_on_postgres() {
    let Some(pg) = postgres().await else { return };
    hammer(vec![Arc::new(pg)], OPERATIONS, seed()).await;
}

/// Two replicas (two handles, two commit queues, two connection pools) on one PostgreSQL: their
/// batches contend for the same accounts, grants and system rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_one_postgres() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let open = || async {
        Arc::new(
            SqlDatabase::open(&url)
                .await
                .unwrap_or_else(|e| panic!("replica: {e}")),
        )
    };
    let (first, second) = (open().await, open().await);
    hammer(vec![first.clone(), second.clone()], 20_000, seed()).await;
    for (name, replica) in [("first", &first), ("second", &second)] {
        let stats = replica.group_commit_stats();
        assert!(
            stats.operations > 1_000,
            "{name} replica did little: {stats:?}"
        );
    }
}

/// Operations submitted together are committed together, and each keeps the outcome it would
/// have alone: refusals change nothing, replays in the same batch return the original,
/// settlements see holds made earlier in the batch.
async fn batch_outcomes(db: SqlDatabase) {
    use onmemos_core::api::ErrorCode;
    let user = users(&[&db], 1).await[0];
    let now = t0();
    let id = |s: String| TransferId::new(s).unwrap_or_else(|e| panic!("{e}"));
    let grant = LedgerOp::Grant {
        id: id("grant".into()),
        user,
        amount: 1_000,
        source: GrantSource::Purchase,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    apply(db.ledger(), &grant, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let hold = |i: usize| LedgerOp::Hold {
        id: id(format!("h{i}")),
        user,
        amount: 100,
        timeout_at: now + Duration::minutes(5),
        reference: None,
    };
    let post = |pid: &str, hold: &str, amount| LedgerOp::Post {
        id: id(pid.into()),
        hold: id(hold.into()),
        amount,
    };
    let mut ops: Vec<LedgerOp> = (0..20).map(hold).collect();
    ops.extend((0..5).map(|_| hold(0)));
    ops.push(post("p2", "h2", 50));
    ops.push(LedgerOp::Void {
        id: id("v3".into()),
        hold: id("h3".into()),
    });
    ops.push(post("p2-again", "h2", 10));
    ops.push(post("p-missing", "missing", 10));
    let before = db.group_commit_stats();
    let results = futures::future::join_all(ops.iter().map(|op| apply(db.ledger(), op, now))).await;
    let after = db.group_commit_stats();
    let code = |r: &onmemos_core::Result<Transfer>| r.as_ref().err().map(|e| e.code());

    for (i, r) in results[..10].iter().enumerate() {
        assert!(r.is_ok(), "hold h{i}: {r:?}");
    }
    for r in &results[10..20] {
        assert_eq!(code(r), Some(ErrorCode::InsufficientCredits), "{r:?}");
    }
    for r in &results[20..25] {
        assert_eq!(r.as_ref().ok(), results[0].as_ref().ok(), "replay of h0");
    }
    assert_eq!(
        results[25].as_ref().map(|t| (t.kind, t.amount)).ok(),
        Some((TransferKind::Post, 50))
    );
    assert_eq!(
        results[26].as_ref().map(|t| (t.kind, t.amount)).ok(),
        Some((TransferKind::Void, 100))
    );
    assert_eq!(code(&results[27]), Some(ErrorCode::Conflict));
    assert_eq!(code(&results[28]), Some(ErrorCode::NotFound));

    let balance = db
        .ledger()
        .balance(user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // All 1,000 held by ten holds; the post of 50 on one released 50, the void 100.
    assert_eq!(balance.available, 150);
    let r = reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_consistent(), "{r:?}");
    // grant, 10 holds, a post, a void: nothing refused left a transfer behind.
    assert_eq!(r.transfers, 13);
    let operations = after.operations - before.operations;
    let commits = after.commits - before.commits;
    assert_eq!(operations, ops.len() as u64);
    assert!(
        commits < operations,
        "{operations} operations took {commits} commits: nothing was grouped"
    );
}

#[tokio::test]
async fn batched_operations_keep_their_own_outcomes_on_sqlite() {
    batch_outcomes(sqlite().await).await;
}

#[tokio::test]
async fn batched_operations_keep_their_own_outcomes_on_postgres() {
    let Some(pg) = postgres().await else { return };
    batch_outcomes(pg).await;
}

/// At the edge of what the ledger can count (its issuance account's debits near `i64::MAX`),
/// a grant that would pass it is refused with `limit_exceeded` and changes nothing, on SQLite
/// and PostgreSQL as in the reference ledger; spending goes on.
#[tokio::test]
async fn grants_past_what_the_ledger_can_count_are_refused() {
    use onmemos_core::ErrorKind;
    use onmemos_core::model::{AccountRef, MAX_BALANCE, MAX_ISSUED, MAX_TRANSFER};

    let reference = ReferenceLedger::default();
    let mut dbs = vec![("sqlite", sqlite().await)];
    if let Some(pg) = postgres().await {
        dbs.push(("postgres", pg));
    }
    let grant = |user, amount| LedgerOp::Grant {
        id: TransferId::new(format!("g-{}", uuid::Uuid::now_v7().simple()))
            .unwrap_or_else(|e| panic!("{e}")),
        user,
        amount,
        source: GrantSource::Purchase,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    // The reference reaches the edge by grants: users filled to the cap until less than one
    // more fill is left.
    let filled = (MAX_ISSUED / MAX_BALANCE) as usize;
    for _ in 0..filled {
        reference
            .execute(&grant(UserId::new(), MAX_BALANCE), t0())
            .await
            .unwrap_or_else(|e| panic!("reference: {e}"));
    }
    let left = MAX_ISSUED - filled as i64 * MAX_BALANCE;
    assert!(left < MAX_TRANSFER);
    for (name, db) in &dbs {
        // The databases are put at the same edge directly.
        sqlx::query("UPDATE ledger_accounts SET debits_posted = $1 WHERE id = 'sys:issuance'")
            .bind(MAX_ISSUED - left)
            .execute(db.writer())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let dbs_users = users(&dbs.iter().map(|(_, d)| d).collect::<Vec<_>>(), 1).await;
    let u = dbs_users[0];
    let ledgers: Vec<(&str, &dyn LedgerRepo)> =
        std::iter::once(("reference", &reference as &dyn LedgerRepo))
            .chain(dbs.iter().map(|(n, d)| (*n, d.ledger())))
            .collect();
    for (name, ledger) in ledgers {
        let refused = ledger
            .execute(&grant(u, left + 1), t0())
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: a grant past the edge was applied"));
        assert_eq!(
            refused.kind(),
            ErrorKind::LimitExceeded,
            "{name}: {refused}"
        );
        assert_eq!(refused.field(), Some("amount"), "{name}");
        let issued = |accounts: Vec<(AccountRef, onmemos_core::model::AccountCounters)>| {
            accounts
                .into_iter()
                .find(|(a, _)| *a == AccountRef::Issuance)
                .map(|(_, c)| c.debits_posted)
        };
        let accounts = ledger.accounts().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(issued(accounts), Some(MAX_ISSUED - left), "{name}");
        ledger
            .execute(&grant(u, left), t0())
            .await
            .unwrap_or_else(|e| panic!("{name}: the last grant that fits: {e}"));
        let accounts = ledger.accounts().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(issued(accounts), Some(MAX_ISSUED), "{name}");
        // Spending still works at the edge.
        let hold = LedgerOp::Hold {
            id: TransferId::new(format!("h-{}", uuid::Uuid::now_v7().simple()))
                .unwrap_or_else(|e| panic!("{e}")),
            user: u,
            amount: 10,
            timeout_at: t0() + Duration::minutes(5),
            reference: None,
        };
        ledger
            .execute(&hold, t0())
            .await
            .unwrap_or_else(|e| panic!("{name}: a hold at the edge: {e}"));
    }
}
