//! The checks async-graphql has no setting for, done around execution: the alias limit (depth
//! and complexity limits alone let `a1: __typename a2: __typename …` through) and error codes on
//! every response, HTTP and WebSocket alike.
//!
//! They wrap the schema as an [`Executor`] instead of being schema extensions: with any extension
//! registered, async-graphql sends every resolved field through the extension chain (a registry
//! lookup and boxed futures per field), which made list-heavy queries markedly slower. The query
//! is parsed once here and handed on parsed; clients send the same few documents over and over,
//! so parsed documents are kept by their text.
//!
//! Before parsing, [`guard::screen`] bounds the nesting of the query text and variables; after
//! parsing, [`guard::document`] bounds fragment fan-out and refuses NUL characters, and query
//! operations run within a time budget (see [`super::guard`]).
//!
//! Validation is kept too. Without variables, whether an operation of a document passes the full
//! (strict) validation depends on nothing but the document and the schema, so once it has run
//! without any error, later requests of the same operation without variables take a second
//! schema in async-graphql's fast mode: it still computes depth and complexity and holds them to
//! their limits, and skips the rules already passed (7% of the server's CPU time on the
//! departments page). Requests with variables are always validated in full, since argument
//! checks depend on the values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::futures_util::future::BoxFuture;
use async_graphql::futures_util::stream::{self, BoxStream, StreamExt as _};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{
    Data, Executor, ObjectType, Request, Response, Schema, ServerError, SubscriptionType,
};

use super::{fill_error_codes, guard};
use crate::context::RequestCtx;
use crate::error::AppError;
use crate::settings::GraphqlSettings;

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
pub struct ParseCache(Mutex<HashMap<String, Parsed>>);

/// A parsed document and the operations of it that passed full validation without variables.
struct Parsed {
    doc: ExecutableDocument,
    validated: Vec<Option<String>>,
}

/// Only documents up to this size are kept, at most this many.
const CACHED_QUERY_MAX_BYTES: usize = 8 * 1024;
const CACHED_QUERIES_MAX: usize = 256;

/// The schema behind the alias limit, answering with error codes.
#[derive(Clone)]
pub struct CheckedSchema {
    schema: Arc<dyn AnySchema>,
    /// The same schema in fast validation mode, for operations already validated in full.
    validated: Arc<dyn AnySchema>,
    pub max_aliases: usize,
    /// Time a query operation may take. Static caps keep validation cheap; this bounds what
    /// still takes long (resolvers waiting on the database). Mutations are not cut short: one
    /// stopped halfway could have committed without the client learning it.
    query_budget: std::time::Duration,
    parsed: Arc<ParseCache>,
}

/// A schema of any `Query`/`Mutation`/`Subscription` types, so this module names none of the
/// domains' (they are merged in [`crate::schema`]).
trait AnySchema: Send + Sync {
    fn execute(&self, request: Request) -> BoxFuture<'static, Response>;
    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response>;
}

impl<Q, M, S> AnySchema for Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    fn execute(&self, request: Request) -> BoxFuture<'static, Response> {
        let schema = self.clone();
        Box::pin(async move { Schema::execute(&schema, request).await })
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        Executor::execute_stream(self, request, session_data)
    }
}

/// How a checked request is to be validated and run.
struct Checked {
    validation: Validation,
    /// The operation's type (`None`: no such operation; it fails anyway). Queries are held to
    /// the time budget.
    operation: Option<OperationType>,
}

/// Who a WebSocket caller is now, established again from what the connection presented. The
/// transport keeps it in the connection's data when the caller signed in: before each operation
/// and before each subscription event the caller is established anew, so logout, a revoked
/// session, a deactivated account or changed roles hold over an open connection as they do on
/// the next POST.
#[derive(Clone)]
pub struct WsCaller(
    pub Arc<dyn Fn() -> BoxFuture<'static, Result<RequestCtx, AppError>> + Send + Sync>,
);

/// How a checked request is to be validated.
enum Validation {
    /// In full; when it passes, the operation is remembered (query text and operation name).
    Full(Option<(String, Option<String>)>),
    /// Already passed in full: fast mode.
    Passed,
}

impl CheckedSchema {
    /// `build` makes the schema (with its data attached); it is called twice, once per
    /// validation mode.
    pub fn new<Q, M, S>(
        build: impl Fn() -> async_graphql::SchemaBuilder<Q, M, S>,
        limits: &GraphqlSettings,
    ) -> Self
    where
        Q: ObjectType + 'static,
        M: ObjectType + 'static,
        S: SubscriptionType + 'static,
    {
        Self {
            schema: Arc::new(build().finish()),
            validated: Arc::new(
                build()
                    .validation_mode(async_graphql::ValidationMode::Fast)
                    .finish(),
            ),
            max_aliases: limits.max_aliases,
            query_budget: std::time::Duration::from_millis(limits.query_budget_ms),
            parsed: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parsed>> {
        self.parsed
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that `operation` of `query` passed full validation without variables.
    fn passed(&self, (query, operation): (String, Option<String>)) {
        if let Some(parsed) = self.cache().get_mut(&query)
            && !parsed.validated.contains(&operation)
        {
            parsed.validated.push(operation);
        }
    }

    /// Runs a checked request, a query within the time budget.
    async fn run(&self, request: Request, checked: Checked) -> Response {
        let run = self.run_validated(request, checked.validation);
        if checked.operation == Some(OperationType::Query) {
            within(self.query_budget, run).await
        } else {
            run.await
        }
    }

    /// The schema for `validation`, and what to remember when the response has no errors.
    async fn run_validated(&self, request: Request, validation: Validation) -> Response {
        match validation {
            Validation::Passed => self.validated.execute(request).await,
            Validation::Full(remember) => {
                let resp = self.schema.execute(request).await;
                if let Some(remember) = remember
                    && resp.errors.is_empty()
                {
                    self.passed(remember);
                }
                resp
            }
        }
    }

    /// Parses the query (or takes the parsed document from the cache), checks the guards and the
    /// alias limit, and hands the document to the schema with the request, so it is not parsed
    /// again.
    fn check(&self, mut request: Request) -> Result<(Request, Checked), ServerError> {
        guard::variables(&request.variables).map_err(refused)?;
        let plain = request.variables.is_empty();
        let cached = self.cache().get(&request.query).map(|parsed| {
            let passed = plain && parsed.validated.contains(&request.operation_name);
            (parsed.doc.clone(), passed)
        });
        if let Some((doc, passed)) = cached {
            let operation = operation_type(&doc, request.operation_name.as_deref());
            let remember =
                (plain && !passed).then(|| (request.query.clone(), request.operation_name.clone()));
            request.set_parsed_query(doc);
            let validation = if passed {
                Validation::Passed
            } else {
                Validation::Full(remember)
            };
            return Ok((
                request,
                Checked {
                    validation,
                    operation,
                },
            ));
        }
        guard::text(&request.query).map_err(refused)?;
        let doc = request.parsed_query()?.clone();
        guard::document(&doc).map_err(refused)?;
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
        let operation = operation_type(&doc, request.operation_name.as_deref());
        let mut remember = None;
        if request.query.len() <= CACHED_QUERY_MAX_BYTES {
            let mut cache = self.cache();
            if cache.len() >= CACHED_QUERIES_MAX {
                cache.clear();
            }
            cache.insert(
                request.query.clone(),
                Parsed {
                    doc,
                    validated: Vec::new(),
                },
            );
            remember = plain.then(|| (request.query.clone(), request.operation_name.clone()));
        }
        let validation = Validation::Full(remember);
        Ok((
            request,
            Checked {
                validation,
                operation,
            },
        ))
    }
}

/// The type of the operation to run (`None` for an unknown operation: it fails anyway).
fn operation_type(doc: &ExecutableDocument, operation: Option<&str>) -> Option<OperationType> {
    let mut ops = doc.operations.iter();
    let op = match operation {
        Some(name) => ops.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => ops.next(),
    };
    op.map(|(_, op)| op.node.ty)
}

/// `run`'s response, or a `VALIDATION_FAILED` error when it takes longer than `budget`.
async fn within(budget: std::time::Duration, run: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(budget, run).await {
        Ok(resp) => resp,
        Err(_) => Response::from_errors(vec![refused(AppError::invalid(
            "query",
            format!(
                "did not finish within {} ms: ask for less (fewer fields or items)",
                budget.as_millis()
            ),
        ))]),
    }
}

/// A subscription's events while `caller` is still signed in; once not, one error
/// (`UNAUTHENTICATED`) instead of the event, and the end.
fn while_signed_in(
    events: BoxStream<'static, Response>,
    caller: WsCaller,
) -> BoxStream<'static, Response> {
    stream::unfold(Some(events), move |events| {
        let caller = caller.clone();
        async move {
            let mut events = events?;
            let event = events.next().await?;
            match (caller.0)().await {
                Ok(_) => Some((event, Some(events))),
                Err(e) => Some((Response::from_errors(vec![refused(e)]), None)),
            }
        }
    })
    .boxed()
}

/// A request refused before it ran, as a GraphQL error carrying its [`AppError`].
fn refused(err: AppError) -> ServerError {
    let mut e = ServerError::new(err.to_string(), None);
    e.source = Some(Arc::new(err));
    e
}

fn coded(mut resp: Response) -> Response {
    fill_error_codes(&mut resp.errors);
    resp
}

impl Executor for CheckedSchema {
    async fn execute(&self, request: Request) -> Response {
        coded(match self.check(request) {
            Ok((request, checked)) => self.run(request, checked).await,
            Err(e) => Response::from_errors(vec![e]),
        })
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        // Subscriptions and WebSocket requests are few: always validated in full.
        let (mut request, checked) = match self.check(request) {
            Ok(checked) => checked,
            Err(e) => {
                return stream::once(async move { coded(Response::from_errors(vec![e])) }).boxed();
            }
        };
        let caller = session_data
            .as_deref()
            .and_then(|data| data.get(&std::any::TypeId::of::<WsCaller>()))
            .and_then(|caller| caller.downcast_ref::<WsCaller>())
            .cloned();
        let (schema, budget) = (self.schema.clone(), self.query_budget);
        stream::once(async move {
            if let Some(caller) = &caller {
                // The request's own data comes before the connection's: this operation runs
                // as the caller is now.
                match (caller.0)().await {
                    Ok(now) => request.data.insert(now),
                    Err(e) => {
                        return stream::once(
                            async move { Response::from_errors(vec![refused(e)]) },
                        )
                        .boxed();
                    }
                }
            }
            let mut responses = schema.execute_stream(request, session_data);
            match (checked.operation, caller) {
                (Some(OperationType::Query), _) => stream::once(async move {
                    within(
                        budget,
                        async move { responses.next().await.unwrap_or_default() },
                    )
                    .await
                })
                .boxed(),
                (Some(OperationType::Subscription), Some(caller)) => {
                    while_signed_in(responses, caller)
                }
                _ => responses,
            }
        })
        .flatten()
        .map(coded)
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::GraphqlSettings;

    fn schema() -> CheckedSchema {
        let limits = GraphqlSettings {
            max_aliases: 20,
            ..GraphqlSettings::default()
        };
        CheckedSchema::new(|| crate::schema::build_schema(&limits), &limits)
    }

    fn passes(schema: &CheckedSchema, request: Request) -> bool {
        matches!(
            schema.check(request),
            Ok((
                _,
                Checked {
                    validation: Validation::Passed,
                    ..
                }
            ))
        )
    }

    /// Only an operation that ran without errors and without variables skips full validation
    /// next time; with variables, or after an error, it is validated in full again.
    #[tokio::test]
    async fn only_operations_validated_without_errors_or_variables_skip_full_validation() {
        let schema = schema();
        let plain = "query Plain { __typename }";
        assert!(!passes(&schema, Request::new(plain)));
        let first = schema.execute(Request::new(plain)).await;
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert!(passes(&schema, Request::new(plain)));
        let again = schema.execute(Request::new(plain)).await;
        assert_eq!(again.data, first.data);

        // The same text under another operation name was not validated.
        assert!(!passes(
            &schema,
            Request::new(plain).operation_name("Other")
        ));

        // With variables: always in full, before and after a clean run.
        let typed = "query Typed($n: String!) { __type(name: $n) { name } }";
        let with = || {
            Request::new(typed).variables(async_graphql::Variables::from_json(
                serde_json::json!({ "n": "Query" }),
            ))
        };
        let resp = schema.execute(with()).await;
        assert!(resp.errors.is_empty(), "{:?}", resp.errors);
        assert!(!passes(&schema, with()));

        // An operation that fails validation is never remembered: it fails every time.
        let unknown = "{ noSuchField }";
        for _ in 0..2 {
            assert!(!passes(&schema, Request::new(unknown)));
            let resp = schema.execute(Request::new(unknown)).await;
            assert_eq!(resp.errors.len(), 1);
            assert_eq!(resp.data, async_graphql::Value::Null);
        }
    }
}
