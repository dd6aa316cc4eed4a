//! OnMemOS in-process, without HTTP: an engine over an embedded SQLite database, a user, a
//! workspace and the built-in templates.
//!
//! `cargo run --example in_process`

use std::sync::Arc;

use onmemos::backends::db::SqlDatabase;
use onmemos::core::api::{CreateUser, CreateWorkspace, TemplateListParams};
use onmemos::core::{Engine, Principal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("onmemos.db").display());
    let db = Arc::new(SqlDatabase::open(&url).await?);
    let engine = Engine::builder(db).build().await?;

    let created = engine
        .users()
        .bootstrap(CreateUser {
            email: "ada@example.com".into(),
            name: Some("Ada".into()),
            role: None,
        })
        .await?;
    println!(
        "user {} with key {}…",
        created.user.id, created.api_key.key.prefix
    );

    // A program acts as a user directly; an HTTP request would authenticate the key instead.
    let ada = Principal::for_user(&created.user);
    let same = engine
        .api_keys()
        .authenticate(&created.api_key.secret)
        .await?;
    assert_eq!(same.user_id(), ada.user_id());

    let ws = engine
        .workspaces()
        .create(
            &ada,
            CreateWorkspace {
                name: "research".into(),
                description: Some("notebooks".into()),
                env: [("PYTHONHASHSEED".to_string(), "0".to_string())].into(),
            },
        )
        .await?;
    println!("workspace {} ({})", ws.name, ws.id);

    let templates = engine
        .templates()
        .list(&ada, &TemplateListParams::default())
        .await?;
    for t in &templates.items {
        println!(
            "template {:<13} {:>5} mCPU {:>6} MiB  {}",
            t.name, t.resources.cpu_millis, t.resources.memory_mib, t.image
        );
    }
    assert_eq!(templates.items.len(), 4);
    Ok(())
}
