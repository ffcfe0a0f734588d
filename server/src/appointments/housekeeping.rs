//! Periodic clean-up: holds that lapsed become `expired` (they stopped counting against capacity
//! the moment they lapsed; this only tidies the table), and spent challenges past their expiry
//! are deleted (an expired challenge is refused anyway), and so are rate-limit counters whose
//! window ended. Idempotent; runs in every replica.

use chrono::{DateTime, Utc};
use entity::states::BookingState;
use entity::{bookings, spent_challenges, tenants};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

use crate::db::begin_tenant_write;
use crate::error::AppResult;
use crate::ids::TenantId;

/// What one round cleared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleared {
    pub lapsed_holds: u64,
    pub spent_challenges: u64,
    /// Rate-limit counters whose window ended.
    pub rate_limits: u64,
}

pub async fn clear(db: &DatabaseConnection, now: DateTime<Utc>) -> AppResult<Cleared> {
    let mut cleared = Cleared::default();
    for tenant in tenants::Entity::find().all(db).await? {
        let tenant = TenantId(tenant.id);
        let txn = begin_tenant_write(db, tenant).await?;
        cleared.lapsed_holds += txn
            .update_many::<bookings::Entity>()
            .col_expr(bookings::Column::State, Expr::value(BookingState::Expired))
            .filter(bookings::Column::State.eq(BookingState::Held))
            .filter(bookings::Column::HoldExpiresAt.lte(now))
            .exec(&txn)
            .await?
            .rows_affected;
        cleared.spent_challenges += txn
            .delete_many::<spent_challenges::Entity>()
            .filter(spent_challenges::Column::ExpiresAt.lte(now))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
    }
    cleared.rate_limits = crate::auth::rate_limit::clear_expired(db).await?;
    Ok(cleared)
}

/// Clears every `interval` until `stop` fires.
pub async fn run(
    db: DatabaseConnection,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        match clear(&db, Utc::now()).await {
            Ok(c) if c != Cleared::default() => tracing::info!(
                lapsed_holds = c.lapsed_holds,
                spent_challenges = c.spent_challenges,
                rate_limits = c.rate_limits,
                "appointments housekeeping"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "appointments housekeeping failed; retrying next round")
            }
        }
    }
}
