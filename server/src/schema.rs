//! The GraphQL schema: one `Query`/`Mutation` object per domain, merged here. Part of the
//! composition layer with [`crate::routes`] and [`crate::startup`]: it names every domain's
//! GraphQL; no domain names it. What the domains' GraphQL shares is in [`crate::graphql`].

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::applications::graphql::subscription::ApplicationsSubscription;
use crate::applications::graphql::{ApplicationsMutation, ApplicationsQuery};

use crate::appointments::graphql::{AppointmentsMutation, AppointmentsQuery};
use crate::attachments::graphql::{AttachmentsMutation, AttachmentsQuery};
use crate::audit::graphql::AuditQuery;
use crate::auth::graphql::{AuthMutation, AuthQuery};
use crate::fitconnect::graphql::{FitConnectMutation, FitConnectQuery};
use crate::marketplace::fim::graphql::FimMutation;
use crate::marketplace::graphql::{MarketplaceMutation, MarketplaceQuery};
use crate::payments::graphql::{PaymentsMutation, PaymentsQuery};
use crate::services::graphql::proposals::ProposalsMutation;
use crate::services::graphql::{ServicesMutation, ServicesQuery};
use crate::settings::GraphqlSettings;
use crate::tenancy::graphql::{TenancyMutation, TenancyQuery};

#[derive(MergedObject, Default)]
pub struct Query(
    AuthQuery,
    TenancyQuery,
    AuditQuery,
    MarketplaceQuery,
    ServicesQuery,
    ApplicationsQuery,
    AttachmentsQuery,
    AppointmentsQuery,
    PaymentsQuery,
    FitConnectQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    TenancyMutation,
    MarketplaceMutation,
    FimMutation,
    ServicesMutation,
    ProposalsMutation,
    ApplicationsMutation,
    AttachmentsMutation,
    AppointmentsMutation,
    PaymentsMutation,
    FitConnectMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(ApplicationsSubscription);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema with the configured limits. Per-request data (the [`RequestCtx`], the
/// DataLoaders) is attached by the HTTP layer; application state by [`crate::startup`].
pub fn build_schema(
    limits_cfg: &GraphqlSettings,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(limits_cfg.max_depth)
    .limit_complexity(limits_cfg.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(10)
}

/// The SDL as committed in `frontend-schema/schema.graphql`.
pub fn sdl() -> String {
    let schema = build_schema(&GraphqlSettings::default()).finish();
    let mut sdl = schema.sdl();
    if !sdl.ends_with('\n') {
        sdl.push('\n');
    }
    sdl
}
