//! The four ports (SPEC §3): the traits every backend implements, consumed as `Arc<dyn …>`.
//!
//! Each port says what it supports with `capabilities()`, as data, so callers never have to
//! discover a missing feature by catching an `Unsupported` error.

pub mod compute;
pub mod database;
pub mod optimizer;
pub mod storage;

pub use compute::{ComputeCapabilities, ComputeProvider};
pub use database::{
    ApiKeyRepo, Database, DatabaseCapabilities, IdempotencyBegin, IdempotencyRepo, LedgerRepo,
    NewSessionEvent, SessionFilter, SessionRepo, SessionSample, StorageUsageRepo, StoredResponse,
    TemplateFilter, TemplateRepo, UploadRepo, UserRepo, WorkspaceRepo,
};
pub use optimizer::{Optimizer, OptimizerCapabilities};
pub use storage::{StorageCapabilities, StorageProvider};
