use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{UploadId, UserId, WorkspaceId};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A resumable upload of one object in parts, as stored: the client sends the parts one
/// request each (in any order, again after a failure), then completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// The upload.
    pub id: UploadId,
    /// The workspace the object goes to.
    pub workspace_id: WorkspaceId,
    /// Who started it.
    pub owner_id: UserId,
    /// The object's path inside the workspace.
    pub path: String,
    /// The object's size, announced up front (counted against the quota until completion).
    pub size: u64,
    /// The size of every part but the last.
    pub part_size: u64,
    /// The content type to record.
    pub content_type: Option<String>,
    /// The store's id of the upload.
    pub store_upload_id: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it is abandoned if not completed.
    pub expires_at: DateTime<Utc>,
}

impl UploadRecord {
    /// How many parts the object takes (one for an empty object).
    pub fn part_count(&self) -> u32 {
        u32::try_from(self.size.div_ceil(self.part_size.max(1)).max(1)).unwrap_or(u32::MAX)
    }

    /// The exact size part `number` must have.
    pub fn part_len(&self, number: u32) -> u64 {
        let start = u64::from(number).saturating_mul(self.part_size);
        self.size.saturating_sub(start).min(self.part_size)
    }
}

/// One received part of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadPart {
    /// Its number, from 0.
    pub number: u32,
    /// Its size in bytes.
    pub size: u64,
    /// The store's tag for it (needed to complete the upload).
    #[serde(skip)]
    pub tag: String,
}

/// A resumable upload, as the API shows it: what it is for and which parts arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Upload {
    /// The upload's id.
    pub id: UploadId,
    /// The workspace the object goes to.
    pub workspace_id: WorkspaceId,
    /// The object's path inside the workspace.
    pub path: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The size every part but the last must have; part `n` covers bytes
    /// `n × part_size .. min((n + 1) × part_size, size)`.
    pub part_size: u64,
    /// How many parts the object takes.
    pub part_count: u32,
    /// The parts received so far, by number.
    pub parts: Vec<UploadPart>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it is abandoned if not completed.
    pub expires_at: DateTime<Utc>,
}

impl Upload {
    /// The API view of `record` with the parts received so far.
    pub fn new(record: &UploadRecord, parts: Vec<UploadPart>) -> Self {
        Self {
            id: record.id,
            workspace_id: record.workspace_id,
            path: record.path.clone(),
            size: record.size,
            part_size: record.part_size,
            part_count: record.part_count(),
            parts,
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }

    /// The numbers of the parts still missing, in order.
    pub fn missing(&self) -> Vec<u32> {
        let have: std::collections::BTreeSet<u32> = self.parts.iter().map(|p| p.number).collect();
        (0..self.part_count).filter(|n| !have.contains(n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64, part_size: u64) -> UploadRecord {
        let now = Utc::now();
        UploadRecord {
            id: UploadId::new(),
            workspace_id: WorkspaceId::new(),
            owner_id: UserId::new(),
            path: "a".into(),
            size,
            part_size,
            content_type: None,
            store_upload_id: "x".into(),
            created_at: now,
            expires_at: now,
        }
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        for (size, part, count) in [(0, 8, 1), (1, 8, 1), (8, 8, 1), (9, 8, 2), (24, 8, 3)] {
            let r = record(size, part);
            assert_eq!(r.part_count(), count, "{size}/{part}");
            let total: u64 = (0..count).map(|n| r.part_len(n)).sum();
            assert_eq!(total, size, "{size}/{part}");
            assert_eq!(r.part_len(count), 0);
        }
        assert_eq!(record(20, 8).part_len(2), 4);
    }

    #[test]
    fn missing_parts_are_the_ones_not_received() {
        let r = record(40, 8);
        let part = |number| UploadPart {
            number,
            size: 8,
            tag: String::new(),
        };
        let upload = Upload::new(&r, vec![part(1), part(3)]);
        assert_eq!(upload.missing(), [0, 2, 4]);
        assert_eq!(
            Upload::new(&r, (0..5).map(part).collect()).missing(),
            [0u32; 0]
        );
    }
}
