//! The credit ledger: its reference model, and the reconciliation that rebuilds every balance
//! from transfers. The operations themselves are in the [`LedgerRepo`] port (implemented by
//! each database) and exposed to callers by the credit service.
//!
//! [`LedgerRepo`]: crate::ports::LedgerRepo

mod book;
mod reference;

use std::collections::{BTreeMap, HashMap};

use crate::api::PageRequest;
use crate::error::Result;
use crate::model::{
    AccountCounters, AccountDrift, AccountRef, MicroCredits, Reconciliation, TransferId,
    TransferKind,
};
use crate::ports::LedgerRepo;

pub use book::{Allocation, Book, Changes, GrantState, HoldState, expiry_id};
pub use reference::ReferenceLedger;
pub use reference::{hold_not_found, hold_settled, hold_timed_out, insufficient};

/// Rebuilds every account's counters by replaying all transfers in ledger order, and compares
/// them with the stored counters. Also checks that money is conserved (posted and pending
/// credits equal debits across all accounts).
pub async fn reconcile(ledger: &dyn LedgerRepo) -> Result<Reconciliation> {
    let mut rebuilt: BTreeMap<AccountRef, AccountCounters> = BTreeMap::new();
    let mut holds: HashMap<TransferId, MicroCredits> = HashMap::new();
    let mut transfers = 0u64;
    let mut page = PageRequest::<u64>::first(1000);
    loop {
        let got = ledger.transfers(None, None, page).await?;
        for t in &got.items {
            transfers += 1;
            let amount = t.amount;
            match t.kind {
                TransferKind::Grant | TransferKind::ExpireGrant => {
                    rebuilt.entry(t.debit_account).or_default().debits_posted += amount;
                    rebuilt.entry(t.credit_account).or_default().credits_posted += amount;
                }
                TransferKind::Hold => {
                    holds.insert(t.id.clone(), amount);
                    rebuilt.entry(t.debit_account).or_default().debits_pending += amount;
                    rebuilt.entry(t.credit_account).or_default().credits_pending += amount;
                }
                TransferKind::Post | TransferKind::Void | TransferKind::ExpireHold => {
                    let held = t
                        .hold_id
                        .as_ref()
                        .and_then(|h| holds.get(h))
                        .copied()
                        .unwrap_or(0);
                    let posted = if t.kind == TransferKind::Post {
                        amount
                    } else {
                        0
                    };
                    let d = rebuilt.entry(t.debit_account).or_default();
                    d.debits_pending -= held;
                    d.debits_posted += posted;
                    let c = rebuilt.entry(t.credit_account).or_default();
                    c.credits_pending -= held;
                    c.credits_posted += posted;
                }
            }
        }
        match got.next_cursor.and_then(|c| c.parse().ok()) {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    let stored = ledger.accounts().await?;
    let mut report = Reconciliation {
        accounts: stored.len() as u64,
        transfers,
        ..Reconciliation::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for (account, counters) in &stored {
        seen.insert(*account);
        report.net_posted += counters.credits_posted - counters.debits_posted;
        report.net_pending += counters.credits_pending - counters.debits_pending;
        let expected = rebuilt.get(account).copied().unwrap_or_default();
        if expected != *counters {
            report.drift.push(AccountDrift {
                account: *account,
                stored: *counters,
                rebuilt: expected,
            });
        }
    }
    for (account, counters) in rebuilt {
        if !seen.contains(&account) && counters != AccountCounters::default() {
            report.drift.push(AccountDrift {
                account,
                stored: AccountCounters::default(),
                rebuilt: counters,
            });
        }
    }
    Ok(report)
}
