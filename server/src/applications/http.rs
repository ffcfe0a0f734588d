//! HTTP routes of applications: the export for back-office systems, one application
//! (`GET /api/applications/<id>.json|.xml`) or a batch (`GET /api/applications/export`).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;
use crate::http::{origin, request_ctx};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/applications/export", web::get().to(export_batch))
        .route("/api/applications/{file}", web::get().to(export_one));
}

/// `GET /api/applications/{id}.json` or `.xml`: one application for a back-office system (or
/// anyone who may see it; anonymous applicants send `X-Access-Token`).
async fn export_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (id, format) = file
        .rsplit_once('.')
        .filter(|(_, ext)| matches!(*ext, "json" | "xml"))
        .ok_or(AppError::NotFound(
            "export (use /api/applications/<id>.json or .xml)",
        ))?;
    let id = uuid::Uuid::parse_str(id)
        .map(crate::ids::ApplicationId)
        .map_err(|_| AppError::NotFound("application"))?;
    let ctx = request_ctx(&state, &req).await?.tenant()?;
    let token = req
        .headers()
        .get("x-access-token")
        .and_then(|v| v.to_str().ok());
    let (app, _viewer) = crate::applications::access::application(&state, &ctx, id, token).await?;
    let mut docs =
        crate::applications::export::documents(&state, &ctx, vec![app], &origin(&req)).await?;
    let doc = docs.pop().ok_or(AppError::NotFound("application"))?;
    Ok(match format {
        "xml" => HttpResponse::Ok()
            .content_type("application/xml; charset=utf-8")
            .body(crate::applications::export::to_xml(&doc)?),
        _ => HttpResponse::Ok().json(doc),
    })
}

#[derive(serde::Deserialize)]
struct BatchQuery {
    /// The `cursor` of the previous batch (0 or absent: from the beginning).
    #[serde(default)]
    after: i64,
    limit: Option<u64>,
    format: Option<String>,
}

/// `GET /api/applications/export?after=<cursor>&limit=<n>&format=json|xml`: applications
/// submitted after the cursor, in commit order, with the cursor to pass next time. Staff only.
async fn export_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let query = web::Query::<BatchQuery>::from_query(req.query_string())
        .map_err(|e| AppError::invalid("query", e.to_string()))?
        .into_inner();
    let limit = query
        .limit
        .unwrap_or(crate::applications::export::MAX_BATCH);
    if !(1..=crate::applications::export::MAX_BATCH).contains(&limit) {
        return Err(AppError::invalid(
            "limit",
            format!(
                "must be between 1 and {}",
                crate::applications::export::MAX_BATCH
            ),
        ));
    }
    let ctx = request_ctx(&state, &req).await?.tenant()?;
    let apps =
        crate::applications::queries::export_batch(&state.db, &ctx, query.after, limit).await?;
    let cursor = apps.last().map_or(query.after, |a| a.seq);
    let docs = crate::applications::export::documents(&state, &ctx, apps, &origin(&req)).await?;
    Ok(match query.format.as_deref() {
        Some("xml") => HttpResponse::Ok()
            .content_type("application/xml; charset=utf-8")
            .body(crate::applications::export::batch_to_xml(&docs, cursor)?),
        None | Some("json") => HttpResponse::Ok().json(serde_json::json!({
            "cursor": cursor,
            "applications": docs,
        })),
        Some(_) => return Err(AppError::invalid("format", "must be json or xml")),
    })
}
