//! The `Proposal` object, a leaf: the marketplace's `Template.proposals` shows it, while the
//! proposal mutations ([`super::proposals`]) use the marketplace's types.

use async_graphql::{Enum, ID, Json, Object};
use entity::template_proposals;
use serde_json::Value;

/// A change a forking municipality proposes to a template.
pub struct Proposal(pub template_proposals::Model);

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "entity::states::ProposalStatus")]
pub enum ProposalStatus {
    Open,
    Accepted,
    Rejected,
}

#[Object]
impl Proposal {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn status(&self) -> ProposalStatus {
        self.0.status.into()
    }
    /// The proposed change as keyed operations against `baseVersion`.
    async fn diff(&self) -> Json<Value> {
        Json(self.0.overlay.clone())
    }
    /// The proposed content as a whole.
    async fn content(&self) -> Json<Value> {
        Json(self.0.content.clone())
    }
    async fn base_version_id(&self) -> ID {
        ID(self.0.base_version_id.to_string())
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn decided_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.decided_at
    }
    async fn decision_note(&self) -> Option<&str> {
        self.0.decision_note.as_deref()
    }
    /// The version that took the proposal in, once accepted.
    async fn result_version_id(&self) -> Option<ID> {
        self.0.result_version_id.map(|id| ID(id.to_string()))
    }
}
