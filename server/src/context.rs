//! Who is asking, for which tenant. Resolved once per request by the HTTP layer
//! ([`crate::http::resolve`]) and handed to GraphQL as request data.
//!
//! [`TenantCtx`] is the only way to reach tenant data: domain functions take it first and begin
//! with a permission check from here.

use std::sync::Arc;

use entity::tenants;

use crate::error::{AppError, AppResult};
use crate::ids::{PlatformAdminId, StaffUserId, TenantId};

/// A role. Department roles are memberships; these are the tenant- and platform-wide ones.
#[derive(
    async_graphql::Enum,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Operates the platform: onboards tenants.
    PlatformAdmin,
    /// Administers one tenant: departments, staff, roles, services.
    TenantAdmin,
    /// Works on applications in the departments they are a member of.
    Staff,
    /// Publishes service templates to the marketplace.
    Author,
    /// Treasury (Kasse): confirms payments at the counter, refunds, reconciles.
    Cashier,
    /// A citizen signed in through the tenant's identity provider.
    Citizen,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform_admin",
            Self::TenantAdmin => "tenant_admin",
            Self::Staff => "staff",
            Self::Author => "author",
            Self::Cashier => "cashier",
            Self::Citizen => "citizen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PlatformAdmin,
            Self::TenantAdmin,
            Self::Staff,
            Self::Author,
            Self::Cashier,
            Self::Citizen,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The authenticated caller.
#[derive(Clone, Debug)]
pub enum Principal {
    Anonymous,
    Staff {
        user_id: StaffUserId,
        tenant_id: TenantId,
        roles: Vec<Role>,
    },
    PlatformAdmin {
        admin_id: PlatformAdminId,
        /// The open break-glass grant for the request's tenant, if any: without one, citizens'
        /// personal data stay closed to platform administrators ([`TenantCtx::break_glass`]).
        break_glass: Option<BreakGlass>,
    },
    Citizen(Citizen),
    /// The server itself applying declarative files (tenant onboarding, marketplace seeds).
    /// Never built from a request.
    System(&'static str),
}

/// An open break-glass grant: a platform administrator's audited access to one tenant's
/// personal data, until it expires or is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    pub tenant_id: TenantId,
    pub grant_id: uuid::Uuid,
}

/// A citizen identified by their tenant's OIDC provider.
#[derive(Clone, Debug)]
pub struct Citizen {
    pub tenant_id: TenantId,
    pub issuer: String,
    /// The stable subject: BundID's bPK2 where the token carries one, else `sub`. Drafts and
    /// applications record it as their owner (`citizen_subject`).
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The eID assurance level of this sign-in (`None`: no eIDAS level stated, or below low such
    /// as BundID's Basisregistrierung). See [`crate::auth::assurance`].
    pub assurance: Option<AssuranceLevel>,
    /// The citizen's postbox handle (BundID `legacyPostkorbHandle`), recorded with each
    /// application as the channel for replies.
    pub postbox: Option<String>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        match self {
            Self::Anonymous => false,
            Self::Staff { roles, .. } => roles.contains(&role),
            Self::PlatformAdmin { .. } => role == Role::PlatformAdmin,
            Self::Citizen(_) => role == Role::Citizen,
            Self::System(_) => matches!(role, Role::TenantAdmin | Role::Author),
        }
    }

    /// `staff:<id>` etc., as written to the audit log. Never personal data.
    pub fn audit_actor(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::Staff { user_id, .. } => format!("staff:{user_id}"),
            Self::PlatformAdmin { admin_id, .. } => format!("platform:{admin_id}"),
            Self::Citizen(c) => format!("citizen:{}", c.subject),
            Self::System(job) => format!("system:{job}"),
        }
    }

    /// The ID recorded on the request span.
    pub fn log_id(&self) -> Option<String> {
        match self {
            Self::Anonymous => None,
            Self::Staff { user_id, .. } => Some(format!("staff:{user_id}")),
            Self::PlatformAdmin { admin_id, .. } => Some(format!("platform:{admin_id}")),
            Self::Citizen(c) => Some(format!("citizen:{}", c.subject)),
            Self::System(job) => Some(format!("system:{job}")),
        }
    }
}

/// Everything resolved about one request before GraphQL runs.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub request_id: String,
    pub tenant: Option<Arc<tenants::Model>>,
    pub principal: Principal,
}

impl RequestCtx {
    /// The tenant context, or `NOT_FOUND` when the request named no tenant.
    pub fn tenant(&self) -> AppResult<TenantCtx> {
        let tenant = self
            .tenant
            .clone()
            .ok_or(AppError::NotFound("tenant (send the X-Tenant header)"))?;
        Ok(TenantCtx {
            tenant_id: TenantId(tenant.id),
            tenant,
            principal: self.principal.clone(),
        })
    }

    pub fn require_platform_admin(&self) -> AppResult<PlatformAdminId> {
        match &self.principal {
            Principal::PlatformAdmin { admin_id, .. } => Ok(*admin_id),
            Principal::Anonymous => Err(AppError::Unauthenticated),
            _ => Err(AppError::Forbidden("platform administrators only")),
        }
    }
}

/// A request bound to one tenant. The principal is already checked to belong to it (or to be a
/// platform administrator).
#[derive(Clone, Debug)]
pub struct TenantCtx {
    pub tenant_id: TenantId,
    pub tenant: Arc<tenants::Model>,
    pub principal: Principal,
}

impl TenantCtx {
    /// Tenant administrators of this tenant, and platform administrators.
    pub fn require_tenant_admin(&self) -> AppResult<()> {
        match &self.principal {
            Principal::Anonymous => Err(AppError::Unauthenticated),
            Principal::PlatformAdmin { .. } => Ok(()),
            p if p.has_role(Role::TenantAdmin) => Ok(()),
            _ => Err(AppError::Forbidden("tenant administrators only")),
        }
    }

    /// Any staff member of this tenant (or a platform administrator).
    pub fn require_staff(&self) -> AppResult<()> {
        match &self.principal {
            Principal::Anonymous => Err(AppError::Unauthenticated),
            Principal::PlatformAdmin { .. } | Principal::Staff { .. } | Principal::System(_) => {
                Ok(())
            }
            Principal::Citizen(_) => Err(AppError::Forbidden("staff only")),
        }
    }

    /// Citizens' personal data (applications, drafts, files, messages, payments, bookings):
    /// whoever else may see them may; a platform administrator only under an open break-glass
    /// grant for this tenant, whose ID this returns (every read under it is audited, see
    /// [`crate::audit::break_glass_read`]). Operators do not read personal data by default.
    pub fn break_glass(&self) -> AppResult<Option<uuid::Uuid>> {
        match &self.principal {
            Principal::PlatformAdmin {
                break_glass: Some(grant),
                ..
            } if grant.tenant_id == self.tenant_id => Ok(Some(grant.grant_id)),
            Principal::PlatformAdmin { .. } => Err(AppError::Forbidden(
                "citizens' personal data: open a break-glass grant for this tenant first",
            )),
            _ => Ok(None),
        }
    }

    /// The treasury: cashiers and tenant administrators of this tenant (and platform
    /// administrators under a break-glass grant: payments are personal data).
    pub fn require_cashier(&self) -> AppResult<()> {
        match &self.principal {
            Principal::Anonymous => Err(AppError::Unauthenticated),
            Principal::PlatformAdmin { .. } => self.break_glass().map(|_| ()),
            p if p.has_role(Role::Cashier) || p.has_role(Role::TenantAdmin) => Ok(()),
            _ => Err(AppError::Forbidden(
                "cashiers and tenant administrators only",
            )),
        }
    }

    /// Template authors of this tenant (role `author`).
    pub fn require_author(&self) -> AppResult<()> {
        match &self.principal {
            Principal::Anonymous => Err(AppError::Unauthenticated),
            p if p.has_role(Role::Author) => Ok(()),
            _ => Err(AppError::Forbidden("template authors only")),
        }
    }

    /// The signed-in staff user, if any (recorded as creator of revisions and versions).
    pub fn staff_user(&self) -> Option<uuid::Uuid> {
        match &self.principal {
            Principal::Staff { user_id, .. } => Some(user_id.0),
            _ => None,
        }
    }

    pub fn actor(&self) -> String {
        self.principal.audit_actor()
    }
}

/// An eIDAS level of assurance (Vertrauensniveau), lowest first.
/// (Here, beside the principal that carries it, so that infrastructure needs no domain; the
/// mapping from identity providers' claims is `crate::auth::assurance`.)
#[derive(
    async_graphql::Enum,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum AssuranceLevel {
    /// eIDAS "low" (BSI "normal", STORK QAA 2).
    Low,
    /// eIDAS "substantial" (BSI "substantiell", STORK QAA 3; e.g. an ELSTER certificate).
    Substantial,
    /// eIDAS "high" (BSI "hoch", STORK QAA 4; e.g. the Online-Ausweis).
    High,
}

impl AssuranceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Substantial => "substantial",
            Self::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "substantial" => Some(Self::Substantial),
            "high" => Some(Self::High),
            _ => None,
        }
    }
}
