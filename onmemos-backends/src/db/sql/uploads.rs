//! Resumable uploads in progress and their parts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::Result;
use onmemos_core::id::{UploadId, UserId, WorkspaceId};
use onmemos_core::model::{UploadPart, UploadRecord};
use onmemos_core::ports::UploadRepo;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlDatabase;
use super::error::SqlxResultExt;
use super::rows::{at, i64_of, int, ms, parse, required};

fn upload_from(row: &AnyRow) -> Result<UploadRecord> {
    let num = |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read uploads") };
    let text = |c: &'static str| -> Result<String> { row.try_get(c).db_context("read uploads") };
    Ok(UploadRecord {
        id: parse("uploads.id", &text("id")?)?,
        workspace_id: parse("uploads.workspace_id", &text("workspace_id")?)?,
        owner_id: parse("uploads.owner_id", &text("owner_id")?)?,
        path: text("path")?,
        size: int("uploads.size", num("size")?)?,
        part_size: int("uploads.part_size", num("part_size")?)?,
        content_type: row.try_get("content_type").db_context("read uploads")?,
        store_upload_id: text("store_upload_id")?,
        created_at: at(num("created_at")?)?,
        expires_at: at(num("expires_at")?)?,
    })
}

#[async_trait]
impl UploadRepo for SqlDatabase {
    async fn insert(&self, u: &UploadRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, workspace_id, owner_id, path, size, part_size, content_type,
                 store_upload_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(u.id.to_string())
        .bind(u.workspace_id.to_string())
        .bind(u.owner_id.to_string())
        .bind(&u.path)
        .bind(i64_of(u.size, "size")?)
        .bind(i64_of(u.part_size, "part_size")?)
        .bind(u.content_type.clone())
        .bind(&u.store_upload_id)
        .bind(ms(u.created_at))
        .bind(ms(u.expires_at))
        .execute(&self.writer)
        .await
        .db_context("insert upload")?;
        Ok(())
    }

    async fn get(
        &self,
        owner: UserId,
        workspace: WorkspaceId,
        id: UploadId,
    ) -> Result<Option<UploadRecord>> {
        let row = sqlx::query(
            "SELECT * FROM uploads WHERE id = $1 AND workspace_id = $2 AND owner_id = $3",
        )
        .bind(id.to_string())
        .bind(workspace.to_string())
        .bind(owner.to_string())
        .fetch_optional(&self.reader)
        .await
        .db_context("read upload")?;
        row.as_ref().map(upload_from).transpose()
    }

    async fn put_part(&self, id: UploadId, part: &UploadPart) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, number, size, tag) VALUES ($1, $2, $3, $4)
             ON CONFLICT (upload_id, number) DO UPDATE SET size = excluded.size, tag = excluded.tag",
        )
        .bind(id.to_string())
        .bind(i64::from(part.number))
        .bind(i64_of(part.size, "size")?)
        .bind(&part.tag)
        .execute(&self.writer)
        .await
        .db_context("record an upload part")?;
        Ok(())
    }

    async fn parts(&self, id: UploadId) -> Result<Vec<UploadPart>> {
        let rows = sqlx::query("SELECT * FROM upload_parts WHERE upload_id = $1 ORDER BY number")
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await
            .db_context("read upload parts")?;
        rows.iter()
            .map(|row| {
                let num =
                    |c: &'static str| -> Result<i64> { row.try_get(c).db_context("read parts") };
                Ok(UploadPart {
                    number: int("upload_parts.number", num("number")?)?,
                    size: int("upload_parts.size", num("size")?)?,
                    tag: row.try_get("tag").db_context("read parts")?,
                })
            })
            .collect()
    }

    async fn delete(&self, id: UploadId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .db_context("delete upload")?;
        Ok(done.rows_affected() == 1)
    }

    async fn pending_bytes(&self, workspace: WorkspaceId) -> Result<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS total FROM uploads
             WHERE workspace_id = $1",
        )
        .bind(workspace.to_string())
        .fetch_one(&self.reader)
        .await
        .db_context("sum pending uploads")?;
        let total: i64 = row.try_get("total").db_context("sum pending uploads")?;
        int("uploads.size", total)
    }

    async fn pending_bytes_of(&self, workspaces: &[WorkspaceId]) -> Result<Vec<u64>> {
        if workspaces.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = workspaces.iter().map(ToString::to_string).collect();
        let list = super::json_rows::text_list(ids.iter().map(String::as_str));
        let sums = super::json_rows::parse_list(
            &self.reader,
            self.dialect,
            "SELECT workspace_id, CAST(SUM(size) AS BIGINT) AS total FROM uploads
             WHERE workspace_id IN {list} GROUP BY workspace_id",
            &list,
            "sum pending uploads",
            |row| {
                let workspace = required("uploads.workspace_id", row.text("workspace_id")?)?;
                let total = required("uploads.size", row.num("total")?)?;
                Ok((workspace, int::<u64, _>("uploads.size", total)?))
            },
        )
        .await?;
        let sums: std::collections::HashMap<String, u64> = sums.into_iter().collect();
        Ok(ids
            .iter()
            .map(|id| sums.get(id).copied().unwrap_or(0))
            .collect())
    }

    async fn abandoned(
        &self,
        now: DateTime<Utc>,
        workspace: Option<WorkspaceId>,
        limit: u32,
    ) -> Result<Vec<UploadRecord>> {
        let query = match workspace {
            Some(ws) => sqlx::query("SELECT * FROM uploads WHERE workspace_id = $1 LIMIT $2")
                .bind(ws.to_string()),
            None => sqlx::query(
                "SELECT * FROM uploads WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2",
            )
            .bind(ms(now)),
        };
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .db_context("read abandoned uploads")?;
        rows.iter().map(upload_from).collect()
    }
}
