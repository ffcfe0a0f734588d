//! GraphQL of applications: the object types and their loaders, and the query and mutation
//! roots merged from one file per use case (field order as before: the printed SDL depends on
//! it).

mod drafts;
pub mod fee;
mod gdpr;
mod mailbox;
mod queries;
mod submit;
pub mod subscription;
mod workflow;

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, ID, Json, MergedObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::states::TaskState;
use entity::{application_events, application_tasks, applications, drafts as draft_rows, messages};
use serde_json::Value;
use uuid::Uuid;

use super::access::{self, Viewer};
use super::service;
use super::{queries as application_queries, timeline};
use crate::error::{AppError, AppResult};
use crate::graphql::loaders::RequestLoader;
use crate::graphql::{request_loader, state, tenant_ctx};
use crate::ids::{ApplicationId, DraftId, TenantId};
use crate::messaging::mailbox as mailbox_service;
use crate::services::graphql::{ContentOf, ServicesLoader};
use crate::state::AppState;
use crate::tenancy::graphql::Department;
use crate::tenancy::loader::{DepartmentById, TenancyLoader};
pub use fee::Fee;

fn deps<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    state::<AppState>(ctx)
}

/// Request-wide loader: the tasks of a page of applications cost one query.
pub struct ApplicationsLoader {
    pub db: crate::db::Db,
}

impl crate::graphql::loaders::Lazy for ApplicationsLoader {
    fn make(loaders: &crate::graphql::loaders::Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

/// Key: the tasks of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TasksOf(pub TenantId, pub Uuid);

/// Key: the timeline of an application; `true` with staff-only entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EventsOf(pub TenantId, pub Uuid, pub bool);

/// Key: the mailbox of an application; `true` with internal notes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MessagesOf(pub TenantId, pub Uuid, pub bool);

/// One read per (tenant, audience) group of keys; each key gets its application's rows.
async fn per_application<K, M, Fut>(
    keys: &[K],
    group: impl Fn(&K) -> (TenantId, bool, Uuid),
    read: impl Fn(TenantId, bool, Vec<Uuid>) -> Fut,
    application_of: impl Fn(&M) -> Uuid,
) -> Result<HashMap<K, Vec<M>>, async_graphql::Error>
where
    K: Copy + Eq + std::hash::Hash,
    M: Clone,
    Fut: std::future::Future<Output = AppResult<Vec<M>>>,
{
    let mut groups: HashMap<(TenantId, bool), Vec<Uuid>> = HashMap::new();
    for k in keys {
        let (tenant, audience, app) = group(k);
        groups.entry((tenant, audience)).or_default().push(app);
    }
    let mut out: HashMap<K, Vec<M>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for ((tenant, audience), apps) in groups {
        let rows = read(tenant, audience, apps).await?;
        for k in keys.iter().filter(|k| {
            let (t, a, _) = group(k);
            t == tenant && a == audience
        }) {
            let app = group(k).2;
            let mine = rows.iter().filter(|r| application_of(r) == app).cloned();
            out.entry(*k).or_default().extend(mine);
        }
    }
    Ok(out)
}

impl Loader<TasksOf> for ApplicationsLoader {
    type Value = Vec<application_tasks::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TasksOf]) -> Result<HashMap<TasksOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| application_queries::tasks_of(&self.db, tenant, ids),
            |t| t.application_id,
        )
        .await
    }
}

impl Loader<EventsOf> for ApplicationsLoader {
    type Value = Vec<application_events::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EventsOf]) -> Result<HashMap<EventsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, k.2, k.1),
            |tenant, staff, ids| timeline::timelines_of(&self.db, tenant, ids, staff),
            |e| e.application_id,
        )
        .await
    }
}

impl Loader<MessagesOf> for ApplicationsLoader {
    type Value = Vec<messages::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MessagesOf],
    ) -> Result<HashMap<MessagesOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, k.2, k.1),
            |tenant, staff, ids| mailbox_service::threads_of(&self.db, tenant, ids, staff),
            |m| m.application_id,
        )
        .await
    }
}

/// Key: the attachments of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AttachmentsOf(pub TenantId, pub Uuid);

impl Loader<AttachmentsOf> for ApplicationsLoader {
    type Value = Vec<entity::attachments::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[AttachmentsOf],
    ) -> Result<HashMap<AttachmentsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| crate::attachments::download::of_applications(&self.db, tenant, ids),
            |a| a.application_id.unwrap_or_default(),
        )
        .await
    }
}

/// Key: the payments of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PaymentsOf(pub TenantId, pub Uuid);

impl Loader<PaymentsOf> for ApplicationsLoader {
    type Value = Vec<entity::payments::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PaymentsOf],
    ) -> Result<HashMap<PaymentsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| crate::payments::service::of_applications(&self.db, tenant, ids),
            |p| p.application_id,
        )
        .await
    }
}

fn loader<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<ApplicationsLoader>> {
    request_loader::<ApplicationsLoader>(ctx)
}

// ---- output types ------------------------------------------------------------------------------

/// A submitted application, as the caller may see it.
pub struct Application {
    pub model: applications::Model,
    pub viewer: Viewer,
    /// Its tasks when they were read with a page of applications; else loaded on demand.
    pub tasks: Option<Vec<Task>>,
}

/// A move the caller can make now.
#[derive(SimpleObject)]
pub struct AllowedTransition {
    pub to: String,
    pub label: String,
}

#[Object]
impl Application {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// `<TENANT>-<YEAR>-<6 digits>`.
    async fn reference(&self) -> &str {
        &self.model.reference
    }
    /// A state key of the pinned workflow.
    async fn state(&self) -> &str {
        &self.model.state
    }
    /// The state's German label.
    async fn state_label(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let pinned = self.pinned(ctx).await?;
        Ok(service::state_label(&pinned.content, &self.model.state))
    }
    async fn service_slug(&self) -> &str {
        &self.model.service_slug
    }
    /// The service revision this application was submitted under; it reads by it forever.
    async fn revision(&self) -> i64 {
        self.model.revision
    }
    /// The pinned revision's content (form, workflow, texts) — unchanged by later updates.
    async fn service_content(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        Ok(Json(self.content_value(ctx).await?))
    }
    /// The submitted form data (null once erased).
    async fn data(&self) -> Option<Json<Value>> {
        self.model.data.clone().map(Json)
    }
    /// Fees computed at submission.
    async fn fees(&self) -> Vec<Fee> {
        service::fees_of(&self.model)
            .into_iter()
            .map(Fee::from)
            .collect()
    }
    async fn fee_total_cents(&self) -> i64 {
        service::fees_of(&self.model)
            .iter()
            .map(|f| f.amount_cents)
            .sum()
    }
    /// Payments of the fees, oldest first.
    async fn payments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::payments::graphql::Payment>> {
        Ok(self
            .payment_rows(ctx)
            .await?
            .into_iter()
            .map(crate::payments::graphql::Payment)
            .collect())
    }
    /// Whether processing waits for the fees: the service is paid first and nothing has been
    /// received yet.
    async fn awaiting_payment(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let pinned = self.pinned(ctx).await?;
        let total: i64 = service::fees_of(&self.model)
            .iter()
            .map(|f| f.amount_cents)
            .sum();
        Ok(pinned.content.payment_required_before_processing
            && total > 0
            && !self
                .payment_rows(ctx)
                .await?
                .iter()
                .any(|p| p.paid_at.is_some()))
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.model.submitted_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.model.decided_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.model.closed_at
    }
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.model.erased_at
    }
    /// One task per routed department.
    async fn tasks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Task>> {
        if let Some(tasks) = &self.tasks {
            return Ok(tasks.clone());
        }
        let tasks = request_loader::<ApplicationsLoader>(ctx)?
            .load_one(TasksOf(TenantId(self.model.tenant_id), self.model.id))
            .await
            .map_err(|e| AppError::internal("loading tasks", anyhow::anyhow!("{}", e.message)))?
            .unwrap_or_default();
        Ok(tasks.into_iter().map(Task::new).collect())
    }
    /// Done when every task is done (or cancelled).
    async fn done(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self
            .tasks(ctx)
            .await?
            .iter()
            .all(|t| t.model.state != TaskState::Open))
    }
    /// What happened, oldest first. Applicants do not see staff-only entries.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TimelineEvent>> {
        let staff = self.viewer.is_staff();
        let key = EventsOf(TenantId(self.model.tenant_id), self.model.id, staff);
        Ok(loader(ctx)?
            .load_one(key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|e| TimelineEvent(e, staff))
            .collect())
    }
    /// The mailbox thread. Applicants never see internal notes.
    async fn messages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Message>> {
        let key = MessagesOf(
            TenantId(self.model.tenant_id),
            self.model.id,
            self.viewer.is_staff(),
        );
        Ok(loader(ctx)?
            .load_one(key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Message)
            .collect())
    }
    /// The workflow moves the caller can make from the current state.
    /// Files the applicant attached (to the draft or later).
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::attachments::graphql::Attachment>> {
        let key = AttachmentsOf(TenantId(self.model.tenant_id), self.model.id);
        let rows = loader(ctx)?.load_one(key).await?.unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|model| crate::attachments::graphql::Attachment {
                model,
                viewer: self.viewer.clone(),
            })
            .collect())
    }
    /// Its hand-over through FIT-Connect, when the service has one. Staff only (null for the
    /// applicant).
    async fn fit_connect(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::fitconnect::graphql::FitConnectSubmission>> {
        if !self.viewer.is_staff() {
            return Ok(None);
        }
        let txn =
            crate::db::begin_tenant(deps(ctx)?.db.orm(), TenantId(self.model.tenant_id)).await?;
        let found = crate::fitconnect::handover::submission_of(
            &txn,
            crate::ids::ApplicationId(self.model.id),
        )
        .await?;
        txn.commit().await.map_err(AppError::from)?;
        Ok(found.map(crate::fitconnect::graphql::FitConnectSubmission))
    }
    async fn allowed_transitions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AllowedTransition>> {
        let content = &self.pinned(ctx).await?.content;
        let mover = if self.viewer.is_staff() {
            super::rules::Mover::Staff
        } else {
            super::rules::Mover::Citizen
        };
        Ok(
            super::rules::moves_from(&content.workflow, &self.model.state, mover)
                .into_iter()
                .map(|t| AllowedTransition {
                    to: t.to.as_str().to_owned(),
                    label: service::state_label(content, t.to.as_str()),
                })
                .collect(),
        )
    }
}

impl Application {
    pub fn new(model: applications::Model, viewer: Viewer) -> Self {
        Self {
            model,
            viewer,
            tasks: None,
        }
    }

    async fn payment_rows(&self, ctx: &Context<'_>) -> AppResult<Vec<entity::payments::Model>> {
        Ok(loader(ctx)?
            .load_one(PaymentsOf(TenantId(self.model.tenant_id), self.model.id))
            .await
            .map_err(|e| AppError::internal("loading payments", anyhow::anyhow!("{}", e.message)))?
            .unwrap_or_default())
    }

    /// The pinned revision, parsed (cached across requests).
    async fn pinned(&self, ctx: &Context<'_>) -> AppResult<std::sync::Arc<service::Pinned>> {
        deps(ctx)?
            .pinned_now(
                TenantId(self.model.tenant_id),
                self.model.service_id,
                self.model.revision,
            )
            .await
    }

    async fn content_value(&self, ctx: &Context<'_>) -> AppResult<Value> {
        request_loader::<ServicesLoader>(ctx)?
            .load_one(ContentOf(
                TenantId(self.model.tenant_id),
                self.model.service_id,
                self.model.revision,
            ))
            .await
            .map_err(|e| {
                AppError::internal("loading service content", anyhow::anyhow!("{}", e.message))
            })?
            .ok_or(AppError::NotFound("service revision"))
    }
}

/// One department's share of an application.
#[derive(Clone)]
pub struct Task {
    pub model: application_tasks::Model,
    /// Its department when read with a page of applications; else loaded on demand.
    pub department: Option<entity::departments::Model>,
}

impl Task {
    pub fn new(model: application_tasks::Model) -> Self {
        Self {
            model,
            department: None,
        }
    }
}

#[Object]
impl Task {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// `open`, `done` or `cancelled`.
    async fn state(&self) -> &str {
        self.model.state.as_str()
    }
    /// The routing rule that created it.
    async fn rule_key(&self) -> &str {
        &self.model.rule_key
    }
    async fn department(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Department>> {
        if let Some(department) = &self.department {
            return Ok(Some(Department(department.clone())));
        }
        Ok(request_loader::<TenancyLoader>(ctx)?
            .load_one(DepartmentById(
                TenantId(self.model.tenant_id),
                self.model.department_id,
            ))
            .await
            .map_err(|e| {
                AppError::internal("loading a department", anyhow::anyhow!("{}", e.message))
            })?
            .map(Department))
    }
    async fn comment(&self) -> Option<&str> {
        self.model.comment.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.model.completed_at
    }
    /// The application (visible to staff of the task's department).
    async fn application(&self, ctx: &Context<'_>) -> async_graphql::Result<Application> {
        let tctx = tenant_ctx(ctx)?;
        let (model, viewer) = access::application(
            deps(ctx)?,
            &tctx,
            ApplicationId(self.model.application_id),
            None,
        )
        .await?;
        Ok(Application::new(model, viewer))
    }
}

pub struct TimelineEvent(application_events::Model, bool);

#[Object]
impl TimelineEvent {
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// `submitted`, `transitioned`, `withdrawn`, `information_provided`, `task_completed`,
    /// `message_sent`, `note_added`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Who: `citizen`, `staff` or `system`; staff see the exact actor.
    async fn actor(&self) -> String {
        if self.1 {
            self.0.actor.clone()
        } else {
            self.0
                .actor
                .split(':')
                .next()
                .unwrap_or_default()
                .replace("anonymous", "citizen")
        }
    }
    async fn from_state(&self) -> Option<&str> {
        self.0.from_state.as_deref()
    }
    async fn to_state(&self) -> Option<&str> {
        self.0.to_state.as_deref()
    }
    async fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }
    async fn details(&self) -> Option<Json<Value>> {
        self.0.details.clone().map(Json)
    }
    /// Staff-only entry.
    async fn internal(&self) -> bool {
        self.0.internal
    }
}

pub struct Message(pub messages::Model);

#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `citizen` or `staff`.
    async fn sender(&self) -> &str {
        &self.0.sender
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// A staff-only note.
    async fn internal(&self) -> bool {
        self.0.internal
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the other side read it.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
}

pub struct Draft {
    model: draft_rows::Model,
    service_slug: String,
    /// Computed once per request however many of its fields are asked for.
    preview: tokio::sync::OnceCell<super::drafts::Preview>,
}

impl Draft {
    fn new(model: draft_rows::Model, service_slug: String) -> Self {
        Self {
            model,
            service_slug,
            preview: tokio::sync::OnceCell::new(),
        }
    }

    async fn preview(&self, ctx: &Context<'_>) -> AppResult<&super::drafts::Preview> {
        let deps = deps(ctx)?;
        self.preview
            .get_or_try_init(|| super::drafts::preview(deps, &self.model))
            .await
    }
}

/// A problem with a field of a draft, as submission would report it.
#[derive(SimpleObject)]
pub struct FieldProblem {
    /// The field path submission answers with, e.g. `input.data/postcode`.
    pub path: String,
    pub message: String,
}

#[Object]
impl Draft {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    async fn service_slug(&self) -> &str {
        &self.service_slug
    }
    async fn data(&self) -> Json<Value> {
        Json(self.model.data.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    /// What submitting now would refuse, one entry per field path as `submitApplication`
    /// answers in `VALIDATION_FAILED` (`input.data/dog_count`, `input.documents/<key>`):
    /// checked against the service's revision in force. Empty when the draft can be submitted.
    async fn problems(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<FieldProblem>> {
        let preview = self.preview(ctx).await?;
        Ok(preview
            .problems
            .iter()
            .map(|(path, message)| FieldProblem {
                path: path.clone(),
                message: message.clone(),
            })
            .collect())
    }
    /// The fees submitting the draft now would compute (the same rules as the application's).
    async fn fees(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Fee>> {
        Ok(self
            .preview(ctx)
            .await?
            .fees
            .iter()
            .cloned()
            .map(Fee::from)
            .collect())
    }
    async fn fee_total_cents(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self
            .preview(ctx)
            .await?
            .fees
            .iter()
            .map(|f| f.amount_cents)
            .sum())
    }
    /// Files attached so far; they move to the application on submission.
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::attachments::graphql::Attachment>> {
        let rows = crate::attachments::download::of_draft(
            &deps(ctx)?.db,
            TenantId(self.model.tenant_id),
            DraftId(self.model.id),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|model| crate::attachments::graphql::Attachment {
                model,
                viewer: Viewer::Applicant,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct ApplicationPayload {
    pub application: Application,
}

/// The applications' queries, in the order the schema lists them.
#[derive(MergedObject, Default)]
pub struct ApplicationsQuery(
    drafts::DraftsQuery,
    queries::ApplicationsAndTasksQuery,
    gdpr::GdprQuery,
);

/// The applications' mutations, in the order the schema lists them.
#[derive(MergedObject, Default)]
pub struct ApplicationsMutation(
    drafts::DraftsMutation,
    submit::SubmitMutation,
    workflow::WorkflowMutation,
    mailbox::MailboxMutation,
    gdpr::GdprMutation,
);
