//! Attachments on both storage backends (local files, and S3 against an in-process s3s server):
//! inline and presigned uploads, checks by content, limits, downloads for those who may see a
//! file, required documents, the virus scan hook, erasure, and the storage sweeper.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::applications::{dog, exec};
use crate::helpers::*;
use crate::marketplace::{MUSTER_AUTHOR, content_v1};

const DRAFT: &str =
    "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id } } }";
const REQUEST: &str = "mutation($i: RequestUploadInput!) { requestUpload(input: $i) { uploadUrl uploadMethod uploadHeaders { name value } expiresAt attachment { id state scanStatus sizeBytes } } }";
const CONFIRM: &str = "mutation($i: AttachmentRefInput!) { confirmUpload(input: $i) { attachment { id state contentType sha256 scanStatus sizeBytes } } }";
const SUBMIT: &str = "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id reference attachments { id filename document } } } }";
const FILES: &str = "query($id: ID!, $t: String) { application(id: $id, accessToken: $t) { attachments { id filename contentType sha256 scanStatus downloadUrl } } }";
const SWEEP: &str =
    "mutation { sweepStorage { expiredUploads abandonedDraftFiles orphanObjects rescanned } }";

/// An anonymous draft of Musterstadt's dog tax; returns (draft id, access token).
pub(crate) async fn draft(app: &TestApp, service: &str, data: Value) -> (String, String) {
    let resp = citizen(
        app,
        DRAFT,
        json!({ "i": { "serviceSlug": service, "data": data } }),
    )
    .await;
    let p = &data_of(&resp)["saveDraft"];
    (str_at(&p["draft"], "id"), str_at(p, "accessToken"))
}

/// One test per storage backend for a flow `async fn(Storage)`.
macro_rules! on_both_storages {
    ($flow:ident: $local:ident, $s3:ident) => {
        #[tokio::test]
        async fn $local() {
            $flow(Storage::Local).await;
        }

        #[tokio::test]
        async fn $s3() {
            $flow(Storage::S3).await;
        }
    };
}

/// A GraphQL request to Musterstadt without a bearer token (citizens use access tokens).
async fn citizen(app: &TestApp, query: &str, variables: Value) -> Value {
    app.gql(Some(MUSTER), None, query, variables).await
}

#[track_caller]
fn data_of(resp: &Value) -> &Value {
    data(resp)
}

pub(crate) async fn upload_to_draft(
    app: &TestApp,
    draft: &str,
    token: &str,
    document: Option<&str>,
    filename: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    upload_file(
        app,
        MUSTER,
        None,
        json!({ "draftId": draft, "accessToken": token, "document": document }),
        filename,
        mime,
        bytes,
    )
    .await
}

/// `requestUpload` for a draft; returns the payload.
async fn request_upload(
    app: &TestApp,
    draft: &str,
    token: &str,
    bytes: &[u8],
    mime: &str,
) -> Value {
    citizen(
        app,
        REQUEST,
        json!({ "i": {
            "draftId": draft, "accessToken": token, "filename": "scan.pdf",
            "contentType": mime, "sizeBytes": bytes.len(), "sha256": sha256_hex(bytes)
        } }),
    )
    .await
}

/// PUTs `body` to a presigned URL with the given headers; returns the status.
async fn put(app: &TestApp, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    app.client
        .put(url)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("PUT")
        .status()
        .as_u16()
}

async fn confirm(app: &TestApp, id: &str, token: &str) -> Value {
    citizen(
        app,
        CONFIRM,
        json!({ "i": { "id": id, "accessToken": token } }),
    )
    .await
}

/// Publishes a test service to Musterstadt with a PDF-only document and tight limits; returns
/// its slug.
async fn strict_service(app: &TestApp) -> &'static str {
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let a = app.caller(MUSTER, &author);
    let resp = a
        .gql(
            "mutation($i: CreateTemplateInput!) { createTemplate(input: $i) { template { id } } }",
            json!({"i": {"slug": "strenger-hund", "title": "Strenger Hund", "category": "steuern", "visibility": "PUBLIC"}}),
        )
        .await;
    let template = str_at(&data_of(&resp)["createTemplate"]["template"], "id");
    let mut content = content_v1();
    content["requiredDocuments"] = json!([{
        "key": "nachweis", "label": {"de": "Nachweis"}, "required": true,
        "contentTypes": ["application/pdf"]
    }]);
    content["attachments"] =
        json!({"maxFileBytes": 200_000, "maxFiles": 3, "contentTypes": ["application/pdf"]});
    let resp = a
        .gql(
            "mutation($i: PublishTemplateVersionInput!) { publishTemplateVersion(input: $i) { version { id } } }",
            json!({"i": {"templateId": template, "version": "1.0.0", "content": content, "changelog": "v1"}}),
        )
        .await;
    let version = str_at(&data_of(&resp)["publishTemplateVersion"]["version"], "id");
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let m = app.caller(MUSTER, &admin);
    let resp = m
        .gql(
            "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id } } }",
            json!({"i": {"templateVersionId": version, "slug": "strenger-hund"}}),
        )
        .await;
    let service = str_at(&data_of(&resp)["forkTemplate"]["service"], "id");
    data_of(
        &m.gql(
            "mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }",
            json!({"i": {"serviceId": service}}),
        )
        .await,
    );
    "strenger-hund"
}

// ---- round trip --------------------------------------------------------------------------------

async fn documents_round_trip(storage: Storage) {
    let app = spawn_file_app(storage, |_| {}).await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(true)).await;

    // A listed breed needs the certificate: without it, the submission names the document and
    // stores nothing.
    let submit = |draft_id: &str| json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(true), "draftId": draft_id, "accessToken": token } });
    let resp = citizen(&app, SUBMIT, submit(&draft_id)).await;
    assert_field_error(
        &resp,
        "input.documents/sachkundenachweis",
        "Sachkundenachweis",
    );
    assert_eq!(count_where(&app, "applications", "1 = 1").await, 0);

    // Inline upload; the client's filename is only a (sanitized) label.
    let certificate = pdf("Sachkunde bestanden");
    let (status, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        Some("sachkundenachweis"),
        "../../etc/Sach\u{202e}kunde;.pdf",
        "application/pdf",
        certificate.clone(),
    )
    .await;
    assert_eq!(status, 200, "{resp:#}");
    let inline = data_of(&resp)["uploadAttachment"]["attachment"].clone();
    assert_eq!(inline["filename"], "Sachkunde.pdf");
    assert_eq!(inline["contentType"], "application/pdf");
    assert_eq!(inline["sizeBytes"], certificate.len());
    assert_eq!(inline["sha256"], sha256_hex(&certificate));
    assert_eq!(inline["document"], "sachkundenachweis");
    assert_eq!(inline["state"], "STORED");
    assert_eq!(inline["scanStatus"], "SKIPPED");

    // Presigned upload of a larger file: PUT exactly as told, then confirm.
    let scan = big_pdf(3 * 1024 * 1024 + 17);
    let resp = request_upload(&app, &draft_id, &token, &scan, "application/pdf").await;
    let grant = data_of(&resp)["requestUpload"].clone();
    assert_eq!(grant["attachment"]["state"], "UPLOADING");
    assert_eq!(grant["uploadMethod"], "PUT");
    let headers: Vec<(String, String)> = grant["uploadHeaders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (str_at(h, "name"), str_at(h, "value")))
        .collect();
    assert!(headers.contains(&("Content-Length".into(), scan.len().to_string())));
    let url = str_at(&grant, "uploadUrl");
    assert!(url.starts_with("http"), "{url}");
    assert_eq!(put(&app, &url, "application/pdf", scan.clone()).await, 200);
    let big_id = str_at(&grant["attachment"], "id");
    let resp = confirm(&app, &big_id, &token).await;
    let confirmed = &data_of(&resp)["confirmUpload"]["attachment"];
    assert_eq!(confirmed["state"], "STORED");
    assert_eq!(confirmed["sha256"], sha256_hex(&scan));
    // Confirming twice is a conflict, not a second file.
    assert_code(&confirm(&app, &big_id, &token).await, "CONFLICT");

    let resp = citizen(
        &app,
        "query($id: ID!, $t: String) { draft(id: $id, accessToken: $t) { attachments { id } } }",
        json!({ "id": draft_id, "t": token }),
    )
    .await;
    assert_eq!(
        data_of(&resp)["draft"]["attachments"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(app.object_keys().len(), 2, "one object per file");

    // Submission moves the files to the application.
    let resp = citizen(&app, SUBMIT, submit(&draft_id)).await;
    let submitted = data_of(&resp)["submitApplication"].clone();
    let app_id = str_at(&submitted["application"], "id");
    let app_token = str_at(&submitted, "accessToken");
    let mut ids: Vec<String> = submitted["application"]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_at(a, "id"))
        .collect();
    ids.sort();
    let mut expected = vec![str_at(&inline, "id"), big_id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        count_where(
            &app,
            "attachments",
            "application_id IS NOT NULL AND draft_id IS NULL"
        )
        .await,
        2
    );
    assert_eq!(count_where(&app, "drafts", "1 = 1").await, 0);

    // Staff of a department with a task download it; the bytes are the uploaded ones.
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(FILES, json!({ "id": app_id }))
        .await;
    let files = data_of(&resp)["application"]["attachments"]
        .as_array()
        .unwrap()
        .clone();
    let cert = files.iter().find(|f| f["id"] == inline["id"]).unwrap();
    let download = app
        .client
        .get(str_at(cert, "downloadUrl"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    if storage == Storage::Local {
        let disposition = download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            disposition,
            "attachment; filename=\"Sachkunde.pdf\"; filename*=UTF-8''Sachkunde%2Epdf"
        );
        assert_eq!(download.headers()["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        certificate.as_slice()
    );

    // The applicant too, with the status link's token.
    let resp = citizen(&app, FILES, json!({ "id": app_id, "t": app_token })).await;
    let big = data_of(&resp)["application"]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == big_id.as_str())
        .unwrap()
        .clone();
    let bytes = app
        .client
        .get(str_at(&big, "downloadUrl"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha256_hex(&bytes), sha256_hex(&scan));

    // The tenant administrator sees the list but works in no department: no download.
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "query($id: ID!) { attachment(id: $id) { filename downloadUrl } }",
            json!({ "id": big_id }),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");

    // The back-office export links each file; the link redirects staff to a fresh download.
    let xml = app
        .client
        .get(format!("{}/api/applications/{app_id}.xml", app.base_url))
        .header("X-Tenant", MUSTER)
        .bearer_auth(&kasse.access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let href = format!("{}/api/attachments/{}", app.base_url, str_at(&inline, "id"));
    assert!(xml.contains(&format!("<href>{href}</href>")), "{xml}");
    assert!(
        xml.contains("<document>sachkundenachweis</document>"),
        "{xml}"
    );
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect
        .get(&href)
        .header("X-Tenant", MUSTER)
        .bearer_auth(&kasse.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let bytes = app
        .client
        .get(location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), certificate.as_slice());
    let resp = no_redirect
        .get(&href)
        .header("X-Tenant", MUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Erasure (after the retention period) deletes the files with the data.
    for to in ["in_review", "rejected"] {
        data_of(
            &app.caller(MUSTER, &admin)
                .gql(
                    "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
                    json!({ "i": { "id": app_id, "to": to } }),
                )
                .await,
        );
    }
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "query($id: ID!) { application(id: $id) { tasks { id } } }",
            json!({ "id": app_id }),
        )
        .await;
    for t in data_of(&resp)["application"]["tasks"].as_array().unwrap() {
        data_of(&app.caller(MUSTER, &admin).gql("mutation($i: CompleteTaskInput!) { completeTask(input: $i) { task { state } } }", json!({ "i": { "id": t["id"] } })).await);
    }
    data_of(
        &app.caller(MUSTER, &admin)
            .gql(
                "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
                json!({ "i": { "id": app_id, "to": "completed" } }),
            )
            .await,
    );
    // Closed, but files of a finished application take no additions.
    let (status, resp) = upload_file(
        &app,
        MUSTER,
        None,
        json!({ "applicationId": app_id, "accessToken": app_token }),
        "spaet.pdf",
        "application/pdf",
        pdf("zu spät"),
    )
    .await;
    assert_eq!(status, 200);
    assert_code(&resp, "CONFLICT");
    let reference = str_at(&submitted["application"], "reference");
    exec(&app, &format!("UPDATE applications SET closed_at = '2020-01-01 00:00:00+00:00' WHERE reference = '{reference}'")).await;
    data_of(
        &app.caller(MUSTER, &admin)
            .gql(
                "mutation($i: EraseApplicationInput!) { eraseApplication(input: $i) { application { erasedAt } } }",
                json!({ "i": { "id": app_id } }),
            )
            .await,
    );
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 0);
    assert!(app.object_keys().is_empty(), "{:?}", app.object_keys());
}

on_both_storages!(documents_round_trip: documents_round_trip_on_local_storage, documents_round_trip_on_s3);

// ---- presigned uploads -------------------------------------------------------------------------

async fn presigned_uploads_are_bound(storage: Storage) {
    let app = spawn_file_app(storage, |s| {
        s.storage.upload_url_ttl_secs = 2;
        s.storage.download_url_ttl_secs = 2;
    })
    .await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(false)).await;
    let file = big_pdf(1000);
    let resp = request_upload(&app, &draft_id, &token, &file, "application/pdf").await;
    let grant = data_of(&resp)["requestUpload"].clone();
    let url = str_at(&grant, "uploadUrl");
    let id = str_at(&grant["attachment"], "id");

    // Another type, size or body than announced is refused by the storage itself: the local
    // backend answers like the API (403 for what the link does not allow, 413 too long, 422 a
    // short body); S3 refuses a request that does not match its signature with 403.
    let (wrong_type, too_long, too_short, expired) = match storage {
        Storage::Local => (403, 413, 422, 403),
        Storage::S3 => (403, 403, 403, 403),
    };
    assert_eq!(put(&app, &url, "image/png", file.clone()).await, wrong_type);
    let mut longer = file.clone();
    longer.push(b'0');
    assert_eq!(put(&app, &url, "application/pdf", longer).await, too_long);
    assert_eq!(
        put(&app, &url, "application/pdf", file[..999].to_vec()).await,
        too_short
    );
    assert_code(&confirm(&app, &id, &token).await, "CONFLICT");

    // Same size, other bytes: the storage takes them, the confirmation does not.
    let mut other = file.clone();
    other[500] = b'1';
    assert_eq!(put(&app, &url, "application/pdf", other).await, 200);
    let resp = confirm(&app, &id, &token).await;
    assert_field_error(&resp, "input.id", "SHA-256");
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 0);
    assert!(app.object_keys().is_empty(), "{:?}", app.object_keys());

    // Announcements are checked before any URL is given out.
    let resp = citizen(&app, REQUEST, json!({ "i": {
        "draftId": draft_id, "accessToken": token, "filename": "x.pdf", "contentType": "application/pdf",
        "sizeBytes": 11 * 1024 * 1024, "sha256": sha256_hex(b"x") } })).await;
    assert_code(&resp, "PAYLOAD_TOO_LARGE");
    let resp = citizen(
        &app,
        REQUEST,
        json!({ "i": {
        "draftId": draft_id, "accessToken": token, "filename": "x.html", "contentType": "text/html",
        "sizeBytes": 10, "sha256": sha256_hex(b"x") } }),
    )
    .await;
    assert_code(&resp, "VALIDATION_FAILED");
    let resp = citizen(&app, REQUEST, json!({ "i": {
        "draftId": draft_id, "accessToken": token, "filename": "x.pdf", "contentType": "application/pdf",
        "sizeBytes": 10, "sha256": "nicht-hex" } })).await;
    assert_code(&resp, "VALIDATION_FAILED");

    // An expired URL is refused, and so is its confirmation.
    let resp = request_upload(&app, &draft_id, &token, &file, "application/pdf").await;
    let grant = data_of(&resp)["requestUpload"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        put(
            &app,
            &str_at(&grant, "uploadUrl"),
            "application/pdf",
            file.clone()
        )
        .await,
        expired
    );
    assert_code(
        &confirm(&app, &str_at(&grant["attachment"], "id"), &token).await,
        "CONFLICT",
    );

    // A download URL expires too.
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "a.pdf",
        "application/pdf",
        pdf("a"),
    )
    .await;
    let att = str_at(&data_of(&resp)["uploadAttachment"]["attachment"], "id");
    let resp = citizen(
        &app,
        "query($id: ID!, $t: String) { attachment(id: $id, accessToken: $t) { downloadUrl } }",
        json!({ "id": att, "t": token }),
    )
    .await;
    let link = str_at(&data_of(&resp)["attachment"], "downloadUrl");
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        app.client
            .get(&link)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        expired
    );
}

on_both_storages!(presigned_uploads_are_bound: presigned_uploads_are_bound_to_size_type_content_and_time_on_local_storage, presigned_uploads_are_bound_to_size_type_content_and_time_on_s3);

/// The storage key of the only attachment, as stored.
async fn stored_key(app: &TestApp) -> String {
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT object_key FROM attachments",
        ),
    )
    .await
    .unwrap()
    .expect("the attachment's row");
    row.try_get::<String>("", "object_key").unwrap()
}

/// The upload URL stays valid until it expires, also after `confirmUpload`: a replay (the same
/// size and type, other bytes) must never reach the attached file, which confirmation moved to a
/// key no URL was issued for.
async fn replayed_upload_urls_never_change_a_confirmed_file(storage: Storage) {
    let app = spawn_file_app(storage, |_| {}).await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(false)).await;
    let file = big_pdf(2000);
    let resp = request_upload(&app, &draft_id, &token, &file, "application/pdf").await;
    let grant = data_of(&resp)["requestUpload"].clone();
    let url = str_at(&grant, "uploadUrl");
    let id = str_at(&grant["attachment"], "id");
    assert_eq!(put(&app, &url, "application/pdf", file.clone()).await, 200);
    let resp = confirm(&app, &id, &token).await;
    assert_eq!(
        data_of(&resp)["confirmUpload"]["attachment"]["state"],
        "STORED"
    );
    let key = stored_key(&app).await;
    assert!(
        !url.contains(&key),
        "the attached object is at a key no URL names: {key} in {url}"
    );

    // The replay: same size and type, other bytes, while the URL is still valid.
    let mut forged = file.clone();
    forged[1000] = b'X';
    let replayed = put(&app, &url, "application/pdf", forged.clone()).await;
    assert_eq!(replayed, 200, "the storage itself cannot tell a replay");
    assert_code(&confirm(&app, &id, &token).await, "CONFLICT");

    // The attachment still holds the confirmed bytes, at the same key.
    assert_eq!(stored_key(&app).await, key);
    assert_eq!(
        std::fs::read(app.objects_dir().join(&key)).unwrap(),
        file,
        "the confirmed file is unchanged"
    );
    let resp = citizen(
        &app,
        "query($id: ID!, $t: String) { attachment(id: $id, accessToken: $t) { sha256 sizeBytes downloadUrl } }",
        json!({ "id": id, "t": token }),
    )
    .await;
    let a = &data_of(&resp)["attachment"];
    assert_eq!(a["sha256"], sha256_hex(&file));
    let link = str_at(a, "downloadUrl");
    let got = app.client.get(&link).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), file);
    assert_eq!(
        count_where(&app, "attachments", "1 = 1").await,
        1,
        "a replay is no second file"
    );
}

on_both_storages!(replayed_upload_urls_never_change_a_confirmed_file: replayed_upload_urls_never_change_a_confirmed_file_on_local_storage, replayed_upload_urls_never_change_a_confirmed_file_on_s3);

// ---- content checks and limits -----------------------------------------------------------------

async fn types_are_checked_by_content_and_limits_hold_under_concurrency(storage: Storage) {
    let app = spawn_file_app(storage, |_| {}).await;
    let slug = strict_service(&app).await;
    let data = json!({ "owner_name": "Erika Mustermann", "dog_count": 1 });
    let (draft_id, token) = draft(&app, slug, data.clone()).await;

    // A PNG named `.pdf` and declared as PDF, for a PDF-only document.
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        Some("nachweis"),
        "nachweis.pdf",
        "application/pdf",
        png(),
    )
    .await;
    assert_field_error(&resp, "input.file", "image/png");
    // A document the service does not ask for.
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        Some("reisepass"),
        "p.pdf",
        "application/pdf",
        pdf("p"),
    )
    .await;
    assert_field_error(&resp, "input.document", "nachweis");
    // Over the service's size limit.
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "big.pdf",
        "application/pdf",
        big_pdf(200_001),
    )
    .await;
    assert_code(&resp, "PAYLOAD_TOO_LARGE");
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 0);
    assert!(app.object_keys().is_empty());

    // Eight uploads at once for three places: three win, the others change nothing and leave
    // no object behind (their storage write is undone when the commit is refused).
    let app = Arc::new(app);
    let mut handles = Vec::new();
    for i in 0..8 {
        let app = app.clone();
        let (d, t) = (draft_id.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            upload_to_draft(
                &app,
                &d,
                &t,
                Some("nachweis"),
                &format!("n{i}.pdf"),
                "application/pdf",
                pdf(&format!("n{i}")),
            )
            .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        let (status, resp) = h.await.unwrap();
        assert_eq!(status, 200, "{resp:#}");
        if resp["errors"].is_null() {
            ok += 1;
        } else {
            assert_code(&resp, "VALIDATION_FAILED");
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 3);
    assert_eq!(
        app.object_keys().len(),
        3,
        "no orphans: {:?}",
        app.object_keys()
    );

    // With its document, the strict service's application goes through.
    let resp = citizen(&app, SUBMIT,
            json!({ "i": { "serviceSlug": slug, "data": data, "draftId": draft_id, "accessToken": token } }),
        )
        .await;
    assert_eq!(
        data_of(&resp)["submitApplication"]["application"]["attachments"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// A body that counts what was pulled from it and would go on for `total` bytes.
fn endless_body(total: u64, pulled: Arc<AtomicU64>, prefix: Vec<u8>) -> reqwest::Body {
    let chunk = vec![b'0'; 64 * 1024];
    let stream = futures_util::stream::iter(std::iter::once(prefix).chain(std::iter::repeat_n(
        chunk,
        usize::try_from(total / (64 * 1024)).unwrap(),
    )))
    .map(move |c| {
        pulled.fetch_add(c.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(c)
    });
    reqwest::Body::wrap_stream(stream)
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn oversize_uploads_are_cut_off_without_reading_them_whole() {
    let app = spawn_file_app(Storage::Local, |s| {
        s.storage.multipart_max_bytes = 1024 * 1024
    })
    .await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(false)).await;

    // GraphQL multipart, no Content-Length, 512 MiB on offer.
    let boundary = "amtsplatz-boundary";
    let operations = json!({ "query": UPLOAD, "variables": { "i": { "draftId": draft_id, "accessToken": token, "file": null } } });
    let prefix = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.i.file\"]}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"huge.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    );
    let pulled = Arc::new(AtomicU64::new(0));
    let sent = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(endless_body(
            512 * 1024 * 1024,
            pulled.clone(),
            prefix.into_bytes(),
        ))
        .send()
        .await;
    if let Ok(resp) = sent {
        assert_eq!(resp.status(), 413);
        let body: Value = resp.json().await.unwrap();
        assert_code(&body, "PAYLOAD_TOO_LARGE");
    }
    let read = pulled.load(Ordering::Relaxed);
    assert!(
        read < 64 * 1024 * 1024,
        "the client had to send {read} bytes"
    );

    // A presigned PUT sent without Content-Length and longer than allowed is cut off the same way.
    let file = big_pdf(100_000);
    let resp = request_upload(&app, &draft_id, &token, &file, "application/pdf").await;
    let url = str_at(&data_of(&resp)["requestUpload"], "uploadUrl");
    let pulled = Arc::new(AtomicU64::new(0));
    let sent = app
        .client
        .put(&url)
        .header("Content-Type", "application/pdf")
        .body(endless_body(512 * 1024 * 1024, pulled.clone(), pdf("x")))
        .send()
        .await;
    if let Ok(resp) = sent {
        assert_eq!(resp.status(), 413);
    }
    let read = pulled.load(Ordering::Relaxed);
    assert!(
        read < 64 * 1024 * 1024,
        "the client had to send {read} bytes"
    );
    assert!(app.object_keys().is_empty());
    assert_eq!(
        std::fs::read_dir(app.objects_dir().join(".incoming"))
            .unwrap()
            .count(),
        0,
        "no partial upload is left behind"
    );
}

on_both_storages!(
    types_are_checked_by_content_and_limits_hold_under_concurrency:
        types_are_checked_by_content_and_limits_hold_under_concurrency_on_local_storage,
    types_are_checked_by_content_and_limits_hold_under_concurrency_on_s3
);

// ---- who may see what --------------------------------------------------------------------------

async fn other_tenants_departments_and_strangers_cannot_download(storage: Storage) {
    let app = spawn_file_app(storage, |_| {}).await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(false)).await;
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "anlage.pdf",
        "application/pdf",
        pdf("anlage"),
    )
    .await;
    let att = str_at(&data_of(&resp)["uploadAttachment"]["attachment"], "id");
    let resp = citizen(&app, SUBMIT, json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false), "draftId": draft_id, "accessToken": token } }))
        .await;
    let app_token = str_at(&data_of(&resp)["submitApplication"], "accessToken");
    let query =
        "query($id: ID!, $t: String) { attachment(id: $id, accessToken: $t) { downloadUrl } }";

    // Not routed to the Ordnungsamt: its staff are refused.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql(query, json!({ "id": att }))
            .await,
        "FORBIDDEN",
    );
    // Another municipality: its view does not contain the file; its token does not open ours.
    let other = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    assert_code(
        &app.caller(BEISPIEL, &other)
            .gql(query, json!({ "id": att }))
            .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.caller(MUSTER, &other)
            .gql(query, json!({ "id": att }))
            .await,
        "FORBIDDEN",
    );
    let resp = app
        .client
        .get(format!("{}/api/attachments/{att}", app.base_url))
        .header("X-Tenant", MUSTER)
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Strangers: no token, or a wrong one (the draft's old token no longer works either).
    assert_code(
        &citizen(&app, query, json!({ "id": att })).await,
        "UNAUTHENTICATED",
    );
    assert_code(
        &citizen(&app, query, json!({ "id": att, "t": token })).await,
        "NOT_FOUND",
    );
    // The applicant gets a link; tampering with it (another key, another type) is refused.
    let resp = citizen(&app, query, json!({ "id": att, "t": app_token })).await;
    let link = str_at(&data_of(&resp)["attachment"], "downloadUrl");
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200);
    let key = app.object_keys().pop().unwrap();
    let forged = link.replace(
        &key,
        &format!(
            "{}/{}/{}",
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4()
        ),
    );
    assert_eq!(app.client.get(&forged).send().await.unwrap().status(), 403);
    let retyped = link
        .replace("application%2Fpdf", "text%2Fhtml")
        .replace("application/pdf", "text/html");
    assert_ne!(retyped, link);
    assert_eq!(app.client.get(&retyped).send().await.unwrap().status(), 403);
    for path in [
        "/storage/..%2F..%2Fetc/passwd/x",
        "/storage/../../jwt-es256.pem",
    ] {
        let status = app
            .client
            .get(format!(
                "{}{path}?exp=9999999999&ct=x&cd=x&sig=x",
                app.base_url
            ))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 403 || status == 404, "{path}: {status}");
    }
}

on_both_storages!(
    other_tenants_departments_and_strangers_cannot_download:
        other_tenants_departments_and_strangers_cannot_download_on_local_storage,
    other_tenants_departments_and_strangers_cannot_download_on_s3
);

// ---- virus scan --------------------------------------------------------------------------------

#[tokio::test]
async fn the_virus_scan_hook_keeps_unscanned_and_infected_files_from_staff() {
    let marker = tempfile::tempdir().unwrap();
    let broken = marker.path().join("scanner-broken");
    let script = format!(
        "if [ -e '{}' ]; then cat >/dev/null; exit 2; fi; if grep -q EICAR; then exit 1; fi; exit 0",
        broken.display()
    );
    let app = spawn_file_app(Storage::Local, |s| {
        s.storage.scan_command = Some(vec!["sh".into(), "-c".into(), script]);
    })
    .await;
    let (draft_id, token) = draft(&app, "hundesteuer", dog(false)).await;

    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "gut.pdf",
        "application/pdf",
        pdf("sauber"),
    )
    .await;
    assert_eq!(
        data_of(&resp)["uploadAttachment"]["attachment"]["scanStatus"],
        "CLEAN"
    );
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "boese.pdf",
        "application/pdf",
        pdf("X5O!P%@AP EICAR-STANDARD-ANTIVIRUS-TEST-FILE"),
    )
    .await;
    assert_field_error(&resp, "input.file", "virus");
    // Presigned: the infected file is deleted at confirmation.
    let eicar = pdf("EICAR-STANDARD-ANTIVIRUS-TEST-FILE, groß");
    let resp = request_upload(&app, &draft_id, &token, &eicar, "application/pdf").await;
    let grant = data_of(&resp)["requestUpload"].clone();
    assert_eq!(
        put(&app, &str_at(&grant, "uploadUrl"), "application/pdf", eicar).await,
        200
    );
    assert_code(
        &confirm(&app, &str_at(&grant["attachment"], "id"), &token).await,
        "VALIDATION_FAILED",
    );
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 1);
    assert_eq!(app.object_keys().len(), 1);

    // The scanner cannot decide: the file waits, and nobody gets it.
    std::fs::write(&broken, "").unwrap();
    let (_, resp) = upload_to_draft(
        &app,
        &draft_id,
        &token,
        None,
        "warte.pdf",
        "application/pdf",
        pdf("warte"),
    )
    .await;
    let waiting = data_of(&resp)["uploadAttachment"]["attachment"].clone();
    assert_eq!(waiting["scanStatus"], "PENDING");
    let resp = citizen(&app, SUBMIT, json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false), "draftId": draft_id, "accessToken": token } }))
        .await;
    let app_id = str_at(&data_of(&resp)["submitApplication"]["application"], "id");
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let query = "query($id: ID!) { attachment(id: $id) { scanStatus downloadUrl } }";
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(query, json!({ "id": waiting["id"] }))
        .await;
    assert_code(&resp, "FORBIDDEN");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("scanned"),
        "{resp}"
    );

    // Once the scanner works again, the sweeper rescans and the file is handed out.
    std::fs::remove_file(&broken).unwrap();
    let platform = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(None, Some(&platform.access), SWEEP, json!({}))
        .await;
    assert_eq!(data_of(&resp)["sweepStorage"]["rescanned"], 1);
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(query, json!({ "id": waiting["id"] }))
        .await;
    assert_eq!(data_of(&resp)["attachment"]["scanStatus"], "CLEAN");
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(FILES, json!({ "id": app_id }))
        .await;
    for f in data_of(&resp)["application"]["attachments"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            app.client
                .get(str_at(f, "downloadUrl"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

// ---- sweeper -----------------------------------------------------------------------------------

async fn the_sweeper_reconciles_storage(storage: Storage) {
    let app = spawn_file_app(storage, |s| {
        s.storage.orphan_grace_secs = 0;
        s.storage.abandoned_draft_files_after_hours = 0;
        s.storage.upload_url_ttl_secs = 1;
    })
    .await;
    // Kept: a submitted application's file.
    let (d1, t1) = draft(&app, "hundesteuer", dog(false)).await;
    upload_to_draft(
        &app,
        &d1,
        &t1,
        None,
        "bleibt.pdf",
        "application/pdf",
        pdf("bleibt"),
    )
    .await;
    data_of(&citizen(&app, SUBMIT, json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false), "draftId": d1, "accessToken": t1 } })).await);
    let kept = app.object_keys();
    assert_eq!(kept.len(), 1);
    // Removed: a file of an abandoned draft, an upload never confirmed, an object nobody names.
    let (d2, t2) = draft(&app, "hundesteuer", dog(false)).await;
    upload_to_draft(
        &app,
        &d2,
        &t2,
        None,
        "verlassen.pdf",
        "application/pdf",
        pdf("verlassen"),
    )
    .await;
    let file = pdf("nie bestätigt");
    let resp = request_upload(&app, &d2, &t2, &file, "application/pdf").await;
    assert_eq!(
        put(
            &app,
            &str_at(&data_of(&resp)["requestUpload"], "uploadUrl"),
            "application/pdf",
            file
        )
        .await,
        200
    );
    let tenant = kept[0].split('/').next().unwrap().to_owned();
    let orphan = app
        .objects_dir()
        .join(&tenant)
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join(uuid::Uuid::new_v4().to_string()), b"orphan").unwrap();
    // Not ours: never touched.
    std::fs::write(app.objects_dir().join("README"), b"not an attachment").unwrap();
    assert_eq!(app.object_keys().len(), 4);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    assert_code(
        &app.caller(MUSTER, &kasse).gql(SWEEP, json!({})).await,
        "FORBIDDEN",
    );
    let platform = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(None, Some(&platform.access), SWEEP, json!({}))
        .await;
    assert_eq!(
        data_of(&resp)["sweepStorage"],
        json!({ "expiredUploads": 1, "abandonedDraftFiles": 1, "orphanObjects": 1, "rescanned": 0 })
    );
    assert_eq!(app.object_keys(), kept);
    assert_eq!(count_where(&app, "attachments", "1 = 1").await, 1);
    assert!(app.objects_dir().join("README").exists());
    // Idempotent.
    let resp = app
        .gql(None, Some(&platform.access), SWEEP, json!({}))
        .await;
    assert_eq!(
        data_of(&resp)["sweepStorage"],
        json!({ "expiredUploads": 0, "abandonedDraftFiles": 0, "orphanObjects": 0, "rescanned": 0 })
    );
}

on_both_storages!(the_sweeper_reconciles_storage: the_sweeper_reconciles_local_storage, the_sweeper_reconciles_s3);
