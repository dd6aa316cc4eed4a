use sha2::{Digest, Sha256};

use crate::api::{CreditRequest, ListParams, Page, PageRequest, TransferListParams};
use crate::engine::Engine;
use crate::error::{ErrorKind, Result};
use crate::model::{
    AccountRef, Balance, GrantSource, LedgerOp, PriceBook, Reconciliation, Scope, Transfer,
    TransferId,
};
use crate::principal::Principal;
use crate::validation::validate;

/// Credits: balances, transfers, purchases and grants, and the holds sessions are billed from.
#[derive(Debug)]
pub struct CreditService<'e> {
    engine: &'e Engine,
}

/// The id of step `step` (`hold`, `settle`, `void`, `storage`…) number `k` of `owner` (a
/// session or a workspace): `<owner>.<step>.<k>`. Derived, never random, so a repeated step is
/// a ledger replay.
pub fn step_id(owner: impl std::fmt::Display, step: &str, k: u64) -> TransferId {
    // Owners are typed ids (`ses_…`, `ws_…`): the id is always valid; the fallback only keeps
    // the type total.
    TransferId::new(format!("{owner}.{step}.{k}")).unwrap_or_else(|_| TransferId::random(step))
}

/// The transfer id of a request: derived from its idempotency key when it has one (so a retry
/// lands on the same transfer), random otherwise.
fn transfer_id(prefix: &str, idempotency_key: Option<&str>) -> TransferId {
    match idempotency_key {
        Some(key) => {
            let digest = Sha256::digest(key.as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            TransferId::new(format!("{prefix}:{hex}"))
                .unwrap_or_else(|_| TransferId::random(prefix))
        }
        None => TransferId::random(prefix),
    }
}

impl<'e> CreditService<'e> {
    pub(crate) fn new(engine: &'e Engine) -> Self {
        Self { engine }
    }

    /// The caller's balance.
    pub async fn balance(&self, caller: &Principal) -> Result<Balance> {
        caller.require(Scope::CreditsRead)?;
        self.engine
            .database()
            .ledger()
            .balance(caller.user_id())
            .await
    }

    /// The caller's transfers, oldest first.
    pub async fn transfers(
        &self,
        caller: &Principal,
        params: &TransferListParams,
    ) -> Result<Page<Transfer>> {
        caller.require(Scope::CreditsRead)?;
        let page: PageRequest<u64> = ListParams {
            limit: params.limit,
            cursor: params.cursor.clone(),
        }
        .to_request()?;
        self.engine
            .database()
            .ledger()
            .transfers(Some(AccountRef::User(caller.user_id())), params.kind, page)
            .await
    }

    /// The price book.
    pub fn pricing(&self) -> PriceBook {
        self.engine.config().pricing
    }

    /// Credits a user with purchased credits (admin, or a payment hook acting as one).
    pub async fn purchase(
        &self,
        caller: &Principal,
        request: CreditRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Transfer> {
        self.credit(caller, request, GrantSource::Purchase, idempotency_key)
            .await
    }

    /// Credits a user with promotional credits (admin).
    pub async fn grant(
        &self,
        caller: &Principal,
        request: CreditRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Transfer> {
        self.credit(caller, request, GrantSource::Promotion, idempotency_key)
            .await
    }

    async fn credit(
        &self,
        caller: &Principal,
        request: CreditRequest,
        source: GrantSource,
        key: Option<&str>,
    ) -> Result<Transfer> {
        caller.require_admin()?;
        validate(&request)?;
        let prefix = source.as_str();
        let op = LedgerOp::Grant {
            id: transfer_id(prefix, key),
            user: request.user_id,
            amount: request.amount_micros,
            source,
            priority: request.priority.unwrap_or(match source {
                GrantSource::Promotion => 0,
                GrantSource::Purchase => 10,
            }),
            expires_at: request.expires_at,
            reference: request.reference,
        };
        let transfer = self.execute(&op).await.map_err(|e| {
            if e.field() == Some("amount") {
                e.with_field("amount_micros")
            } else {
                e
            }
        })?;
        tracing::info!(user = %request.user_id, transfer = %transfer.id, amount = transfer.amount, "credits added");
        Ok(transfer)
    }

    /// Applies a ledger operation at the engine's clock (trusted, in-process callers: the
    /// session service and the monitor hold, post and void through this).
    pub async fn execute(&self, op: &LedgerOp) -> Result<Transfer> {
        let now = self.engine.clock().now();
        op.validate_at(now)?;
        self.engine.database().ledger().execute(op, now).await
    }

    /// [`Self::execute`], where an operation already applied under the same id (by an earlier
    /// run of the same step, possibly with other figures) returns the stored transfer instead
    /// of an error: derived ids make a repeated step a replay.
    pub(crate) async fn execute_or_replayed(&self, op: &LedgerOp) -> Result<Transfer> {
        let outcome = self.execute(op).await;
        self.or_replayed(op, outcome).await
    }

    /// `outcome` of `op`, or the transfer already stored under its id when that explains the
    /// refusal (the step ran before, possibly with other figures).
    pub(crate) async fn or_replayed(
        &self,
        op: &LedgerOp,
        outcome: Result<Transfer>,
    ) -> Result<Transfer> {
        match outcome {
            Err(e)
                if e.code() == crate::api::ErrorCode::IdempotencyKeyReused
                    || matches!(e.kind(), ErrorKind::Conflict | ErrorKind::InvalidInput) =>
            {
                match self.engine.database().ledger().transfer(op.id()).await? {
                    Some(done) => Ok(done),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// Releases holds whose timeout passed and expires grants whose expiry passed.
    pub async fn expire_due(&self) -> Result<Vec<Transfer>> {
        let now = self.engine.clock().now();
        self.engine.database().ledger().expire_due(now).await
    }

    /// Rebuilds every balance from the transfers and reports any drift (operator use).
    pub async fn reconcile(&self) -> Result<Reconciliation> {
        crate::ledger::reconcile(self.engine.database().ledger()).await
    }
}
