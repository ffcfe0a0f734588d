//! What every domain's resolvers read off a request besides the caller: ID arguments, the origin
//! the client called, the per-IP write quota. Kept here, not in a domain, so domains need not
//! import each other for them.

use async_graphql::{Context, ID};
use uuid::Uuid;

use super::state;
use crate::error::{AppError, AppResult};

/// Parses an `ID` argument as a UUID, typed as the caller expects (`ApplicationId`, `BookingId`,
/// … or a bare `Uuid`); anything else is `VALIDATION_FAILED` on that field.
pub fn parse_id<I: From<Uuid>>(field: &str, id: &ID) -> AppResult<I> {
    Uuid::parse_str(id.as_str())
        .map(I::from)
        .map_err(|_| AppError::invalid(field, "is not a valid ID"))
}

/// Scheme and host the client called: completes the local backend's presigned URLs.
#[derive(Clone, Debug)]
pub struct RequestOrigin(pub String);

impl RequestOrigin {
    /// The origin of the request `ctx` serves (empty where none was attached).
    pub fn of<'a>(ctx: &'a Context<'_>) -> &'a str {
        ctx.data_opt::<Self>().map_or("", |o| o.0.as_str())
    }
}

/// Counts a citizen's write (draft, submission, upload, payment start) against the client IP's
/// quota.
pub async fn rate_limit_write(ctx: &Context<'_>) -> AppResult<()> {
    let ip = ctx.data_opt::<crate::state::ClientIp>().and_then(|ip| ip.0);
    let state = state::<crate::state::AppState>(ctx)?;
    state.write_limiter.check(state.db.orm(), ip).await
}
