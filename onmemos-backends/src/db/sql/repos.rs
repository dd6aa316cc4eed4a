//! The repositories, one SQL text for both databases (placeholders `$N`, which SQLite and
//! PostgreSQL both accept), with the [`Dialect`](super::Dialect) choosing where they differ.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use onmemos_core::api::{Page, PageRequest};
use onmemos_core::id::{ApiKeyId, TemplateId, UserId, WorkspaceId};
use onmemos_core::model::{ApiKey, ApiKeyRecord, Template, User, Workspace};
use onmemos_core::passport::KeyDigest;
use onmemos_core::ports::{ApiKeyRepo, TemplateFilter, TemplateRepo, UserRepo, WorkspaceRepo};
use onmemos_core::{Error, Result};
use sqlx::AnyPool;
use sqlx::Row;

use super::error::{SqlxResultExt, corrupt};
use super::rows::{
    after, api_key_from, int, ms, overfetch, template_from, to_json, user_from, workspace_from,
};
use super::{Dialect, SqlDatabase};

const INSERT_API_KEY: &str = "INSERT INTO api_keys
    (id, user_id, name, prefix, digest, scopes, created_at, expires_at, revoked_at, last_used_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

async fn insert_api_key(conn: &mut sqlx::AnyConnection, record: &ApiKeyRecord) -> Result<()> {
    let k = &record.key;
    sqlx::query(INSERT_API_KEY)
        .bind(k.id.to_string())
        .bind(k.user_id.to_string())
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(record.digest.to_hex())
        .bind(to_json(&k.scopes)?)
        .bind(ms(k.created_at))
        .bind(k.expires_at.map(ms))
        .bind(k.revoked_at.map(ms))
        .bind(k.last_used_at.map(ms))
        .execute(conn)
        .await
        .db_context("insert API key")?;
    Ok(())
}

#[async_trait]
impl UserRepo for SqlDatabase {
    async fn insert(&self, user: &User, first_key: Option<&ApiKeyRecord>) -> Result<()> {
        let mut tx = self.writer.begin().await.db_context("begin")?;
        sqlx::query(
            "INSERT INTO users (id, email, name, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(ms(user.created_at))
        .execute(&mut *tx)
        .await
        .db_context("insert user")
        .map_err(|e| e.with_context("field", "email"))?;
        if let Some(record) = first_key {
            insert_api_key(&mut tx, record).await?;
        }
        tx.commit().await.db_context("commit")?;
        Ok(())
    }

    async fn get(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("get user")?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn list(&self, page: PageRequest<UserId>) -> Result<Page<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after(&page))
            .bind(overfetch(page.limit))
            .fetch_all(&self.reader)
            .await
            .db_context("list users")?;
        let items = rows.iter().map(user_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |u| u.id))
    }

    async fn count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .db_context("count users")?;
        int("count", n)
    }
}

#[async_trait]
impl ApiKeyRepo for SqlDatabase {
    async fn insert(&self, record: &ApiKeyRecord) -> Result<()> {
        let mut conn = self.writer.acquire().await.db_context("acquire")?;
        insert_api_key(&mut conn, record).await
    }

    async fn find_by_digest(&self, digest: &KeyDigest) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE digest = $1")
            .bind(digest.to_hex())
            .fetch_optional(&self.reader)
            .await
            .db_context("find API key")?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get("digest").db_context("read api_keys.digest")?;
        Ok(Some(ApiKeyRecord {
            key: api_key_from(&row)?,
            digest: KeyDigest::from_hex(&stored)
                .ok_or_else(|| corrupt("api_keys.digest", &stored))?,
        }))
    }

    async fn get(&self, user: UserId, id: ApiKeyId) -> Result<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("get API key")?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    async fn list(&self, user: UserId, page: PageRequest<ApiKeyId>) -> Result<Page<ApiKey>> {
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(user.to_string())
        .bind(after(&page))
        .bind(overfetch(page.limit))
        .fetch_all(&self.reader)
        .await
        .db_context("list API keys")?;
        let items = rows.iter().map(api_key_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |k| k.id))
    }

    async fn revoke(
        &self,
        user: UserId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<Option<ApiKey>> {
        let mut tx = self.writer.begin().await.db_context("begin")?;
        let key = sqlx::query(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
             WHERE id = $1 AND user_id = $2 RETURNING *",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(ms(at))
        .fetch_optional(&mut *tx)
        .await
        .db_context("revoke API key")?
        .as_ref()
        .map(api_key_from)
        .transpose()?;
        if key.is_some() {
            sqlx::query("UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .db_context("raise the revocation epoch")?;
        }
        tx.commit().await.db_context("commit")?;
        Ok(key)
    }

    async fn revocation_epoch(&self) -> Result<u64> {
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM auth_epoch WHERE id = 1")
            .fetch_one(&self.reader)
            .await
            .db_context("read the revocation epoch")?;
        int("auth_epoch.epoch", epoch)
    }

    async fn touch_many(
        &self,
        uses: &[(ApiKeyId, DateTime<Utc>)],
        interval: chrono::Duration,
    ) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = uses
            .iter()
            .map(|(id, at)| {
                serde_json::json!({
                    "kid": id.to_string(), "used": ms(*at), "before": ms(*at - interval),
                })
            })
            .collect();
        let sql = format!(
            "UPDATE api_keys SET last_used_at = r.used FROM {}
             WHERE api_keys.id = r.kid
               AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at <= r.before)",
            super::json_rows::records(
                self.dialect,
                &[
                    ("kid", super::json_rows::Ty::Text),
                    ("used", super::json_rows::Ty::Int),
                    ("before", super::json_rows::Ty::Int),
                ]
            )
        );
        // Built from constants only: the values are bound.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&self.writer)
            .await
            .db_context("record API key uses")?;
        Ok(())
    }

    async fn touch(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        interval: chrono::Duration,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(id.to_string())
        .bind(ms(at))
        .bind(ms(at - interval))
        .execute(&self.writer)
        .await
        .db_context("record API key use")?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl WorkspaceRepo for SqlDatabase {
    async fn insert(&self, w: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, owner_id, name, description, env, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(w.id.to_string())
        .bind(w.owner_id.to_string())
        .bind(&w.name)
        .bind(&w.description)
        .bind(to_json(&w.env)?)
        .bind(ms(w.created_at))
        .bind(ms(w.updated_at))
        .execute(&self.writer)
        .await
        .db_context("insert workspace")
        .map_err(|e| e.with_context("field", "name"))?;
        Ok(())
    }

    async fn get(&self, owner: UserId, id: WorkspaceId) -> Result<Option<Workspace>> {
        sqlx::query("SELECT * FROM workspaces WHERE id = $1 AND owner_id = $2")
            .bind(id.to_string())
            .bind(owner.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("get workspace")?
            .as_ref()
            .map(workspace_from)
            .transpose()
    }

    async fn list(&self, owner: UserId, page: PageRequest<WorkspaceId>) -> Result<Page<Workspace>> {
        let rows = sqlx::query(
            "SELECT * FROM workspaces WHERE owner_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(owner.to_string())
        .bind(after(&page))
        .bind(overfetch(page.limit))
        .fetch_all(&self.reader)
        .await
        .db_context("list workspaces")?;
        let items = rows
            .iter()
            .map(workspace_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |w| w.id))
    }

    async fn update(&self, w: &Workspace) -> Result<()> {
        let done = sqlx::query(
            "UPDATE workspaces SET name = $3, description = $4, env = $5, updated_at = $6
             WHERE id = $1 AND owner_id = $2",
        )
        .bind(w.id.to_string())
        .bind(w.owner_id.to_string())
        .bind(&w.name)
        .bind(&w.description)
        .bind(to_json(&w.env)?)
        .bind(ms(w.updated_at))
        .execute(&self.writer)
        .await
        .db_context("update workspace")
        .map_err(|e| e.with_context("field", "name"))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("workspace not found"));
        }
        Ok(())
    }

    async fn delete(&self, owner: UserId, id: WorkspaceId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM workspaces WHERE id = $1 AND owner_id = $2")
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(&self.writer)
            .await
            .db_context("delete workspace")?;
        Ok(done.rows_affected() == 1)
    }
}

macro_rules! insert_template_sql {
    () => {
        "INSERT INTO templates (id, owner_id, name, description, category, image, cpu_millis,
            memory_mib, gpu, disk_gib, env, max_duration_secs, max_cost_micros, idle_timeout_secs,
            tags, expected_start_ms, usage_count, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    };
}

/// Inserts a template; for a built-in, refreshes the definition of an existing one of the same
/// name instead, keeping its id, usage count and creation time.
async fn insert_template(pool: &AnyPool, t: &Template, upsert_builtin: bool) -> Result<()> {
    let sql = if upsert_builtin {
        concat!(
            insert_template_sql!(),
            " ON CONFLICT (name) WHERE owner_id IS NULL DO UPDATE SET
              description = excluded.description, category = excluded.category,
              image = excluded.image, cpu_millis = excluded.cpu_millis,
              memory_mib = excluded.memory_mib, gpu = excluded.gpu, disk_gib = excluded.disk_gib,
              env = excluded.env, max_duration_secs = excluded.max_duration_secs,
              max_cost_micros = excluded.max_cost_micros,
              idle_timeout_secs = excluded.idle_timeout_secs, tags = excluded.tags,
              expected_start_ms = excluded.expected_start_ms"
        )
    } else {
        insert_template_sql!()
    };
    sqlx::query(sql)
        .bind(t.id.to_string())
        .bind(t.owner_id.map(|o| o.to_string()))
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.category.as_str())
        .bind(&t.image)
        .bind(i64::from(t.resources.cpu_millis))
        .bind(i64::from(t.resources.memory_mib))
        .bind(i64::from(t.resources.gpu))
        .bind(i64::from(t.resources.disk_gib))
        .bind(to_json(&t.env)?)
        .bind(int::<i64, _>(
            "max_duration_secs",
            t.default_limits.max_duration_secs,
        )?)
        .bind(t.default_limits.max_cost_micros)
        .bind(int::<i64, _>(
            "idle_timeout_secs",
            t.default_limits.idle_timeout_secs,
        )?)
        .bind(to_json(&t.tags)?)
        .bind(i64::from(t.expected_start_ms))
        .bind(int::<i64, _>("usage_count", t.usage_count)?)
        .bind(ms(t.created_at))
        .execute(pool)
        .await
        .db_context("insert template")
        .map_err(|e| e.with_context("field", "name"))?;
    Ok(())
}

/// The visible templates, by category; the dialect appends its "has tag `$4`" condition.
macro_rules! list_templates_sql {
    () => {
        "SELECT * FROM templates
         WHERE (owner_id IS NULL OR owner_id = $1) AND id > $2
           AND ($3 IS NULL OR category = $3)
           AND ($4 IS NULL OR "
    };
}

#[async_trait]
impl TemplateRepo for SqlDatabase {
    async fn upsert_builtin(&self, template: &Template) -> Result<()> {
        insert_template(&self.writer, template, true).await
    }

    async fn insert(&self, template: &Template) -> Result<()> {
        insert_template(&self.writer, template, false).await
    }

    async fn get_visible(&self, user: UserId, id: TemplateId) -> Result<Option<Template>> {
        sqlx::query("SELECT * FROM templates WHERE id = $1 AND (owner_id IS NULL OR owner_id = $2)")
            .bind(id.to_string())
            .bind(user.to_string())
            .fetch_optional(&self.reader)
            .await
            .db_context("get template")?
            .as_ref()
            .map(template_from)
            .transpose()
    }

    async fn find_visible_by_name(&self, user: UserId, name: &str) -> Result<Option<Template>> {
        sqlx::query(
            "SELECT * FROM templates WHERE name = $1 AND (owner_id IS NULL OR owner_id = $2)
             ORDER BY owner_id IS NULL LIMIT 1",
        )
        .bind(name)
        .bind(user.to_string())
        .fetch_optional(&self.reader)
        .await
        .db_context("find template")?
        .as_ref()
        .map(template_from)
        .transpose()
    }

    async fn list_visible(
        &self,
        user: UserId,
        filter: &TemplateFilter,
        page: PageRequest<TemplateId>,
    ) -> Result<Page<Template>> {
        let sql = match self.dialect {
            Dialect::Sqlite => concat!(
                list_templates_sql!(),
                "EXISTS (SELECT 1 FROM json_each(templates.tags) WHERE json_each.value = $4))",
                " ORDER BY id LIMIT $5"
            ),
            Dialect::Postgres => concat!(
                list_templates_sql!(),
                "templates.tags::jsonb ? $4)",
                " ORDER BY id LIMIT $5"
            ),
        };
        let rows = sqlx::query(sql)
            .bind(user.to_string())
            .bind(after(&page))
            .bind(filter.category.map(|c| c.as_str()))
            .bind(filter.tag.as_deref())
            .bind(overfetch(page.limit))
            .fetch_all(&self.reader)
            .await
            .db_context("list templates")?;
        let items = rows.iter().map(template_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |t| t.id))
    }

    async fn delete(&self, owner: UserId, id: TemplateId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM templates WHERE id = $1 AND owner_id = $2")
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(&self.writer)
            .await
            .db_context("delete template")?;
        Ok(done.rows_affected() == 1)
    }
}
