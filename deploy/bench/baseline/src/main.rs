//! Baseline for the benchmark: actix-web + tokio-postgres, one prepared query per request (per
//! nested list for the marketplace page), answering the same data as `tenant { departments }`,
//! `me` and `templates(first: 20)` as plain JSON.

use std::collections::HashMap;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use uuid::Uuid;

async fn departments(pool: web::Data<Pool>, req: HttpRequest) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    let Ok(stmt) = client
        .prepare_cached(
            "SELECT d.id, d.key, d.name, d.email FROM departments d JOIN tenants t ON t.id = d.tenant_id \
             WHERE t.slug = $1 ORDER BY d.id LIMIT 21",
        )
        .await
    else {
        return HttpResponse::InternalServerError().finish();
    };
    let Ok(rows) = client.query(&stmt, &[&slug]).await else { return HttpResponse::InternalServerError().finish() };
    let edges: Vec<_> = rows
        .iter()
        .take(20)
        .map(|r| {
            let id: uuid::Uuid = r.get(0);
            serde_json::json!({ "node": { "id": id.to_string(), "key": r.get::<_, String>(1), "name": r.get::<_, String>(2), "email": r.get::<_, Option<String>>(3) } })
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "data": { "tenant": { "departments": { "edges": edges } } } }))
}

async fn me(pool: web::Data<Pool>, req: HttpRequest) -> HttpResponse {
    let id = req.headers().get("x-user").and_then(|v| v.to_str().ok()).and_then(|v| uuid::Uuid::parse_str(v).ok());
    let Some(id) = id else { return HttpResponse::Unauthorized().finish() };
    let Ok(client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    let Ok(stmt) = client.prepare_cached("SELECT id, email, display_name FROM staff_users WHERE id = $1").await else {
        return HttpResponse::InternalServerError().finish();
    };
    match client.query_opt(&stmt, &[&id]).await {
        Ok(Some(r)) => {
            let id: uuid::Uuid = r.get(0);
            HttpResponse::Ok().json(serde_json::json!({ "data": { "me": { "id": id.to_string(), "email": r.get::<_, String>(1), "displayName": r.get::<_, String>(2) } } }))
        }
        _ => HttpResponse::NotFound().finish(),
    }
}

/// The marketplace page as an anonymous visitor of the `X-Tenant` tenant sees it.
async fn templates(pool: web::Data<Pool>, req: HttpRequest) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    match templates_page(&client, &slug).await {
        Ok(edges) => HttpResponse::Ok().json(serde_json::json!({ "data": { "templates": { "edges": edges } } })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Three round trips, like the server's DataLoaders: the page (public templates plus the tenant's
/// own, with at least one version unless the tenant authored them; oldest first, 21 rows to know
/// whether a next page exists), then the versions of all its templates (newest first), then the
/// adoption counts (distinct tenants per template and per version in one grouped query).
async fn templates_page(client: &deadpool_postgres::Client, slug: &str) -> Result<Vec<serde_json::Value>, tokio_postgres::Error> {
    let page = client
        .prepare_cached(
            "SELECT t.id, t.slug, t.title, t.category FROM templates t LEFT JOIN tenants v ON v.slug = $1 \
             WHERE (t.visibility = 'public' OR t.author_tenant_id = v.id) \
             AND (t.author_tenant_id = v.id OR EXISTS (SELECT 1 FROM template_versions tv WHERE tv.template_id = t.id)) \
             ORDER BY t.id LIMIT 21",
        )
        .await?;
    let rows = client.query(&page, &[&slug]).await?;
    let rows = &rows[..rows.len().min(20)];
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();

    let versions = client
        .prepare_cached(
            "SELECT id, template_id, version, changelog, published_at FROM template_versions \
             WHERE template_id = ANY($1) ORDER BY major DESC, minor DESC, patch DESC",
        )
        .await?;
    let versions = client.query(&versions, &[&ids]).await?;
    let mut versions_of: HashMap<Uuid, Vec<&tokio_postgres::Row>> = HashMap::new();
    for v in &versions {
        versions_of.entry(v.get(1)).or_default().push(v);
    }

    // Grouping sets: a row per template (version id NULL) and a row per version (template id NULL).
    let adoption = client
        .prepare_cached(
            "SELECT template_id, template_version_id, COUNT(DISTINCT tenant_id) FROM template_adoptions \
             WHERE template_id = ANY($1) GROUP BY GROUPING SETS ((template_id), (template_version_id))",
        )
        .await?;
    let (mut per_template, mut per_version) = (HashMap::new(), HashMap::new());
    for r in client.query(&adoption, &[&ids]).await? {
        let n: i64 = r.get(2);
        match (r.get::<_, Option<Uuid>>(0), r.get::<_, Option<Uuid>>(1)) {
            (Some(t), None) => per_template.insert(t, n),
            (None, Some(v)) => per_version.insert(v, n),
            _ => None,
        };
    }

    Ok(rows
        .iter()
        .map(|t| {
            let id: Uuid = t.get(0);
            let vs = versions_of.get(&id).map(Vec::as_slice).unwrap_or_default();
            let list: Vec<_> = vs
                .iter()
                .map(|v| {
                    let published: chrono::DateTime<chrono::Utc> = v.get(4);
                    serde_json::json!({ "version": v.get::<_, &str>(2), "changelog": v.get::<_, &str>(3), "publishedAt": published.to_rfc3339() })
                })
                .collect();
            let by_version: Vec<_> = vs
                .iter()
                .filter_map(|v| {
                    let n = per_version.get(&v.get::<_, Uuid>(0))?;
                    Some(serde_json::json!({ "version": v.get::<_, &str>(2), "tenants": n }))
                })
                .collect();
            serde_json::json!({ "node": {
                "slug": t.get::<_, &str>(1), "title": t.get::<_, &str>(2), "category": t.get::<_, &str>(3),
                "versions": list,
                "adoption": { "tenants": per_template.get(&id).copied().unwrap_or(0_i64), "byVersion": by_version },
            } })
        })
        .collect())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/amtsplatz_bench".into());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:18081".into());
    let config: tokio_postgres::Config = url.parse().map_err(std::io::Error::other)?;
    let manager = Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager).max_size(16).build().map_err(std::io::Error::other)?;
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(pool.clone()))
            .route("/departments", web::get().to(departments))
            .route("/me", web::get().to(me))
            .route("/templates", web::get().to(templates))
    })
    .bind(bind)?
    .run()
    .await
}
