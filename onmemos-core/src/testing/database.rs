//! The `Database` conformance suite. Every check makes its own users, so the checks may share
//! one database or each get a fresh one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::api::PageRequest;
use crate::error::ErrorKind;
use crate::id::{ApiKeyId, SessionId, TemplateId, UploadId, UserId, WorkspaceId};
use crate::model::{
    ApiKey, ApiKeyRecord, Placement, Resources, Role, Scope, Session, SessionEventKind,
    SessionLimits, SessionRecord, SessionStatus, Template, TemplateCategory, User, Workspace,
};
use crate::passport::{KeyDigest, Secret};
use crate::ports::{Database, NewSessionEvent, TemplateFilter};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default()
}

fn user(role: Role) -> User {
    let id = UserId::new();
    User {
        id,
        email: format!("{}@conformance.test", id.as_uuid().simple()),
        name: Some("Conformance".into()),
        role,
        created_at: t0(),
    }
}

fn key_for(user: &User) -> ApiKeyRecord {
    let secret = Secret::generate();
    ApiKeyRecord {
        key: ApiKey {
            id: ApiKeyId::new(),
            user_id: user.id,
            name: "k".into(),
            prefix: secret.display_prefix().into(),
            scopes: vec![Scope::WorkspacesRead, Scope::KeysWrite],
            created_at: t0(),
            expires_at: Some(t0() + Duration::days(30)),
            revoked_at: None,
            last_used_at: None,
        },
        digest: KeyDigest::of(&secret),
    }
}

fn workspace(owner: UserId, name: &str) -> Workspace {
    let mut env = BTreeMap::new();
    env.insert("GREETING".to_string(), "héllo \"quoted\"".to_string());
    Workspace {
        id: WorkspaceId::new(),
        owner_id: owner,
        name: name.into(),
        description: Some("desc".into()),
        env,
        created_at: t0(),
        updated_at: t0(),
    }
}

fn template(
    owner: Option<UserId>,
    name: &str,
    category: TemplateCategory,
    tags: &[&str],
) -> Template {
    Template {
        id: TemplateId::new(),
        name: name.into(),
        owner_id: owner,
        builtin: owner.is_none(),
        description: None,
        category,
        image: "python:3.12-slim".into(),
        resources: Resources {
            cpu_millis: 500,
            memory_mib: 512,
            gpu: 0,
            disk_gib: 5,
        },
        env: BTreeMap::new(),
        default_limits: SessionLimits::default(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        expected_start_ms: 900,
        usage_count: 0,
        created_at: t0(),
    }
}

async fn new_user(db: &Arc<dyn Database>) -> User {
    let u = user(Role::Member);
    db.users()
        .insert(&u, None)
        .await
        .unwrap_or_else(|e| panic!("insert user: {e}"));
    u
}

/// Users round-trip; emails are unique case-insensitively; a user and their first key are
/// inserted atomically.
pub async fn users_round_trip_and_unique_email(db: Arc<dyn Database>) {
    let u = user(Role::Admin);
    let key = key_for(&u);
    let before = db
        .users()
        .count()
        .await
        .unwrap_or_else(|e| panic!("count: {e}"));
    db.users()
        .insert(&u, Some(&key))
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(
        db.users().get(u.id).await.ok().flatten(),
        Some(u.clone()),
        "user read back"
    );
    assert_eq!(
        db.users().count().await.ok(),
        Some(before + 1),
        "count grew by one"
    );
    let found = db
        .api_keys()
        .find_by_digest(&key.digest)
        .await
        .ok()
        .flatten();
    assert_eq!(found, Some(key.clone()), "first key read back by digest");

    let mut twin = user(Role::Member);
    twin.email = u.email.to_uppercase();
    let err = db.users().insert(&twin, None).await.err().map(|e| e.kind());
    assert_eq!(
        err,
        Some(ErrorKind::Conflict),
        "same email in another case must conflict"
    );

    // A user whose first key cannot be stored is not stored either.
    let lonely = user(Role::Member);
    let mut dup_key = key_for(&lonely);
    dup_key.digest = key.digest;
    assert!(
        db.users().insert(&lonely, Some(&dup_key)).await.is_err(),
        "duplicate digest accepted"
    );
    assert_eq!(
        db.users().get(lonely.id).await.ok().flatten(),
        None,
        "user left behind by failed insert"
    );
    assert_eq!(db.users().get(UserId::new()).await.ok().flatten(), None);
}

/// Pages of users cover every user once, in id order.
pub async fn users_paginate_in_id_order(db: Arc<dyn Database>) {
    let mut mine = BTreeSet::new();
    for _ in 0..7 {
        mine.insert(new_user(&db).await.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let got = db
            .users()
            .list(page)
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        assert!(got.items.len() <= 3, "page larger than its limit");
        seen.extend(got.items.iter().map(|u| u.id));
        match got.next_cursor {
            Some(c) => page.after = Some(c.parse().unwrap_or_else(|e| panic!("cursor: {e}"))),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "users repeated or out of order");
    assert!(
        mine.iter().all(|id| seen.contains(id)),
        "a user was skipped"
    );
}

/// Keys are found by digest, scoped to their user, revoked once, and listed per user.
pub async fn api_keys_scoped_revocable_and_listed(db: Arc<dyn Database>) {
    let alice = new_user(&db).await;
    let bob = new_user(&db).await;
    let k1 = key_for(&alice);
    let k2 = key_for(&alice);
    for k in [&k1, &k2] {
        db.api_keys()
            .insert(k)
            .await
            .unwrap_or_else(|e| panic!("insert key: {e}"));
    }
    assert_eq!(
        db.api_keys().get(alice.id, k1.key.id).await.ok().flatten(),
        Some(k1.key.clone())
    );
    assert_eq!(
        db.api_keys().get(bob.id, k1.key.id).await.ok().flatten(),
        None,
        "bob sees alice's key"
    );
    assert_eq!(
        db.api_keys()
            .revoke(bob.id, k1.key.id, t0())
            .await
            .ok()
            .flatten(),
        None,
        "bob revoked alice's key"
    );

    let first = t0() + Duration::minutes(1);
    let revoked = db
        .api_keys()
        .revoke(alice.id, k1.key.id, first)
        .await
        .ok()
        .flatten();
    assert_eq!(revoked.and_then(|k| k.revoked_at), Some(first));
    let again = db
        .api_keys()
        .revoke(alice.id, k1.key.id, first + Duration::hours(1))
        .await
        .ok()
        .flatten();
    assert_eq!(
        again.and_then(|k| k.revoked_at),
        Some(first),
        "second revocation moved the time"
    );
    let by_digest = db
        .api_keys()
        .find_by_digest(&k1.digest)
        .await
        .ok()
        .flatten();
    assert_eq!(by_digest.and_then(|r| r.key.revoked_at), Some(first));

    let page = db
        .api_keys()
        .list(alice.id, PageRequest::first(1))
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(page.items.len(), 1);
    let next = page.next_cursor.as_deref().and_then(|c| c.parse().ok());
    let rest = db
        .api_keys()
        .list(
            alice.id,
            PageRequest {
                limit: 10,
                after: next,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let ids: Vec<_> = page.items.iter().chain(&rest.items).map(|k| k.id).collect();
    assert_eq!(ids, vec![k1.key.id, k2.key.id]);
    assert!(rest.next_cursor.is_none());
    let bobs = db
        .api_keys()
        .list(bob.id, PageRequest::first(10))
        .await
        .map(|p| p.items.len())
        .ok();
    assert_eq!(bobs, Some(0), "bob lists alice's keys");
}

/// `touch` writes `last_used_at` at most once per interval.
pub async fn api_keys_touch_at_most_once_per_interval(db: Arc<dyn Database>) {
    let u = new_user(&db).await;
    let k = key_for(&u);
    db.api_keys()
        .insert(&k)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let minute = Duration::seconds(60);
    let touch = |at| {
        let db = db.clone();
        async move {
            db.api_keys()
                .touch(k.key.id, at, minute)
                .await
                .unwrap_or_else(|e| panic!("touch: {e}"))
        }
    };
    assert!(touch(t0()).await, "first use not recorded");
    assert!(
        !touch(t0() + Duration::seconds(30)).await,
        "written twice within a minute"
    );
    assert!(
        touch(t0() + Duration::seconds(60)).await,
        "not written after a minute"
    );
    let stored = db
        .api_keys()
        .get(u.id, k.key.id)
        .await
        .ok()
        .flatten()
        .and_then(|k| k.last_used_at);
    assert_eq!(stored, Some(t0() + Duration::seconds(60)));
}

/// Workspaces round-trip, are unique per owner by name, and are invisible to other owners.
pub async fn workspaces_crud_and_owner_scoping(db: Arc<dyn Database>) {
    let alice = new_user(&db).await;
    let bob = new_user(&db).await;
    let w = workspace(alice.id, "research");
    let repo = db.workspaces();
    repo.insert(&w)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(
        repo.get(alice.id, w.id).await.ok().flatten(),
        Some(w.clone())
    );
    assert_eq!(
        repo.get(bob.id, w.id).await.ok().flatten(),
        None,
        "bob reads alice's workspace"
    );

    let dup = workspace(alice.id, "research");
    assert_eq!(
        repo.insert(&dup).await.err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    repo.insert(&workspace(bob.id, "research"))
        .await
        .unwrap_or_else(|e| panic!("same name, other owner: {e}"));

    let other = workspace(alice.id, "other");
    repo.insert(&other)
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let mut renamed = other.clone();
    renamed.name = "research".into();
    assert_eq!(
        repo.update(&renamed).await.err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    assert_eq!(
        repo.get(alice.id, other.id).await.ok().flatten(),
        Some(other.clone()),
        "failed update changed the row"
    );

    let mut changed = w.clone();
    changed.name = "research-2".into();
    changed.env.clear();
    changed.description = None;
    changed.updated_at = t0() + Duration::hours(1);
    repo.update(&changed)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(
        repo.get(alice.id, w.id).await.ok().flatten(),
        Some(changed.clone())
    );

    let mut stolen = changed.clone();
    stolen.owner_id = bob.id;
    assert_eq!(
        repo.update(&stolen).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        repo.delete(bob.id, w.id).await.ok(),
        Some(false),
        "bob deleted alice's workspace"
    );
    assert_eq!(repo.delete(alice.id, w.id).await.ok(), Some(true));
    assert_eq!(repo.get(alice.id, w.id).await.ok().flatten(), None);
    assert_eq!(repo.delete(alice.id, w.id).await.ok(), Some(false));
}

/// Paging through workspaces yields each of the owner's workspaces once, in creation order.
pub async fn workspaces_paginate(db: Arc<dyn Database>) {
    let owner = new_user(&db).await;
    let intruder = new_user(&db).await;
    db.workspaces()
        .insert(&workspace(intruder.id, "theirs"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut made = Vec::new();
    for i in 0..23 {
        let w = workspace(owner.id, &format!("ws-{i}"));
        db.workspaces()
            .insert(&w)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
        made.push(w.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::first(7);
    let mut pages = 0;
    loop {
        let got = db
            .workspaces()
            .list(owner.id, page)
            .await
            .unwrap_or_else(|e| panic!("list: {e}"));
        pages += 1;
        seen.extend(got.items.iter().map(|w| w.id));
        match got.next_cursor {
            Some(c) => page.after = Some(c.parse().unwrap_or_else(|e| panic!("cursor: {e}"))),
            None => break,
        }
    }
    assert_eq!(
        seen, made,
        "pages must hold exactly the owner's workspaces in order"
    );
    assert_eq!(pages, 4);
}

/// Built-ins are upserted by name, keeping their id and usage; custom templates are visible only
/// to their owner; filters by category and tag work; only owners delete their own.
pub async fn templates_visibility_filters_and_builtins(db: Arc<dyn Database>) {
    let alice = new_user(&db).await;
    let bob = new_user(&db).await;
    let repo = db.templates();
    let builtin_name = format!(
        "builtin-{}",
        &TemplateId::new().as_uuid().simple().to_string()[20..]
    );
    let b = template(
        None,
        &builtin_name,
        TemplateCategory::Python,
        &["python", "conformance"],
    );
    repo.upsert_builtin(&b)
        .await
        .unwrap_or_else(|e| panic!("upsert: {e}"));
    let mut refreshed = template(None, &builtin_name, TemplateCategory::Python, &["python"]);
    refreshed.image = "python:3.13-slim".into();
    repo.upsert_builtin(&refreshed)
        .await
        .unwrap_or_else(|e| panic!("upsert again: {e}"));
    let stored = repo.get_visible(alice.id, b.id).await.ok().flatten();
    assert_eq!(
        stored.as_ref().map(|t| t.image.as_str()),
        Some("python:3.13-slim"),
        "built-in not refreshed"
    );
    assert_eq!(
        stored.as_ref().map(|t| t.id),
        Some(b.id),
        "built-in id changed on refresh"
    );
    assert!(stored.is_some_and(|t| t.builtin && t.owner_id.is_none()));
    assert_eq!(
        repo.get_visible(alice.id, refreshed.id)
            .await
            .ok()
            .flatten(),
        None,
        "refresh inserted a second row"
    );

    let mine = template(
        Some(alice.id),
        &builtin_name,
        TemplateCategory::Custom,
        &["conformance", "mine"],
    );
    repo.insert(&mine)
        .await
        .unwrap_or_else(|e| panic!("insert custom: {e}"));
    let dup = template(Some(alice.id), &builtin_name, TemplateCategory::Custom, &[]);
    assert_eq!(
        repo.insert(&dup).await.err().map(|e| e.kind()),
        Some(ErrorKind::Conflict)
    );
    let by_name = repo
        .find_visible_by_name(alice.id, &builtin_name)
        .await
        .ok()
        .flatten();
    assert_eq!(
        by_name.map(|t| t.id),
        Some(mine.id),
        "own template must win over a built-in"
    );
    let by_name = repo
        .find_visible_by_name(bob.id, &builtin_name)
        .await
        .ok()
        .flatten();
    assert_eq!(
        by_name.map(|t| t.id),
        Some(b.id),
        "bob must see the built-in, not alice's"
    );
    assert_eq!(
        repo.get_visible(bob.id, mine.id).await.ok().flatten(),
        None,
        "bob sees alice's template"
    );
    assert_eq!(
        repo.get_visible(alice.id, mine.id).await.ok().flatten(),
        Some(mine.clone())
    );

    let list = |user: UserId, filter: TemplateFilter| {
        let db = db.clone();
        async move {
            let mut ids = Vec::new();
            let mut page = PageRequest::first(2);
            loop {
                let got = db
                    .templates()
                    .list_visible(user, &filter, page)
                    .await
                    .unwrap_or_else(|e| panic!("list: {e}"));
                ids.extend(got.items.iter().map(|t| t.id));
                match got.next_cursor {
                    Some(c) => page.after = c.parse().ok(),
                    None => return ids,
                }
            }
        }
    };
    let tagged = |tag: &str| TemplateFilter {
        category: None,
        tag: Some(tag.into()),
    };
    assert_eq!(list(alice.id, tagged("mine")).await, vec![mine.id]);
    assert_eq!(
        list(bob.id, tagged("mine")).await,
        Vec::<TemplateId>::new(),
        "bob lists alice's template"
    );
    let alice_conf = list(alice.id, tagged("conformance")).await;
    assert!(
        alice_conf.contains(&mine.id) && !alice_conf.contains(&b.id),
        "refreshed tags not applied"
    );
    let custom = TemplateFilter {
        category: Some(TemplateCategory::Custom),
        tag: Some("mine".into()),
    };
    assert_eq!(list(alice.id, custom).await, vec![mine.id]);
    let python = TemplateFilter {
        category: Some(TemplateCategory::Python),
        tag: Some("mine".into()),
    };
    assert!(
        list(alice.id, python).await.is_empty(),
        "category filter ignored"
    );
    assert!(
        list(bob.id, TemplateFilter::default())
            .await
            .contains(&b.id)
    );

    assert_eq!(
        repo.delete(bob.id, mine.id).await.ok(),
        Some(false),
        "bob deleted alice's template"
    );
    assert_eq!(
        repo.delete(alice.id, b.id).await.ok(),
        Some(false),
        "a built-in was deleted as custom"
    );
    assert_eq!(repo.delete(alice.id, mine.id).await.ok(), Some(true));
    assert_eq!(
        repo.get_visible(alice.id, mine.id).await.ok().flatten(),
        None
    );
}

/// Uploads: owner-scoped reads, parts replaced by number and listed in order, pending bytes
/// per workspace, expiry, and rows going with their workspace.
pub async fn uploads_parts_pending_and_expiry(db: Arc<dyn Database>) {
    use crate::model::{UploadPart, UploadRecord};
    let alice = new_user(&db).await;
    let bob = new_user(&db).await;
    let w = workspace(alice.id, "uploads");
    let other = workspace(alice.id, "uploads-2");
    for ws in [&w, &other] {
        db.workspaces()
            .insert(ws)
            .await
            .unwrap_or_else(|e| panic!("workspace: {e}"));
    }
    let upload = |ws: WorkspaceId, size: u64, expires: i64| UploadRecord {
        id: UploadId::new(),
        workspace_id: ws,
        owner_id: alice.id,
        path: "data/big.bin".into(),
        size,
        part_size: 8,
        content_type: Some("text/csv".into()),
        store_upload_id: "store-id".into(),
        created_at: t0(),
        expires_at: t0() + Duration::seconds(expires),
    };
    let repo = db.uploads();
    let (a, b, c) = (
        upload(w.id, 20, 60),
        upload(w.id, 5, 120),
        upload(other.id, 7, 60),
    );
    for u in [&a, &b, &c] {
        repo.insert(u)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
    }
    assert_eq!(
        repo.get(alice.id, w.id, a.id).await.ok().flatten(),
        Some(a.clone())
    );
    assert_eq!(
        repo.get(bob.id, w.id, a.id).await.ok().flatten(),
        None,
        "bob reads alice's upload"
    );
    assert_eq!(
        repo.get(alice.id, other.id, a.id).await.ok().flatten(),
        None,
        "another workspace"
    );
    assert_eq!(repo.pending_bytes(w.id).await.ok(), Some(25));
    // All at once, in the order asked, a workspace with no upload at 0.
    let none = WorkspaceId::new();
    assert_eq!(
        repo.pending_bytes_of(&[other.id, none, w.id, other.id])
            .await
            .ok(),
        Some(vec![7, 0, 25, 7])
    );
    assert_eq!(repo.pending_bytes_of(&[]).await.ok(), Some(Vec::new()));

    let part = |number, size, tag: &str| UploadPart {
        number,
        size,
        tag: tag.into(),
    };
    for p in [
        part(2, 4, "c"),
        part(0, 8, "a"),
        part(1, 8, "old"),
        part(1, 8, "b"),
    ] {
        repo.put_part(a.id, &p)
            .await
            .unwrap_or_else(|e| panic!("put_part: {e}"));
    }
    let parts = repo.parts(a.id).await.unwrap_or_default();
    let tags: Vec<(u32, &str)> = parts.iter().map(|p| (p.number, p.tag.as_str())).collect();
    assert_eq!(tags, [(0, "a"), (1, "b"), (2, "c")]);

    let expired = |at: i64| {
        let repo = db.uploads();
        async move {
            let mut ids: Vec<UploadId> = repo
                .abandoned(t0() + Duration::seconds(at), None, 10)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|u| u.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(expired(59).await, Vec::<UploadId>::new());
    let mut due = vec![a.id, c.id];
    due.sort();
    assert_eq!(expired(60).await, due);
    let of_other = repo
        .abandoned(t0(), Some(other.id), 10)
        .await
        .unwrap_or_default();
    assert_eq!(of_other.iter().map(|u| u.id).collect::<Vec<_>>(), [c.id]);

    assert_eq!(repo.delete(a.id).await.ok(), Some(true));
    assert_eq!(repo.delete(a.id).await.ok(), Some(false));
    assert_eq!(
        repo.parts(a.id).await.unwrap_or_default(),
        Vec::new(),
        "parts go with it"
    );
    assert_eq!(repo.pending_bytes(w.id).await.ok(), Some(5));
    db.workspaces()
        .delete(alice.id, w.id)
        .await
        .unwrap_or_else(|e| panic!("delete workspace: {e}"));
    assert_eq!(
        repo.get(alice.id, w.id, b.id).await.ok().flatten(),
        None,
        "rows go with the workspace"
    );
    assert_eq!(repo.pending_bytes(w.id).await.ok(), Some(0));
}

/// A running session of `owner` in `workspace`, due for its check at `due`.
fn running_session(
    owner: UserId,
    workspace: WorkspaceId,
    template: TemplateId,
    due: DateTime<Utc>,
) -> SessionRecord {
    SessionRecord {
        session: Session {
            id: SessionId::new(),
            workspace_id: workspace,
            owner_id: owner,
            template_id: template,
            status: SessionStatus::Running,
            limits: SessionLimits::default(),
            placement: Placement::OnDemand,
            resources: Resources {
                cpu_millis: 500,
                memory_mib: 512,
                gpu: 0,
                disk_gib: 5,
            },
            rate_micros_per_hour: 50_000,
            cost_micros: 0,
            stop_reason: None,
            failure: None,
            created_at: t0(),
            started_at: Some(t0()),
            stopped_at: None,
            last_activity_at: t0(),
        },
        node: "node-a".into(),
        version: 1,
        tick: 0,
        hold: None,
        billed_ms: 0,
        covered_until: Some(t0() + Duration::minutes(5)),
        next_check_at: Some(due),
        warned: 0,
    }
}

/// Session leases and versions: a due session is claimed by one holder only until its lease
/// runs out; a write needs the version it read (and releases the lease); `next_due` is the
/// earliest claimable moment, a lease's end included.
pub async fn sessions_lease_version_and_due(db: Arc<dyn Database>) {
    let owner = new_user(&db).await;
    let w = workspace(owner.id, "leases");
    db.workspaces()
        .insert(&w)
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"));
    let t = template(Some(owner.id), "lease-tpl", TemplateCategory::Custom, &[]);
    db.templates()
        .insert(&t)
        .await
        .unwrap_or_else(|e| panic!("template: {e}"));
    let repo = db.sessions();
    let due = t0() + Duration::seconds(10);
    let record = running_session(owner.id, w.id, t.id, due);
    let later = running_session(owner.id, w.id, t.id, due + Duration::seconds(30));
    for r in [&record, &later] {
        repo.insert(r)
            .await
            .unwrap_or_else(|e| panic!("insert: {e}"));
    }
    let ids = |rs: &[SessionRecord]| rs.iter().map(|r| r.session.id).collect::<BTreeSet<_>>();
    let mine = |rs: Vec<SessionRecord>| {
        rs.into_iter()
            .filter(|r| r.session.owner_id == owner.id)
            .collect::<Vec<_>>()
    };

    // Unfinished sessions, whole and as statuses: the same ones in the same order, by node.
    for node in [None, Some("node-a")] {
        let whole: Vec<(SessionId, SessionStatus)> = repo
            .unfinished(node)
            .await
            .unwrap_or_else(|e| panic!("unfinished: {e}"))
            .iter()
            .map(|r| (r.session.id, r.session.status))
            .collect();
        let statuses = repo
            .unfinished_statuses(node)
            .await
            .unwrap_or_else(|e| panic!("unfinished statuses: {e}"));
        assert_eq!(statuses, whole, "{node:?}");
        for r in [&record, &later] {
            assert!(
                statuses.contains(&(r.session.id, SessionStatus::Running)),
                "{node:?}: {statuses:?}"
            );
        }
    }
    let elsewhere = repo
        .unfinished_statuses(Some("node-elsewhere"))
        .await
        .unwrap_or_else(|e| panic!("unfinished statuses: {e}"));
    assert!(
        !elsewhere
            .iter()
            .any(|(id, _)| *id == record.session.id || *id == later.session.id),
        "another node's sessions: {elsewhere:?}"
    );

    // Not due yet: nobody gets it.
    let early = repo
        .claim_due(
            "a",
            due - Duration::seconds(1),
            due + Duration::seconds(59),
            100,
        )
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"));
    assert!(mine(early).is_empty(), "claimed before it was due");
    // Due: one holder gets it, the other not while the lease lasts.
    let lease_end = due + Duration::seconds(60);
    let a = mine(
        repo.claim_due("a", due, lease_end, 100)
            .await
            .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert_eq!(ids(&a), BTreeSet::from([record.session.id]));
    let b = mine(
        repo.claim_due("b", due + Duration::seconds(1), lease_end, 100)
            .await
            .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert!(b.is_empty(), "a leased session was claimed twice: {b:?}");
    // Held until its lease ends: that is when it is next claimable.
    let next = repo
        .next_due()
        .await
        .unwrap_or_else(|e| panic!("next_due: {e}"));
    assert!(
        next.is_some_and(|n| n <= due + Duration::seconds(30)),
        "{next:?}"
    );
    // After the lease, another holder may take it.
    let b = mine(
        repo.claim_due("b", lease_end, lease_end + Duration::seconds(60), 100)
            .await
            .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert!(
        ids(&b).contains(&record.session.id),
        "the lease never ended"
    );

    // A write needs the version it read; it releases the lease.
    let mut stale = record.clone();
    stale.version = record.version + 5;
    stale.tick = 99;
    assert_eq!(
        repo.update(&stale).await.ok(),
        Some(false),
        "a stale write was applied"
    );
    let mut next_state = record.clone();
    next_state.version = record.version + 1;
    next_state.tick = 1;
    next_state.next_check_at = Some(lease_end + Duration::seconds(600));
    assert_eq!(repo.update(&next_state).await.ok(), Some(true));
    assert_eq!(
        repo.update(&next_state).await.ok(),
        Some(false),
        "the same version was written twice"
    );
    let stored_record = || async {
        repo.record(record.session.id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the session vanished"))
    };
    let stored = stored_record().await;
    assert_eq!((stored.version, stored.tick), (next_state.version, 1));
    let again = mine(
        repo.claim_due(
            "c",
            lease_end + Duration::seconds(600),
            lease_end + Duration::seconds(660),
            100,
        )
        .await
        .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert!(
        ids(&again).contains(&record.session.id),
        "the write did not release the lease"
    );

    // A tick's write stores its billing state only: activity recorded meanwhile stays, and a
    // stale version writes nothing.
    let claimed = stored_record().await;
    let touched = claimed.session.last_activity_at + Duration::seconds(42);
    repo.touch(record.session.id, touched)
        .await
        .unwrap_or_else(|e| panic!("touch: {e}"));
    let mut ticked = claimed.clone();
    ticked.version += 1;
    ticked.tick += 1;
    ticked.session.cost_micros += 17;
    ticked.billed_ms += 10_000;
    ticked.warned = 3;
    // Each write carries its tick's event, which is stored only with the record.
    let charged = |r: &SessionRecord| NewSessionEvent {
        session: r.session.id,
        at: t0(),
        kind: SessionEventKind::Charged {
            tick: r.tick,
            amount_micros: 17,
            cost_micros: r.session.cost_micros,
        },
        message: format!("tick {}", r.tick),
    };
    let write = |r: SessionRecord| async move {
        let event = charged(&r);
        repo.record_ticks(&[r], &[event])
            .await
            .unwrap_or_else(|e| panic!("record ticks: {e}"))
    };
    let (written, answered) = write(ticked.clone()).await;
    assert_eq!(written, vec![true]);
    assert_eq!(
        answered.iter().map(|e| &e.message).collect::<Vec<_>>(),
        vec![&format!("tick {}", ticked.tick)],
        "the tick's event was not stored with it"
    );
    let mut stale = ticked.clone();
    stale.session.cost_micros += 1_000;
    stale.tick += 1;
    let (written, events) = write(stale).await;
    assert_eq!(written, vec![false], "a stale version wrote");
    assert!(
        events.is_empty(),
        "an event of an unwritten tick: {events:?}"
    );
    let trail = repo
        .events(record.session.id, 0, 100)
        .await
        .unwrap_or_else(|e| panic!("events: {e}"));
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.kind.name() == "charged")
            .collect::<Vec<_>>(),
        answered.iter().collect::<Vec<_>>(),
        "the trail holds a charge of a tick that was not written, or not as answered"
    );
    let stored = stored_record().await;
    assert_eq!(
        (
            stored.version,
            stored.tick,
            stored.session.cost_micros,
            stored.billed_ms,
            stored.warned
        ),
        (
            ticked.version,
            ticked.tick,
            ticked.session.cost_micros,
            ticked.billed_ms,
            3
        )
    );
    assert_eq!(
        stored.session.last_activity_at, touched,
        "a tick's write reverted activity"
    );
}

/// Storage-usage records: every workspace is enrolled once, due at once; a due record is
/// leased to one holder; writes are conditional on the version and release the lease.
pub async fn storage_usage_enrolled_leased_and_versioned(db: Arc<dyn Database>) {
    let owner = new_user(&db).await;
    let w = workspace(owner.id, "billed");
    db.workspaces()
        .insert(&w)
        .await
        .unwrap_or_else(|e| panic!("workspace: {e}"));
    let repo = db.storage_usage();
    let now = t0() + Duration::days(1);
    repo.enroll(now)
        .await
        .unwrap_or_else(|e| panic!("enroll: {e}"));
    let record = repo
        .get(w.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the workspace was not enrolled"));
    assert_eq!(
        (record.owner_id, record.bytes, record.next_sample_at),
        (owner.id, 0, now)
    );
    assert_eq!(repo.enroll(now).await.ok().map(|_| ()), Some(()));
    assert_eq!(
        repo.get(w.id).await.ok().flatten(),
        Some(record.clone()),
        "enrolled twice"
    );

    let mine = |rs: Vec<crate::model::StorageUsageRecord>| {
        rs.into_iter()
            .filter(|r| r.workspace_id == w.id)
            .collect::<Vec<_>>()
    };
    let lease_end = now + Duration::seconds(60);
    let a = mine(
        repo.claim_due("a", now, lease_end, 1000)
            .await
            .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert_eq!(a.len(), 1, "a due record was not claimed");
    let b = mine(
        repo.claim_due("b", now + Duration::seconds(1), lease_end, 1000)
            .await
            .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert!(b.is_empty(), "a leased record was claimed twice");

    let mut stale = record.clone();
    stale.version += 7;
    assert_eq!(
        repo.update(&stale).await.ok(),
        Some(false),
        "a stale write was applied"
    );
    let mut next = record.clone();
    next.version += 1;
    next.step = 1;
    next.bytes = 4096;
    next.charged = 3;
    next.sampled_at = now;
    next.next_sample_at = now + Duration::hours(1);
    assert_eq!(repo.update(&next).await.ok(), Some(true));
    assert_eq!(repo.get(w.id).await.ok().flatten(), Some(next.clone()));
    assert_eq!(
        repo.update(&next).await.ok(),
        Some(false),
        "one version written twice"
    );
    // Not due again before its next sample, though its lease is gone.
    let early = mine(
        repo.claim_due(
            "c",
            now + Duration::minutes(59),
            now + Duration::minutes(60),
            1000,
        )
        .await
        .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert!(early.is_empty(), "claimed before its next sample");
    let due = mine(
        repo.claim_due(
            "c",
            now + Duration::hours(1),
            now + Duration::hours(2),
            1000,
        )
        .await
        .unwrap_or_else(|e| panic!("claim: {e}")),
    );
    assert_eq!(due.len(), 1, "the write did not release the lease");
}

/// Idempotency records: the first claim runs, a concurrent one is in flight, a completed one
/// replays its answer, another request under the key is a mismatch, an abandoned claim can be
/// taken again, and a claim left by a dead server is taken over once stale. Records of one
/// owner are not another's.
pub async fn idempotency_records_claim_replay_and_takeover(db: Arc<dyn Database>) {
    use crate::ports::{IdempotencyBegin, StoredResponse};
    let (alice, bob) = (new_user(&db).await, new_user(&db).await);
    let repo = db.idempotency();
    let stale = Duration::seconds(60);
    let begin = |user: UserId, key: &'static str, hash: &'static str, at| {
        let repo = db.idempotency();
        async move {
            repo.begin(user, key, hash, at, stale)
                .await
                .unwrap_or_else(|e| panic!("begin: {e}"))
        }
    };
    assert_eq!(
        begin(alice.id, "k1", "h1", t0()).await,
        IdempotencyBegin::Started
    );
    assert_eq!(
        begin(alice.id, "k1", "h1", t0()).await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin(alice.id, "k1", "h2", t0()).await,
        IdempotencyBegin::Mismatch
    );
    // Another owner's key of the same text is its own.
    assert_eq!(
        begin(bob.id, "k1", "h9", t0()).await,
        IdempotencyBegin::Started
    );
    let answer = StoredResponse {
        status: 201,
        content_type: "application/json".into(),
        body: r#"{"id":"x"}"#.into(),
    };
    repo.complete(alice.id, "k1", &answer)
        .await
        .unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(
        begin(alice.id, "k1", "h1", t0() + Duration::hours(1)).await,
        IdempotencyBegin::Replay(answer)
    );
    assert_eq!(
        begin(alice.id, "k1", "h2", t0()).await,
        IdempotencyBegin::Mismatch
    );
    // An abandoned claim (a server error) may run again.
    assert_eq!(
        begin(alice.id, "k2", "h1", t0()).await,
        IdempotencyBegin::Started
    );
    repo.abandon(alice.id, "k2")
        .await
        .unwrap_or_else(|e| panic!("abandon: {e}"));
    assert_eq!(
        begin(alice.id, "k2", "h1", t0()).await,
        IdempotencyBegin::Started
    );
    // A claim whose server died is taken over once it is stale, not before.
    assert_eq!(
        begin(alice.id, "k2", "h1", t0() + Duration::seconds(30)).await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin(alice.id, "k2", "h1", t0() + Duration::seconds(61)).await,
        IdempotencyBegin::Started
    );
}

/// Runs every check of the `Database` conformance suite, each with a database from `make`,
/// an async factory returning `Option<Arc<dyn Database>>` (`None` skips the check: the factory
/// says why, e.g. no server configured on a developer machine).
///
/// ```ignore
/// onmemos_core::database_conformance!(|| async { Some(my_database().await) });
/// ```
#[macro_export]
macro_rules! database_conformance {
    ($make:expr) => {
        $crate::database_conformance!(@checks $make;
            users_round_trip_and_unique_email,
            users_paginate_in_id_order,
            api_keys_scoped_revocable_and_listed,
            api_keys_touch_at_most_once_per_interval,
            workspaces_crud_and_owner_scoping,
            workspaces_paginate,
            templates_visibility_filters_and_builtins,
            uploads_parts_pending_and_expiry,
            sessions_lease_version_and_due,
            storage_usage_enrolled_leased_and_versioned,
            idempotency_records_claim_replay_and_takeover,
        );
        $crate::database_conformance!(@ledger $make;
            ledger_holds_posts_and_voids,
            ledger_refuses_bad_operations,
            ledger_caps_a_balance,
            ledger_grant_order_expiry_and_timeouts,
            ledger_batches_keep_order_and_outcomes,
        );
    };
    (@ledger $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let make = $make;
                let db: Option<::std::sync::Arc<dyn $crate::ports::Database>> = make().await;
                if let Some(db) = db {
                    $crate::testing::ledger::$check(db).await;
                }
            }
        )+
    };
    (@checks $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let make = $make;
                let db: Option<::std::sync::Arc<dyn $crate::ports::Database>> = make().await;
                if let Some(db) = db {
                    $crate::testing::database::$check(db).await;
                }
            }
        )+
    };
}
