//! The secure mailbox: one thread per application between the applicant and staff, with read
//! receipts, and staff-only internal notes that applicants never see.

use chrono::Utc;
use entity::{applications, messages};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::applications::access::{self, Viewer};
use crate::applications::timeline::{self, Event};
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, TenantId};
use crate::messaging::outbox::{self, Email};
use crate::state::AppState;

pub const MAX_BODY_CHARS: usize = 10_000;

pub fn check_body(field: &str, body: &str) -> AppResult<()> {
    if body.trim().is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(AppError::invalid(
            field,
            format!("at most {MAX_BODY_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Inserts a message in the caller's transaction (who sends it follows from `ctx`).
pub async fn insert(
    txn: &TenantTx,
    ctx: &TenantCtx,
    app: &applications::Model,
    body: &str,
    internal: bool,
) -> AppResult<messages::Model> {
    let staff = ctx.require_staff().is_ok();
    Ok(messages::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(txn.tenant().0),
        application_id: Set(app.id),
        sender: Set(if staff { "staff" } else { "citizen" }.into()),
        sender_actor: Set(ctx.actor()),
        sender_name: Set(None),
        body: Set(body.to_owned()),
        internal: Set(internal),
        created_at: Set(Utc::now()),
        read_at: Set(None),
    }
    .insert(txn)
    .await?)
}

pub struct SendMessage {
    pub application_id: ApplicationId,
    pub body: String,
    pub internal: bool,
    pub access_token: Option<String>,
}

/// Sends a message (or, staff only, an internal note). The applicant is emailed about staff
/// messages — without their content, which stays in the mailbox.
pub async fn send(
    deps: &AppState,
    ctx: &TenantCtx,
    input: SendMessage,
) -> AppResult<messages::Model> {
    check_body("input.body", &input.body)?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = access::find(&txn, input.application_id).await?;
    let viewer = access::viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await?;
    if input.internal && !viewer.is_staff() {
        return Err(AppError::Forbidden("internal notes are for staff only"));
    }
    if app.erased_at.is_some() {
        return Err(AppError::conflict(
            "input.applicationId",
            "this application has been erased",
        ));
    }
    let message = insert(&txn, ctx, &app, &input.body, input.internal).await?;
    timeline::append_event(
        &txn,
        ctx,
        ApplicationId(app.id),
        Event {
            kind: if input.internal {
                "note_added"
            } else {
                "message_sent"
            },
            internal: input.internal,
            details: Some(serde_json::json!({ "messageId": message.id })),
            ..Event::default()
        },
    )
    .await?;
    if viewer.is_staff()
        && !input.internal
        && let Some(to) = &app.contact_email
    {
        outbox::enqueue(
            &txn,
            Some(txn.tenant()),
            Email {
                to: to.clone(),
                subject: format!("Neue Nachricht zu Ihrem Antrag {}", app.reference),
                body: format!(
                    "Guten Tag,\n\nzu Ihrem Antrag {} liegt eine neue Nachricht der Verwaltung in Ihrem Postfach.\n",
                    app.reference
                ),
                ..Default::default()
            },
        )
        .await?;
    }
    deps.finish(txn, Vec::new()).await?;
    Ok(message)
}

/// The threads of several applications in one read, oldest first; internal notes only for staff.
pub async fn threads_of(
    db: &crate::db::Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
    staff: bool,
) -> AppResult<Vec<messages::Model>> {
    let mut select = messages::Entity::find()
        .filter(messages::Column::ApplicationId.is_in(applications))
        .order_by_asc(messages::Column::Id);
    if !staff {
        select = select.filter(messages::Column::Internal.eq(false));
    }
    crate::db::read_tenant(db, tenant, select).await
}

/// Marks the other side's messages as read (read receipts); returns how many were new.
pub async fn mark_read(
    deps: &AppState,
    ctx: &TenantCtx,
    application: ApplicationId,
    access_token: Option<String>,
) -> AppResult<u64> {
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = access::find(&txn, application).await?;
    let viewer = access::viewer_of(&txn, ctx, &app, access_token.as_deref()).await?;
    let other = if viewer == Viewer::Applicant {
        "staff"
    } else {
        "citizen"
    };
    let res = txn
        .update_many::<messages::Entity>()
        .col_expr(messages::Column::ReadAt, Expr::value(Utc::now()))
        .filter(messages::Column::ApplicationId.eq(app.id))
        .filter(messages::Column::Sender.eq(other))
        .filter(messages::Column::Internal.eq(false))
        .filter(messages::Column::ReadAt.is_null())
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(res.rows_affected)
}

pub async fn delete_all(txn: &TenantTx, application: ApplicationId) -> AppResult<()> {
    txn.delete_many::<messages::Entity>()
        .filter(messages::Column::ApplicationId.eq(application))
        .exec(txn)
        .await?;
    Ok(())
}
