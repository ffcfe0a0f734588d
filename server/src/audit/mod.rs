//! Append-only audit log. [`record`] takes the caller's transaction, so an entry exists exactly
//! when the change it describes was committed. On PostgreSQL the request role has no UPDATE or
//! DELETE grant on the table at all.

pub mod graphql;

use sea_orm::{ActiveModelTrait, EntityTrait, Set};

use entity::audit_log;

use crate::context::TenantCtx;
use crate::db::TenantTx;
use crate::error::AppResult;
use crate::graphql::connection::{Page, PageArgs, fetch_tenant_page};

/// Appends one entry. `details` must not contain secrets or personal data beyond IDs.
pub async fn record(
    txn: &TenantTx,
    actor: &str,
    action: &str,
    target: String,
    details: serde_json::Value,
) -> AppResult<()> {
    audit_log::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        tenant_id: Set(txn.tenant().0),
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        target: Set(target),
        details: Set(details),
        at: Set(chrono::Utc::now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Gate and record for reading citizens' personal data. Everyone but a platform administrator
/// passes untouched (their own checks apply); a platform administrator needs an open
/// break-glass grant for the tenant (else `FORBIDDEN`), and each read under it is one audit
/// entry, committed before the data is returned.
pub async fn break_glass_read(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    what: &str,
    target: String,
) -> AppResult<()> {
    let Some(grant) = ctx.break_glass()? else {
        return Ok(());
    };
    let txn = crate::db::begin_tenant_write(db, ctx.tenant_id).await?;
    record(
        &txn,
        &ctx.actor(),
        "break_glass.read",
        target,
        serde_json::json!({ "grant": grant, "read": what }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The tenant's audit log, oldest first. Tenant administrators only.
pub async fn list(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    args: PageArgs,
) -> AppResult<Page<audit_log::Model>> {
    ctx.require_tenant_admin()?;
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        audit_log::Entity::find(),
        audit_log::Column::Id,
        |m| m.id,
        args,
    )
    .await
}
