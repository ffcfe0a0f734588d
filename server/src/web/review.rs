//! The review page before submitting (every answer with a link to change it, the fees as
//! submission computes them) and the submission itself.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::apply::{DRAFT_COOKIE, Loaded, draft_path, load, posted};
use super::form::ErrorLink;
use super::page::{Cx, Deps, TenantHead};
use super::status::APPLICATION_COOKIE;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

struct Answer {
    label: String,
    value: String,
    change: String,
}

struct Section {
    title: String,
    answers: Vec<Answer>,
}

struct FeeLine {
    label: String,
    amount: String,
}

#[derive(Template)]
#[template(path = "review.html")]
struct ReviewPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    sections: Vec<Section>,
    fees: Vec<FeeLine>,
    total: String,
    errors: Vec<ErrorLink>,
    action: String,
    back: String,
    files: Vec<String>,
    documents_link: String,
}

fn review_page<'a>(
    cx: &'a Cx,
    draft: &'a Loaded,
    problems: &BTreeMap<String, String>,
) -> ReviewPage<'a> {
    let lang = cx.lang;
    let wizard = &draft.wizard;
    let base = draft_path(cx, &draft.id);
    let steps = wizard.visible_steps(&draft.data);
    let sections = steps
        .iter()
        .map(|step| Section {
            title: lang.pick(&step.title),
            answers: step
                .fields
                .iter()
                .filter(|f| f.visible_if.as_ref().is_none_or(|c| c.holds(&draft.data)))
                .map(|f| Answer {
                    label: lang.pick(&f.label),
                    value: wizard.display(
                        lang,
                        f.key.as_str(),
                        draft
                            .data
                            .get(f.key.as_str())
                            .unwrap_or(&serde_json::Value::Null),
                    ),
                    change: format!("{base}/steps/{}#f-{}", step.key, f.key),
                })
                .collect(),
        })
        .collect();
    let currency = wizard.content.currency.as_str();
    // The labels in the page's language: the content's fee of the same key.
    let fees = draft
        .fees
        .iter()
        .map(|f| FeeLine {
            label: wizard
                .content
                .fees
                .iter()
                .find(|c| c.key.as_str() == f.key)
                .map_or_else(|| f.label.clone(), |c| lang.pick(&c.label)),
            amount: lang.money(f.amount_cents, currency),
        })
        .collect();
    let total = lang.money(draft.fees.iter().map(|f| f.amount_cents).sum(), currency);
    let mut errors =
        wizard.error_links(lang, problems, None, &|step| format!("{base}/steps/{step}"));
    for (path, message) in problems {
        if let Some(doc) = path.strip_prefix("input.documents/") {
            let label = wizard
                .content
                .required_documents
                .iter()
                .find(|d| d.key.as_str() == doc)
                .map_or_else(|| doc.to_owned(), |d| lang.pick(&d.label));
            errors.push(ErrorLink {
                href: format!("{base}/documents#doc-{doc}"),
                text: format!("{label}: {message}"),
            });
        }
    }
    let back = if super::documents::asks_for_documents(draft) {
        format!("{base}/documents")
    } else {
        format!(
            "{base}/steps/{}",
            steps.last().map_or("", |s| s.key.as_str())
        )
    };
    let files = draft
        .files
        .iter()
        .map(|f| {
            let doc = wizard
                .content
                .required_documents
                .iter()
                .find(|d| Some(d.key.as_str()) == f.document.as_deref())
                .map(|d| lang.pick(&d.label));
            match doc {
                Some(label) => format!("{label}: {}", f.filename),
                None => f.filename.clone(),
            }
        })
        .collect();
    ReviewPage {
        cx,
        tenant: Some(&draft.tenant),
        service_title: lang.pick(&wizard.content.title),
        sections,
        fees,
        total,
        errors,
        action: format!("{base}/submit"),
        back,
        files,
        documents_link: format!("{base}/documents"),
    }
}

/// `GET /t/{tenant}/drafts/{id}/review`.
pub async fn show(
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
    let id = path.last().map_or("", String::as_str);
    let draft = match load(&gql, &req, id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    // Problems show only once the citizen has been through the steps (they are shown at the
    // fields there); a draft with problems still reviews, and submitting names them.
    cx.html(StatusCode::OK, &review_page(&cx, &draft, &BTreeMap::new()))
}

/// `POST /t/{tenant}/drafts/{id}/submit`: submits the draft's data; refused answers come
/// back on the review page, each linking to its field.
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    payload: web::Payload,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    if let Err(page) = posted(&req, &cx, payload).await {
        return page;
    }
    let id = path.last().map_or("", String::as_str);
    let draft = match load(&gql, &req, id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    #[derive(Deserialize)]
    struct AppId {
        id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Submitted {
        application: AppId,
        access_token: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        submit_application: Submitted,
    }
    let answer: Result<Data, _> = gql
        .run(
            "mutation($input: SubmitApplicationInput!) { submitApplication(input: $input) { application { id } accessToken } }",
            json!({ "input": {
                "serviceSlug": draft.slug,
                "data": draft.data,
                "draftId": draft.id,
                "accessToken": draft.token,
            }}),
        )
        .await;
    match answer {
        Ok(data) => {
            let app = data.submit_application.application.id;
            let app_path = cx.link(&format!("/applications/{app}"));
            if let Some(token) = data.submit_application.access_token {
                cx.set_cookie(APPLICATION_COOKIE, token, app_path.clone());
            }
            cx.clear_cookie(DRAFT_COOKIE, draft_path(&cx, &draft.id));
            cx.redirect(&format!("{app_path}/submitted"))
        }
        Err(e) if e.is("VALIDATION_FAILED") => {
            let page = review_page(&cx, &draft, &e.fields);
            cx.html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => cx.error(&e),
    }
}
