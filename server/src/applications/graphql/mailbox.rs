//! GraphQL of the mailbox: writing to an application's thread and read receipts.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::{Message, deps};
use crate::graphql::parse_id;
use crate::graphql::tenant_ctx;
use crate::messaging::mailbox;

#[derive(InputObject)]
pub struct SendMessageInput {
    pub application_id: ID,
    pub body: String,
    /// A staff-only note.
    #[graphql(default)]
    pub internal: bool,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SendMessagePayload {
    pub message: Message,
}

#[derive(InputObject)]
pub struct MarkMessagesReadInput {
    pub application_id: ID,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct MarkMessagesReadPayload {
    /// Messages newly marked as read.
    pub marked: u64,
}

#[derive(Default)]
pub struct MailboxMutation;

#[Object]
impl MailboxMutation {
    /// Writes to the application's mailbox (staff may write internal notes).
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<SendMessagePayload> {
        let tctx = tenant_ctx(ctx)?;
        let application_id = parse_id("input.applicationId", &input.application_id)?;
        let message = mailbox::send(
            deps(ctx)?,
            &tctx,
            mailbox::SendMessage {
                application_id,
                body: input.body,
                internal: input.internal,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SendMessagePayload {
            message: Message(message),
        })
    }

    /// Marks the other side's messages as read (read receipts).
    async fn mark_messages_read(
        &self,
        ctx: &Context<'_>,
        input: MarkMessagesReadInput,
    ) -> async_graphql::Result<MarkMessagesReadPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.applicationId", &input.application_id)?;
        let marked = mailbox::mark_read(deps(ctx)?, &tctx, id, input.access_token).await?;
        Ok(MarkMessagesReadPayload { marked })
    }
}
