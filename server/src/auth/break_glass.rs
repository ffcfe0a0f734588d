//! Break-glass grants: platform administrators operate tenants, but do not read citizens'
//! personal data by default. To read it (a support case, an incident) a platform administrator
//! opens a grant for one tenant, with a reason, for at most [`MAX_MINUTES`]; the opening and
//! every read under it are written to that tenant's audit log
//! ([`crate::audit::break_glass_read`]). Without an open grant such reads are `FORBIDDEN`
//! ([`crate::context::TenantCtx::break_glass`]).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, QueryFilter, Set};
use uuid::Uuid;

use entity::break_glass_grants;

use crate::audit;
use crate::context::{BreakGlass, Principal, TenantCtx};
use crate::db::{begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::{PlatformAdminId, TenantId};

/// The longest a grant stays open.
pub const MAX_MINUTES: i32 = 240;
/// A reason must say something: at least this many characters.
const MIN_REASON: usize = 10;
const MAX_REASON: usize = 500;

fn platform_admin(ctx: &TenantCtx) -> AppResult<PlatformAdminId> {
    match &ctx.principal {
        Principal::PlatformAdmin { admin_id, .. } => Ok(*admin_id),
        Principal::Anonymous => Err(AppError::Unauthenticated),
        _ => Err(AppError::Forbidden("platform administrators only")),
    }
}

/// Opens a grant for the calling platform administrator on the request's tenant.
pub async fn open(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    reason: &str,
    minutes: i32,
) -> AppResult<break_glass_grants::Model> {
    let admin = platform_admin(ctx)?;
    let reason = reason.trim();
    let len = reason.chars().count();
    if !(MIN_REASON..=MAX_REASON).contains(&len) || reason.contains('\0') {
        return Err(AppError::invalid(
            "input.reason",
            format!("must say why, in {MIN_REASON} to {MAX_REASON} characters"),
        ));
    }
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(AppError::invalid(
            "input.minutes",
            format!("must be between 1 and {MAX_MINUTES}"),
        ));
    }
    let now = Utc::now();
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let grant = break_glass_grants::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        admin_id: Set(admin.0),
        reason: Set(reason.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::minutes(i64::from(minutes))),
        closed_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "break_glass.open",
        format!("break_glass:{}", grant.id),
        serde_json::json!({ "reason": grant.reason, "expiresAt": grant.expires_at }),
    )
    .await?;
    txn.commit().await?;
    Ok(grant)
}

/// The platform administrator's open grant on `tenant`, if any (read for each of their
/// requests that names a tenant, so expiry holds on the next request).
pub async fn open_grant(
    db: &DatabaseConnection,
    tenant: TenantId,
    admin: Uuid,
) -> AppResult<Option<BreakGlass>> {
    let now = Utc::now();
    let txn = begin_tenant(db, tenant).await?;
    let grant = txn
        .select::<break_glass_grants::Entity>()
        .filter(break_glass_grants::Column::AdminId.eq(admin))
        .filter(break_glass_grants::Column::ClosedAt.is_null())
        .filter(break_glass_grants::Column::ExpiresAt.gt(now))
        .one(&txn)
        .await?;
    txn.commit().await?;
    Ok(grant.map(|g| BreakGlass {
        tenant_id: tenant,
        grant_id: g.id,
    }))
}
