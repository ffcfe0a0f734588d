//! GraphQL: `me`, `login`, `refreshSession`, `logout`.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use entity::platform_admins;
use sea_orm::EntityTrait;

use super::service::{self, Session};
use crate::context::{Principal, Role};
use crate::db::{begin_platform, begin_tenant};
use crate::error::AppError;
use crate::graphql::{request_ctx, state};
use crate::state::{AppState, ClientIp};
use crate::tenancy::graphql::{Department, Tenant};
use crate::tenancy::service as tenancy;

/// What kind of account is signed in.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ViewerKind {
    Staff,
    PlatformAdmin,
    Citizen,
}

/// The signed-in account.
#[derive(SimpleObject)]
pub struct Viewer {
    pub kind: ViewerKind,
    /// Staff user ID, platform admin ID, or the citizen's subject at their identity provider.
    pub id: ID,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub roles: Vec<Role>,
    /// The tenant the account belongs to (none for platform administrators).
    pub tenant: Option<Tenant>,
    /// Departments the staff user is a member of.
    pub departments: Vec<Department>,
}

async fn viewer(ctx: &Context<'_>, principal: &Principal) -> async_graphql::Result<Option<Viewer>> {
    let st = state::<AppState>(ctx)?;
    let req = request_ctx(ctx)?;
    Ok(match principal {
        Principal::Anonymous => None,
        Principal::PlatformAdmin { admin_id } => {
            let txn = begin_platform(&st.db).await?;
            let admin = platform_admins::Entity::find_by_id(admin_id.0)
                .one(&txn)
                .await?
                .ok_or(AppError::Unauthenticated)?;
            txn.commit().await?;
            Some(Viewer {
                kind: ViewerKind::PlatformAdmin,
                id: ID(admin.id.to_string()),
                email: Some(admin.email),
                display_name: Some(admin.display_name),
                roles: vec![Role::PlatformAdmin],
                tenant: None,
                departments: vec![],
            })
        }
        Principal::Staff {
            user_id, tenant_id, ..
        } => {
            let txn = begin_tenant(&st.db, *tenant_id).await?;
            let user = tenancy::find_staff(&txn, *tenant_id, *user_id)
                .await
                .map_err(|_| AppError::Unauthenticated)?;
            let mut memberships = tenancy::memberships_of(&txn, *tenant_id, &[user.id]).await?;
            let roles = tenancy::roles_given(&txn, *tenant_id, &[user.id], &memberships)
                .await?
                .remove(&user.id)
                .unwrap_or_default();
            let memberships = memberships.remove(&user.id).unwrap_or_default();
            let dept_ids: Vec<_> = memberships.iter().map(|m| m.department_id).collect();
            let depts = tenancy::departments_by_ids(&txn, *tenant_id, &dept_ids).await?;
            let tenant = match &req.tenant {
                Some(t) if t.id == tenant_id.0 => Some((**t).clone()),
                _ => tenancy::tenant_by_id(&txn, *tenant_id).await?,
            };
            txn.commit().await?;
            Some(Viewer {
                kind: ViewerKind::Staff,
                id: ID(user.id.to_string()),
                email: Some(user.email),
                display_name: Some(user.display_name),
                roles,
                tenant: tenant.map(Tenant),
                departments: dept_ids
                    .iter()
                    .filter_map(|id| depts.get(id).cloned())
                    .map(Department)
                    .collect(),
            })
        }
        Principal::Citizen(c) => Some(Viewer {
            kind: ViewerKind::Citizen,
            id: ID(c.subject.clone()),
            email: c.email.clone(),
            display_name: c.name.clone(),
            roles: vec![Role::Citizen],
            tenant: req.tenant.as_ref().map(|t| Tenant((**t).clone())),
            departments: vec![],
        }),
    })
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in account, or null for anonymous requests.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Viewer>> {
        let principal = request_ctx(ctx)?.principal.clone();
        viewer(ctx, &principal).await
    }
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct RefreshSessionInput {
    pub refresh_token: String,
}

#[derive(InputObject)]
pub struct LogoutInput {
    pub refresh_token: String,
}

/// A new session: a short-lived access token (send as `Authorization: Bearer …`) and a refresh
/// token that can be used exactly once.
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub access_token: String,
    pub access_token_expires_at: chrono::DateTime<chrono::Utc>,
    pub refresh_token: String,
    pub viewer: Option<Viewer>,
}

#[derive(SimpleObject)]
pub struct LogoutPayload {
    pub ok: bool,
}

async fn payload(ctx: &Context<'_>, session: Session) -> async_graphql::Result<AuthPayload> {
    let viewer = viewer(ctx, &session.principal).await?;
    Ok(AuthPayload {
        access_token: session.access_token,
        access_token_expires_at: session.access_expires_at,
        refresh_token: session.refresh_token,
        viewer,
    })
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Staff login to the selected tenant; without a tenant, platform administrator login.
    /// Rate-limited per client IP and per account.
    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        let st = state::<AppState>(ctx)?;
        let ip = ctx.data_opt::<ClientIp>().and_then(|c| c.0);
        let session =
            service::login(st, request_ctx(ctx)?, ip, &input.email, input.password).await?;
        payload(ctx, session).await
    }

    /// Exchanges a refresh token for a new session. Each refresh token works once; reusing one
    /// ends the whole session family.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        input: RefreshSessionInput,
    ) -> async_graphql::Result<AuthPayload> {
        let st = state::<AppState>(ctx)?;
        let session = service::refresh(st, request_ctx(ctx)?, &input.refresh_token).await?;
        payload(ctx, session).await
    }

    /// Ends the session the refresh token belongs to.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        input: LogoutInput,
    ) -> async_graphql::Result<LogoutPayload> {
        let st = state::<AppState>(ctx)?;
        service::logout(st, request_ctx(ctx)?, &input.refresh_token).await?;
        Ok(LogoutPayload { ok: true })
    }
}
