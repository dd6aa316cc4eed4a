//! Ledger checks of the `Database` conformance suite. Each makes its own users.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::api::ErrorCode;
use crate::error::ErrorKind;
use crate::id::UserId;
use crate::ledger::reconcile;
use crate::model::{
    AccountRef, GrantSource, LedgerOp, MAX_BALANCE, MAX_TRANSFER, MicroCredits, Role, TransferId,
    TransferKind, User,
};
use crate::ports::Database;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
        .single()
        .unwrap_or_default()
}

fn tid(s: &str) -> TransferId {
    TransferId::new(format!("{s}-{}", uuid::Uuid::now_v7().simple()))
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn user(db: &Arc<dyn Database>) -> UserId {
    let id = UserId::new();
    let u = User {
        id,
        email: format!("{}@ledger.test", id.as_uuid().simple()),
        name: None,
        role: Role::Member,
        created_at: t0(),
    };
    db.users()
        .insert(&u, None)
        .await
        .unwrap_or_else(|e| panic!("insert user: {e}"));
    id
}

fn grant(
    user: UserId,
    amount: MicroCredits,
    priority: i32,
    expires_at: Option<DateTime<Utc>>,
) -> LedgerOp {
    LedgerOp::Grant {
        id: tid("grant"),
        user,
        amount,
        source: GrantSource::Purchase,
        priority,
        expires_at,
        reference: None,
    }
}

fn hold(user: UserId, amount: MicroCredits, timeout: Duration) -> LedgerOp {
    LedgerOp::Hold {
        id: tid("hold"),
        user,
        amount,
        timeout_at: t0() + timeout,
        reference: Some("test".into()),
    }
}

async fn run(
    db: &Arc<dyn Database>,
    op: &LedgerOp,
    now: DateTime<Utc>,
) -> crate::Result<crate::model::Transfer> {
    op.validate_at(now)?;
    db.ledger().execute(op, now).await
}

async fn ok(db: &Arc<dyn Database>, op: &LedgerOp, now: DateTime<Utc>) -> crate::model::Transfer {
    run(db, op, now)
        .await
        .unwrap_or_else(|e| panic!("{op:?}: {e}"))
}

async fn available(db: &Arc<dyn Database>, u: UserId) -> MicroCredits {
    db.ledger()
        .balance(u)
        .await
        .map(|b| b.available)
        .unwrap_or_else(|e| panic!("balance: {e}"))
}

async fn assert_consistent(db: &Arc<dyn Database>) {
    let r = reconcile(db.ledger())
        .await
        .unwrap_or_else(|e| panic!("reconcile: {e}"));
    assert!(r.is_consistent(), "ledger inconsistent: {r:#?}");
}

/// Grant, hold, partial post and void move the four counters as TigerBeetle's model says, and
/// replays return the original transfer.
pub async fn ledger_holds_posts_and_voids(db: Arc<dyn Database>) {
    let u = user(&db).await;
    let now = t0();
    assert_eq!(available(&db, u).await, 0);
    let g = grant(u, 1_000, 0, None);
    let first = ok(&db, &g, now).await;
    assert_eq!(first.kind, TransferKind::Grant);
    assert_eq!(
        (first.debit_account, first.credit_account),
        (AccountRef::Issuance, AccountRef::User(u))
    );
    assert_eq!(
        ok(&db, &g, now + Duration::seconds(5)).await,
        first,
        "a replay must return the original"
    );
    assert_eq!(
        available(&db, u).await,
        1_000,
        "a replayed grant counted twice"
    );

    let h = hold(u, 300, Duration::minutes(5));
    let held = ok(&db, &h, now).await;
    let b = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.counters.debits_pending, b.available), (300, 700));
    assert_eq!(b.grants.first().map(|g| g.reserved), Some(300));

    let post = LedgerOp::Post {
        id: tid("post"),
        hold: held.id.clone(),
        amount: 120,
    };
    let posted = ok(&db, &post, now).await;
    assert_eq!(
        (posted.kind, posted.amount, posted.hold_id.as_ref()),
        (TransferKind::Post, 120, Some(&held.id))
    );
    let b = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            b.counters.debits_posted,
            b.counters.debits_pending,
            b.available
        ),
        (120, 0, 880)
    );
    assert_eq!(
        b.grants.first().map(|g| (g.consumed, g.reserved)),
        Some((120, 0))
    );

    let h2 = ok(&db, &hold(u, 880, Duration::minutes(5)), now).await;
    assert_eq!(available(&db, u).await, 0);
    let void = LedgerOp::Void {
        id: tid("void"),
        hold: h2.id.clone(),
    };
    let voided = ok(&db, &void, now).await;
    assert_eq!((voided.kind, voided.amount), (TransferKind::Void, 880));
    assert_eq!(available(&db, u).await, 880);
    assert_eq!(
        ok(&db, &void, now).await,
        voided,
        "a replayed void must return the original"
    );

    let page = db
        .ledger()
        .transfers(
            Some(AccountRef::User(u)),
            None,
            crate::api::PageRequest::first(10),
        )
        .await;
    let kinds: Vec<_> = page
        .map(|p| p.items.iter().map(|t| t.kind).collect())
        .unwrap_or_default();
    use TransferKind::*;
    assert_eq!(kinds, [Grant, Hold, Post, Hold, Void]);
    assert_consistent(&db).await;
}

/// A user's balance stops at [`MAX_BALANCE`]: the grant past it is refused with
/// `limit_exceeded` naming `amount`, changes nothing, and other users are unaffected; spending
/// makes room again.
pub async fn ledger_caps_a_balance(db: Arc<dyn Database>) {
    let (u, other) = (user(&db).await, user(&db).await);
    let now = t0();
    ok(&db, &grant(u, MAX_BALANCE - 10, 0, None), now).await;
    let before = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for past in [11, MAX_TRANSFER] {
        let refused = run(&db, &grant(u, past, 0, None), now)
            .await
            .err()
            .unwrap_or_else(|| panic!("a grant of {past} past the cap was applied"));
        assert_eq!(refused.code(), ErrorCode::LimitExceeded, "{refused}");
        assert_eq!(refused.field(), Some("amount"), "{refused}");
    }
    let after = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before, after, "a refused grant changed the account");
    ok(&db, &grant(u, 10, 0, None), now).await;
    assert_eq!(available(&db, u).await, MAX_BALANCE);
    ok(&db, &grant(other, MAX_TRANSFER, 0, None), now).await;
    // What is spent leaves room.
    let h = ok(&db, &hold(u, 500, Duration::minutes(5)), now).await;
    ok(
        &db,
        &LedgerOp::Post {
            id: tid("post"),
            hold: h.id,
            amount: 500,
        },
        now,
    )
    .await;
    ok(&db, &grant(u, 500, 0, None), now).await;
    assert_consistent(&db).await;
}

/// Every bad request is refused with its own error and changes nothing.
pub async fn ledger_refuses_bad_operations(db: Arc<dyn Database>) {
    let u = user(&db).await;
    let now = t0();
    ok(&db, &grant(u, 500, 0, None), now).await;
    let held = ok(&db, &hold(u, 200, Duration::minutes(5)), now).await;
    let before = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let code = |r: crate::Result<crate::model::Transfer>| r.err().map(|e| e.code());

    assert_eq!(
        code(run(&db, &hold(u, 301, Duration::minutes(5)), now).await),
        Some(ErrorCode::InsufficientCredits)
    );
    for bad in [0, -5, MAX_TRANSFER + 1, i64::MAX] {
        let r = run(&db, &grant(u, bad, 0, None), now).await;
        assert_eq!(
            r.as_ref()
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("amount"),
            "{bad}"
        );
        assert_eq!(
            code(run(&db, &hold(u, bad, Duration::minutes(1)), now).await),
            Some(ErrorCode::InvalidRequest)
        );
    }
    assert_eq!(
        code(
            run(
                &db,
                &LedgerOp::Post {
                    id: tid("p"),
                    hold: held.id.clone(),
                    amount: -1
                },
                now
            )
            .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(
            run(
                &db,
                &LedgerOp::Post {
                    id: tid("p"),
                    hold: held.id.clone(),
                    amount: 201
                },
                now
            )
            .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(
            run(
                &db,
                &LedgerOp::Post {
                    id: tid("p"),
                    hold: tid("nope"),
                    amount: 1
                },
                now
            )
            .await
        ),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(run(&db, &grant(UserId::new(), 5, 0, None), now).await),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(run(&db, &grant(u, 5, 0, Some(now)), now).await),
        Some(ErrorCode::InvalidRequest),
        "expiry in the past"
    );
    assert_eq!(
        code(run(&db, &hold(u, 5, Duration::zero()), now).await),
        Some(ErrorCode::InvalidRequest),
        "timeout in the past"
    );
    let reserved = LedgerOp::Grant {
        id: TransferId::new("expire:x").unwrap_or_else(|e| panic!("{e}")),
        user: u,
        amount: 1,
        source: GrantSource::Promotion,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    assert_eq!(
        code(run(&db, &reserved, now).await),
        Some(ErrorCode::InvalidRequest),
        "reserved id prefix"
    );
    // The same id for a different operation.
    let g = grant(u, 7, 0, None);
    ok(&db, &g, now).await;
    let LedgerOp::Grant { id, .. } = &g else {
        unreachable!()
    };
    let other = LedgerOp::Grant {
        id: id.clone(),
        user: u,
        amount: 8,
        source: GrantSource::Purchase,
        priority: 0,
        expires_at: None,
        reference: None,
    };
    assert_eq!(
        code(run(&db, &other, now).await),
        Some(ErrorCode::IdempotencyKeyReused)
    );
    let as_hold = LedgerOp::Hold {
        id: id.clone(),
        user: u,
        amount: 7,
        timeout_at: now + Duration::minutes(1),
        reference: None,
    };
    assert_eq!(
        code(run(&db, &as_hold, now).await),
        Some(ErrorCode::IdempotencyKeyReused)
    );

    let after = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        after.counters.credits_posted,
        before.counters.credits_posted + 7,
        "refused operations changed the balance"
    );
    assert_eq!(
        after.counters.debits_pending,
        before.counters.debits_pending
    );

    // Settling twice, or after the timeout.
    ok(
        &db,
        &LedgerOp::Post {
            id: tid("p"),
            hold: held.id.clone(),
            amount: 200,
        },
        now,
    )
    .await;
    let again = run(
        &db,
        &LedgerOp::Void {
            id: tid("v"),
            hold: held.id.clone(),
        },
        now,
    )
    .await;
    assert_eq!(
        again.as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    let late = ok(&db, &hold(u, 10, Duration::minutes(1)), now).await;
    let r = run(
        &db,
        &LedgerOp::Post {
            id: tid("p"),
            hold: late.id.clone(),
            amount: 10,
        },
        now + Duration::minutes(1),
    )
    .await;
    assert_eq!(
        r.as_ref().err().map(|e| e.kind()),
        Some(ErrorKind::Conflict),
        "posted a timed-out hold"
    );
    assert_consistent(&db).await;
}

/// Holds reserve grants by priority, then soonest expiry, then age; expired credit (including
/// credit released later by a hold) goes to breakage; timed-out holds are released.
pub async fn ledger_grant_order_expiry_and_timeouts(db: Arc<dyn Database>) {
    let u = user(&db).await;
    let now = t0();
    let paid = ok(&db, &grant(u, 100, 10, None), now).await;
    let late = ok(&db, &grant(u, 100, 0, Some(now + Duration::hours(2))), now).await;
    let soon = ok(&db, &grant(u, 100, 0, Some(now + Duration::hours(1))), now).await;
    let h = ok(&db, &hold(u, 150, Duration::hours(3)), now).await;
    let b = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<_> = b
        .grants
        .iter()
        .map(|g| (g.id.clone(), g.reserved))
        .collect();
    assert_eq!(
        order,
        vec![
            (soon.id.clone(), 100),
            (late.id.clone(), 50),
            (paid.id.clone(), 0)
        ]
    );

    // An hour later the soonest grant expires, but its reserved credit stays held.
    let t1 = now + Duration::hours(1);
    assert!(
        db.ledger()
            .expire_due(t1 - Duration::milliseconds(1))
            .await
            .map(|v| v.is_empty())
            .unwrap_or(false)
    );
    let made = db
        .ledger()
        .expire_due(t1)
        .await
        .unwrap_or_else(|e| panic!("expire: {e}"));
    assert!(
        made.is_empty(),
        "nothing was free on the expired grant: {made:?}"
    );
    assert_eq!(available(&db, u).await, 150);
    // Voiding the hold releases 100 on the expired grant: it goes to breakage at once.
    let void = LedgerOp::Void {
        id: tid("void"),
        hold: h.id.clone(),
    };
    ok(&db, &void, t1).await;
    let b = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        b.available, 200,
        "released credit of an expired grant must not come back"
    );
    let breakage: Vec<_> = db
        .ledger()
        .transfers(
            Some(AccountRef::Breakage),
            None,
            crate::api::PageRequest::first(10),
        )
        .await
        .map(|p| {
            p.items
                .iter()
                .map(|t| (t.amount, t.grant_id.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(breakage, vec![(100, Some(soon.id.clone()))]);

    // A hold made after the second expiry cannot spend it: it expires first, in the same step.
    let t2 = now + Duration::hours(2);
    let r = run(&db, &hold(u, 101, Duration::hours(3)), t2).await;
    assert_eq!(
        r.err().map(|e| e.code()),
        Some(ErrorCode::InsufficientCredits)
    );
    let h = ok(
        &db,
        &LedgerOp::Hold {
            id: tid("hold"),
            user: u,
            amount: 100,
            timeout_at: t2 + Duration::minutes(5),
            reference: None,
        },
        t2,
    )
    .await;
    assert_eq!(available(&db, u).await, 0);
    let made = db
        .ledger()
        .expire_due(t2 + Duration::minutes(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        made.iter()
            .any(|t| t.kind == TransferKind::ExpireHold && t.hold_id.as_ref() == Some(&h.id)),
        "{made:?}"
    );
    assert_eq!(available(&db, u).await, 100);
    assert!(
        db.ledger()
            .expire_due(t2 + Duration::minutes(6))
            .await
            .map(|v| v.is_empty())
            .unwrap_or(false),
        "expired twice"
    );
    assert_consistent(&db).await;
}

/// A batch applies its operations in order, each with its own outcome: a hold placed by the
/// batch is settled by it, a grant made by it is spent by it, a refusal changes nothing and
/// does not stop the rest, an id used twice in the batch answers as a replay (or
/// `idempotency_key_reused` with other figures), and applying the same batch again replays
/// every operation. The counters are those of the operations one after another.
pub async fn ledger_batches_keep_order_and_outcomes(db: Arc<dyn Database>) {
    let now = t0();
    let (u, v) = (user(&db).await, user(&db).await);
    let g = grant(u, 1_000, 0, None);
    let h1 = hold(u, 600, Duration::hours(1));
    let h1_id = h1.id().clone();
    let too_much = hold(u, 500, Duration::hours(1));
    let post = LedgerOp::Post {
        id: tid("post"),
        hold: h1_id.clone(),
        amount: 250,
    };
    let h2 = hold(u, 500, Duration::hours(1));
    let twice = LedgerOp::Post {
        id: tid("post-again"),
        hold: h1_id.clone(),
        amount: 1,
    };
    let other = hold(v, 1, Duration::hours(1));
    let reused = LedgerOp::Hold {
        id: h2.id().clone(),
        user: u,
        amount: 7,
        timeout_at: now + Duration::hours(1),
        reference: None,
    };
    let batch = vec![
        g.clone(),
        h1.clone(),
        too_much.clone(),
        post.clone(),
        h2.clone(),
        twice,
        other,
        h2.clone(),
        reused,
    ];
    let outcomes = db
        .ledger()
        .apply_batch(&batch, now)
        .await
        .unwrap_or_else(|e| panic!("batch: {e}"));
    assert_eq!(outcomes.len(), batch.len());
    let kinds: Vec<Result<TransferKind, ErrorCode>> = outcomes
        .iter()
        .map(|o| o.as_ref().map(|t| t.kind).map_err(|e| e.code()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            Ok(TransferKind::Grant),
            Ok(TransferKind::Hold),
            // 400 left: refused, and the batch goes on.
            Err(ErrorCode::InsufficientCredits),
            // The hold placed two steps before is settled: 250 posted, 350 released.
            Ok(TransferKind::Post),
            // 750 available again.
            Ok(TransferKind::Hold),
            Err(ErrorCode::Conflict),
            // No credit at all: refused.
            Err(ErrorCode::InsufficientCredits),
            // The same hold again: a replay.
            Ok(TransferKind::Hold),
            Err(ErrorCode::IdempotencyKeyReused),
        ],
        "{outcomes:?}"
    );
    let stored = |i: usize| {
        outcomes[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("{i}: {e}"))
            .clone()
    };
    assert_eq!(
        stored(7),
        stored(4),
        "a replay within the batch is the transfer"
    );
    assert!(
        stored(0).seq < stored(1).seq && stored(1).seq < stored(3).seq,
        "ledger order is batch order"
    );
    assert_eq!(stored(3).amount, 250);
    let b = db
        .ledger()
        .balance(u)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.counters.credits_posted, 1_000);
    assert_eq!(b.counters.debits_posted, 250);
    assert_eq!(b.counters.debits_pending, 500);
    assert_eq!(b.available, 250);
    // The whole batch again, later: every operation that went through is a replay; the
    // refusals are decided afresh (and still refused).
    let again = db
        .ledger()
        .apply_batch(&batch, now + Duration::seconds(1))
        .await
        .unwrap_or_else(|e| panic!("batch again: {e}"));
    for i in [0, 1, 3, 4, 7] {
        assert_eq!(
            again[i].as_ref().ok(),
            Some(&stored(i)),
            "step {i} replays: {:?}",
            again[i]
        );
    }
    for i in [2, 5, 6] {
        assert!(again[i].is_err(), "step {i} stays refused: {:?}", again[i]);
    }
    assert_eq!(
        available(&db, u).await,
        250,
        "replaying a batch changes nothing"
    );
    assert_consistent(&db).await;
}
