//! What every domain's GraphQL (`<domain>/graphql.rs`) shares: request context and state
//! lookups, IDs, pagination, DataLoaders, error codes; and the limits every request is held to
//! (depth, complexity, aliases; body size and batching in [`crate::http`]). Imports no domain:
//! the domains' `Query`/`Mutation` objects are merged into the schema in [`crate::schema`].

pub mod connection;
pub mod guard;
mod limits;
pub mod loaders;
mod request;

pub use limits::{CheckedSchema, WsCaller};
pub use loaders::request_loader;
pub use request::{RequestOrigin, parse_id, rate_limit_write};

use async_graphql::Context;

use crate::context::{RequestCtx, TenantCtx};
use crate::error::{AppError, AppResult};

/// The request's resolved context. Always present on requests served by [`crate::http`].
pub fn request_ctx<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestCtx> {
    ctx.data::<RequestCtx>()
        .map_err(|_| AppError::internal("GraphQL context", anyhow::anyhow!("no RequestCtx")))
}

/// The request's tenant context, or `NOT_FOUND` when no tenant was selected.
pub fn tenant_ctx(ctx: &Context<'_>) -> AppResult<TenantCtx> {
    request_ctx(ctx)?.tenant()
}

/// A piece of application state attached to the schema.
pub fn state<'a, T: Send + Sync + 'static>(ctx: &'a Context<'_>) -> AppResult<&'a T> {
    ctx.data::<T>().map_err(|_| {
        AppError::internal(
            "GraphQL context",
            anyhow::anyhow!("missing {}", std::any::type_name::<T>()),
        )
    })
}

/// Gives every error its `extensions.code`: from the [`AppError`] a resolver returned, else
/// `VALIDATION_FAILED` — errors async-graphql raises itself (parse, validation, limits,
/// coercion) are all the client's fault.
pub fn fill_error_codes(errors: &mut [async_graphql::ServerError]) {
    for err in errors {
        let ext = err.extensions.get_or_insert_with(Default::default);
        if let Some(app) = err
            .source
            .as_ref()
            .and_then(|s| s.downcast_ref::<AppError>())
        {
            app.fill_extensions(ext);
        } else if ext.get("code").is_none() {
            ext.set("code", "VALIDATION_FAILED");
        }
    }
}

/// The wait of a `RATE_LIMITED` error among `errors` (the longest, if several), for HTTP's
/// 429 and `Retry-After`.
pub fn retry_after(errors: &[async_graphql::ServerError]) -> Option<u64> {
    errors
        .iter()
        .filter_map(|e| e.extensions.as_ref())
        .filter(|ext| {
            matches!(ext.get("code"), Some(async_graphql::Value::String(c)) if c == "RATE_LIMITED")
        })
        .map(|ext| match ext.get("retryAfterSeconds") {
            Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap_or(1),
            _ => 1,
        })
        .max()
}
