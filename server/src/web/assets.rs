//! Static assets (our CSS and script, the vendored KERN UX, GraphiQL and htmx) built into the
//! binary: `cargo run` and the container need no asset folder. Served with their SHA-256 as
//! ETag; vendored files never change under a pinned version, so browsers may keep them a day.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
#[exclude = "vendor/node_modules/*"]
#[exclude = "vendor/package.json"]
#[exclude = "vendor/package-lock.json"]
#[exclude = "vendor/fetch.sh"]
#[exclude = "vendor/.gitignore"]
#[exclude = "vendor/src/*"]
struct Assets;

/// `GET /static/{path}`.
pub async fn serve(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(file) = Assets::get(path.as_str()) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let etag = format!(
        "\"{}\"",
        file.metadata
            .sha256_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut answer = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if fresh {
        return answer.finish();
    }
    answer
        .content_type(file.metadata.mimetype())
        .body(file.data.into_owned())
}

/// Whether an asset exists (for tests of the pages' references).
pub fn exists(path: &str) -> bool {
    Assets::get(path).is_some()
}
