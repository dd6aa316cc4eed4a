//! The in-memory reference ledger: the executable specification of [`LedgerRepo`].
//!
//! Every database implementation must give the same answers, errors included, for the same
//! sequence of operations; the model-check tests run them side by side. It is a [`Book`] that
//! holds the whole ledger, behind one lock.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Book;
use crate::api::{ErrorCode, Page, PageRequest};
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::model::{
    AccountCounters, AccountRef, Balance, LedgerOp, MicroCredits, Transfer, TransferId,
    TransferKind,
};
use crate::ports::LedgerRepo;

/// An in-memory ledger, consistent by construction (one lock), used as the model every
/// database implementation is checked against. Usable in tests and simulations.
#[derive(Debug, Default)]
pub struct ReferenceLedger {
    book: Mutex<Book>,
}

impl ReferenceLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LedgerRepo for ReferenceLedger {
    async fn execute(&self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
        self.lock().apply(op, now)
    }

    async fn apply_batch(
        &self,
        ops: &[LedgerOp],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Transfer>>> {
        let mut book = self.lock();
        Ok(ops.iter().map(|op| book.apply(op, now)).collect())
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Transfer>> {
        let mut book = self.lock();
        let mut out = Vec::new();
        for hold in book.due_holds(now) {
            out.extend(book.expire_hold(&hold, now));
        }
        for grant in book.due_grants(None, now) {
            out.extend(book.expire_grant(&grant, now));
        }
        Ok(out)
    }

    async fn balance(&self, user: UserId) -> Result<Balance> {
        let book = self.lock();
        let counters = book.counters(AccountRef::User(user));
        let grants = book
            .user_grants(user)
            .into_iter()
            .map(|g| g.balance.clone())
            .filter(|g| g.free() > 0 || g.reserved > 0)
            .collect();
        Ok(Balance {
            user_id: user,
            counters,
            available: counters.available(),
            grants,
        })
    }

    async fn transfer(&self, id: &TransferId) -> Result<Option<Transfer>> {
        Ok(self.lock().transfer(id).cloned())
    }

    async fn transfers(
        &self,
        account: Option<AccountRef>,
        kind: Option<TransferKind>,
        page: PageRequest<u64>,
    ) -> Result<Page<Transfer>> {
        let book = self.lock();
        let after = page.after.unwrap_or(0);
        let items: Vec<Transfer> = book
            .made()
            .iter()
            .filter(|t| t.seq > after)
            .filter(|t| account.is_none_or(|a| t.debit_account == a || t.credit_account == a))
            .filter(|t| kind.is_none_or(|k| t.kind == k))
            .take(page.limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, page.limit, |t| t.seq))
    }

    async fn accounts(&self) -> Result<Vec<(AccountRef, AccountCounters)>> {
        Ok(self.lock().accounts().collect())
    }
}

/// The error for a hold that is not there.
pub fn hold_not_found(hold: &TransferId) -> Error {
    Error::not_found(format!("no hold `{hold}`")).with_context("field", "hold_id")
}

/// The error for settling a hold twice.
pub fn hold_settled(hold: &TransferId) -> Error {
    Error::conflict(format!(
        "hold `{hold}` was already posted, voided or expired"
    ))
    .with_context("field", "hold_id")
}

/// The error for settling a hold after its timeout.
pub fn hold_timed_out(hold: &TransferId) -> Error {
    Error::conflict(format!("hold `{hold}` timed out")).with_context("field", "hold_id")
}

/// The error for spending more than is available.
pub fn insufficient(available: MicroCredits, needed: MicroCredits) -> Error {
    Error::with_code(
        ErrorCode::InsufficientCredits,
        format!(
            "{needed} micro-credits needed, {} available",
            available.max(0)
        ),
    )
}
