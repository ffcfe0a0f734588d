//! Submission: validation, routing to departments as tasks, the reference number, the first
//! timeline event and the notifications, in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Datelike as _, Utc};
use entity::states::TaskState;
use entity::{application_tasks, applications, departments, drafts};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set,
    Statement,
};
use uuid::Uuid;

use super::access::citizen_of;
use super::drafts::{FormInput, open_form, owned_draft};
use super::rules;
use super::service::{state_label, status_change};
use super::timeline::{Event, append_event};
use crate::attachments::handover;
use crate::auth::tokens::{hash_secret, random_secret};
use crate::context::{Principal, TenantCtx};
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::ids::ApplicationId;
use crate::messaging::outbox::{self, Email};
use crate::state::AppState;

/// Validates and submits an application: reference number, tasks for the routed departments,
/// the first timeline event, notifications — one transaction. Returns the application and, for
/// an anonymous applicant, the access token of its status link.
pub async fn submit(
    deps: &AppState,
    ctx: &TenantCtx,
    input: FormInput,
) -> AppResult<(applications::Model, Option<String>)> {
    let (txn, service) = open_form(deps, ctx, &input).await?;
    let pinned = deps
        .pinned(&txn, service.id, service.current_revision)
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
    let files = handover::of_draft_in(&txn, input.draft_id).await?;
    let missing = handover::missing_documents(&pinned.content, &input.data, &files);
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }

    // Departments first: a routing rule naming a department that no longer exists is the
    // municipality's error, not the citizen's — say so instead of losing the application.
    let routes = rules::route(&pinned.content, &input.data);
    let keys: Vec<&str> = routes.iter().map(|(d, _)| d.as_str()).collect();
    let depts: HashMap<String, departments::Model> = txn
        .select::<departments::Entity>()
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
    let app_id = ApplicationId::new();
    let tasks: Vec<application_tasks::ActiveModel> = routes
        .iter()
        .map(|(dept_key, rule_key)| application_tasks::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id.0),
            application_id: Set(app_id.0),
            department_id: Set(depts[dept_key].id),
            rule_key: Set(rule_key.clone()),
            state: Set(TaskState::Open),
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
    let (token_email, assurance, postbox) = match &ctx.principal {
        Principal::Citizen(c) => (
            c.email.as_deref(),
            c.assurance.map(|a| a.as_str().to_owned()),
            c.postbox.clone(),
        ),
        _ => (None, None, None),
    };
    let contact = rules::contact_email(token_email, &input.data);

    let year = local_year(&ctx.tenant.time_zone, now);
    let (year, number, seq) = next_number(&txn, year).await?;
    let reference = rules::reference(&ctx.tenant.slug, year, number);
    let app = applications::ActiveModel {
        id: Set(app_id.0),
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
        citizen_assurance: Set(assurance),
        citizen_postbox: Set(postbox),
        submitted_at: Set(now),
        updated_at: Set(now),
        decided_at: Set(None),
        closed_at: Set(None),
        erased_at: Set(None),
    }
    .insert(&txn)
    .await?;
    if let Some(draft_id) = input.draft_id {
        handover::move_to_application(&txn, draft_id, app_id).await?;
        drafts::Entity::delete_by_id(draft_id.0).exec(&txn).await?;
    }
    // Back-office hand-over through FIT-Connect, when the service has one: queued with the
    // application, so it is never lost and never sent for an application that was not stored.
    crate::fitconnect::handover::enqueue_if_configured(&txn, service.id, app_id).await?;

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
    outbox::enqueue_all(&txn, Some(txn.tenant()), mails).await?;
    let change = status_change(&app, now);
    deps.finish(txn, vec![change]).await?;
    Ok((app, token))
}

/// Checks foreign keys at commit instead of per statement, for this transaction. (PostgreSQL:
/// the keys from the application's tasks and events are `INITIALLY DEFERRED` already.)
async fn defer_foreign_keys(txn: &TenantTx) -> AppResult<()> {
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
async fn next_number(txn: &TenantTx, year: i32) -> AppResult<(i32, i64, i64)> {
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
            [txn.tenant().0.into(), year.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal("reference counter", anyhow::anyhow!("no row")))?;
    Ok((
        row.try_get("", "year")?,
        row.try_get("", "last_number")?,
        row.try_get("", "last_seq")?,
    ))
}
