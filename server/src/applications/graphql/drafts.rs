//! GraphQL of drafts: reading one and saving form data to come back to.

use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::{Draft, deps};
use crate::applications::drafts;
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::parse_id;
use crate::graphql::rate_limit_write;
use crate::graphql::tenant_ctx;

#[derive(Default)]
pub struct DraftsQuery;

#[Object]
impl DraftsQuery {
    /// A draft of the caller (anonymous citizens pass the access token of their resume link).
    async fn draft(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<Draft> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (model, service_slug) =
            drafts::draft(deps(ctx)?, &tctx, id, access_token.as_deref()).await?;
        Ok(Draft::new(model, service_slug))
    }

    /// The signed-in citizen's drafts, oldest first (anonymous callers: `UNAUTHENTICATED`,
    /// they keep their resume links; staff: `FORBIDDEN`).
    async fn my_drafts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Draft>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let (page, mut slugs) =
            crate::applications::mine::drafts(&deps(ctx)?.db, &tctx, args).await?;
        Ok(into_connection(
            page,
            |m| m.id,
            |model| {
                let slug = slugs.remove(&model.service_id).unwrap_or_default();
                Draft::new(model, slug)
            },
        ))
    }
}

#[derive(InputObject)]
pub struct SaveDraftInput {
    pub service_slug: String,
    pub data: Json<Value>,
    /// Update this draft instead of starting a new one.
    pub draft_id: Option<ID>,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SaveDraftPayload {
    pub draft: Draft,
    /// For anonymous citizens, on creation only: the secret of the resume link. Not shown again.
    pub access_token: Option<String>,
}

#[derive(Default)]
pub struct DraftsMutation;

#[Object]
impl DraftsMutation {
    /// Saves form data to come back to later. Anonymous citizens get an access token once.
    async fn save_draft(
        &self,
        ctx: &Context<'_>,
        input: SaveDraftInput,
    ) -> async_graphql::Result<SaveDraftPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_write(ctx).await?;
        let draft_id = input
            .draft_id
            .as_ref()
            .map(|d| parse_id("input.draftId", d))
            .transpose()?;
        let slug = input.service_slug.clone();
        let (model, access_token) = drafts::save_draft(
            deps(ctx)?,
            &tctx,
            drafts::FormInput {
                service_slug: input.service_slug,
                draft_id,
                data: input.data.0,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SaveDraftPayload {
            draft: Draft::new(model, slug),
            access_token,
        })
    }
}
