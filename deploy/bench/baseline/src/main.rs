//! Baseline for the benchmark: actix-web + tokio-postgres, one prepared query per request (per
//! nested list for the marketplace page), answering the same data as `tenant { departments }`,
//! `me`, `templates(first: 20)` and `applications(first: 20) { tasks }` as plain JSON, and doing
//! the same inserts as `submitApplication` in one transaction, and the same locked insert as
//! `bookAppointment` (with its two outbox rows).

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
    templates_answer(pool, req, true).await
}

/// The same page without the adoption counts: the templates with their versions only (what
/// deploy/bench/peer.sh compares with PostGraphile).
async fn template_versions(pool: web::Data<Pool>, req: HttpRequest) -> HttpResponse {
    templates_answer(pool, req, false).await
}

async fn templates_answer(pool: web::Data<Pool>, req: HttpRequest, adoption: bool) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    match templates_page(&client, &slug, adoption).await {
        Ok(edges) => HttpResponse::Ok().json(serde_json::json!({ "data": { "templates": { "edges": edges } } })),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Three round trips, like the server's DataLoaders: the page (public templates plus the tenant's
/// own, with at least one version unless the tenant authored them; oldest first, 21 rows to know
/// whether a next page exists), then the versions of all its templates (newest first), then the
/// adoption counts (distinct tenants per template and per version in one grouped query), unless
/// `adoption` is false.
async fn templates_page(client: &deadpool_postgres::Client, slug: &str, adoption: bool) -> Result<Vec<serde_json::Value>, tokio_postgres::Error> {
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

    if !adoption {
        return Ok(rows
            .iter()
            .map(|t| {
                let id: Uuid = t.get(0);
                let list: Vec<_> = versions_of.get(&id).map(Vec::as_slice).unwrap_or_default().iter().map(|v| version_json(v)).collect();
                serde_json::json!({ "node": { "slug": t.get::<_, &str>(1), "title": t.get::<_, &str>(2), "category": t.get::<_, &str>(3), "versions": list } })
            })
            .collect());
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
            let list: Vec<_> = vs.iter().map(|v| version_json(v)).collect();
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

fn version_json(v: &tokio_postgres::Row) -> serde_json::Value {
    let published: chrono::DateTime<chrono::Utc> = v.get(4);
    serde_json::json!({ "version": v.get::<_, &str>(2), "changelog": v.get::<_, &str>(3), "publishedAt": published.to_rfc3339() })
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

/// `bookAppointment` without a hold, challenge or application: the body is the mutation's input
/// (`serviceSlug`, `locationId`, `start`, `contact { name email }`). One transaction: the offer,
/// the contact's open bookings, the location's resources locked `FOR UPDATE`, the overlapping
/// bookings, then the booking and its two outbox rows (confirmation with the `.ics`, reminder
/// 24 hours before), or `SLOT_FULL`.
async fn book(pool: web::Data<Pool>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let slug = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(&body) else { return HttpResponse::BadRequest().finish() };
    let service = input["serviceSlug"].as_str().unwrap_or_default();
    let location = input["locationId"].as_str().and_then(|v| Uuid::parse_str(v).ok());
    let start = input["start"].as_str().and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok());
    let name = input["contact"]["name"].as_str().unwrap_or_default().trim();
    let email = input["contact"]["email"].as_str().unwrap_or_default().trim().to_lowercase();
    let (Some(location), Some(start)) = (location, start) else { return HttpResponse::BadRequest().finish() };
    if name.is_empty() || !email.contains('@') {
        return HttpResponse::BadRequest().finish();
    }
    let Ok(mut client) = pool.get().await else { return HttpResponse::ServiceUnavailable().finish() };
    let booking = Booking { slug: &slug, service, location, start: start.to_utc(), name, email: &email };
    match book_tx(&mut client, &booking).await {
        Ok(Booked::Yes(id)) => HttpResponse::Ok().json(serde_json::json!({ "data": { "bookAppointment": { "booking": { "id": id.to_string() } } } })),
        Ok(Booked::Full) => HttpResponse::Ok().json(serde_json::json!({ "errors": [{ "extensions": { "code": "SLOT_FULL" } }] })),
        Ok(Booked::Refused(code)) => HttpResponse::Ok().json(serde_json::json!({ "errors": [{ "extensions": { "code": code } }] })),
        Err(e) => {
            eprintln!("book: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

struct Booking<'a> {
    slug: &'a str,
    service: &'a str,
    location: Uuid,
    start: chrono::DateTime<chrono::Utc>,
    name: &'a str,
    email: &'a str,
}

enum Booked {
    Yes(Uuid),
    Full,
    Refused(&'static str),
}

async fn book_tx(client: &mut deadpool_postgres::Client, b: &Booking<'_>) -> Result<Booked, tokio_postgres::Error> {
    use base64::Engine as _;
    use chrono::Utc;
    use sha2::Digest as _;

    let tx = client.transaction().await?;
    // Tenant scoping as the server does it (the owner bypasses row-level security; the queries
    // filter by tenant as well), folded into the offer lookup.
    let offer = tx
        .prepare_cached(
            "SELECT set_config('app.tenant_id', t.id::text, true), t.id, t.name, s.id, s.title, \
             o.duration_minutes, o.buffer_minutes, o.max_open_per_contact, l.name, l.address \
             FROM tenants t JOIN tenant_services s ON s.tenant_id = t.id AND s.slug = $2 AND s.status = 'live' \
             JOIN locations l ON l.tenant_id = t.id AND l.id = $3 \
             JOIN appointment_offers o ON o.tenant_id = t.id AND o.service_id = s.id AND o.location_id = l.id \
             WHERE t.slug = $1",
        )
        .await?;
    let Some(o) = tx.query_opt(&offer, &[&b.slug, &b.service, &b.location]).await? else { return Ok(Booked::Refused("NOT_FOUND")) };
    let (tenant, municipality, service, title): (Uuid, String, Uuid, String) = (o.get(1), o.get(2), o.get(3), o.get(4));
    let (duration, buffer, max_open): (i32, i32, i32) = (o.get(5), o.get(6), o.get(7));
    let (place, address): (String, String) = (o.get(8), o.get(9));
    let now = Utc::now();

    let open = tx
        .prepare_cached(
            "SELECT count(*) FROM bookings WHERE tenant_id = $1 AND service_id = $2 AND contact_email = $3 \
             AND state = 'booked' AND start_at > $4",
        )
        .await?;
    let n: i64 = tx.query_one(&open, &[&tenant, &service, &b.email, &now]).await?.get(0);
    if n >= i64::from(max_open) {
        return Ok(Booked::Refused("CONFLICT"));
    }

    let lock = tx
        .prepare_cached(
            "SELECT id, capacity FROM booking_resources WHERE tenant_id = $1 AND location_id = $2 AND active \
             ORDER BY key FOR UPDATE",
        )
        .await?;
    let resources = tx.query(&lock, &[&tenant, &b.location]).await?;
    let ids: Vec<Uuid> = resources.iter().map(|r| r.get(0)).collect();
    let end = b.start + chrono::Duration::minutes(i64::from(duration));
    let blocked = end + chrono::Duration::minutes(i64::from(buffer));
    let busy = tx
        .prepare_cached(
            "SELECT resource_id FROM bookings WHERE tenant_id = $1 AND resource_id = ANY($2) \
             AND state NOT IN ('cancelled', 'expired') AND (hold_expires_at IS NULL OR hold_expires_at > now()) \
             AND start_at < $4 AND blocked_until > $3",
        )
        .await?;
    let taken = tx.query(&busy, &[&tenant, &ids, &b.start, &blocked]).await?;
    let free = resources.iter().find(|r| {
        let id: Uuid = r.get(0);
        let capacity: i32 = r.get(1);
        (taken.iter().filter(|t| t.get::<_, Uuid>(0) == id).count() as i64) < i64::from(capacity)
    });
    let Some(resource) = free.map(|r| r.get::<_, Uuid>(0)) else { return Ok(Booked::Full) };

    let id = Uuid::now_v7();
    let token = base64::engine::general_purpose::STANDARD.encode([Uuid::now_v7().into_bytes(), Uuid::now_v7().into_bytes()].concat());
    let hash: String = sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let insert = tx
        .prepare_cached(
            "INSERT INTO bookings (id, tenant_id, service_id, location_id, resource_id, application_id, start_at, end_at, \
             blocked_until, state, contact_name, contact_email, cancel_hash, created_at, cancelled_at, hold_expires_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, 'booked', $9, $10, $11, $12, NULL, NULL)",
        )
        .await?;
    tx.execute(&insert, &[&id, &tenant, &service, &b.location, &resource, &b.start, &end, &blocked, &b.name, &b.email, &hash, &now])
        .await?;

    // The two mails, in one statement like the server's insert_many.
    let when = b.start.format("%d.%m.%Y, %H:%M UTC");
    let stamp = |t: chrono::DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Baseline//DE\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\nUID:{id}@baseline\r\n\
         DTSTAMP:{}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:{title} – {municipality}\r\nLOCATION:{place}\\, {address}\r\n\
         STATUS:CONFIRMED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        stamp(now),
        stamp(b.start),
        stamp(end)
    );
    let files = serde_json::json!([{ "filename": "termin.ics", "contentType": "text/calendar; charset=utf-8; method=PUBLISH",
        "base64": base64::engine::general_purpose::STANDARD.encode(ics) }]);
    let details = format!("Anliegen: {title}\nWann: {when}\nWo: {place}, {address}\n");
    let links = format!("\nKalenderdatei: /bookings/{id}.ics?tenant={}&token={token}\nBuchungsnummer {id}\n", b.slug);
    let confirmation = format!("Guten Tag {},\n\nIhr Termin ist gebucht:\n\n{details}{links}\nIhre {municipality}\n", b.name);
    let reminder = format!("Guten Tag {},\n\nwir erinnern Sie an Ihren Termin:\n\n{details}{links}\nIhre {municipality}\n", b.name);
    let remind_at = b.start - chrono::Duration::hours(24);
    let outbox = tx
        .prepare_cached(
            "INSERT INTO outbox (id, tenant_id, kind, recipient, subject, body, attempts, next_attempt_at, created_at, attachments, topic) \
             VALUES ($1, $2, 'email', $3, $4, $5, 0, $6, $6, ($7::text)::jsonb, NULL), \
             ($8, $2, 'email', $3, $9, $10, 0, $11, $6, NULL, $12)",
        )
        .await?;
    tx.execute(
        &outbox,
        &[
            &Uuid::now_v7(), &tenant, &b.email, &format!("Terminbestätigung: {title}"), &confirmation, &now, &files.to_string(),
            &Uuid::now_v7(), &format!("Erinnerung an Ihren Termin: {title}"), &reminder, &remind_at, &format!("booking-reminder:{id}"),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Booked::Yes(id))
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
            .route("/template-versions", web::get().to(template_versions))
            .route("/submit", web::post().to(submit))
            .route("/book", web::post().to(book))
            .route("/applications", web::get().to(applications))
    })
    .bind(bind)?
    .run()
    .await
}
