//! HTTP routes of attachments:
//!
//! - `PUT /storage/<key>?…&sig=` and `GET /storage/<key>?…&sig=`: the local backend's presigned
//!   upload and download (signature, expiry, exact size and type checked; bodies streamed);
//! - `GET /api/attachments/<id>`: a stable link for back-office systems and exports; checks the
//!   caller (bearer token or `X-Access-Token`) and redirects to a fresh presigned URL.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use crate::error::AppError;
use crate::state::AppState;
use crate::storage::local::{Receive, Refusal};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/storage/{tenant}/{owner}/{file}",
        web::put().to(put_object),
    )
    .route(
        "/storage/{tenant}/{owner}/{file}",
        web::get().to(get_object),
    )
    .route("/api/attachments/{id}", web::get().to(attachment_link));
}

fn local(state: &AppState) -> Result<&crate::storage::LocalFs, AppError> {
    state
        .local_store
        .as_deref()
        .ok_or(AppError::NotFound("storage (objects are served by S3)"))
}

fn refused(r: Refusal) -> AppError {
    AppError::Forbidden(match r {
        Refusal::Malformed => "the storage link is malformed",
        Refusal::BadSignature => "the storage link's signature does not match",
        Refusal::Expired => "the storage link has expired",
    })
}

fn key_of(path: &web::Path<(String, String, String)>) -> String {
    format!("{}/{}/{}", path.0, path.1, path.2)
}

/// A presigned upload to the local backend.
async fn put_object(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let store = local(&state)?;
    let key = key_of(&path);
    let signed = store
        .verify("PUT", &key, req.query_string(), chrono::Utc::now())
        .map_err(refused)?;
    let size = signed.size.unwrap_or(0);
    let sent_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if sent_type != signed.content_type {
        return Err(AppError::Forbidden(
            "Content-Type differs from the one this link was made for",
        ));
    }
    // A declared length over the limit is refused before a byte is read.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > size) {
        return Err(AppError::PayloadTooLarge {
            limit_bytes: usize::try_from(size).unwrap_or(usize::MAX),
        });
    }
    match store.receive(&key, size, &mut payload).await {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(Receive::Refused(r)) => Err(refused(r)),
        Err(Receive::TooLarge { limit }) => {
            // Dropped, the rest would be drained: the client would go on sending.
            crate::http::leave_unread(payload);
            Err(AppError::PayloadTooLarge {
                limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX),
            })
        }
        Err(e @ (Receive::WrongSize { .. } | Receive::Broken)) => {
            Err(AppError::invalid("body", e.to_string()))
        }
        Err(Receive::Io(e)) => Err(AppError::internal("storing an upload", e)),
    }
}

/// A presigned download from the local backend: streamed, with the signed type and a safe
/// `Content-Disposition`; never rendered inline.
async fn get_object(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    use crate::storage::ObjectStore as _;
    let store = local(&state)?;
    let key = key_of(&path);
    let signed = store
        .verify("GET", &key, req.query_string(), chrono::Utc::now())
        .map_err(refused)?;
    let body = store
        .get(&key)
        .await
        .map_err(|e| AppError::internal("reading a stored file", e))?
        .ok_or(AppError::NotFound("file"))?;
    let size = store
        .head(&key)
        .await
        .map_err(|e| AppError::internal("reading a stored file", e))?
        .map(|m| m.size);
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, signed.content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            signed.disposition.unwrap_or_else(|| "attachment".into()),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"));
    if let Some(n) = size {
        resp.no_chunking(n);
    }
    Ok(resp.streaming(body.map(|r| r.map_err(actix_web::error::ErrorInternalServerError))))
}

/// `GET /api/attachments/<id>`: redirects whoever may see the file to a fresh download URL.
async fn attachment_link(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = uuid::Uuid::parse_str(&id)
        .map(crate::ids::AttachmentId)
        .map_err(|_| AppError::NotFound("attachment"))?;
    let ctx = crate::http::request_ctx(&state, &req).await?.tenant()?;
    let token = req
        .headers()
        .get("x-access-token")
        .and_then(|v| v.to_str().ok());
    let (att, viewer) = super::download::find(&state, &ctx, id, token).await?;
    let url =
        super::download::download_url(&state, &state.settings.storage, &ctx, &att, &viewer).await?;
    let url = super::graphql::on_origin(&crate::http::origin(&req), url);
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
