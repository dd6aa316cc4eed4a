//! Wire types: the request and response bodies of the HTTP API and its error codes, shared by
//! the server and the client. Domain types in [`crate::model`] are their own wire form.

mod credits;
mod error;
mod estimates;
mod optimizer;
mod pagination;
mod requests;
mod sessions;
mod storage;

pub use credits::{CreditRequest, TransferListParams};
pub use error::{ErrorBody, ErrorCode};
pub use estimates::{
    Alternative, CompareRequest, Comparison, Confidence, Estimate, EstimateRequest, HistorySource,
};
pub use optimizer::{KindTotal, OptimizationReport};
pub use pagination::{DEFAULT_PAGE_SIZE, ListParams, MAX_PAGE_SIZE, Page, PageRequest};
pub use requests::{
    ComputeHealth, CreateApiKey, CreateTemplate, CreateUser, CreateWorkspace, CreatedApiKey,
    CreatedUser, Health, LimitEnforcement, SandboxState, TemplateListParams, TemplateSort,
    UpdateWorkspace,
};
pub use sessions::{
    CreateSession, EventListParams, ExecCommand, ExecOutput, ExecStreamLine, LimitOverrides,
    MAX_EXEC_OUTPUT_BYTES, OutputChunks, OutputEncoding, SessionLifetime, SessionListParams,
    ShellClientFrame, ShellServerFrame,
};
pub use storage::{
    CreateUpload, MAX_OBJECT_BYTES, ObjectListParams, PresignMethod, PresignRequest, PresignedUrl,
    StoredObject,
};
