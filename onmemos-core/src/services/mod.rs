//! The services of the engine, one per resource. Each method takes the calling
//! [`Principal`](crate::Principal), checks its scopes and confines it to its own resources.

mod api_keys;
pub(crate) mod credits;
mod estimates;
mod optimizer;
pub(crate) mod sessions;
pub(crate) mod storage;
mod templates;
mod users;
mod workspaces;

pub use api_keys::ApiKeyService;
pub use credits::CreditService;
pub use estimates::EstimateService;
pub use optimizer::OptimizerService;
pub use sessions::SessionService;
pub use storage::{
    Download, StorageService, UploadOptions, validate_object_path, workspace_prefix,
};
pub use templates::{BUILTIN_TEMPLATE_NAMES, TemplateService, builtin_templates};
pub use users::UserService;
pub use workspaces::WorkspaceService;
