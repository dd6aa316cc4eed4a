//! The credit ledger on SQL: the semantics of `onmemos_core::ledger::ReferenceLedger`, each
//! operation one transaction.
//!
//! Concurrency: a user account can never go below zero because every hold passes one guarded
//! `UPDATE … WHERE credits_posted - debits_posted - debits_pending >= amount` (the row count
//! decides) and the table's CHECK backs it up. A hold is settled once because settling flips
//! `pending` with `UPDATE … WHERE pending = 1` and a unique index allows one settlement per hold.
//! Rows are locked in one order — hold, user account, grants, then the shared system accounts
//! last, so they are held for the shortest time. On SQLite every write transaction starts with
//! `BEGIN IMMEDIATE` on the single writer connection; on PostgreSQL transactions run at READ
//! COMMITTED and are retried on serialization failures and deadlocks.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::api::{Page, PageRequest};
use onmemos_core::id::UserId;
use onmemos_core::ledger::{expiry_id, hold_not_found, hold_settled, hold_timed_out, insufficient};
use onmemos_core::model::{
    AccountCounters, AccountRef, Balance, GrantBalance, GrantSource, LedgerOp, MicroCredits,
    Transfer, TransferId, TransferKind,
};
use onmemos_core::ports::LedgerRepo;
use onmemos_core::{Error, ErrorKind, Result};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::error::{SqlxResultExt, corrupt};
use super::rows::{at, int, ms, opt_at, parse};
use super::{Dialect, SqlDatabase};

type Tx = Transaction<'static, Any>;

/// Attempts of a transaction that failed with a transient error (deadlock, serialization).
const ATTEMPTS: u32 = 8;

fn transfer_from(row: &AnyRow) -> Result<Transfer> {
    let get = |c: &'static str| -> Result<String> { row.try_get(c).db_context("read transfer") };
    let opt =
        |c: &'static str| -> Result<Option<String>> { row.try_get(c).db_context("read transfer") };
    let kind = get("kind")?;
    let source = opt("source")?;
    let priority: Option<i64> = row.try_get("priority").db_context("read transfer")?;
    let seq: i64 = row.try_get("seq").db_context("read transfer")?;
    let id = |c: &'static str, v: String| TransferId::new(v.clone()).map_err(|_| corrupt(c, v));
    Ok(Transfer {
        id: id("ledger_transfers.id", get("id")?)?,
        seq: int("ledger_transfers.seq", seq)?,
        kind: TransferKind::parse(&kind).ok_or_else(|| corrupt("ledger_transfers.kind", &kind))?,
        debit_account: parse("ledger_transfers.debit_account", &get("debit_account")?)?,
        credit_account: parse("ledger_transfers.credit_account", &get("credit_account")?)?,
        amount: row.try_get("amount").db_context("read transfer")?,
        hold_id: opt("hold_id")?
            .map(|v| id("ledger_transfers.hold_id", v))
            .transpose()?,
        grant_id: opt("grant_id")?
            .map(|v| id("ledger_transfers.grant_id", v))
            .transpose()?,
        expires_at: opt_at(row.try_get("expires_at").db_context("read transfer")?)?,
        priority: priority
            .map(|p| int("ledger_transfers.priority", p))
            .transpose()?,
        source: source
            .map(|s| GrantSource::parse(&s).ok_or_else(|| corrupt("ledger_transfers.source", s)))
            .transpose()?,
        reference: opt("reference")?,
        created_at: at(row.try_get("created_at").db_context("read transfer")?)?,
    })
}

fn counters_from(row: &AnyRow) -> Result<AccountCounters> {
    let get = |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read account") };
    Ok(AccountCounters {
        debits_posted: get("debits_posted")?,
        credits_posted: get("credits_posted")?,
        debits_pending: get("debits_pending")?,
        credits_pending: get("credits_pending")?,
    })
}

fn grant_from(row: &AnyRow) -> Result<GrantBalance> {
    let get = |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read grant") };
    let id: String = row.try_get("id").db_context("read grant")?;
    let source: String = row.try_get("source").db_context("read grant")?;
    Ok(GrantBalance {
        id: TransferId::new(id.clone()).map_err(|_| corrupt("ledger_grants.id", id))?,
        source: GrantSource::parse(&source)
            .ok_or_else(|| corrupt("ledger_grants.source", source))?,
        priority: int("ledger_grants.priority", get("priority")?)?,
        amount: get("amount")?,
        consumed: get("consumed")?,
        reserved: get("reserved")?,
        expired: get("expired")?,
        expires_at: opt_at(row.try_get("expires_at").db_context("read grant")?)?,
        created_at: at(get("created_at")?)?,
    })
}

/// Adds to an account's counters (negative amounts subtract).
async fn move_counters(tx: &mut Tx, account: &AccountRef, delta: AccountCounters) -> Result<()> {
    sqlx::query(
        "UPDATE ledger_accounts SET debits_posted = debits_posted + $2,
             credits_posted = credits_posted + $3, debits_pending = debits_pending + $4,
             credits_pending = credits_pending + $5
         WHERE id = $1",
    )
    .bind(account.key())
    .bind(delta.debits_posted)
    .bind(delta.credits_posted)
    .bind(delta.debits_pending)
    .bind(delta.credits_pending)
    .execute(&mut **tx)
    .await
    .db_context("update ledger account")?;
    Ok(())
}

/// Records a transfer and returns it with its sequence number.
async fn insert_transfer(tx: &mut Tx, mut t: Transfer) -> Result<Transfer> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, hold_id,
             grant_id, expires_at, priority, source, reference, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq",
    )
    .bind(t.id.as_str())
    .bind(t.kind.as_str())
    .bind(t.debit_account.key())
    .bind(t.credit_account.key())
    .bind(t.amount)
    .bind(t.hold_id.as_ref().map(TransferId::as_str))
    .bind(t.grant_id.as_ref().map(TransferId::as_str))
    .bind(t.expires_at.map(ms))
    .bind(t.priority.map(i64::from))
    .bind(t.source.map(GrantSource::as_str))
    .bind(t.reference.as_deref())
    .bind(ms(t.created_at))
    .fetch_one(&mut **tx)
    .await
    .db_context("record transfer")?;
    t.seq = int("ledger_transfers.seq", seq)?;
    Ok(t)
}

async fn find_transfer(tx: &mut Tx, id: &TransferId) -> Result<Option<Transfer>> {
    sqlx::query("SELECT * FROM ledger_transfers WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .db_context("find transfer")?
        .as_ref()
        .map(transfer_from)
        .transpose()
}

fn posted(debit: bool, amount: MicroCredits) -> AccountCounters {
    if debit {
        AccountCounters {
            debits_posted: amount,
            ..Default::default()
        }
    } else {
        AccountCounters {
            credits_posted: amount,
            ..Default::default()
        }
    }
}

/// Moves `amount` of an expired grant's credit from its user to breakage.
async fn expire_amount(
    tx: &mut Tx,
    grant: &TransferId,
    user: &AccountRef,
    id: TransferId,
    amount: MicroCredits,
    now: DateTime<Utc>,
) -> Result<Transfer> {
    sqlx::query("UPDATE ledger_grants SET expired = expired + $2 WHERE id = $1")
        .bind(grant.as_str())
        .bind(amount)
        .execute(&mut **tx)
        .await
        .db_context("expire grant credit")?;
    move_counters(tx, user, posted(true, amount)).await?;
    let t = insert_transfer(
        tx,
        Transfer {
            grant_id: Some(grant.clone()),
            ..Transfer::new(
                id,
                TransferKind::ExpireGrant,
                *user,
                AccountRef::Breakage,
                amount,
                now,
            )
        },
    )
    .await?;
    move_counters(tx, &AccountRef::Breakage, posted(false, amount)).await?;
    Ok(t)
}

/// Processes the expiry of a grant whose time has come: marks it done and moves its free
/// remainder to breakage. `None` when another transaction did it first, or nothing was free.
async fn expire_grant(
    tx: &mut Tx,
    grant: &TransferId,
    now: DateTime<Utc>,
) -> Result<Option<Transfer>> {
    let row = sqlx::query(
        "UPDATE ledger_grants SET expiry_done = 1 WHERE id = $1 AND expiry_done = 0
         RETURNING user_id, amount - consumed - reserved - expired AS free",
    )
    .bind(grant.as_str())
    .fetch_optional(&mut **tx)
    .await
    .db_context("expire grant")?;
    let Some(row) = row else { return Ok(None) };
    let free: i64 = row.try_get("free").db_context("read grant")?;
    let user: String = row.try_get("user_id").db_context("read grant")?;
    if free <= 0 {
        return Ok(None);
    }
    let user: AccountRef = parse("ledger_grants.user_id", &user)?;
    expire_amount(tx, grant, &user, expiry_id(grant, None), free, now)
        .await
        .map(Some)
}

/// Grants of `user` whose expiry is due and not yet processed, oldest expiry first, with what
/// is free on each.
async fn due_grants(
    tx: &mut Tx,
    user: &AccountRef,
    now: DateTime<Utc>,
) -> Result<Vec<(TransferId, MicroCredits)>> {
    let rows = sqlx::query(
        "SELECT id, amount - consumed - reserved - expired AS free FROM ledger_grants
         WHERE user_id = $1 AND expiry_done = 0 AND expires_at <= $2 ORDER BY expires_at, seq",
    )
    .bind(user.key())
    .bind(ms(now))
    .fetch_all(&mut **tx)
    .await
    .db_context("find expiring grants")?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id").db_context("read grant")?;
            let free: i64 = r.try_get("free").db_context("read grant")?;
            Ok((
                TransferId::new(id.clone()).map_err(|_| corrupt("ledger_grants.id", id))?,
                free,
            ))
        })
        .collect()
}

/// Settles a pending hold: posts `charge`, releases the rest, and expires released credit of
/// grants whose expiry was already processed. `check_timeout` is false for the expiry itself.
async fn settle(
    tx: &mut Tx,
    hold: &TransferId,
    id: TransferId,
    kind: TransferKind,
    charge: MicroCredits,
    now: DateTime<Utc>,
    check_timeout: bool,
) -> Result<Vec<Transfer>> {
    let row =
        sqlx::query("SELECT user_id, amount, timeout_at, pending FROM ledger_holds WHERE id = $1")
            .bind(hold.as_str())
            .fetch_optional(&mut **tx)
            .await
            .db_context("find hold")?
            .ok_or_else(|| hold_not_found(hold))?;
    let held: i64 = row.try_get("amount").db_context("read hold")?;
    let pending: i64 = row.try_get("pending").db_context("read hold")?;
    let timeout_at: i64 = row.try_get("timeout_at").db_context("read hold")?;
    let user: String = row.try_get("user_id").db_context("read hold")?;
    let user: AccountRef = parse("ledger_holds.user_id", &user)?;
    if pending == 0 {
        return Err(hold_settled(hold));
    }
    if check_timeout && timeout_at <= ms(now) {
        return Err(hold_timed_out(hold));
    }
    if charge > held {
        return Err(Error::invalid(
            "amount",
            format!("cannot post {charge}: the hold is for {held}"),
        ));
    }
    // The row count decides between concurrent settlements of the same hold.
    let flipped = sqlx::query("UPDATE ledger_holds SET pending = 0 WHERE id = $1 AND pending = 1")
        .bind(hold.as_str())
        .execute(&mut **tx)
        .await
        .db_context("settle hold")?;
    if flipped.rows_affected() != 1 {
        return Err(hold_settled(hold));
    }
    move_counters(
        tx,
        &user,
        AccountCounters {
            debits_posted: charge,
            debits_pending: -held,
            ..Default::default()
        },
    )
    .await?;
    let amount = if kind == TransferKind::Post {
        charge
    } else {
        held
    };
    let mut out = vec![
        insert_transfer(
            tx,
            Transfer {
                hold_id: Some(hold.clone()),
                ..Transfer::new(id.clone(), kind, user, AccountRef::Revenue, amount, now)
            },
        )
        .await?,
    ];
    let allocations = sqlx::query(
        "SELECT grant_id, amount FROM ledger_hold_allocations WHERE hold_id = $1 ORDER BY position",
    )
    .bind(hold.as_str())
    .fetch_all(&mut **tx)
    .await
    .db_context("read hold allocations")?;
    let mut left = charge;
    for a in &allocations {
        let grant: String = a.try_get("grant_id").db_context("read allocation")?;
        let grant = TransferId::new(grant.clone())
            .map_err(|_| corrupt("ledger_hold_allocations.grant_id", grant))?;
        let reserved: i64 = a.try_get("amount").db_context("read allocation")?;
        let take = left.min(reserved);
        left -= take;
        let released = reserved - take;
        let done: i64 = sqlx::query_scalar(
            "UPDATE ledger_grants SET reserved = reserved - $2, consumed = consumed + $3
             WHERE id = $1 RETURNING expiry_done",
        )
        .bind(grant.as_str())
        .bind(reserved)
        .bind(take)
        .fetch_one(&mut **tx)
        .await
        .db_context("consume grant")?;
        if done == 1 && released > 0 {
            let eid = expiry_id(&grant, Some(&id));
            out.push(expire_amount(tx, &grant, &user, eid, released, now).await?);
        }
    }
    move_counters(
        tx,
        &AccountRef::Revenue,
        AccountCounters {
            credits_posted: charge,
            credits_pending: -held,
            ..Default::default()
        },
    )
    .await?;
    Ok(out)
}

impl SqlDatabase {
    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (take the write lock now rather
    /// than fail to upgrade later), the default READ COMMITTED on PostgreSQL.
    async fn begin_write(&self) -> Result<Tx> {
        match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.writer.begin().await,
        }
        .db_context("begin a ledger transaction")
    }

    async fn execute_once(&self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
        let mut tx = self.begin_write().await?;
        if let Some(existing) = find_transfer(&mut tx, op.id()).await? {
            return op.replay(existing);
        }
        let transfer = match op {
            LedgerOp::Grant {
                id,
                user,
                amount,
                source,
                priority,
                expires_at,
                reference,
            } => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
                    .bind(user.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .db_context("find user")?;
                if exists.is_none() {
                    return Err(Error::not_found(format!("no user {user}"))
                        .with_context("field", "user_id"));
                }
                let account = AccountRef::User(*user);
                sqlx::query("INSERT INTO ledger_accounts (id, kind) VALUES ($1, 'user') ON CONFLICT (id) DO NOTHING")
                    .bind(account.key())
                    .execute(&mut *tx)
                    .await
                    .db_context("open ledger account")?;
                move_counters(&mut tx, &account, posted(false, *amount)).await?;
                let expires_at = expires_at.map(onmemos_core::clock::to_millis);
                let t = insert_transfer(
                    &mut tx,
                    Transfer {
                        expires_at,
                        priority: Some(*priority),
                        source: Some(*source),
                        reference: reference.clone(),
                        ..Transfer::new(
                            id.clone(),
                            TransferKind::Grant,
                            AccountRef::Issuance,
                            account,
                            *amount,
                            now,
                        )
                    },
                )
                .await?;
                sqlx::query(
                    "INSERT INTO ledger_grants (id, seq, user_id, source, priority, amount, expires_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(id.as_str())
                .bind(int::<i64, _>("seq", t.seq)?)
                .bind(account.key())
                .bind(source.as_str())
                .bind(i64::from(*priority))
                .bind(*amount)
                .bind(expires_at.map(ms))
                .bind(ms(now))
                .execute(&mut *tx)
                .await
                .db_context("record grant")?;
                move_counters(&mut tx, &AccountRef::Issuance, posted(true, *amount)).await?;
                t
            }
            LedgerOp::Hold {
                id,
                user,
                amount,
                timeout_at,
                reference,
            } => {
                let account = AccountRef::User(*user);
                // Lock the account first: expiry, the guard and the allocation below must see
                // the same grants.
                sqlx::query(
                    "UPDATE ledger_accounts SET debits_posted = debits_posted WHERE id = $1",
                )
                .bind(account.key())
                .execute(&mut *tx)
                .await
                .db_context("lock ledger account")?;
                let due = due_grants(&mut tx, &account, now).await?;
                let expiring: MicroCredits = due.iter().map(|(_, free)| (*free).max(0)).sum();
                let available: Option<i64> = sqlx::query_scalar(
                    "SELECT credits_posted - debits_posted - debits_pending FROM ledger_accounts WHERE id = $1",
                )
                .bind(account.key())
                .fetch_optional(&mut *tx)
                .await
                .db_context("read balance")?;
                let available = available.unwrap_or(0) - expiring;
                if available < *amount {
                    return Err(insufficient(available, *amount));
                }
                for (grant, _) in &due {
                    expire_grant(&mut tx, grant, now).await?;
                }
                let guarded = sqlx::query(
                    "UPDATE ledger_accounts SET debits_pending = debits_pending + $2
                     WHERE id = $1 AND credits_posted - debits_posted - debits_pending >= $2",
                )
                .bind(account.key())
                .bind(*amount)
                .execute(&mut *tx)
                .await
                .db_context("hold credits")?;
                if guarded.rows_affected() != 1 {
                    return Err(insufficient(available, *amount));
                }
                let timeout_at = onmemos_core::clock::to_millis(*timeout_at);
                let t = insert_transfer(
                    &mut tx,
                    Transfer {
                        expires_at: Some(timeout_at),
                        reference: reference.clone(),
                        ..Transfer::new(
                            id.clone(),
                            TransferKind::Hold,
                            account,
                            AccountRef::Revenue,
                            *amount,
                            now,
                        )
                    },
                )
                .await?;
                sqlx::query("INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id.as_str())
                    .bind(int::<i64, _>("seq", t.seq)?)
                    .bind(account.key())
                    .bind(*amount)
                    .bind(ms(timeout_at))
                    .execute(&mut *tx)
                    .await
                    .db_context("record hold")?;
                let grants = sqlx::query(
                    "SELECT id, amount - consumed - reserved - expired AS free FROM ledger_grants
                     WHERE user_id = $1 AND amount - consumed - reserved - expired > 0
                     ORDER BY priority, (expires_at IS NULL), expires_at, seq",
                )
                .bind(account.key())
                .fetch_all(&mut *tx)
                .await
                .db_context("find grants")?;
                let mut left = *amount;
                for (position, g) in grants.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    let grant: String = g.try_get("id").db_context("read grant")?;
                    let free: i64 = g.try_get("free").db_context("read grant")?;
                    let take = free.min(left);
                    left -= take;
                    sqlx::query("UPDATE ledger_grants SET reserved = reserved + $2 WHERE id = $1")
                        .bind(&grant)
                        .bind(take)
                        .execute(&mut *tx)
                        .await
                        .db_context("reserve grant")?;
                    sqlx::query("INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount) VALUES ($1, $2, $3, $4)")
                        .bind(id.as_str())
                        .bind(position as i64)
                        .bind(&grant)
                        .bind(take)
                        .execute(&mut *tx)
                        .await
                        .db_context("record allocation")?;
                }
                if left != 0 {
                    return Err(Error::internal("grants do not cover the account's balance"));
                }
                move_counters(
                    &mut tx,
                    &AccountRef::Revenue,
                    AccountCounters {
                        credits_pending: *amount,
                        ..Default::default()
                    },
                )
                .await?;
                t
            }
            LedgerOp::Post { id, hold, amount } => settle(
                &mut tx,
                hold,
                id.clone(),
                TransferKind::Post,
                *amount,
                now,
                true,
            )
            .await?
            .remove(0),
            LedgerOp::Void { id, hold } => {
                settle(&mut tx, hold, id.clone(), TransferKind::Void, 0, now, true)
                    .await?
                    .remove(0)
            }
        };
        tx.commit()
            .await
            .db_context("commit a ledger transaction")?;
        Ok(transfer)
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of attempts; transient
    /// failures (deadlocks, serialization failures, a busy SQLite file) are retried with a short
    /// growing pause.
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if e.kind() == ErrorKind::Unavailable && tries + 1 < ATTEMPTS => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(2u64 << tries)).await;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl LedgerRepo for SqlDatabase {
    async fn execute(&self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
        match self.retrying(|| self.execute_once(op, now)).await {
            // A concurrent duplicate committed the same id first (the unique index refused
            // ours): answer as a replay would.
            Err(e) if e.kind() == ErrorKind::Conflict => match self.transfer(op.id()).await? {
                Some(existing) => op.replay(existing),
                None => Err(e),
            },
            other => other,
        }
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Transfer>> {
        let holds = sqlx::query("SELECT id FROM ledger_holds WHERE pending = 1 AND timeout_at <= $1 ORDER BY timeout_at, seq")
            .bind(ms(now))
            .fetch_all(&self.reader)
            .await
            .db_context("find timed-out holds")?;
        let mut out = Vec::new();
        for row in &holds {
            let hold: String = row.try_get("id").db_context("read hold")?;
            let hold =
                TransferId::new(hold.clone()).map_err(|_| corrupt("ledger_holds.id", hold))?;
            let made = self
                .retrying(|| async {
                    let mut tx = self.begin_write().await?;
                    let id = expiry_id(&hold, None);
                    match settle(&mut tx, &hold, id, TransferKind::ExpireHold, 0, now, false).await
                    {
                        Ok(made) => {
                            tx.commit().await.db_context("commit hold expiry")?;
                            Ok(made)
                        }
                        // Settled meanwhile (by its owner or another replica): nothing to do.
                        Err(e) if e.kind() == ErrorKind::Conflict => Ok(Vec::new()),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            out.extend(made);
        }
        let grants = sqlx::query(
            "SELECT id, user_id FROM ledger_grants WHERE expiry_done = 0 AND expires_at <= $1 ORDER BY expires_at, seq",
        )
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await
        .db_context("find expired grants")?;
        for row in &grants {
            let grant: String = row.try_get("id").db_context("read grant")?;
            let grant =
                TransferId::new(grant.clone()).map_err(|_| corrupt("ledger_grants.id", grant))?;
            let user: String = row.try_get("user_id").db_context("read grant")?;
            let made = self
                .retrying(|| async {
                    let mut tx = self.begin_write().await?;
                    // Lock order: the user account before its grants.
                    sqlx::query(
                        "UPDATE ledger_accounts SET debits_posted = debits_posted WHERE id = $1",
                    )
                    .bind(&user)
                    .execute(&mut *tx)
                    .await
                    .db_context("lock ledger account")?;
                    let made = expire_grant(&mut tx, &grant, now).await?;
                    tx.commit().await.db_context("commit grant expiry")?;
                    Ok(made)
                })
                .await?;
            out.extend(made);
        }
        Ok(out)
    }

    async fn balance(&self, user: UserId) -> Result<Balance> {
        let account = AccountRef::User(user);
        let counters = sqlx::query("SELECT * FROM ledger_accounts WHERE id = $1")
            .bind(account.key())
            .fetch_optional(&self.reader)
            .await
            .db_context("read balance")?
            .as_ref()
            .map(counters_from)
            .transpose()?
            .unwrap_or_default();
        let grants = sqlx::query(
            "SELECT * FROM ledger_grants
             WHERE user_id = $1 AND (amount - consumed - reserved - expired > 0 OR reserved > 0)
             ORDER BY priority, (expires_at IS NULL), expires_at, seq",
        )
        .bind(account.key())
        .fetch_all(&self.reader)
        .await
        .db_context("read grants")?
        .iter()
        .map(grant_from)
        .collect::<Result<Vec<_>>>()?;
        Ok(Balance {
            user_id: user,
            counters,
            available: counters.available(),
            grants,
        })
    }

    async fn transfer(&self, id: &TransferId) -> Result<Option<Transfer>> {
        sqlx::query("SELECT * FROM ledger_transfers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.reader)
            .await
            .db_context("find transfer")?
            .as_ref()
            .map(transfer_from)
            .transpose()
    }

    async fn transfers(
        &self,
        account: Option<AccountRef>,
        kind: Option<TransferKind>,
        page: PageRequest<u64>,
    ) -> Result<Page<Transfer>> {
        let after = int::<i64, _>("cursor", page.after.unwrap_or(0))?;
        let rows = sqlx::query(
            "SELECT * FROM ledger_transfers
             WHERE seq > $1 AND ($2 IS NULL OR debit_account = $2 OR credit_account = $2)
               AND ($3 IS NULL OR kind = $3)
             ORDER BY seq LIMIT $4",
        )
        .bind(after)
        .bind(account.map(|a| a.key()))
        .bind(kind.map(TransferKind::as_str))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.reader)
        .await
        .db_context("list transfers")?;
        let items = rows.iter().map(transfer_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |t| t.seq))
    }

    async fn accounts(&self) -> Result<Vec<(AccountRef, AccountCounters)>> {
        sqlx::query("SELECT * FROM ledger_accounts ORDER BY id")
            .fetch_all(&self.reader)
            .await
            .db_context("list ledger accounts")?
            .iter()
            .map(|row| {
                let id: String = row.try_get("id").db_context("read account")?;
                Ok((parse("ledger_accounts.id", &id)?, counters_from(row)?))
            })
            .collect()
    }
}
