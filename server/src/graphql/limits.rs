//! Schema extensions: the alias limit (depth and complexity limits alone let
//! `a1: me a2: me … a10000: me` through) and error codes on every response.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExt(self.0))
    }
}

struct AliasLimitExt(usize);

fn count(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExt {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        // Fragments are counted once each even if spread many times: spreads multiply depth and
        // complexity, which their own limits bound.
        let aliases: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count(&op.node.selection_set.node))
            .sum::<usize>()
            + doc
                .fragments
                .values()
                .map(|f| count(&f.node.selection_set.node))
                .sum::<usize>();
        if aliases > self.0 {
            return Err(ServerError::new(
                format!("Query has too many aliases: {aliases} (limit {})", self.0),
                None,
            ));
        }
        Ok(doc)
    }
}

/// Sets `extensions.code` on every error, HTTP and WebSocket alike, in the hook of the phase that
/// raised it: parsing, validation, execution. (The `request` hook would be one place, but the
/// WebSocket stream path never calls it.)
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut e| {
            super::fill_error_codes(std::slice::from_mut(&mut e));
            e
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            super::fill_error_codes(&mut errors);
            errors
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut resp = next.run(ctx, operation_name).await;
        super::fill_error_codes(&mut resp.errors);
        resp
    }

    /// Subscriptions do not pass through `execute`: their responses get codes here.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, Response> {
        use futures_util::StreamExt as _;
        next.run(ctx, stream)
            .map(|mut resp| {
                super::fill_error_codes(&mut resp.errors);
                resp
            })
            .boxed()
    }
}
