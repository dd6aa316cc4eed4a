//! Storage billing: usage sampled per workspace and charged per GiB-month, and the quota check
//! that stops sessions whose files went over it. The monitor schedules it.

use chrono::{DateTime, Utc};

use super::{StorageService, workspace_prefix};
use crate::error::{Error, ErrorKind, Result};
use crate::id::WorkspaceId;
use crate::model::{GIB_MONTH_BYTE_MS, LedgerOp, MicroCredits, StorageUsageRecord};
use crate::ports::StorageProvider;
use crate::services::credits::step_id;

impl StorageService<'_> {
    /// How many bytes over its quota workspace `id` is, when its files live on this machine
    /// and sessions write them directly (so no upload checked them): what is really stored,
    /// plus uploads in progress. `None` within the quota, or when files only arrive through
    /// the API, which checks the quota itself.
    pub(crate) async fn over_quota(&self, id: WorkspaceId) -> Result<Option<u64>> {
        Ok(self.over_quota_of(&[id]).await?.pop().flatten())
    }

    /// [`Self::over_quota`] of each of `ids`, in their order, for a billing batch: the uploads
    /// in progress of all of them in one read, and their directories measured together
    /// ([`StorageProvider::usage_bytes_of`]), where each workspace was a database read and a
    /// directory walk, one after another.
    pub(crate) async fn over_quota_of(&self, ids: &[WorkspaceId]) -> Result<Vec<Option<u64>>> {
        let Some(store) = self.engine.storage_provider() else {
            return Ok(vec![None; ids.len()]);
        };
        // Only files on this machine can be written past an upload's check.
        let is_local: Vec<bool> = ids
            .iter()
            .map(|id| store.local_dir(&workspace_prefix(*id)).is_some())
            .collect();
        let local: Vec<WorkspaceId> = ids
            .iter()
            .zip(&is_local)
            .filter_map(|(id, local)| local.then_some(*id))
            .collect();
        if local.is_empty() {
            return Ok(vec![None; ids.len()]);
        }
        let promised = self
            .engine
            .database()
            .uploads()
            .pending_bytes_of(&local)
            .await?;
        let prefixes: Vec<String> = local.iter().map(|id| workspace_prefix(*id)).collect();
        let stored = store.usage_bytes_of(&prefixes).await?;
        let quota = self.engine.config().storage.quota_bytes;
        let mut over = stored.into_iter().zip(promised).map(|(stored, promised)| {
            let held = stored.saturating_add(promised);
            held.checked_sub(quota).filter(|over| *over > 0)
        });
        Ok(is_local
            .iter()
            .map(|local| if *local { over.next().flatten() } else { None })
            .collect())
    }

    /// One billing pass at `now`: enrolls new workspaces, then samples and charges those due,
    /// leased to `holder`. Returns how many workspaces were sampled and how many steps failed
    /// (logged, and retried on the next pass).
    pub(crate) async fn bill_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize)> {
        let Some(store) = self.engine.storage_provider() else {
            return Ok((0, 0));
        };
        let repo = self.engine.database().storage_usage();
        repo.enroll(now).await?;
        let lease = self.engine.config().sessions.lease();
        let (mut sampled, mut failed) = (0, 0);
        loop {
            let due = repo.claim_due(holder, now, now + lease, 100).await?;
            if due.is_empty() {
                return Ok((sampled, failed));
            }
            for record in due {
                let ws = record.workspace_id;
                match self.bill(store.as_ref(), record, now).await {
                    Ok(true) => sampled += 1,
                    Ok(false) => {}
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(workspace = %ws, error = %e, "a storage billing step failed; it is retried on the next pass");
                    }
                }
            }
        }
    }

    /// Samples one workspace and charges the time since its last sample; `false` when another
    /// replica got there first.
    async fn bill(
        &self,
        store: &dyn StorageProvider,
        record: StorageUsageRecord,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let repo = self.engine.database().storage_usage();
        // A charge written by an earlier pass that did not reach the ledger.
        let record = match record.pending {
            Some(_) => match self.pay(record).await? {
                Some(paid) => paid,
                None => return Ok(false),
            },
            None => record,
        };
        if record.next_sample_at > now {
            // Claimed for its pending charge only; the lease is released by the write above.
            return Ok(true);
        }
        let bytes = store
            .usage_bytes(&workspace_prefix(record.workspace_id))
            .await?;
        let elapsed = (now - record.sampled_at).num_milliseconds().max(0);
        let price = i128::from(self.engine.config().pricing.storage_gib_month);
        let total =
            i128::from(record.carry) + price * i128::from(record.bytes) * i128::from(elapsed);
        let due = MicroCredits::try_from(total / GIB_MONTH_BYTE_MS)
            .map_err(|_| Error::internal("a storage charge overflows"))?;
        let amount = due + record.owed;
        let interval = self.engine.config().storage.billing_interval();
        let next = StorageUsageRecord {
            step: record.step + 1,
            sampled_at: now,
            bytes,
            carry: i64::try_from(total % GIB_MONTH_BYTE_MS)
                .map_err(|_| Error::internal("a storage carry overflows"))?,
            owed: 0,
            pending: (amount > 0).then_some(amount),
            next_sample_at: now + interval,
            version: record.version + 1,
            ..record
        };
        if !repo.update(&next).await? {
            return Ok(false);
        }
        if next.pending.is_some() {
            self.pay(next).await?;
        }
        Ok(true)
    }

    /// Posts the pending charge of `record` as transfer `<workspace>.storage.<step>`; what the
    /// owner's credits cannot cover becomes owed. Returns the record as written, `None` when
    /// another replica changed it meanwhile.
    async fn pay(&self, record: StorageUsageRecord) -> Result<Option<StorageUsageRecord>> {
        let Some(amount) = record.pending else {
            return Ok(Some(record));
        };
        let ws = record.workspace_id;
        let hold = step_id(ws, "storage-hold", record.step);
        let now = self.engine.clock().now();
        let credits = self.engine.credits();
        // The hold and its post go to the ledger as one batch.
        let hold_op = LedgerOp::Hold {
            id: hold.clone(),
            user: record.owner_id,
            amount,
            timeout_at: now + chrono::Duration::hours(1),
            reference: Some(format!("storage of workspace {ws}")),
        };
        let post_op = LedgerOp::Post {
            id: step_id(ws, "storage", record.step),
            hold,
            amount,
        };
        for op in [&hold_op, &post_op] {
            op.validate_at(now)?;
        }
        let mut outcomes = self
            .engine
            .database()
            .ledger()
            .apply_batch(&[hold_op.clone(), post_op.clone()], now)
            .await?
            .into_iter();
        let (held, posted) = match (outcomes.next(), outcomes.next()) {
            (Some(held), Some(posted)) => (held, posted),
            _ => return Err(Error::internal("the ledger answered too few outcomes")),
        };
        let charged = match credits.or_replayed(&hold_op, held).await {
            Ok(_) => credits.or_replayed(&post_op, posted).await?.amount,
            Err(e) if e.kind() == ErrorKind::InsufficientCredits => {
                tracing::warn!(workspace = %ws, amount, "the owner's credits do not cover the storage charge; it is carried as owed");
                0
            }
            Err(e) => return Err(e),
        };
        let settled = StorageUsageRecord {
            charged: record.charged + charged,
            owed: record.owed + amount - charged,
            pending: None,
            version: record.version + 1,
            ..record
        };
        let written = self
            .engine
            .database()
            .storage_usage()
            .update(&settled)
            .await?;
        Ok(written.then_some(settled))
    }
}
