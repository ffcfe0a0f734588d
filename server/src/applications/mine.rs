//! What a signed-in citizen has here: their drafts and their applications, found by the identity
//! their provider gives them (issuer and subject), never by anything they could claim.

use std::collections::HashMap;

use entity::{applications, drafts, tenant_services};
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use crate::context::{Citizen, Principal, TenantCtx};
use crate::db::{Db, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Page, PageArgs, fetch_page};

/// The signed-in citizen; anonymous callers are asked to sign in, staff have no applications
/// of their own.
fn citizen(ctx: &TenantCtx) -> AppResult<&Citizen> {
    match &ctx.principal {
        Principal::Citizen(c) => Ok(c),
        Principal::Anonymous => Err(AppError::Unauthenticated),
        _ => Err(AppError::Forbidden(
            "only a signed-in citizen has applications of their own",
        )),
    }
}

/// The caller's applications, oldest first.
pub async fn applications(
    db: &Db,
    ctx: &TenantCtx,
    args: PageArgs,
) -> AppResult<Page<applications::Model>> {
    let me = citizen(ctx)?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let select = txn
        .select::<applications::Entity>()
        .filter(applications::Column::CitizenIssuer.eq(me.issuer.as_str()))
        .filter(applications::Column::CitizenSubject.eq(me.subject.as_str()));
    let page = fetch_page(&txn, select, applications::Column::Id, |m| m.id, args).await?;
    txn.commit().await?;
    Ok(page)
}

/// The caller's drafts, oldest first, each with its service's slug.
pub async fn drafts(
    db: &Db,
    ctx: &TenantCtx,
    args: PageArgs,
) -> AppResult<(Page<drafts::Model>, HashMap<Uuid, String>)> {
    let me = citizen(ctx)?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let select = txn
        .select::<drafts::Entity>()
        .filter(drafts::Column::CitizenIssuer.eq(me.issuer.as_str()))
        .filter(drafts::Column::CitizenSubject.eq(me.subject.as_str()));
    let page = fetch_page(&txn, select, drafts::Column::Id, |m| m.id, args).await?;
    let mut services: Vec<Uuid> = page.items.iter().map(|d| d.service_id).collect();
    services.sort_unstable();
    services.dedup();
    let slugs = if services.is_empty() {
        HashMap::new()
    } else {
        txn.select::<tenant_services::Entity>()
            .filter(tenant_services::Column::Id.is_in(services))
            .all(&txn)
            .await?
            .into_iter()
            .map(|s| (s.id, s.slug))
            .collect()
    };
    txn.commit().await?;
    Ok((page, slugs))
}
