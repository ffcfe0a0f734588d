//! Applying: starting a draft from a service page, the wizard's steps (plain POST, then
//! redirect; errors shown at the field and summed up at the top), "save and continue later"
//! with the resume link, and resuming from it. The draft lives on the server (`saveDraft`);
//! an anonymous citizen's browser holds its access token in a cookie scoped to the draft's
//! pages, so the token appears in a URL only in the resume link itself.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::form::{ErrorLink, StepView, Wizard};
use super::gql::{ApiError, Gql};
use super::page::{
    Cx, Deps, ErrorKind, MAX_FORM_BYTES, Posted, TENANT_HEAD, TenantHead, TokenQuery,
    follow_access_link,
};
use crate::content::ServiceContent;
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// The cookie holding an anonymous draft's access token, on the draft's own path.
pub const DRAFT_COOKIE: &str = "ap_draft";

/// A draft with its service's form, as the wizard pages need it.
pub struct Loaded {
    pub tenant: TenantHead,
    pub id: String,
    pub slug: String,
    pub data: Value,
    pub problems: BTreeMap<String, String>,
    pub fees: Vec<FeeRow>,
    pub files: Vec<super::documents::FileRow>,
    pub wizard: Wizard,
    pub token: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FeeRow {
    pub key: String,
    pub label: String,
    pub amount_cents: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DraftRow {
    id: String,
    service_slug: String,
    data: Value,
    problems: Vec<Problem>,
    fees: Vec<FeeRow>,
    attachments: Vec<super::documents::FileRow>,
}

#[derive(Deserialize)]
struct Problem {
    path: String,
    message: String,
}

const DRAFT_FIELDS: &str = "id serviceSlug data problems { path message } \
     fees { key label amountCents } attachments { id filename sizeBytes document }";

/// Where a draft's pages live.
pub fn draft_path(cx: &Cx, id: &str) -> String {
    cx.link(&format!("/drafts/{id}"))
}

/// Reads the draft (with the access token from its cookie) and its service's form.
pub async fn load(gql: &Gql<'_>, req: &HttpRequest, id: &str) -> Result<Loaded, ApiError> {
    let token = req.cookie(DRAFT_COOKIE).map(|c| c.value().to_owned());
    #[derive(Deserialize)]
    struct Data {
        tenant: TenantHead,
        draft: DraftRow,
    }
    let data: Data = gql
        .run(
            &format!(
                "query($id: ID!, $token: String) {{ {TENANT_HEAD} draft(id: $id, accessToken: $token) {{ {DRAFT_FIELDS} }} }}"
            ),
            json!({ "id": id, "token": token }),
        )
        .await?;
    let wizard = form_of(gql, &data.draft.service_slug).await?;
    Ok(Loaded {
        tenant: data.tenant,
        id: data.draft.id,
        slug: data.draft.service_slug,
        data: data.draft.data,
        problems: data
            .draft
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect(),
        fees: data.draft.fees,
        files: data.draft.attachments,
        wizard,
        token,
    })
}

/// The service's form in force.
async fn form_of(gql: &Gql<'_>, slug: &str) -> Result<Wizard, ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Service {
        resolved_content: Value,
    }
    #[derive(Deserialize)]
    struct Data {
        service: Service,
    }
    let data: Data = gql
        .run(
            "query($slug: String!) { service(slug: $slug) { resolvedContent } }",
            json!({ "slug": slug }),
        )
        .await?;
    let content: ServiceContent =
        serde_json::from_value(data.service.resolved_content).map_err(|e| ApiError {
            code: "INTERNAL".into(),
            message: format!("service content unreadable: {e}"),
            fields: BTreeMap::new(),
            limit_bytes: None,
        })?;
    Ok(Wizard::new(content))
}

/// Reads a posted form (bounded, with a valid CSRF token), or the page that refuses it.
pub async fn posted(
    req: &HttpRequest,
    cx: &Cx,
    payload: web::Payload,
) -> Result<Posted, HttpResponse> {
    let body = crate::http::read_body(req, payload, MAX_FORM_BYTES)
        .await
        .map_err(|_| cx.error_page(StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::Internal, None))?;
    let Some(form) = Posted::parse(&body) else {
        return Err(cx.error_page(StatusCode::BAD_REQUEST, ErrorKind::Expired, None));
    };
    if !cx.csrf_ok(req, form.get("_csrf")) {
        return Err(cx.error_page(StatusCode::FORBIDDEN, ErrorKind::Expired, None));
    }
    Ok(form)
}

/// `POST /t/{tenant}/services/{slug}/apply`: a new, empty draft, then its first step.
pub async fn start(
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
    let slug = path.last().cloned().unwrap_or_default();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Saved {
        draft: IdOnly,
        access_token: Option<String>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        save_draft: Saved,
    }
    let answer: Result<Data, _> = gql
        .run(
            "mutation($slug: String!) { saveDraft(input: {serviceSlug: $slug, data: {}}) { draft { id } accessToken } }",
            json!({ "slug": slug }),
        )
        .await;
    match answer {
        Ok(data) => {
            let id = data.save_draft.draft.id;
            if let Some(token) = data.save_draft.access_token {
                cx.set_cookie(DRAFT_COOKIE, token, draft_path(&cx, &id));
            }
            cx.redirect(&draft_path(&cx, &id))
        }
        // A service that requires an eID assurance level asks anonymous visitors to sign in
        // first, and brings them back to the service's page.
        Err(e) if e.is("UNAUTHENTICATED") && cx.citizen.is_none() => {
            let back = cx.link(&format!("/services/{slug}"));
            cx.redirect(&format!(
                "{}?next={}",
                cx.link("/login"),
                percent_encoding::utf8_percent_encode(&back, percent_encoding::NON_ALPHANUMERIC)
            ))
        }
        Err(e) => cx.error(&e),
    }
}

/// `GET /t/{tenant}/drafts/{id}`: the first step still to answer (else the review).
pub async fn resume_here(
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
    let id = path.last().cloned().unwrap_or_default();
    let draft = match load(&gql, &req, &id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let base = draft_path(&cx, &draft.id);
    let steps = draft.wizard.visible_steps(&draft.data);
    let open_step = steps.iter().find(|s| {
        Wizard::keys_of(s).any(|k| super::form::field_problem(&draft.problems, k).is_some())
    });
    let answered_any = draft.data.as_object().is_some_and(|o| !o.is_empty());
    let documents_missing = draft
        .problems
        .keys()
        .any(|p| p.starts_with("input.documents/"));
    match (open_step, answered_any) {
        (Some(step), _) => cx.redirect(&format!("{base}/steps/{}", step.key)),
        (None, true) if documents_missing => cx.redirect(&format!("{base}/documents")),
        (None, true) => cx.redirect(&format!("{base}/review")),
        (None, false) => match steps.first() {
            Some(step) => cx.redirect(&format!("{base}/steps/{}", step.key)),
            None => cx.redirect(&format!("{base}/review")),
        },
    }
}

/// `GET /t/{tenant}/drafts/{id}/resume?token=…`: the resume link. Keeps the token in the
/// draft's cookie and continues without it in the address.
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    query: web::Query<TokenQuery>,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (mut cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let id = path.last().cloned().unwrap_or_default();
    let cookie = (DRAFT_COOKIE, draft_path(&cx, &id));
    follow_access_link(
        &mut cx,
        &gql,
        "query($id: ID!, $t: String) { draft(id: $id, accessToken: $t) { id } }",
        &id,
        query.into_inner().token,
        cookie,
    )
    .await
}

#[derive(Template)]
#[template(path = "step.html")]
struct StepPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    step: StepView,
    number: usize,
    total: usize,
    action: String,
    errors: Vec<ErrorLink>,
}

fn step_page<'a>(
    cx: &'a Cx,
    draft: &'a Loaded,
    step_key: &str,
    problems: &BTreeMap<String, String>,
) -> Option<StepPage<'a>> {
    let steps = draft.wizard.visible_steps(&draft.data);
    let index = steps.iter().position(|s| s.key.as_str() == step_key)?;
    let step = steps[index];
    let base = draft_path(cx, &draft.id);
    let view = draft.wizard.view(cx.lang, step, &draft.data, problems);
    let errors = draft
        .wizard
        .error_links(cx.lang, problems, Some(step), &|_| String::new());
    Some(StepPage {
        cx,
        tenant: Some(&draft.tenant),
        service_title: cx.lang.pick(&draft.wizard.content.title),
        step: view,
        number: index + 1,
        total: steps.len(),
        action: format!("{base}/steps/{step_key}"),
        errors,
    })
}

/// `GET /t/{tenant}/drafts/{id}/steps/{step}`.
pub async fn show_step(
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
    let (id, step) = two(&path);
    let draft = match load(&gql, &req, id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    match step_page(&cx, &draft, step, &BTreeMap::new()) {
        Some(page) => cx.html(StatusCode::OK, &page),
        None => cx.error_page(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            Some(&draft.tenant),
        ),
    }
}

/// `POST /t/{tenant}/drafts/{id}/steps/{step}`: saves the step's answers, then continues
/// (`next`: only when the step's answers pass the API's checks), goes back, adds or removes
/// an entry of a repeating field, or saves for later.
pub async fn post_step(
    req: HttpRequest,
    state: web::Data<AppState>,
    schema: web::Data<CheckedSchema>,
    path: web::Path<Vec<String>>,
    payload: web::Payload,
) -> HttpResponse {
    let deps = Deps::new(&state, &schema);
    let (cx, gql) = match deps.open(&req).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let form = match posted(&req, &cx, payload).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (id, step_key) = two(&path);
    let mut draft = match load(&gql, &req, id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let Some(step) = draft.wizard.step(step_key).cloned() else {
        return cx.error_page(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            Some(&draft.tenant),
        );
    };
    let action = form.get("_action").unwrap_or("next").to_owned();
    let mut data = draft.data.as_object().cloned().unwrap_or_default();
    draft.wizard.apply(&step, &mut data, &form.0, &action);
    let saved = save(&gql, &draft, Value::Object(data)).await;
    let saved = match saved {
        Ok(s) => s,
        Err(e) if e.is("VALIDATION_FAILED") => {
            // The data as a whole was refused (too large, characters not allowed): nothing was
            // stored; the step is shown again with the API's messages.
            let problems = e.fields.clone();
            let mut page = match step_page(&cx, &draft, step_key, &problems) {
                Some(p) => p,
                None => return cx.error(&e),
            };
            if page.errors.is_empty() {
                page.errors.push(ErrorLink {
                    href: "#main".into(),
                    text: e.fields.values().next().cloned().unwrap_or(e.message),
                });
            }
            return cx.html(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
        Err(e) => return cx.error(&e),
    };
    draft.data = saved.data;
    draft.problems = saved
        .problems
        .into_iter()
        .map(|p| (p.path, p.message))
        .collect();
    let base = draft_path(&cx, &draft.id);
    let steps = draft.wizard.visible_steps(&draft.data);
    let index = steps.iter().position(|s| s.key == step.key);
    match action.as_str() {
        "save" => cx.redirect(&format!("{base}/saved")),
        "back" => match index.and_then(|i| i.checked_sub(1)) {
            Some(i) => cx.redirect(&format!("{base}/steps/{}", steps[i].key)),
            None => cx.redirect(&cx.link(&format!("/services/{}", draft.slug))),
        },
        a if a.starts_with("add:") || a.starts_with("remove:") => {
            let key = a.split(':').nth(1).unwrap_or_default();
            cx.redirect(&format!("{base}/steps/{step_key}#f-{key}"))
        }
        _ => {
            let own: BTreeMap<String, String> = draft
                .problems
                .iter()
                .filter(|(path, _)| {
                    Wizard::keys_of(&step).any(|k| {
                        let at = format!("input.data/{k}");
                        *path == &at || path.starts_with(&format!("{at}/"))
                    })
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !own.is_empty() {
                return match step_page(&cx, &draft, step_key, &own) {
                    Some(page) => cx.html(StatusCode::UNPROCESSABLE_ENTITY, &page),
                    None => cx.error_page(StatusCode::NOT_FOUND, ErrorKind::NotFound, None),
                };
            }
            match index.and_then(|i| steps.get(i + 1)) {
                Some(next) => cx.redirect(&format!("{base}/steps/{}", next.key)),
                None if super::documents::asks_for_documents(&draft) => {
                    cx.redirect(&format!("{base}/documents"))
                }
                None => cx.redirect(&format!("{base}/review")),
            }
        }
    }
}

/// What saving answers back.
pub struct SavedDraft {
    pub data: Value,
    problems: Vec<Problem>,
}

async fn save(gql: &Gql<'_>, draft: &Loaded, data: Value) -> Result<SavedDraft, ApiError> {
    #[derive(Deserialize)]
    struct Saved {
        draft: DraftRow,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        save_draft: Saved,
    }
    let answer: Data = gql
        .run(
            &format!(
                "mutation($input: SaveDraftInput!) {{ saveDraft(input: $input) {{ draft {{ {DRAFT_FIELDS} }} }} }}"
            ),
            json!({ "input": {
                "serviceSlug": draft.slug,
                "data": data,
                "draftId": draft.id,
                "accessToken": draft.token,
            }}),
        )
        .await?;
    Ok(SavedDraft {
        data: answer.save_draft.draft.data,
        problems: answer.save_draft.draft.problems,
    })
}

#[derive(Template)]
#[template(path = "saved.html")]
struct SavedPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    resume_link: Option<String>,
    continue_link: String,
}

/// `GET /t/{tenant}/drafts/{id}/saved`: the resume link for an anonymous citizen.
pub async fn saved(
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
    let id = path.last().cloned().unwrap_or_default();
    let draft = match load(&gql, &req, &id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let base = draft_path(&cx, &draft.id);
    let resume_link = draft
        .token
        .as_ref()
        .map(|token| format!("{}{base}/resume?token={token}", crate::http::origin(&req)));
    cx.html(
        StatusCode::OK,
        &SavedPage {
            cx: &cx,
            tenant: Some(&draft.tenant),
            service_title: cx.lang.pick(&draft.wizard.content.title),
            resume_link,
            continue_link: base,
        },
    )
}

/// The last two segments of a path (`{id}`, `{step}`).
pub(super) fn two(path: &[String]) -> (&str, &str) {
    let n = path.len();
    match n {
        0 => ("", ""),
        1 => (path[0].as_str(), ""),
        _ => (path[n - 2].as_str(), path[n - 1].as_str()),
    }
}
