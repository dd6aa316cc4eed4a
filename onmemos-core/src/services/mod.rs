//! The services of the engine, one per resource. Each method takes the calling
//! [`Principal`](crate::Principal), checks its scopes and confines it to its own resources.

mod api_keys;
pub(crate) mod credits;
mod estimates;
mod optimizer;
pub(crate) mod sessions;
pub(crate) mod storage;
mod templates;
mod terminals;
mod users;
mod workspaces;

pub use api_keys::ApiKeyService;
pub use credits::{CreditService, step_id};
pub use estimates::EstimateService;
pub use optimizer::OptimizerService;
pub use sessions::SessionService;
pub use storage::{
    Download, StorageService, UploadOptions, validate_object_path, workspace_prefix,
};
pub use templates::{BUILTIN_TEMPLATE_NAMES, TemplateService, builtin_templates};
pub use terminals::{SCROLLBACK_BYTES, Terminal, TerminalEnd, TerminalService};
pub use users::UserService;
pub use workspaces::WorkspaceService;

use crate::Engine;

/// The services, one per resource, each borrowing the engine.
impl Engine {
    /// The cost optimizer, when one is configured.
    pub fn optimizer(&self) -> OptimizerService<'_> {
        OptimizerService::new(self)
    }

    /// Users (and the bootstrap of the first admin).
    pub fn users(&self) -> UserService<'_> {
        UserService::new(self)
    }

    /// API keys and authentication.
    pub fn api_keys(&self) -> ApiKeyService<'_> {
        ApiKeyService::new(self)
    }

    /// Workspaces.
    pub fn workspaces(&self) -> WorkspaceService<'_> {
        WorkspaceService::new(self)
    }

    /// Templates.
    pub fn templates(&self) -> TemplateService<'_> {
        TemplateService::new(self)
    }

    /// Terminals of running sessions: attach, detach, re-attach (in-process shells).
    pub fn terminals(&self) -> TerminalService<'_> {
        TerminalService::new(self)
    }

    /// Sessions: create, stop, exec, terminals, events.
    pub fn sessions(&self) -> SessionService<'_> {
        SessionService::new(self)
    }

    /// Cost estimates: quotes, history percentiles, cheaper alternatives.
    pub fn estimates(&self) -> EstimateService<'_> {
        EstimateService::new(self)
    }

    /// Credits: balances, purchases, grants, holds.
    pub fn credits(&self) -> CreditService<'_> {
        CreditService::new(self)
    }

    /// Workspace storage: uploads, downloads, listings, presigned URLs, usage.
    pub fn storage(&self) -> StorageService<'_> {
        StorageService::new(self)
    }
}
