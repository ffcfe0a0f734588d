//! Drafts, submission, routing, workflow and the timeline of applications.
//!
//! Every change runs in one tenant transaction that also appends its timeline event and queues its
//! notifications; the new status reaches subscribers after the commit ([`super::live`]). Readers
//! never see half of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike as _, Utc};
use entity::{
    application_events, application_tasks, applications, departments, drafts, service_revisions,
    staff_memberships, tenant_services,
};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use serde_json::Value;
use uuid::Uuid;

use super::live::{StatusChange, StatusHub};
use super::rules::{self, FeeLine, FormValidator, Mover};
use crate::attachments::service as attachments;
use crate::auth::tokens::{constant_time_eq, hash_secret, random_secret};
use crate::content::ServiceContent;
use crate::context::{Principal, Role, TenantCtx};
use crate::db::{Db, begin_tenant, begin_tenant_write, scoped};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Page, PageArgs, fetch_tenant_page};
use crate::ids::TenantId;
use crate::messaging::outbox::{self, Email};

/// A service revision as applications use it: parsed content and its compiled form schema.
/// Revisions never change, so they are cached by (service, revision).
pub struct Pinned {
    pub content: ServiceContent,
    pub validator: FormValidator,
}

/// Process-wide cache of [`Pinned`] revisions (bounded; cleared when full).
#[derive(Default)]
pub struct PinnedCache(Mutex<HashMap<(Uuid, i64), Arc<Pinned>>>);

impl std::fmt::Debug for PinnedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedCache")
    }
}

const PINNED_CACHE_MAX: usize = 512;

/// What the application side of the server needs besides the database.
#[derive(Clone, Debug)]
pub struct Deps {
    pub db: Db,
    pub pinned: Arc<PinnedCache>,
    pub live: StatusHub,
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Object storage of attachments.
    pub store: Arc<dyn crate::storage::ObjectStore>,
}

impl Deps {
    /// The pinned revision `revision` of `service`, read in `conn` (the tenant's transaction).
    pub async fn pinned<C: ConnectionTrait>(
        &self,
        conn: &C,
        tenant: TenantId,
        service: Uuid,
        revision: i64,
    ) -> AppResult<Arc<Pinned>> {
        if let Some(p) = self.cached(service, revision) {
            return Ok(p);
        }
        let row = scoped::<service_revisions::Entity>(tenant)
            .filter(service_revisions::Column::ServiceId.eq(service))
            .filter(service_revisions::Column::Revision.eq(revision))
            .one(conn)
            .await?
            .ok_or(AppError::NotFound("service revision"))?;
        let content: ServiceContent = serde_json::from_value(row.content)
            .map_err(|e| AppError::internal("reading a stored service revision", e))?;
        let validator = FormValidator::compile(&content.form.schema)?;
        let pinned = Arc::new(Pinned { content, validator });
        let mut cache = self
            .pinned
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= PINNED_CACHE_MAX {
            cache.clear();
        }
        cache.insert((service, revision), pinned.clone());
        Ok(pinned)
    }

    /// [`Deps::pinned`] outside a transaction: a cache miss reads in one of its own.
    pub async fn pinned_now(
        &self,
        tenant: TenantId,
        service: Uuid,
        revision: i64,
    ) -> AppResult<Arc<Pinned>> {
        if let Some(p) = self.cached(service, revision) {
            return Ok(p);
        }
        let txn = begin_tenant(&self.db, tenant).await?;
        let pinned = self.pinned(&txn, tenant, service, revision).await?;
        txn.commit().await?;
        Ok(pinned)
    }

    fn cached(&self, service: Uuid, revision: i64) -> Option<Arc<Pinned>> {
        self.pinned
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(service, revision))
            .cloned()
    }

    /// Commits `txn`, then delivers the announced changes and wakes the outbox worker.
    pub(crate) async fn finish(
        &self,
        txn: DatabaseTransaction,
        changes: Vec<StatusChange>,
    ) -> AppResult<()> {
        txn.commit().await?;
        self.committed(changes);
        Ok(())
    }

    /// After a commit: delivers the announced changes and wakes the outbox worker.
    pub(crate) fn committed(&self, changes: Vec<StatusChange>) {
        for c in changes {
            self.live.committed(c);
        }
        self.outbox_wake.notify_one();
    }
}

// ---- who is asking -----------------------------------------------------------------------------

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
pub async fn departments_of<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    user: Uuid,
) -> AppResult<Vec<Uuid>> {
    Ok(scoped::<staff_memberships::Entity>(tenant)
        .filter(staff_memberships::Column::UserId.eq(user))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.department_id)
        .collect())
}

/// Tenant administrators, the server itself, and platform administrators under a break-glass
/// grant for this tenant.
fn is_admin(ctx: &TenantCtx) -> bool {
    match &ctx.principal {
        Principal::PlatformAdmin { .. } => matches!(ctx.break_glass(), Ok(Some(_))),
        Principal::System(_) => true,
        p => p.has_role(Role::TenantAdmin),
    }
}

/// Does the caller own something carrying these owner columns?
fn owns(
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
pub async fn viewer_of<C: ConnectionTrait>(
    conn: &C,
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
        let mine = departments_of(conn, ctx.tenant_id, user_id.0).await?;
        let assigned = scoped::<application_tasks::Entity>(ctx.tenant_id)
            .filter(application_tasks::Column::ApplicationId.eq(app.id))
            .filter(application_tasks::Column::DepartmentId.is_in(mine))
            .one(conn)
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

fn citizen_of(ctx: &TenantCtx) -> (Option<String>, Option<String>) {
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

/// A display name for the timeline.
fn actor_name(ctx: &TenantCtx) -> Option<String> {
    match &ctx.principal {
        Principal::Citizen(c) => c.name.clone(),
        _ => None,
    }
}

async fn live_service<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    slug: &str,
) -> AppResult<tenant_services::Model> {
    match scoped::<tenant_services::Entity>(tenant)
        .filter(tenant_services::Column::Slug.eq(slug))
        .one(conn)
        .await?
    {
        Some(s) if s.status == "live" => Ok(s),
        Some(_) => Err(AppError::conflict(
            "input.serviceSlug",
            "this service does not take applications (it is not live)",
        )),
        None => Err(AppError::NotFound("service")),
    }
}

// ---- drafts ------------------------------------------------------------------------------------

/// Form data for a service, possibly continuing a draft: what `saveDraft` and
/// `submitApplication` take.
pub struct FormInput {
    pub service_slug: String,
    pub data: Value,
    pub draft_id: Option<Uuid>,
    /// The draft's access token (anonymous citizens).
    pub access_token: Option<String>,
}

/// What drafts and submissions begin with: a citizen, a form-shaped payload, a write
/// transaction, and the live service it is for.
async fn open_form(
    deps: &Deps,
    ctx: &TenantCtx,
    input: &FormInput,
) -> AppResult<(DatabaseTransaction, tenant_services::Model)> {
    require_applicant_side(ctx)?;
    rules::check_shape("data", &input.data)?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let service = live_service(&txn, ctx.tenant_id, &input.service_slug).await?;
    Ok((txn, service))
}

/// Creates or updates a draft. Returns the draft and, when an anonymous citizen created it, the
/// access token of its resume link (shown once; only its hash is stored).
pub async fn save_draft(
    deps: &Deps,
    ctx: &TenantCtx,
    input: FormInput,
) -> AppResult<(drafts::Model, Option<String>)> {
    let (txn, service) = open_form(deps, ctx, &input).await?;
    let now = Utc::now();
    let (draft, token) = match input.draft_id {
        Some(id) => {
            let draft = owned_draft(&txn, ctx, id, input.access_token.as_deref()).await?;
            if draft.service_id != service.id {
                return Err(AppError::invalid(
                    "input.serviceSlug",
                    "the draft belongs to another service",
                ));
            }
            let mut active: drafts::ActiveModel = draft.into();
            active.data = Set(input.data);
            active.updated_at = Set(now);
            (active.update(&txn).await?, None)
        }
        None => {
            let (issuer, subject) = citizen_of(ctx);
            let token = issuer.is_none().then(random_secret);
            let draft = drafts::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id.0),
                service_id: Set(service.id),
                data: Set(input.data),
                citizen_issuer: Set(issuer),
                citizen_subject: Set(subject),
                access_hash: Set(token.as_deref().map(hash_secret)),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            (draft, token)
        }
    };
    txn.commit().await?;
    Ok((draft, token))
}

pub(crate) async fn owned_draft<C: ConnectionTrait>(
    conn: &C,
    ctx: &TenantCtx,
    id: Uuid,
    access_token: Option<&str>,
) -> AppResult<drafts::Model> {
    let draft = scoped::<drafts::Entity>(ctx.tenant_id)
        .filter(drafts::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("draft"))?;
    if owns(
        ctx,
        draft.citizen_issuer.as_deref(),
        draft.citizen_subject.as_deref(),
        draft.access_hash.as_deref(),
        access_token,
    ) {
        Ok(draft)
    } else if matches!(ctx.principal, Principal::Anonymous) && access_token.is_none() {
        Err(AppError::Unauthenticated)
    } else {
        Err(AppError::NotFound("draft"))
    }
}

pub async fn draft(
    deps: &Deps,
    ctx: &TenantCtx,
    id: Uuid,
    access_token: Option<&str>,
) -> AppResult<(drafts::Model, String)> {
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let draft = owned_draft(&txn, ctx, id, access_token).await?;
    let slug = scoped::<tenant_services::Entity>(ctx.tenant_id)
        .filter(tenant_services::Column::Id.eq(draft.service_id))
        .one(&txn)
        .await?
        .map(|s| s.slug)
        .unwrap_or_default();
    txn.commit().await?;
    Ok((draft, slug))
}

// ---- submission --------------------------------------------------------------------------------

/// Validates and submits an application: reference number, tasks for the routed departments,
/// the first timeline event, notifications — one transaction. Returns the application and, for
/// an anonymous applicant, the access token of its status link.
pub async fn submit(
    deps: &Deps,
    ctx: &TenantCtx,
    input: FormInput,
) -> AppResult<(applications::Model, Option<String>)> {
    let (txn, service) = open_form(deps, ctx, &input).await?;
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, service.id, service.current_revision)
        .await?;
    pinned.validator.check("data", &input.data)?;
    if let Some(draft_id) = input.draft_id {
        let draft = owned_draft(&txn, ctx, draft_id, input.access_token.as_deref()).await?;
        if draft.service_id != service.id {
            return Err(AppError::invalid(
                "input.draftId",
                "the draft belongs to another service",
            ));
        }
    }
    // Documents come with the draft: its files must include every required one.
    let files = attachments::of_draft_in(&txn, ctx.tenant_id, input.draft_id).await?;
    let missing = attachments::missing_documents(&pinned.content, &input.data, &files);
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }

    // Departments first: a routing rule naming a department that no longer exists is the
    // municipality's error, not the citizen's — say so instead of losing the application.
    let routes = rules::route(&pinned.content, &input.data);
    let keys: Vec<&str> = routes.iter().map(|(d, _)| d.as_str()).collect();
    let depts: HashMap<String, departments::Model> = scoped::<departments::Entity>(ctx.tenant_id)
        .filter(departments::Column::Key.is_in(keys))
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| (d.key.clone(), d))
        .collect();
    if let Some((missing, _)) = routes.iter().find(|(d, _)| !depts.contains_key(d)) {
        return Err(AppError::conflict(
            "input.serviceSlug",
            format!(
                "this service routes to department `{missing}`, which the municipality no longer has; please contact it"
            ),
        ));
    }

    // The tenant's counter row stays locked from the number's allocation until the commit, and
    // every submission of the tenant waits for it: so everything that does not need the number
    // (tasks, the first event) is written before it, with the foreign keys to the application
    // checked at commit.
    defer_foreign_keys(&txn).await?;
    let now = Utc::now();
    let app_id = Uuid::now_v7();
    let tasks: Vec<application_tasks::ActiveModel> = routes
        .iter()
        .map(|(dept_key, rule_key)| application_tasks::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id.0),
            application_id: Set(app_id),
            department_id: Set(depts[dept_key].id),
            rule_key: Set(rule_key.clone()),
            state: Set("open".into()),
            completed_by: Set(None),
            comment: Set(None),
            created_at: Set(now),
            completed_at: Set(None),
        })
        .collect();
    if !tasks.is_empty() {
        application_tasks::Entity::insert_many(tasks)
            .exec_without_returning(&txn)
            .await?;
    }
    let state = pinned.content.workflow.initial.as_str().to_owned();
    let routed: Vec<&str> = routes.iter().map(|(d, _)| depts[d].name.as_str()).collect();
    append_event(
        &txn,
        ctx,
        app_id,
        Event {
            kind: "submitted",
            to: Some(&state),
            details: Some(
                serde_json::json!({ "departments": routed, "revision": service.current_revision }),
            ),
            ..Event::default()
        },
    )
    .await?;
    let fees = rules::fees_for(&pinned.content, &input.data);
    let (issuer, subject) = citizen_of(ctx);
    let token = issuer.is_none().then(random_secret);
    let token_email = match &ctx.principal {
        Principal::Citizen(c) => c.email.as_deref(),
        _ => None,
    };
    let contact = rules::contact_email(token_email, &input.data);

    let year = local_year(&ctx.tenant.time_zone, now);
    let (year, number, seq) = next_number(&txn, ctx.tenant_id, year).await?;
    let reference = rules::reference(&ctx.tenant.slug, year, number);
    let app = applications::ActiveModel {
        id: Set(app_id),
        tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(service.id),
        service_slug: Set(service.slug.clone()),
        revision: Set(service.current_revision),
        seq: Set(seq),
        reference: Set(reference.clone()),
        state: Set(state.clone()),
        search_text: Set(rules::search_text(&reference, &input.data)),
        data: Set(Some(input.data)),
        fees: Set(serde_json::to_value(&fees).unwrap_or_default()),
        citizen_issuer: Set(issuer),
        citizen_subject: Set(subject),
        access_hash: Set(token.as_deref().map(hash_secret)),
        contact_email: Set(contact.clone()),
        submitted_at: Set(now),
        updated_at: Set(now),
        decided_at: Set(None),
        closed_at: Set(None),
        erased_at: Set(None),
    }
    .insert(&txn)
    .await?;
    if let Some(draft_id) = input.draft_id {
        attachments::move_to_application(&txn, ctx.tenant_id, draft_id, app_id).await?;
        drafts::Entity::delete_by_id(draft_id).exec(&txn).await?;
    }

    let label = state_label(&pinned.content, &state);
    let title = &pinned.content.title.de;
    let mut mails: Vec<Email> = contact
        .iter()
        .map(|to| Email {
            to: to.clone(),
            subject: format!("Ihr Antrag {reference} ist eingegangen"),
            body: format!(
                "Guten Tag,\n\nIhr Antrag „{title}“ ist bei {} eingegangen.\nAktenzeichen: {reference}\nStatus: {label}\n\nSie werden über jede Änderung informiert.\n",
                ctx.tenant.name
            ),
            ..Default::default()
        })
        .collect();
    for dept in routes.iter().map(|(d, _)| &depts[d]) {
        if let Some(to) = &dept.email {
            mails.push(Email {
                to: to.clone(),
                subject: format!("Neuer Antrag {reference}: {title}"),
                body: format!(
                    "Ein neuer Antrag „{title}“ ({reference}) wartet auf die Bearbeitung durch {}.\n",
                    dept.name
                ),
                ..Default::default()
            });
        }
    }
    outbox::enqueue_all(&txn, Some(ctx.tenant_id), mails).await?;
    let change = status_change(&app, now);
    deps.finish(txn, vec![change]).await?;
    Ok((app, token))
}

/// Checks foreign keys at commit instead of per statement, for this transaction. (PostgreSQL:
/// the keys from the application's tasks and events are `INITIALLY DEFERRED` already.)
async fn defer_foreign_keys(txn: &DatabaseTransaction) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Sqlite {
        txn.execute_unprepared("PRAGMA defer_foreign_keys = ON")
            .await?;
    }
    Ok(())
}

/// The calendar year of `now` where the tenant is.
fn local_year(time_zone: &str, now: DateTime<Utc>) -> i32 {
    match time_zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => now.with_timezone(&tz).year(),
        Err(_) => now.year(),
    }
}

/// Takes the tenant's next reference number and export sequence. The upsert locks the tenant's
/// counter row until the transaction ends, so numbers are gap-free (a rolled-back submission
/// returns its number) and sequence order is commit order.
async fn next_number(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    year: i32,
) -> AppResult<(i32, i64, i64)> {
    let backend = txn.get_database_backend();
    let (t, y) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let sql = format!(
        "INSERT INTO application_counters (tenant_id, year, last_number, last_seq) \
         VALUES ({t}, {y}, 1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
           last_number = CASE WHEN excluded.year > application_counters.year THEN 1 \
                              ELSE application_counters.last_number + 1 END, \
           year = CASE WHEN excluded.year > application_counters.year THEN excluded.year \
                       ELSE application_counters.year END, \
           last_seq = application_counters.last_seq + 1 \
         RETURNING year, last_number, last_seq"
    );
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [tenant.0.into(), year.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal("reference counter", anyhow::anyhow!("no row")))?;
    Ok((
        row.try_get("", "year")?,
        row.try_get("", "last_number")?,
        row.try_get("", "last_seq")?,
    ))
}

fn status_change(app: &applications::Model, at: DateTime<Utc>) -> StatusChange {
    StatusChange {
        tenant_id: app.tenant_id,
        application_id: app.id,
        reference: app.reference.clone(),
        state: app.state.clone(),
        at,
    }
}

pub fn state_label(content: &ServiceContent, state: &str) -> String {
    rules::state_of(&content.workflow, state)
        .map_or_else(|| state.to_owned(), |s| s.label.de.clone())
}

// ---- timeline ----------------------------------------------------------------------------------

#[derive(Default)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub details: Option<Value>,
    pub internal: bool,
}

pub async fn append_event<C: ConnectionTrait>(
    conn: &C,
    ctx: &TenantCtx,
    application: Uuid,
    event: Event<'_>,
) -> AppResult<()> {
    application_events::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        application_id: Set(application),
        kind: Set(event.kind.to_owned()),
        actor: Set(ctx.actor()),
        actor_name: Set(actor_name(ctx)),
        from_state: Set(event.from.map(str::to_owned)),
        to_state: Set(event.to.map(str::to_owned)),
        comment: Set(event.comment.map(str::to_owned)),
        details: Set(event.details),
        internal: Set(event.internal),
        at: Set(Utc::now()),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The timelines of several applications in one read, oldest first; without staff-only entries
/// for applicants.
pub async fn timelines_of(
    db: &Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
    staff: bool,
) -> AppResult<Vec<application_events::Model>> {
    let mut select = scoped::<application_events::Entity>(tenant)
        .filter(application_events::Column::ApplicationId.is_in(applications))
        .order_by_asc(application_events::Column::Id);
    if !staff {
        select = select.filter(application_events::Column::Internal.eq(false));
    }
    crate::db::read_tenant(db, tenant, select).await
}

// ---- reading -----------------------------------------------------------------------------------

/// An application the caller may see, with how they relate to it.
pub async fn application(
    deps: &Deps,
    ctx: &TenantCtx,
    id: Uuid,
    access_token: Option<&str>,
) -> AppResult<(applications::Model, Viewer)> {
    crate::audit::break_glass_read(&deps.db, ctx, "application", format!("application:{id}"))
        .await?;
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let app = find(&txn, ctx.tenant_id, id).await?;
    let viewer = viewer_of(&txn, ctx, &app, access_token).await?;
    txn.commit().await?;
    Ok((app, viewer))
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    id: Uuid,
) -> AppResult<applications::Model> {
    scoped::<applications::Entity>(tenant)
        .filter(applications::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("application"))
}

#[derive(Default)]
pub struct ApplicationFilter {
    pub state: Option<String>,
    pub service: Option<String>,
    pub submitted_after: Option<DateTime<Utc>>,
    pub search: Option<String>,
    /// Only applications after this export sequence number (back-office polling).
    pub after_seq: Option<i64>,
}

/// Applications staff may see: all for administrators, else those with a task in one of the
/// caller's departments.
fn visible_applications(
    ctx: &TenantCtx,
    mine: Option<Vec<Uuid>>,
) -> AppResult<sea_orm::Select<applications::Entity>> {
    ctx.require_staff()?;
    let mut select = scoped::<applications::Entity>(ctx.tenant_id);
    if let Some(mine) = mine {
        select = select.filter(
            applications::Column::Id.in_subquery(
                Query::select()
                    .column(application_tasks::Column::ApplicationId)
                    .from(application_tasks::Entity)
                    .and_where(application_tasks::Column::TenantId.eq(ctx.tenant_id.0))
                    .and_where(application_tasks::Column::DepartmentId.is_in(mine))
                    .take(),
            ),
        );
    }
    Ok(select)
}

/// The departments whose work the caller sees: `None` for all (administrators). `what` names
/// the read for the audit log when a platform administrator reads under a break-glass grant.
async fn scope_of(db: &Db, ctx: &TenantCtx, what: &str) -> AppResult<Option<Vec<Uuid>>> {
    ctx.require_staff()?;
    crate::audit::break_glass_read(db, ctx, what, format!("tenant:{}", ctx.tenant_id)).await?;
    if is_admin(ctx) {
        return Ok(None);
    }
    match &ctx.principal {
        Principal::Staff { user_id, .. } => {
            let txn = begin_tenant(db, ctx.tenant_id).await?;
            let mine = departments_of(&txn, ctx.tenant_id, user_id.0).await?;
            txn.commit().await?;
            Ok(Some(mine))
        }
        _ => Ok(Some(Vec::new())),
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub async fn list_applications(
    db: &Db,
    ctx: &TenantCtx,
    filter: ApplicationFilter,
    args: PageArgs,
) -> AppResult<Page<applications::Model>> {
    let mut select = visible_applications(ctx, scope_of(db, ctx, "applications").await?)?;
    if let Some(state) = filter.state {
        select = select.filter(applications::Column::State.eq(state));
    }
    if let Some(service) = filter.service {
        select = select.filter(applications::Column::ServiceSlug.eq(service));
    }
    if let Some(after) = filter.submitted_after {
        select = select.filter(applications::Column::SubmittedAt.gt(after));
    }
    if let Some(after) = filter.after_seq {
        select = select.filter(applications::Column::Seq.gt(after));
    }
    if let Some(search) = filter.search.map(|s| s.trim().to_lowercase()) {
        if search.chars().count() > 200 {
            return Err(AppError::invalid("filter.search", "at most 200 characters"));
        }
        for word in search.split_whitespace() {
            select = select.filter(sea_orm::sea_query::ExprTrait::like(
                Expr::col(applications::Column::SearchText),
                sea_orm::sea_query::LikeExpr::new(format!("%{}%", escape_like(word))).escape('\\'),
            ));
        }
    }
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        select,
        applications::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

/// Applications after export sequence `after`, in sequence (= commit) order, for polling
/// back-office systems.
pub async fn export_batch(
    db: &Db,
    ctx: &TenantCtx,
    after: i64,
    limit: u64,
) -> AppResult<Vec<applications::Model>> {
    let select = visible_applications(ctx, scope_of(db, ctx, "applications export").await?)?
        .filter(applications::Column::Seq.gt(after))
        .order_by_asc(applications::Column::Seq)
        .limit(limit);
    crate::db::read_tenant(db, ctx.tenant_id, select).await
}

pub struct TaskFilter {
    pub department: Option<Uuid>,
    pub state: Option<String>,
}

pub async fn list_tasks(
    db: &Db,
    ctx: &TenantCtx,
    filter: TaskFilter,
    args: PageArgs,
) -> AppResult<Page<application_tasks::Model>> {
    let mut select = scoped::<application_tasks::Entity>(ctx.tenant_id);
    match (scope_of(db, ctx, "tasks").await?, filter.department) {
        (Some(mine), Some(d)) if !mine.contains(&d) => {
            return Err(AppError::Forbidden(
                "you are not a member of that department",
            ));
        }
        (_, Some(d)) => select = select.filter(application_tasks::Column::DepartmentId.eq(d)),
        (Some(mine), None) => {
            select = select.filter(application_tasks::Column::DepartmentId.is_in(mine))
        }
        (None, None) => {}
    }
    if let Some(state) = filter.state {
        select = select.filter(application_tasks::Column::State.eq(state));
    }
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        select,
        application_tasks::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

/// Tasks of several applications in one read.
pub async fn tasks_of(
    db: &Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
) -> AppResult<Vec<application_tasks::Model>> {
    let select = scoped::<application_tasks::Entity>(tenant)
        .filter(application_tasks::Column::ApplicationId.is_in(applications))
        .order_by_asc(application_tasks::Column::Id);
    crate::db::read_tenant(db, tenant, select).await
}

// ---- workflow ----------------------------------------------------------------------------------

/// Locks and loads an application for a change (PostgreSQL: `FOR UPDATE`; SQLite's write
/// transaction already excludes other writers).
pub(crate) async fn lock(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    id: Uuid,
) -> AppResult<applications::Model> {
    let select = scoped::<applications::Entity>(tenant).filter(applications::Column::Id.eq(id));
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

pub struct Transition {
    pub id: Uuid,
    pub to: String,
    pub comment: Option<String>,
    pub access_token: Option<String>,
}

pub const MAX_COMMENT_CHARS: usize = 10_000;

fn check_comment(field: &str, comment: Option<&str>) -> AppResult<()> {
    match comment {
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => Err(AppError::invalid(
            field,
            format!("at most {MAX_COMMENT_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// Moves an application along its workflow (staff, or the applicant for their own moves).
pub async fn transition(
    deps: &Deps,
    ctx: &TenantCtx,
    input: Transition,
) -> AppResult<(applications::Model, Viewer)> {
    check_comment("input.comment", input.comment.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, ctx.tenant_id, input.id).await?;
    let viewer = viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await?;
    let mover = if viewer.is_staff() {
        Mover::Staff
    } else {
        Mover::Citizen
    };
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    let workflow = &pinned.content.workflow;
    rules::find_move(workflow, &app.state, &input.to, mover)?;
    let terminal = rules::state_of(workflow, &input.to).is_some_and(|s| s.terminal);
    // Services that are paid first: staff may close an unpaid application, not work on it.
    if mover == Mover::Staff
        && !terminal
        && !crate::payments::service::processing_allowed(&txn, ctx.tenant_id, &app, &pinned.content)
            .await?
    {
        return Err(unpaid());
    }
    if terminal && mover == Mover::Staff {
        let open = open_tasks(&txn, ctx.tenant_id, app.id).await?;
        if !open.is_empty() {
            return Err(AppError::conflict(
                "input.to",
                format!(
                    "tasks are still open in: {}; complete them first",
                    open.join(", ")
                ),
            ));
        }
    }
    let app = move_to(
        &txn,
        ctx,
        app,
        &pinned.content,
        &input.to,
        input.comment.as_deref(),
        "transitioned",
    )
    .await?;
    let change = status_change(&app, app.updated_at);
    deps.finish(txn, vec![change]).await?;
    Ok((app, viewer))
}

fn unpaid() -> AppError {
    AppError::conflict(
        "input.id",
        "processing starts once the fees are paid; the applicant pays online or at the counter",
    )
}

/// The names of departments with open tasks on an application.
async fn open_tasks(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    application: Uuid,
) -> AppResult<Vec<String>> {
    let open: Vec<Uuid> = scoped::<application_tasks::Entity>(tenant)
        .filter(application_tasks::Column::ApplicationId.eq(application))
        .filter(application_tasks::Column::State.eq("open"))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| t.department_id)
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    Ok(scoped::<departments::Entity>(tenant)
        .filter(departments::Column::Id.is_in(open))
        .all(txn)
        .await?
        .into_iter()
        .map(|d| d.name)
        .collect())
}

/// Applies a checked move: state, decision/closing times, the event and the applicant's email.
/// Terminal moves cancel what is still open.
async fn move_to(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    app: applications::Model,
    content: &ServiceContent,
    to: &str,
    comment: Option<&str>,
    kind: &str,
) -> AppResult<applications::Model> {
    let now = Utc::now();
    let target = rules::state_of(&content.workflow, to);
    let from = app.state.clone();
    let mut active: applications::ActiveModel = app.clone().into();
    active.state = Set(to.to_owned());
    active.updated_at = Set(now);
    if target.is_some_and(|s| s.decided) && app.decided_at.is_none() {
        active.decided_at = Set(Some(now));
    }
    if target.is_some_and(|s| s.terminal) {
        active.closed_at = Set(Some(now));
        application_tasks::Entity::update_many()
            .col_expr(application_tasks::Column::State, Expr::value("cancelled"))
            .col_expr(application_tasks::Column::CompletedAt, Expr::value(now))
            .filter(application_tasks::Column::TenantId.eq(ctx.tenant_id.0))
            .filter(application_tasks::Column::ApplicationId.eq(app.id))
            .filter(application_tasks::Column::State.eq("open"))
            .exec(txn)
            .await?;
    }
    let app = active.update(txn).await?;
    append_event(
        txn,
        ctx,
        app.id,
        Event {
            kind,
            from: Some(&from),
            to: Some(to),
            comment,
            ..Event::default()
        },
    )
    .await?;
    if let Some(email) = &app.contact_email {
        let label = state_label(content, to);
        let note = comment
            .filter(|_| ctx.require_staff().is_ok())
            .map(|c| format!("\nHinweis der Verwaltung:\n{c}\n"))
            .unwrap_or_default();
        outbox::enqueue(
            txn,
            Some(ctx.tenant_id),
            Email {
                to: email.clone(),
                subject: format!("Ihr Antrag {}: {label}", app.reference),
                body: format!(
                    "Guten Tag,\n\nder Status Ihres Antrags „{}“ ({}) hat sich geändert: {label}.\n{note}",
                    content.title.de, app.reference
                ),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(app)
}

/// The applicant withdraws before a decision.
pub async fn withdraw(
    deps: &Deps,
    ctx: &TenantCtx,
    id: Uuid,
    reason: Option<String>,
    access_token: Option<String>,
) -> AppResult<applications::Model> {
    check_comment("input.reason", reason.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, ctx.tenant_id, id).await?;
    if viewer_of(&txn, ctx, &app, access_token.as_deref()).await? != Viewer::Applicant {
        return Err(AppError::Forbidden("only the applicant can withdraw"));
    }
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    let to = rules::withdrawal_from(&pinned.content.workflow, &app.state)
        .map(|t| t.to.as_str().to_owned())
        .ok_or_else(|| {
            AppError::conflict(
                "input.id",
                format!(
                    "an application in state `{}` can no longer be withdrawn",
                    app.state
                ),
            )
        })?;
    let app = move_to(
        &txn,
        ctx,
        app,
        &pinned.content,
        &to,
        reason.as_deref(),
        "withdrawn",
    )
    .await?;
    let change = status_change(&app, app.updated_at);
    deps.finish(txn, vec![change]).await?;
    Ok(app)
}

pub struct ProvideInformation {
    pub id: Uuid,
    /// Field values to change (merged into the data; the result must validate).
    pub data: Option<Value>,
    pub message: Option<String>,
    pub access_token: Option<String>,
}

/// The applicant answers a request for information with data, a message, or both; the
/// application moves back to review.
pub async fn provide_information(
    deps: &Deps,
    ctx: &TenantCtx,
    input: ProvideInformation,
) -> AppResult<applications::Model> {
    if input.data.is_none() && input.message.as_deref().is_none_or(|m| m.trim().is_empty()) {
        return Err(AppError::invalid(
            "input",
            "send changed data, a message, or both",
        ));
    }
    if let Some(m) = &input.message {
        crate::messaging::mailbox::check_body("input.message", m)?;
    }
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, ctx.tenant_id, input.id).await?;
    if viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await? != Viewer::Applicant {
        return Err(AppError::Forbidden("only the applicant can answer"));
    }
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    let to = rules::answer_from(&pinned.content.workflow, &app.state)
        .map(|t| t.to.as_str().to_owned())
        .ok_or_else(|| {
            AppError::conflict(
                "input.id",
                "nobody asked for information on this application right now",
            )
        })?;
    let mut app = app;
    let mut changed_fields = Vec::new();
    if let Some(patch) = input.data {
        rules::check_shape("data", &patch)?;
        let mut data = app
            .data
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        if let (Some(target), Value::Object(patch)) = (data.as_object_mut(), patch) {
            for (k, v) in patch {
                changed_fields.push(k.clone());
                if v.is_null() {
                    target.remove(&k);
                } else {
                    target.insert(k, v);
                }
            }
        }
        pinned.validator.check("data", &data)?;
        let reference = app.reference.clone();
        let mut active: applications::ActiveModel = app.into();
        active.search_text = Set(rules::search_text(&reference, &data));
        active.data = Set(Some(data));
        app = active.update(&txn).await?;
    }
    if let Some(body) = input.message.as_deref().filter(|m| !m.trim().is_empty()) {
        crate::messaging::mailbox::insert(&txn, ctx, &app, body, false).await?;
    }
    append_event(
        &txn,
        ctx,
        app.id,
        Event {
            kind: "information_provided",
            details: Some(serde_json::json!({ "changedFields": changed_fields })),
            ..Event::default()
        },
    )
    .await?;
    let app = move_to(&txn, ctx, app, &pinned.content, &to, None, "transitioned").await?;
    let change = status_change(&app, app.updated_at);
    deps.finish(txn, vec![change]).await?;
    Ok(app)
}

/// A department finishes its part. Staff of that department (or administrators) only.
pub async fn complete_task(
    deps: &Deps,
    ctx: &TenantCtx,
    task_id: Uuid,
    comment: Option<String>,
) -> AppResult<(application_tasks::Model, applications::Model, Viewer)> {
    ctx.require_staff()?;
    check_comment("input.comment", comment.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let task = scoped::<application_tasks::Entity>(ctx.tenant_id)
        .filter(application_tasks::Column::Id.eq(task_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("task"))?;
    let viewer = if is_admin(ctx) {
        Viewer::Admin
    } else {
        let Principal::Staff { user_id, .. } = &ctx.principal else {
            return Err(AppError::Forbidden("staff only"));
        };
        if !departments_of(&txn, ctx.tenant_id, user_id.0)
            .await?
            .contains(&task.department_id)
        {
            return Err(AppError::NotFound("task"));
        }
        Viewer::Staff { user: user_id.0 }
    };
    if task.state != "open" {
        return Err(AppError::conflict(
            "input.id",
            format!("this task is already {}", task.state),
        ));
    }
    let app = lock(&txn, ctx.tenant_id, task.application_id).await?;
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    if !crate::payments::service::processing_allowed(&txn, ctx.tenant_id, &app, &pinned.content)
        .await?
    {
        return Err(unpaid());
    }
    let mut active: application_tasks::ActiveModel = task.into();
    active.state = Set("done".into());
    active.completed_by = Set(ctx.staff_user());
    active.comment = Set(comment.clone());
    active.completed_at = Set(Some(Utc::now()));
    let task = active.update(&txn).await?;
    let dept = scoped::<departments::Entity>(ctx.tenant_id)
        .filter(departments::Column::Id.eq(task.department_id))
        .one(&txn)
        .await?
        .map(|d| d.name)
        .unwrap_or_default();
    append_event(
        &txn,
        ctx,
        app.id,
        Event {
            kind: "task_completed",
            comment: comment.as_deref(),
            details: Some(serde_json::json!({ "department": dept })),
            internal: true,
            ..Event::default()
        },
    )
    .await?;
    deps.finish(txn, Vec::new()).await?;
    Ok((task, app, viewer))
}

// ---- GDPR --------------------------------------------------------------------------------------

/// Everything stored about the signed-in citizen in this tenant.
pub async fn export_my_data(deps: &Deps, ctx: &TenantCtx) -> AppResult<Value> {
    let Principal::Citizen(c) = &ctx.principal else {
        return Err(match ctx.principal {
            Principal::Anonymous => AppError::Unauthenticated,
            _ => AppError::Forbidden("for signed-in citizens"),
        });
    };
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let apps = scoped::<applications::Entity>(ctx.tenant_id)
        .filter(applications::Column::CitizenIssuer.eq(c.issuer.as_str()))
        .filter(applications::Column::CitizenSubject.eq(c.subject.as_str()))
        .order_by_asc(applications::Column::Id)
        .all(&txn)
        .await?;
    let drafts = scoped::<drafts::Entity>(ctx.tenant_id)
        .filter(drafts::Column::CitizenIssuer.eq(c.issuer.as_str()))
        .filter(drafts::Column::CitizenSubject.eq(c.subject.as_str()))
        .order_by_asc(drafts::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    let ids: Vec<Uuid> = apps.iter().map(|a| a.id).collect();
    let events = timelines_of(&deps.db, ctx.tenant_id, ids.clone(), false).await?;
    let messages =
        crate::messaging::mailbox::threads_of(&deps.db, ctx.tenant_id, ids.clone(), false).await?;
    let files = attachments::of_applications(&deps.db, ctx.tenant_id, ids).await?;
    let out_apps: Vec<Value> = apps
        .iter()
        .map(|app| {
            serde_json::json!({
                "id": app.id,
                "reference": app.reference,
                "service": app.service_slug,
                "state": app.state,
                "submittedAt": app.submitted_at,
                "data": app.data,
                "fees": app.fees,
                "contactEmail": app.contact_email,
                "erasedAt": app.erased_at,
                "timeline": events.iter().filter(|e| e.application_id == app.id).map(|e| serde_json::json!({
                    "at": e.at, "kind": e.kind, "fromState": e.from_state, "toState": e.to_state,
                    "comment": e.comment,
                })).collect::<Vec<_>>(),
                "messages": messages.iter().filter(|m| m.application_id == app.id).map(|m| serde_json::json!({
                    "at": m.created_at, "sender": m.sender, "body": m.body, "readAt": m.read_at,
                })).collect::<Vec<_>>(),
                "attachments": files.iter().filter(|f| f.application_id == Some(app.id)).map(|f| serde_json::json!({
                    "id": f.id, "filename": f.filename, "contentType": f.content_type,
                    "sizeBytes": f.size_bytes, "sha256": f.sha256, "document": f.document_key,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "tenant": ctx.tenant.slug,
        "subject": c.subject,
        "exportedAt": Utc::now(),
        "applications": out_apps,
        "drafts": drafts.iter().map(|d| serde_json::json!({
            "id": d.id, "serviceId": d.service_id, "data": d.data, "updatedAt": d.updated_at,
        })).collect::<Vec<_>>(),
    }))
}

/// Erases a closed application's personal data once its retention period has passed: data,
/// contact, timeline and messages go; the reference, state and the audit entry remain.
pub async fn erase(deps: &Deps, ctx: &TenantCtx, id: Uuid) -> AppResult<applications::Model> {
    ctx.require_tenant_admin()?;
    ctx.break_glass()?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, ctx.tenant_id, id).await?;
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    let Some(closed) = app.closed_at else {
        return Err(AppError::conflict(
            "input.id",
            "only closed applications can be erased",
        ));
    };
    let days = pinned.content.retention_days();
    let due = closed + chrono::Duration::days(i64::from(days));
    if Utc::now() < due {
        return Err(AppError::conflict(
            "input.id",
            format!(
                "the retention period ({days} days) ends on {}",
                due.format("%Y-%m-%d")
            ),
        ));
    }
    application_events::Entity::delete_many()
        .filter(application_events::Column::TenantId.eq(ctx.tenant_id.0))
        .filter(application_events::Column::ApplicationId.eq(app.id))
        .exec(&txn)
        .await?;
    crate::messaging::mailbox::delete_all(&txn, ctx.tenant_id, app.id).await?;
    let objects = attachments::delete_rows_of_application(&txn, ctx.tenant_id, app.id).await?;
    let reference = app.reference.to_lowercase();
    let mut active: applications::ActiveModel = app.into();
    active.data = Set(None);
    active.contact_email = Set(None);
    active.citizen_issuer = Set(None);
    active.citizen_subject = Set(None);
    active.access_hash = Set(None);
    active.search_text = Set(reference);
    active.erased_at = Set(Some(Utc::now()));
    active.updated_at = Set(Utc::now());
    let app = active.update(&txn).await?;
    crate::audit::record(
        &txn,
        ctx.tenant_id,
        &ctx.actor(),
        "application.erased",
        app.id.to_string(),
        serde_json::json!({ "reference": app.reference }),
    )
    .await?;
    txn.commit().await?;
    // The files go after the commit; what fails here, the storage sweeper removes.
    attachments::delete_objects(deps.store.as_ref(), &objects).await;
    Ok(app)
}

/// A computed fee line as stored.
pub fn fees_of(app: &applications::Model) -> Vec<FeeLine> {
    serde_json::from_value(app.fees.clone()).unwrap_or_default()
}
