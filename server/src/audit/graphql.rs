//! GraphQL view of the audit log.

use async_graphql::{Context, ID, Json, Object, SimpleObject};

use entity::audit_log;

use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::{state, tenant_ctx};

/// One recorded change.
#[derive(SimpleObject, Debug)]
pub struct AuditEntry {
    pub id: ID,
    /// `staff:<id>`, `platform:<id>` or `system:<what>`.
    pub actor: String,
    /// Dotted verb, e.g. `department.create`.
    pub action: String,
    /// What changed, e.g. `department:<id>`.
    pub target: String,
    pub details: Json<serde_json::Value>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(m: audit_log::Model) -> Self {
        Self {
            id: ID(m.id.to_string()),
            actor: m.actor,
            action: m.action,
            target: m.target,
            details: Json(m.details),
            at: m.at,
        }
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The current tenant's audit log, oldest first. Tenant administrators only.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<AuditEntry>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let db = state::<crate::db::Db>(ctx)?;
        let page = super::list(db, &tctx, args).await?;
        Ok(into_connection(page, |m| m.id, AuditEntry::from))
    }
}
