//! The credit ledger's types: accounts, transfers, grants, holds (TigerBeetle's model on SQL).
//!
//! Money moves only by transfers between accounts. Each account keeps four counters —
//! `debits_posted`, `credits_posted`, `debits_pending`, `credits_pending` — and a user account
//! may never have `debits_posted + debits_pending > credits_posted`. A transfer's id is its
//! idempotency key: the same id with the same fields returns the original transfer; with other
//! fields it is refused.
//!
//! ```text
//!            grant (purchase/promotion)            hold ──▶ post (≤ hold) / void / expire
//! issuance ──────────────────────────▶ user ══════════════════════════════▶ revenue
//!                                       │   expired grant remainder
//!                                       └─────────────────────────────────▶ breakage
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::ErrorCode;
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::model::MicroCredits;

/// The largest amount one transfer may move: 10^15 micro-credits (a billion credits). Sums of
/// many such transfers stay far inside `i64`.
pub const MAX_TRANSFER: MicroCredits = 1_000_000_000_000_000;

/// The most one user's account may hold, posted (held credits included): 10^15 micro-credits,
/// a billion credits. A grant or purchase past it is refused (`limit_exceeded`, field
/// `amount`) and changes nothing.
pub const MAX_BALANCE: MicroCredits = 1_000_000_000_000_000;

/// The most the ledger can ever issue in all, in micro-credits: what one 64-bit counter holds.
/// Every other counter is bounded by it (credit only enters through grants), so refusing the
/// grant that would pass it keeps every account's sums exact; past it grants are refused
/// (`limit_exceeded`) and nothing else is affected.
pub const MAX_ISSUED: MicroCredits = i64::MAX;

/// The refusal of a grant of `amount` to an account holding `balance`, past [`MAX_BALANCE`].
pub fn balance_cap(balance: MicroCredits, amount: MicroCredits) -> Error {
    Error::with_code(
        ErrorCode::LimitExceeded,
        format!(
            "a grant of {amount} micro-credits would take the balance of {balance} past the \
             most one account may hold, {MAX_BALANCE} micro-credits"
        ),
    )
    .with_context("field", "amount")
}

/// The refusal of a grant of `amount` once `issued` micro-credits were issued, past
/// [`MAX_ISSUED`].
pub fn ledger_full(issued: MicroCredits, amount: MicroCredits) -> Error {
    Error::with_code(
        ErrorCode::LimitExceeded,
        format!(
            "a grant of {amount} micro-credits would take what the ledger has issued \
             ({issued}) past the most it can count, {MAX_ISSUED}"
        ),
    )
    .with_context("field", "amount")
}

/// An account of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountRef {
    /// A user's prepaid credits.
    User(UserId),
    /// Where granted and purchased credits come from (its balance goes negative).
    Issuance,
    /// Where spent credits go.
    Revenue,
    /// Where expired credits go.
    Breakage,
}

impl AccountRef {
    /// The stored text form: a user id (`usr_…`) or `sys:issuance|revenue|breakage`.
    pub fn key(&self) -> String {
        match self {
            AccountRef::User(u) => u.to_string(),
            AccountRef::Issuance => "sys:issuance".into(),
            AccountRef::Revenue => "sys:revenue".into(),
            AccountRef::Breakage => "sys:breakage".into(),
        }
    }
}

impl FromStr for AccountRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sys:issuance" => Ok(AccountRef::Issuance),
            "sys:revenue" => Ok(AccountRef::Revenue),
            "sys:breakage" => Ok(AccountRef::Breakage),
            _ => s
                .parse::<UserId>()
                .map(AccountRef::User)
                .map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for AccountRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AccountRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AccountRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A user id (`usr_…`) or a system account (`sys:issuance`, `sys:revenue`, `sys:breakage`).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AccountRef {}

/// A transfer id, which is also its idempotency key: characters from `[A-Za-z0-9_.:-]`, at most
/// 128 when chosen by the caller (a UUID, or a deterministic key such as
/// `session:ses_…:tick:42`), longer for the expiry transfers the ledger names itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", schema(value_type = String))]
pub struct TransferId(String);

impl TransferId {
    /// Checks the form of `id`.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(Error::invalid(
                "id",
                "transfer ids are 1-128 characters from A-Z a-z 0-9 _ . : -",
            ))
        }
    }

    /// A new random id with a prefix (`purchase:0190…`).
    pub fn random(prefix: &str) -> Self {
        Self(format!("{prefix}:{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TransferId {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        TransferId::new(s).map_err(|e| e.message().to_owned())
    }
}

impl From<TransferId> for String {
    fn from(id: TransferId) -> String {
        id.0
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a transfer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    /// Credits granted or purchased: issuance → user, posted.
    Grant,
    /// A hold on credits: user → revenue, pending until posted, voided or expired.
    Hold,
    /// A hold settled for (up to) its amount: the rest is released.
    Post,
    /// A hold released in full.
    Void,
    /// A hold released because its timeout passed.
    ExpireHold,
    /// The unspent remainder of an expired grant: user → breakage, posted.
    ExpireGrant,
}

impl TransferKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Hold => "hold",
            Self::Post => "post",
            Self::Void => "void",
            Self::ExpireHold => "expire_hold",
            Self::ExpireGrant => "expire_grant",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Grant,
            Self::Hold,
            Self::Post,
            Self::Void,
            Self::ExpireHold,
            Self::ExpireGrant,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where granted credits come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// Paid for.
    Purchase,
    /// Given (trial, promotion, compensation).
    Promotion,
}

impl GrantSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Promotion => "promotion",
        }
    }

    /// The source of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "purchase" => Some(Self::Purchase),
            "promotion" => Some(Self::Promotion),
            _ => None,
        }
    }
}

/// The longest id a caller may choose.
pub const MAX_CALLER_ID_LEN: usize = 128;
const MAX_ID_LEN: usize = 2 * MAX_CALLER_ID_LEN + 16;

/// An immutable record of money moving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transfer {
    /// The id (the idempotency key).
    pub id: TransferId,
    /// Its position in the ledger (increasing; transfers list in this order).
    pub seq: u64,
    /// What it does.
    pub kind: TransferKind,
    /// The account debited.
    pub debit_account: AccountRef,
    /// The account credited.
    pub credit_account: AccountRef,
    /// The amount moved: granted, held, posted, released (void, expire_hold) or expired.
    pub amount: MicroCredits,
    /// For post, void and expire_hold: the hold they settle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<TransferId>,
    /// For expire_grant: the grant that expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<TransferId>,
    /// For a grant: when its credits expire. For a hold: when it times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// For a grant: its consumption priority (lower is spent first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// For a grant: purchase or promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<GrantSource>,
    /// Free text linking the transfer to what caused it (`session ses_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// The prefix of the ids of transfers the ledger makes itself when holds time out and grants
/// expire: `expire:<hold id>`, `expire:<grant id>`, `expire:<grant id>:<settling transfer id>`.
pub const EXPIRY_PREFIX: &str = "expire:";

impl Transfer {
    /// A transfer of `amount` from `debit` to `credit`, with no optional field set and no
    /// sequence number yet (the ledger assigns it when it records the transfer). Fill the rest
    /// with struct update syntax: `Transfer { hold_id: Some(h), ..Transfer::new(…) }`.
    pub fn new(
        id: TransferId,
        kind: TransferKind,
        debit_account: AccountRef,
        credit_account: AccountRef,
        amount: MicroCredits,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            seq: 0,
            kind,
            debit_account,
            credit_account,
            amount,
            hold_id: None,
            grant_id: None,
            expires_at: None,
            priority: None,
            source: None,
            reference: None,
            created_at,
        }
    }
}

/// An operation on the ledger. Each creates one transfer (or returns the existing one with its
/// id, when the fields match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerOp {
    /// Credits for a user, from issuance.
    Grant {
        /// Transfer id.
        id: TransferId,
        /// Who receives them.
        user: UserId,
        /// How much.
        amount: MicroCredits,
        /// Purchase or promotion.
        source: GrantSource,
        /// Consumption priority: lower is spent first.
        priority: i32,
        /// When the unspent remainder expires.
        expires_at: Option<DateTime<Utc>>,
        /// Free text.
        reference: Option<String>,
    },
    /// Reserves credits of a user until posted, voided or timed out.
    Hold {
        /// Transfer id.
        id: TransferId,
        /// Whose credits.
        user: UserId,
        /// How much.
        amount: MicroCredits,
        /// When the hold is released if not settled.
        timeout_at: DateTime<Utc>,
        /// Free text.
        reference: Option<String>,
    },
    /// Settles a hold for `amount` (at most the held amount); the rest is released.
    Post {
        /// Transfer id.
        id: TransferId,
        /// The hold.
        hold: TransferId,
        /// How much to charge (0 ≤ amount ≤ held).
        amount: MicroCredits,
    },
    /// Releases a hold in full.
    Void {
        /// Transfer id.
        id: TransferId,
        /// The hold.
        hold: TransferId,
    },
}

fn check_amount(amount: MicroCredits, zero_allowed: bool) -> Result<()> {
    if amount < 0 || (amount == 0 && !zero_allowed) {
        return Err(Error::invalid(
            "amount",
            if zero_allowed {
                "amount must not be negative"
            } else {
                "amount must be positive"
            },
        ));
    }
    if amount > MAX_TRANSFER {
        return Err(Error::invalid(
            "amount",
            format!("amount must be at most {MAX_TRANSFER} micro-credits"),
        ));
    }
    Ok(())
}

impl LedgerOp {
    /// The transfer id of the operation.
    pub fn id(&self) -> &TransferId {
        match self {
            LedgerOp::Grant { id, .. }
            | LedgerOp::Hold { id, .. }
            | LedgerOp::Post { id, .. }
            | LedgerOp::Void { id, .. } => id,
        }
    }

    /// Checks the operation as of `now`: amounts, text, ids, and that grant expiries and hold
    /// timeouts lie in the future. Names the bad field.
    pub fn validate_at(&self, now: DateTime<Utc>) -> Result<()> {
        self.validate()?;
        if self.id().as_str().starts_with(EXPIRY_PREFIX) {
            return Err(Error::invalid(
                "id",
                "transfer ids starting with `expire:` are reserved for expiries",
            ));
        }
        match self {
            LedgerOp::Grant {
                expires_at: Some(at),
                ..
            } if *at <= now => Err(Error::invalid(
                "expires_at",
                "expires_at must be in the future",
            )),
            LedgerOp::Hold { timeout_at, .. } if *timeout_at <= now => Err(Error::invalid(
                "timeout_at",
                "timeout_at must be in the future",
            )),
            _ => Ok(()),
        }
    }

    /// Checks amounts and text, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.id().as_str().len() > MAX_CALLER_ID_LEN {
            return Err(Error::invalid(
                "id",
                "transfer ids are at most 128 characters",
            ));
        }
        if let LedgerOp::Post { hold, .. } | LedgerOp::Void { hold, .. } = self
            && hold.as_str().len() > MAX_CALLER_ID_LEN
        {
            return Err(Error::invalid(
                "hold_id",
                "hold ids are at most 128 characters",
            ));
        }
        match self {
            LedgerOp::Grant {
                amount, reference, ..
            }
            | LedgerOp::Hold {
                amount, reference, ..
            } => {
                check_amount(*amount, false)?;
                if reference.as_ref().is_some_and(|r| r.len() > 256) {
                    return Err(Error::invalid(
                        "reference",
                        "reference must be at most 256 bytes",
                    ));
                }
                Ok(())
            }
            LedgerOp::Post { amount, .. } => check_amount(*amount, true),
            LedgerOp::Void { .. } => Ok(()),
        }
    }

    /// The transfer a grant or a hold records, as given (the ledger assigns `seq`). `None` for
    /// a settlement, whose transfer depends on its hold.
    pub fn transfer(&self, now: DateTime<Utc>) -> Option<Transfer> {
        match self {
            LedgerOp::Grant {
                id,
                user,
                amount,
                source,
                priority,
                expires_at,
                reference,
            } => Some(Transfer {
                expires_at: expires_at.map(crate::time::to_millis),
                priority: Some(*priority),
                source: Some(*source),
                reference: reference.clone(),
                ..Transfer::new(
                    id.clone(),
                    TransferKind::Grant,
                    AccountRef::Issuance,
                    AccountRef::User(*user),
                    *amount,
                    now,
                )
            }),
            LedgerOp::Hold {
                id,
                user,
                amount,
                timeout_at,
                reference,
            } => Some(Transfer {
                expires_at: Some(crate::time::to_millis(*timeout_at)),
                reference: reference.clone(),
                ..Transfer::new(
                    id.clone(),
                    TransferKind::Hold,
                    AccountRef::User(*user),
                    AccountRef::Revenue,
                    *amount,
                    now,
                )
            }),
            LedgerOp::Post { .. } | LedgerOp::Void { .. } => None,
        }
    }

    /// Whether `transfer`, stored under this operation's id, records this same operation (so a
    /// replay returns it).
    pub fn matches(&self, t: &Transfer) -> bool {
        match self {
            LedgerOp::Grant {
                user,
                amount,
                source,
                priority,
                expires_at,
                reference,
                ..
            } => {
                t.kind == TransferKind::Grant
                    && t.credit_account == AccountRef::User(*user)
                    && t.amount == *amount
                    && t.source == Some(*source)
                    && t.priority == Some(*priority)
                    && t.expires_at == expires_at.map(crate::time::to_millis)
                    && t.reference == *reference
            }
            LedgerOp::Hold {
                user,
                amount,
                timeout_at,
                reference,
                ..
            } => {
                t.kind == TransferKind::Hold
                    && t.debit_account == AccountRef::User(*user)
                    && t.amount == *amount
                    && t.expires_at == Some(crate::time::to_millis(*timeout_at))
                    && t.reference == *reference
            }
            LedgerOp::Post { hold, amount, .. } => {
                t.kind == TransferKind::Post
                    && t.hold_id.as_ref() == Some(hold)
                    && t.amount == *amount
            }
            LedgerOp::Void { hold, .. } => {
                t.kind == TransferKind::Void && t.hold_id.as_ref() == Some(hold)
            }
        }
    }

    /// The answer to this operation when a transfer with its id exists already: that transfer
    /// if it records this same operation, else `idempotency_key_reused`.
    pub fn replay(&self, existing: Transfer) -> Result<Transfer> {
        if self.matches(&existing) {
            Ok(existing)
        } else {
            Err(self.reused_id_error())
        }
    }

    /// The error for an id already used by a different transfer.
    pub fn reused_id_error(&self) -> Error {
        Error::with_code(
            ErrorCode::IdempotencyKeyReused,
            format!(
                "transfer id `{}` was already used for a different transfer",
                self.id()
            ),
        )
        .with_context("field", "id")
    }
}

/// The four counters of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountCounters {
    /// Settled debits.
    pub debits_posted: MicroCredits,
    /// Settled credits.
    pub credits_posted: MicroCredits,
    /// Debits held, not yet settled.
    pub debits_pending: MicroCredits,
    /// Credits held, not yet settled.
    pub credits_pending: MicroCredits,
}

impl AccountCounters {
    /// What a user account can still spend: `credits_posted - debits_posted - debits_pending`.
    pub fn available(&self) -> MicroCredits {
        self.credits_posted - self.debits_posted - self.debits_pending
    }
}

/// What remains of one grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantBalance {
    /// The grant (its transfer id).
    pub id: TransferId,
    /// Purchase or promotion.
    pub source: GrantSource,
    /// Consumption priority (lower first).
    pub priority: i32,
    /// Granted.
    pub amount: MicroCredits,
    /// Spent.
    pub consumed: MicroCredits,
    /// Held by pending holds.
    pub reserved: MicroCredits,
    /// Expired into breakage.
    pub expired: MicroCredits,
    /// When it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was granted.
    pub created_at: DateTime<Utc>,
}

impl GrantBalance {
    /// What can still be held or spent from this grant.
    pub fn free(&self) -> MicroCredits {
        self.amount - self.consumed - self.reserved - self.expired
    }
}

/// A user's credit balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Balance {
    /// The user.
    pub user_id: UserId,
    /// The account's counters.
    #[serde(flatten)]
    pub counters: AccountCounters,
    /// What can be spent now.
    pub available: MicroCredits,
    /// Grants with something left (free or reserved), in consumption order.
    pub grants: Vec<GrantBalance>,
}

/// An account whose counters differ from what its transfers add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountDrift {
    /// The account.
    pub account: AccountRef,
    /// Its stored counters.
    pub stored: AccountCounters,
    /// The counters rebuilt from transfers.
    pub rebuilt: AccountCounters,
}

/// The result of rebuilding every balance from transfers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reconciliation {
    /// Accounts checked.
    pub accounts: u64,
    /// Transfers replayed.
    pub transfers: u64,
    /// Accounts that do not match; empty when the ledger is consistent.
    pub drift: Vec<AccountDrift>,
    /// Sum of every account's `credits_posted - debits_posted` (must be 0: money is conserved).
    pub net_posted: MicroCredits,
    /// Sum of every account's `credits_pending - debits_pending` (must be 0).
    pub net_pending: MicroCredits,
}

impl Reconciliation {
    /// Whether the ledger is consistent: no drift and money conserved.
    pub fn is_consistent(&self) -> bool {
        self.drift.is_empty() && self.net_posted == 0 && self.net_pending == 0
    }
}
