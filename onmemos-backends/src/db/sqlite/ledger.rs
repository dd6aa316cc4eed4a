//! A ledger batch on SQLite's own write connection, on a blocking thread.
//!
//! The batch is the one [`crate::db::sql::ledger_batch`] applies — the same loads, the same
//! rules ([`Book`]), the same rows written — but run through `rusqlite` on a connection of its
//! own, with every row bound as values to a prepared statement. Through sqlx, each statement
//! is a message to the connection's thread and its rows come back one at a time, and a batch's
//! rows travel as JSON that SQLite parses again column by column (2.7 µs a transfer row,
//! against 1.4 µs bound).
//!
//! SQLite has one writer: the caller holds the sqlx writer connection for as long as this
//! runs, so no other write of this process can start, and `BEGIN IMMEDIATE` waits out (busy
//! timeout) any other process's.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use onmemos_core::ledger::{Book, Changes};
use onmemos_core::model::{AccountRef, GrantSource, TransferId};
use onmemos_core::{Error, ErrorKind, Result};
use rusqlite::{Connection, TransactionBehavior, params};

use super::inline::{ColumnIndex, Indexed};
use crate::db::sql::Columns;
use crate::db::sql::ledger_batch::{
    self as batch, HOLDS, KNOWN_TRANSFERS, LIVE_GRANTS, Outcome, PROVISIONAL_SEQ, RESERVATIONS,
    Write,
};
use crate::db::sql::rows::ms;

/// `err` of the step `what` as the ledger reports it: a unique or foreign key refusal is a
/// conflict, a busy or locked file is worth a retry, a `CHECK` refusal is bad input.
pub(crate) fn error(what: &'static str, err: rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    let kind = match &err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::ConstraintViolation => match e.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
                | rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::InvalidInput,
                _ => ErrorKind::Conflict,
            },
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("database error while trying to {what}")).with_source(err)
}

/// `sql` with its `IN {list}` reading the JSON array of text bound at `$1`.
fn listed(sql: &str) -> String {
    crate::db::sql::json_rows::list_sql(crate::db::sql::Dialect::Sqlite, sql)
}

/// The rows `sql` (with an `IN {list}`) answers for `list`, each parsed by `parse`.
fn rows<T>(
    c: &Connection,
    sql: &str,
    list: &str,
    what: &'static str,
    parse: impl Fn(&dyn Columns) -> Result<T>,
) -> Result<Vec<T>> {
    let mut statement = c.prepare_cached(&listed(sql)).map_err(|e| error(what, e))?;
    let index = ColumnIndex::of_statement(&statement);
    let mut found = statement.query([list]).map_err(|e| error(what, e))?;
    let mut parsed = Vec::new();
    while let Some(row) = found.next().map_err(|e| error(what, e))? {
        parsed.push(parse(&Indexed { row, index: &index })?);
    }
    Ok(parsed)
}

/// A ledger position as SQLite stores it.
fn stored_seq(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::internal("a ledger position too large"))
}

/// A JSON array of the strings in `set`.
fn list(set: &BTreeSet<String>) -> String {
    crate::db::sql::json_rows::text_list(set.iter().map(String::as_str))
}

/// Applies `writes` in one transaction on `c`, as [`batch::apply`] does.
pub(crate) fn apply(c: &mut Connection, writes: &[(Write, DateTime<Utc>)]) -> Result<Vec<Outcome>> {
    let batch::Touched {
        holds,
        expiring_grants,
        granted,
        mut users,
        ids,
    } = batch::touched(writes);
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| error("begin a ledger batch", e))?;
    let mut book = Book::new(PROVISIONAL_SEQ);
    if !holds.is_empty() {
        let holds_json = list(&holds);
        let reservations = rows(
            &tx,
            RESERVATIONS,
            &holds_json,
            "load reservations",
            batch::reservation_row,
        )?;
        let loaded = rows(&tx, HOLDS, &holds_json, "load holds", batch::hold_row)?;
        let owners = batch::load_holds_into(&mut book, reservations, loaded);
        users.extend(owners.into_iter().map(|u| u.to_string()));
    }
    if !expiring_grants.is_empty() {
        let owners = rows(
            &tx,
            "SELECT user_id FROM ledger_grants WHERE id IN {list}",
            &list(&expiring_grants),
            "find the owners of grants",
            |row| crate::db::sql::rows::required("user_id", row.text("user_id")?),
        )?;
        users.extend(owners);
    }
    if !granted.is_empty() {
        tx.execute(
            &listed(
                "INSERT INTO ledger_accounts (id, kind) SELECT id, 'user' FROM users
                 WHERE id IN {list} ON CONFLICT (id) DO NOTHING",
            ),
            [list(&granted)],
        )
        .map_err(|e| error("open the accounts of granted users", e))?;
        users.insert(AccountRef::Issuance.key());
    }
    let users_json = list(&users);
    let mut opened = BTreeSet::new();
    for (id, account, counters) in rows(
        &tx,
        "SELECT * FROM ledger_accounts WHERE id IN {list} ORDER BY id",
        &users_json,
        "load ledger accounts",
        batch::account_row,
    )? {
        book.load_account(account, counters);
        opened.insert(id);
    }
    for grant in rows(
        &tx,
        LIVE_GRANTS,
        &users_json,
        "load grants",
        batch::grant_row,
    )? {
        book.load_grant(grant);
    }
    if !ids.is_empty() {
        for transfer in rows(
            &tx,
            KNOWN_TRANSFERS,
            &list(&ids),
            "find replayed transfers",
            |row| crate::db::sql::ledger::transfer_from(row),
        )? {
            book.load_transfer(transfer);
        }
    }

    let mut outcomes = batch::decide(&mut book, writes, &opened);

    if !book.made().is_empty() {
        // One writer: the positions after the last one are free.
        let last: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers",
                [],
                |r| r.get(0),
            )
            .map_err(|e| error("take ledger positions", e))?;
        let last =
            u64::try_from(last).map_err(|_| Error::internal("a negative ledger position"))?;
        let seqs: Vec<u64> = (1..=book.made().len() as u64).map(|i| last + i).collect();
        batch::number(&mut book, &mut outcomes, &seqs)?;
    }
    let changes = book.changes();
    if changes == Changes::default() {
        // Nothing to write (replays and refusals only).
        return Ok(outcomes);
    }
    write(&tx, &changes)?;
    tx.commit().map_err(|e| error("commit a ledger batch", e))?;
    Ok(outcomes)
}

/// Writes what a batch changed, a bound row at a time, in the order the foreign keys need
/// (transfers before the holds and grants they make, holds before their reservations).
fn write(c: &Connection, changes: &Changes) -> Result<()> {
    let step = |what: &'static str| move |e| error(what, e);
    let mut insert = c
        .prepare_cached(
            "INSERT INTO ledger_transfers (seq, id, kind, debit_account, credit_account, amount,
                 hold_id, grant_id, expires_at, priority, source, reference, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .map_err(step("record transfers"))?;
    for t in &changes.transfers {
        let seq = stored_seq(t.seq)?;
        insert
            .execute(params![
                seq,
                t.id.as_str(),
                t.kind.as_str(),
                t.debit_account.key(),
                t.credit_account.key(),
                t.amount,
                t.hold_id.as_ref().map(TransferId::as_str),
                t.grant_id.as_ref().map(TransferId::as_str),
                t.expires_at.map(ms),
                t.priority,
                t.source.map(GrantSource::as_str),
                t.reference.as_deref(),
                ms(t.created_at),
            ])
            .map_err(step("record transfers"))?;
    }

    // Accounts: users and issuance on their own rows, the system accounts on their one stripe,
    // in account id order (breakage, then revenue).
    // An account's movement: `?1` the account, `?2`–`?5` what its counters moved by.
    const MOVE: &str = "SET debits_posted = debits_posted + ?2,
         credits_posted = credits_posted + ?3, debits_pending = debits_pending + ?4,
         credits_pending = credits_pending + ?5";
    let mut own = c
        .prepare_cached(&format!("UPDATE ledger_accounts {MOVE} WHERE id = ?1"))
        .map_err(step("update accounts"))?;
    let mut stripe = c
        .prepare_cached(&format!(
            "UPDATE ledger_account_stripes {MOVE} WHERE account = ?1 AND stripe = 0"
        ))
        .map_err(step("update a system account"))?;
    let mut striped = Vec::new();
    for (account, d) in &changes.accounts {
        let row = (
            account.key(),
            d.debits_posted,
            d.credits_posted,
            d.debits_pending,
            d.credits_pending,
        );
        match account {
            AccountRef::Revenue | AccountRef::Breakage => striped.push(row),
            AccountRef::User(_) | AccountRef::Issuance => {
                own.execute(params![row.0, row.1, row.2, row.3, row.4])
                    .map_err(step("update accounts"))?;
            }
        }
    }
    striped.sort_by(|a, b| a.0.cmp(&b.0));
    for row in striped {
        stripe
            .execute(params![row.0, row.1, row.2, row.3, row.4])
            .map_err(step("update a system account"))?;
    }

    let mut new_grant = c
        .prepare_cached(
            "INSERT INTO ledger_grants (id, seq, user_id, source, priority, amount, consumed,
                 reserved, expired, expires_at, expiry_done, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(step("record grants"))?;
    for g in &changes.new_grants {
        let b = &g.balance;
        let seq = stored_seq(g.seq)?;
        new_grant
            .execute(params![
                b.id.as_str(),
                seq,
                g.user.to_string(),
                b.source.as_str(),
                b.priority,
                b.amount,
                b.consumed,
                b.reserved,
                b.expired,
                b.expires_at.map(ms),
                i64::from(g.expiry_done),
                ms(b.created_at),
            ])
            .map_err(step("record grants"))?;
    }
    let mut grant = c
        .prepare_cached(
            "UPDATE ledger_grants SET consumed = ?2, reserved = ?3, expired = ?4, expiry_done = ?5
             WHERE id = ?1",
        )
        .map_err(step("update grants"))?;
    for g in &changes.grants {
        let b = &g.balance;
        grant
            .execute(params![
                b.id.as_str(),
                b.consumed,
                b.reserved,
                b.expired,
                i64::from(g.expiry_done),
            ])
            .map_err(step("update grants"))?;
    }

    let mut hold = c
        .prepare_cached(
            "INSERT INTO ledger_holds (id, seq, user_id, amount, timeout_at, pending)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(step("record holds"))?;
    for h in &changes.new_holds {
        let seq = stored_seq(h.seq)?;
        hold.execute(params![
            h.id.as_str(),
            seq,
            h.user.to_string(),
            h.amount,
            ms(h.timeout_at),
            i64::from(h.pending),
        ])
        .map_err(step("record holds"))?;
    }
    let mut settle = c
        .prepare_cached("UPDATE ledger_holds SET pending = 0 WHERE id = ?1")
        .map_err(step("settle holds"))?;
    for h in &changes.settled_holds {
        settle
            .execute([h.id.as_str()])
            .map_err(step("settle holds"))?;
    }
    let mut reserve = c
        .prepare_cached(
            "INSERT INTO ledger_hold_allocations (hold_id, position, grant_id, amount, taken)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(step("record reservations"))?;
    for a in batch::allocation_rows(&changes.new_holds) {
        reserve
            .execute(params![
                a.hold_id, a.position, a.grant_id, a.amount, a.taken
            ])
            .map_err(step("record reservations"))?;
    }
    let mut taken = c
        .prepare_cached(
            "UPDATE ledger_hold_allocations SET taken = ?3 WHERE hold_id = ?1 AND position = ?2",
        )
        .map_err(step("record what reservations paid"))?;
    for a in batch::allocation_rows(&changes.settled_holds) {
        taken
            .execute(params![a.hold_id, a.position, a.taken])
            .map_err(step("record what reservations paid"))?;
    }
    Ok(())
}
