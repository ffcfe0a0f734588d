//! GraphQL of the workflow: moves, withdrawal, answers to requests for information, and tasks
//! completed.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::{Application, ApplicationPayload, Task, deps};
use crate::applications::access::Viewer;
use crate::applications::workflow;
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;

#[derive(InputObject)]
pub struct TransitionApplicationInput {
    pub id: ID,
    /// Target state key.
    pub to: String,
    pub comment: Option<String>,
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct WithdrawApplicationInput {
    pub id: ID,
    pub reason: Option<String>,
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct ProvideInformationInput {
    pub id: ID,
    /// Field values to change (`null` removes a field); the result must validate.
    pub data: Option<Json<Value>>,
    pub message: Option<String>,
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct CompleteTaskInput {
    pub id: ID,
    pub comment: Option<String>,
}

#[derive(SimpleObject)]
pub struct CompleteTaskPayload {
    pub task: Task,
    pub application: Application,
}

#[derive(Default)]
pub struct WorkflowMutation;

#[Object]
impl WorkflowMutation {
    /// Moves an application along its workflow.
    async fn transition_application(
        &self,
        ctx: &Context<'_>,
        input: TransitionApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let d = deps(ctx)?;
        let (model, viewer) = workflow::transition(
            d,
            &tctx,
            workflow::Transition {
                id,
                to: input.to,
                comment: input.comment,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(ApplicationPayload {
            application: Application::new(model, viewer),
        })
    }

    /// The applicant withdraws the application (before a decision).
    async fn withdraw_application(
        &self,
        ctx: &Context<'_>,
        input: WithdrawApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model =
            workflow::withdraw(deps(ctx)?, &tctx, id, input.reason, input.access_token).await?;
        Ok(ApplicationPayload {
            application: Application::new(model, Viewer::Applicant),
        })
    }

    /// The applicant answers a request for information (changed data and/or a message).
    async fn provide_information(
        &self,
        ctx: &Context<'_>,
        input: ProvideInformationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model = workflow::provide_information(
            deps(ctx)?,
            &tctx,
            workflow::ProvideInformation {
                id,
                data: input.data.map(|d| d.0),
                message: input.message,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(ApplicationPayload {
            application: Application::new(model, Viewer::Applicant),
        })
    }

    /// A department marks its task done.
    async fn complete_task(
        &self,
        ctx: &Context<'_>,
        input: CompleteTaskInput,
    ) -> async_graphql::Result<CompleteTaskPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let (task, model, viewer) =
            workflow::complete_task(deps(ctx)?, &tctx, id, input.comment).await?;
        Ok(CompleteTaskPayload {
            task: Task::new(task),
            application: Application::new(model, viewer),
        })
    }
}
