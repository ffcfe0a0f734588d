//! HTTP endpoints of payments:
//!
//! - `POST /webhooks/{provider}/{tenant}`: provider notifications (Stripe:
//!   `/webhooks/stripe/<tenant>`), verified with that tenant's secret before anything is read;
//!   2xx only after the effect is committed, 400 for a bad signature or body (nothing changes).
//! - `GET /payments/report.csv?from=…&to=…`: the treasury report (bearer token, `X-Tenant`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};

use super::ProviderKind;
use super::report;
use super::webhook::{self, Delivery, DeliveryError};
use crate::error::AppError;
use crate::state::AppState;

/// Stripe's events are a few KiB; anything near this is not one.
pub const WEBHOOK_MAX_BYTES: usize = 256 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks/{provider}/{tenant}")
            .app_data(web::PayloadConfig::new(WEBHOOK_MAX_BYTES))
            .route(web::post().to(webhook)),
    )
    .route("/payments/report.csv", web::get().to(report_csv));
}

fn answer(status: actix_web::http::StatusCode, result: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "result": result }))
}

async fn webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (provider, slug) = path.into_inner();
    let Some(kind) = ProviderKind::parse(&provider) else {
        return answer(StatusCode::NOT_FOUND, "unknown provider");
    };
    let tenant = match state.tenants.by_slug(&state.db, &slug).await {
        Ok(Some(t)) => t,
        Ok(None) => return answer(StatusCode::NOT_FOUND, "unknown tenant"),
        Err(e) => {
            tracing::error!(error = %e, "webhook: tenant lookup failed");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, "try again");
        }
    };
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match webhook::deliver(&state, &state.payments, tenant, kind, signature, &body).await {
        Ok(Delivery::Applied) => answer(StatusCode::OK, "applied"),
        Ok(Delivery::NoEffect) => answer(StatusCode::OK, "no effect"),
        Ok(Delivery::Duplicate) => answer(StatusCode::OK, "duplicate"),
        Err(DeliveryError::NotFound) => answer(StatusCode::NOT_FOUND, "no such endpoint"),
        Err(DeliveryError::Rejected(e)) => {
            tracing::warn!(tenant = %slug, error = %e, "webhook rejected");
            answer(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(DeliveryError::Internal(e)) => {
            tracing::error!(error = %e, "webhook failed; the provider will retry");
            answer(StatusCode::INTERNAL_SERVER_ERROR, "try again")
        }
    }
}

#[derive(serde::Deserialize)]
struct Period {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

async fn report_csv(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let ctx = crate::http::request_ctx(&state, &req).await?.tenant()?;
    let period = web::Query::<Period>::from_query(req.query_string())
        .map_err(|_| AppError::invalid("from", "give `from` and `to` as RFC 3339 times"))?
        .into_inner();
    let lines = report::report(&state.db, &ctx, period.from, period.to).await?;
    let csv = report::report_csv(&lines)?;
    let name = format!(
        "zahlungen-{}-{}-{}.csv",
        ctx.tenant.slug,
        period.from.format("%Y%m%d"),
        period.to.format("%Y%m%d")
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(csv))
}
