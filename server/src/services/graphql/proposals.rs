//! GraphQL of proposals: a forking municipality proposes its local changes to a template; the
//! template's authors accept or reject them.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::proposal::Proposal;
use super::{MergeResolutionInput, db, resolutions};
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;
use crate::ids::{ProposalId, ServiceId};
use crate::marketplace::graphql::{TemplateVersion, parse_version};
use crate::services::proposals;

#[derive(InputObject)]
pub struct ProposeTemplateChangeInput {
    pub service_id: ID,
    /// What the change is and why.
    pub message: String,
}

#[derive(InputObject)]
pub struct AcceptTemplateProposalInput {
    pub proposal_id: ID,
    /// The version to publish with the proposal taken in.
    pub version: String,
    #[graphql(default)]
    pub changelog: String,
    /// Needed when the template changed since the proposal was made and both touched the same
    /// place (ours = the latest version, theirs = the proposal).
    #[graphql(default)]
    pub resolutions: Vec<MergeResolutionInput>,
}

#[derive(InputObject)]
pub struct RejectTemplateProposalInput {
    pub proposal_id: ID,
    pub note: Option<String>,
}

#[derive(SimpleObject)]
pub struct ProposalPayload {
    pub proposal: Proposal,
    /// The version published from it (accept only).
    pub version: Option<TemplateVersion>,
}

#[derive(Default)]
pub struct ProposalsMutation;

#[Object]
impl ProposalsMutation {
    /// Proposes the service's local changes to the template's author.
    async fn propose_template_change(
        &self,
        ctx: &Context<'_>,
        input: ProposeTemplateChangeInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let p = proposals::propose(db(ctx)?, &tenant_ctx(ctx)?, id, input.message).await?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: None,
        })
    }

    /// Accepts a proposal into a new template version. Authors of the template only.
    async fn accept_template_proposal(
        &self,
        ctx: &Context<'_>,
        input: AcceptTemplateProposalInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ProposalId(parse_id("input.proposalId", &input.proposal_id)?);
        let version = parse_version("input.version", &input.version)?;
        let resolutions = resolutions(input.resolutions)?;
        let changelog = input.changelog.trim().chars().take(10_000).collect();
        let (p, v) = proposals::accept_proposal(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            id,
            version,
            changelog,
            resolutions,
        )
        .await?;
        crate::marketplace::graphql::forget_marketplace_pages(ctx)?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: Some(v.into()),
        })
    }

    /// Declines a proposal.
    async fn reject_template_proposal(
        &self,
        ctx: &Context<'_>,
        input: RejectTemplateProposalInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ProposalId(parse_id("input.proposalId", &input.proposal_id)?);
        let note = input.note.map(|n| n.chars().take(2000).collect());
        let p = proposals::reject_proposal(db(ctx)?, &tenant_ctx(ctx)?, id, note).await?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: None,
        })
    }
}
