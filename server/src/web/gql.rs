//! The pages' only way to data: GraphQL operations run in-process through the API's own
//! executor ([`crate::http::execute`]), as the caller the page request resolves to. Answers are
//! read into the page's own types; errors keep the API's codes and field paths.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::HttpRequest;
use serde::de::DeserializeOwned;

use crate::context::RequestCtx;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// A connection's `nodes`, as pages read lists.
#[derive(Debug, serde::Deserialize)]
pub struct Nodes<T> {
    pub nodes: Vec<T>,
}

/// One GraphQL error as the API answers it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// `extensions.code`, e.g. `VALIDATION_FAILED`.
    pub code: String,
    pub message: String,
    /// For `VALIDATION_FAILED`: field path → message (`input.data/dog_count`).
    pub fields: BTreeMap<String, String>,
    /// For `PAYLOAD_TOO_LARGE`: the limit.
    pub limit_bytes: Option<u64>,
}

impl ApiError {
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// Runs operations for one page request.
pub struct Gql<'a> {
    state: &'a AppState,
    schema: &'a CheckedSchema,
    req: &'a HttpRequest,
    ctx: RequestCtx,
}

impl<'a> Gql<'a> {
    pub fn new(
        state: &'a AppState,
        schema: &'a CheckedSchema,
        req: &'a HttpRequest,
        ctx: RequestCtx,
    ) -> Self {
        Self {
            state,
            schema,
            req,
            ctx,
        }
    }

    /// Runs `query` with `variables`; `data` read as `T`. The first error, if any, is the answer.
    pub async fn run<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<T, ApiError> {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        self.execute(request).await
    }

    /// Runs a prepared request (e.g. one carrying an upload); `data` read as `T`.
    pub async fn execute<T: DeserializeOwned>(
        &self,
        request: async_graphql::Request,
    ) -> Result<T, ApiError> {
        let resp = crate::http::execute(
            self.state,
            self.schema,
            self.req,
            self.ctx.clone(),
            request,
            Instant::now(),
        )
        .await;
        if let Some(err) = resp.errors.into_iter().next() {
            let ext = err
                .extensions
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok())
                .unwrap_or_default();
            let fields = ext
                .get("fields")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
                .unwrap_or_default();
            tracing::debug!(error = %err.message, path = ?err.path, extensions = ?err.extensions, "a page's GraphQL operation was refused");
            return Err(ApiError {
                code: ext
                    .get("code")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("INTERNAL")
                    .to_owned(),
                message: err.message,
                fields,
                limit_bytes: ext.get("limitBytes").and_then(serde_json::Value::as_u64),
            });
        }
        let data = resp.data.into_json().map_err(|e| internal(&e))?;
        serde_json::from_value(data).map_err(|e| internal(&e))
    }
}

impl Gql<'_> {
    /// Runs a subscription as this caller: each event's `data`, until the API ends it.
    pub fn stream(
        &self,
        query: &str,
        variables: serde_json::Value,
    ) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let request =
            crate::http::with_request_data(self.state, self.req, self.ctx.clone(), request);
        async_graphql::Executor::execute_stream(self.schema, request, None)
    }
}

/// An answer the page cannot read is the page's bug: logged, shown as an internal error.
fn internal(err: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "a page could not read its GraphQL answer");
    ApiError {
        code: "INTERNAL".into(),
        message: "internal error".into(),
        fields: BTreeMap::new(),
        limit_bytes: None,
    }
}
