//! Ending every session of a subject. A leaf of auth that tenancy calls when it deactivates an
//! account, so tenancy does not depend on login and refresh ([`super::service`]), which depend on it.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use entity::refresh_tokens;

use crate::error::AppResult;
use crate::ids::TenantId;

/// Revokes every session of a subject (e.g. when an account is disabled). The caller drops
/// the subject from [`AppState::sessions`](crate::state::AppState::sessions) after commit.
pub async fn revoke_all_sessions<C: ConnectionTrait>(
    conn: &C,
    tenant: Option<TenantId>,
    kind: &str,
    subject: Uuid,
) -> AppResult<()> {
    let q = refresh_tokens::Entity::update_many()
        .col_expr(
            refresh_tokens::Column::RevokedAt,
            Expr::value(chrono::Utc::now()),
        )
        .filter(refresh_tokens::Column::SubjectKind.eq(kind))
        .filter(refresh_tokens::Column::SubjectId.eq(subject))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(owned_by(tenant));
    q.exec(conn).await?;
    Ok(())
}

/// Refresh tokens of `tenant`'s subjects, or of platform subjects (`None`). Not a scoping filter:
/// refresh tokens are platform or tenant rows, and this says which one is meant.
pub(super) fn owned_by(tenant: Option<TenantId>) -> sea_orm::Condition {
    sea_orm::Condition::all().add(match tenant {
        Some(t) => refresh_tokens::Column::TenantId.eq(t.0),
        None => refresh_tokens::Column::TenantId.is_null(),
    })
}
