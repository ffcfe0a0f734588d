//! GraphQL of submission.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::{Application, deps};
use crate::applications::access::Viewer;
use crate::applications::{drafts, submit};
use crate::graphql::parse_id;
use crate::graphql::rate_limit_write;
use crate::graphql::tenant_ctx;

#[derive(InputObject)]
pub struct SubmitApplicationInput {
    pub service_slug: String,
    pub data: Json<Value>,
    /// The draft this submission finishes (it is removed).
    pub draft_id: Option<ID>,
    /// The draft's access token (anonymous citizens).
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SubmitApplicationPayload {
    pub application: Application,
    /// For anonymous citizens: the secret of the status link. Not shown again.
    pub access_token: Option<String>,
}

#[derive(Default)]
pub struct SubmitMutation;

#[Object]
impl SubmitMutation {
    /// Submits an application to a live service of this municipality.
    async fn submit_application(
        &self,
        ctx: &Context<'_>,
        input: SubmitApplicationInput,
    ) -> async_graphql::Result<SubmitApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_write(ctx).await?;
        let draft_id = input
            .draft_id
            .as_ref()
            .map(|d| parse_id("input.draftId", d))
            .transpose()?;
        let (model, access_token) = submit::submit(
            deps(ctx)?,
            &tctx,
            drafts::FormInput {
                service_slug: input.service_slug,
                data: input.data.0,
                draft_id,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SubmitApplicationPayload {
            application: Application::new(model, Viewer::Applicant),
            access_token,
        })
    }
}
