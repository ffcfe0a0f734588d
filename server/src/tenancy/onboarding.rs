//! Declarative onboarding: `tenants/<slug>.toml` → [`TenantSpec`] → [`apply`].
//!
//! Applying is idempotent and additive: it creates what is missing and updates what differs
//! (tenant fields, department names, staff display names, missing roles and memberships), and never
//! deletes what was added through the API, nor changes an existing password. Applying twice
//! reports `unchanged`. The same [`apply`] serves `server tenants apply`, start-up and the
//! `onboardTenant` mutation (which refuses an existing slug).
//!
//! After the tenants, [`apply_all`] applies the marketplace seeds and each tenant file's services
//! and appointments: onboarding calls the other domains' seeds, which never call onboarding.

use std::path::{Path, PathBuf};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, IntoActiveModel, QueryFilter, Set,
};
use serde::Deserialize;

use entity::{departments, staff_memberships, tenants};

use super::service::{self, DepartmentRole, NewDepartment, NewStaff};
use super::types::{Ags, Branding, Email, Name, Slug, TenantSettings, TimeZone};
use crate::audit;
use crate::auth::password;
use crate::context::Role;
use crate::db::{TenantTx, begin_platform_write};
use crate::error::{AppError, AppResult, FileError, on_unique};
use crate::ids::{DepartmentId, StaffUserId, TenantId};

// ---- the file format -------------------------------------------------------------------------

/// `tenants/<slug>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub slug: String,
    pub name: String,
    pub ags: String,
    #[serde(default = "default_zone")]
    pub time_zone: String,
    #[serde(default)]
    pub branding: Branding,
    #[serde(default)]
    pub settings: TenantSettings,
    #[serde(default)]
    pub departments: Vec<DepartmentFile>,
    pub first_admin: StaffFile,
    #[serde(default)]
    pub staff: Vec<StaffFile>,
    /// Services forked from marketplace templates, with local changes.
    #[serde(default)]
    pub services: Vec<crate::services::seed::ServiceFile>,
    /// Places for appointments, with counters and opening calendars.
    #[serde(default)]
    pub locations: Vec<crate::appointments::seed::LocationFile>,
    /// Services of this file bookable at its locations.
    #[serde(default)]
    pub appointment_offers: Vec<crate::appointments::seed::OfferFile>,
}

fn default_zone() -> String {
    "Europe/Berlin".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentFile {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffFile {
    pub email: String,
    pub display_name: String,
    /// Set only when the account is created; for demos. Production files use `password_hash`.
    #[serde(default)]
    pub initial_password: Option<String>,
    /// An Argon2id PHC string, set only when the account is created.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// `tenant_admin`, `author`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Department keys; membership role `staff`.
    #[serde(default)]
    pub departments: Vec<String>,
}

// ---- the parsed spec ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct TenantSpec {
    pub slug: Slug,
    pub name: Name,
    pub ags: Ags,
    pub time_zone: TimeZone,
    pub branding: Branding,
    pub settings: TenantSettings,
    pub departments: Vec<DepartmentSpec>,
    /// The first entry is the first administrator.
    pub staff: Vec<StaffSpec>,
    /// Applied after the marketplace seeds (see [`crate::services::seed`]).
    pub services: Vec<crate::services::seed::ServiceSpec>,
    /// Applied after the services (see [`crate::appointments::seed`]).
    pub locations: Vec<crate::appointments::seed::LocationFile>,
    pub appointment_offers: Vec<crate::appointments::seed::OfferFile>,
}

#[derive(Debug, Clone)]
pub struct DepartmentSpec {
    pub key: Slug,
    pub name: Name,
    pub email: Option<Email>,
}

impl DepartmentSpec {
    /// Parses one department; `field` is its path (`departments[0]`, `input.departments[0]`).
    pub fn parse(field: &str, key: &str, name: &str, email: Option<&str>) -> AppResult<Self> {
        Ok(Self {
            key: Slug::parse(&format!("{field}.key"), key)?,
            name: Name::parse(&format!("{field}.name"), name)?,
            email: email
                .map(|e| Email::parse(&format!("{field}.email"), e))
                .transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub enum PasswordSpec {
    None,
    Plain(String),
    Hash(String),
}

#[derive(Debug, Clone)]
pub struct StaffSpec {
    pub email: Email,
    pub display_name: Name,
    pub password: PasswordSpec,
    pub roles: Vec<Role>,
    pub departments: Vec<Slug>,
}

impl TenantFile {
    /// Parses and cross-checks the file; errors name the key at fault.
    pub fn into_spec(self) -> AppResult<TenantSpec> {
        let mut staff = vec![parse_staff("first_admin", self.first_admin, true)?];
        for (i, s) in self.staff.into_iter().enumerate() {
            staff.push(parse_staff(&format!("staff[{i}]"), s, false)?);
        }
        let departments = self
            .departments
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                DepartmentSpec::parse(
                    &format!("departments[{i}]"),
                    &d.key,
                    &d.name,
                    d.email.as_deref(),
                )
            })
            .collect::<AppResult<Vec<_>>>()?;
        let spec = TenantSpec {
            slug: Slug::parse("slug", &self.slug)?,
            name: Name::parse("name", &self.name)?,
            ags: Ags::parse("ags", &self.ags)?,
            time_zone: TimeZone::parse("time_zone", &self.time_zone)?,
            branding: self.branding,
            settings: self.settings,
            departments,
            staff,
            services: self
                .services
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.parse(&format!("services[{i}]")))
                .collect::<AppResult<Vec<_>>>()?,
            locations: self.locations,
            appointment_offers: self.appointment_offers,
        };
        crate::appointments::seed::check(&spec.locations, &spec.appointment_offers)?;
        spec.check()?;
        Ok(spec)
    }
}

fn parse_staff(field: &str, s: StaffFile, first_admin: bool) -> AppResult<StaffSpec> {
    let password = match (s.initial_password, s.password_hash) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                field,
                "give initial_password or password_hash, not both",
            ));
        }
        (Some(p), None) => {
            password::check_policy(&format!("{field}.initial_password"), &p)?;
            PasswordSpec::Plain(p)
        }
        (None, Some(h)) if h.starts_with("$argon2id$") => PasswordSpec::Hash(h),
        (None, Some(_)) => {
            return Err(AppError::invalid(
                format!("{field}.password_hash"),
                "must be an Argon2id PHC string",
            ));
        }
        (None, None) => PasswordSpec::None,
    };
    let mut roles = s
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let f = format!("{field}.roles[{i}]");
            let role = Role::parse(r).ok_or_else(|| AppError::invalid(&f, "unknown role"))?;
            service::check_grantable(&f, role)?;
            Ok(role)
        })
        .collect::<AppResult<Vec<_>>>()?;
    if first_admin && !roles.contains(&Role::TenantAdmin) {
        roles.push(Role::TenantAdmin);
    }
    Ok(StaffSpec {
        email: Email::parse(&format!("{field}.email"), &s.email)?,
        display_name: Name::parse(&format!("{field}.display_name"), &s.display_name)?,
        password,
        roles,
        departments: s
            .departments
            .iter()
            .enumerate()
            .map(|(i, k)| Slug::parse(&format!("{field}.departments[{i}]"), k))
            .collect::<AppResult<Vec<_>>>()?,
    })
}

impl TenantSpec {
    /// Cross-field checks: unique keys and emails, known department keys, branding, settings.
    pub fn check(&self) -> AppResult<()> {
        self.branding.check("branding")?;
        self.settings.check("settings")?;
        let mut keys = std::collections::HashSet::new();
        for (i, d) in self.departments.iter().enumerate() {
            if !keys.insert(d.key.as_str()) {
                return Err(AppError::invalid(
                    format!("departments[{i}].key"),
                    "is used twice",
                ));
            }
        }
        let mut emails = std::collections::HashSet::new();
        for (i, s) in self.staff.iter().enumerate() {
            if !emails.insert(s.email.as_str()) {
                return Err(AppError::invalid(
                    format!("staff[{i}].email"),
                    "is used twice",
                ));
            }
            for (j, k) in s.departments.iter().enumerate() {
                if !keys.contains(k.as_str()) {
                    return Err(AppError::invalid(
                        format!("staff[{i}].departments[{j}]"),
                        "names no department of this file",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Reads every `*.toml` in `dir`, sorted by name; the file name must be `<slug>.toml`.
pub fn load_dir(dir: &Path) -> Result<Vec<TenantSpec>, FileError> {
    let err = |file: &Path, message: String| FileError {
        file: file.to_owned(),
        message,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files.iter().map(|f| load_file(f)).collect()
}

pub fn load_file(file: &Path) -> Result<TenantSpec, FileError> {
    let err = |message: String| FileError {
        file: file.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
    let parsed: TenantFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let spec = parsed.into_spec().map_err(|e| err(e.describe()))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem != spec.slug.as_str() {
        return Err(err(format!(
            "the file must be named {}.toml after its slug",
            spec.slug
        )));
    }
    Ok(spec)
}

// ---- applying ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create or update (files).
    Upsert,
    /// Create only; an existing slug is `CONFLICT` (the GraphQL mutation).
    CreateOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated(Vec<String>),
    Unchanged,
}

#[derive(Debug)]
pub struct Applied {
    pub tenant: tenants::Model,
    pub outcome: Outcome,
}

/// Applies a spec in one transaction, with one audit entry when anything changed.
pub async fn apply(
    db: &DatabaseConnection,
    spec: &TenantSpec,
    actor: &str,
    mode: Mode,
) -> AppResult<Applied> {
    // Hash new passwords before the transaction: hashing is slow and needs no lock.
    let mut hashes = Vec::with_capacity(spec.staff.len());
    for s in &spec.staff {
        hashes.push(match &s.password {
            PasswordSpec::None => None,
            PasswordSpec::Hash(h) => Some(h.clone()),
            PasswordSpec::Plain(p) => Some(password::hash(p.clone()).await?),
        });
    }

    let txn = begin_platform_write(db).await?;
    let now = chrono::Utc::now();
    let branding =
        serde_json::to_value(&spec.branding).map_err(|e| AppError::internal("branding", e))?;
    let settings =
        serde_json::to_value(&spec.settings).map_err(|e| AppError::internal("settings", e))?;
    let mut changes: Vec<String> = Vec::new();

    let (tenant, created) = match service::tenant_by_slug(&txn, spec.slug.as_str()).await? {
        Some(_) if mode == Mode::CreateOnly => {
            return Err(AppError::conflict("slug", "a tenant with this slug exists"));
        }
        Some(existing) => {
            let mut active = existing.clone().into_active_model();
            let mut diff = |name: &str, differs: bool| {
                if differs {
                    changes.push(format!("tenant.{name}"));
                }
                differs
            };
            if diff("name", existing.name != spec.name.as_str()) {
                active.name = Set(spec.name.to_string());
            }
            if diff("ags", existing.ags != spec.ags.as_str()) {
                active.ags = Set(spec.ags.to_string());
            }
            if diff("time_zone", existing.time_zone != spec.time_zone.as_str()) {
                active.time_zone = Set(spec.time_zone.to_string());
            }
            if diff("branding", existing.branding != branding) {
                active.branding = Set(branding.clone());
            }
            if diff("settings", existing.settings != settings) {
                active.settings = Set(settings.clone());
            }
            let tenant = if changes.is_empty() {
                existing
            } else {
                active.updated_at = Set(now);
                active.update(&txn).await?
            };
            (tenant, false)
        }
        None => {
            let tenant = tenants::ActiveModel {
                id: Set(TenantId::new().0),
                slug: Set(spec.slug.to_string()),
                name: Set(spec.name.to_string()),
                ags: Set(spec.ags.to_string()),
                time_zone: Set(spec.time_zone.to_string()),
                branding: Set(branding),
                settings: Set(settings),
                status: Set("active".into()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(|e| {
                on_unique(
                    e,
                    "tenants_slug_key",
                    "slug",
                    "a tenant with this slug exists",
                )
            })?;
            (tenant, true)
        }
    };
    // From here on the transaction works on the tenant's own rows.
    let txn = TenantTx::bind(txn, TenantId(tenant.id)).await?;

    // Departments by key.
    let mut dept_ids = std::collections::HashMap::new();
    for d in &spec.departments {
        let existing = txn
            .select::<departments::Entity>()
            .filter(departments::Column::Key.eq(d.key.as_str()))
            .one(&txn)
            .await?;
        let id = match existing {
            None => {
                let new = NewDepartment {
                    key: d.key.clone(),
                    name: d.name.clone(),
                    email: d.email.clone(),
                };
                changes.push(format!("department.{}.create", d.key));
                service::insert_department(&txn, &new).await?.id
            }
            Some(row) => {
                let email = d.email.as_ref().map(ToString::to_string);
                if row.name != d.name.as_str() || row.email != email {
                    changes.push(format!("department.{}.update", d.key));
                    let mut active = row.clone().into_active_model();
                    active.name = Set(d.name.to_string());
                    active.email = Set(email);
                    active.update(&txn).await?;
                }
                row.id
            }
        };
        dept_ids.insert(d.key.as_str(), DepartmentId(id));
    }

    // Staff by email.
    for (s, hash) in spec.staff.iter().zip(hashes) {
        let depts: Vec<DepartmentId> = s
            .departments
            .iter()
            .filter_map(|k| dept_ids.get(k.as_str()).copied())
            .collect();
        match service::find_staff_by_email(&txn, s.email.as_str()).await? {
            None => {
                let new = NewStaff {
                    email: s.email.clone(),
                    display_name: s.display_name.clone(),
                    password_hash: hash,
                    roles: s.roles.clone(),
                    departments: depts.iter().map(|d| (*d, DepartmentRole::Staff)).collect(),
                };
                service::insert_staff(&txn, &new).await?;
                changes.push(format!("staff.{}.create", s.email));
            }
            Some(user) => {
                let uid = StaffUserId(user.id);
                if user.display_name != s.display_name.as_str() {
                    let mut active = user.clone().into_active_model();
                    active.display_name = Set(s.display_name.to_string());
                    active.updated_at = Set(now);
                    active.update(&txn).await?;
                    changes.push(format!("staff.{}.update", s.email));
                }
                let have = service::roles_of(&txn, &[user.id])
                    .await?
                    .remove(&user.id)
                    .unwrap_or_default();
                for role in s.roles.iter().filter(|r| !have.contains(r)) {
                    service::insert_role(&txn, uid, *role).await?;
                    changes.push(format!("staff.{}.role.{}", s.email, role.as_str()));
                }
                let memberships: Vec<uuid::Uuid> = txn
                    .select::<staff_memberships::Entity>()
                    .filter(staff_memberships::Column::UserId.eq(user.id))
                    .all(&txn)
                    .await?
                    .into_iter()
                    .map(|m| m.department_id)
                    .collect();
                for dept in depts.iter().filter(|d| !memberships.contains(&d.0)) {
                    service::insert_membership(&txn, uid, *dept, DepartmentRole::Staff).await?;
                    changes.push(format!("staff.{}.membership", s.email));
                }
            }
        }
    }

    let outcome = if created {
        Outcome::Created
    } else if changes.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Updated(changes.clone())
    };
    if outcome != Outcome::Unchanged {
        let action = if created {
            "tenant.onboard"
        } else {
            "tenant.update"
        };
        // Emails in `changes` are staff identifiers the tenant admin sees anyway; no passwords.
        audit::record(
            &txn,
            actor,
            action,
            format!("tenant:{}", tenant.id),
            serde_json::json!({ "changes": changes }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(Applied { tenant, outcome })
}

/// Applies `<tenants dir>/marketplace` (templates and versions), then the services of every
/// tenant file. Returns one report line per change. Run after the tenants themselves.
pub async fn apply_all(
    db: &DatabaseConnection,
    tenants_dir: &std::path::Path,
    tenants: &[TenantSpec],
) -> anyhow::Result<Vec<String>> {
    use crate::marketplace::seed::{self as templates, SeedOutcome};
    let mut report = Vec::new();
    let marketplace = tenants_dir.join("marketplace");
    if marketplace.is_dir() {
        for seed in templates::load_dir(&marketplace)? {
            let outcome = templates::apply(db, &seed)
                .await
                .map_err(|e| anyhow::anyhow!("template {}: {}", seed.slug, e.describe()))?;
            match outcome {
                SeedOutcome::Created => report.push(format!("template {}: created", seed.slug)),
                SeedOutcome::Published(v) => report.push(format!(
                    "template {}: published {}",
                    seed.slug,
                    v.join(", ")
                )),
                SeedOutcome::Unchanged => {}
            }
        }
    }
    for tenant in tenants {
        if tenant.services.is_empty() && tenant.locations.is_empty() {
            continue;
        }
        let ctx = crate::marketplace::seed::system_ctx(db, tenant.slug.as_str(), "onboarding")
            .await
            .map_err(|e| anyhow::anyhow!("tenant {}: {e}", tenant.slug))?;
        for spec in &tenant.services {
            let created = crate::services::seed::apply(db, &ctx, spec)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "tenant {} service {}: {}",
                        tenant.slug,
                        spec.slug,
                        e.describe()
                    )
                })?;
            if created {
                report.push(format!("{}: service {} created", tenant.slug, spec.slug));
            }
        }
        let lines = crate::appointments::seed::apply(
            db,
            &ctx,
            &tenant.locations,
            &tenant.appointment_offers,
        )
        .await
        .map_err(|e| anyhow::anyhow!("tenant {}: {}", tenant.slug, e.describe()))?;
        report.extend(lines.into_iter().map(|l| format!("{}: {l}", tenant.slug)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(extra: &str) -> String {
        format!(
            r#"slug = "musterstadt"
name = "Musterstadt"
ags = "09162000"
[[departments]]
key = "buergerbuero"
name = "Bürgerbüro"
[first_admin]
email = "admin@musterstadt.example"
display_name = "Anna Admin"
initial_password = "correct horse battery"
{extra}"#
        )
    }

    #[test]
    fn a_valid_file_parses_and_the_first_admin_is_admin() {
        let spec: TenantFile = toml::from_str(&file("")).expect("toml");
        let spec = spec.into_spec().expect("valid");
        assert_eq!(spec.slug.as_str(), "musterstadt");
        assert_eq!(spec.staff[0].roles, vec![Role::TenantAdmin]);
    }

    #[test]
    fn unknown_keys_and_dangling_departments_are_named() {
        let err = toml::from_str::<TenantFile>(&file("colour = \"red\"")).expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
        let spec: TenantFile = toml::from_str(&file("departments = [\"nowhere\"]")).expect("toml");
        match spec.into_spec() {
            Err(AppError::Validation(f)) => {
                assert!(f.contains_key("staff[0].departments[0]"), "{f:?}")
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
}
