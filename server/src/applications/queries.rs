//! Reading applications and tasks for staff: work lists with filters and search, the export
//! batch for back-office systems, and bulk reads for loaders.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{application_tasks, applications, departments};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait as _};
use uuid::Uuid;

use super::access::{departments_of, is_admin};
use crate::context::{Principal, TenantCtx};
use crate::db::{Db, TenantTx, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Page, PageArgs, fetch_page};
use crate::ids::TenantId;

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
    txn: &TenantTx,
    ctx: &TenantCtx,
    mine: Option<Vec<Uuid>>,
) -> AppResult<sea_orm::Select<applications::Entity>> {
    ctx.require_staff()?;
    let mut select = txn.select::<applications::Entity>();
    if let Some(mine) = mine {
        select = select.filter(
            applications::Column::Id.in_subquery(
                txn.select::<application_tasks::Entity>()
                    .select_only()
                    .column(application_tasks::Column::ApplicationId)
                    .filter(application_tasks::Column::DepartmentId.is_in(mine))
                    .into_query(),
            ),
        );
    }
    Ok(select)
}

/// Opens the tenant transaction of a staff work list, with the departments whose work the
/// caller sees (`None`: all, for administrators), read in that same transaction so scope and rows
/// agree and cost one transaction. Only staff; a platform administrator's read under a
/// break-glass grant is recorded in the audit log first (`what` names it).
async fn open_work_list(
    db: &Db,
    ctx: &TenantCtx,
    what: &str,
) -> AppResult<(TenantTx, Option<Vec<Uuid>>)> {
    ctx.require_staff()?;
    crate::audit::break_glass_read(db, ctx, what, format!("tenant:{}", ctx.tenant_id)).await?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let scope = match &ctx.principal {
        _ if is_admin(ctx) => None,
        Principal::Staff { user_id, .. } => Some(departments_of(&txn, user_id.0).await?),
        _ => Some(Vec::new()),
    };
    Ok((txn, scope))
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// What a page of applications reads along with its rows, in the same transaction, because the
/// query asks for it: each nested level read apart would cost a transaction of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Along {
    pub tasks: bool,
    /// The departments of those tasks.
    pub departments: bool,
}

/// A page of applications with what was read along (see [`Along`]).
pub struct ApplicationsPage {
    pub page: Page<applications::Model>,
    /// Tasks by application, oldest first; `None` when not asked for.
    pub tasks: Option<HashMap<Uuid, Vec<application_tasks::Model>>>,
    /// The departments of those tasks by ID (empty when not asked for).
    pub departments: HashMap<Uuid, departments::Model>,
}

pub async fn list_applications(
    db: &Db,
    ctx: &TenantCtx,
    filter: ApplicationFilter,
    args: PageArgs,
    along: Along,
) -> AppResult<ApplicationsPage> {
    let search = filter.search.map(|s| s.trim().to_lowercase());
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(AppError::invalid("filter.search", "at most 200 characters"));
    }
    let (txn, scope) = open_work_list(db, ctx, "applications").await?;
    let mut select = visible_applications(&txn, ctx, scope)?;
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
    if let Some(search) = search {
        for word in search.split_whitespace() {
            select = select.filter(sea_orm::sea_query::ExprTrait::like(
                Expr::col(applications::Column::SearchText),
                sea_orm::sea_query::LikeExpr::new(format!("%{}%", escape_like(word))).escape('\\'),
            ));
        }
    }
    let page = fetch_page(&txn, select, applications::Column::Id, |m| m.id, args).await?;
    let mut tasks = None;
    let mut departments = HashMap::new();
    if along.tasks && !page.items.is_empty() {
        let ids = page.items.iter().map(|a| a.id).collect();
        let rows = tasks_in(&txn, ids).await?;
        if along.departments {
            let mut wanted: Vec<Uuid> = rows.iter().map(|t| t.department_id).collect();
            wanted.sort_unstable();
            wanted.dedup();
            departments = crate::tenancy::service::departments_by_ids(&txn, &wanted).await?;
        }
        let mut by_application: HashMap<Uuid, Vec<application_tasks::Model>> = HashMap::new();
        for t in rows {
            by_application.entry(t.application_id).or_default().push(t);
        }
        tasks = Some(by_application);
    }
    txn.commit().await?;
    Ok(ApplicationsPage {
        page,
        tasks,
        departments,
    })
}

/// Applications after export sequence `after`, in sequence (= commit) order, for polling
/// back-office systems.
pub async fn export_batch(
    db: &Db,
    ctx: &TenantCtx,
    after: i64,
    limit: u64,
) -> AppResult<Vec<applications::Model>> {
    let (txn, scope) = open_work_list(db, ctx, "applications export").await?;
    let rows = visible_applications(&txn, ctx, scope)?
        .filter(applications::Column::Seq.gt(after))
        .order_by_asc(applications::Column::Seq)
        .limit(limit)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
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
    let (txn, scope) = open_work_list(db, ctx, "tasks").await?;
    let mut select = txn.select::<application_tasks::Entity>();
    match (scope, filter.department) {
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
    let page = fetch_page(&txn, select, application_tasks::Column::Id, |m| m.id, args).await?;
    txn.commit().await?;
    Ok(page)
}

/// Tasks of several applications in one read.
pub async fn tasks_of(
    db: &Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
) -> AppResult<Vec<application_tasks::Model>> {
    let txn = begin_tenant(db, tenant).await?;
    let rows = tasks_in(&txn, applications).await?;
    txn.commit().await?;
    Ok(rows)
}

/// [`tasks_of`] inside an open tenant transaction, oldest first.
async fn tasks_in(
    txn: &TenantTx,
    applications: Vec<Uuid>,
) -> AppResult<Vec<application_tasks::Model>> {
    Ok(txn
        .select::<application_tasks::Entity>()
        .filter(application_tasks::Column::ApplicationId.is_in(applications))
        .order_by_asc(application_tasks::Column::Id)
        .all(txn)
        .await?)
}
