//! The treasury report: payments received and refunds made in a period, and its CSV export.

use chrono::{DateTime, Duration, Utc};
use entity::{applications, payment_refunds, payments};
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use crate::applications::rules::FeeLine;
use crate::applications::service as apps;
use crate::context::TenantCtx;
use crate::db::begin_tenant;
use crate::error::{AppError, AppResult};

/// One money movement for the treasury: a payment received or a refund.
#[derive(Clone, Debug)]
pub struct LedgerLine {
    pub at: DateTime<Utc>,
    /// `payment` or `refund`.
    pub kind: &'static str,
    pub reference: String,
    pub payment: payments::Model,
    /// Positive for payments, negative for refunds.
    pub amount_cents: i64,
    pub fees: Vec<FeeLine>,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
}

/// `paymentsReport`: payments received and refunds made in `[from, to)`, in time order.
/// Cashiers and tenant administrators.
pub async fn report(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<LedgerLine>> {
    ctx.require_cashier()?;
    crate::audit::break_glass_read(
        db,
        ctx,
        "payments report",
        format!("tenant:{}", ctx.tenant_id),
    )
    .await?;
    if to <= from || to - from > Duration::days(366) {
        return Err(AppError::invalid(
            "to",
            "must be after `from`, at most 366 days later",
        ));
    }
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let paid = txn
        .select::<payments::Entity>()
        .filter(payments::Column::PaidAt.gte(from))
        .filter(payments::Column::PaidAt.lt(to))
        .all(&txn)
        .await?;
    let refunds = txn
        .select::<payment_refunds::Entity>()
        .filter(payment_refunds::Column::CreatedAt.gte(from))
        .filter(payment_refunds::Column::CreatedAt.lt(to))
        .all(&txn)
        .await?;
    // The payments the refunds belong to, unless already read as paid in the period.
    let mut all: std::collections::HashMap<Uuid, payments::Model> =
        paid.iter().map(|p| (p.id, p.clone())).collect();
    let mut missing: Vec<Uuid> = refunds
        .iter()
        .map(|r| r.payment_id)
        .filter(|id| !all.contains_key(id))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        all.extend(
            txn.select::<payments::Entity>()
                .filter(payments::Column::Id.is_in(missing))
                .all(&txn)
                .await?
                .into_iter()
                .map(|p| (p.id, p)),
        );
    }
    let app_ids: Vec<Uuid> = all.values().map(|p| p.application_id).collect();
    let apps: std::collections::HashMap<Uuid, applications::Model> = txn
        .select::<applications::Entity>()
        .filter(applications::Column::Id.is_in(app_ids))
        .all(&txn)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    txn.commit().await?;
    let line = |p: &payments::Model| {
        let app = apps.get(&p.application_id);
        (
            app.map(|a| a.reference.clone()).unwrap_or_default(),
            app.map(apps::fees_of).unwrap_or_default(),
        )
    };
    let mut lines = Vec::new();
    for p in &paid {
        let (reference, fees) = line(p);
        lines.push(LedgerLine {
            at: p.paid_at.unwrap_or(p.updated_at),
            kind: "payment",
            reference,
            payment: p.clone(),
            amount_cents: p.amount_cents,
            fees,
            provider_refund_id: None,
            reason: None,
        });
    }
    for r in refunds {
        let Some(p) = all.get(&r.payment_id) else {
            continue;
        };
        let (reference, fees) = line(p);
        lines.push(LedgerLine {
            at: r.created_at,
            kind: "refund",
            reference,
            payment: p.clone(),
            amount_cents: -r.amount_cents,
            fees,
            provider_refund_id: r.provider_refund_id,
            reason: Some(r.reason),
        });
    }
    lines.sort_by_key(|l| (l.at, l.kind));
    Ok(lines)
}

/// The report as CSV for the treasury (semicolon-separated, as German spreadsheets expect;
/// cells that a spreadsheet would run as a formula are defused).
pub fn report_csv(lines: &[LedgerLine]) -> AppResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    let err = |e: csv::Error| AppError::internal("writing CSV", e);
    w.write_record([
        "booked_at",
        "kind",
        "reference",
        "payment_id",
        "provider",
        "amount_cents",
        "currency",
        "fees",
        "state",
        "checkout_session_id",
        "provider_payment_id",
        "provider_refund_id",
        "reason",
    ])
    .map_err(err)?;
    for l in lines {
        let fees = l
            .fees
            .iter()
            .map(|f| format!("{}={}", f.key, f.amount_cents))
            .collect::<Vec<_>>()
            .join(" ");
        let record = [
            l.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            l.kind.to_owned(),
            l.reference.clone(),
            l.payment.id.to_string(),
            l.payment.provider.clone(),
            l.amount_cents.to_string(),
            l.payment.currency.clone(),
            fees,
            l.payment.state.to_string(),
            l.payment.checkout_session_id.clone().unwrap_or_default(),
            l.payment.provider_payment_id.clone().unwrap_or_default(),
            l.provider_refund_id.clone().unwrap_or_default(),
            l.reason.clone().unwrap_or_default(),
        ];
        w.write_record(record.iter().map(|c| defuse(c)))
            .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| AppError::internal("writing CSV", anyhow::anyhow!(e.to_string())))
}

/// A cell starting like a formula gets a leading `'` (OWASP CSV injection); negative amounts
/// are numbers, not formulas, and stay as they are.
fn defuse(cell: &str) -> String {
    let numeric = cell.parse::<i64>().is_ok();
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !numeric => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("-2500"), "-2500");
        assert_eq!(defuse("-1+1"), "'-1+1");
        assert_eq!(defuse("Erstattung"), "Erstattung");
    }
}
