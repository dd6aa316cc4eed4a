//! Stored responses of requests made with an idempotency key.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::Result;
use onmemos_core::id::UserId;
use onmemos_core::ports::{IdempotencyBegin, IdempotencyRepo, StoredResponse};
use sqlx::Row;

use super::SqlDatabase;
use super::error::SqlxResultExt;
use super::rows::{int, ms};

#[async_trait]
impl IdempotencyRepo for SqlDatabase {
    async fn begin(
        &self,
        user: UserId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        stale_after: chrono::Duration,
    ) -> Result<IdempotencyBegin> {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_records (user_id, key, request_hash, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key) DO NOTHING",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(request_hash)
        .bind(ms(now))
        .execute(&self.writer)
        .await
        .db_context("claim idempotency key")?;
        if claimed.rows_affected() == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let Some(row) = sqlx::query(
            "SELECT request_hash, done, status, content_type, body, created_at
             FROM idempotency_records WHERE user_id = $1 AND key = $2",
        )
        .bind(user.to_string())
        .bind(key)
        .fetch_optional(&self.writer)
        .await
        .db_context("read idempotency key")?
        else {
            // Abandoned between our insert and read: claim it again.
            return Box::pin(self.begin(user, key, request_hash, now, stale_after)).await;
        };
        let hash: String = row
            .try_get("request_hash")
            .db_context("read idempotency key")?;
        if hash != request_hash {
            return Ok(IdempotencyBegin::Mismatch);
        }
        let done: i64 = row.try_get("done").db_context("read idempotency key")?;
        if done == 1 {
            let status: Option<i64> = row.try_get("status").db_context("read idempotency key")?;
            return Ok(IdempotencyBegin::Replay(StoredResponse {
                status: int("idempotency_records.status", status.unwrap_or(500))?,
                content_type: row
                    .try_get::<Option<String>, _>("content_type")
                    .db_context("read idempotency key")?
                    .unwrap_or_default(),
                body: row
                    .try_get::<Option<String>, _>("body")
                    .db_context("read idempotency key")?
                    .unwrap_or_default(),
            }));
        }
        let created: i64 = row
            .try_get("created_at")
            .db_context("read idempotency key")?;
        if created <= ms(now - stale_after) {
            let taken = sqlx::query(
                "UPDATE idempotency_records SET created_at = $4
                 WHERE user_id = $1 AND key = $2 AND done = 0 AND created_at = $3",
            )
            .bind(user.to_string())
            .bind(key)
            .bind(created)
            .bind(ms(now))
            .execute(&self.writer)
            .await
            .db_context("take over idempotency key")?;
            if taken.rows_affected() == 1 {
                return Ok(IdempotencyBegin::Started);
            }
        }
        Ok(IdempotencyBegin::InFlight)
    }

    async fn complete(&self, user: UserId, key: &str, response: &StoredResponse) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_records SET done = 1, status = $3, content_type = $4, body = $5
             WHERE user_id = $1 AND key = $2",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(i64::from(response.status))
        .bind(&response.content_type)
        .bind(&response.body)
        .execute(&self.writer)
        .await
        .db_context("store idempotent response")?;
        Ok(())
    }

    async fn abandon(&self, user: UserId, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM idempotency_records WHERE user_id = $1 AND key = $2 AND done = 0")
            .bind(user.to_string())
            .bind(key)
            .execute(&self.writer)
            .await
            .db_context("release idempotency key")?;
        Ok(())
    }
}
