use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::id::{UserId, WorkspaceId};
use crate::model::MicroCredits;

/// Byte-milliseconds in one GiB-month (a month is 30 days): the denominator of storage
/// charges.
pub const GIB_MONTH_BYTE_MS: i128 = (1 << 30) * 30 * 86_400_000;

/// The storage billing state of one workspace.
///
/// Sample `k` measures the workspace's bytes; the charge for the time between samples `k` and
/// `k+1` is those bytes times the elapsed milliseconds at the price per GiB-month, accumulated
/// exactly: `carry` holds the remainder below one micro-credit (in byte-ms × price units), so
/// however time is split the total charged is `floor(price × ∫bytes dt / GiB-month)`.
///
/// A charge is first written here as `pending` (with the step that names its transfer), then
/// posted to the ledger, then cleared; a crash in between posts the same transfer again, and
/// the ledger's idempotent ids make that a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUsageRecord {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Who pays.
    pub owner_id: UserId,
    /// Samples taken so far; also the step of the pending charge.
    pub step: u64,
    /// When the last sample was taken.
    pub sampled_at: DateTime<Utc>,
    /// What the last sample measured.
    pub bytes: u64,
    /// The remainder below one micro-credit, in byte-ms × micro-credits per GiB-month
    /// (0 ≤ carry < [`GIB_MONTH_BYTE_MS`]).
    pub carry: i64,
    /// Charges the owner's credits could not cover yet; added to the next charge.
    pub owed: MicroCredits,
    /// Everything charged so far.
    pub charged: MicroCredits,
    /// A charge written but not yet posted, transfer `<workspace>.storage.<step>`.
    pub pending: Option<MicroCredits>,
    /// When the next sample is due.
    pub next_sample_at: DateTime<Utc>,
    /// Bumped by every write; writes are conditional on it.
    pub version: u64,
}

/// The storage of a workspace: what it holds now, its quota and its bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StorageUsage {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Bytes stored now.
    pub bytes: u64,
    /// The most the workspace may store.
    pub quota_bytes: u64,
    /// What the last billing sample measured, and when (absent before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_bytes: Option<u64>,
    /// When the last billing sample was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<DateTime<Utc>>,
    /// Micro-credits charged for storage so far.
    pub charged_micros: MicroCredits,
    /// Micro-credits due that the owner's credits did not cover yet.
    pub owed_micros: MicroCredits,
}
