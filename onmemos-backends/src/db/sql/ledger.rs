//! The credit ledger on SQL: the semantics of `onmemos_core::ledger::ReferenceLedger`.
//!
//! Writes go through the commit queue ([`super::group_commit`]) and are applied in batches by
//! [`super::ledger_batch`]: the accounts a batch touches are locked in id order, the rules of
//! the reference model ([`onmemos_core::ledger::Book`]) decide every operation in memory, and
//! what changed is written back as a few set-based statements. Refusals are the model's own
//! errors. The tables' `CHECK` constraints (no user account below zero, no grant spent beyond
//! its amount, one settlement per hold) are the backstop.
//!
//! Reads (balances, transfers, accounts) go to the reader pool. The striped system accounts
//! are read as their row plus the sum of their stripes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::api::{Page, PageRequest};
use onmemos_core::id::UserId;
use onmemos_core::model::{
    AccountCounters, AccountRef, Balance, GrantBalance, GrantSource, LedgerOp, Transfer,
    TransferId, TransferKind,
};
use onmemos_core::ports::LedgerRepo;
use onmemos_core::{Error, ErrorKind, Result};
use sqlx::Row;

use super::SqlDatabase;
use super::error::{SqlxResultExt, corrupt};
use super::json_rows::{for_list, text_list};
use super::ledger_batch::{Outcome, Write};
use super::rows::{Columns, at, int, ms, opt_at, parse, required, transfer_id};

/// Attempts of a batch that failed with a transient error (deadlock, serialization).
const ATTEMPTS: u32 = 8;

/// Most expiries applied in one batch.
const EXPIRY_BATCH: usize = 1024;

/// The answer to an operation from its write's outcome: its own transfer.
fn first_transfer(outcome: Option<Outcome>) -> Result<Transfer> {
    outcome
        .ok_or_else(|| Error::internal("the ledger batch answered no outcome"))?
        .and_then(|made| {
            made.into_iter()
                .next()
                .ok_or_else(|| Error::internal("the ledger recorded no transfer"))
        })
}

pub(crate) fn transfer_from(row: &(impl Columns + ?Sized)) -> Result<Transfer> {
    let get = |c: &'static str| required(c, row.text(c)?);
    let num = |c: &'static str| required(c, row.num(c)?);
    let kind = get("kind")?;
    let id = transfer_id;
    Ok(Transfer {
        id: id("ledger_transfers.id", get("id")?)?,
        seq: int("ledger_transfers.seq", num("seq")?)?,
        kind: TransferKind::parse(&kind).ok_or_else(|| corrupt("ledger_transfers.kind", &kind))?,
        debit_account: parse("ledger_transfers.debit_account", &get("debit_account")?)?,
        credit_account: parse("ledger_transfers.credit_account", &get("credit_account")?)?,
        amount: num("amount")?,
        hold_id: row
            .text("hold_id")?
            .map(|v| id("ledger_transfers.hold_id", v))
            .transpose()?,
        grant_id: row
            .text("grant_id")?
            .map(|v| id("ledger_transfers.grant_id", v))
            .transpose()?,
        expires_at: opt_at(row.num("expires_at")?)?,
        priority: row
            .num("priority")?
            .map(|p| int("ledger_transfers.priority", p))
            .transpose()?,
        source: row
            .text("source")?
            .map(|s| GrantSource::parse(&s).ok_or_else(|| corrupt("ledger_transfers.source", s)))
            .transpose()?,
        reference: row.text("reference")?,
        created_at: at(num("created_at")?)?,
    })
}

pub(crate) fn counters_from(row: &(impl Columns + ?Sized)) -> Result<AccountCounters> {
    let get = |c: &'static str| required(c, row.num(c)?);
    Ok(AccountCounters {
        debits_posted: get("debits_posted")?,
        credits_posted: get("credits_posted")?,
        debits_pending: get("debits_pending")?,
        credits_pending: get("credits_pending")?,
    })
}

pub(crate) fn grant_from(row: &(impl Columns + ?Sized)) -> Result<GrantBalance> {
    let get = |c: &'static str| required(c, row.num(c)?);
    let id = required("id", row.text("id")?)?;
    let source = required("source", row.text("source")?)?;
    Ok(GrantBalance {
        id: transfer_id("ledger_grants.id", id)?,
        source: GrantSource::parse(&source)
            .ok_or_else(|| corrupt("ledger_grants.source", source))?,
        priority: int("ledger_grants.priority", get("priority")?)?,
        amount: get("amount")?,
        consumed: get("consumed")?,
        reserved: get("reserved")?,
        expired: get("expired")?,
        expires_at: opt_at(row.num("expires_at")?)?,
        created_at: at(get("created_at")?)?,
    })
}

impl SqlDatabase {
    /// Applies `writes` through the commit queue, retrying the batch as a whole while it
    /// fails transiently (a deadlock, a serialization failure, a busy file, or a transfer id
    /// another replica took at the same moment: the retry then sees it and answers as a
    /// replay).
    async fn submit(&self, writes: Vec<Write>, now: DateTime<Utc>) -> Result<Vec<Outcome>> {
        self.retrying(|| self.group.submit(writes.clone(), now))
            .await
    }

    /// The ids `sql` selects (`$1` is `now`): holds or grants whose time came.
    async fn due_ids(
        &self,
        sql: &'static str,
        now: DateTime<Utc>,
        column: &'static str,
    ) -> Result<Vec<TransferId>> {
        sqlx::query_scalar::<_, String>(sql)
            .bind(ms(now))
            .fetch_all(&self.reader)
            .await
            .db_context("find what is due in the ledger")?
            .into_iter()
            .map(|id| transfer_id(column, id))
            .collect()
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
        let mut outcomes = self.submit(vec![Write::Op(op.clone())], now).await?;
        first_transfer(outcomes.pop())
    }

    async fn apply_batch(
        &self,
        ops: &[LedgerOp],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Transfer>>> {
        let writes = ops.iter().cloned().map(Write::Op).collect();
        let outcomes = self.submit(writes, now).await?;
        Ok(outcomes
            .into_iter()
            .map(|o| first_transfer(Some(o)))
            .collect())
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Transfer>> {
        let holds = self
            .due_ids(
                "SELECT id FROM ledger_holds WHERE pending = 1 AND timeout_at <= $1
                 ORDER BY timeout_at, seq",
                now,
                "ledger_holds.id",
            )
            .await?;
        let grants = self
            .due_ids(
                "SELECT id FROM ledger_grants WHERE expiry_done = 0 AND expires_at <= $1
                 ORDER BY expires_at, seq",
                now,
                "ledger_grants.id",
            )
            .await?;
        let writes: Vec<Write> = holds
            .into_iter()
            .map(Write::ExpireHold)
            .chain(grants.into_iter().map(Write::ExpireGrant))
            .collect();
        let mut out = Vec::new();
        for chunk in writes.chunks(EXPIRY_BATCH) {
            for outcome in self.submit(chunk.to_vec(), now).await? {
                out.extend(outcome?);
            }
        }
        Ok(out)
    }

    async fn counters(&self, users: &[UserId]) -> Result<Vec<(UserId, AccountCounters)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = users.iter().map(ToString::to_string).collect();
        let list = text_list(keys.iter().map(String::as_str));
        let sql = "SELECT * FROM ledger_accounts WHERE id IN {list}";
        for_list(&self.reader, self.dialect, sql, &list, "read balances")
            .await?
            .iter()
            .map(|row| {
                let id: String = row.try_get("id").db_context("read account")?;
                match parse("ledger_accounts.id", &id)? {
                    AccountRef::User(u) => Ok((u, counters_from(row)?)),
                    other => Err(corrupt("ledger_accounts.id", other)),
                }
            })
            .collect()
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
        sqlx::query(
            "SELECT a.id, a.debits_posted + COALESCE(s.dp, 0) AS debits_posted,
                    a.credits_posted + COALESCE(s.cp, 0) AS credits_posted,
                    a.debits_pending + COALESCE(s.dq, 0) AS debits_pending,
                    a.credits_pending + COALESCE(s.cq, 0) AS credits_pending
             FROM ledger_accounts a LEFT JOIN (
                 SELECT account, CAST(SUM(debits_posted) AS BIGINT) AS dp,
                        CAST(SUM(credits_posted) AS BIGINT) AS cp,
                        CAST(SUM(debits_pending) AS BIGINT) AS dq,
                        CAST(SUM(credits_pending) AS BIGINT) AS cq
                 FROM ledger_account_stripes GROUP BY account) s ON s.account = a.id
             ORDER BY a.id",
        )
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
