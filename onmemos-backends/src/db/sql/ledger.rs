//! The credit ledger on SQL: the semantics of `onmemos_core::ledger::ReferenceLedger`.
//!
//! The rules live in the schema (`migrations/*/0004_ledger_triggers.sql`): an operation is one
//! `INSERT` of its transfer, and triggers apply it to the accounts, grants and holds within
//! that statement. One statement is one round trip and one atomic commit, and the rules hold
//! for any writer of the tables, not only this code. Refusals come back as
//! `ledger:<reason>[:<figure>]` and are mapped to the API's errors here.
//!
//! Concurrency: a user account can never go below zero because every hold passes one guarded
//! `UPDATE … WHERE credits_posted - debits_posted - debits_pending >= amount` (the row count
//! decides) and the table's CHECK backs it up. A hold is settled once: settling flips
//! `pending` with `UPDATE … WHERE pending = 1`, and a unique index allows one settlement per
//! hold. On PostgreSQL (READ COMMITTED) rows are locked in one order — the hold, the user
//! account, its grants, then the shared system accounts — and deadlocks or serialization
//! failures are retried; SQLite has one writer connection.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::api::{Page, PageRequest};
use onmemos_core::id::UserId;
use onmemos_core::ledger::{expiry_id, hold_not_found, hold_settled, hold_timed_out, insufficient};
use onmemos_core::model::{
    AccountCounters, AccountRef, Balance, GrantBalance, GrantSource, LedgerOp, MicroCredits,
    Transfer, TransferId, TransferKind, balance_cap, ledger_full,
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

/// Records a transfer given in full (a grant, a hold, a grant's expiry); the triggers apply it.
/// Returns its row as stored.
async fn insert_transfer<'e, E>(executor: E, t: &Transfer) -> Result<AnyRow, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, hold_id,
             grant_id, expires_at, priority, source, reference, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
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
    .fetch_one(executor)
    .await
}

/// Records the settlement of `hold` (a post of `charge`, a void or an expiry: `charge` is
/// `None` for the last two, which record the held amount). The account comes from the hold.
/// Returns its row as stored; `None` when there is no such hold.
async fn insert_settlement<'e, E>(
    executor: E,
    settlement: &Settlement<'_>,
    now: DateTime<Utc>,
) -> Result<Option<AnyRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO ledger_transfers (id, kind, debit_account, credit_account, amount, hold_id,
             created_at)
         SELECT $1, $2, user_id, 'sys:revenue', COALESCE($3, amount), id, $4
         FROM ledger_holds WHERE id = $5 RETURNING *",
    )
    .bind(settlement.id.as_str())
    .bind(settlement.kind.as_str())
    .bind(settlement.charge)
    .bind(ms(now))
    .bind(settlement.hold.as_str())
    .fetch_optional(executor)
    .await
}

/// The settlement of a hold, as a write records it.
struct Settlement<'a> {
    id: &'a TransferId,
    kind: TransferKind,
    hold: &'a TransferId,
    /// What a post charges; `None` for a void or an expiry (which record the held amount).
    charge: Option<MicroCredits>,
}

/// What a write records: a transfer given in full (a grant, a hold), or a settlement, whose
/// account and, for a void or an expiry, amount come from its hold.
enum Record<'a> {
    Transfer(Transfer),
    Settlement(Settlement<'a>),
}

/// A write the commit queue applies: a caller's operation, or a timed-out hold's expiry (which
/// settles like a void of `expiry_id(hold)`, recorded as `expire_hold`, with no timeout check).
#[derive(Debug, Clone)]
pub(crate) struct Write {
    /// The operation (a void, for an expiry).
    pub(crate) op: LedgerOp,
    /// Whether this is a hold's expiry.
    pub(crate) expiry: bool,
}

impl Write {
    /// A caller's operation.
    pub(crate) fn op(op: &LedgerOp) -> Self {
        Self {
            op: op.clone(),
            expiry: false,
        }
    }

    /// The expiry of a timed-out hold.
    pub(crate) fn expire(hold: &TransferId) -> Self {
        Self {
            op: LedgerOp::Void {
                id: expiry_id(hold, None),
                hold: hold.clone(),
            },
            expiry: true,
        }
    }

    /// What this write records at `now`.
    fn record(&self, now: DateTime<Utc>) -> Result<Record<'_>> {
        Ok(match &self.op {
            LedgerOp::Post { id, hold, amount } => Record::Settlement(Settlement {
                id,
                kind: TransferKind::Post,
                hold,
                charge: Some(*amount),
            }),
            LedgerOp::Void { id, hold } => Record::Settlement(Settlement {
                id,
                kind: if self.expiry {
                    TransferKind::ExpireHold
                } else {
                    TransferKind::Void
                },
                hold,
                charge: None,
            }),
            op => Record::Transfer(
                op.transfer(now)
                    .ok_or_else(|| Error::internal("a grant or hold without a transfer"))?,
            ),
        })
    }
}

/// The error a refused operation gets: the triggers raise `ledger:<reason>[:<figure>]`; a
/// second settlement of a hold meets the unique index on settlements (`unique` says a unique
/// index refused the row). `None` when `message` is no refusal: any other database error, or
/// the transfer id's own index (the caller then looks for the transfer to replay).
fn refusal(op: &LedgerOp, unique: bool, message: &str) -> Option<Error> {
    let hold = match op {
        LedgerOp::Post { hold, .. } | LedgerOp::Void { hold, .. } => Some(hold),
        _ => None,
    };
    if unique {
        let settlement = message.contains("ledger_transfers_settlement") // PostgreSQL
            || message.contains("ledger_transfers.hold_id"); // SQLite
        return hold.filter(|_| settlement).map(hold_settled);
    }
    let reason = message.strip_prefix("ledger:")?;
    let (reason, figure) = reason.split_once(':').unwrap_or((reason, ""));
    let figure = figure.parse::<MicroCredits>().unwrap_or(0);
    Some(match (reason, op, hold) {
        ("insufficient", LedgerOp::Hold { amount, .. }, _) => insufficient(figure, *amount),
        ("settled", _, Some(hold)) => hold_settled(hold),
        ("timed_out", _, Some(hold)) => hold_timed_out(hold),
        ("over_held", LedgerOp::Post { amount, .. }, _) => Error::invalid(
            "amount",
            format!("cannot post {amount}: the hold is for {figure}"),
        ),
        ("balance_cap", LedgerOp::Grant { amount, .. }, _) => balance_cap(figure, *amount),
        ("ledger_full", LedgerOp::Grant { amount, .. }, _) => ledger_full(figure, *amount),
        ("no_user", LedgerOp::Grant { user, .. }, _) => {
            Error::not_found(format!("no user {user}")).with_context("field", "user_id")
        }
        _ => Error::internal(format!("the ledger refused an operation: {message}")),
    })
}

/// A transfer id already taken: the caller answers as a replay would.
fn id_taken(op: &LedgerOp) -> Error {
    Error::conflict(format!("transfer id `{}` exists", op.id())).with_context("field", "id")
}

/// What an operation's statement did: `Ok(outcome)` when the database answered for this
/// operation (its transfer, or its refusal), `Err` for a failure of the statement itself (the
/// connection, a busy file), which a batch cannot go on from.
pub(super) async fn statement_outcome<'e, E>(
    executor: E,
    write: &Write,
    now: DateTime<Utc>,
) -> Result<Result<Transfer>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let op = &write.op;
    let done = match write.record(now)? {
        Record::Transfer(t) => insert_transfer(executor, &t).await.map(Some),
        Record::Settlement(settlement) => insert_settlement(executor, &settlement, now).await,
    };
    match done {
        Ok(Some(row)) => Ok(transfer_from(&row)),
        Ok(None) => Ok(Err(no_hold(op))),
        Err(sqlx::Error::Database(db)) => {
            let unique = db.kind() == sqlx::error::ErrorKind::UniqueViolation;
            match refusal(op, unique, db.message()) {
                Some(refused) => Ok(Err(refused)),
                None if unique => Ok(Err(id_taken(op))),
                None => Err(super::error::convert(
                    "record a transfer",
                    sqlx::Error::Database(db),
                )),
            }
        }
        Err(e) => Err(super::error::convert("record a transfer", e)),
    }
}

/// The refusal of a settlement whose hold is not there.
fn no_hold(op: &LedgerOp) -> Error {
    match op {
        LedgerOp::Post { hold, .. } | LedgerOp::Void { hold, .. } => hold_not_found(hold),
        _ => Error::internal("the ledger recorded no transfer"),
    }
}

/// Applies one operation alone: one autocommit statement, one round trip.
pub(super) async fn apply_one(
    writer: &sqlx::AnyPool,
    write: &Write,
    now: DateTime<Utc>,
) -> Result<Transfer> {
    statement_outcome(writer, write, now).await?
}

/// A write as `ledger_apply` (PostgreSQL) takes it.
pub(super) fn transfer_json(write: &Write, now: DateTime<Utc>) -> Result<serde_json::Value> {
    Ok(match write.record(now)? {
        Record::Transfer(t) => serde_json::json!({
            "id": t.id.as_str(),
            "kind": t.kind.as_str(),
            "debit_account": t.debit_account.key(),
            "credit_account": t.credit_account.key(),
            "amount": t.amount,
            "expires_at": t.expires_at.map(ms),
            "priority": t.priority,
            "source": t.source.map(GrantSource::as_str),
            "reference": t.reference,
            "created_at": ms(t.created_at),
        }),
        Record::Settlement(s) => serde_json::json!({
            "id": s.id.as_str(),
            "kind": s.kind.as_str(),
            "hold_id": s.hold.as_str(),
            "amount": s.charge,
            "created_at": ms(now),
        }),
    })
}

/// The outcome of one operation from a row of `ledger_apply`: its `state` and `message` are
/// the SQLSTATE and message it was refused with, else the row is the transfer (or all NULL
/// when the hold to settle was not there).
pub(super) fn outcome_of_row(op: &LedgerOp, row: &AnyRow) -> Result<Transfer> {
    let state: Option<String> = row.try_get("state").db_context("read batch outcome")?;
    let message: Option<String> = row.try_get("message").db_context("read batch outcome")?;
    let Some(state) = state.as_deref() else {
        let seq: Option<i64> = row.try_get("seq").db_context("read batch outcome")?;
        return match seq {
            Some(_) => transfer_from(row),
            None => Err(no_hold(op)),
        };
    };
    let message = message.unwrap_or_default();
    let message = message.as_str();
    let unique = state == "23505";
    match refusal(op, unique, message) {
        Some(refused) => Err(refused),
        None if unique => Err(id_taken(op)),
        None if super::error::postgres_transient(state) => Err(Error::unavailable(format!(
            "the ledger operation met a transient failure ({state}): {message}"
        ))),
        None => Err(Error::internal(format!(
            "the ledger operation failed ({state}): {message}"
        ))),
    }
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

    /// Expires one timed-out hold, through the commit queue: its expiry transfer, then any
    /// credit it released on grants whose own expiry was processed. Nothing when it was settled
    /// meanwhile (by its owner, another caller or another replica).
    async fn expire_hold(&self, hold: &TransferId, now: DateTime<Utc>) -> Result<Vec<Transfer>> {
        let write = Write::expire(hold);
        let id = write.op.id().clone();
        let made = match self.group.submit(write, now).await {
            Ok(t) => t,
            Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        // Credit released on grants whose own expiry was processed went to breakage, under
        // ids derived from the grant and this expiry.
        let grants: Vec<String> = sqlx::query_scalar(
            "SELECT grant_id FROM ledger_hold_allocations WHERE hold_id = $1 ORDER BY position",
        )
        .bind(hold.as_str())
        .fetch_all(&self.writer)
        .await
        .db_context("read hold allocations")?;
        let mut out = vec![made];
        for grant in grants {
            let grant = TransferId::new(grant.clone())
                .map_err(|_| corrupt("ledger_hold_allocations.grant_id", grant))?;
            out.extend(self.transfer(&expiry_id(&grant, Some(&id))).await?);
        }
        Ok(out)
    }

    /// Processes the expiry of a grant whose time has come: marks it done and moves its free
    /// remainder to breakage. `None` when another transaction did it first, or nothing was free.
    async fn expire_grant(
        &self,
        grant: &TransferId,
        now: DateTime<Utc>,
    ) -> Result<Option<Transfer>> {
        let mut tx = self.begin_write().await?;
        if self.dialect == Dialect::Postgres {
            // Ledger writes take the ledger's lock before any row (see ledger_lock()).
            sqlx::query("SELECT ledger_lock()")
                .execute(&mut *tx)
                .await
                .db_context("take the ledger lock")?;
        }
        let row = sqlx::query(
            "UPDATE ledger_grants SET expiry_done = 1 WHERE id = $1 AND expiry_done = 0
             RETURNING user_id, amount - consumed - reserved - expired AS free",
        )
        .bind(grant.as_str())
        .fetch_optional(&mut *tx)
        .await
        .db_context("expire grant")?;
        let Some(row) = row else { return Ok(None) };
        let free: i64 = row.try_get("free").db_context("read grant")?;
        let user: String = row.try_get("user_id").db_context("read grant")?;
        let made = if free > 0 {
            let t = Transfer {
                grant_id: Some(grant.clone()),
                ..Transfer::new(
                    expiry_id(grant, None),
                    TransferKind::ExpireGrant,
                    parse("ledger_grants.user_id", &user)?,
                    AccountRef::Breakage,
                    free,
                    now,
                )
            };
            let row = insert_transfer(&mut *tx, &t)
                .await
                .db_context("record grant expiry")?;
            Some(transfer_from(&row)?)
        } else {
            None
        };
        tx.commit().await.db_context("commit grant expiry")?;
        Ok(made)
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
        match self
            .retrying(|| self.group.submit(Write::op(op), now))
            .await
        {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == ErrorKind::Unavailable => Err(e),
            // Refused: if the id is taken (a replay, or a concurrent duplicate that committed
            // first), answer as a replay does; else the refusal stands.
            Err(e) => match self.transfer(op.id()).await? {
                Some(existing) => op.replay(existing),
                None => Err(e),
            },
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
            out.extend(self.retrying(|| self.expire_hold(&hold, now)).await?);
        }
        let grants = sqlx::query(
            "SELECT id FROM ledger_grants WHERE expiry_done = 0 AND expires_at <= $1 ORDER BY expires_at, seq",
        )
        .bind(ms(now))
        .fetch_all(&self.reader)
        .await
        .db_context("find expired grants")?;
        for row in &grants {
            let grant: String = row.try_get("id").db_context("read grant")?;
            let grant =
                TransferId::new(grant.clone()).map_err(|_| corrupt("ledger_grants.id", grant))?;
            let made = self.retrying(|| self.expire_grant(&grant, now)).await?;
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
