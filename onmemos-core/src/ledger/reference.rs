//! The in-memory reference ledger: the executable specification of [`LedgerRepo`].
//!
//! Every database implementation must give the same answers, errors included, for the same
//! sequence of operations; the model-check tests run them side by side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::api::{ErrorCode, Page, PageRequest};
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::model::{
    AccountCounters, AccountRef, Balance, EXPIRY_PREFIX, GrantBalance, LedgerOp, MAX_BALANCE,
    MAX_ISSUED, MicroCredits, Transfer, TransferId, TransferKind, balance_cap, ledger_full,
};
use crate::ports::LedgerRepo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Pending,
    Settled,
}

#[derive(Debug, Clone)]
struct Hold {
    user: UserId,
    seq: u64,
    amount: MicroCredits,
    timeout_at: DateTime<Utc>,
    state: HoldState,
    /// Reservations on grants, in consumption order.
    allocations: Vec<(TransferId, MicroCredits)>,
}

#[derive(Debug, Clone)]
struct Grant {
    user: UserId,
    /// The grant transfer's ledger position: "oldest" in the consumption order.
    seq: u64,
    balance: GrantBalance,
    /// Whether its expiry has been processed (later releases then expire at once).
    expired: bool,
}

#[derive(Debug, Default)]
struct State {
    accounts: BTreeMap<AccountRef, AccountCounters>,
    transfers: Vec<Transfer>,
    by_id: HashMap<TransferId, usize>,
    grants: BTreeMap<TransferId, Grant>,
    holds: HashMap<TransferId, Hold>,
}

/// The order grants are spent in: priority, then soonest expiry (none last), then oldest.
fn consumption_key(g: &Grant) -> (i32, bool, Option<DateTime<Utc>>, u64) {
    let b = &g.balance;
    (b.priority, b.expires_at.is_none(), b.expires_at, g.seq)
}

impl State {
    fn account(&mut self, a: AccountRef) -> &mut AccountCounters {
        self.accounts.entry(a).or_default()
    }

    fn push(&mut self, mut t: Transfer) -> Transfer {
        t.seq = self.transfers.len() as u64 + 1;
        self.by_id.insert(t.id.clone(), self.transfers.len());
        self.transfers.push(t.clone());
        t
    }

    fn user_grants(&self, user: UserId) -> Vec<TransferId> {
        let mut ids: Vec<&Grant> = self.grants.values().filter(|g| g.user == user).collect();
        ids.sort_by_key(|g| consumption_key(g));
        ids.into_iter().map(|g| g.balance.id.clone()).collect()
    }

    /// Grants of `user` (or everyone) whose expiry is due and not yet processed.
    fn due_grants(&self, user: Option<UserId>, now: DateTime<Utc>) -> Vec<TransferId> {
        let mut due: Vec<&Grant> = self
            .grants
            .values()
            .filter(|g| !g.expired && g.balance.expires_at.is_some_and(|at| at <= now))
            .filter(|g| user.is_none_or(|u| g.user == u))
            .collect();
        due.sort_by_key(|g| (g.balance.expires_at, g.seq));
        due.into_iter().map(|g| g.balance.id.clone()).collect()
    }

    fn expire_amount(
        &mut self,
        grant: &TransferId,
        id: TransferId,
        amount: MicroCredits,
        now: DateTime<Utc>,
    ) -> Option<Transfer> {
        let g = self.grants.get_mut(grant)?;
        g.balance.expired += amount;
        let user = g.user;
        self.account(AccountRef::User(user)).debits_posted += amount;
        self.account(AccountRef::Breakage).credits_posted += amount;
        Some(self.push(Transfer {
            grant_id: Some(grant.clone()),
            ..Transfer::new(
                id,
                TransferKind::ExpireGrant,
                AccountRef::User(user),
                AccountRef::Breakage,
                amount,
                now,
            )
        }))
    }

    fn expire_grant(&mut self, grant: &TransferId, now: DateTime<Utc>) -> Option<Transfer> {
        let g = self.grants.get_mut(grant)?;
        g.expired = true;
        let free = g.balance.free();
        if free <= 0 {
            return None;
        }
        let id = expiry_id(grant, None);
        self.expire_amount(grant, id, free, now)
    }

    /// Settles a pending hold: `charge` is posted, the rest released. Returns the settling
    /// transfer followed by any expiry of released credit on already-expired grants.
    fn settle(
        &mut self,
        hold_id: &TransferId,
        id: TransferId,
        kind: TransferKind,
        charge: MicroCredits,
        now: DateTime<Utc>,
    ) -> Vec<Transfer> {
        let Some(hold) = self.holds.get_mut(hold_id) else {
            return Vec::new();
        };
        hold.state = HoldState::Settled;
        let (user, held, allocations) = (hold.user, hold.amount, hold.allocations.clone());
        let ua = self.account(AccountRef::User(user));
        ua.debits_pending -= held;
        ua.debits_posted += charge;
        let ra = self.account(AccountRef::Revenue);
        ra.credits_pending -= held;
        ra.credits_posted += charge;
        let amount = if kind == TransferKind::Post {
            charge
        } else {
            held
        };
        let mut out = vec![self.push(Transfer {
            hold_id: Some(hold_id.clone()),
            ..Transfer::new(
                id.clone(),
                kind,
                AccountRef::User(user),
                AccountRef::Revenue,
                amount,
                now,
            )
        })];
        let mut left = charge;
        for (grant, reserved) in allocations {
            let take = left.min(reserved);
            left -= take;
            let released = reserved - take;
            let Some(g) = self.grants.get_mut(&grant) else {
                continue;
            };
            g.balance.reserved -= reserved;
            g.balance.consumed += take;
            if g.expired && released > 0 {
                let eid = expiry_id(&grant, Some(&id));
                out.extend(self.expire_amount(&grant, eid, released, now));
            }
        }
        out
    }
}

/// The transfer a grant or hold records.
fn recorded(op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
    op.transfer(now)
        .ok_or_else(|| Error::internal("a settlement has no transfer of its own"))
}

/// The id of an expiry transfer: `expire:<hold or grant>` or `expire:<grant>:<settling id>`.
pub fn expiry_id(of: &TransferId, settling: Option<&TransferId>) -> TransferId {
    let text = match settling {
        None => format!("{EXPIRY_PREFIX}{of}"),
        Some(s) => format!("{EXPIRY_PREFIX}{of}:{s}"),
    };
    TransferId::new(text).unwrap_or_else(|_| TransferId::random("expire"))
}

/// An in-memory ledger, consistent by construction (one lock), used as the model every
/// database implementation is checked against. Usable in tests and simulations.
#[derive(Debug, Default)]
pub struct ReferenceLedger {
    state: Mutex<State>,
}

impl ReferenceLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LedgerRepo for ReferenceLedger {
    async fn execute(&self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
        let mut s = self.lock();
        if let Some(&i) = s.by_id.get(op.id()) {
            return op.replay(s.transfers[i].clone());
        }
        match op {
            LedgerOp::Grant {
                id,
                user,
                amount,
                source,
                priority,
                ..
            } => {
                let user_acct = AccountRef::User(*user);
                let held = s.account(user_acct);
                let balance = held.credits_posted - held.debits_posted;
                if balance > MAX_BALANCE - amount {
                    return Err(balance_cap(balance, *amount));
                }
                let issued = s.account(AccountRef::Issuance).debits_posted;
                if issued > MAX_ISSUED - amount {
                    return Err(ledger_full(issued, *amount));
                }
                s.account(user_acct).credits_posted += amount;
                s.account(AccountRef::Issuance).debits_posted += amount;
                let t = s.push(recorded(op, now)?);
                let expires_at = t.expires_at;
                s.grants.insert(
                    id.clone(),
                    Grant {
                        user: *user,
                        seq: t.seq,
                        balance: GrantBalance {
                            id: id.clone(),
                            source: *source,
                            priority: *priority,
                            amount: *amount,
                            consumed: 0,
                            reserved: 0,
                            expired: 0,
                            expires_at,
                            created_at: now,
                        },
                        expired: false,
                    },
                );
                Ok(t)
            }
            LedgerOp::Hold {
                id, user, amount, ..
            } => {
                let user_acct = AccountRef::User(*user);
                let due = s.due_grants(Some(*user), now);
                let expiring: MicroCredits = due
                    .iter()
                    .filter_map(|g| s.grants.get(g))
                    .map(|g| g.balance.free())
                    .sum();
                let available = s
                    .accounts
                    .get(&user_acct)
                    .map(|a| a.available())
                    .unwrap_or(0)
                    - expiring;
                if available < *amount {
                    return Err(insufficient(available, *amount));
                }
                for g in &due {
                    s.expire_grant(g, now);
                }
                let mut left = *amount;
                let mut allocations = Vec::new();
                for gid in s.user_grants(*user) {
                    if left == 0 {
                        break;
                    }
                    let Some(g) = s.grants.get_mut(&gid) else {
                        continue;
                    };
                    let take = g.balance.free().min(left);
                    if take > 0 {
                        g.balance.reserved += take;
                        left -= take;
                        allocations.push((gid, take));
                    }
                }
                s.account(user_acct).debits_pending += amount;
                s.account(AccountRef::Revenue).credits_pending += amount;
                let t = s.push(recorded(op, now)?);
                let timeout_at = t.expires_at.unwrap_or(now);
                s.holds.insert(
                    id.clone(),
                    Hold {
                        user: *user,
                        seq: t.seq,
                        amount: *amount,
                        timeout_at,
                        state: HoldState::Pending,
                        allocations,
                    },
                );
                Ok(t)
            }
            LedgerOp::Post { id, hold, amount } => {
                let held = check_settle(&s, hold, now)?;
                if *amount > held {
                    return Err(Error::invalid(
                        "amount",
                        format!("cannot post {amount}: the hold is for {held}"),
                    ));
                }
                let out = s.settle(hold, id.clone(), TransferKind::Post, *amount, now);
                out.into_iter()
                    .next()
                    .ok_or_else(|| Error::internal("settle made no transfer"))
            }
            LedgerOp::Void { id, hold } => {
                check_settle(&s, hold, now)?;
                let out = s.settle(hold, id.clone(), TransferKind::Void, 0, now);
                out.into_iter()
                    .next()
                    .ok_or_else(|| Error::internal("settle made no transfer"))
            }
        }
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Transfer>> {
        let mut s = self.lock();
        let mut out = Vec::new();
        let mut due: Vec<(DateTime<Utc>, u64, TransferId)> = s
            .holds
            .iter()
            .filter(|(_, h)| h.state == HoldState::Pending && h.timeout_at <= now)
            .map(|(id, h)| (h.timeout_at, h.seq, id.clone()))
            .collect();
        due.sort();
        for (_, _, hold) in due {
            let id = expiry_id(&hold, None);
            out.extend(s.settle(&hold, id, TransferKind::ExpireHold, 0, now));
        }
        for grant in s.due_grants(None, now) {
            out.extend(s.expire_grant(&grant, now));
        }
        Ok(out)
    }

    async fn balance(&self, user: UserId) -> Result<Balance> {
        let s = self.lock();
        let counters = s
            .accounts
            .get(&AccountRef::User(user))
            .copied()
            .unwrap_or_default();
        let grants = s
            .user_grants(user)
            .into_iter()
            .filter_map(|id| s.grants.get(&id))
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
        let s = self.lock();
        Ok(s.by_id.get(id).map(|&i| s.transfers[i].clone()))
    }

    async fn transfers(
        &self,
        account: Option<AccountRef>,
        kind: Option<TransferKind>,
        page: PageRequest<u64>,
    ) -> Result<Page<Transfer>> {
        let s = self.lock();
        let after = page.after.unwrap_or(0);
        let items: Vec<Transfer> = s
            .transfers
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
        Ok(self.lock().accounts.iter().map(|(a, c)| (*a, *c)).collect())
    }
}

/// The amount held by a hold that may be settled now, or why it may not.
fn check_settle(s: &State, hold: &TransferId, now: DateTime<Utc>) -> Result<MicroCredits> {
    let h = s.holds.get(hold).ok_or_else(|| hold_not_found(hold))?;
    if h.state != HoldState::Pending {
        return Err(hold_settled(hold));
    }
    if h.timeout_at <= now {
        return Err(hold_timed_out(hold));
    }
    Ok(h.amount)
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
