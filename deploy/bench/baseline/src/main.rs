//! Baseline for the benchmark: actix-web + tokio-postgres, one prepared query per request (per
//! nested list for the marketplace page), answering the same data as `tenant { departments }`,
//! `me`, `templates(first: 20)` and `applications(first: 20) { tasks }` as plain JSON, and doing
//! the same inserts as `submitApplication` in one transaction.

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

/// The inserts of a submission in one transaction: counter, application, the routed task, the
/// first event, the acknowledgement in the outbox. No validation, routing rules or fees: the
/// least a hand-written endpoint must do to store an application.
async fn submit(pool: web::Data<Pool>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(data) = serde_json::from_slice::<serde_json::Value>(&body) else { return HttpResponse::BadRequest().finish() };
    let Ok(mut client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    match submit_tx(&mut client, &slug, &data).await {
        Ok(Some(reference)) => HttpResponse::Ok().json(serde_json::json!({ "data": { "submitApplication": { "application": { "reference": reference } } } })),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            eprintln!("submit: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn submit_tx(client: &mut deadpool_postgres::Client, slug: &str, data: &serde_json::Value) -> Result<Option<String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let service = tx
        .prepare_cached(
            "SELECT t.id, s.id, s.current_revision FROM tenants t JOIN tenant_services s ON s.tenant_id = t.id \
             WHERE t.slug = $1 AND s.slug = 'hundesteuer' AND s.status = 'live'",
        )
        .await?;
    let Some(row) = tx.query_opt(&service, &[&slug]).await? else { return Ok(None) };
    let (tenant, service, revision): (Uuid, Uuid, i64) = (row.get(0), row.get(1), row.get(2));
    let counter = tx
        .prepare_cached(
            "INSERT INTO application_counters (tenant_id, year, last_number, last_seq) VALUES ($1, $2, 1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET last_number = application_counters.last_number + 1, \
             last_seq = application_counters.last_seq + 1 RETURNING last_number, last_seq",
        )
        .await?;
    let year: i32 = 2026;
    let row = tx.query_one(&counter, &[&tenant, &year]).await?;
    let (number, seq): (i64, i64) = (row.get(0), row.get(1));
    let reference = format!("{}-{year}-{number:06}", slug.to_uppercase());
    let id = Uuid::now_v7();
    let text = data.to_string();
    let email = data.get("email").and_then(|e| e.as_str()).map(str::to_owned);
    let insert = tx
        .prepare_cached(
            "INSERT INTO applications (id, tenant_id, service_id, service_slug, revision, seq, reference, state, data, fees, \
             citizen_issuer, citizen_subject, access_hash, contact_email, search_text, submitted_at, updated_at) \
             VALUES ($1, $2, $3, 'hundesteuer', $4, $5, $6, 'submitted', ($7::text)::jsonb, '[]'::jsonb, NULL, NULL, $8, $9, $10, now(), now())",
        )
        .await?;
    let hash = "0".repeat(64);
    tx.execute(&insert, &[&id, &tenant, &service, &revision, &seq, &reference, &text, &hash, &email, &reference.to_lowercase()]).await?;
    let task = tx
        .prepare_cached(
            "INSERT INTO application_tasks (id, tenant_id, application_id, department_id, rule_key, state, created_at) \
             SELECT $1, $2, $3, d.id, 'steueramt', 'open', now() FROM departments d WHERE d.tenant_id = $2 AND d.key = 'kasse'",
        )
        .await?;
    tx.execute(&task, &[&Uuid::now_v7(), &tenant, &id]).await?;
    let event = tx
        .prepare_cached(
            "INSERT INTO application_events (id, tenant_id, application_id, kind, actor, to_state, internal, at) \
             VALUES ($1, $2, $3, 'submitted', 'anonymous', 'submitted', false, now())",
        )
        .await?;
    tx.execute(&event, &[&Uuid::now_v7(), &tenant, &id]).await?;
    if let Some(email) = email {
        let outbox = tx
            .prepare_cached(
                "INSERT INTO outbox (id, tenant_id, kind, recipient, subject, body, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, 'email', $3, $4, $5, 0, now(), now())",
            )
            .await?;
        let subject = format!("Ihr Antrag {reference} ist eingegangen");
        tx.execute(&outbox, &[&Uuid::now_v7(), &tenant, &email, &subject, &subject]).await?;
    }
    tx.commit().await?;
    Ok(Some(reference))
}

/// The first 20 applications of the tenant with their tasks and the tasks' departments: two
/// round trips, like the server's page plus one DataLoader batch.
async fn applications(pool: web::Data<Pool>, req: HttpRequest) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    match applications_page(&client, &slug).await {
        Ok(edges) => HttpResponse::Ok().json(serde_json::json!({ "data": { "applications": { "edges": edges } } })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

async fn applications_page(client: &deadpool_postgres::Client, slug: &str) -> Result<Vec<serde_json::Value>, tokio_postgres::Error> {
    let page = client
        .prepare_cached(
            "SELECT a.id, a.reference, a.state, a.submitted_at FROM applications a \
             WHERE a.tenant_id = (SELECT id FROM tenants WHERE slug = $1) ORDER BY a.id LIMIT 21",
        )
        .await?;
    let rows = client.query(&page, &[&slug]).await?;
    let rows = &rows[..rows.len().min(20)];
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let tasks = client
        .prepare_cached(
            "SELECT k.application_id, k.state, d.key, d.name FROM application_tasks k JOIN departments d ON d.id = k.department_id \
             WHERE k.application_id = ANY($1) ORDER BY k.id",
        )
        .await?;
    let mut tasks_of: HashMap<Uuid, Vec<serde_json::Value>> = HashMap::new();
    for t in client.query(&tasks, &[&ids]).await? {
        tasks_of.entry(t.get(0)).or_default().push(serde_json::json!({
            "state": t.get::<_, &str>(1), "department": { "key": t.get::<_, &str>(2), "name": t.get::<_, &str>(3) }
        }));
    }
    Ok(rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            let at: chrono::DateTime<chrono::Utc> = r.get(3);
            serde_json::json!({ "node": {
                "id": id.to_string(), "reference": r.get::<_, &str>(1), "state": r.get::<_, &str>(2),
                "submittedAt": at.to_rfc3339(), "tasks": tasks_of.remove(&id).unwrap_or_default(),
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
            .route("/submit", web::post().to(submit))
            .route("/applications", web::get().to(applications))
    })
    .bind(bind)?
    .run()
    .await
}
