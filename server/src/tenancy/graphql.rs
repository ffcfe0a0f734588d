//! GraphQL types and operations of the tenancy domain. Resolvers stay thin: parse the input into
//! domain types, call the service with the context, map the result.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use entity::{departments, staff_memberships, staff_users, tenants};

use super::department_pages::DepartmentPages;
use super::loader::{DepartmentById, MembershipsOf, RolesOf, TenancyLoader};
use super::onboarding::{self, DepartmentSpec, Mode, PasswordSpec, StaffSpec, TenantSpec};
use super::service::{self, DepartmentPatch, DepartmentRole, NewDepartment, NewStaff, StaffPatch};
use super::types::{Ags, Branding, Email, Name, OidcSettings, Slug, TenantSettings, TimeZone};
use crate::auth::password;
use crate::context::Role;
use crate::context::{Principal, TenantCtx};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::loaders::RequestLoader;
use crate::graphql::{parse_id, request_ctx, request_loader, state, tenant_ctx};
use crate::ids::{DepartmentId, StaffUserId, TenantId};

fn loader<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<TenancyLoader>> {
    request_loader::<TenancyLoader>(ctx)
}

fn db<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::db::Db> {
    state::<crate::db::Db>(ctx)
}

fn department_pages<'a>(ctx: &'a Context<'_>) -> AppResult<&'a DepartmentPages> {
    Ok(&state::<crate::state::AppState>(ctx)?.department_pages)
}

/// After a committed change to a staff user's status, roles or memberships: their access
/// tokens are judged anew on the next request (see [`crate::auth::sessions`]).
fn sessions_changed(ctx: &Context<'_>, user: StaffUserId) -> AppResult<()> {
    state::<crate::state::AppState>(ctx)?
        .sessions
        .forget_subject(user.0);
    Ok(())
}

// ---- output types ------------------------------------------------------------------------------

/// A municipality.
pub struct Tenant(pub tenants::Model);

#[Object]
impl Tenant {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// URL-safe key, also the subdomain.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Amtlicher Gemeindeschlüssel (8 digits).
    async fn ags(&self) -> &str {
        &self.0.ags
    }
    /// IANA time zone of opening hours and appointments.
    async fn time_zone(&self) -> &str {
        &self.0.time_zone
    }
    /// `active` or `suspended`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn branding(&self) -> BrandingOut {
        let b: Branding = serde_json::from_value(self.0.branding.clone()).unwrap_or_default();
        BrandingOut {
            primary_color: b.primary_color,
            logo_url: b.logo_url,
        }
    }
    /// Issuer of the citizens' identity provider, if one is configured.
    async fn citizen_login_issuer(&self) -> Option<String> {
        let s: TenantSettings = serde_json::from_value(self.0.settings.clone()).unwrap_or_default();
        s.oidc.map(|o| o.issuer)
    }
    /// Our client ID at that provider (public: it is part of every sign-in request), for
    /// clients that run the sign-in themselves.
    async fn citizen_login_client_id(&self) -> Option<String> {
        let s: TenantSettings = serde_json::from_value(self.0.settings.clone()).unwrap_or_default();
        s.oidc.map(|o| o.client_id)
    }
    /// The tenant's departments, oldest first. Public.
    async fn departments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Department>> {
        let tctx = self.scope(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let db = db(ctx)?;
        let page = department_pages(ctx)?
            .get_or_read(tctx.tenant_id, args, || {
                service::list_departments(db, &tctx, args)
            })
            .await?;
        Ok(into_connection(page, |m| m.id, Department))
    }
    /// The tenant's staff. Tenant administrators only.
    async fn staff(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<StaffUser>> {
        let tctx = self.scope(ctx)?;
        let page =
            service::list_staff(db(ctx)?, &tctx, PageArgs::parse(ctx, first, after)?).await?;
        Ok(into_connection(page, |m| m.id, StaffUser))
    }
}

impl Tenant {
    /// The context for this tenant's nested fields: the request's own tenant, or any tenant for a
    /// platform administrator (who operates them all). Anyone else is refused.
    fn scope(&self, ctx: &Context<'_>) -> AppResult<TenantCtx> {
        let req = request_ctx(ctx)?;
        match &req.tenant {
            Some(t) if t.id == self.0.id => req.tenant(),
            _ if matches!(req.principal, Principal::PlatformAdmin { .. }) => Ok(TenantCtx {
                tenant_id: TenantId(self.0.id),
                tenant: std::sync::Arc::new(self.0.clone()),
                principal: req.principal.clone(),
            }),
            _ => Err(AppError::Forbidden(
                "select this tenant with X-Tenant to read its data",
            )),
        }
    }
}

/// Colours and logo for citizen-facing pages.
#[derive(SimpleObject)]
#[graphql(name = "Branding")]
pub struct BrandingOut {
    /// `#rrggbb`.
    pub primary_color: Option<String>,
    pub logo_url: Option<String>,
}

/// An organisational unit of a tenant (Bürgerbüro, Ordnungsamt, …).
pub struct Department(pub departments::Model);

#[Object]
impl Department {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Stable key, unique within the tenant.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Contact address shown to citizens.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
}

/// A staff account.
pub struct StaffUser(pub staff_users::Model);

#[Object]
impl StaffUser {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// Whether the account may log in.
    async fn active(&self) -> bool {
        self.0.status == "active"
    }
    /// Whether a password is set.
    async fn has_password(&self) -> bool {
        self.0.password_hash.is_some()
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    /// Tenant-wide roles, plus `STAFF` for members of any department.
    pub async fn roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Role>> {
        Ok(loader(ctx)?
            .load_one(RolesOf(TenantId(self.0.tenant_id), self.0.id))
            .await?
            .unwrap_or_default())
    }
    pub async fn memberships(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Membership>> {
        let rows = loader(ctx)?
            .load_one(MembershipsOf(TenantId(self.0.tenant_id), self.0.id))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Membership).collect())
    }
}

/// Membership of a staff user in a department.
pub struct Membership(pub staff_memberships::Model);

#[Object]
impl Membership {
    async fn role(&self) -> DepartmentRole {
        DepartmentRole::parse(&self.0.role)
    }
    pub async fn department(&self, ctx: &Context<'_>) -> async_graphql::Result<Department> {
        let dept = loader(ctx)?
            .load_one(DepartmentById(
                TenantId(self.0.tenant_id),
                self.0.department_id,
            ))
            .await?;
        Ok(Department(dept.ok_or(AppError::NotFound("department"))?))
    }
}

// ---- queries -----------------------------------------------------------------------------------

#[derive(Default)]
pub struct TenancyQuery;

#[Object]
impl TenancyQuery {
    /// The tenant selected by `X-Tenant`, the host's subdomain or the token.
    async fn tenant(&self, ctx: &Context<'_>) -> async_graphql::Result<Tenant> {
        Ok(Tenant((*tenant_ctx(ctx)?.tenant).clone()))
    }
    /// All tenants. Platform administrators only.
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Tenant>> {
        let req = request_ctx(ctx)?;
        let page =
            service::list_tenants(db(ctx)?, req, PageArgs::parse(ctx, first, after)?).await?;
        Ok(into_connection(page, |m| m.id, Tenant))
    }
    /// The active municipalities, by name, with the address of their portal. Public.
    async fn municipalities(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Municipality>> {
        Ok(service::active_tenants(db(ctx)?)
            .await?
            .into_iter()
            .map(|t| Municipality {
                slug: t.slug,
                name: t.name,
            })
            .collect())
    }
    /// A department of the current tenant.
    async fn department(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Department> {
        let id = DepartmentId(parse_id("id", &id)?);
        Ok(Department(
            service::get_department(db(ctx)?, &tenant_ctx(ctx)?, id).await?,
        ))
    }
    /// A staff user of the current tenant: administrators see all, staff themselves.
    async fn staff_user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<StaffUser> {
        let id = StaffUserId(parse_id("id", &id)?);
        Ok(StaffUser(
            service::get_staff(db(ctx)?, &tenant_ctx(ctx)?, id).await?,
        ))
    }
}

// ---- inputs and payloads ----------------------------------------------------------------------

/// A municipality on this platform, as its portal shows it.
#[derive(SimpleObject)]
pub struct Municipality {
    /// The tenant's key: its portal is `/t/<slug>/` (or the subdomain).
    pub slug: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct BrandingInput {
    /// `#rrggbb`.
    pub primary_color: Option<String>,
    /// An `https://` URL.
    pub logo_url: Option<String>,
}

#[derive(InputObject)]
pub struct CitizenLoginInput {
    pub issuer: String,
    pub client_id: String,
    pub jwks_url: String,
}

#[derive(InputObject)]
pub struct DepartmentSpecInput {
    pub key: String,
    pub name: String,
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct FirstAdminInput {
    pub email: String,
    pub display_name: String,
    /// At least 12 characters.
    pub password: String,
}

#[derive(InputObject)]
pub struct OnboardTenantInput {
    pub slug: String,
    pub name: String,
    /// Amtlicher Gemeindeschlüssel (8 digits).
    pub ags: String,
    #[graphql(default = "Europe/Berlin")]
    pub time_zone: String,
    pub branding: Option<BrandingInput>,
    pub citizen_login: Option<CitizenLoginInput>,
    #[graphql(default)]
    pub departments: Vec<DepartmentSpecInput>,
    pub first_admin: FirstAdminInput,
}

impl OnboardTenantInput {
    fn into_spec(self) -> AppResult<TenantSpec> {
        password::check_policy("input.firstAdmin.password", &self.first_admin.password)?;
        let departments = self
            .departments
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                DepartmentSpec::parse(
                    &format!("input.departments[{i}]"),
                    &d.key,
                    &d.name,
                    d.email.as_deref(),
                )
            })
            .collect::<AppResult<Vec<_>>>()?;
        let spec = TenantSpec {
            slug: Slug::parse("input.slug", &self.slug)?,
            name: Name::parse("input.name", &self.name)?,
            ags: Ags::parse("input.ags", &self.ags)?,
            time_zone: TimeZone::parse("input.timeZone", &self.time_zone)?,
            branding: self
                .branding
                .map(|b| Branding {
                    primary_color: b.primary_color,
                    logo_url: b.logo_url,
                })
                .unwrap_or_default(),
            settings: TenantSettings {
                oidc: self.citizen_login.map(|c| OidcSettings {
                    issuer: c.issuer,
                    client_id: c.client_id,
                    jwks_url: c.jwks_url,
                }),
            },
            departments,
            staff: vec![StaffSpec {
                email: Email::parse("input.firstAdmin.email", &self.first_admin.email)?,
                display_name: Name::parse(
                    "input.firstAdmin.displayName",
                    &self.first_admin.display_name,
                )?,
                password: PasswordSpec::Plain(self.first_admin.password),
                roles: vec![Role::TenantAdmin],
                departments: vec![],
            }],
            services: vec![],
            locations: vec![],
            appointment_offers: vec![],
        };
        spec.check().map_err(|e| match e {
            AppError::Validation(f) => AppError::Validation(
                f.into_iter()
                    .map(|(k, v)| (format!("input.{k}"), v))
                    .collect(),
            ),
            other => other,
        })?;
        Ok(spec)
    }
}

#[derive(SimpleObject)]
pub struct OnboardTenantPayload {
    pub tenant: TenantOut,
}

/// Payload wrapper: `Tenant` has resolvers, so payloads hold it through this newtype.
pub type TenantOut = Tenant;

#[derive(InputObject)]
pub struct CreateDepartmentInput {
    pub key: String,
    pub name: String,
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateDepartmentInput {
    pub id: ID,
    pub name: Option<String>,
    /// An empty string clears the address.
    pub email: Option<String>,
}

#[derive(InputObject)]
pub struct DeleteDepartmentInput {
    pub id: ID,
}

#[derive(SimpleObject)]
pub struct DepartmentPayload {
    pub department: Department,
}

#[derive(SimpleObject)]
pub struct DeleteDepartmentPayload {
    pub deleted_id: ID,
}

#[derive(InputObject)]
pub struct DepartmentMembershipInput {
    pub department_id: ID,
    #[graphql(default_with = "DepartmentRole::Staff")]
    pub role: DepartmentRole,
}

#[derive(InputObject)]
pub struct CreateStaffUserInput {
    pub email: String,
    pub display_name: String,
    /// Optional: without one, the account cannot log in yet.
    pub password: Option<String>,
    #[graphql(default)]
    pub roles: Vec<Role>,
    #[graphql(default)]
    pub memberships: Vec<DepartmentMembershipInput>,
}

#[derive(InputObject)]
pub struct UpdateStaffUserInput {
    pub id: ID,
    pub display_name: Option<String>,
    /// `false` disables the account and ends its sessions.
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct RoleInput {
    pub user_id: ID,
    pub role: Role,
}

#[derive(InputObject)]
pub struct AddMembershipInput {
    pub user_id: ID,
    pub department_id: ID,
    #[graphql(default_with = "DepartmentRole::Staff")]
    pub role: DepartmentRole,
}

#[derive(InputObject)]
pub struct RemoveMembershipInput {
    pub user_id: ID,
    pub department_id: ID,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

#[derive(SimpleObject)]
pub struct StaffUserPayload {
    pub staff_user: StaffUser,
}

#[derive(SimpleObject)]
pub struct ChangePasswordPayload {
    pub ok: bool,
}

// ---- mutations ---------------------------------------------------------------------------------

#[derive(Default)]
pub struct TenancyMutation;

#[Object]
impl TenancyMutation {
    /// Creates a tenant with its departments and first administrator. Platform administrators only.
    async fn onboard_tenant(
        &self,
        ctx: &Context<'_>,
        input: OnboardTenantInput,
    ) -> async_graphql::Result<OnboardTenantPayload> {
        let req = request_ctx(ctx)?;
        req.require_platform_admin()?;
        let spec = input.into_spec()?;
        let applied = onboarding::apply(
            db(ctx)?,
            &spec,
            &req.principal.audit_actor(),
            Mode::CreateOnly,
        )
        .await?;
        department_pages(ctx)?.forget(TenantId(applied.tenant.id))?;
        crate::marketplace::graphql::forget_marketplace_pages(ctx)?;
        Ok(OnboardTenantPayload {
            tenant: Tenant(applied.tenant),
        })
    }

    async fn create_department(
        &self,
        ctx: &Context<'_>,
        input: CreateDepartmentInput,
    ) -> async_graphql::Result<DepartmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let new = NewDepartment {
            key: Slug::parse("input.key", &input.key)?,
            name: Name::parse("input.name", &input.name)?,
            email: input
                .email
                .map(|e| Email::parse("input.email", &e))
                .transpose()?,
        };
        let created = service::create_department(db(ctx)?, &tctx, new).await?;
        department_pages(ctx)?.forget(tctx.tenant_id)?;
        Ok(DepartmentPayload {
            department: Department(created),
        })
    }

    async fn update_department(
        &self,
        ctx: &Context<'_>,
        input: UpdateDepartmentInput,
    ) -> async_graphql::Result<DepartmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = DepartmentId(parse_id("input.id", &input.id)?);
        let patch = DepartmentPatch {
            name: input
                .name
                .map(|n| Name::parse("input.name", &n))
                .transpose()?,
            email: match input.email {
                None => None,
                Some(e) if e.trim().is_empty() => Some(None),
                Some(e) => Some(Some(Email::parse("input.email", &e)?)),
            },
        };
        let updated = service::update_department(db(ctx)?, &tctx, id, patch).await?;
        department_pages(ctx)?.forget(tctx.tenant_id)?;
        Ok(DepartmentPayload {
            department: Department(updated),
        })
    }

    /// Deletes a department without members.
    async fn delete_department(
        &self,
        ctx: &Context<'_>,
        input: DeleteDepartmentInput,
    ) -> async_graphql::Result<DeleteDepartmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = DepartmentId(parse_id("input.id", &input.id)?);
        service::delete_department(db(ctx)?, &tctx, id).await?;
        department_pages(ctx)?.forget(tctx.tenant_id)?;
        Ok(DeleteDepartmentPayload {
            deleted_id: input.id,
        })
    }

    async fn create_staff_user(
        &self,
        ctx: &Context<'_>,
        input: CreateStaffUserInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        tctx.require_tenant_admin()?;
        for (i, role) in input.roles.iter().enumerate() {
            service::check_grantable(&format!("input.roles[{i}]"), *role)?;
        }
        let memberships = input
            .memberships
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Ok((
                    DepartmentId(parse_id(
                        &format!("input.memberships[{i}].departmentId"),
                        &m.department_id,
                    )?),
                    m.role,
                ))
            })
            .collect::<AppResult<Vec<_>>>()?;
        let email = Email::parse("input.email", &input.email)?;
        let display_name = Name::parse("input.displayName", &input.display_name)?;
        let password_hash = match input.password {
            Some(p) => {
                password::check_policy("input.password", &p)?;
                Some(password::hash(p).await?)
            }
            None => None,
        };
        let new = NewStaff {
            email,
            display_name,
            password_hash,
            roles: input.roles,
            departments: memberships,
        };
        Ok(StaffUserPayload {
            staff_user: StaffUser(service::create_staff(db(ctx)?, &tctx, new).await?),
        })
    }

    async fn update_staff_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateStaffUserInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = StaffUserId(parse_id("input.id", &input.id)?);
        let patch = StaffPatch {
            display_name: input
                .display_name
                .map(|n| Name::parse("input.displayName", &n))
                .transpose()?,
            active: input.active,
        };
        let user = service::update_staff(db(ctx)?, &tctx, id, patch).await?;
        sessions_changed(ctx, id)?;
        Ok(StaffUserPayload {
            staff_user: StaffUser(user),
        })
    }

    /// Grants `TENANT_ADMIN` or `AUTHOR`.
    async fn grant_role(
        &self,
        ctx: &Context<'_>,
        input: RoleInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = StaffUserId(parse_id("input.userId", &input.user_id)?);
        let user = service::grant_role(db(ctx)?, &tctx, id, input.role).await?;
        sessions_changed(ctx, id)?;
        Ok(StaffUserPayload {
            staff_user: StaffUser(user),
        })
    }

    /// Revokes `TENANT_ADMIN` or `AUTHOR`; the last administrator cannot be removed.
    async fn revoke_role(
        &self,
        ctx: &Context<'_>,
        input: RoleInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = StaffUserId(parse_id("input.userId", &input.user_id)?);
        let user = service::revoke_role(db(ctx)?, &tctx, id, input.role).await?;
        sessions_changed(ctx, id)?;
        Ok(StaffUserPayload {
            staff_user: StaffUser(user),
        })
    }

    async fn add_department_membership(
        &self,
        ctx: &Context<'_>,
        input: AddMembershipInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        let user = StaffUserId(parse_id("input.userId", &input.user_id)?);
        let dept = DepartmentId(parse_id("input.departmentId", &input.department_id)?);
        let changed = service::add_membership(db(ctx)?, &tctx, user, dept, input.role).await?;
        sessions_changed(ctx, user)?;
        Ok(StaffUserPayload {
            staff_user: StaffUser(changed),
        })
    }

    async fn remove_department_membership(
        &self,
        ctx: &Context<'_>,
        input: RemoveMembershipInput,
    ) -> async_graphql::Result<StaffUserPayload> {
        let tctx = tenant_ctx(ctx)?;
        let user = StaffUserId(parse_id("input.userId", &input.user_id)?);
        let dept = DepartmentId(parse_id("input.departmentId", &input.department_id)?);
        let changed = service::remove_membership(db(ctx)?, &tctx, user, dept).await?;
        sessions_changed(ctx, user)?;
        Ok(StaffUserPayload {
            staff_user: StaffUser(changed),
        })
    }

    /// Changes the signed-in staff user's password.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<ChangePasswordPayload> {
        let tctx = tenant_ctx(ctx)?;
        service::change_own_password(db(ctx)?, &tctx, input.current_password, input.new_password)
            .await?;
        Ok(ChangePasswordPayload { ok: true })
    }
}
