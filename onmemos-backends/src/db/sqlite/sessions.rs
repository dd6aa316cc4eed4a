//! A billing pass's session writes on SQLite's own write connection (see [`super::ledger`]):
//! each tick's record and events bound as values, one prepared statement a row, no JSON.

use std::collections::HashSet;
use std::sync::LazyLock;

use onmemos_core::model::{SessionRecord, TransferId};
use onmemos_core::ports::NewSessionEvent;
use onmemos_core::{Error, Result};
use rusqlite::{Connection, TransactionBehavior, params};

use super::ledger::error;
use crate::db::sql::rows::{i64_of, ms, to_json};
use crate::db::sql::sessions::TICK_COLUMNS;

/// The update of a tick's billing columns (`TICK_COLUMNS`, bound from `?3` in that order) of the
/// session `?1` if its version is `?2`, releasing its lease.
static UPDATE_TICK: LazyLock<String> = LazyLock::new(|| {
    let sets: Vec<String> = TICK_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ?{}", i + 3))
        .collect();
    format!(
        "UPDATE sessions SET {}, lease_holder = NULL, lease_until = NULL
         WHERE id = ?1 AND version = ?2",
        sets.join(", ")
    )
});

/// A tick's write of one session: the billing columns (in `TICK_COLUMNS`' order after the id
/// and the version it expects to find).
pub(crate) struct TickRow {
    id: String,
    expected: i64,
    version: i64,
    cost_micros: i64,
    billed_ms: i64,
    tick: i64,
    hold_id: Option<String>,
    covered_until: Option<i64>,
    next_check_at: Option<i64>,
    warned: i64,
}

impl TickRow {
    /// `record`'s row; its version must be one above the stored one.
    pub(crate) fn of(record: &SessionRecord) -> Result<Self> {
        let expected = record
            .version
            .checked_sub(1)
            .ok_or_else(|| Error::internal("a session update must bump the version"))?;
        Ok(Self {
            id: record.session.id.to_string(),
            expected: i64_of(expected, "version")?,
            version: i64_of(record.version, "version")?,
            cost_micros: record.session.cost_micros,
            billed_ms: record.billed_ms,
            tick: i64_of(record.tick, "tick")?,
            hold_id: record
                .hold
                .as_ref()
                .map(TransferId::as_str)
                .map(str::to_owned),
            covered_until: record.covered_until.map(ms),
            next_check_at: record.next_check_at.map(ms),
            warned: i64::from(record.warned),
        })
    }
}

/// An event to append: its session's id and its columns.
pub(crate) struct EventRow {
    session: String,
    at: i64,
    kind: &'static str,
    data: String,
    message: String,
}

impl EventRow {
    /// `event`'s row.
    pub(crate) fn of(event: &NewSessionEvent) -> Result<Self> {
        Ok(Self {
            session: event.session.to_string(),
            at: ms(event.at),
            kind: event.kind.name(),
            data: to_json(&event.kind)?,
            message: event.message.clone(),
        })
    }
}

/// Writes each of `ticks` whose stored version is the one it expects (in id order, releasing
/// its lease), and the `events` of those written, in one transaction on `c`: whether each tick
/// was written, in order, and the positions of the events stored, in order.
pub(crate) fn record_ticks(
    c: &mut Connection,
    ticks: &[TickRow],
    events: &[EventRow],
) -> Result<(Vec<bool>, Vec<i64>)> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| error("begin a session write", e))?;
    let mut written = vec![false; ticks.len()];
    {
        let mut update = tx
            .prepare_cached(&UPDATE_TICK)
            .map_err(|e| error("update sessions", e))?;
        let mut order: Vec<usize> = (0..ticks.len()).collect();
        order.sort_by(|a, b| ticks[*a].id.cmp(&ticks[*b].id));
        for i in order {
            let t = &ticks[i];
            let n = update
                .execute(params![
                    t.id,
                    t.expected,
                    t.version,
                    t.cost_micros,
                    t.billed_ms,
                    t.tick,
                    t.hold_id,
                    t.covered_until,
                    t.next_check_at,
                    t.warned,
                ])
                .map_err(|e| error("update sessions", e))?;
            written[i] = n == 1;
        }
    }
    let ticked: HashSet<&str> = ticks
        .iter()
        .zip(&written)
        .filter(|(_, w)| **w)
        .map(|(t, _)| t.id.as_str())
        .collect();
    let mut seqs = Vec::new();
    {
        let mut append = tx
            .prepare_cached(
                "INSERT INTO session_events (session_id, at, type, data, message)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(|e| error("append session events", e))?;
        for e in events
            .iter()
            .filter(|e| ticked.contains(e.session.as_str()))
        {
            append
                .execute(params![e.session, e.at, e.kind, e.data, e.message])
                .map_err(|e| error("append session events", e))?;
            seqs.push(tx.last_insert_rowid());
        }
    }
    tx.commit().map_err(|e| error("commit session ticks", e))?;
    Ok((written, seqs))
}
