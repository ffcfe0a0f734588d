//! GraphiQL on `GET /graphql`, from the vendored, pinned bundle (`static/vendor/graphiql`,
//! built by `static/vendor/fetch.sh`): it works on a machine without internet. Its editor
//! (Monaco) and React set inline styles and GraphiQL's fonts are data URIs, so this one page's
//! policy allows those; scripts stay our own files only.

use actix_web::HttpResponse;
use actix_web::http::header;

const GRAPHIQL_CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GraphiQL – Amtsplatz</title>
<link rel="stylesheet" href="/static/vendor/graphiql/graphiql.css">
<script src="/static/vendor/graphiql/graphiql.js" defer></script>
<script src="/static/vendor/graphiql/init.js" defer></script>
</head>
<body>
<div id="graphiql" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws"></div>
</body>
</html>
"#;

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .content_type("text/html; charset=utf-8")
        .body(PAGE)
}

/// Browsers ask for it on every page; nothing rather than a 404 in their console.
pub async fn favicon() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
