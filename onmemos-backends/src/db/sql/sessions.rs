//! Sessions, their billing state and their event trail.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::api::{Page, PageRequest};
use onmemos_core::id::{SessionId, TemplateId, UserId};
use onmemos_core::model::{
    Placement, Resources, Session, SessionEvent, SessionEventKind, SessionLimits, SessionRecord,
    SessionStatus, StopReason, TransferId,
};
use onmemos_core::ports::{NewSessionEvent, SessionFilter, SessionRepo, SessionSample};
use onmemos_core::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlDatabase;
use super::error::{SqlxResultExt, corrupt};
use super::json_rows::{Ty, records};
use super::rows::{
    Columns, after, at, int, json, ms, opt_at, overfetch, parse, required, to_json, transfer_id,
};

const COLUMNS: &str = "id, workspace_id, owner_id, template_id, status, placement, cpu_millis,
    memory_mib, gpu, disk_gib, rate_micros, max_duration_secs, max_cost_micros,
    idle_timeout_secs, cost_micros, stop_reason, failure, created_at, started_at, stopped_at,
    last_activity_at, node, version, tick, hold_id, billed_ms, covered_until, next_check_at,
    warned";

/// The claim of due sessions, without the end of its sub-select (the dialects lock differently).
/// In (due time, owner) order: one owner's sessions tend to share a batch, so replicas' batches
/// lock different accounts.
const CLAIM: &str = "UPDATE sessions SET lease_holder = $1, lease_until = $3
     WHERE id IN (
         SELECT id FROM sessions
         WHERE status = 'running' AND next_check_at <= $2
           AND (lease_until IS NULL OR lease_until <= $2)
         ORDER BY next_check_at, owner_id LIMIT $4";

/// `SELECT` of `$columns` of the unfinished sessions of node `$1` (of every node when `NULL`),
/// by id.
macro_rules! unfinished_sql {
    ($columns:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM sessions WHERE ($1 IS NULL OR node = $1)
               AND status IN ('pending', 'starting', 'running', 'stopping') ORDER BY id"
        )
    };
}

/// How many sessions, first in due order, `next_due` reads.
const NEXT_DUE_READ: i64 = 64;

/// The earliest claimable moment among `first` — the first sessions in order of their next
/// check (`(next_check_at, lease_until)` in milliseconds), at most `read` of them — where a
/// session is claimable at its check or when its lease ends, if that is later. Any session
/// after them is checked no earlier than the last of them, so when `read` came back that
/// check bounds the answer too: the moment is exact unless every one of them is leased past
/// it, and then it is earlier than the truth, never later (the monitor wakes early and finds
/// nothing to claim).
fn earliest_claimable(first: &[(i64, Option<i64>)], read: i64) -> Option<i64> {
    let claimable = first
        .iter()
        .map(|&(check, lease)| lease.map_or(check, |lease| lease.max(check)))
        .min();
    let full = i64::try_from(first.len()).is_ok_and(|n| n >= read);
    match first.last() {
        Some(&(last_check, _)) if full => claimable.map(|c| c.min(last_check)),
        _ => claimable,
    }
}

/// `INSERT` of the sessions in a JSON array.
fn insert_sql(dialect: super::Dialect) -> String {
    let typed: Vec<(&str, Ty)> = COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| {
            if c == "id" {
                ("sid", Ty::Text)
            } else {
                (c, column_type(c))
            }
        })
        .collect();
    format!(
        "INSERT INTO sessions ({COLUMNS}) SELECT {} FROM {}",
        typed.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", "),
        records(dialect, &typed)
    )
}

static INSERT_POSTGRES: LazyLock<String> = LazyLock::new(|| insert_sql(super::Dialect::Postgres));
static INSERT_SQLITE: LazyLock<String> = LazyLock::new(|| insert_sql(super::Dialect::Sqlite));

impl SqlDatabase {
    /// Inserts session records as they are, in one statement (without counting template
    /// uses).
    async fn insert_rows<'e, E>(&self, executor: E, records: &[SessionRecord]) -> Result<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        let rows = records
            .iter()
            .map(record_json)
            .collect::<Result<Vec<_>>>()?;
        let rows = serde_json::to_string(&rows)
            .map_err(|e| Error::internal("encode session rows").with_source(e))?;
        let sql = match self.dialect {
            super::Dialect::Postgres => &*INSERT_POSTGRES,
            super::Dialect::Sqlite => &*INSERT_SQLITE,
        };
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(rows)
            .execute(executor)
            .await
            .db_context("insert sessions")?;
        Ok(())
    }

    /// Runs an update of `sql` (see [`update_sql`]) over `records`; returns, for each, whether
    /// it was written.
    async fn update_rows(&self, records: &[SessionRecord], sql: &str) -> Result<Vec<bool>> {
        update_on(&self.writer, records, sql).await
    }

    /// SQLite's claim, on its own write connection (see [`crate::db::sqlite`]): under the
    /// write lock, the due records are read and leased by id, every value bound. Through sqlx,
    /// every row a claim answers crosses from the connection's thread one at a time: a thousand
    /// whole records cost twelve times the lease itself.
    #[cfg(feature = "sqlite")]
    async fn claim_on_sqlite(
        &self,
        inline: &crate::db::sqlite::Inline,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>> {
        let holder = holder.to_owned();
        inline
            .write(&self.writer, move |c| {
                claim_here(c, &holder, ms(now), ms(until), i64::from(limit))
            })
            .await
    }

    /// Inserts many session records at once, as they are (for simulations and benchmarks:
    /// template uses are not counted).
    pub async fn insert_sessions(&self, records: &[SessionRecord]) -> Result<()> {
        for chunk in records.chunks(2000) {
            self.insert_rows(&self.writer, chunk).await?;
        }
        Ok(())
    }
}

/// Leases to `holder` until `until` the first `limit` sessions due at `now` (see [`CLAIM`]),
/// in one transaction on SQLite's write connection `c`; returns them as they were read.
#[cfg(feature = "sqlite")]
fn claim_here(
    c: &mut rusqlite::Connection,
    holder: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<SessionRecord>> {
    use crate::db::sqlite::Indexed;
    use crate::db::sqlite::ledger::error;
    static DUE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM sessions
             WHERE status = 'running' AND next_check_at <= ?1
               AND (lease_until IS NULL OR lease_until <= ?1)
             ORDER BY next_check_at, owner_id LIMIT ?2"
        )
    });
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| error("begin a claim", e))?;
    let mut records = Vec::new();
    {
        let mut due = tx
            .prepare_cached(&DUE)
            .map_err(|e| error("claim due sessions", e))?;
        let mut rows = due
            .query(rusqlite::params![now, limit])
            .map_err(|e| error("claim due sessions", e))?;
        while let Some(row) = rows.next().map_err(|e| error("claim due sessions", e))? {
            records.push(record_from(&Indexed {
                row,
                index: &INLINE_COLUMNS,
            })?);
        }
        let mut lease = tx
            .prepare_cached("UPDATE sessions SET lease_holder = ?2, lease_until = ?3 WHERE id = ?1")
            .map_err(|e| error("claim due sessions", e))?;
        for r in &records {
            lease
                .execute(rusqlite::params![r.session.id.to_string(), holder, until])
                .map_err(|e| error("claim due sessions", e))?;
        }
    }
    tx.commit().map_err(|e| error("commit a claim", e))?;
    Ok(records)
}

/// The type of each of `COLUMNS`, for reading them from JSON rows.
fn column_type(column: &str) -> Ty {
    match column {
        "id" | "workspace_id" | "owner_id" | "template_id" | "status" | "placement"
        | "stop_reason" | "failure" | "node" | "hold_id" => Ty::Text,
        _ => Ty::Int,
    }
}

/// `UPDATE` of `columns` of the sessions in a JSON array (`sid` the id, `expected` the version
/// it must have), releasing their leases; returns the ids written.
fn update_sql(dialect: super::Dialect, columns: &[&str]) -> String {
    format!(
        "{} RETURNING sessions.id",
        quiet_update_sql(dialect, columns)
    )
}

/// [`update_sql`] without the ids of the rows it wrote.
fn quiet_update_sql(dialect: super::Dialect, columns: &[&str]) -> String {
    let mut typed: Vec<(&str, Ty)> = vec![("sid", Ty::Text), ("expected", Ty::Int)];
    typed.extend(columns.iter().map(|c| (*c, column_type(c))));
    let sets: Vec<String> = columns.iter().map(|c| format!("{c} = r.{c}")).collect();
    format!(
        "UPDATE sessions SET {}, lease_holder = NULL, lease_until = NULL
         FROM {} WHERE sessions.id = r.sid AND sessions.version = r.expected",
        sets.join(", "),
        records(dialect, &typed)
    )
}

/// Every column but the id.
fn all_columns() -> Vec<&'static str> {
    COLUMNS.split(',').map(str::trim).skip(1).collect()
}

/// The columns a billing tick changes.
pub(crate) const TICK_COLUMNS: &[&str] = &[
    "version",
    "cost_micros",
    "billed_ms",
    "tick",
    "hold_id",
    "covered_until",
    "next_check_at",
    "warned",
];

static UPDATE_BATCH_POSTGRES: LazyLock<String> =
    LazyLock::new(|| update_sql(super::Dialect::Postgres, &all_columns()));
static UPDATE_BATCH_SQLITE: LazyLock<String> =
    LazyLock::new(|| update_sql(super::Dialect::Sqlite, &all_columns()));
static TICKS_POSTGRES: LazyLock<String> =
    LazyLock::new(|| update_sql(super::Dialect::Postgres, TICK_COLUMNS));
static QUIET_TICKS_SQLITE: LazyLock<String> =
    LazyLock::new(|| quiet_update_sql(super::Dialect::Sqlite, TICK_COLUMNS));

/// `INSERT` of the session events in a JSON array, in their order; returns their positions,
/// which increase in that order.
fn append_events_sql(dialect: super::Dialect) -> String {
    format!("{} RETURNING seq", quiet_append_events_sql(dialect))
}

/// [`append_events_sql`] without the positions: SQLite numbers the rows of one statement one
/// after another (`AUTOINCREMENT`, one writer), so in a transaction they follow from the last
/// one's.
fn quiet_append_events_sql(dialect: super::Dialect) -> String {
    format!(
        "INSERT INTO session_events (session_id, at, type, data, message)
         SELECT session_id, at, type, data, message FROM {} ORDER BY ord",
        records(
            dialect,
            &[
                ("ord", Ty::Int),
                ("session_id", Ty::Text),
                ("at", Ty::Int),
                ("type", Ty::Text),
                ("data", Ty::Text),
                ("message", Ty::Text),
            ]
        )
    )
}

/// Moves `last_activity_at` of the sessions in a JSON array forward (never back).
fn touch_sql(dialect: super::Dialect) -> String {
    format!(
        "UPDATE sessions SET last_activity_at = r.at FROM {}
         WHERE sessions.id = r.sid AND sessions.last_activity_at < r.at",
        records(dialect, &[("sid", Ty::Text), ("at", Ty::Int)])
    )
}

static TOUCH_POSTGRES: LazyLock<String> = LazyLock::new(|| touch_sql(super::Dialect::Postgres));
static TOUCH_SQLITE: LazyLock<String> = LazyLock::new(|| touch_sql(super::Dialect::Sqlite));

static APPEND_EVENTS_POSTGRES: LazyLock<String> =
    LazyLock::new(|| append_events_sql(super::Dialect::Postgres));
static APPEND_EVENTS_SQLITE: LazyLock<String> =
    LazyLock::new(|| append_events_sql(super::Dialect::Sqlite));
static QUIET_APPEND_EVENTS_SQLITE: LazyLock<String> =
    LazyLock::new(|| quiet_append_events_sql(super::Dialect::Sqlite));

/// A session record as a JSON row of `COLUMNS` (the id as `sid`), with the version an update
/// expects to find (`expected`). Typed, so a batch of a thousand serializes without building a
/// map per row.
#[derive(serde::Serialize)]
struct RecordRow<'a> {
    sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<i64>,
    workspace_id: String,
    owner_id: String,
    template_id: String,
    status: &'static str,
    placement: &'static str,
    cpu_millis: u32,
    memory_mib: u32,
    gpu: u32,
    disk_gib: u32,
    rate_micros: i64,
    max_duration_secs: i64,
    max_cost_micros: i64,
    idle_timeout_secs: i64,
    cost_micros: i64,
    stop_reason: Option<&'static str>,
    failure: Option<&'a str>,
    created_at: i64,
    started_at: Option<i64>,
    stopped_at: Option<i64>,
    last_activity_at: i64,
    node: &'a str,
    version: i64,
    tick: i64,
    hold_id: Option<&'a str>,
    billed_ms: i64,
    covered_until: Option<i64>,
    next_check_at: Option<i64>,
    warned: i64,
}

/// Runs an update of `sql` (see [`update_sql`]) over `records` on `executor`; returns, for
/// each, whether it was written.
async fn update_on<'e, E>(executor: E, records: &[SessionRecord], sql: &str) -> Result<Vec<bool>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let written: std::collections::HashSet<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(update_rows_json(records)?)
        .fetch_all(executor)
        .await
        .db_context("update sessions")?
        .into_iter()
        .collect();
    Ok(records
        .iter()
        .map(|r| written.contains(&r.session.id.to_string()))
        .collect())
}

/// SQLite's write of ticks in the transaction `tx`: which records will be written is read
/// first, in one row (one writer: nothing changes before the update), and the update returns
/// no row — each returned row would be a copy and a wake-up across sqlx's connection thread.
async fn ticks_on_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    records: &[SessionRecord],
) -> Result<Vec<bool>> {
    let ids: Vec<String> = records.iter().map(|r| r.session.id.to_string()).collect();
    let ids = serde_json::to_string(&ids)
        .map_err(|e| Error::internal("encode session ids").with_source(e))?;
    let stored: String = sqlx::query_scalar(
        "SELECT json_group_object(id, version) FROM sessions
         WHERE id IN (SELECT value FROM json_each($1))",
    )
    .bind(ids)
    .fetch_one(&mut **tx)
    .await
    .db_context("read session versions")?;
    let versions: std::collections::HashMap<String, i64> =
        serde_json::from_str(&stored).map_err(|e| corrupt("sessions.version", e.to_string()))?;
    let written: Vec<bool> = records
        .iter()
        .map(|r| {
            versions
                .get(&r.session.id.to_string())
                .is_some_and(|v| u64::try_from(*v).is_ok_and(|v| v + 1 == r.version))
        })
        .collect();
    let done = sqlx::query(sqlx::AssertSqlSafe(QUIET_TICKS_SQLITE.as_str()))
        .bind(update_rows_json(records)?)
        .execute(&mut **tx)
        .await
        .db_context("update sessions")?;
    let expected = written.iter().filter(|w| **w).count() as u64;
    if done.rows_affected() != expected {
        return Err(Error::internal(format!(
            "{} of {expected} session ticks were written",
            done.rows_affected()
        )));
    }
    Ok(written)
}

/// `records` as the JSON rows an update (see [`update_sql`]) reads, in id order (the order
/// rows are locked in), each with the version it expects to find.
fn update_rows_json(records: &[SessionRecord]) -> Result<String> {
    let mut rows = records
        .iter()
        .map(|r| {
            let expected = r
                .version
                .checked_sub(1)
                .ok_or_else(|| Error::internal("a session update must bump the version"))?;
            let mut row = record_json(r)?;
            row.expected = Some(int::<i64, u64>("version", expected)?);
            Ok(row)
        })
        .collect::<Result<Vec<_>>>()?;
    // Rows are locked in id order.
    rows.sort_by(|a, b| a.sid.cmp(&b.sid));
    serde_json::to_string(&rows).map_err(|e| Error::internal("encode session rows").with_source(e))
}

/// Appends `events`, in order, on `executor`; returns them as stored.
async fn append_on<'e, E>(
    executor: E,
    dialect: super::Dialect,
    events: &[NewSessionEvent],
) -> Result<Vec<SessionEvent>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let sql = match dialect {
        super::Dialect::Postgres => &*APPEND_EVENTS_POSTGRES,
        super::Dialect::Sqlite => &*APPEND_EVENTS_SQLITE,
    };
    // Rows are numbered as they are inserted, in `ord` order: the positions, sorted, are the
    // events' in order. Only they come back; the rest is what was written.
    let seqs: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(events_json(events)?)
        .fetch_all(executor)
        .await
        .db_context("append session events")?;
    stored_events(seqs, events)
}

/// SQLite's append of `events` in the transaction `tx`, which returns no row per event (each
/// would be a copy and a wake-up across sqlx's connection thread): the positions follow from
/// the last one's (see [`quiet_append_events_sql`]).
async fn append_in_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    events: &[NewSessionEvent],
) -> Result<Vec<SessionEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let done = sqlx::query(sqlx::AssertSqlSafe(QUIET_APPEND_EVENTS_SQLITE.as_str()))
        .bind(events_json(events)?)
        .execute(&mut **tx)
        .await
        .db_context("append session events")?;
    let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()")
        .fetch_one(&mut **tx)
        .await
        .db_context("append session events")?;
    let n = i64::try_from(done.rows_affected())
        .map_err(|_| Error::internal("too many session events"))?;
    stored_events((last - n + 1..=last).collect(), events)
}

/// `events` as the JSON rows an append reads, numbered in their order (`ord`).
fn events_json(events: &[NewSessionEvent]) -> Result<String> {
    let rows = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(serde_json::json!({
                "ord": i, "session_id": e.session.to_string(), "at": ms(e.at),
                "type": e.kind.name(), "data": to_json(&e.kind)?, "message": e.message,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::Value::Array(rows).to_string())
}

/// `events` as stored at the positions `seqs` (in any order).
fn stored_events(mut seqs: Vec<i64>, events: &[NewSessionEvent]) -> Result<Vec<SessionEvent>> {
    if seqs.len() != events.len() {
        return Err(Error::internal(format!(
            "{} session events were stored for {}",
            seqs.len(),
            events.len()
        )));
    }
    seqs.sort_unstable();
    seqs.into_iter()
        .zip(events)
        .map(|(seq, e)| {
            Ok(SessionEvent {
                seq: int("session_events.seq", seq)?,
                session_id: e.session,
                // As stored: to the millisecond.
                at: at(ms(e.at))?,
                kind: e.kind.clone(),
                message: e.message.clone(),
            })
        })
        .collect()
}

fn record_json(r: &SessionRecord) -> Result<RecordRow<'_>> {
    let s = &r.session;
    let i = |v: u64, what: &'static str| -> Result<i64> {
        i64::try_from(v).map_err(|_| Error::invalid(what, format!("{what} is too large")))
    };
    Ok(RecordRow {
        sid: s.id.to_string(),
        expected: None,
        workspace_id: s.workspace_id.to_string(),
        owner_id: s.owner_id.to_string(),
        template_id: s.template_id.to_string(),
        status: s.status.as_str(),
        placement: s.placement.as_str(),
        cpu_millis: s.resources.cpu_millis,
        memory_mib: s.resources.memory_mib,
        gpu: s.resources.gpu,
        disk_gib: s.resources.disk_gib,
        rate_micros: s.rate_micros_per_hour,
        max_duration_secs: i(s.limits.max_duration_secs, "max_duration_secs")?,
        max_cost_micros: s.limits.max_cost_micros,
        idle_timeout_secs: i(s.limits.idle_timeout_secs, "idle_timeout_secs")?,
        cost_micros: s.cost_micros,
        stop_reason: s.stop_reason.map(StopReason::as_str),
        failure: s.failure.as_deref(),
        created_at: ms(s.created_at),
        started_at: s.started_at.map(ms),
        stopped_at: s.stopped_at.map(ms),
        last_activity_at: ms(s.last_activity_at),
        node: &r.node,
        version: i(r.version, "version")?,
        tick: i(r.tick, "tick")?,
        hold_id: r.hold.as_ref().map(TransferId::as_str),
        billed_ms: r.billed_ms,
        covered_until: r.covered_until.map(ms),
        next_check_at: r.next_check_at.map(ms),
        warned: i64::from(r.warned),
    })
}

pub(crate) fn record_from(row: &impl Columns) -> Result<SessionRecord> {
    let text = |c: &'static str| required(c, row.text(c)?);
    let opt_text = |c: &'static str| row.text(c);
    let num = |c: &'static str| required(c, row.num(c)?);
    let opt_num = |c: &'static str| row.num(c);
    let status = text("status")?;
    let placement = text("placement")?;
    let stop_reason = opt_text("stop_reason")?
        .map(|r| StopReason::parse(&r).ok_or_else(|| corrupt("sessions.stop_reason", &r)))
        .transpose()?;
    let hold = opt_text("hold_id")?
        .map(|h| transfer_id("sessions.hold_id", h))
        .transpose()?;
    let session = Session {
        id: parse("sessions.id", &text("id")?)?,
        workspace_id: parse("sessions.workspace_id", &text("workspace_id")?)?,
        owner_id: parse("sessions.owner_id", &text("owner_id")?)?,
        template_id: parse("sessions.template_id", &text("template_id")?)?,
        status: SessionStatus::parse(&status).ok_or_else(|| corrupt("sessions.status", &status))?,
        limits: SessionLimits {
            max_duration_secs: int("sessions.max_duration_secs", num("max_duration_secs")?)?,
            max_cost_micros: num("max_cost_micros")?,
            idle_timeout_secs: int("sessions.idle_timeout_secs", num("idle_timeout_secs")?)?,
        },
        placement: Placement::parse(&placement)
            .ok_or_else(|| corrupt("sessions.placement", &placement))?,
        resources: Resources {
            cpu_millis: int("sessions.cpu_millis", num("cpu_millis")?)?,
            memory_mib: int("sessions.memory_mib", num("memory_mib")?)?,
            gpu: int("sessions.gpu", num("gpu")?)?,
            disk_gib: int("sessions.disk_gib", num("disk_gib")?)?,
        },
        rate_micros_per_hour: num("rate_micros")?,
        cost_micros: num("cost_micros")?,
        stop_reason,
        failure: opt_text("failure")?,
        created_at: at(num("created_at")?)?,
        started_at: opt_at(opt_num("started_at")?)?,
        stopped_at: opt_at(opt_num("stopped_at")?)?,
        last_activity_at: at(num("last_activity_at")?)?,
    };
    Ok(SessionRecord {
        session,
        node: text("node")?,
        version: int("sessions.version", num("version")?)?,
        tick: int("sessions.tick", num("tick")?)?,
        hold,
        billed_ms: num("billed_ms")?,
        covered_until: opt_at(opt_num("covered_until")?)?,
        next_check_at: opt_at(opt_num("next_check_at")?)?,
        warned: int("sessions.warned", num("warned")?)?,
    })
}

/// The positions of [`COLUMNS`] in a row read through `rusqlite` (see [`crate::db::sqlite`]).
#[cfg(feature = "sqlite")]
static INLINE_COLUMNS: LazyLock<crate::db::sqlite::ColumnIndex> =
    LazyLock::new(|| crate::db::sqlite::ColumnIndex::of(COLUMNS));

/// One session of `owner` by id, read on the calling thread (see [`crate::db::sqlite`]'s
/// `Inline`): `None` if there is none, the decoding's error if its row is corrupt.
#[cfg(feature = "sqlite")]
fn get_inline(
    connection: &rusqlite::Connection,
    owner: &str,
    id: &str,
) -> rusqlite::Result<Option<Result<SessionRecord>>> {
    use crate::db::sqlite::Indexed;
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1 AND owner_id = ?2"));
    let mut statement = connection.prepare_cached(&SQL)?;
    let mut rows = statement.query([id, owner])?;
    Ok(rows.next()?.map(|row| {
        record_from(&Indexed {
            row,
            index: &INLINE_COLUMNS,
        })
    }))
}

fn event_from(row: &AnyRow) -> Result<SessionEvent> {
    let data: String = row.try_get("data").db_context("read session_events")?;
    let kind: SessionEventKind = json("session_events.data", &data)?;
    let session_id: String = row
        .try_get("session_id")
        .db_context("read session_events")?;
    Ok(SessionEvent {
        seq: int(
            "session_events.seq",
            row.try_get::<i64, _>("seq")
                .db_context("read session_events")?,
        )?,
        session_id: parse("session_events.session_id", &session_id)?,
        at: at(row.try_get("at").db_context("read session_events")?)?,
        kind,
        message: row.try_get("message").db_context("read session_events")?,
    })
}

#[async_trait]
impl SessionRepo for SqlDatabase {
    async fn insert(&self, record: &SessionRecord) -> Result<()> {
        let mut tx = self.writer.begin().await.db_context("begin")?;
        self.insert_rows(&mut *tx, std::slice::from_ref(record))
            .await?;
        sqlx::query("UPDATE templates SET usage_count = usage_count + 1 WHERE id = $1")
            .bind(record.session.template_id.to_string())
            .execute(&mut *tx)
            .await
            .db_context("count template use")?;
        tx.commit().await.db_context("commit")?;
        Ok(())
    }

    async fn get(&self, owner: UserId, id: SessionId) -> Result<Option<Session>> {
        #[cfg(feature = "sqlite")]
        if let Some(read) = self
            .inline
            .as_ref()
            .and_then(|inline| inline.read(|c| get_inline(c, &owner.to_string(), &id.to_string())))
        {
            match read {
                None => return Ok(None),
                Some(Ok(record)) => return Ok(Some(record.session)),
                // Reported the way every other read reports it.
                Some(Err(_)) => {}
            }
        }
        sqlx::query("SELECT * FROM sessions WHERE id = $1 AND owner_id = $2")
            .bind(id.to_string())
            .bind(owner.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("get session")?
            .as_ref()
            .map(|row| record_from(row).map(|r| r.session))
            .transpose()
    }

    async fn record(&self, id: SessionId) -> Result<Option<SessionRecord>> {
        // From the writer: the monitor must see its own last write.
        sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await
            .db_context("get session")?
            .as_ref()
            .map(record_from)
            .transpose()
    }

    async fn list(
        &self,
        owner: UserId,
        filter: &SessionFilter,
        page: PageRequest<SessionId>,
    ) -> Result<Page<Session>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE owner_id = $1 AND id > $2
               AND ($3 = '' OR workspace_id = $3)
               AND ($4 = '' OR status = $4)
               AND ($5 = '' OR template_id = $5)
             ORDER BY id LIMIT $6",
        )
        .bind(owner.to_string())
        .bind(after(&page))
        .bind(filter.workspace.map(|w| w.to_string()).unwrap_or_default())
        .bind(filter.status.map(SessionStatus::as_str).unwrap_or_default())
        .bind(filter.template.map(|t| t.to_string()).unwrap_or_default())
        .bind(overfetch(page.limit))
        .fetch_all(&self.reader)
        .await
        .db_context("list sessions")?;
        let items = rows
            .iter()
            .map(|row| record_from(row).map(|r| r.session))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |s| s.id))
    }

    async fn update(&self, record: &SessionRecord) -> Result<bool> {
        Ok(self
            .update_batch(std::slice::from_ref(record))
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    async fn update_batch(&self, records: &[SessionRecord]) -> Result<Vec<bool>> {
        let sql = match self.dialect {
            super::Dialect::Postgres => &*UPDATE_BATCH_POSTGRES,
            super::Dialect::Sqlite => &*UPDATE_BATCH_SQLITE,
        };
        self.update_rows(records, sql).await
    }

    async fn record_ticks(
        &self,
        records: &[SessionRecord],
        events: &[NewSessionEvent],
    ) -> Result<(Vec<bool>, Vec<SessionEvent>)> {
        if records.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        #[cfg(feature = "sqlite")]
        if let Some(inline) = &self.inline {
            // SQLite's own write connection, every row bound (see `db::sqlite::sessions`).
            use crate::db::sqlite::sessions::{EventRow, TickRow};
            let ticks = records
                .iter()
                .map(TickRow::of)
                .collect::<Result<Vec<_>>>()?;
            let rows = events
                .iter()
                .map(EventRow::of)
                .collect::<Result<Vec<_>>>()?;
            let (written, seqs) = inline
                .write(&self.writer, move |c| {
                    crate::db::sqlite::sessions::record_ticks(c, &ticks, &rows)
                })
                .await?;
            let kept = onmemos_core::ports::database::ticked_events(records, &written, events);
            return Ok((written, stored_events(seqs, &kept)?));
        }
        // The records and their events commit together: one commit (and fsync) where they
        // were two, and no event of a tick that was not written.
        let mut tx = super::begin_write(&self.writer, self.dialect)
            .await
            .db_context("begin a session write")?;
        let written = match self.dialect {
            super::Dialect::Postgres => update_on(&mut *tx, records, &TICKS_POSTGRES).await?,
            super::Dialect::Sqlite => ticks_on_sqlite(&mut tx, records).await?,
        };
        let kept = onmemos_core::ports::database::ticked_events(records, &written, events);
        let stored = match self.dialect {
            super::Dialect::Postgres => append_on(&mut *tx, self.dialect, &kept).await?,
            super::Dialect::Sqlite => append_in_sqlite(&mut tx, &kept).await?,
        };
        tx.commit().await.db_context("commit session ticks")?;
        Ok((written, stored))
    }

    async fn touch(&self, id: SessionId, at: DateTime<Utc>) -> Result<()> {
        self.touch_many(&[(id, at)]).await
    }

    async fn touch_many(&self, activity: &[(SessionId, DateTime<Utc>)]) -> Result<()> {
        if activity.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = activity
            .iter()
            .map(|(id, at)| serde_json::json!({ "sid": id.to_string(), "at": ms(*at) }))
            .collect();
        let sql = match self.dialect {
            super::Dialect::Postgres => &*TOUCH_POSTGRES,
            super::Dialect::Sqlite => &*TOUCH_SQLITE,
        };
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&self.writer)
            .await
            .db_context("record session activity")?;
        Ok(())
    }

    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionRecord>> {
        #[cfg(feature = "sqlite")]
        if let Some(inline) = &self.inline {
            return self
                .claim_on_sqlite(inline, holder, now, until, limit)
                .await;
        }
        let rows = self
            .claim_rows(CLAIM, holder, now, until, limit, "claim due sessions")
            .await?;
        rows.iter().map(record_from).collect()
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        // The first sessions in due order, read from `sessions_due`: a bounded read, where
        // the earliest claimable moment of every running session is a scan of them all — and
        // a monitor asks after every pass, which is every few milliseconds when many run.
        let first: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT next_check_at, lease_until FROM sessions
             WHERE status = 'running' AND next_check_at IS NOT NULL
             ORDER BY next_check_at, owner_id LIMIT $1",
        )
        .bind(NEXT_DUE_READ)
        .fetch_all(&self.reader)
        .await
        .db_context("read when the next session is due")?;
        opt_at(earliest_claimable(&first, NEXT_DUE_READ))
    }

    async fn unfinished(&self, node: Option<&str>) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(unfinished_sql!("*"))
            .bind(node)
            // From the readers, which see every committed write: on SQLite the writer is one
            // connection, and reading 100,000 sessions through it held every write back for
            // two seconds each check interval.
            .fetch_all(&self.reader)
            .await
            .db_context("list unfinished sessions")?;
        rows.iter().map(record_from).collect()
    }

    async fn unfinished_statuses(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<(SessionId, SessionStatus)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(unfinished_sql!("id, status"))
            .bind(node)
            .fetch_all(&self.reader)
            .await
            .db_context("list unfinished sessions")?;
        rows.into_iter()
            .map(|(id, status)| {
                Ok((
                    parse("sessions.id", &id)?,
                    SessionStatus::parse(&status)
                        .ok_or_else(|| corrupt("sessions.status", &status))?,
                ))
            })
            .collect()
    }

    async fn delete_finished(&self, owner: UserId, id: SessionId) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM sessions WHERE id = $1 AND owner_id = $2
               AND status IN ('stopped', 'failed')",
        )
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(&self.writer)
        .await
        .db_context("delete session")?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_events(&self, events: &[NewSessionEvent]) -> Result<Vec<SessionEvent>> {
        append_on(&self.writer, self.dialect, events).await
    }

    async fn append_event(
        &self,
        session: SessionId,
        at: DateTime<Utc>,
        kind: &SessionEventKind,
        message: &str,
    ) -> Result<SessionEvent> {
        let data = to_json(kind)?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO session_events (session_id, at, type, data, message)
             VALUES ($1, $2, $3, $4, $5) RETURNING seq",
        )
        .bind(session.to_string())
        .bind(ms(at))
        .bind(kind.name())
        .bind(data)
        .bind(message)
        .fetch_one(&self.writer)
        .await
        .db_context("append session event")?;
        Ok(SessionEvent {
            seq: int("session_events.seq", seq)?,
            session_id: session,
            at,
            kind: kind.clone(),
            message: message.to_owned(),
        })
    }

    async fn events(
        &self,
        session: SessionId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<SessionEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM session_events WHERE session_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(session.to_string())
        .bind(int::<i64, u64>("after", after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .db_context("list session events")?;
        rows.iter().map(event_from).collect()
    }

    async fn history(
        &self,
        template: TemplateId,
        owner: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<SessionSample>> {
        let rows = sqlx::query(
            "SELECT stopped_at - started_at AS duration_ms, cost_micros, rate_micros
             FROM sessions
             WHERE template_id = $1 AND ($2 = '' OR owner_id = $2)
               AND status = 'stopped' AND started_at IS NOT NULL AND stopped_at IS NOT NULL
             ORDER BY id DESC LIMIT $3",
        )
        .bind(template.to_string())
        .bind(owner.map(|o| o.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .db_context("read session history")?;
        rows.iter()
            .map(|row| {
                Ok(SessionSample {
                    duration_ms: row.try_get("duration_ms").db_context("read history")?,
                    cost_micros: row.try_get("cost_micros").db_context("read history")?,
                    rate_micros_per_hour: row.try_get("rate_micros").db_context("read history")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::earliest_claimable;

    #[test]
    fn the_earliest_claimable_moment_is_a_check_or_a_lease_end_never_later_than_the_truth() {
        assert_eq!(earliest_claimable(&[], 3), None);
        // A lease ends after its session's check: claimable when the lease ends.
        assert_eq!(
            earliest_claimable(&[(10, Some(50)), (20, None)], 3),
            Some(20)
        );
        assert_eq!(
            earliest_claimable(&[(10, Some(15)), (20, None)], 3),
            Some(15)
        );
        // A lease that ended before the check changes nothing.
        assert_eq!(earliest_claimable(&[(10, Some(5))], 3), Some(10));
        // Every session read is leased past the last one's check: sessions not read may be
        // claimable from that check on, so the answer is no later than it.
        let all_leased = [(10, Some(90)), (20, Some(90)), (30, Some(90))];
        assert_eq!(earliest_claimable(&all_leased, 3), Some(30));
        // Fewer than asked for: they are all the running sessions, and the answer is exact.
        assert_eq!(earliest_claimable(&all_leased, 4), Some(90));
    }
}
