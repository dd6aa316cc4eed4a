//! The ledger's rules, once: a [`Book`] applies operations to the accounts, grants and holds
//! it holds in memory, and says afterwards what changed.
//!
//! The in-memory [`ReferenceLedger`](super::ReferenceLedger) is a book that holds everything.
//! A database applies a batch by loading into a book only what the batch touches — the
//! accounts it locked, their live grants, the holds it settles, the transfers already stored
//! under its ids — applying the operations in order, and writing [`Book::changes`] back as a
//! few set-based statements (TigerBeetle's way: the state machine runs over a batch, the
//! storage only stores).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{hold_not_found, hold_settled, hold_timed_out, insufficient};
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::model::{
    AccountCounters, AccountRef, EXPIRY_PREFIX, GrantBalance, LedgerOp, MAX_BALANCE, MAX_ISSUED,
    MicroCredits, Transfer, TransferId, TransferKind, balance_cap, ledger_full,
};

/// A grant as a book holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantState {
    /// Whose credit it is.
    pub user: UserId,
    /// The grant transfer's ledger position: "oldest" in the consumption order.
    pub seq: u64,
    /// What it has left.
    pub balance: GrantBalance,
    /// Whether its expiry has been processed (credit released later expires at once).
    pub expiry_done: bool,
}

/// What one hold reserved on one grant, and, once the hold is settled, what it took of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The grant.
    pub grant: TransferId,
    /// Reserved on it.
    pub amount: MicroCredits,
    /// Charged to it by the settlement (`None` while the hold is pending).
    pub taken: Option<MicroCredits>,
}

/// A hold as a book holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldState {
    /// The hold (its transfer id).
    pub id: TransferId,
    /// Whose credit it holds.
    pub user: UserId,
    /// The hold transfer's ledger position.
    pub seq: u64,
    /// How much it holds.
    pub amount: MicroCredits,
    /// When it times out.
    pub timeout_at: DateTime<Utc>,
    /// Whether it is still pending.
    pub pending: bool,
    /// Its reservations on grants, in consumption order.
    pub allocations: Vec<Allocation>,
}

/// What applying operations to a book changed, for a database to write back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The transfers made, in ledger order.
    pub transfers: Vec<Transfer>,
    /// What each account's counters moved by (only accounts that moved).
    pub accounts: Vec<(AccountRef, AccountCounters)>,
    /// Grants made.
    pub new_grants: Vec<GrantState>,
    /// Grants loaded that changed, as they are now.
    pub grants: Vec<GrantState>,
    /// Holds made (settled ones included, when a batch settled its own hold).
    pub new_holds: Vec<HoldState>,
    /// Holds loaded pending that were settled, as they are now.
    pub settled_holds: Vec<HoldState>,
}

/// The ledger's state machine over what it holds in memory (see the module documentation).
#[derive(Debug, Clone)]
pub struct Book {
    accounts: BTreeMap<AccountRef, AccountCounters>,
    /// Transfers this book made, in order.
    made: Vec<Transfer>,
    made_by_id: HashMap<TransferId, usize>,
    /// Transfers stored before, loaded so that their ids answer as replays.
    known: HashMap<TransferId, Transfer>,
    grants: BTreeMap<TransferId, GrantState>,
    holds: HashMap<TransferId, HoldState>,
    next_seq: u64,
    loaded_accounts: BTreeMap<AccountRef, AccountCounters>,
    loaded_grants: HashMap<TransferId, GrantState>,
    loaded_holds: HashMap<TransferId, HoldState>,
}

impl Default for Book {
    fn default() -> Self {
        Self::new(1)
    }
}

/// The order grants are spent in: priority, then soonest expiry (none last), then oldest.
fn consumption_key(g: &GrantState) -> (i32, bool, Option<DateTime<Utc>>, u64) {
    let b = &g.balance;
    (b.priority, b.expires_at.is_none(), b.expires_at, g.seq)
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

impl Book {
    /// An empty book whose first transfer gets ledger position `first_seq`. A database gives
    /// positions above every stored one and renumbers them when it writes
    /// ([`Self::renumber`]).
    pub fn new(first_seq: u64) -> Self {
        Self {
            accounts: BTreeMap::new(),
            made: Vec::new(),
            made_by_id: HashMap::new(),
            known: HashMap::new(),
            grants: BTreeMap::new(),
            holds: HashMap::new(),
            next_seq: first_seq,
            loaded_accounts: BTreeMap::new(),
            loaded_grants: HashMap::new(),
            loaded_holds: HashMap::new(),
        }
    }

    /// Loads an account's stored counters.
    pub fn load_account(&mut self, account: AccountRef, counters: AccountCounters) {
        self.accounts.insert(account, counters);
        self.loaded_accounts.insert(account, counters);
    }

    /// Loads a stored grant.
    pub fn load_grant(&mut self, grant: GrantState) {
        self.loaded_grants
            .insert(grant.balance.id.clone(), grant.clone());
        self.grants.insert(grant.balance.id.clone(), grant);
    }

    /// Loads a stored hold.
    pub fn load_hold(&mut self, hold: HoldState) {
        self.loaded_holds.insert(hold.id.clone(), hold.clone());
        self.holds.insert(hold.id.clone(), hold);
    }

    /// Loads a stored transfer, so that an operation with its id answers as a replay.
    pub fn load_transfer(&mut self, transfer: Transfer) {
        self.known.insert(transfer.id.clone(), transfer);
    }

    /// The transfers this book made, in order.
    pub fn made(&self) -> &[Transfer] {
        &self.made
    }

    /// The counters of `account` (zero when the book has none).
    pub fn counters(&self, account: AccountRef) -> AccountCounters {
        self.accounts.get(&account).copied().unwrap_or_default()
    }

    /// Every account the book holds, with its counters.
    pub fn accounts(&self) -> impl Iterator<Item = (AccountRef, AccountCounters)> + '_ {
        self.accounts.iter().map(|(a, c)| (*a, *c))
    }

    /// The transfer stored or made under `id`.
    pub fn transfer(&self, id: &TransferId) -> Option<&Transfer> {
        self.made_by_id
            .get(id)
            .map(|&i| &self.made[i])
            .or_else(|| self.known.get(id))
    }

    fn account(&mut self, a: AccountRef) -> &mut AccountCounters {
        self.accounts.entry(a).or_default()
    }

    fn push(&mut self, mut t: Transfer) -> Transfer {
        t.seq = self.next_seq;
        self.next_seq += 1;
        self.made_by_id.insert(t.id.clone(), self.made.len());
        self.made.push(t.clone());
        t
    }

    /// `user`'s grants in consumption order.
    pub fn user_grants(&self, user: UserId) -> Vec<&GrantState> {
        let mut grants: Vec<&GrantState> =
            self.grants.values().filter(|g| g.user == user).collect();
        grants.sort_by_key(|g| consumption_key(g));
        grants
    }

    /// Grants of `user` (or everyone) whose expiry is due at `now` and not yet processed, in
    /// the order they expire.
    pub fn due_grants(&self, user: Option<UserId>, now: DateTime<Utc>) -> Vec<TransferId> {
        let mut due: Vec<&GrantState> = self
            .grants
            .values()
            .filter(|g| !g.expiry_done && g.balance.expires_at.is_some_and(|at| at <= now))
            .filter(|g| user.is_none_or(|u| g.user == u))
            .collect();
        due.sort_by_key(|g| (g.balance.expires_at, g.seq));
        due.into_iter().map(|g| g.balance.id.clone()).collect()
    }

    /// Pending holds whose timeout passed at `now`, in the order they time out.
    pub fn due_holds(&self, now: DateTime<Utc>) -> Vec<TransferId> {
        let mut due: Vec<(DateTime<Utc>, u64, &TransferId)> = self
            .holds
            .values()
            .filter(|h| h.pending && h.timeout_at <= now)
            .map(|h| (h.timeout_at, h.seq, &h.id))
            .collect();
        due.sort();
        due.into_iter().map(|(_, _, id)| id.clone()).collect()
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

    /// Processes the expiry of `grant`: its free remainder goes to breakage. `None` when it
    /// was processed already, or nothing was free.
    pub fn expire_grant(&mut self, grant: &TransferId, now: DateTime<Utc>) -> Option<Transfer> {
        let g = self.grants.get_mut(grant)?;
        if g.expiry_done {
            return None;
        }
        g.expiry_done = true;
        let free = g.balance.free();
        if free <= 0 {
            return None;
        }
        self.expire_amount(grant, expiry_id(grant, None), free, now)
    }

    /// Releases `hold` if it is still pending (`expire_hold`, no timeout check): the
    /// settlement, then any expiry of released credit. Empty when it was settled already.
    pub fn expire_hold(&mut self, hold: &TransferId, now: DateTime<Utc>) -> Vec<Transfer> {
        if !self.holds.get(hold).is_some_and(|h| h.pending) {
            return Vec::new();
        }
        self.settle(
            hold,
            expiry_id(hold, None),
            TransferKind::ExpireHold,
            0,
            now,
        )
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
        hold.pending = false;
        let mut left = charge;
        for a in &mut hold.allocations {
            let take = left.min(a.amount);
            left -= take;
            a.taken = Some(take);
        }
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
        for a in allocations {
            let take = a.taken.unwrap_or(0);
            let released = a.amount - take;
            let Some(g) = self.grants.get_mut(&a.grant) else {
                continue;
            };
            g.balance.reserved -= a.amount;
            g.balance.consumed += take;
            if g.expiry_done && released > 0 {
                let eid = expiry_id(&a.grant, Some(&id));
                out.extend(self.expire_amount(&a.grant, eid, released, now));
            }
        }
        out
    }

    /// The amount held by a hold that may be settled at `now`, or why it may not.
    fn check_settle(&self, hold: &TransferId, now: DateTime<Utc>) -> Result<MicroCredits> {
        let h = self.holds.get(hold).ok_or_else(|| hold_not_found(hold))?;
        if !h.pending {
            return Err(hold_settled(hold));
        }
        if h.timeout_at <= now {
            return Err(hold_timed_out(hold));
        }
        Ok(h.amount)
    }

    /// Applies `op` at `now`, or answers with the transfer already under its id (a replay;
    /// `idempotency_key_reused` when that records another operation). A refused operation
    /// changes nothing.
    pub fn apply(&mut self, op: &LedgerOp, now: DateTime<Utc>) -> Result<Transfer> {
        if let Some(existing) = self.transfer(op.id()) {
            return op.replay(existing.clone());
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
                let held = self.counters(user_acct);
                let balance = held.credits_posted - held.debits_posted;
                if balance > MAX_BALANCE - amount {
                    return Err(balance_cap(balance, *amount));
                }
                let issued = self.counters(AccountRef::Issuance).debits_posted;
                if issued > MAX_ISSUED - amount {
                    return Err(ledger_full(issued, *amount));
                }
                self.account(user_acct).credits_posted += amount;
                self.account(AccountRef::Issuance).debits_posted += amount;
                let t = self.push(recorded(op, now)?);
                let expires_at = t.expires_at;
                self.grants.insert(
                    id.clone(),
                    GrantState {
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
                        expiry_done: false,
                    },
                );
                Ok(t)
            }
            LedgerOp::Hold {
                id, user, amount, ..
            } => {
                let user_acct = AccountRef::User(*user);
                let due = self.due_grants(Some(*user), now);
                let expiring: MicroCredits = due
                    .iter()
                    .filter_map(|g| self.grants.get(g))
                    .map(|g| g.balance.free())
                    .sum();
                let available = self
                    .accounts
                    .get(&user_acct)
                    .map(|a| a.available())
                    .unwrap_or(0)
                    - expiring;
                if available < *amount {
                    return Err(insufficient(available, *amount));
                }
                for g in &due {
                    self.expire_grant(g, now);
                }
                let order: Vec<TransferId> = self
                    .user_grants(*user)
                    .into_iter()
                    .map(|g| g.balance.id.clone())
                    .collect();
                let mut left = *amount;
                let mut allocations = Vec::new();
                for gid in order {
                    if left == 0 {
                        break;
                    }
                    let Some(g) = self.grants.get_mut(&gid) else {
                        continue;
                    };
                    let take = g.balance.free().min(left);
                    if take > 0 {
                        g.balance.reserved += take;
                        left -= take;
                        allocations.push(Allocation {
                            grant: gid,
                            amount: take,
                            taken: None,
                        });
                    }
                }
                self.account(user_acct).debits_pending += amount;
                self.account(AccountRef::Revenue).credits_pending += amount;
                let t = self.push(recorded(op, now)?);
                let timeout_at = t.expires_at.unwrap_or(now);
                self.holds.insert(
                    id.clone(),
                    HoldState {
                        id: id.clone(),
                        user: *user,
                        seq: t.seq,
                        amount: *amount,
                        timeout_at,
                        pending: true,
                        allocations,
                    },
                );
                Ok(t)
            }
            LedgerOp::Post { id, hold, amount } => {
                let held = self.check_settle(hold, now)?;
                if *amount > held {
                    return Err(Error::invalid(
                        "amount",
                        format!("cannot post {amount}: the hold is for {held}"),
                    ));
                }
                let out = self.settle(hold, id.clone(), TransferKind::Post, *amount, now);
                out.into_iter()
                    .next()
                    .ok_or_else(|| Error::internal("settle made no transfer"))
            }
            LedgerOp::Void { id, hold } => {
                self.check_settle(hold, now)?;
                let out = self.settle(hold, id.clone(), TransferKind::Void, 0, now);
                out.into_iter()
                    .next()
                    .ok_or_else(|| Error::internal("settle made no transfer"))
            }
        }
    }

    /// Gives the transfers this book made the ledger positions `seqs` (one each, increasing),
    /// and the grants and holds it made their transfers' positions. Returns the position each
    /// provisional one became, for the answers already handed out.
    pub fn renumber(&mut self, seqs: &[u64]) -> Result<HashMap<u64, u64>> {
        if seqs.len() != self.made.len() {
            return Err(Error::internal(format!(
                "{} ledger positions for {} transfers",
                seqs.len(),
                self.made.len()
            )));
        }
        let map: HashMap<u64, u64> = self
            .made
            .iter()
            .zip(seqs)
            .map(|(t, &s)| (t.seq, s))
            .collect();
        for t in &mut self.made {
            t.seq = map[&t.seq];
        }
        for g in self.grants.values_mut() {
            if !self.loaded_grants.contains_key(&g.balance.id) {
                g.seq = map.get(&g.seq).copied().unwrap_or(g.seq);
            }
        }
        for h in self.holds.values_mut() {
            if !self.loaded_holds.contains_key(&h.id) {
                h.seq = map.get(&h.seq).copied().unwrap_or(h.seq);
            }
        }
        Ok(map)
    }

    /// What changed since the book was loaded.
    pub fn changes(&self) -> Changes {
        let mut accounts = Vec::new();
        for (a, now) in &self.accounts {
            let was = self.loaded_accounts.get(a).copied().unwrap_or_default();
            let delta = AccountCounters {
                debits_posted: now.debits_posted - was.debits_posted,
                credits_posted: now.credits_posted - was.credits_posted,
                debits_pending: now.debits_pending - was.debits_pending,
                credits_pending: now.credits_pending - was.credits_pending,
            };
            if delta != AccountCounters::default() {
                accounts.push((*a, delta));
            }
        }
        let mut changes = Changes {
            transfers: self.made.clone(),
            accounts,
            ..Changes::default()
        };
        for g in self.grants.values() {
            match self.loaded_grants.get(&g.balance.id) {
                None => changes.new_grants.push(g.clone()),
                Some(was) if was != g => changes.grants.push(g.clone()),
                Some(_) => {}
            }
        }
        changes.new_grants.sort_by_key(|g| g.seq);
        changes
            .grants
            .sort_by(|a, b| a.balance.id.cmp(&b.balance.id));
        for h in self.holds.values() {
            match self.loaded_holds.get(&h.id) {
                None => changes.new_holds.push(h.clone()),
                Some(was) if was.pending && !h.pending => changes.settled_holds.push(h.clone()),
                Some(_) => {}
            }
        }
        changes.new_holds.sort_by_key(|h| h.seq);
        changes.settled_holds.sort_by(|a, b| a.id.cmp(&b.id));
        changes
    }
}
