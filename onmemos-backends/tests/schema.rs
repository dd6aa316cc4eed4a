//! The SQLite and PostgreSQL migrations produce the same logical schema: the same tables,
//! columns (name, integer/text, nullability, primary key), indexes (name, uniqueness) and
//! foreign keys (with their ON DELETE rule).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::BTreeSet;

use onmemos_backends::db::SqlDatabase;
use onmemos_backends::testing::fresh_postgres_url;
use sqlx::{AnyPool, Row};

type Schema = BTreeSet<String>;

fn class(sql_type: &str) -> &'static str {
    let t = sql_type.to_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("text") || t.contains("char") {
        "text"
    } else {
        "other"
    }
}

async fn strings(pool: &AnyPool, sql: String) -> Vec<Vec<String>> {
    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| row.try_get::<String, _>(i).unwrap_or_default())
                .collect()
        })
        .collect()
}

async fn sqlite_schema(pool: &AnyPool) -> Schema {
    let mut out = Schema::new();
    let tables = strings(
        pool,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'".into(),
    )
    .await;
    for t in tables.iter().map(|r| r[0].clone()) {
        out.insert(format!("table {t}"));
        let cols = strings(pool, format!(
            "SELECT name, type, CAST(\"notnull\" AS TEXT), CAST(pk AS TEXT) FROM pragma_table_info('{t}')"
        )).await;
        for c in cols {
            let not_null = c[2] == "1" || c[3] != "0";
            out.insert(format!(
                "column {t}.{} {} {}{}",
                c[0],
                class(&c[1]),
                if not_null { "not null" } else { "null" },
                if c[3] != "0" { " pk" } else { "" }
            ));
        }
        let idx = strings(pool, format!(
            "SELECT name, CAST(\"unique\" AS TEXT) FROM pragma_index_list('{t}') WHERE origin = 'c'"
        )).await;
        for i in idx {
            out.insert(format!(
                "index {t}.{} {}",
                i[0],
                if i[1] == "1" { "unique" } else { "plain" }
            ));
        }
        let fks = strings(
            pool,
            format!(
                "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list('{t}')"
            ),
        )
        .await;
        for f in fks {
            out.insert(format!(
                "fk {t}.{} -> {}.{} on delete {}",
                f[0],
                f[1],
                f[2],
                f[3].to_lowercase()
            ));
        }
    }
    out
}

async fn postgres_schema(pool: &AnyPool) -> Schema {
    let mut out = Schema::new();
    let tables = strings(
        pool,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'".into(),
    )
    .await;
    for t in tables.iter().map(|r| r[0].clone()) {
        out.insert(format!("table {t}"));
        let cols = strings(pool, format!(
            "SELECT c.column_name::text, c.data_type::text, c.is_nullable::text,
                    CASE WHEN EXISTS (
                      SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                      WHERE i.indrelid = '{t}'::regclass AND i.indisprimary AND a.attname = c.column_name
                    ) THEN '1' ELSE '0' END
             FROM information_schema.columns c WHERE c.table_schema = 'public' AND c.table_name = '{t}'"
        )).await;
        for c in cols {
            let pk = c[3] == "1";
            let not_null = c[2] == "NO";
            out.insert(format!(
                "column {t}.{} {} {}{}",
                c[0],
                class(&c[1]),
                if not_null { "not null" } else { "null" },
                if pk { " pk" } else { "" }
            ));
        }
        let idx = strings(
            pool,
            format!(
                "SELECT ci.relname::text, CASE WHEN i.indisunique THEN '1' ELSE '0' END
             FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
             WHERE i.indrelid = '{t}'::regclass AND NOT i.indisprimary"
            ),
        )
        .await;
        for i in idx {
            out.insert(format!(
                "index {t}.{} {}",
                i[0],
                if i[1] == "1" { "unique" } else { "plain" }
            ));
        }
        let fks = strings(pool, format!(
            "SELECT a.attname::text, cf.relname::text, af.attname::text,
                    CASE c.confdeltype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' WHEN 'r' THEN 'restrict' ELSE 'no action' END
             FROM pg_constraint c
             JOIN pg_class cf ON cf.oid = c.confrelid
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
             WHERE c.contype = 'f' AND c.conrelid = '{t}'::regclass"
        )).await;
        for f in fks {
            out.insert(format!(
                "fk {t}.{} -> {}.{} on delete {}",
                f[0], f[1], f[2], f[3]
            ));
        }
    }
    out
}

#[tokio::test]
async fn both_migration_sets_give_the_same_logical_schema() {
    let Some(pg_url) = fresh_postgres_url().await else {
        return;
    };
    let pg = SqlDatabase::open(&pg_url)
        .await
        .unwrap_or_else(|e| panic!("postgres: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let lite = SqlDatabase::open(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap_or_else(|e| panic!("sqlite: {e}"));
    let a = sqlite_schema(lite.writer()).await;
    let b = postgres_schema(pg.writer()).await;
    assert!(
        a.iter().filter(|l| l.starts_with("table ")).count() >= 5,
        "{a:#?}"
    );
    assert!(
        a.iter().any(|l| l.starts_with("fk ")),
        "no foreign keys read: {a:#?}"
    );
    let only_sqlite: Vec<_> = a.difference(&b).collect();
    let only_postgres: Vec<_> = b.difference(&a).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
}
