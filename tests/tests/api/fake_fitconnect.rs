//! A local stand-in for FIT-Connect: the token endpoint (OAuth 2 client credentials), the
//! Submission API v1 a sender calls (destination, keys, submissions, attachments, event log) and
//! the API's own JWKS. It plays the destination too: it holds the private key of the
//! destination's encryption key, decrypts what arrives, validates the metadata against the
//! published schema 1.0.0 (from the shared samples) and checks its hashes, and signs the
//! destination's answers (`accept-submission`, `reject-submission`) with PS512 like a
//! subscriber does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use uuid::Uuid;

pub const CLIENT_ID: &str = "5f6a1c7e-6d35-4bb8-9a35-8f1e2f1b7c11";
pub const CLIENT_SECRET: &str = "fit-connect-client-secret-0123456789abcdef";
pub const LEIKA: &str = "99015003001000";
pub const SCHEMA_URI: &str = "https://schema.fitko.de/fim/s00000114_1.1.schema.json";
pub const ENCRYPTION_KID: &str = "enc-2026";
pub const SIGNATURE_KID: &str = "sig-2026";
pub const API_KID: &str = "api-2026";
pub const SUBMIT_EVENT: &str = "https://schema.fitko.de/fit-connect/events/submit-submission";
pub const ACCEPT_EVENT: &str = "https://schema.fitko.de/fit-connect/events/accept-submission";
pub const REJECT_EVENT: &str = "https://schema.fitko.de/fit-connect/events/reject-submission";

/// The destination's encryption key (4096 bits, as FIT-Connect requires), made once per run.
fn encryption_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 4096).expect("RSA key"))
}

/// Signature keys (the destination's, the API's, an outsider's): 2048 bits are enough here.
fn signature_key(which: usize) -> &'static RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..3)
            .map(|_| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key"))
            .collect()
    })[which]
}

pub fn destination_signer() -> &'static RsaPrivateKey {
    signature_key(0)
}
pub fn api_signer() -> &'static RsaPrivateKey {
    signature_key(1)
}
pub fn outsider() -> &'static RsaPrivateKey {
    signature_key(2)
}

/// The public half of `key` as a JWK.
fn jwk(key: &RsaPrivateKey, kid: &str, alg: &str, op: &str) -> Value {
    json!({
        "kty": "RSA", "kid": kid, "alg": alg, "key_ops": [op],
        "n": B64.encode(key.n().to_bytes_be()), "e": B64.encode(key.e().to_bytes_be()),
    })
}

/// A submission as the destination received it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub case_id: Uuid,
    pub announced: Vec<String>,
    pub service_type: Value,
    /// Attachment id → (JWE, decrypted bytes).
    pub attachments: HashMap<String, (String, Vec<u8>)>,
    /// Decrypted data and metadata, and the JWEs they came in.
    pub data: Option<Value>,
    pub metadata: Option<Value>,
    pub encrypted_data: Option<String>,
    pub encrypted_metadata: Option<String>,
    /// What the destination found wrong with it (empty: nothing).
    pub problems: Vec<String>,
}

#[derive(Default)]
pub struct Inner {
    pub submissions: Mutex<HashMap<Uuid, Received>>,
    pub events: Mutex<HashMap<Uuid, Vec<String>>>,
    pub creates: AtomicUsize,
    pub submits: AtomicUsize,
    pub tokens_issued: AtomicUsize,
    /// Submits to refuse with 503 before taking one.
    pub fail_submits: AtomicUsize,
    /// Services the destination offers (LeiKa identifiers).
    pub services: Mutex<Vec<String>>,
    pub origin: Mutex<String>,
}

pub struct FakeFitConnect {
    pub base: String,
    pub inner: Arc<Inner>,
    pub destination: Uuid,
    _server: actix_web::dev::ServerHandle,
}

fn bearer_ok(req: &HttpRequest) -> bool {
    req.headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer fc-token-"))
}

fn problem(status: u16, title: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .content_type("application/problem+json")
        .json(json!({ "type": "about:blank", "title": title, "status": status }))
}

async fn token(
    form: web::Form<HashMap<String, String>>,
    inner: web::Data<Arc<Inner>>,
) -> HttpResponse {
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !ok {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
    }
    let n = inner.tokens_issued.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({
        "access_token": format!("fc-token-{n}"), "token_type": "bearer", "expires_in": 1800,
        "scope": "send:region:DE",
    }))
}

async fn get_destination(
    req: HttpRequest,
    path: web::Path<Uuid>,
    fake: web::Data<Arc<Inner>>,
    id: web::Data<Uuid>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    if *path != **id {
        return problem(404, "Not Found");
    }
    let services: Vec<Value> = fake
        .services
        .lock()
        .unwrap()
        .iter()
        .map(|s| json!({ "identifier": s, "submissionSchemas": [{ "schemaUri": SCHEMA_URI, "mimeType": "application/json" }], "regions": ["urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:099990010000"] }))
        .collect();
    HttpResponse::Ok().json(json!({
        "destinationId": *path, "status": "active", "services": services,
        "encryptionKid": ENCRYPTION_KID, "metadataVersions": ["1.0.0"],
        "replyChannels": { "eMail": { "usePgp": false } },
    }))
}

async fn key(
    req: HttpRequest,
    path: web::Path<(Uuid, String)>,
    id: web::Data<Uuid>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    let (dest, kid) = path.into_inner();
    if dest != **id {
        return problem(404, "Not Found");
    }
    match kid.as_str() {
        ENCRYPTION_KID => HttpResponse::Ok().json(jwk(
            encryption_key(),
            ENCRYPTION_KID,
            "RSA-OAEP-256",
            "wrapKey",
        )),
        SIGNATURE_KID => {
            HttpResponse::Ok().json(jwk(destination_signer(), SIGNATURE_KID, "PS512", "verify"))
        }
        _ => problem(404, "Not Found"),
    }
}

async fn jwks() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "keys": [jwk(api_signer(), API_KID, "PS512", "verify")] }))
}

async fn create(
    req: HttpRequest,
    body: web::Json<Value>,
    fake: web::Data<Arc<Inner>>,
    id: web::Data<Uuid>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    if body["destinationId"] != json!(**id) {
        return problem(404, "destination not found");
    }
    let identifier = body["serviceType"]["identifier"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !fake.services.lock().unwrap().contains(&identifier) {
        return problem(422, "the destination does not offer this service");
    }
    fake.creates.fetch_add(1, Ordering::SeqCst);
    let submission = Uuid::new_v4();
    let case_id = Uuid::new_v4();
    let announced = body["announcedAttachments"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    fake.submissions.lock().unwrap().insert(
        submission,
        Received {
            case_id,
            announced,
            service_type: body["serviceType"].clone(),
            ..Received::default()
        },
    );
    HttpResponse::Created()
        .json(json!({ "destinationId": **id, "submissionId": submission, "caseId": case_id }))
}

async fn attachment(
    req: HttpRequest,
    path: web::Path<(Uuid, String)>,
    body: String,
    fake: web::Data<Arc<Inner>>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    if req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        != Some("application/jose")
    {
        return problem(415, "Unsupported Media Type");
    }
    let (submission, attachment) = path.into_inner();
    let mut subs = fake.submissions.lock().unwrap();
    let Some(sub) = subs.get_mut(&submission) else {
        return problem(404, "Not Found");
    };
    if !sub.announced.contains(&attachment) {
        return problem(400, "attachment not announced");
    }
    match server::fitconnect::jwe::decrypt(&body, encryption_key()) {
        Ok((_, bytes)) => {
            sub.attachments.insert(attachment, (body, bytes));
            HttpResponse::NoContent().finish()
        }
        Err(e) => problem(400, &format!("does not decrypt: {e}")),
    }
}

/// The published metadata schema, from the shared samples.
fn metadata_schema() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let path = crate::fim::samples().join("fit-connect/metadata.schema.v1.0.0.json");
        let text = std::fs::read_to_string(&path).expect("the FIT-Connect metadata schema sample");
        jsonschema::draft202012::new(&serde_json::from_str(&text).expect("JSON")).expect("schema")
    })
}

fn sha512_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn submit(
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Value>,
    fake: web::Data<Arc<Inner>>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    if fake
        .fail_submits
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return problem(503, "Service Unavailable");
    }
    let submission = path.into_inner();
    let mut subs = fake.submissions.lock().unwrap();
    let Some(sub) = subs.get_mut(&submission) else {
        return problem(404, "Not Found");
    };
    if sub.data.is_some() {
        return problem(409, "already submitted");
    }
    let open = |field: &str| -> Result<(String, Value), String> {
        let jwe = body[field]
            .as_str()
            .ok_or(format!("{field} missing"))?
            .to_owned();
        let (header, bytes) = server::fitconnect::jwe::decrypt(&jwe, encryption_key())
            .map_err(|e| format!("{field}: {e}"))?;
        if header.kid.as_deref() != Some(ENCRYPTION_KID) {
            return Err(format!("{field}: kid {:?}", header.kid));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| format!("{field}: {e}"))?;
        Ok((jwe, value))
    };
    let (data_jwe, data) = match open("encryptedData") {
        Ok(x) => x,
        Err(e) => return problem(400, &e),
    };
    let (meta_jwe, metadata) = match open("encryptedMetadata") {
        Ok(x) => x,
        Err(e) => return problem(400, &e),
    };
    let mut problems: Vec<String> = metadata_schema()
        .iter_errors(&metadata)
        .map(|e| format!("metadata: {e}"))
        .collect();
    let data_bytes = server::fitconnect::jwe::decrypt(&data_jwe, encryption_key())
        .expect("decrypts")
        .1;
    if metadata["contentStructure"]["data"]["hash"]["content"] != json!(sha512_hex(&data_bytes)) {
        problems.push("the data's hash does not match".into());
    }
    for a in metadata["contentStructure"]["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let id = a["attachmentId"].as_str().unwrap_or_default();
        match sub.attachments.get(id) {
            Some((_, bytes)) if a["hash"]["content"] == json!(sha512_hex(bytes)) => {}
            Some(_) => problems.push(format!("attachment {id}: hash does not match")),
            None => problems.push(format!("attachment {id}: not uploaded")),
        }
    }
    if sub.attachments.len() != sub.announced.len() {
        problems.push("not every announced attachment was uploaded".into());
    }
    fake.submits.fetch_add(1, Ordering::SeqCst);
    sub.data = Some(data);
    sub.metadata = Some(metadata);
    sub.encrypted_data = Some(data_jwe);
    sub.encrypted_metadata = Some(meta_jwe);
    sub.problems = problems;
    let case_id = sub.case_id;
    drop(subs);
    let origin = fake.origin.lock().unwrap().clone();
    let event = sign_event(
        api_signer(),
        API_KID,
        &origin,
        submission,
        case_id,
        SUBMIT_EVENT,
        json!({}),
    );
    fake.events
        .lock()
        .unwrap()
        .entry(case_id)
        .or_default()
        .push(event);
    HttpResponse::Accepted()
        .json(json!({ "destinationId": "", "submissionId": submission, "caseId": case_id }))
}

async fn events(
    req: HttpRequest,
    path: web::Path<Uuid>,
    fake: web::Data<Arc<Inner>>,
) -> HttpResponse {
    if !bearer_ok(&req) {
        return problem(401, "Unauthorized");
    }
    let log = fake
        .events
        .lock()
        .unwrap()
        .get(&path.into_inner())
        .cloned()
        .unwrap_or_default();
    HttpResponse::Ok()
        .json(json!({ "count": log.len(), "offset": 0, "totalCount": log.len(), "eventLog": log }))
}

/// A security event token as FIT-Connect's parties sign them (PS512, `secevent+jwt`).
pub fn sign_event(
    key: &RsaPrivateKey,
    kid: &str,
    issuer: &str,
    submission: Uuid,
    case_id: Uuid,
    event: &str,
    body: Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS512);
    header.typ = Some("secevent+jwt".into());
    header.kid = Some(kid.into());
    let claims = json!({
        "$schema": "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json",
        "jti": Uuid::new_v4(), "iss": issuer, "iat": chrono::Utc::now().timestamp(),
        "sub": format!("submission:{submission}"), "txn": format!("case:{case_id}"),
        "events": { event: body },
    });
    let pem = key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).expect("PEM");
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, &claims, &encoding).expect("signed")
}

impl FakeFitConnect {
    pub async fn start() -> Self {
        // Made before the first request needs them (a 4096-bit key takes a moment).
        let _ = (
            encryption_key(),
            destination_signer(),
            api_signer(),
            outsider(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner::default());
        *inner.origin.lock().unwrap() = origin.clone();
        inner
            .services
            .lock()
            .unwrap()
            .push(format!("urn:de:fim:leika:leistung:{LEIKA}"));
        let destination = Uuid::new_v4();
        let data = web::Data::new(inner.clone());
        let id = web::Data::new(destination);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(id.clone())
                .route("/token", web::post().to(token))
                .route("/.well-known/jwks.json", web::get().to(jwks))
                .route("/v1/destinations/{id}", web::get().to(get_destination))
                .route("/v1/destinations/{id}/keys/{kid}", web::get().to(key))
                .route("/v1/submissions", web::post().to(create))
                .route("/v1/submissions/{id}", web::put().to(submit))
                .route(
                    "/v1/submissions/{id}/attachments/{aid}",
                    web::put().to(attachment),
                )
                .route("/v1/cases/{id}/events", web::get().to(events))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: origin,
            inner,
            destination,
            _server: handle,
        }
    }

    /// Points the server's FIT-Connect settings here, with quick retries and polling.
    pub fn configure(&self, s: &mut server::settings::Settings) {
        s.fit_connect.submission_api = format!("{}/v1/", self.base);
        s.fit_connect.token_url = format!("{}/token", self.base);
        s.fit_connect.events_poll_secs = 1;
        s.mail.poll_interval_ms = 100;
        s.mail.retry_base_secs = 1;
    }

    pub fn received(&self) -> Vec<(Uuid, Received)> {
        self.inner
            .submissions
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Appends an event to the case's log.
    pub fn add_event(&self, case_id: Uuid, event: String) {
        self.inner
            .events
            .lock()
            .unwrap()
            .entry(case_id)
            .or_default()
            .push(event);
    }

    /// The destination's `accept-submission`, naming the tags of what it received.
    pub fn accept(&self, submission: Uuid) {
        let sub = self.inner.submissions.lock().unwrap()[&submission].clone();
        let tag = |jwe: &str| jwe.rsplit('.').next().unwrap_or_default().to_owned();
        let attachments: serde_json::Map<String, Value> = sub
            .attachments
            .iter()
            .map(|(id, (jwe, _))| (id.clone(), json!(tag(jwe))))
            .collect();
        let body = json!({
            "problems": [],
            "authenticationTags": {
                "data": tag(sub.encrypted_data.as_deref().unwrap_or_default()),
                "metadata": tag(sub.encrypted_metadata.as_deref().unwrap_or_default()),
                "attachments": attachments,
            }
        });
        let event = sign_event(
            destination_signer(),
            SIGNATURE_KID,
            &self.destination.to_string(),
            submission,
            sub.case_id,
            ACCEPT_EVENT,
            body,
        );
        self.add_event(sub.case_id, event);
    }

    /// The destination's `reject-submission` with one problem.
    pub fn reject(&self, submission: Uuid) {
        let case_id = self.inner.submissions.lock().unwrap()[&submission].case_id;
        let body = json!({ "problems": [{
            "type": "https://schema.fitko.de/fit-connect/events/problems/incorrect-authentication-tag",
            "title": "Authentifizierungs-Tag ungültig", "detail": "Der Tag der Anlage passt nicht.",
            "instance": "attachment"
        }] });
        let event = sign_event(
            destination_signer(),
            SIGNATURE_KID,
            &self.destination.to_string(),
            submission,
            case_id,
            REJECT_EVENT,
            body,
        );
        self.add_event(case_id, event);
    }
}
