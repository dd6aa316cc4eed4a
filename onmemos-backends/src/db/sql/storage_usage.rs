//! The storage billing state of workspaces.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::id::WorkspaceId;
use onmemos_core::model::StorageUsageRecord;
use onmemos_core::ports::StorageUsageRepo;
use onmemos_core::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlDatabase;
use super::error::SqlxResultExt;
use super::rows::{at, i64_of, int, ms, parse};

/// The lease of due records, without the end of its sub-select (the dialects lock differently).
const CLAIM: &str = "UPDATE storage_usage SET lease_holder = $1, lease_until = $3
     WHERE workspace_id IN (
         SELECT workspace_id FROM storage_usage
         WHERE (next_sample_at <= $2 OR pending_micros IS NOT NULL)
           AND (lease_until IS NULL OR lease_until <= $2)
         ORDER BY next_sample_at LIMIT $4";

fn record_from(row: &AnyRow) -> Result<StorageUsageRecord> {
    let num = |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read storage_usage") };
    let text =
        |c: &'static str| -> Result<String> { row.try_get(c).db_context("read storage_usage") };
    let pending: Option<i64> = row
        .try_get("pending_micros")
        .db_context("read storage_usage")?;
    Ok(StorageUsageRecord {
        workspace_id: parse("storage_usage.workspace_id", &text("workspace_id")?)?,
        owner_id: parse("storage_usage.owner_id", &text("owner_id")?)?,
        step: int("storage_usage.step", num("step")?)?,
        sampled_at: at(num("sampled_at")?)?,
        bytes: int("storage_usage.bytes", num("bytes")?)?,
        carry: num("carry")?,
        owed: num("owed_micros")?,
        charged: num("charged_micros")?,
        pending,
        next_sample_at: at(num("next_sample_at")?)?,
        version: int("storage_usage.version", num("version")?)?,
    })
}

#[async_trait]
impl StorageUsageRepo for SqlDatabase {
    async fn enroll(&self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "INSERT INTO storage_usage (workspace_id, owner_id, step, sampled_at, bytes, carry,
                 owed_micros, charged_micros, pending_micros, next_sample_at, version)
             SELECT w.id, w.owner_id, 0, $1, 0, 0, 0, 0, NULL, $1, 0
             FROM workspaces w
             WHERE NOT EXISTS (SELECT 1 FROM storage_usage s WHERE s.workspace_id = w.id)
             ON CONFLICT (workspace_id) DO NOTHING",
        )
        .bind(ms(now))
        .execute(&self.writer)
        .await
        .db_context("enroll workspaces in storage billing")?;
        Ok(done.rows_affected())
    }

    async fn get(&self, workspace: WorkspaceId) -> Result<Option<StorageUsageRecord>> {
        let row = sqlx::query("SELECT * FROM storage_usage WHERE workspace_id = $1")
            .bind(workspace.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("read storage usage")?;
        row.as_ref().map(record_from).transpose()
    }

    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StorageUsageRecord>> {
        let rows = self
            .claim_rows(
                CLAIM,
                holder,
                now,
                until,
                limit,
                "claim due storage samples",
            )
            .await?;
        rows.iter().map(record_from).collect()
    }

    async fn update(&self, r: &StorageUsageRecord) -> Result<bool> {
        let expected = r
            .version
            .checked_sub(1)
            .ok_or_else(|| Error::internal("a storage usage update must bump the version"))?;
        let done = sqlx::query(
            "UPDATE storage_usage SET step = $2, sampled_at = $3, bytes = $4, carry = $5,
                 owed_micros = $6, charged_micros = $7, pending_micros = $8,
                 next_sample_at = $9, version = $10, lease_holder = NULL, lease_until = NULL
             WHERE workspace_id = $1 AND version = $11",
        )
        .bind(r.workspace_id.to_string())
        .bind(i64_of(r.step, "step")?)
        .bind(ms(r.sampled_at))
        .bind(i64_of(r.bytes, "bytes")?)
        .bind(r.carry)
        .bind(r.owed)
        .bind(r.charged)
        .bind(r.pending)
        .bind(ms(r.next_sample_at))
        .bind(i64_of(r.version, "version")?)
        .bind(i64_of(expected, "version")?)
        .execute(&self.writer)
        .await
        .db_context("update storage usage")?;
        Ok(done.rows_affected() == 1)
    }
}
