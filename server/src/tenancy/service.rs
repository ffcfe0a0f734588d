//! Tenancy services: the tenant directory, departments, staff, roles and memberships.
//!
//! Read top-down: lookups, then departments, then staff. Every function that touches tenant data
//! takes the [`TenantCtx`], checks permission first, and works in a [`TenantTx`] ([`begin_tenant`],
//! [`begin_tenant_write`] when it writes); every change writes its audit entry in that same
//! transaction.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use entity::{departments, staff_memberships, staff_roles, staff_users, tenants};

use super::types::{Email, Name, Slug};
use crate::audit;
use crate::auth::password;
use crate::context::{Principal, RequestCtx, Role, TenantCtx};
use crate::db::{TenantTx, begin_platform, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult, on_unique};
use crate::graphql::connection::{Page, PageArgs, fetch_page, fetch_tenant_page};
use crate::ids::{DepartmentId, StaffUserId, TenantId};

// ---------------------------------------------------------------------------------------------
// The tenant directory (not tenant-scoped: it is how a request finds its tenant).

pub async fn tenant_by_slug<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
) -> AppResult<Option<tenants::Model>> {
    Ok(tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(slug))
        .one(conn)
        .await?)
}

pub async fn tenant_by_id<C: ConnectionTrait>(
    conn: &C,
    id: TenantId,
) -> AppResult<Option<tenants::Model>> {
    Ok(tenants::Entity::find_by_id(id.0).one(conn).await?)
}

/// All tenants. Platform administrators only.
pub async fn list_tenants(
    db: &DatabaseConnection,
    req: &RequestCtx,
    args: PageArgs,
) -> AppResult<Page<tenants::Model>> {
    req.require_platform_admin()?;
    let txn = begin_platform(db).await?;
    let page = fetch_page(
        &txn,
        tenants::Entity::find(),
        tenants::Column::Id,
        |m| m.id,
        args,
    )
    .await?;
    txn.commit().await?;
    Ok(page)
}

/// The active municipalities by name: public (their portals are), for the platform's index.
pub async fn active_tenants(db: &DatabaseConnection) -> AppResult<Vec<tenants::Model>> {
    let txn = begin_platform(db).await?;
    let rows = tenants::Entity::find()
        .filter(tenants::Column::Status.eq("active"))
        .order_by_asc(tenants::Column::Name)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Departments. Public within the tenant (citizens see which office handles what).

#[derive(Debug)]
pub struct NewDepartment {
    pub key: Slug,
    pub name: Name,
    pub email: Option<Email>,
}

#[derive(Debug, Default)]
pub struct DepartmentPatch {
    pub name: Option<Name>,
    /// `Some(None)` clears the address.
    pub email: Option<Option<Email>>,
}

pub async fn list_departments(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    args: PageArgs,
) -> AppResult<Page<departments::Model>> {
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        departments::Entity::find(),
        departments::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

async fn find_department(txn: &TenantTx, id: DepartmentId) -> AppResult<departments::Model> {
    txn.select::<departments::Entity>()
        .filter(departments::Column::Id.eq(id.0))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("department"))
}

pub async fn get_department(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: DepartmentId,
) -> AppResult<departments::Model> {
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let dept = find_department(&txn, id).await?;
    txn.commit().await?;
    Ok(dept)
}

/// Inserts a department inside an open tenant transaction (also used by onboarding).
pub(crate) async fn insert_department(
    txn: &TenantTx,
    new: &NewDepartment,
) -> AppResult<departments::Model> {
    departments::ActiveModel {
        id: Set(DepartmentId::new().0),
        tenant_id: Set(txn.tenant().0),
        key: Set(new.key.to_string()),
        name: Set(new.name.to_string()),
        email: Set(new.email.as_ref().map(ToString::to_string)),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "departments_tenant_id_key_key",
            "key",
            "a department with this key exists",
        )
    })
}

pub async fn create_department(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    new: NewDepartment,
) -> AppResult<departments::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let dept = insert_department(&txn, &new).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "department.create",
        format!("department:{}", dept.id),
        serde_json::json!({ "key": dept.key }),
    )
    .await?;
    txn.commit().await?;
    Ok(dept)
}

pub async fn update_department(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: DepartmentId,
    patch: DepartmentPatch,
) -> AppResult<departments::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let dept = find_department(&txn, id).await?;
    let mut changed = Vec::new();
    let mut active = dept.clone().into_active_model();
    if let Some(name) = patch.name.filter(|n| n.as_str() != dept.name) {
        active.name = Set(name.to_string());
        changed.push("name");
    }
    if let Some(email) = patch.email {
        let email = email.map(|e| e.to_string());
        if email != dept.email {
            active.email = Set(email);
            changed.push("email");
        }
    }
    let dept = if changed.is_empty() {
        dept
    } else {
        active.update(&txn).await?
    };
    if !changed.is_empty() {
        audit::record(
            &txn,
            &ctx.actor(),
            "department.update",
            format!("department:{}", dept.id),
            serde_json::json!({ "changed": changed }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(dept)
}

/// Deletes a department that has no members (`CONFLICT` otherwise: reassign them first).
pub async fn delete_department(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: DepartmentId,
) -> AppResult<()> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let dept = find_department(&txn, id).await?;
    let members = txn
        .select::<staff_memberships::Entity>()
        .filter(staff_memberships::Column::DepartmentId.eq(dept.id))
        .count(&txn)
        .await?;
    if members > 0 {
        return Err(AppError::Conflict {
            message: format!("the department still has {members} member(s)"),
            field: Some("id".into()),
        });
    }
    departments::Entity::delete_by_id(dept.id)
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "department.delete",
        format!("department:{}", dept.id),
        serde_json::json!({ "key": dept.key }),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

pub async fn departments_by_ids(
    txn: &TenantTx,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, departments::Model>> {
    let rows = txn
        .select::<departments::Entity>()
        .filter(departments::Column::Id.is_in(ids.iter().copied()))
        .all(txn)
        .await?;
    Ok(rows.into_iter().map(|d| (d.id, d)).collect())
}

// ---------------------------------------------------------------------------------------------
// Staff, roles and memberships.

/// A department role of a staff member.
#[derive(async_graphql::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepartmentRole {
    /// Works on the department's tasks.
    Staff,
    /// Also assigns and decides.
    Lead,
}

impl DepartmentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Lead => "lead",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "lead" { Self::Lead } else { Self::Staff }
    }
}

/// Roles that are granted tenant-wide (department work is a membership instead).
pub fn check_grantable(field: &str, role: Role) -> AppResult<()> {
    match role {
        Role::TenantAdmin | Role::Author | Role::Cashier => Ok(()),
        _ => Err(AppError::invalid(
            field,
            "only TENANT_ADMIN, AUTHOR and CASHIER are granted; STAFF comes from department membership",
        )),
    }
}

#[derive(Debug)]
pub struct NewStaff {
    pub email: Email,
    pub display_name: Name,
    /// Already hashed (Argon2id PHC), or none: the account cannot log in yet.
    pub password_hash: Option<String>,
    pub roles: Vec<Role>,
    pub departments: Vec<(DepartmentId, DepartmentRole)>,
}

pub async fn list_staff(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    args: PageArgs,
) -> AppResult<Page<staff_users::Model>> {
    ctx.require_tenant_admin()?;
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        staff_users::Entity::find(),
        staff_users::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

pub(crate) async fn find_staff(txn: &TenantTx, id: StaffUserId) -> AppResult<staff_users::Model> {
    txn.select::<staff_users::Entity>()
        .filter(staff_users::Column::Id.eq(id.0))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("staff user"))
}

pub(crate) async fn find_staff_by_email(
    txn: &TenantTx,
    email: &str,
) -> AppResult<Option<staff_users::Model>> {
    Ok(txn
        .select::<staff_users::Entity>()
        .filter(staff_users::Column::Email.eq(email))
        .one(txn)
        .await?)
}

/// A staff user: tenant administrators see everyone, staff see themselves.
pub async fn get_staff(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: StaffUserId,
) -> AppResult<staff_users::Model> {
    let is_self = matches!(&ctx.principal, Principal::Staff { user_id, .. } if *user_id == id);
    if !is_self {
        ctx.require_tenant_admin()?;
    }
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let user = find_staff(&txn, id).await?;
    txn.commit().await?;
    Ok(user)
}

/// Inserts a staff user with roles and memberships inside an open tenant transaction.
pub(crate) async fn insert_staff(txn: &TenantTx, new: &NewStaff) -> AppResult<staff_users::Model> {
    let now = chrono::Utc::now();
    let user = staff_users::ActiveModel {
        id: Set(StaffUserId::new().0),
        tenant_id: Set(txn.tenant().0),
        email: Set(new.email.to_string()),
        display_name: Set(new.display_name.to_string()),
        password_hash: Set(new.password_hash.clone()),
        status: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "staff_users_tenant_id_email_key",
            "email",
            "a staff user with this email exists",
        )
    })?;
    for role in &new.roles {
        insert_role(txn, StaffUserId(user.id), *role).await?;
    }
    for (dept, role) in &new.departments {
        insert_membership(txn, StaffUserId(user.id), *dept, *role).await?;
    }
    Ok(user)
}

pub(crate) async fn insert_role(txn: &TenantTx, user: StaffUserId, role: Role) -> AppResult<()> {
    staff_roles::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(txn.tenant().0),
        user_id: Set(user.0),
        role: Set(role.as_str().to_owned()),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "staff_roles_tenant_id_user_id_role_key",
            "role",
            "the user already has this role",
        )
    })?;
    Ok(())
}

pub(crate) async fn insert_membership(
    txn: &TenantTx,
    user: StaffUserId,
    dept: DepartmentId,
    role: DepartmentRole,
) -> AppResult<()> {
    // The composite foreign key rejects another tenant's department too; checking first gives
    // the caller NOT_FOUND instead of a constraint error.
    find_department(txn, dept).await?;
    staff_memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(txn.tenant().0),
        user_id: Set(user.0),
        department_id: Set(dept.0),
        role: Set(role.as_str().to_owned()),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "staff_memberships_tenant_id_user_id_department_id_key",
            "departmentId",
            "the user is already a member",
        )
    })?;
    Ok(())
}

pub async fn create_staff(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    new: NewStaff,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let user = insert_staff(&txn, &new).await?;
    let roles: Vec<_> = new.roles.iter().map(|r| r.as_str()).collect();
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.create",
        format!("staff:{}", user.id),
        serde_json::json!({ "roles": roles, "departments": new.departments.len() }),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

#[derive(Debug, Default)]
pub struct StaffPatch {
    pub display_name: Option<Name>,
    pub active: Option<bool>,
}

pub async fn update_staff(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: StaffUserId,
    patch: StaffPatch,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let user = find_staff(&txn, id).await?;
    let mut active = user.clone().into_active_model();
    let mut changed = Vec::new();
    if let Some(name) = patch
        .display_name
        .filter(|n| n.as_str() != user.display_name)
    {
        active.display_name = Set(name.to_string());
        changed.push("displayName");
    }
    if let Some(want_active) = patch.active {
        let status = if want_active { "active" } else { "disabled" };
        if status != user.status {
            if !want_active {
                ensure_not_last_admin(&txn, id).await?;
            }
            active.status = Set(status.into());
            changed.push("status");
        }
    }
    if changed.is_empty() {
        txn.commit().await?;
        return Ok(user);
    }
    active.updated_at = Set(chrono::Utc::now());
    let user = active.update(&txn).await?;
    if user.status == "disabled" {
        crate::auth::revocation::revoke_all_sessions(&txn, Some(txn.tenant()), "staff", user.id)
            .await?;
    }
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.update",
        format!("staff:{}", user.id),
        serde_json::json!({ "changed": changed }),
    )
    .await?;
    txn.commit().await?;
    Ok(user)
}

/// Refuses a change that would leave the tenant without an active administrator.
async fn ensure_not_last_admin(txn: &TenantTx, user: StaffUserId) -> AppResult<()> {
    let admins: Vec<Uuid> = txn
        .select::<staff_roles::Entity>()
        .filter(staff_roles::Column::Role.eq(Role::TenantAdmin.as_str()))
        .all(txn)
        .await?
        .into_iter()
        .map(|r| r.user_id)
        .collect();
    if !admins.contains(&user.0) {
        return Ok(());
    }
    let others_active = txn
        .select::<staff_users::Entity>()
        .filter(staff_users::Column::Id.is_in(admins.into_iter().filter(|id| *id != user.0)))
        .filter(staff_users::Column::Status.eq("active"))
        .count(txn)
        .await?;
    if others_active == 0 {
        return Err(AppError::Conflict {
            message: "this is the tenant's last active administrator".into(),
            field: Some("userId".into()),
        });
    }
    Ok(())
}

pub async fn grant_role(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    user: StaffUserId,
    role: Role,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    check_grantable("role", role)?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let target = find_staff(&txn, user).await?;
    insert_role(&txn, user, role).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.grant_role",
        format!("staff:{}", target.id),
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

pub async fn revoke_role(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    user: StaffUserId,
    role: Role,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    check_grantable("role", role)?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let target = find_staff(&txn, user).await?;
    if role == Role::TenantAdmin {
        ensure_not_last_admin(&txn, user).await?;
    }
    let res = txn
        .delete_many::<staff_roles::Entity>()
        .filter(staff_roles::Column::UserId.eq(user.0))
        .filter(staff_roles::Column::Role.eq(role.as_str()))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(AppError::NotFound("role grant"));
    }
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.revoke_role",
        format!("staff:{}", target.id),
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

pub async fn add_membership(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    user: StaffUserId,
    dept: DepartmentId,
    role: DepartmentRole,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let target = find_staff(&txn, user).await?;
    insert_membership(&txn, user, dept, role).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.add_membership",
        format!("staff:{}", target.id),
        serde_json::json!({ "department": dept.to_string(), "role": role.as_str() }),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

pub async fn remove_membership(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    user: StaffUserId,
    dept: DepartmentId,
) -> AppResult<staff_users::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let target = find_staff(&txn, user).await?;
    let res = txn
        .delete_many::<staff_memberships::Entity>()
        .filter(staff_memberships::Column::UserId.eq(user.0))
        .filter(staff_memberships::Column::DepartmentId.eq(dept.0))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(AppError::NotFound("membership"));
    }
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.remove_membership",
        format!("staff:{}", target.id),
        serde_json::json!({ "department": dept.to_string() }),
    )
    .await?;
    txn.commit().await?;
    Ok(target)
}

/// Changes the caller's own password after checking the current one.
pub async fn change_own_password(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    current: String,
    new: String,
) -> AppResult<()> {
    let Principal::Staff { user_id, .. } = &ctx.principal else {
        return Err(AppError::Forbidden(
            "only staff accounts have passwords here",
        ));
    };
    password::check_policy("newPassword", &new)?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let user = find_staff(&txn, *user_id).await?;
    if !password::verify(current, user.password_hash.clone()).await? {
        return Err(AppError::invalid(
            "currentPassword",
            "is not your current password",
        ));
    }
    let hash = password::hash(new).await?;
    txn.update_many::<staff_users::Entity>()
        .col_expr(staff_users::Column::PasswordHash, Expr::value(hash))
        .col_expr(
            staff_users::Column::UpdatedAt,
            Expr::value(chrono::Utc::now()),
        )
        .filter(staff_users::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "staff.change_password",
        format!("staff:{}", user.id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Tenant-wide roles per user, plus `Staff` for members of any department.
pub async fn roles_of(txn: &TenantTx, users: &[Uuid]) -> AppResult<HashMap<Uuid, Vec<Role>>> {
    let memberships = memberships_of(txn, users).await?;
    roles_given(txn, users, &memberships).await
}

/// [`roles_of`] for a caller that has loaded the users' memberships already.
pub async fn roles_given(
    txn: &TenantTx,
    users: &[Uuid],
    memberships: &HashMap<Uuid, Vec<staff_memberships::Model>>,
) -> AppResult<HashMap<Uuid, Vec<Role>>> {
    let mut out: HashMap<Uuid, Vec<Role>> = users.iter().map(|u| (*u, Vec::new())).collect();
    let grants = txn
        .select::<staff_roles::Entity>()
        .filter(staff_roles::Column::UserId.is_in(users.iter().copied()))
        .all(txn)
        .await?;
    for g in grants {
        if let (Some(role), Some(list)) = (Role::parse(&g.role), out.get_mut(&g.user_id)) {
            list.push(role);
        }
    }
    for (user, list) in &mut out {
        if memberships.get(user).is_some_and(|m| !m.is_empty()) {
            list.push(Role::Staff);
        }
        list.sort_by_key(|r| r.as_str());
        list.dedup();
    }
    Ok(out)
}

pub async fn memberships_of(
    txn: &TenantTx,
    users: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<staff_memberships::Model>>> {
    let rows = txn
        .select::<staff_memberships::Entity>()
        .filter(staff_memberships::Column::UserId.is_in(users.iter().copied()))
        .all(txn)
        .await?;
    let mut out: HashMap<Uuid, Vec<staff_memberships::Model>> =
        users.iter().map(|u| (*u, Vec::new())).collect();
    for m in rows {
        out.entry(m.user_id).or_default().push(m);
    }
    Ok(out)
}
