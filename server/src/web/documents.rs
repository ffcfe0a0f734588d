//! The documents step: after the form's steps, the documents the service asks for (those whose
//! condition holds for the answers), each with its files, an upload form (a plain multipart
//! POST) and the limits; upload errors are shown at their document. Uploads go to the API's
//! `uploadAttachment` in-process, as a GraphQL upload, so its type, size and count rules apply.

use std::collections::BTreeMap;
use std::io::{Seek as _, Write as _};

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::json;

use super::apply::{Loaded, draft_path, load, posted};
use super::form::ErrorLink;
use super::gql::ApiError;
use super::i18n::Lang;
use super::page::{Cx, Deps, ErrorKind, TenantHead};
use crate::graphql::CheckedSchema;
use crate::state::AppState;

/// A file already attached to the draft.
#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FileRow {
    pub id: String,
    pub filename: String,
    pub size_bytes: i64,
    pub document: Option<String>,
}

struct FileView {
    id: String,
    filename: String,
    size: String,
}

struct DocumentView {
    key: String,
    label: String,
    description: Option<String>,
    required: bool,
    accept: String,
    types: String,
    files: Vec<FileView>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage<'a> {
    cx: &'a Cx,
    tenant: Option<&'a TenantHead>,
    service_title: String,
    documents: Vec<DocumentView>,
    errors: Vec<ErrorLink>,
    max_size: String,
    base: String,
}

/// Whether the draft's answers make the service ask for any document.
pub fn asks_for_documents(draft: &Loaded) -> bool {
    draft
        .wizard
        .content
        .required_documents
        .iter()
        .any(|d| d.when.as_ref().is_none_or(|c| c.holds(&draft.data)))
}

fn type_label(mime: &str) -> String {
    match mime {
        "application/pdf" => "PDF".into(),
        "image/jpeg" => "JPEG".into(),
        "image/png" => "PNG".into(),
        other => other.to_owned(),
    }
}

fn megabytes(lang: Lang, bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let text = if mb >= 10.0 || mb.fract() == 0.0 {
        format!("{mb:.0}")
    } else {
        format!("{mb:.1}")
    };
    if lang == Lang::De {
        format!("{} MB", text.replace('.', ","))
    } else {
        format!("{text} MB")
    }
}

fn page<'a>(
    cx: &'a Cx,
    draft: &'a Loaded,
    errors_at: &BTreeMap<String, String>,
) -> DocumentsPage<'a> {
    let lang = cx.lang;
    let content = &draft.wizard.content;
    let documents: Vec<DocumentView> = content
        .required_documents
        .iter()
        .filter(|d| d.when.as_ref().is_none_or(|c| c.holds(&draft.data)))
        .map(|d| DocumentView {
            key: d.key.to_string(),
            label: lang.pick(&d.label),
            description: d.description.as_ref().map(|x| lang.pick(x)),
            required: d.required,
            accept: d.content_types.join(","),
            types: d
                .content_types
                .iter()
                .map(|t| type_label(t))
                .collect::<Vec<_>>()
                .join(", "),
            files: draft
                .files
                .iter()
                .filter(|f| f.document.as_deref() == Some(d.key.as_str()))
                .map(|f| FileView {
                    id: f.id.clone(),
                    filename: f.filename.clone(),
                    size: megabytes(lang, u64::try_from(f.size_bytes).unwrap_or(0)),
                })
                .collect(),
            error: errors_at.get(d.key.as_str()).cloned(),
        })
        .collect();
    let errors = documents
        .iter()
        .filter_map(|d| {
            d.error.as_ref().map(|e| ErrorLink {
                href: format!("#doc-{}", d.key),
                text: e.clone(),
            })
        })
        .collect();
    DocumentsPage {
        cx,
        tenant: Some(&draft.tenant),
        service_title: lang.pick(&content.title),
        documents,
        errors,
        max_size: megabytes(lang, content.attachment_rules().max_file_bytes),
        base: draft_path(cx, &draft.id),
    }
}

/// A document's upload refused by the API, in the page's language.
fn upload_error(lang: Lang, err: &ApiError, types: &str) -> String {
    let de = lang == Lang::De;
    let api = err.fields.values().next().map_or("", String::as_str);
    match err.code.as_str() {
        "PAYLOAD_TOO_LARGE" => {
            let limit = err
                .limit_bytes
                .map(|b| megabytes(lang, b))
                .unwrap_or_default();
            if de {
                format!("Die Datei ist zu groß. Erlaubt sind höchstens {limit}.")
            } else {
                format!("The file is too large. The limit is {limit}.")
            }
        }
        "VALIDATION_FAILED" if api.contains("content is") => {
            if de {
                format!("Diese Datei hat kein erlaubtes Format. Erlaubt: {types}.")
            } else {
                format!("This file is not in an accepted format. Accepted: {types}.")
            }
        }
        "VALIDATION_FAILED" if api.contains("at most") => {
            if de {
                "Sie haben bereits so viele Dateien hochgeladen, wie erlaubt sind.".into()
            } else {
                "You have already uploaded as many files as allowed.".into()
            }
        }
        "VALIDATION_FAILED" if api.contains("empty") => {
            if de {
                "Die ausgewählte Datei ist leer.".into()
            } else {
                "The selected file is empty.".into()
            }
        }
        "VALIDATION_FAILED" if api.contains("virus") => {
            if de {
                "Die Datei wurde von der Virenprüfung abgelehnt.".into()
            } else {
                "The file was rejected by the virus check.".into()
            }
        }
        _ if de => "Die Datei konnte nicht angenommen werden.".into(),
        _ => "The file could not be accepted.".into(),
    }
}

/// `GET /t/{tenant}/drafts/{id}/documents`.
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
    let id = path.last().cloned().unwrap_or_default();
    match load(&gql, &req, &id).await {
        Ok(draft) => cx.html(StatusCode::OK, &page(&cx, &draft, &BTreeMap::new())),
        Err(e) => cx.error(&e),
    }
}

/// `POST /t/{tenant}/drafts/{id}/documents/next`: on to the review when every required
/// document is there, else the missing ones named at their place.
pub async fn next(
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
    let id = path.last().cloned().unwrap_or_default();
    if let Err(page) = posted(&req, &cx, payload).await {
        return page;
    }
    let draft = match load(&gql, &req, &id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let missing: BTreeMap<String, String> = draft
        .problems
        .keys()
        .filter_map(|p| p.strip_prefix("input.documents/"))
        .map(|key| {
            let label = draft
                .wizard
                .content
                .required_documents
                .iter()
                .find(|d| d.key.as_str() == key)
                .map_or_else(|| key.to_owned(), |d| cx.lang.pick(&d.label));
            let text = if cx.lang == Lang::De {
                format!("Laden Sie „{label}“ hoch.")
            } else {
                format!("Upload “{label}”.")
            };
            (key.to_owned(), text)
        })
        .collect();
    if missing.is_empty() {
        return cx.redirect(&format!("{}/review", draft_path(&cx, &draft.id)));
    }
    cx.html(
        StatusCode::UNPROCESSABLE_ENTITY,
        &page(&cx, &draft, &missing),
    )
}

/// `POST /t/{tenant}/drafts/{id}/documents/delete`: removes one of the draft's files.
pub async fn delete(
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
    let id = path.last().cloned().unwrap_or_default();
    let form = match posted(&req, &cx, payload).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let token = req
        .cookie(super::apply::DRAFT_COOKIE)
        .map(|c| c.value().to_owned());
    let answer: Result<serde_json::Value, _> = gql
        .run(
            "mutation($id: ID!, $token: String) { deleteAttachment(input: {id: $id, accessToken: $token}) { id } }",
            json!({ "id": form.get("attachment").unwrap_or_default(), "token": token }),
        )
        .await;
    match answer {
        Ok(_) => cx.redirect(&format!("{}/documents", draft_path(&cx, &id))),
        Err(e) => cx.error(&e),
    }
}

/// The parts of the browser's upload form.
struct UploadForm {
    csrf: Option<String>,
    document: Option<String>,
    filename: String,
    content_type: Option<String>,
    file: Option<std::fs::File>,
    too_large: bool,
}

/// Reads the multipart form: small text fields, and the file into a temporary file, at most
/// `limit` bytes (beyond it, reading stops and the form says so).
async fn read_upload(req: &HttpRequest, payload: web::Payload, limit: u64) -> Option<UploadForm> {
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = multer::parse_boundary(content_type).ok()?;
    // The payload lives on this worker's thread; the parser wants a `Send` stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(8);
    actix_web::rt::spawn(async move {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let last = item.is_err();
            if tx.send(item).await.is_err() {
                crate::http::leave_unread(payload);
                return;
            }
            if last {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = UploadForm {
        csrf: None,
        document: None,
        filename: String::new(),
        content_type: None,
        file: None,
        too_large: false,
    };
    while let Ok(Some(mut field)) = multipart.next_field().await {
        match field.name().unwrap_or_default() {
            "file" => {
                form.filename = field.file_name().unwrap_or_default().to_owned();
                form.content_type = field.content_type().map(ToString::to_string);
                let mut file = tempfile::tempfile().ok()?;
                let mut size: u64 = 0;
                while let Ok(Some(chunk)) = field.chunk().await {
                    size += chunk.len() as u64;
                    if size > limit {
                        form.too_large = true;
                        return Some(form);
                    }
                    file.write_all(&chunk).ok()?;
                }
                // The API reads the upload from its start.
                file.seek(std::io::SeekFrom::Start(0)).ok()?;
                form.file = Some(file);
            }
            name @ ("_csrf" | "document") => {
                let name = name.to_owned();
                let text = field.text().await.ok()?;
                if text.len() > 256 {
                    return None;
                }
                if name == "_csrf" {
                    form.csrf = Some(text);
                } else {
                    form.document = Some(text);
                }
            }
            _ => {}
        }
    }
    Some(form)
}

/// `POST /t/{tenant}/drafts/{id}/documents` (multipart): uploads one file for a document.
pub async fn upload(
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
    let id = path.last().cloned().unwrap_or_default();
    let limit = state.settings.storage.multipart_max_bytes;
    let Some(form) = read_upload(&req, payload, limit).await else {
        return cx.error_page(StatusCode::BAD_REQUEST, ErrorKind::Expired, None);
    };
    if !cx.csrf_ok(&req, form.csrf.as_deref()) {
        return cx.error_page(StatusCode::FORBIDDEN, ErrorKind::Expired, None);
    }
    let draft = match load(&gql, &req, &id).await {
        Ok(d) => d,
        Err(e) => return cx.error(&e),
    };
    let key = form.document.clone().unwrap_or_default();
    let Some(doc) = draft
        .wizard
        .content
        .required_documents
        .iter()
        .find(|d| d.key.as_str() == key)
    else {
        return cx.error_page(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            Some(&draft.tenant),
        );
    };
    let types = doc
        .content_types
        .iter()
        .map(|t| type_label(t))
        .collect::<Vec<_>>()
        .join(", ");
    let refused = |text: String| {
        let errors = BTreeMap::from([(key.clone(), text)]);
        cx.html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(&cx, &draft, &errors),
        )
    };
    let de = cx.lang == Lang::De;
    if form.too_large {
        let err = ApiError {
            code: "PAYLOAD_TOO_LARGE".into(),
            message: String::new(),
            fields: BTreeMap::new(),
            limit_bytes: Some(limit),
        };
        return refused(upload_error(cx.lang, &err, &types));
    }
    let Some(file) = form.file.filter(|_| !form.filename.is_empty()) else {
        return refused(if de {
            "Wählen Sie eine Datei aus.".into()
        } else {
            "Choose a file.".into()
        });
    };
    let mut request = async_graphql::Request::new(
        "mutation($input: UploadAttachmentInput!) { uploadAttachment(input: $input) { attachment { id } } }",
    )
    .variables(async_graphql::Variables::from_json(json!({ "input": {
        "draftId": draft.id,
        "accessToken": draft.token,
        "document": key,
        "file": null,
    }})));
    request.set_upload(
        "variables.input.file",
        async_graphql::UploadValue {
            filename: form.filename,
            content_type: form.content_type,
            content: file,
        },
    );
    match gql.execute::<serde_json::Value>(request).await {
        Ok(_) => cx.redirect(&format!(
            "{}/documents#doc-{key}",
            draft_path(&cx, &draft.id)
        )),
        Err(e) if matches!(e.code.as_str(), "VALIDATION_FAILED" | "PAYLOAD_TOO_LARGE") => {
            refused(upload_error(cx.lang, &e, &types))
        }
        Err(e) => cx.error(&e),
    }
}
