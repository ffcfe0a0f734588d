//! The timeline of an application: events appended in the changing transaction, read in bulk.

use chrono::Utc;
use entity::application_events;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::context::{Principal, TenantCtx};
use crate::db::{Db, TenantTx};
use crate::error::AppResult;
use crate::ids::{ApplicationId, TenantId};

#[derive(Default)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub details: Option<Value>,
    pub internal: bool,
}

pub async fn append_event(
    txn: &TenantTx,
    ctx: &TenantCtx,
    application: ApplicationId,
    event: Event<'_>,
) -> AppResult<()> {
    application_events::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(txn.tenant().0),
        application_id: Set(application.0),
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
    .insert(txn)
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
    let mut select = application_events::Entity::find()
        .filter(application_events::Column::ApplicationId.is_in(applications))
        .order_by_asc(application_events::Column::Id);
    if !staff {
        select = select.filter(application_events::Column::Internal.eq(false));
    }
    crate::db::read_tenant(db, tenant, select).await
}

/// A display name for the timeline.
fn actor_name(ctx: &TenantCtx) -> Option<String> {
    match &ctx.principal {
        Principal::Citizen(c) => c.name.clone(),
        _ => None,
    }
}
