//! The pages citizens use in a browser: the portal of each municipality, at `/t/<tenant>/`, or
//! at the root of the tenant's own host when a base domain is set. Rendered on the server from
//! templates checked at compile time (askama, `server/templates/`); every read and write goes
//! through the GraphQL schema in-process ([`gql`]), so pages obey exactly the API's
//! permissions, tenancy, limits and errors. Every form works without JavaScript (POST, then
//! redirect); scripts only enhance.

mod apply;
mod appointment;
pub mod assets;
mod documents;
mod form;
mod gql;
mod graphiql;
mod i18n;
mod mine;
mod page;
mod portal;
mod review;
mod signin;
mod status;

use actix_web::guard::{Guard, GuardContext};
use actix_web::middleware::Compress;
use actix_web::{HttpResponse, web};

pub use page::CSP;

/// The pages' routes: under `/t/{tenant}`, and the same at the root for tenant hosts.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/static")
            .wrap(Compress::default())
            .route("/{path:.*}", web::get().to(assets::serve)),
    )
    .route("/graphql", web::get().to(graphiql::page))
    .route("/favicon.ico", web::get().to(graphiql::favicon))
    .route("/", web::get().to(portal::start))
    .route(
        "/t/{tenant}",
        web::get().to(|path: web::Path<String>| async move {
            HttpResponse::PermanentRedirect()
                .insert_header(("Location", format!("/t/{path}/")))
                .finish()
        }),
    )
    .service(
        web::scope("/t/{tenant}")
            .wrap(Compress::default())
            .configure(|cfg| pages(cfg, None)),
    )
    .configure(|cfg| pages(cfg, Some(TenantHost)));
}

/// Requests to `<tenant>.<base domain>` (the base domain is in the app data's settings).
#[derive(Clone, Copy)]
struct TenantHost;

impl Guard for TenantHost {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        let Some(state) = ctx.app_data::<web::Data<crate::state::AppState>>() else {
            return false;
        };
        let Some(base) = state.settings.base_domain.as_deref() else {
            return false;
        };
        let host = ctx
            .head()
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let host = host.split(':').next().unwrap_or_default();
        host.strip_suffix(base)
            .and_then(|sub| sub.strip_suffix('.'))
            .is_some_and(|s| !s.is_empty() && !s.contains('.'))
    }
}

fn pages(cfg: &mut web::ServiceConfig, guard: Option<TenantHost>) {
    let get = || match guard {
        Some(g) => web::get().guard(g),
        None => web::get(),
    };
    let post = || match guard {
        Some(g) => web::post().guard(g),
        None => web::post(),
    };
    if guard.is_none() {
        // On a tenant host `/` is already the start page (the root route).
        cfg.route("/", get().to(portal::start));
    }
    cfg.route("/brand.css", get().to(portal::brand_css))
        .route("/login", get().to(signin::start))
        .route("/login/callback", get().to(signin::callback))
        .route("/logout", post().to(signin::logout))
        .route("/my", get().to(mine::show))
        .route("/services/{slug}", get().to(portal::service))
        .route("/services/{slug}/apply", post().to(apply::start))
        .route("/drafts/{id}", get().to(apply::resume_here))
        .route("/drafts/{id}/resume", get().to(apply::resume))
        .route("/drafts/{id}/saved", get().to(apply::saved))
        .route("/drafts/{id}/steps/{step}", get().to(apply::show_step))
        .route("/drafts/{id}/steps/{step}", post().to(apply::post_step))
        .route("/drafts/{id}/documents", get().to(documents::show))
        .route("/drafts/{id}/documents", post().to(documents::upload))
        .route("/drafts/{id}/documents/next", post().to(documents::next))
        .route(
            "/drafts/{id}/documents/delete",
            post().to(documents::delete),
        )
        .route("/drafts/{id}/review", get().to(review::show))
        .route("/drafts/{id}/submit", post().to(review::submit))
        .route("/applications/{id}", get().to(status::show))
        .route("/applications/{id}/submitted", get().to(status::submitted))
        .route("/applications/{id}/access", get().to(status::access))
        .route("/applications/{id}/messages", post().to(status::write))
        .route("/applications/{id}/provide", post().to(status::write))
        .route("/applications/{id}/events", get().to(status::events))
        .route("/applications/{id}/pay", post().to(status::pay))
        .route(
            "/applications/{id}/appointment",
            get().to(appointment::show),
        )
        .route(
            "/applications/{id}/appointment",
            post().to(appointment::book),
        )
        .route("/appointments/{id}", get().to(appointment::manage))
        .route(
            "/appointments/{id}/manage",
            get().to(appointment::manage_link),
        )
        .route("/appointments/{id}/cancel", post().to(appointment::change))
        .route(
            "/appointments/{id}/reschedule",
            post().to(appointment::change),
        )
        .route(
            "/applications/{id}/payment/{outcome}",
            get().to(status::payment_return),
        );
}
