use crate::api::{CreateWorkspace, ListParams, Page, PageRequest, UpdateWorkspace};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::id::WorkspaceId;
use crate::model::{Scope, SessionStatus, Workspace};
use crate::ports::SessionFilter;
use crate::principal::Principal;
use crate::validation::validate;

/// Workspaces of the calling user.
#[derive(Debug)]
pub struct WorkspaceService<'e> {
    engine: &'e Engine,
}

impl<'e> WorkspaceService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// Creates a workspace; `Conflict` when the caller has one of that name.
    pub async fn create(&self, caller: &Principal, request: CreateWorkspace) -> Result<Workspace> {
        caller.require(Scope::WorkspacesWrite)?;
        validate(&request)?;
        let now = self.engine.clock().now();
        let workspace = Workspace {
            id: WorkspaceId::new(),
            owner_id: caller.user_id(),
            name: request.name,
            description: request.description.filter(|d| !d.is_empty()),
            env: request.env,
            created_at: now,
            updated_at: now,
        };
        self.engine
            .database()
            .workspaces()
            .insert(&workspace)
            .await?;
        tracing::info!(workspace = %workspace.id, "workspace created");
        Ok(workspace)
    }

    /// One of the caller's workspaces.
    pub async fn get(&self, caller: &Principal, id: WorkspaceId) -> Result<Workspace> {
        caller.require(Scope::WorkspacesRead)?;
        self.engine
            .database()
            .workspaces()
            .get(caller.user_id(), id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// A page of the caller's workspaces.
    pub async fn list(&self, caller: &Principal, params: &ListParams) -> Result<Page<Workspace>> {
        caller.require(Scope::WorkspacesRead)?;
        self.engine
            .database()
            .workspaces()
            .list(caller.user_id(), params.to_request()?)
            .await
    }

    /// Changes the fields the request sets.
    pub async fn update(
        &self,
        caller: &Principal,
        id: WorkspaceId,
        request: UpdateWorkspace,
    ) -> Result<Workspace> {
        caller.require(Scope::WorkspacesWrite)?;
        validate(&request)?;
        let db = self.engine.database();
        let mut workspace = db
            .workspaces()
            .get(caller.user_id(), id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let Some(name) = request.name {
            workspace.name = name;
        }
        if let Some(description) = request.description {
            workspace.description = Some(description).filter(|d| !d.is_empty());
        }
        if let Some(env) = request.env {
            workspace.env = env;
        }
        workspace.updated_at = self.engine.clock().now();
        db.workspaces().update(&workspace).await?;
        Ok(workspace)
    }

    /// Deletes one of the caller's workspaces.
    ///
    /// `Conflict` while a session of it has not ended: stop them first (deleting the workspace
    /// deletes its ended sessions with it).
    pub async fn delete(&self, caller: &Principal, id: WorkspaceId) -> Result<()> {
        caller.require(Scope::WorkspacesWrite)?;
        let db = self.engine.database();
        for status in [
            SessionStatus::Pending,
            SessionStatus::Starting,
            SessionStatus::Running,
            SessionStatus::Stopping,
        ] {
            let filter = SessionFilter {
                workspace: Some(id),
                status: Some(status),
                template: None,
            };
            let page = PageRequest {
                limit: 1,
                after: None,
            };
            if let Some(s) = db
                .sessions()
                .list(caller.user_id(), &filter, page)
                .await?
                .items
                .first()
            {
                return Err(Error::conflict(format!(
                    "workspace {id} has a {} session ({}): stop its sessions before deleting it",
                    status.as_str(),
                    s.id
                )));
            }
        }
        // Its objects first: if that fails, the workspace stays and the delete can be retried.
        if db.workspaces().get(caller.user_id(), id).await?.is_none() {
            return Err(not_found(id));
        }
        let removed = self.engine.storage().remove_all(id).await?;
        // Then its compute environment (a namespace, a directory), waiting until it went.
        if let Some(compute) = self.engine.compute() {
            compute.teardown_workspace(id).await?;
        }
        if self
            .engine
            .database()
            .workspaces()
            .delete(caller.user_id(), id)
            .await?
        {
            tracing::info!(workspace = %id, objects = removed, "workspace storage removed");
            tracing::info!(workspace = %id, "workspace deleted");
            Ok(())
        } else {
            Err(not_found(id))
        }
    }
}

fn not_found(id: WorkspaceId) -> Error {
    Error::not_found("workspace not found").with_context("workspace", id.to_string())
}
