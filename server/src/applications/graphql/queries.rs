//! GraphQL of reading applications: one application for those who may see it, and the work
//! lists of staff.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::{Application, Task, deps};
use crate::applications::access::{self, Viewer};
use crate::applications::queries;
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;

#[derive(InputObject, Default)]
pub struct ApplicationsFilter {
    pub state: Option<String>,
    /// Service slug.
    pub service: Option<String>,
    pub submitted_after: Option<DateTime<Utc>>,
    /// Words in the reference or the form data (all must match).
    pub search: Option<String>,
}

#[derive(InputObject, Default)]
pub struct TasksFilter {
    pub department: Option<ID>,
    /// `open`, `done` or `cancelled`.
    pub state: Option<String>,
}

#[derive(Default)]
pub struct ApplicationsAndTasksQuery;

#[Object]
impl ApplicationsAndTasksQuery {
    /// One application: for its applicant (signed in, or with the access token of the status
    /// link), staff of a department it is routed to, and tenant administrators.
    async fn application(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<Application> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (model, viewer) =
            access::application(deps(ctx)?, &tctx, id, access_token.as_deref()).await?;
        Ok(Application::new(model, viewer))
    }

    /// Applications the caller's departments work on (all of them for administrators).
    async fn applications(
        &self,
        ctx: &Context<'_>,
        filter: Option<ApplicationsFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Application>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let f = filter.unwrap_or_default();
        // Tasks and their departments, when asked for, come along in the page's transaction.
        let task = ctx.look_ahead().field("edges").field("node").field("tasks");
        let along = queries::Along {
            tasks: task.exists(),
            departments: task.field("department").exists(),
        };
        let queries::ApplicationsPage {
            page,
            mut tasks,
            departments,
        } = queries::list_applications(
            &deps(ctx)?.db,
            &tctx,
            queries::ApplicationFilter {
                state: f.state,
                service: f.service,
                submitted_after: f.submitted_after,
                search: f.search,
                after_seq: None,
            },
            args,
            along,
        )
        .await?;
        let viewer = if crate::context::Principal::has_role(
            &tctx.principal,
            crate::context::Role::TenantAdmin,
        ) {
            Viewer::Admin
        } else {
            Viewer::Staff {
                user: tctx.staff_user().unwrap_or_default(),
            }
        };
        Ok(into_connection(
            page,
            |m| m.id,
            |model| {
                let read_along = tasks.as_mut().map(|by_application| {
                    let rows = by_application.remove(&model.id).unwrap_or_default();
                    rows.into_iter()
                        .map(|t| Task {
                            department: departments.get(&t.department_id).cloned(),
                            model: t,
                        })
                        .collect()
                });
                Application {
                    model,
                    viewer: viewer.clone(),
                    tasks: read_along,
                }
            },
        ))
    }

    /// The signed-in citizen's applications, oldest first (anonymous callers:
    /// `UNAUTHENTICATED`; staff: `FORBIDDEN`).
    async fn my_applications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Application>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let page = crate::applications::mine::applications(&deps(ctx)?.db, &tctx, args).await?;
        Ok(into_connection(
            page,
            |m| m.id,
            |model| Application::new(model, Viewer::Applicant),
        ))
    }

    /// Tasks of the caller's departments.
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TasksFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Task>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let f = filter.unwrap_or_default();
        let department = f
            .department
            .as_ref()
            .map(|d| parse_id("filter.department", d))
            .transpose()?;
        let page = queries::list_tasks(
            &deps(ctx)?.db,
            &tctx,
            queries::TaskFilter {
                department,
                state: f.state,
            },
            args,
        )
        .await?;
        Ok(into_connection(page, |m| m.id, Task::new))
    }
}
