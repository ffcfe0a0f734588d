//! `GET /bookings/<id>.ics?token=…`: a booking's calendar file, for whoever holds its token.
//! The tenant comes from `X-Tenant`, the host's subdomain, or `&tenant=<slug>` (links in mails).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/bookings/{file}", web::get().to(calendar_file));
}

#[derive(serde::Deserialize)]
struct IcsQuery {
    token: String,
    tenant: Option<String>,
}

async fn calendar_file(
    state: web::Data<AppState>,
    req: HttpRequest,
    file: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = file
        .strip_suffix(".ics")
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(crate::ids::BookingId)
        .ok_or(AppError::NotFound(
            "booking (use /bookings/<id>.ics?token=…)",
        ))?;
    let query = web::Query::<IcsQuery>::from_query(req.query_string())
        .map_err(|_| AppError::invalid("token", "give the booking's token"))?
        .into_inner();
    let ctx = match &query.tenant {
        Some(slug) => {
            crate::http::resolve(&state, Some(slug), None, uuid::Uuid::new_v4().to_string()).await?
        }
        None => crate::http::request_ctx(&state, &req).await?,
    }
    .tenant()?;
    let (booking, location, title) =
        super::booking::for_ics(&state.db, &ctx, id, &query.token).await?;
    let body = super::ics::render(&booking, &location, &title, &ctx.tenant.name);
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"termin.ics\"",
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(body))
}
