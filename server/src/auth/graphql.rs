//! GraphQL: `me`, `login`, `refreshSession`, `logout`.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use entity::{platform_admins, staff_users, tenants};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::assurance::AssuranceLevel;
use super::service::{self, Session};
use crate::context::{Principal, Role};
use crate::db::{begin_platform, begin_tenant, read_tenant};
use crate::error::AppError;
use crate::graphql::{request_ctx, state, tenant_ctx};
use crate::ids::TenantId;
use crate::state::{AppState, ClientIp};
use crate::tenancy::graphql::{Department, StaffUser, Tenant};
use crate::tenancy::service as tenancy;

/// What kind of account is signed in.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ViewerKind {
    Staff,
    PlatformAdmin,
    Citizen,
}

/// The signed-in account. Fields beyond the account row load on demand (DataLoaders), so
/// `me { id }` costs one read.
pub enum Viewer {
    Staff(staff_users::Model),
    PlatformAdmin(platform_admins::Model),
    Citizen {
        subject: String,
        email: Option<String>,
        name: Option<String>,
        assurance: Option<AssuranceLevel>,
        tenant: Option<tenants::Model>,
    },
}

#[Object]
impl Viewer {
    async fn kind(&self) -> ViewerKind {
        match self {
            Self::Staff(_) => ViewerKind::Staff,
            Self::PlatformAdmin(_) => ViewerKind::PlatformAdmin,
            Self::Citizen { .. } => ViewerKind::Citizen,
        }
    }
    /// Staff user ID, platform admin ID, or the citizen's subject at their identity provider.
    async fn id(&self) -> ID {
        match self {
            Self::Staff(u) => ID(u.id.to_string()),
            Self::PlatformAdmin(a) => ID(a.id.to_string()),
            Self::Citizen { subject, .. } => ID(subject.clone()),
        }
    }
    async fn email(&self) -> Option<&str> {
        match self {
            Self::Staff(u) => Some(&u.email),
            Self::PlatformAdmin(a) => Some(&a.email),
            Self::Citizen { email, .. } => email.as_deref(),
        }
    }
    async fn display_name(&self) -> Option<&str> {
        match self {
            Self::Staff(u) => Some(&u.display_name),
            Self::PlatformAdmin(a) => Some(&a.display_name),
            Self::Citizen { name, .. } => name.as_deref(),
        }
    }
    async fn roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Role>> {
        Ok(match self {
            Self::Staff(u) => StaffUser(u.clone()).roles(ctx).await?,
            Self::PlatformAdmin(_) => vec![Role::PlatformAdmin],
            Self::Citizen { .. } => vec![Role::Citizen],
        })
    }
    /// A citizen's eID assurance level for this sign-in (none: the identity provider stated no
    /// eIDAS level, or one below low such as BundID's Basisregistrierung; always none for staff).
    async fn assurance_level(&self) -> Option<AssuranceLevel> {
        match self {
            Self::Citizen { assurance, .. } => *assurance,
            _ => None,
        }
    }
    /// The tenant the account belongs to (none for platform administrators).
    async fn tenant(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Tenant>> {
        Ok(match self {
            Self::Staff(u) => {
                let req = request_ctx(ctx)?;
                match &req.tenant {
                    Some(t) if t.id == u.tenant_id => Some(Tenant((**t).clone())),
                    _ => {
                        let st = state::<AppState>(ctx)?;
                        let tenant_id = TenantId(u.tenant_id);
                        let txn = begin_tenant(&st.db, tenant_id).await?;
                        let tenant = tenancy::tenant_by_id(&txn, tenant_id).await?;
                        txn.commit().await?;
                        tenant.map(Tenant)
                    }
                }
            }
            Self::PlatformAdmin(_) => None,
            Self::Citizen { tenant, .. } => tenant.clone().map(Tenant),
        })
    }
    /// Departments the staff user is a member of.
    async fn departments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Department>> {
        let Self::Staff(u) = self else {
            return Ok(vec![]);
        };
        let mut out = Vec::new();
        for membership in StaffUser(u.clone()).memberships(ctx).await? {
            out.push(membership.department(ctx).await?);
        }
        Ok(out)
    }
}

async fn viewer(ctx: &Context<'_>, principal: &Principal) -> async_graphql::Result<Option<Viewer>> {
    let st = state::<AppState>(ctx)?;
    let req = request_ctx(ctx)?;
    Ok(match principal {
        Principal::Anonymous | Principal::System(_) => None,
        Principal::PlatformAdmin { admin_id, .. } => {
            let txn = begin_platform(&st.db).await?;
            let admin = platform_admins::Entity::find_by_id(admin_id.0)
                .one(&txn)
                .await?
                .ok_or(AppError::Unauthenticated)?;
            txn.commit().await?;
            Some(Viewer::PlatformAdmin(admin))
        }
        Principal::Staff {
            user_id, tenant_id, ..
        } => {
            // The row the session check of this request read, unless it is no longer trusted.
            if let Some(user) = st.sessions.account(*tenant_id, user_id.0) {
                return Ok(Some(Viewer::Staff((*user).clone())));
            }
            let select = staff_users::Entity::find().filter(staff_users::Column::Id.eq(user_id.0));
            let user = read_tenant(&st.db, *tenant_id, select)
                .await?
                .pop()
                .ok_or(AppError::Unauthenticated)?;
            Some(Viewer::Staff(user))
        }
        Principal::Citizen(c) => Some(Viewer::Citizen {
            subject: c.subject.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            assurance: c.assurance,
            tenant: req.tenant.as_ref().map(|t| (**t).clone()),
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

#[derive(InputObject)]
pub struct OpenBreakGlassInput {
    /// Why the personal data must be read (the support case or incident); written to the
    /// tenant's audit log.
    pub reason: String,
    /// How long the grant stays open, 1 to 240 minutes (default 60).
    pub minutes: Option<i32>,
}

/// A platform administrator's open access to one tenant's personal data.
#[derive(SimpleObject)]
pub struct BreakGlassGrant {
    pub id: ID,
    pub reason: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(SimpleObject)]
pub struct OpenBreakGlassPayload {
    pub grant: BreakGlassGrant,
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

    /// Platform administrators: opens access to the selected tenant's citizens' personal data
    /// (applications, files, messages, payments, bookings) for a limited time, with a reason.
    /// Opening it and every read under it are written to the tenant's audit log.
    /// Takes effect from the next request.
    async fn open_break_glass(
        &self,
        ctx: &Context<'_>,
        input: OpenBreakGlassInput,
    ) -> async_graphql::Result<OpenBreakGlassPayload> {
        let st = state::<AppState>(ctx)?;
        let tctx = tenant_ctx(ctx)?;
        let grant =
            super::break_glass::open(&st.db, &tctx, &input.reason, input.minutes.unwrap_or(60))
                .await?;
        Ok(OpenBreakGlassPayload {
            grant: BreakGlassGrant {
                id: ID(grant.id.to_string()),
                reason: grant.reason,
                expires_at: grant.expires_at,
            },
        })
    }
}
