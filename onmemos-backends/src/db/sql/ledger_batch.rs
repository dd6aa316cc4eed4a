//! A batch of ledger writes in one transaction, set-based (TigerBeetle's way over SQL).
//!
//! 1. Read who the batch touches: the owners of the holds it settles and of the grants it
//!    expires (immutable columns, so read before any lock), and open the accounts of users
//!    it grants to (a statement of its own: an empty account is harmless).
//! 2. Lock those accounts, in id order (`FOR UPDATE` on PostgreSQL; SQLite has one writer),
//!    and load what the rules need into a [`Book`]: their counters, their live grants, the
//!    holds settled with their reservations, and the transfers already stored under the
//!    batch's ids (which answer as replays).
//! 3. Apply every write in order in memory. The rules are the reference model's own; each
//!    outcome (a transfer, a refusal, a replay) is decided there, per account.
//! 4. Write what changed as a few set-based statements over JSON row sets: the transfers, the
//!    account counters, the grants, the holds and their reservations, and the movement of the
//!    system accounts on one stripe the batch can lock without waiting (`SKIP LOCKED`).
//!
//! Locks are taken in one global order — accounts by id, then stripes — so batches of several
//! replicas never deadlock, and batches on different accounts commit in parallel. The
//! `CHECK` constraints of the tables (no account below zero, no grant over-spent) stay as the
//! backstop.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use onmemos_core::id::UserId;
use onmemos_core::ledger::{Allocation, Book, Changes, GrantState, HoldState};
use onmemos_core::model::{
    AccountCounters, AccountRef, GrantSource, LedgerOp, Transfer, TransferId,
};
use onmemos_core::{Error, Result};
use serde_json::{Value, json};
use sqlx::{Any, AnyPool, Transaction};

use super::error::{SqlxResultExt, corrupt};
use super::json_rows::{Ty, for_list, parse_list, records, text_list};
use super::rows::{Columns, at, int, ms, parse, required, transfer_id};
use super::{Dialect, Inline};

/// Provisional ledger positions of the transfers a batch makes, above any stored one; the
/// real ones are taken when the batch writes.
pub(crate) const PROVISIONAL_SEQ: u64 = 1 << 60;

/// Stripes of each striped system account on PostgreSQL (the migration makes them).
const STRIPES: i64 = 16;

/// One write of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// A caller's operation.
    Op(LedgerOp),
    /// The release of a hold whose timeout passed (nothing if it was settled meanwhile).
    ExpireHold(TransferId),
    /// The expiry of a grant whose time came (nothing if it was processed meanwhile).
    ExpireGrant(TransferId),
}

/// What one write did: the transfers it made (an operation's own first), or why it was
/// refused.
pub(crate) type Outcome = Result<Vec<Transfer>>;

/// Runs a statement built from constants over one JSON row set, if it has rows.
async fn write_rows<R: serde::Serialize>(
    tx: &mut Transaction<'static, Any>,
    sql: String,
    rows: Vec<R>,
    what: &'static str,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows = serde_json::to_string(&rows)
        .map_err(|e| onmemos_core::Error::internal(what).with_source(e))?;
    // Built from constants only: the values are bound.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rows)
        .execute(&mut **tx)
        .await
        .db_context(what)?;
    Ok(())
}

fn text(row: &dyn Columns, c: &'static str) -> Result<String> {
    required(c, row.text(c)?)
}

fn i64_of(row: &dyn Columns, c: &'static str) -> Result<i64> {
    required(c, row.num(c)?)
}

fn user_of(column: &'static str, v: &str) -> Result<UserId> {
    match parse(column, v)? {
        AccountRef::User(u) => Ok(u),
        other => Err(corrupt(column, other)),
    }
}

/// A write refused by a unique index: a concurrent batch (another replica) recorded a
/// transfer under one of the batch's ids, or a settlement of one of its holds, after the batch
/// looked. The retry sees it and answers as a replay or a refusal.
fn id_taken(e: Error) -> Error {
    if e.kind() == onmemos_core::ErrorKind::Conflict {
        Error::unavailable(format!("a concurrent ledger batch took an id first: {e}"))
    } else {
        e
    }
}

/// Who and what a batch touches.
pub(crate) struct Touched {
    /// The holds it settles or expires.
    pub(crate) holds: BTreeSet<String>,
    /// The grants it expires.
    pub(crate) expiring_grants: BTreeSet<String>,
    /// The users it grants to.
    pub(crate) granted: BTreeSet<String>,
    /// The accounts it locks (more join once the holds and grants name their owners).
    pub(crate) users: BTreeSet<String>,
    /// The ids of its operations.
    pub(crate) ids: BTreeSet<String>,
}

/// Who and what `writes` touch.
pub(crate) fn touched(writes: &[(Write, DateTime<Utc>)]) -> Touched {
    let mut t = Touched {
        holds: BTreeSet::new(),
        expiring_grants: BTreeSet::new(),
        granted: BTreeSet::new(),
        users: BTreeSet::new(),
        ids: BTreeSet::new(),
    };
    for (w, _) in writes {
        match w {
            Write::Op(op) => {
                t.ids.insert(op.id().as_str().to_owned());
                match op {
                    LedgerOp::Grant { user, .. } => {
                        t.granted.insert(user.to_string());
                        t.users.insert(user.to_string());
                    }
                    LedgerOp::Hold { user, .. } => {
                        t.users.insert(user.to_string());
                    }
                    LedgerOp::Post { hold, .. } | LedgerOp::Void { hold, .. } => {
                        t.holds.insert(hold.as_str().to_owned());
                    }
                }
            }
            Write::ExpireHold(hold) => {
                t.holds.insert(hold.as_str().to_owned());
            }
            Write::ExpireGrant(grant) => {
                t.expiring_grants.insert(grant.as_str().to_owned());
            }
        }
    }
    t
}

/// Applies `writes` to the loaded `book`, in order: each one's outcome. A grant to a user
/// without an account (`opened` lists those that have one) is refused, unless a replay.
pub(crate) fn decide(
    book: &mut Book,
    writes: &[(Write, DateTime<Utc>)],
    opened: &BTreeSet<String>,
) -> Vec<Outcome> {
    writes
        .iter()
        .map(|(w, now)| match w {
            Write::Op(op @ LedgerOp::Grant { user, .. })
                if !opened.contains(&user.to_string()) && book.transfer(op.id()).is_none() =>
            {
                Err(Error::not_found(format!("no user {user}")).with_context("field", "user_id"))
            }
            Write::Op(op) => book.apply(op, *now).map(|t| vec![t]),
            Write::ExpireHold(hold) => Ok(book.expire_hold(hold, *now)),
            Write::ExpireGrant(grant) => Ok(book.expire_grant(grant, *now).into_iter().collect()),
        })
        .collect()
}

/// Gives the transfers `book` made the ledger positions `seqs`, in the outcomes too.
pub(crate) fn number(book: &mut Book, outcomes: &mut [Outcome], seqs: &[u64]) -> Result<()> {
    let renumbered = book.renumber(seqs)?;
    for t in outcomes.iter_mut().flatten().flatten() {
        if let Some(&seq) = renumbered.get(&t.seq) {
            t.seq = seq;
        }
    }
    Ok(())
}

/// Applies `writes` (each with its own "now") in one transaction and returns each one's
/// outcome; `Err` when the transaction failed as a whole (nothing of it was written). A file
/// SQLite database (`inline`) applies it on its own write connection
/// ([`crate::db::sqlite::ledger`]); PostgreSQL and an in-memory SQLite database through sqlx.
pub(crate) async fn apply(
    writer: &AnyPool,
    dialect: Dialect,
    inline: Option<&Inline>,
    writes: Vec<(Write, DateTime<Utc>)>,
) -> Result<Vec<Outcome>> {
    #[cfg(feature = "sqlite")]
    if dialect == Dialect::Sqlite
        && let Some(inline) = inline
    {
        // SQLite's own write connection, every row bound (see `db::sqlite::ledger`).
        return inline
            .write(writer, move |c| {
                crate::db::sqlite::ledger::apply(c, &writes)
            })
            .await
            .map_err(id_taken);
    }
    // Without SQLite there is no value of `Inline`: nothing to take.
    #[cfg(not(feature = "sqlite"))]
    let _ = inline;
    let writes = &writes[..];
    // 1. Who the batch touches.
    let Touched {
        holds,
        expiring_grants,
        granted,
        mut users,
        ids,
    } = touched(writes);
    let holds_json = text_list(holds.iter().map(String::as_str));
    // SQLite has one writer: nothing changes between the batch's reads, so its holds are
    // loaded first, in the transaction, and name their owners. PostgreSQL needs the owners
    // first, to lock their accounts before it reads the holds' state.
    let holds_first = dialect == Dialect::Sqlite;
    if !holds.is_empty() && !holds_first {
        let sql = "SELECT user_id FROM ledger_holds WHERE id IN {list}";
        for row in for_list(
            writer,
            dialect,
            sql,
            &holds_json,
            "find the owners of holds",
        )
        .await?
        {
            users.insert(text(&row, "user_id")?);
        }
    }
    if !expiring_grants.is_empty() {
        let sql = "SELECT user_id FROM ledger_grants WHERE id IN {list}";
        let list = text_list(expiring_grants.iter().map(String::as_str));
        for row in for_list(writer, dialect, sql, &list, "find the owners of grants").await? {
            users.insert(text(&row, "user_id")?);
        }
    }
    if !granted.is_empty() {
        let sql = "INSERT INTO ledger_accounts (id, kind) SELECT id, 'user' FROM users
                   WHERE id IN {list} ON CONFLICT (id) DO NOTHING";
        let list = text_list(granted.iter().map(String::as_str));
        for_list(
            writer,
            dialect,
            sql,
            &list,
            "open the accounts of granted users",
        )
        .await?;
        users.insert(AccountRef::Issuance.key());
    }

    // 2. Lock and load.
    let mut tx = super::begin_write(writer, dialect)
        .await
        .db_context("begin a ledger batch")?;
    let mut book = Book::new(PROVISIONAL_SEQ);
    if !holds.is_empty() && holds_first {
        users.extend(
            load_holds(&mut tx, dialect, &holds_json, &mut book)
                .await?
                .into_iter()
                .map(|u| u.to_string()),
        );
    }
    let users_json = text_list(users.iter().map(String::as_str));
    let sql = match dialect {
        Dialect::Postgres => {
            "SELECT * FROM ledger_accounts WHERE id IN {list} ORDER BY id FOR UPDATE"
        }
        Dialect::Sqlite => "SELECT * FROM ledger_accounts WHERE id IN {list} ORDER BY id",
    };
    let accounts = parse_list(
        &mut *tx,
        dialect,
        sql,
        &users_json,
        "lock ledger accounts",
        account_row,
    )
    .await?;
    let mut opened = BTreeSet::new();
    for (id, account, counters) in accounts {
        book.load_account(account, counters);
        opened.insert(id);
    }
    let grants = parse_list(
        &mut *tx,
        dialect,
        LIVE_GRANTS,
        &users_json,
        "load grants",
        grant_row,
    )
    .await?;
    for grant in grants {
        book.load_grant(grant);
    }
    if !holds.is_empty() && !holds_first {
        load_holds(&mut tx, dialect, &holds_json, &mut book).await?;
    }
    if !ids.is_empty() {
        let list = text_list(ids.iter().map(String::as_str));
        let known = parse_list(
            &mut *tx,
            dialect,
            KNOWN_TRANSFERS,
            &list,
            "find replayed transfers",
            |row| super::ledger::transfer_from(row),
        )
        .await?;
        for transfer in known {
            book.load_transfer(transfer);
        }
    }

    // 3. Apply, in order.
    let mut outcomes = decide(&mut book, writes, &opened);

    // 4. Write.
    if !book.made().is_empty() {
        let seqs = take_seqs(&mut tx, dialect, book.made().len()).await?;
        number(&mut book, &mut outcomes, &seqs)?;
    }
    let changes = book.changes();
    if changes == Changes::default() {
        // Nothing to write (replays and refusals only): release the locks.
        tx.rollback().await.db_context("end a ledger batch")?;
        return Ok(outcomes);
    }
    if let Err(e) = write_changes(&mut tx, dialect, &changes).await {
        return Err(id_taken(e));
    }
    tx.commit().await.db_context("commit a ledger batch")?;
    Ok(outcomes)
}

/// Loads the holds in `holds_json` (a JSON list of ids) with their reservations into `book`;
/// returns their owners.
async fn load_holds(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    holds_json: &str,
    book: &mut Book,
) -> Result<Vec<UserId>> {
    let reservations = parse_list(
        &mut **tx,
        dialect,
        RESERVATIONS,
        holds_json,
        "load reservations",
        reservation_row,
    )
    .await?;
    let holds = parse_list(
        &mut **tx,
        dialect,
        HOLDS,
        holds_json,
        "load holds",
        hold_row,
    )
    .await?;
    Ok(load_holds_into(book, reservations, holds))
}

/// The live grants of the users in `{list}`.
pub(crate) const LIVE_GRANTS: &str = "SELECT * FROM ledger_grants WHERE user_id IN {list}
    AND ((expiry_done = 0 AND (expires_at IS NOT NULL
                               OR amount - consumed - reserved - expired > 0))
         OR reserved > 0)";
/// The reservations of the holds in `{list}`, in order.
pub(crate) const RESERVATIONS: &str = "SELECT hold_id, grant_id, amount, taken
    FROM ledger_hold_allocations WHERE hold_id IN {list} ORDER BY hold_id, position";
/// The holds in `{list}`.
pub(crate) const HOLDS: &str = "SELECT * FROM ledger_holds WHERE id IN {list}";
/// The transfers stored under the ids in `{list}`.
pub(crate) const KNOWN_TRANSFERS: &str = "SELECT * FROM ledger_transfers WHERE id IN {list}";

/// An account row: its id, as an account, and its counters.
pub(crate) fn account_row(row: &dyn Columns) -> Result<(String, AccountRef, AccountCounters)> {
    let id = text(row, "id")?;
    let account: AccountRef = parse("ledger_accounts.id", &id)?;
    Ok((id, account, super::ledger::counters_from(row)?))
}

/// A grant row.
pub(crate) fn grant_row(row: &dyn Columns) -> Result<GrantState> {
    Ok(GrantState {
        user: user_of("ledger_grants.user_id", &text(row, "user_id")?)?,
        seq: int("ledger_grants.seq", i64_of(row, "seq")?)?,
        balance: super::ledger::grant_from(row)?,
        expiry_done: i64_of(row, "expiry_done")? != 0,
    })
}

/// A reservation row: its hold's id and the reservation.
pub(crate) fn reservation_row(row: &dyn Columns) -> Result<(String, Allocation)> {
    let allocation = Allocation {
        grant: transfer_id("ledger_hold_allocations.grant_id", text(row, "grant_id")?)?,
        amount: i64_of(row, "amount")?,
        taken: row.num("taken")?,
    };
    Ok((text(row, "hold_id")?, allocation))
}

/// A hold row, without its reservations.
pub(crate) fn hold_row(row: &dyn Columns) -> Result<HoldState> {
    Ok(HoldState {
        allocations: Vec::new(),
        id: transfer_id("ledger_holds.id", text(row, "id")?)?,
        user: user_of("ledger_holds.user_id", &text(row, "user_id")?)?,
        seq: int("ledger_holds.seq", i64_of(row, "seq")?)?,
        amount: i64_of(row, "amount")?,
        timeout_at: at(i64_of(row, "timeout_at")?)?,
        pending: i64_of(row, "pending")? != 0,
    })
}

/// Loads `holds` with their `reservations` (in order) into `book`; returns their owners.
pub(crate) fn load_holds_into(
    book: &mut Book,
    reservations: Vec<(String, Allocation)>,
    holds: Vec<HoldState>,
) -> Vec<UserId> {
    let mut allocations: HashMap<String, Vec<Allocation>> = HashMap::new();
    for (hold, allocation) in reservations {
        allocations.entry(hold).or_default().push(allocation);
    }
    let mut owners = Vec::with_capacity(holds.len());
    for mut hold in holds {
        hold.allocations = allocations.remove(hold.id.as_str()).unwrap_or_default();
        owners.push(hold.user);
        book.load_hold(hold);
    }
    owners
}

/// Ledger positions for `n` new transfers, increasing, above every stored one.
async fn take_seqs(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    n: usize,
) -> Result<Vec<u64>> {
    let limit = i64::try_from(n).map_err(|_| Error::internal("too many transfers in a batch"))?;
    match dialect {
        Dialect::Postgres => {
            // The sequence named once (a constant, where `pg_get_serial_sequence` was looked
            // up again for every position: 5-7 ms of 2,000), and the positions answered as one
            // row rather than one row each.
            let list: Option<String> = sqlx::query_scalar(
                "SELECT string_agg(s::text, ',' ORDER BY s) FROM
                   (SELECT nextval('ledger_transfers_seq_seq'::regclass) AS s
                    FROM generate_series(1, $1)) AS taken",
            )
            .bind(limit)
            .fetch_one(&mut **tx)
            .await
            .db_context("take ledger positions")?;
            let list = list.unwrap_or_default();
            let seqs = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| parse::<u64>("ledger_transfers.seq", s))
                .collect::<Result<Vec<u64>>>()?;
            if seqs.len() != n {
                return Err(Error::internal(format!(
                    "asked for {n} ledger positions, took {}",
                    seqs.len()
                )));
            }
            Ok(seqs)
        }
        Dialect::Sqlite => {
            // One writer: the positions after the last one are free.
            let last: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers")
                    .fetch_one(&mut **tx)
                    .await
                    .db_context("take ledger positions")?;
            let last = int::<u64, _>("ledger_transfers.seq", last)?;
            Ok((1..=n as u64).map(|i| last + i).collect())
        }
    }
}

fn opt_ms(v: Option<DateTime<Utc>>) -> Value {
    v.map_or(Value::Null, |t| json!(ms(t)))
}

/// A transfer as a JSON row (typed, so that thousands serialize without a map each).
#[derive(serde::Serialize)]
struct TransferRow<'a> {
    seq: u64,
    id: &'a str,
    kind: &'a str,
    debit_account: String,
    credit_account: String,
    amount: i64,
    hold_id: Option<&'a str>,
    grant_id: Option<&'a str>,
    expires_at: Option<i64>,
    priority: Option<i32>,
    source: Option<&'a str>,
    reference: Option<&'a str>,
    created_at: i64,
}

/// A new hold as a JSON row.
#[derive(serde::Serialize)]
struct HoldRow<'a> {
    id: &'a str,
    seq: u64,
    user_id: String,
    amount: i64,
    timeout_at: i64,
    pending: i64,
}

/// A row named by its id.
#[derive(serde::Serialize)]
struct IdRow<'a> {
    id: &'a str,
}

/// A hold's reservation on a grant, as stored: its hold, its position among the hold's
/// reservations, and what it reserved and (once settled) paid.
#[derive(serde::Serialize)]
pub(crate) struct AllocationRow<'a> {
    pub(crate) hold_id: &'a str,
    pub(crate) position: i64,
    pub(crate) grant_id: &'a str,
    pub(crate) amount: i64,
    pub(crate) taken: Option<i64>,
}

/// The reservations of `holds`, each hold's in order.
pub(crate) fn allocation_rows(holds: &[HoldState]) -> impl Iterator<Item = AllocationRow<'_>> {
    holds.iter().flat_map(|h| {
        h.allocations
            .iter()
            .enumerate()
            .map(move |(position, a)| AllocationRow {
                hold_id: h.id.as_str(),
                // A hold has a handful of reservations.
                position: i64::try_from(position).unwrap_or(i64::MAX),
                grant_id: a.grant.as_str(),
                amount: a.amount,
                taken: a.taken,
            })
    })
}

/// What a settled hold's reservation paid.
#[derive(serde::Serialize)]
struct TakenRow<'a> {
    hold_id: &'a str,
    position: i64,
    n_taken: Option<i64>,
}

/// Writes what a batch changed.
async fn write_changes(
    tx: &mut Transaction<'static, Any>,
    d: Dialect,
    changes: &Changes,
) -> Result<()> {
    use Ty::{Int, Text};
    let transfers = changes
        .transfers
        .iter()
        .map(|t| TransferRow {
            seq: t.seq,
            id: t.id.as_str(),
            kind: t.kind.as_str(),
            debit_account: t.debit_account.key(),
            credit_account: t.credit_account.key(),
            amount: t.amount,
            hold_id: t.hold_id.as_ref().map(TransferId::as_str),
            grant_id: t.grant_id.as_ref().map(TransferId::as_str),
            expires_at: t.expires_at.map(ms),
            priority: t.priority,
            source: t.source.map(GrantSource::as_str),
            reference: t.reference.as_deref(),
            created_at: ms(t.created_at),
        })
        .collect::<Vec<_>>();
    let cols = [
        ("seq", Int),
        ("id", Text),
        ("kind", Text),
        ("debit_account", Text),
        ("credit_account", Text),
        ("amount", Int),
        ("hold_id", Text),
        ("grant_id", Text),
        ("expires_at", Int),
        ("priority", Int),
        ("source", Text),
        ("reference", Text),
        ("created_at", Int),
    ];
    let names = cols.map(|(c, _)| c).join(", ");
    write_rows(
        tx,
        format!(
            "INSERT INTO ledger_transfers ({names}) SELECT {names} FROM {}",
            records(d, &cols)
        ),
        transfers,
        "record transfers",
    )
    .await?;

    // Accounts: users and issuance on their own rows (locked), the rest on a stripe.
    let mut own = Vec::new();
    let mut striped = Vec::new();
    for (account, delta) in &changes.accounts {
        let row = json!({
            "id": account.key(), "dp": delta.debits_posted, "cp": delta.credits_posted,
            "dq": delta.debits_pending, "cq": delta.credits_pending,
        });
        match account {
            AccountRef::Revenue | AccountRef::Breakage => striped.push(row),
            AccountRef::User(_) | AccountRef::Issuance => own.push(row),
        }
    }
    let delta_cols = [
        ("id", Text),
        ("dp", Int),
        ("cp", Int),
        ("dq", Int),
        ("cq", Int),
    ];
    write_rows(
        tx,
        format!(
            "UPDATE ledger_accounts SET debits_posted = debits_posted + r.dp,
                 credits_posted = credits_posted + r.cp, debits_pending = debits_pending + r.dq,
                 credits_pending = credits_pending + r.cq
             FROM {} WHERE ledger_accounts.id = r.id",
            records(d, &delta_cols)
        ),
        own,
        "update accounts",
    )
    .await?;
    // In account id order, after every account row: breakage, then revenue.
    striped.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    for row in striped {
        add_to_stripe(tx, d, &row).await?;
    }

    let grant_row = |g: &GrantState| {
        let b = &g.balance;
        json!({
            "id": b.id.as_str(), "seq": g.seq, "user_id": g.user.to_string(),
            "source": b.source.as_str(), "priority": b.priority, "amount": b.amount,
            "consumed": b.consumed, "reserved": b.reserved, "expired": b.expired,
            "expires_at": opt_ms(b.expires_at), "expiry_done": i64::from(g.expiry_done),
            "created_at": ms(b.created_at),
        })
    };
    let grant_cols = [
        ("id", Text),
        ("seq", Int),
        ("user_id", Text),
        ("source", Text),
        ("priority", Int),
        ("amount", Int),
        ("consumed", Int),
        ("reserved", Int),
        ("expired", Int),
        ("expires_at", Int),
        ("expiry_done", Int),
        ("created_at", Int),
    ];
    let names = grant_cols.map(|(c, _)| c).join(", ");
    write_rows(
        tx,
        format!(
            "INSERT INTO ledger_grants ({names}) SELECT {names} FROM {}",
            records(d, &grant_cols)
        ),
        changes.new_grants.iter().map(grant_row).collect(),
        "record grants",
    )
    .await?;
    write_rows(
        tx,
        format!(
            "UPDATE ledger_grants SET consumed = r.n_consumed, reserved = r.n_reserved,
                 expired = r.n_expired, expiry_done = r.n_expiry_done
             FROM {} WHERE ledger_grants.id = r.id",
            records(
                d,
                &[
                    ("id", Text),
                    ("n_consumed", Int),
                    ("n_reserved", Int),
                    ("n_expired", Int),
                    ("n_expiry_done", Int),
                ]
            )
        ),
        changes
            .grants
            .iter()
            .map(|g| {
                json!({
                    "id": g.balance.id.as_str(), "n_consumed": g.balance.consumed,
                    "n_reserved": g.balance.reserved, "n_expired": g.balance.expired,
                    "n_expiry_done": i64::from(g.expiry_done),
                })
            })
            .collect(),
        "update grants",
    )
    .await?;

    let hold_cols = [
        ("id", Text),
        ("seq", Int),
        ("user_id", Text),
        ("amount", Int),
        ("timeout_at", Int),
        ("pending", Int),
    ];
    let names = hold_cols.map(|(c, _)| c).join(", ");
    write_rows(
        tx,
        format!(
            "INSERT INTO ledger_holds ({names}) SELECT {names} FROM {}",
            records(d, &hold_cols)
        ),
        changes
            .new_holds
            .iter()
            .map(|h| HoldRow {
                id: h.id.as_str(),
                seq: h.seq,
                user_id: h.user.to_string(),
                amount: h.amount,
                timeout_at: ms(h.timeout_at),
                pending: i64::from(h.pending),
            })
            .collect(),
        "record holds",
    )
    .await?;
    write_rows(
        tx,
        format!(
            "UPDATE ledger_holds SET pending = 0 FROM {} WHERE ledger_holds.id = r.id",
            records(d, &[("id", Text)])
        ),
        changes
            .settled_holds
            .iter()
            .map(|h| IdRow { id: h.id.as_str() })
            .collect(),
        "settle holds",
    )
    .await?;
    let allocation_cols = [
        ("hold_id", Text),
        ("position", Int),
        ("grant_id", Text),
        ("amount", Int),
        ("taken", Int),
    ];
    let names = allocation_cols.map(|(c, _)| c).join(", ");
    write_rows(
        tx,
        format!(
            "INSERT INTO ledger_hold_allocations ({names}) SELECT {names} FROM {}",
            records(d, &allocation_cols)
        ),
        allocation_rows(&changes.new_holds).collect(),
        "record reservations",
    )
    .await?;
    write_rows(
        tx,
        format!(
            "UPDATE ledger_hold_allocations SET taken = r.n_taken FROM {}
             WHERE ledger_hold_allocations.hold_id = r.hold_id
               AND ledger_hold_allocations.position = r.position",
            records(d, &[("hold_id", Text), ("position", Int), ("n_taken", Int)])
        ),
        allocation_rows(&changes.settled_holds)
            .map(|a| TakenRow {
                hold_id: a.hold_id,
                position: a.position,
                n_taken: a.taken,
            })
            .collect(),
        "record what reservations paid",
    )
    .await?;
    Ok(())
}

/// Adds a system account's movement to one of its stripes: on PostgreSQL one no other batch
/// holds, if there is one (else a random one, waiting for it); on SQLite its only one.
async fn add_to_stripe(tx: &mut Transaction<'static, Any>, d: Dialect, row: &Value) -> Result<()> {
    const SET: &str = "UPDATE ledger_account_stripes SET debits_posted = debits_posted + $2,
         credits_posted = credits_posted + $3, debits_pending = debits_pending + $4,
         credits_pending = credits_pending + $5 WHERE account = $1 AND stripe = ";
    let account = row["id"].as_str().unwrap_or_default().to_owned();
    let n = |k: &str| row[k].as_i64().unwrap_or(0);
    let run = |sql: String, stripe: Option<i64>| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account.clone())
            .bind(n("dp"))
            .bind(n("cp"))
            .bind(n("dq"))
            .bind(n("cq"));
        if let Some(s) = stripe {
            q = q.bind(s);
        }
        q
    };
    match d {
        Dialect::Sqlite => {
            run(format!("{SET}0"), None)
                .execute(&mut **tx)
                .await
                .db_context("update a system account")?;
        }
        Dialect::Postgres => {
            let free = run(
                format!(
                    "{SET}(SELECT stripe FROM ledger_account_stripes WHERE account = $1
                           ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)"
                ),
                None,
            )
            .execute(&mut **tx)
            .await
            .db_context("update a system account")?;
            if free.rows_affected() == 0 {
                let stripe = i64::from(rand_stripe()) % STRIPES;
                run(format!("{SET}$6"), Some(stripe))
                    .execute(&mut **tx)
                    .await
                    .db_context("update a system account")?;
            }
        }
    }
    Ok(())
}

/// A stripe to wait for when every one is busy: spread by the clock's nanoseconds.
fn rand_stripe() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}
