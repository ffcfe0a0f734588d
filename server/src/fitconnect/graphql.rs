//! GraphQL: `fitConnectRoutes(leikaKey)` for tenant administrators.

use async_graphql::{Context, ID, Object, SimpleObject};

use super::routing::{LeikaKey, Route};
use crate::graphql::{state, tenant_ctx};
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
