//! The route table: the HTTP layer's own routes ([`crate::http`]: GraphQL, health, metrics,
//! JWKS), then each domain's (`<domain>/http.rs`). Part of the composition layer with
//! [`crate::schema`] and [`crate::startup`]: it names every domain; no domain names it.

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(crate::http::routes)
        .configure(crate::applications::http::routes)
        .configure(crate::attachments::http::routes)
        .configure(crate::appointments::http::routes)
        .configure(crate::payments::http::routes)
        .configure(crate::web::routes);
}
