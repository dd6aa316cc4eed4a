//! Set-based statements over JSON: a batch binds its rows as one JSON array and the statement
//! reads it as a relation (`jsonb_to_recordset` on PostgreSQL, `jsonb_each` on SQLite), so a
//! write of a thousand rows is one statement and one round trip. Values stay bound: only
//! column names, which are constants, go into the text.

use onmemos_core::Result;
use serde_json::Value;
use sqlx::any::AnyRow;

use super::Dialect;
use super::error::SqlxResultExt;
use super::rows::Columns;

/// A JSON array of text, as the list statements take it.
pub(crate) fn text_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    Value::Array(items.into_iter().map(Value::from).collect()).to_string()
}

/// Runs `sql` for the JSON array of text `list`, bound at `$1` and read where `sql` says
/// `IN {list}` (`… WHERE id IN {list}`); returns the rows it answers.
pub(crate) async fn for_list<'e, E>(
    executor: E,
    d: Dialect,
    sql: &str,
    list: &str,
    what: &'static str,
) -> Result<Vec<AnyRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Built from constants only: the list is bound.
    sqlx::query(sqlx::AssertSqlSafe(list_sql(d, sql)))
        .bind(list)
        .fetch_all(executor)
        .await
        .db_context(what)
}

/// `sql` with its `IN {list}` reading the JSON array of text bound at `$1`, the dialect's way.
pub(crate) fn list_sql(d: Dialect, sql: &str) -> String {
    match d {
        // An array, not a sub-select: PostgreSQL estimates a sub-select of a function at 100
        // rows whatever the list holds, and with stale statistics then scans the whole table
        // (a hash semi-join) where an index lookup per element is what a list needs.
        Dialect::Postgres => sql.replace(
            "IN {list}",
            "= ANY (ARRAY(SELECT json_array_elements_text($1::json)))",
        ),
        Dialect::Sqlite => sql.replace("{list}", "(SELECT value FROM json_each($1))"),
    }
}

/// [`for_list`], each row parsed by `parse`.
pub(crate) async fn parse_list<'e, E, T>(
    executor: E,
    d: Dialect,
    sql: &str,
    list: &str,
    what: &'static str,
    parse: impl Fn(&dyn Columns) -> Result<T>,
) -> Result<Vec<T>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    for_list(executor, d, sql, list, what)
        .await?
        .iter()
        .map(|row| parse(row))
        .collect()
}

/// The type of a column of a JSON row set.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    /// Text.
    Text,
    /// A 64-bit integer.
    Int,
}

/// A relation `r` over the JSON array of objects bound at `$1`, with these columns.
pub(crate) fn records(d: Dialect, cols: &[(&str, Ty)]) -> String {
    match d {
        Dialect::Postgres => {
            let defs: Vec<String> = cols
                .iter()
                .map(|(c, t)| {
                    format!(
                        "{c} {}",
                        match t {
                            Ty::Text => "TEXT",
                            Ty::Int => "BIGINT",
                        }
                    )
                })
                .collect();
            format!("json_to_recordset($1::json) AS r({})", defs.join(", "))
        }
        Dialect::Sqlite => {
            let defs: Vec<String> = cols
                .iter()
                .map(|(c, _)| format!("value ->> '{c}' AS {c}"))
                .collect();
            // `jsonb_each`: each object comes out as JSONB, which `->>` reads in place;
            // `json_each` would turn it back into text for every column to parse again.
            format!("(SELECT {} FROM jsonb_each($1)) AS r", defs.join(", "))
        }
    }
}
