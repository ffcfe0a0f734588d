//! GraphQL of GDPR: a citizen's data export, and erasure after the retention period.

use async_graphql::{Context, ID, InputObject, Json, Object};
use serde_json::Value;

use super::{Application, ApplicationPayload, deps};
use crate::applications::access::Viewer;
use crate::applications::gdpr;
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;

#[derive(Default)]
pub struct GdprQuery;

#[Object]
impl GdprQuery {
    /// Everything stored about the signed-in citizen here (GDPR Art. 15 / 20), as JSON.
    async fn export_my_data(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let tctx = tenant_ctx(ctx)?;
        Ok(Json(gdpr::export_my_data(deps(ctx)?, &tctx).await?))
    }
}

#[derive(InputObject)]
pub struct EraseApplicationInput {
    pub id: ID,
}

#[derive(Default)]
pub struct GdprMutation;

#[Object]
impl GdprMutation {
    /// Erases a closed application after its retention period (tenant administrators).
    async fn erase_application(
        &self,
        ctx: &Context<'_>,
        input: EraseApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model = gdpr::erase(deps(ctx)?, &tctx, id).await?;
        Ok(ApplicationPayload {
            application: Application::new(model, Viewer::Admin),
        })
    }
}
