//! Baseline for the benchmark: actix-web + tokio-postgres, one prepared query per request,
//! answering the same data as `tenant { departments }` and `me` as plain JSON.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

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
    })
    .bind(bind)?
    .run()
    .await
}
