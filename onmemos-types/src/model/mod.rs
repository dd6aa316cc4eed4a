//! The domain types of OnMemOS (SPEC §2). They are also the JSON the API returns for them.

mod api_key;
mod ledger;
mod pricing;
mod session;
mod storage;
mod template;
mod user;
mod workspace;

pub use api_key::{ApiKey, Scope};
pub use ledger::{
    AccountCounters, AccountDrift, AccountRef, Balance, EXPIRY_PREFIX, GrantBalance, GrantSource,
    LedgerOp, MAX_BALANCE, MAX_ISSUED, MAX_TRANSFER, Reconciliation, Transfer, TransferId,
    TransferKind, balance_cap, ledger_full,
};
pub use pricing::{PriceBook, cost_of};
pub use session::{
    Placement, Session, SessionEvent, SessionEventKind, SessionLimits, SessionRecord,
    SessionStatus, StopReason, Warning,
};
pub use storage::{
    GIB_MONTH_BYTE_MS, StorageUsage, StorageUsageRecord, Upload, UploadPart, UploadRecord,
};
pub use template::{Resources, Template, TemplateCategory};
pub use user::{Role, User};
pub use workspace::Workspace;

/// An amount of money in micro-credits (1 credit = 1,000,000 micro-credits). Never a float.
pub type MicroCredits = i64;

/// Micro-credits in one credit.
pub const MICROS_PER_CREDIT: MicroCredits = 1_000_000;
