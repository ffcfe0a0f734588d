//! GraphQL of the live status subscription.

use async_graphql::{Context, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt as _};

use super::deps;
use crate::applications::{access, live};
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;

/// A status change pushed to subscribers.
#[derive(SimpleObject, Clone)]
pub struct ApplicationStatus {
    pub application_id: ID,
    pub reference: String,
    pub state: String,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ApplicationsSubscription;

#[Subscription]
impl ApplicationsSubscription {
    /// The application's status now, then every change (from any server replica).
    async fn application_status_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = ApplicationStatus>> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let d = deps(ctx)?;
        // Subscribe before reading, so no change between the read and the subscription is lost.
        let rx = d.live.subscribe();
        let (model, _viewer) = access::application(d, &tctx, id, access_token.as_deref()).await?;
        let current = live::StatusChange {
            tenant_id: tctx.tenant_id.0,
            application_id: model.id,
            reference: model.reference,
            state: model.state,
            at: model.updated_at,
        };
        let changes = live::follow(rx, d.db.clone(), tctx.tenant_id, current);
        Ok(changes.map(|c| ApplicationStatus {
            application_id: ID(c.application_id.to_string()),
            reference: c.reference,
            state: c.state,
            at: c.at,
        }))
    }
}
