//! Who may see and act on an application: the caller's relation to it ([`Viewer`]), ownership
//! by sign-in or access token, and the lookups that apply those checks.

use entity::{application_tasks, applications, staff_memberships};
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use crate::auth::tokens::{constant_time_eq, hash_secret};
use crate::context::{Principal, Role, TenantCtx};
use crate::db::{TenantTx, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::ids::ApplicationId;
use crate::state::AppState;

/// How the caller relates to one application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// Tenant or platform administrator: everything.
    Admin,
    /// Staff member of (at least) one department with a task on it.
    Staff { user: Uuid },
    /// The applicant: signed in as the submitting citizen, or holding the access link.
    Applicant,
}

impl Viewer {
    pub fn is_staff(&self) -> bool {
        !matches!(self, Self::Applicant)
    }
}

/// The departments a staff user is a member of.
pub async fn departments_of(txn: &TenantTx, user: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(txn
        .select::<staff_memberships::Entity>()
        .filter(staff_memberships::Column::UserId.eq(user))
        .all(txn)
        .await?
        .into_iter()
        .map(|m| m.department_id)
        .collect())
}

/// Tenant administrators, the server itself, and platform administrators under a break-glass
/// grant for this tenant.
pub(super) fn is_admin(ctx: &TenantCtx) -> bool {
    match &ctx.principal {
        Principal::PlatformAdmin { .. } => matches!(ctx.break_glass(), Ok(Some(_))),
        Principal::System(_) => true,
        p => p.has_role(Role::TenantAdmin),
    }
}

/// Does the caller own something carrying these owner columns?
pub(super) fn owns(
    ctx: &TenantCtx,
    issuer: Option<&str>,
    subject: Option<&str>,
    access_hash: Option<&str>,
    access_token: Option<&str>,
) -> bool {
    if let Principal::Citizen(c) = &ctx.principal
        && issuer == Some(c.issuer.as_str())
        && subject == Some(c.subject.as_str())
    {
        return true;
    }
    match (access_hash, access_token) {
        (Some(hash), Some(token)) => constant_time_eq(hash, &hash_secret(token)),
        _ => false,
    }
}

/// The caller's relation to `app`. Anyone else gets `NOT_FOUND` (nothing about other people's
/// applications leaks, not even their existence), or `UNAUTHENTICATED` when they sent nothing.
pub async fn viewer_of(
    txn: &TenantTx,
    ctx: &TenantCtx,
    app: &applications::Model,
    access_token: Option<&str>,
) -> AppResult<Viewer> {
    // A platform administrator without a break-glass grant: FORBIDDEN, not NOT_FOUND.
    ctx.break_glass()?;
    if is_admin(ctx) {
        return Ok(Viewer::Admin);
    }
    if let Principal::Staff { user_id, .. } = &ctx.principal {
        let mine = departments_of(txn, user_id.0).await?;
        let assigned = txn
            .select::<application_tasks::Entity>()
            .filter(application_tasks::Column::ApplicationId.eq(app.id))
            .filter(application_tasks::Column::DepartmentId.is_in(mine))
            .one(txn)
            .await?
            .is_some();
        return if assigned {
            Ok(Viewer::Staff { user: user_id.0 })
        } else {
            Err(AppError::NotFound("application"))
        };
    }
    if owns(
        ctx,
        app.citizen_issuer.as_deref(),
        app.citizen_subject.as_deref(),
        app.access_hash.as_deref(),
        access_token,
    ) {
        return Ok(Viewer::Applicant);
    }
    if matches!(ctx.principal, Principal::Anonymous) && access_token.is_none() {
        return Err(AppError::Unauthenticated);
    }
    Err(AppError::NotFound("application"))
}

pub(super) fn citizen_of(ctx: &TenantCtx) -> (Option<String>, Option<String>) {
    match &ctx.principal {
        Principal::Citizen(c) => (Some(c.issuer.clone()), Some(c.subject.clone())),
        _ => (None, None),
    }
}

/// Only citizens (signed in or anonymous) fill forms; staff act on applications.
pub(crate) fn require_applicant_side(ctx: &TenantCtx) -> AppResult<()> {
    match ctx.principal {
        Principal::Anonymous | Principal::Citizen(_) => Ok(()),
        _ => Err(AppError::Forbidden(
            "drafts and submissions are made by citizens; staff process them",
        )),
    }
}

/// An application the caller may see, with how they relate to it.
pub async fn application(
    deps: &AppState,
    ctx: &TenantCtx,
    id: ApplicationId,
    access_token: Option<&str>,
) -> AppResult<(applications::Model, Viewer)> {
    crate::audit::break_glass_read(&deps.db, ctx, "application", format!("application:{id}"))
        .await?;
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let app = find(&txn, id).await?;
    let viewer = viewer_of(&txn, ctx, &app, access_token).await?;
    txn.commit().await?;
    Ok((app, viewer))
}

pub async fn find(txn: &TenantTx, id: ApplicationId) -> AppResult<applications::Model> {
    txn.select::<applications::Entity>()
        .filter(applications::Column::Id.eq(id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("application"))
}

/// Locks and loads an application for a change (PostgreSQL: `FOR UPDATE`; SQLite's write
/// transaction already excludes other writers).
pub(crate) async fn lock(txn: &TenantTx, id: ApplicationId) -> AppResult<applications::Model> {
    let select = txn
        .select::<applications::Entity>()
        .filter(applications::Column::Id.eq(id));
    let app = crate::db::for_update(select, txn)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("application"))?;
    if app.erased_at.is_some() {
        return Err(AppError::conflict(
            "input.id",
            "this application has been erased",
        ));
    }
    Ok(app)
}
