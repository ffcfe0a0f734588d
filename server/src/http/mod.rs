//! HTTP routes: GraphQL (POST and WebSocket; GraphiQL is a page of [`crate::web`]), health, readiness, metrics, JWKS;
//! and what the domains' own routes (`<domain>/http.rs`) share. Imports no domain's routes: the
//! route table is [`crate::routes`].
//!
//! Before GraphQL runs, [`resolve`] turns the request into a [`RequestCtx`]: the tenant from
//! `X-Tenant` or the host's subdomain (else the token's tenant claim) and the principal from the
//! bearer token. The same function serves the WebSocket's `connection_init` payload.

mod span;

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use async_graphql_actix_web::GraphQLSubscription;
use futures_util::StreamExt as _;
use tracing_actix_web::{RequestId, RootSpan};

pub use span::AmtsplatzRootSpan;

use crate::context::{Principal, RequestCtx};
use crate::error::{AppError, AppResult};
use crate::graphql::{CheckedSchema, RequestOrigin, WsCaller, loaders};
use crate::ids::TenantId;
use crate::state::{AppState, ClientIp};

/// The routes of this layer; the whole route table, with the domains' routes, is
/// [`crate::routes`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/graphql", web::post().to(graphql_post))
        .route("/graphql/ws", web::get().to(graphql_ws))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/.well-known/jwks.json", web::get().to(jwks));
}

/// Scheme and host the client called (behind a trusted proxy: as the proxy reports them).
pub(crate) fn origin(req: &HttpRequest) -> String {
    let state = req.app_data::<web::Data<AppState>>();
    if state.is_some_and(|s| s.settings.auth.trust_forwarded_for) {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("http://{host}")
}

/// Resolves an HTTP request (GraphQL or plain) from its headers. A non-ASCII `Authorization` is
/// `UNAUTHENTICATED`, like any other malformed token.
pub(crate) async fn request_ctx(state: &AppState, req: &HttpRequest) -> AppResult<RequestCtx> {
    let tenant = tenant_hint(req, state.settings.base_domain.as_deref());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| AppError::Unauthenticated))
        .transpose()?;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |id| id.to_string());
    resolve(state, tenant.as_deref(), auth, request_id).await
}

/// Where the tenant comes from, before it is looked up.
pub(crate) fn tenant_hint(req: &HttpRequest, base_domain: Option<&str>) -> Option<String> {
    if let Some(v) = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let base = base_domain?;
    let host = req.connection_info().host().to_owned();
    let host = host.split(':').next().unwrap_or_default();
    host.strip_suffix(base)
        .and_then(|sub| sub.strip_suffix('.'))
        .filter(|s| !s.is_empty() && !s.contains('.'))
        .map(str::to_owned)
}

/// Resolves tenant and principal. An unknown tenant is `NOT_FOUND`; a malformed or invalid
/// token is `UNAUTHENTICATED` (never silently anonymous); a token of another tenant `FORBIDDEN`.
pub async fn resolve(
    state: &AppState,
    tenant_slug: Option<&str>,
    authorization: Option<&str>,
    request_id: String,
) -> AppResult<RequestCtx> {
    let mut tenant = match tenant_slug {
        Some(slug) => Some(
            state
                .tenants
                .by_slug(&state.db, slug)
                .await?
                .ok_or(AppError::NotFound("tenant"))?,
        ),
        None => None,
    };
    let principal = match authorization {
        None => Principal::Anonymous,
        Some(value) => {
            let token = value
                .strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AppError::Unauthenticated)?;
            let (principal, token_tenant) =
                crate::auth::service::authenticate(state, tenant.as_ref(), token).await?;
            if tenant.is_none()
                && let Some(tid) = token_tenant
            {
                tenant = Some(
                    state
                        .tenants
                        .by_id(&state.db, tid)
                        .await?
                        .ok_or(AppError::Unauthenticated)?,
                );
            }
            principal
        }
    };
    Ok(RequestCtx {
        request_id,
        tenant,
        principal,
    })
}

pub(crate) fn client_ip(state: &AppState, req: &HttpRequest) -> Option<std::net::IpAddr> {
    if state.settings.auth.trust_forwarded_for
        && let Some(ip) = req
            .connection_info()
            .realip_remote_addr()
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok())
    {
        return Some(ip);
    }
    req.peer_addr().map(|a| a.ip())
}

fn error_response(err: &AppError) -> HttpResponse {
    let mut builder = HttpResponse::build(err.status());
    if let AppError::RateLimited { retry_after_secs } = err {
        builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
    }
    builder.json(err.graphql_body())
}

/// Reads the body up to `limit` bytes; beyond it, stops reading and answers `PAYLOAD_TOO_LARGE`.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> AppResult<web::BytesMut> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge { limit_bytes: limit });
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| AppError::invalid("body", "could not be read"))?;
        if body.len() + chunk.len() > limit {
            leave_unread(payload);
            return Err(AppError::PayloadTooLarge { limit_bytes: limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Keeps the rest of a refused body unread for a while instead of dropping it. actix drains
/// (reads and throws away) a dropped chunked body to keep the connection, so the client would
/// go on sending; a body still held is not read further (backpressure stops the client at
/// once) and makes actix answer with `Connection: close` and close after the answer.
pub(crate) fn leave_unread(payload: web::Payload) {
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(std::time::Duration::from_secs(10)).await;
        drop(payload);
    });
}

/// A GraphQL multipart request (file uploads). The body streams through a channel into
/// async-graphql's parser, which writes file parts to temporary files: memory stays at a few
/// chunks whatever the size, and reading stops as soon as the limit is passed.
async fn receive_multipart(
    state: &AppState,
    req: &HttpRequest,
    mut payload: web::Payload,
    content_type: String,
) -> AppResult<async_graphql::Request> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let file_limit = state.settings.storage.multipart_max_bytes;
    let limit = file_limit + state.settings.graphql.max_body_bytes as u64;
    let too_large = || AppError::PayloadTooLarge {
        limit_bytes: usize::try_from(file_limit).unwrap_or(usize::MAX),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let over = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<web::Bytes>>(8);
    {
        let over = over.clone();
        // The payload lives on this worker's thread; the parser wants a `Send` reader.
        actix_web::rt::spawn(async move {
            let mut seen: u64 = 0;
            while let Some(chunk) = payload.next().await {
                let item = match chunk {
                    Ok(c) => {
                        seen += c.len() as u64;
                        if seen > limit {
                            over.store(true, Ordering::Relaxed);
                            let _ = tx
                                .send(Err(std::io::Error::other("body over the limit")))
                                .await;
                            leave_unread(payload);
                            return;
                        }
                        Ok(c)
                    }
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() {
                    // The parser stopped early (a file over its limit, a malformed body).
                    leave_unread(payload);
                    return;
                }
                if last {
                    break;
                }
            }
        });
    }
    let reader = futures_util::TryStreamExt::into_async_read(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    );
    let opts = async_graphql::http::MultipartOptions::default()
        .max_file_size(usize::try_from(file_limit).unwrap_or(usize::MAX))
        .max_num_files(1);
    match async_graphql::http::receive_body(Some(content_type), reader, opts).await {
        Ok(r) => Ok(r),
        Err(_) if over.load(Ordering::Relaxed) => Err(too_large()),
        Err(async_graphql::ParseRequestError::PayloadTooLarge) => Err(too_large()),
        Err(async_graphql::ParseRequestError::UnsupportedBatch) => Err(AppError::invalid(
            "body",
            "batched requests are not supported: send one operation per request",
        )),
        Err(e) => Err(AppError::invalid(
            "body",
            format!("is not a GraphQL multipart request: {e}"),
        )),
    }
}

fn parse_request(body: &[u8]) -> AppResult<async_graphql::Request> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(AppError::invalid(
            "body",
            "batched requests are not supported: send one operation per request",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::invalid("body", format!("is not a GraphQL request: {e}")))
}

async fn graphql_post(
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    req: HttpRequest,
    payload: web::Payload,
    root_span: RootSpan,
) -> HttpResponse {
    let started = Instant::now();
    let prepared = async {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let gql = if content_type.starts_with("multipart/form-data") {
            receive_multipart(&state, &req, payload, content_type).await?
        } else {
            let body = read_body(&req, payload, state.settings.graphql.max_body_bytes).await?;
            parse_request(&body)?
        };
        // Nesting is bounded before anything parses the query.
        crate::graphql::guard::screen(&gql).map_err(Refused::Malformed)?;
        let ctx = request_ctx(&state, &req).await?;
        Ok::<_, Refused>((gql, ctx))
    }
    .await;
    let (gql, ctx) = match prepared {
        Ok(ok) => ok,
        Err(err) => {
            state
                .metrics
                .observe_graphql("rejected", false, started.elapsed().as_secs_f64());
            return err.response();
        }
    };
    if let Some(t) = &ctx.tenant {
        root_span.record("tenant.id", tracing::field::display(t.id));
    }
    if let Some(user) = ctx.principal.log_id() {
        root_span.record("user.id", tracing::field::display(user));
    }
    let resp = execute(&state, &schema, &req, ctx, gql, started).await;
    let mut answer = HttpResponse::Ok();
    // The body stays the GraphQL response; status and header tell HTTP clients and proxies.
    if let Some(secs) = crate::graphql::retry_after(&resp.errors) {
        answer
            .status(actix_web::http::StatusCode::TOO_MANY_REQUESTS)
            .insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    answer.json(resp)
}

/// Runs one operation for an HTTP caller whose request is already resolved: what every
/// operation sees besides the caller (client IP for rate limits, origin, DataLoaders), then the
/// metrics and the log line. The API's POST and the pages ([`crate::web`]) both run through
/// here, so a page is exactly an API client, with its limits and errors.
pub(crate) async fn execute(
    state: &AppState,
    schema: &CheckedSchema,
    req: &HttpRequest,
    ctx: RequestCtx,
    gql: async_graphql::Request,
    started: Instant,
) -> async_graphql::Response {
    let operation = state.metrics.operation_label(gql.operation_name.as_deref());
    let gql = with_request_data(state, req, ctx, gql);
    let resp = async_graphql::Executor::execute(schema, gql).await;
    let ok = resp.errors.is_empty();
    state
        .metrics
        .observe_graphql(&operation, ok, started.elapsed().as_secs_f64());
    tracing::info!(graphql.operation = %operation, graphql.ok = ok, "graphql request");
    resp
}

/// What every operation of an HTTP caller sees besides its document: the caller, the client
/// IP for rate limits, the origin, the DataLoaders.
pub(crate) fn with_request_data(
    state: &AppState,
    req: &HttpRequest,
    ctx: RequestCtx,
    gql: async_graphql::Request,
) -> async_graphql::Request {
    let mut gql = gql
        .data(ClientIp(client_ip(state, req)))
        .data(RequestOrigin(origin(req)));
    attach_loaders(&mut gql.data, state, &ctx);
    gql.data(ctx)
}

/// Why a GraphQL POST was refused before GraphQL ran.
enum Refused {
    /// With the error's own status.
    Error(AppError),
    /// Input no parser may see (nesting too deep): `VALIDATION_FAILED` with HTTP 400.
    Malformed(AppError),
}

impl From<AppError> for Refused {
    fn from(err: AppError) -> Self {
        Self::Error(err)
    }
}

impl Refused {
    fn response(&self) -> HttpResponse {
        match self {
            Self::Error(err) => error_response(err),
            Self::Malformed(err) => HttpResponse::BadRequest().json(err.graphql_body()),
        }
    }
}

/// The request-wide DataLoaders, shared by HTTP and WebSocket requests (each made on first use).
fn attach_loaders(data: &mut async_graphql::Data, state: &AppState, ctx: &RequestCtx) {
    data.insert(loaders::Loaders::new(
        &state.db,
        &state.metrics,
        ctx.tenant.as_ref().map(|t| TenantId(t.id)),
    ));
}

/// GraphQL over WebSocket (graphql-transport-ws). The `connection_init` payload carries what
/// HTTP headers would: `{"X-Tenant": "...", "Authorization": "Bearer ..."}`; what it leaves out
/// comes from the upgrade request's headers, which count exactly like a POST's (a token of
/// another tenant is refused, never ignored into an anonymous caller).
async fn graphql_ws(
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let state = state.get_ref().clone();
    let header_tenant = tenant_hint(&req, state.settings.base_domain.as_deref());
    // Rate limits per client IP hold over the WebSocket too.
    let ip = client_ip(&state, &req);
    let header_auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    GraphQLSubscription::new(CheckedSchema::clone(&schema))
        .on_connection_init(move |value: serde_json::Value| async move {
            let field = |name: &str| {
                value
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_owned)
            };
            let tenant = field("x-tenant").or(header_tenant);
            let auth = match field("authorization") {
                Some(auth) => Some(auth),
                None => header_auth
                    .transpose()
                    .map_err(|_| AppError::Unauthenticated)?,
            };
            let ctx = resolve(
                &state,
                tenant.as_deref(),
                auth.as_deref(),
                uuid::Uuid::new_v4().to_string(),
            )
            .await?;
            let mut data = async_graphql::Data::default();
            attach_loaders(&mut data, &state, &ctx);
            data.insert(ctx);
            data.insert(ClientIp(ip));
            if let Some(auth) = auth {
                // A signed-in caller is established again for every operation and event.
                data.insert(WsCaller(std::sync::Arc::new(move || {
                    let (state, tenant, auth) = (state.clone(), tenant.clone(), auth.clone());
                    Box::pin(async move {
                        resolve(
                            &state,
                            tenant.as_deref(),
                            Some(&auth),
                            uuid::Uuid::new_v4().to_string(),
                        )
                        .await
                    })
                })));
            }
            Ok(data)
        })
        .start(&req, payload)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and every migration is applied.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state.db.ping().await.is_ok();
    let migrated = db_ok && crate::db::migrations_applied(&state.db).await;
    let body = serde_json::json!({ "database": db_ok, "migrations": migrated });
    if db_ok && migrated {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "keys": [state.keys.public_jwk] }))
}
