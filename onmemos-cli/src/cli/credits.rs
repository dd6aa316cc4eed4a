//! `onmemos credits …`.

use clap::Subcommand;
use onmemos::client::Client;
use onmemos::core::api::{CreditRequest, TransferListParams};
use onmemos::core::id::UserId;
use onmemos::core::model::{MICROS_PER_CREDIT, MicroCredits, TransferKind};

use crate::cli::Output;
use crate::cli::output::when;

#[derive(Debug, Subcommand)]
pub(crate) enum CreditCommand {
    /// Your balance (the default).
    Balance,
    /// Your transfers, oldest first.
    Transfers {
        /// Only this kind: grant, hold, post, void, expire_hold, expire_grant.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<TransferKind>,
    },
    /// Add purchased credits to a user (admin).
    Purchase(CreditArgs),
    /// Add promotional credits to a user (admin).
    Grant(CreditArgs),
    /// The price book.
    Pricing,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreditArgs {
    /// The user to credit.
    #[arg(long)]
    user: UserId,
    /// How many credits, e.g. `12.5` (exact to the micro-credit).
    #[arg(long, value_parser = parse_credits)]
    amount: MicroCredits,
    /// Consumption priority (lower is spent first).
    #[arg(long)]
    priority: Option<i32>,
    /// Expire the unspent remainder after this many days.
    #[arg(long)]
    expires_in_days: Option<u32>,
    /// Free text (an invoice number, a campaign).
    #[arg(long)]
    reference: Option<String>,
}

fn parse_kind(s: &str) -> Result<TransferKind, String> {
    TransferKind::parse(s).ok_or_else(|| format!("unknown transfer kind {s:?}"))
}

/// Parses a decimal amount of credits into micro-credits, exactly (at most 6 decimals).
pub(crate) fn parse_credits(s: &str) -> Result<MicroCredits, String> {
    let bad = || {
        format!(
            "expected an amount of credits with at most 6 decimals, such as 12 or 0.25, got {s:?}"
        )
    };
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 6 {
        return Err(bad());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: MicroCredits = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: MicroCredits = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(MICROS_PER_CREDIT)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// Micro-credits as credits with six decimals.
pub(crate) fn credits(micros: MicroCredits) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let per = MICROS_PER_CREDIT.unsigned_abs();
    format!("{sign}{}.{:06}", m / per, m % per)
}

pub(crate) async fn run(
    client: &Client,
    command: Option<CreditCommand>,
    out: &Output,
) -> anyhow::Result<()> {
    match command.unwrap_or(CreditCommand::Balance) {
        CreditCommand::Balance => {
            let b = client.credits().balance().await?;
            let rows = b.grants.iter().map(|g| {
                vec![
                    g.id.to_string(),
                    g.source.as_str().into(),
                    g.priority.to_string(),
                    credits(g.free()),
                    credits(g.reserved),
                    when(g.expires_at),
                ]
            });
            if !out.json {
                println!(
                    "available {}   posted credits {}   spent {}   held {}",
                    credits(b.available),
                    credits(b.counters.credits_posted),
                    credits(b.counters.debits_posted),
                    credits(b.counters.debits_pending)
                );
            }
            out.print(
                &b,
                &["grant", "source", "priority", "free", "held", "expires"],
                rows,
            )
        }
        CreditCommand::Transfers { kind } => {
            let mut params = TransferListParams {
                kind,
                limit: Some(200),
                cursor: None,
            };
            let mut items = Vec::new();
            loop {
                let page = client.credits().transfers(&params).await?;
                items.extend(page.items);
                match page.next_cursor {
                    Some(c) => params.cursor = Some(c),
                    None => break,
                }
            }
            let rows = items.iter().map(|t| {
                vec![
                    t.seq.to_string(),
                    t.kind.as_str().into(),
                    credits(t.amount),
                    t.debit_account.to_string(),
                    t.credit_account.to_string(),
                    t.reference.clone().unwrap_or_default(),
                    when(Some(t.created_at)),
                ]
            });
            out.print(
                &items,
                &[
                    "seq",
                    "kind",
                    "amount",
                    "debit",
                    "credit",
                    "reference",
                    "at",
                ],
                rows,
            )
        }
        CreditCommand::Purchase(args) => {
            let t = client.credits().purchase(&request(args)).await?;
            out.print(
                &t,
                &["transfer", "amount"],
                [vec![t.id.to_string(), credits(t.amount)]],
            )
        }
        CreditCommand::Grant(args) => {
            let t = client.credits().grant(&request(args)).await?;
            out.print(
                &t,
                &["transfer", "amount"],
                [vec![t.id.to_string(), credits(t.amount)]],
            )
        }
        CreditCommand::Pricing => {
            let p = client.credits().pricing().await?;
            out.print(
                &p,
                &[
                    "vCPU-hour",
                    "GiB-hour",
                    "GPU-hour",
                    "GiB-month",
                    "spot discount",
                ],
                [vec![
                    credits(p.vcpu_hour),
                    credits(p.memory_gib_hour),
                    credits(p.gpu_hour),
                    credits(p.storage_gib_month),
                    format!("{}%", p.spot_discount_percent),
                ]],
            )
        }
    }
}

fn request(args: CreditArgs) -> CreditRequest {
    CreditRequest {
        user_id: args.user,
        amount_micros: args.amount,
        priority: args.priority,
        expires_at: args
            .expires_in_days
            .map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d))),
        reference: args.reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_parse_exactly() {
        assert_eq!(parse_credits("12"), Ok(12_000_000));
        assert_eq!(parse_credits("0.25"), Ok(250_000));
        assert_eq!(parse_credits(".000001"), Ok(1));
        assert_eq!(parse_credits("1.1234567").ok(), None);
        assert_eq!(parse_credits("-1").ok(), None);
        assert_eq!(parse_credits("1e3").ok(), None);
        assert_eq!(parse_credits("99999999999999999999").ok(), None);
        assert_eq!(credits(12_500_001), "12.500001");
        assert_eq!(credits(-1), "-0.000001");
    }
}
