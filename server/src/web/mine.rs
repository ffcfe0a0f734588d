//! "My applications": a signed-in citizen's drafts (to continue) and applications (with their
//! status), read through `myDrafts` and `myApplications`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::gql::Nodes;
use super::page::{Cx, Deps, TENANT_HEAD, TenantHead};
use crate::graphql::CheckedSchema;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DraftRow {
    id: String,
    service_slug: String,
    updated_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationRow {
    id: String,
    reference: String,
    service_slug: String,
    state_label: String,
    submitted_at: String,
    awaiting_payment: bool,
}

#[derive(Deserialize)]
struct ServiceRow {
    slug: String,
    title: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    tenant: TenantHead,
    my_drafts: Nodes<DraftRow>,
    my_applications: Nodes<ApplicationRow>,
    services: Nodes<ServiceRow>,
}

pub struct Row {
    pub href: String,
    pub service: String,
    pub reference: String,
    pub state: String,
    pub at: String,
    pub awaiting_payment: bool,
}

#[derive(Template)]
#[template(path = "mine.html")]
struct MinePage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    drafts: Vec<Row>,
    applications: Vec<Row>,
}

/// `GET /t/{tenant}/my`: the signed-in citizen's drafts and applications, newest first. Not
/// signed in: to the sign-in, and back here.
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    if cx.citizen.is_none() {
        return cx.redirect(&cx.sign_in_link());
    }
    let answer: Result<Data, _> = gql
        .run(
            &format!(
                "query($lang: Language!) {{ {TENANT_HEAD} \
                 myDrafts(first: 100) {{ nodes {{ id serviceSlug updatedAt }} }} \
                 myApplications(first: 100) {{ nodes {{ id reference serviceSlug stateLabel submittedAt awaitingPayment }} }} \
                 services(first: 100) {{ nodes {{ slug title: titleIn(language: $lang) }} }} }}"
            ),
            serde_json::json!({ "lang": cx.lang.graphql() }),
        )
        .await;
    let data = match answer {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let titles: HashMap<String, String> = data
        .services
        .nodes
        .into_iter()
        .map(|s| (s.slug, s.title))
        .collect();
    let title = |slug: &str| titles.get(slug).cloned().unwrap_or_else(|| slug.to_owned());
    // IDs are time-ordered: the newest first is the reverse of the API's order.
    let drafts = data
        .my_drafts
        .nodes
        .into_iter()
        .rev()
        .map(|d| Row {
            href: cx.link(&format!("/drafts/{}", d.id)),
            service: title(&d.service_slug),
            reference: String::new(),
            state: String::new(),
            at: cx.lang.date(&d.updated_at),
            awaiting_payment: false,
        })
        .collect();
    let applications = data
        .my_applications
        .nodes
        .into_iter()
        .rev()
        .map(|a| Row {
            href: cx.link(&format!("/applications/{}", a.id)),
            service: title(&a.service_slug),
            reference: a.reference,
            state: a.state_label,
            at: cx.lang.date(&a.submitted_at),
            awaiting_payment: a.awaiting_payment,
        })
        .collect();
    cx.html(
        StatusCode::OK,
        &MinePage {
            cx: &cx,
            tenant: Some(&data.tenant),
            drafts,
            applications,
        },
    )
}
