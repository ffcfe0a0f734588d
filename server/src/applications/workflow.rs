//! The workflow: moves along the pinned revision's states, withdrawal, answers to requests for
//! information, and departments completing their tasks.

use chrono::Utc;
use entity::states::TaskState;
use entity::{application_tasks, applications, departments};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;

use super::access::{Viewer, departments_of, is_admin, lock, viewer_of};
use super::rules::{self, Mover};
use super::service::{state_label, status_change};
use super::timeline::{Event, append_event};
use crate::content::ServiceContent;
use crate::context::{Principal, TenantCtx};
use crate::db::{TenantTx, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::ApplicationId;
use crate::messaging::outbox::{self, Email};
use crate::state::AppState;

pub struct Transition {
    pub id: ApplicationId,
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
    deps: &AppState,
    ctx: &TenantCtx,
    input: Transition,
) -> AppResult<(applications::Model, Viewer)> {
    check_comment("input.comment", input.comment.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, input.id).await?;
    let viewer = viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await?;
    let mover = if viewer.is_staff() {
        Mover::Staff
    } else {
        Mover::Citizen
    };
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
    let workflow = &pinned.content.workflow;
    rules::find_move(workflow, &app.state, &input.to, mover)?;
    let terminal = rules::state_of(workflow, &input.to).is_some_and(|s| s.terminal);
    // Services that are paid first: staff may close an unpaid application, not work on it.
    if mover == Mover::Staff
        && !terminal
        && !crate::payments::service::processing_allowed(&txn, &app, &pinned.content).await?
    {
        return Err(unpaid());
    }
    if terminal && mover == Mover::Staff {
        let open = open_tasks(&txn, ApplicationId(app.id)).await?;
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
async fn open_tasks(txn: &TenantTx, application: ApplicationId) -> AppResult<Vec<String>> {
    let open: Vec<Uuid> = txn
        .select::<application_tasks::Entity>()
        .filter(application_tasks::Column::ApplicationId.eq(application))
        .filter(application_tasks::Column::State.eq(TaskState::Open))
        .all(txn)
        .await?
        .into_iter()
        .map(|t| t.department_id)
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    Ok(txn
        .select::<departments::Entity>()
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
    txn: &TenantTx,
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
        txn.update_many::<application_tasks::Entity>()
            .col_expr(
                application_tasks::Column::State,
                Expr::value(TaskState::Cancelled),
            )
            .col_expr(application_tasks::Column::CompletedAt, Expr::value(now))
            .filter(application_tasks::Column::ApplicationId.eq(app.id))
            .filter(application_tasks::Column::State.eq(TaskState::Open))
            .exec(txn)
            .await?;
    }
    let app = active.update(txn).await?;
    append_event(
        txn,
        ctx,
        ApplicationId(app.id),
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
            Some(txn.tenant()),
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
    deps: &AppState,
    ctx: &TenantCtx,
    id: ApplicationId,
    reason: Option<String>,
    access_token: Option<String>,
) -> AppResult<applications::Model> {
    check_comment("input.reason", reason.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, id).await?;
    if viewer_of(&txn, ctx, &app, access_token.as_deref()).await? != Viewer::Applicant {
        return Err(AppError::Forbidden("only the applicant can withdraw"));
    }
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
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
    pub id: ApplicationId,
    /// Field values to change (merged into the data; the result must validate).
    pub data: Option<Value>,
    pub message: Option<String>,
    pub access_token: Option<String>,
}

/// The applicant answers a request for information with data, a message, or both; the
/// application moves back to review.
pub async fn provide_information(
    deps: &AppState,
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
    let app = lock(&txn, input.id).await?;
    if viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await? != Viewer::Applicant {
        return Err(AppError::Forbidden("only the applicant can answer"));
    }
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
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
        ApplicationId(app.id),
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
    deps: &AppState,
    ctx: &TenantCtx,
    task_id: Uuid,
    comment: Option<String>,
) -> AppResult<(application_tasks::Model, applications::Model, Viewer)> {
    ctx.require_staff()?;
    check_comment("input.comment", comment.as_deref())?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let task = txn
        .select::<application_tasks::Entity>()
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
        if !departments_of(&txn, user_id.0)
            .await?
            .contains(&task.department_id)
        {
            return Err(AppError::NotFound("task"));
        }
        Viewer::Staff { user: user_id.0 }
    };
    if task.state != TaskState::Open {
        return Err(AppError::conflict(
            "input.id",
            format!("this task is already {}", task.state),
        ));
    }
    let app = lock(&txn, ApplicationId(task.application_id)).await?;
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
    if !crate::payments::service::processing_allowed(&txn, &app, &pinned.content).await? {
        return Err(unpaid());
    }
    let mut active: application_tasks::ActiveModel = task.into();
    active.state = Set(TaskState::Done);
    active.completed_by = Set(ctx.staff_user());
    active.comment = Set(comment.clone());
    active.completed_at = Set(Some(Utc::now()));
    let task = active.update(&txn).await?;
    let dept = txn
        .select::<departments::Entity>()
        .filter(departments::Column::Id.eq(task.department_id))
        .one(&txn)
        .await?
        .map(|d| d.name)
        .unwrap_or_default();
    append_event(
        &txn,
        ctx,
        ApplicationId(app.id),
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
