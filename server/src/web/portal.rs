//! The portal's public pages: the platform's index of municipalities, a municipality's start
//! page (search, services by topic) and a service's page (what, who, fees, documents,
//! appointment, processing time, the responsible office).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::gql::Nodes;
use super::i18n::Lang;
use super::page::{Cx, Deps, ErrorKind, TENANT_HEAD, TenantHead};
use crate::content::ServiceContent;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceRow {
    slug: String,
    title: String,
    summary: String,
    category: String,
}

#[derive(Deserialize)]
struct StartData {
    tenant: TenantHead,
    services: Nodes<ServiceRow>,
}

/// A topic with its services, for the start page.
struct Topic {
    label: String,
    services: Vec<ServiceLink>,
}

struct ServiceLink {
    href: String,
    title: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "start.html")]
struct StartPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    search: String,
    searched: bool,
    topics: Vec<Topic>,
}

#[derive(Deserialize)]
pub struct StartQuery {
    q: Option<String>,
}

/// `GET /t/{tenant}/`: search and the live services by topic.
pub async fn start(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let Some(mut cx) = Cx::of(&req, &state) else {
        return index(req, state, schema).await;
    };
    let deps = Deps::new(&state, &schema);
    let search = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| q.chars().take(200).collect::<String>());
    let gql = match deps.gql(&req, &mut cx).await {
        Ok(g) => g,
        Err(e) => return cx.error(&e),
    };
    let answer: Result<StartData, _> = gql
        .run(
            &format!(
                "query($search: String, $lang: Language!) {{ {TENANT_HEAD} \
                 services(filter: {{search: $search}}, first: 100) {{ nodes {{ slug title: titleIn(language: $lang) \
                 summary: summaryIn(language: $lang) category }} }} }}"
            ),
            serde_json::json!({ "search": search, "lang": cx.lang.graphql() }),
        )
        .await;
    let data = match answer {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let mut by_topic: BTreeMap<String, Vec<ServiceLink>> = BTreeMap::new();
    for s in data.services.nodes {
        by_topic
            .entry(category_label(cx.lang, &s.category))
            .or_default()
            .push(ServiceLink {
                href: cx.link(&format!("/services/{}", s.slug)),
                title: s.title,
                summary: s.summary,
            });
    }
    let topics = by_topic
        .into_iter()
        .map(|(label, services)| Topic { label, services })
        .collect();
    cx.html(
        StatusCode::OK,
        &StartPage {
            cx: &cx,
            tenant: Some(&data.tenant),
            searched: search.is_some(),
            search: search.unwrap_or_default(),
            topics,
        },
    )
}

#[derive(Deserialize)]
struct Municipality {
    slug: String,
    name: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    municipalities: Vec<(String, String)>,
}

/// `GET /` on the platform's own host: the municipalities' portals.
pub async fn index(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
) -> HttpResponse {
    let mut cx = Cx::platform(&req);
    #[derive(Deserialize)]
    struct Data {
        municipalities: Vec<Municipality>,
    }
    let deps = Deps::new(&state, &schema);
    let answer = match deps.gql(&req, &mut cx).await {
        Ok(gql) => {
            gql.run::<Data>("{ municipalities { slug name } }", serde_json::json!({}))
                .await
        }
        Err(e) => Err(e),
    };
    let data = match answer {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let municipalities = data
        .municipalities
        .into_iter()
        .map(|m| (format!("/t/{}/", m.slug), m.name))
        .collect();
    cx.html(
        StatusCode::OK,
        &IndexPage {
            cx: &cx,
            tenant: None,
            municipalities,
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceData {
    tenant: TenantWithDepartments,
    service: ServiceDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantWithDepartments {
    #[serde(flatten)]
    head: TenantHead,
    departments: Nodes<DepartmentRow>,
}

#[derive(Deserialize)]
struct DepartmentRow {
    key: String,
    name: String,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceDetail {
    slug: String,
    resolved_content: serde_json::Value,
}

struct FeeInfo {
    label: String,
    amount: String,
    note: Option<String>,
}

struct DocInfo {
    label: String,
    description: Option<String>,
    conditional: bool,
}

struct OfficeInfo {
    name: String,
    email: Option<String>,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    slug: String,
    title: String,
    summary: String,
    who: String,
    fees: Vec<FeeInfo>,
    documents: Vec<DocInfo>,
    appointment: String,
    processing: String,
    offices: Vec<OfficeInfo>,
}

/// `GET /t/{tenant}/services/{slug}`.
pub async fn service(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let slug = path.last().cloned().unwrap_or_default();
    let answer: Result<ServiceData, _> = gql
        .run(
            "query($slug: String!) { tenant { name branding { primaryColor logoUrl } \
             citizenLoginIssuer departments(first: 100) { nodes { key name email } } } \
             service(slug: $slug) { slug resolvedContent } }",
            serde_json::json!({ "slug": slug }),
        )
        .await;
    let data = match answer {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let Ok(content) = serde_json::from_value::<ServiceContent>(data.service.resolved_content)
    else {
        return cx.error_page(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, None);
    };
    let page = service_page(&cx, &data.tenant, &data.service.slug, &content);
    cx.html(StatusCode::OK, &page)
}

fn service_page<'a>(
    cx: &'a Cx,
    tenant: &'a TenantWithDepartments,
    slug: &str,
    content: &ServiceContent,
) -> ServicePage<'a> {
    let (lang, t) = (cx.lang, cx.t);
    let text = |key: &str| {
        content
            .texts
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| lang.pick(v))
    };
    let label_of = |key: &str| {
        content
            .form
            .steps
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.key.as_str() == key)
            .map_or_else(|| key.to_owned(), |f| lang.pick(&f.label))
    };
    let fees = content
        .fees
        .iter()
        .map(|f| FeeInfo {
            label: lang.pick(&f.label),
            amount: lang.money(f.amount_cents, &content.currency),
            note: match (&f.per_field, &f.when) {
                (Some(per), _) => Some(format!("× {}", label_of(per.as_str()))),
                (None, Some(_)) => Some(t.service_fee_if.to_owned()),
                (None, None) => None,
            },
        })
        .collect();
    let documents = content
        .required_documents
        .iter()
        .map(|d| DocInfo {
            label: lang.pick(&d.label),
            description: d.description.as_ref().map(|x| lang.pick(x)),
            conditional: d.when.is_some() || !d.required,
        })
        .collect();
    let appointment = match &content.appointment {
        Some(a) if a.required => format!(
            "{} ({} {})",
            t.service_appointment_required, a.duration_minutes, t.service_minutes
        ),
        Some(a) => format!(
            "{} ({} {})",
            t.service_appointment_optional, a.duration_minutes, t.service_minutes
        ),
        None => t.service_no_appointment.to_owned(),
    };
    let mut offices: Vec<OfficeInfo> = Vec::new();
    for rule in content.routing.iter().filter(|r| r.when.is_none()) {
        if let Some(d) = tenant
            .departments
            .nodes
            .iter()
            .find(|d| d.key == rule.department.as_str())
            && !offices.iter().any(|o| o.name == d.name)
        {
            offices.push(OfficeInfo {
                name: d.name.clone(),
                email: d.email.clone(),
            });
        }
    }
    ServicePage {
        cx,
        tenant: Some(&tenant.head),
        slug: slug.to_owned(),
        title: lang.pick(&content.title),
        summary: lang.pick(&content.summary),
        who: text("zielgruppe").unwrap_or_else(|| t.service_who_default.to_owned()),
        fees,
        documents,
        appointment,
        processing: text("bearbeitungsdauer")
            .unwrap_or_else(|| t.service_processing_default.to_owned()),
        offices,
    }
}

/// A topic's name: the known category keys in both languages, else the key itself.
pub fn category_label(lang: Lang, key: &str) -> String {
    let known: &[(&str, &str, &str)] = &[
        ("steuern", "Steuern und Abgaben", "Taxes and charges"),
        ("meldewesen", "Melden und Ausweise", "Registration and ID"),
        ("verkehr", "Verkehr und Parken", "Traffic and parking"),
        ("abfall", "Abfall und Umwelt", "Waste and environment"),
        ("ordnung", "Öffentliche Ordnung", "Public order"),
        (
            "familie",
            "Familie und Soziales",
            "Family and social affairs",
        ),
        ("bauen", "Bauen und Wohnen", "Building and housing"),
        ("wirtschaft", "Wirtschaft und Gewerbe", "Business and trade"),
    ];
    known
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, de, en)| if lang == Lang::De { *de } else { *en })
        .map_or_else(|| key.replace('_', " "), str::to_owned)
}

/// `GET /t/{tenant}/brand.css`: the municipality's colour as a stylesheet (no inline styles
/// under the Content-Security-Policy).
pub async fn brand_css(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
) -> HttpResponse {
    let Some(mut cx) = Cx::of(&req, &state) else {
        return HttpResponse::NotFound().finish();
    };
    let deps = Deps::new(&state, &schema);
    #[derive(Deserialize)]
    struct Data {
        tenant: TenantHead,
    }
    let colour = match deps.gql(&req, &mut cx).await {
        Ok(gql) => gql
            .run::<Data>(&format!("{{ {TENANT_HEAD} }}"), serde_json::json!({}))
            .await
            .ok()
            .and_then(|d| d.tenant.branding.primary_color),
        Err(_) => None,
    };
    // Only `#rrggbb` reaches the stylesheet (the API checks it on the way in, too).
    let colour = colour.filter(|c| {
        c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
    });
    let css = match colour {
        Some(c) => format!(".ap-brand {{ border-top: 0.5rem solid {c}; }}\n"),
        None => String::new(),
    };
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(css)
}
