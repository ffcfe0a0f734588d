//! GraphQL: `fitConnectRoutes(leikaKey)` and the services' hand-over configuration for tenant
//! administrators; the hand-over's state for staff (`Application.fitConnect`).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{fit_connect_handovers, fit_connect_submissions};
use secrecy::SecretString;

use super::handover::{self, HandoverInput};
use super::routing::{LeikaKey, Route};
use crate::graphql::{parse_id, state, tenant_ctx};
use crate::state::AppState;
use crate::tenancy::types::Ags;

/// A FIT-Connect destination (Zustellpunkt) responsible for a service in an area, as the
/// routing API names it.
#[derive(SimpleObject, Debug)]
pub struct FitConnectRoute {
    /// The destination's ID: where a FIT-Connect submission is addressed.
    pub destination_id: ID,
    /// The FIT-Connect portal's signature (JWS) over the addressing information, as received.
    pub destination_signature: String,
    /// Full name of the responsible authority.
    pub destination_name: Option<String>,
    pub destination_short_name: Option<String>,
    /// Where the routing information comes from (e.g. `PVOG`).
    pub origin: Option<String>,
}

impl From<Route> for FitConnectRoute {
    fn from(r: Route) -> Self {
        Self {
            destination_id: ID(r.destination_id.to_string()),
            destination_signature: r.destination_signature,
            destination_name: r.destination_name,
            destination_short_name: r.destination_short_name,
            origin: r.origin,
        }
    }
}

/// The routing API's answer for a service in the tenant's municipality.
#[derive(SimpleObject, Debug)]
pub struct FitConnectRouting {
    /// The municipality's AGS the routes were asked for.
    pub ags: String,
    pub leika_key: String,
    /// How many routes the API knows (the first 100 are in `routes`).
    pub total_count: i32,
    pub routes: Vec<FitConnectRoute>,
}

#[derive(Default)]
pub struct FitConnectQuery;

#[Object]
impl FitConnectQuery {
    /// The service's FIT-Connect hand-over, if it has one. Tenant administrators.
    async fn fit_connect_handover(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
    ) -> async_graphql::Result<Option<FitConnectHandover>> {
        let tctx = tenant_ctx(ctx)?;
        let st = state::<AppState>(ctx)?;
        let found =
            handover::of_service(st.db.orm(), &tctx, parse_id("serviceId", &service_id)?).await?;
        Ok(found.map(FitConnectHandover))
    }

    /// The FIT-Connect destinations responsible for the service with this Leistungsschlüssel
    /// (LeiKa key, 14 digits starting with 99) in the tenant's municipality (its AGS), from the
    /// FIT-Connect routing API. Tenant administrators only. A malformed key is
    /// `VALIDATION_FAILED` on `leikaKey` (as is a query the API refuses); the API's rate limit
    /// is `RATE_LIMITED`.
    async fn fit_connect_routes(
        &self,
        ctx: &Context<'_>,
        leika_key: String,
    ) -> async_graphql::Result<FitConnectRouting> {
        let tctx = tenant_ctx(ctx)?;
        tctx.require_tenant_admin()?;
        let leika = LeikaKey::parse("leikaKey", &leika_key)?;
        let ags = Ags::parse("tenant.ags", &tctx.tenant.ags)?;
        let st = state::<AppState>(ctx)?;
        let result = st.fit_connect_routing.routes(&leika, &ags).await?;
        Ok(FitConnectRouting {
            ags: ags.to_string(),
            leika_key: leika.as_str().to_owned(),
            total_count: i32::try_from(result.total_count).unwrap_or(i32::MAX),
            routes: result.routes.into_iter().map(Into::into).collect(),
        })
    }
}

/// A service's hand-over through FIT-Connect (the client secret is never shown).
pub struct FitConnectHandover(pub fit_connect_handovers::Model);

#[Object]
impl FitConnectHandover {
    async fn service_id(&self) -> ID {
        ID(self.0.service_id.to_string())
    }
    /// The destination (Zustellpunkt) applications go to.
    async fn destination_id(&self) -> ID {
        ID(self.0.destination_id.to_string())
    }
    /// The service's Leistungsschlüssel, as the destination offers it.
    async fn leika_key(&self) -> &str {
        &self.0.leika_key
    }
    /// The submission schema the destination expects the data in.
    async fn schema_uri(&self) -> &str {
        &self.0.schema_uri
    }
    /// The API client applications are sent as.
    async fn client_id(&self) -> &str {
        &self.0.client_id
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// Where an application's hand-over stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FitConnectState {
    /// Queued; not yet announced to FIT-Connect.
    Pending,
    /// Announced; data and attachments are being sent.
    Created,
    /// Sent; the destination has not answered yet.
    Submitted,
    /// The destination accepted it.
    Accepted,
    /// The destination rejected it (see `problems`).
    Rejected,
    /// It could not be sent (see `lastError`).
    Failed,
}

/// An application's hand-over through FIT-Connect.
pub struct FitConnectSubmission(pub fit_connect_submissions::Model);

#[Object]
impl FitConnectSubmission {
    async fn state(&self) -> FitConnectState {
        match self.0.state.as_str() {
            "created" => FitConnectState::Created,
            "submitted" => FitConnectState::Submitted,
            "accepted" => FitConnectState::Accepted,
            "rejected" => FitConnectState::Rejected,
            "failed" => FitConnectState::Failed,
            _ => FitConnectState::Pending,
        }
    }
    async fn destination_id(&self) -> ID {
        ID(self.0.destination_id.to_string())
    }
    /// FIT-Connect's id of the submission, once created.
    async fn submission_id(&self) -> Option<ID> {
        self.0.submission_id.map(|id| ID(id.to_string()))
    }
    /// FIT-Connect's case (Vorgang) the submission belongs to.
    async fn case_id(&self) -> Option<ID> {
        self.0.case_id.map(|id| ID(id.to_string()))
    }
    /// Why the last attempt failed (it is retried unless the state is `FAILED`).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// The destination's reasons for a rejection, as it sent them.
    async fn problems(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.problems.clone().map(async_graphql::Json)
    }
    async fn submitted_at(&self) -> Option<DateTime<Utc>> {
        self.0.submitted_at
    }
    /// When the destination accepted or rejected it.
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
}

#[derive(InputObject)]
pub struct ConfigureFitConnectHandoverInput {
    pub service_id: ID,
    /// From `fitConnectRoutes`, or as the authority gave it.
    pub destination_id: ID,
    pub leika_key: String,
    pub schema_uri: String,
    pub client_id: String,
    /// Stored sealed and never shown again; omit to keep the stored one.
    pub client_secret: Option<String>,
}

#[derive(Default)]
pub struct FitConnectMutation;

#[Object]
impl FitConnectMutation {
    /// Hands the service's applications over to a FIT-Connect destination (besides the export),
    /// sent as the given API client. Tenant administrators.
    async fn configure_fit_connect_handover(
        &self,
        ctx: &Context<'_>,
        input: ConfigureFitConnectHandoverInput,
    ) -> async_graphql::Result<FitConnectHandover> {
        let tctx = tenant_ctx(ctx)?;
        let st = state::<AppState>(ctx)?;
        let model = handover::configure(
            st.db.orm(),
            &st.payments.sealer,
            &tctx,
            HandoverInput {
                service_id: parse_id("input.serviceId", &input.service_id)?,
                destination_id: parse_id("input.destinationId", &input.destination_id)?,
                leika_key: input.leika_key,
                schema_uri: input.schema_uri,
                client_id: input.client_id,
                client_secret: input.client_secret.map(SecretString::from),
            },
        )
        .await?;
        Ok(FitConnectHandover(model))
    }

    /// Queues a `FAILED` hand-over again, once its cause is fixed. Tenant administrators;
    /// any other state is `CONFLICT`.
    async fn retry_fit_connect_handover(
        &self,
        ctx: &Context<'_>,
        application_id: ID,
    ) -> async_graphql::Result<FitConnectSubmission> {
        let tctx = tenant_ctx(ctx)?;
        let st = state::<AppState>(ctx)?;
        let id = parse_id("applicationId", &application_id)?;
        let sub = handover::retry(st.db.orm(), &tctx, id).await?;
        st.outbox_wake.notify_one();
        Ok(FitConnectSubmission(sub))
    }

    /// Stops handing the service's applications over through FIT-Connect. Tenant
    /// administrators; whether there was a hand-over to remove.
    async fn remove_fit_connect_handover(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
    ) -> async_graphql::Result<bool> {
        let tctx = tenant_ctx(ctx)?;
        let st = state::<AppState>(ctx)?;
        Ok(handover::remove(st.db.orm(), &tctx, parse_id("serviceId", &service_id)?).await?)
    }
}
