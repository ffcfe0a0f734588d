//! The checks async-graphql has no setting for, done around execution: the alias limit (depth
//! and complexity limits alone let `a1: __typename a2: __typename …` through) and error codes on
//! every response, HTTP and WebSocket alike.
//!
//! They wrap the schema as an [`Executor`] instead of being schema extensions: with any extension
//! registered, async-graphql sends every resolved field through the extension chain (a registry
//! lookup and boxed futures per field), which made list-heavy queries markedly slower. The query
//! is parsed once here and handed on parsed; clients send the same few documents over and over,
//! so parsed documents are kept by their text (validation still runs on every request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt as _};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Data, Executor, Request, Response, ServerError};

use super::{AppSchema, fill_error_codes};

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

/// Aliases in the document. Fragments are counted once each even if spread many times: spreads
/// multiply depth and complexity, which their own limits bound.
fn aliases(doc: &ExecutableDocument) -> usize {
    doc.operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node))
        .sum::<usize>()
        + doc
            .fragments
            .values()
            .map(|f| count(&f.node.selection_set.node))
            .sum::<usize>()
}

/// Parsed documents that passed the alias limit, by query text. Bounded: cleared when full.
#[derive(Default)]
pub struct ParseCache(Mutex<HashMap<String, ExecutableDocument>>);

/// Only documents up to this size are kept, at most this many.
const CACHED_QUERY_MAX_BYTES: usize = 8 * 1024;
const CACHED_QUERIES_MAX: usize = 256;

/// The schema behind the alias limit, answering with error codes.
#[derive(Clone)]
pub struct CheckedSchema {
    pub schema: AppSchema,
    pub max_aliases: usize,
    pub parsed: Arc<ParseCache>,
}

impl CheckedSchema {
    pub fn new(schema: AppSchema, max_aliases: usize) -> Self {
        Self {
            schema,
            max_aliases,
            parsed: Arc::default(),
        }
    }

    /// Parses the query (or takes the parsed document from the cache), checks the alias limit,
    /// and hands the document to the schema with the request, so it is not parsed again.
    fn check(&self, mut request: Request) -> Result<Request, ServerError> {
        let cache = || {
            self.parsed
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let cached = cache().get(&request.query).cloned();
        if let Some(doc) = cached {
            request.set_parsed_query(doc);
            return Ok(request);
        }
        let doc = request.parsed_query()?.clone();
        let n = aliases(&doc);
        if n > self.max_aliases {
            return Err(ServerError::new(
                format!(
                    "Query has too many aliases: {n} (limit {})",
                    self.max_aliases
                ),
                None,
            ));
        }
        if request.query.len() <= CACHED_QUERY_MAX_BYTES {
            let mut cache = cache();
            if cache.len() >= CACHED_QUERIES_MAX {
                cache.clear();
            }
            cache.insert(request.query.clone(), doc);
        }
        Ok(request)
    }
}

fn coded(mut resp: Response) -> Response {
    fill_error_codes(&mut resp.errors);
    resp
}

impl Executor for CheckedSchema {
    async fn execute(&self, request: Request) -> Response {
        coded(match self.check(request) {
            Ok(request) => self.schema.execute(request).await,
            Err(e) => Response::from_errors(vec![e]),
        })
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        match self.check(request) {
            Ok(request) => Executor::execute_stream(&self.schema, request, session_data)
                .map(coded)
                .boxed(),
            Err(e) => stream::once(async move { coded(Response::from_errors(vec![e])) }).boxed(),
        }
    }
}
