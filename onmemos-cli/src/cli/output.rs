//! Tables for humans, JSON for scripts.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or as a table of `headers` and `rows`.
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        headers: &[&str],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(headers.to_vec());
            for row in rows {
                table.add_row(row);
            }
            println!("{table}");
        }
        Ok(())
    }

    /// Prints a one-line confirmation (or `{"ok": true, …}` in JSON mode).
    pub fn done(&self, message: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::json!({ "ok": true, "message": message }));
        } else {
            println!("{message}");
        }
        Ok(())
    }
}

/// A timestamp for tables.
pub(crate) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}
