//! A local stand-in for Stripe's API (the parts Amtsplatz calls) that answers in Stripe's JSON
//! shapes, plus webhook events signed exactly as Stripe signs them (`t=…,v1=HMAC-SHA256(t.body)`,
//! computed here independently of the server's code).
//!
//! - `POST /v1/checkout/sessions` (form-encoded, `Stripe-Account`, `Idempotency-Key`). Like
//!   Stripe, idempotency keys are scoped to the account the request acts on and remembered with
//!   the request's parameters: the same key with the same parameters gets the first answer
//!   again, with other parameters a 400 `idempotency_error`.
//! - `POST /v1/refunds`: refuses more than was paid on the PaymentIntent, like Stripe; and, like
//!   Stripe, a refund made through the API later produces a `charge.refunded` event, which the
//!   fake delivers (signed, asynchronously) to the endpoint registered with [`FakeStripe::endpoint`].
//!
//! Events come in two shapes: a Connect endpoint (the platform's) receives them with the
//! top-level `account`; an endpoint the municipality created on its own account receives them
//! without it ([`own_endpoint`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

pub const STRIPE_KEY: &str = "sk_test_amtsplatz_platform";

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub account: Option<String>,
    pub idempotency_key: Option<String>,
    pub form: HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub account: String,
    pub amount: i64,
    pub currency: String,
    pub metadata: Value,
    pub payment_intent: String,
    pub expires_at: i64,
}

/// Where Stripe sends an account's events.
#[derive(Clone, Debug)]
struct Endpoint {
    url: String,
    secret: String,
    /// A Connect endpoint: events carry the top-level `account`.
    connect: bool,
}

/// One delivery the fake made: the event and the endpoint's answer.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub event: Value,
    pub status: u16,
    pub body: Value,
}

/// An idempotency key as Stripe scopes it: (the account acted on, the key).
type IdempotencyKey = (Option<String>, String);
/// The first request with a key: its path, its sorted parameters, and the answer.
type FirstRequest = (String, Vec<(String, String)>, Value);

#[derive(Default)]
struct State {
    received: Vec<Received>,
    by_key: HashMap<IdempotencyKey, FirstRequest>,
    endpoints: HashMap<String, Endpoint>,
    delivered: Vec<Delivered>,
    /// Answer the next checkout creations with this status and error code.
    refuse_checkout: Option<(u16, String, String)>,
    sessions: HashMap<String, Session>,
    /// PaymentIntent → (paid, refunded).
    intents: HashMap<String, (i64, i64)>,
    /// Answer the next requests with HTTP 500.
    fail_next: usize,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base_url: String,
    state: Arc<Mutex<State>>,
    _server: actix_web::dev::ServerHandle,
}

fn stripe_error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(
        json!({ "error": { "type": if status >= 500 { "api_error" } else { "invalid_request_error" }, "message": message } }),
    )
}

impl FakeStripe {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base_url = format!("http://127.0.0.1:{port}/");
        let shared = state.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/v1/checkout/sessions", web::post().to(create_session))
                .route("/v1/refunds", web::post().to(create_refund))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url,
            state,
            _server: handle,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state").received.clone()
    }

    pub fn session(&self, id: &str) -> Session {
        self.state.lock().expect("state").sessions[id].clone()
    }

    pub fn fail_next(&self, n: usize) {
        self.state.lock().expect("state").fail_next = n;
    }

    /// Stripe refuses the next checkout creation with `status` (a 4xx) and this error `code`.
    pub fn refuse_next_checkout(&self, status: u16, code: &str, message: &str) {
        self.state.lock().expect("state").refuse_checkout =
            Some((status, code.to_owned(), message.to_owned()));
    }

    /// Registers the webhook endpoint of `account` (Connect endpoint or the account's own).
    pub fn endpoint(&self, account: &str, url: String, secret: &str, connect: bool) {
        self.state.lock().expect("state").endpoints.insert(
            account.to_owned(),
            Endpoint {
                url,
                secret: secret.to_owned(),
                connect,
            },
        );
    }

    /// Waits until the fake has made `n` deliveries; returns them all.
    pub async fn wait_for_deliveries(&self, n: usize) -> Vec<Delivered> {
        for _ in 0..200 {
            let delivered = self.state.lock().expect("state").delivered.clone();
            if delivered.len() >= n {
                return delivered;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} deliveries, got {:?}",
            self.state.lock().expect("state").delivered
        );
    }

    /// The checkout was completed with a delayed payment method (SEPA debit): Stripe sends
    /// `checkout.session.completed` with `payment_status: unpaid`; the money is not there yet.
    pub fn complete_unpaid(&self, session_id: &str) -> Value {
        let s = self.session(session_id);
        session_event(
            "checkout.session.completed",
            &s,
            "unpaid",
            Some(&s.payment_intent),
        )
    }

    /// The delayed payment arrived: `checkout.session.async_payment_succeeded`.
    pub fn async_payment_succeeded(&self, session_id: &str) -> Value {
        let mut st = self.state.lock().expect("state");
        let s = st.sessions[session_id].clone();
        st.intents.insert(s.payment_intent.clone(), (s.amount, 0));
        session_event(
            "checkout.session.async_payment_succeeded",
            &s,
            "paid",
            Some(&s.payment_intent),
        )
    }

    /// The delayed payment failed (the debit bounced): `checkout.session.async_payment_failed`.
    pub fn async_payment_failed(&self, session_id: &str) -> Value {
        let s = self.session(session_id);
        session_event(
            "checkout.session.async_payment_failed",
            &s,
            "unpaid",
            Some(&s.payment_intent),
        )
    }

    /// The citizen pays the session: the PaymentIntent is funded; returns the
    /// `checkout.session.completed` event Stripe would send.
    pub fn pay(&self, session_id: &str) -> Value {
        let mut st = self.state.lock().expect("state");
        let s = st.sessions[session_id].clone();
        st.intents.insert(s.payment_intent.clone(), (s.amount, 0));
        session_event(
            "checkout.session.completed",
            &s,
            "paid",
            Some(&s.payment_intent),
        )
    }

    /// The session lapsed unpaid: `checkout.session.expired`.
    pub fn expire(&self, session_id: &str) -> Value {
        let s = self.session(session_id);
        session_event("checkout.session.expired", &s, "unpaid", None)
    }

    /// A refund made in Stripe's dashboard: `charge.refunded` with the running total.
    pub fn refund_in_dashboard(&self, session_id: &str, cents: i64) -> Value {
        let mut st = self.state.lock().expect("state");
        let s = st.sessions[session_id].clone();
        let entry = st
            .intents
            .entry(s.payment_intent.clone())
            .or_insert((s.amount, 0));
        entry.1 += cents;
        let total = entry.1;
        charge_refunded(&s.account, &s.payment_intent, s.amount, total, &s.currency)
    }
}

/// The event as an endpoint the municipality created on its own account receives it: Stripe
/// sends the top-level `account` only to Connect endpoints.
pub fn own_endpoint(mut event: Value) -> Value {
    if let Some(o) = event.as_object_mut() {
        o.remove("account");
    }
    event
}

/// `charge.refunded` with the charge's running total of refunds.
fn charge_refunded(account: &str, intent: &str, amount: i64, total: i64, currency: &str) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()), "object": "event",
        "api_version": "2023-10-16", "created": chrono::Utc::now().timestamp(), "livemode": false,
        "pending_webhooks": 1, "type": "charge.refunded", "account": account,
        "data": { "object": {
            "id": format!("ch_{}", &intent[3..]), "object": "charge", "amount": amount,
            "amount_refunded": total, "currency": currency, "payment_intent": intent,
            "refunded": total >= amount, "metadata": {}
        } }
    })
}

/// Sends `event` to `endpoint` as Stripe would (signed now, in the endpoint's shape) and
/// records the answer.
async fn deliver(state: Arc<Mutex<State>>, endpoint: Endpoint, event: Value) {
    let event = if endpoint.connect {
        event
    } else {
        own_endpoint(event)
    };
    let body = event.to_string();
    let header = signature(
        body.as_bytes(),
        &[&endpoint.secret],
        chrono::Utc::now().timestamp(),
    );
    let answer = reqwest::Client::new()
        .post(&endpoint.url)
        .header("Stripe-Signature", header)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let (status, body) = match answer {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(e) => (0, json!(e.to_string())),
    };
    state.lock().expect("state").delivered.push(Delivered {
        event,
        status,
        body,
    });
}

fn session_json(s: &Session, status: &str, payment_status: &str, intent: Option<&str>) -> Value {
    json!({
        "id": s.id, "object": "checkout.session", "amount_total": s.amount, "currency": s.currency,
        "automatic_tax": { "enabled": false, "liability": null, "status": null },
        "client_reference_id": s.metadata["amtsplatz_reference"], "created": chrono::Utc::now().timestamp(),
        "custom_fields": [], "custom_text": { "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null },
        "expires_at": s.expires_at, "livemode": false, "metadata": s.metadata, "mode": "payment",
        "payment_intent": intent, "payment_method_types": ["card"], "payment_status": payment_status,
        "shipping_options": [], "status": status,
        "url": if status == "open" { json!(format!("https://checkout.stripe.test/c/pay/{}", s.id)) } else { Value::Null },
    })
}

fn session_event(kind: &str, s: &Session, payment_status: &str, intent: Option<&str>) -> Value {
    let status = if kind.ends_with("expired") {
        "expired"
    } else {
        "complete"
    };
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()), "object": "event",
        "api_version": "2023-10-16", "created": chrono::Utc::now().timestamp(), "livemode": false,
        "pending_webhooks": 1, "type": kind, "account": s.account,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": session_json(s, status, payment_status, intent) }
    })
}

fn record(
    state: &Mutex<State>,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Received, Box<HttpResponse>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if header("authorization").as_deref() != Some(&format!("Bearer {STRIPE_KEY}")) {
        return Err(Box::new(stripe_error(401, "Invalid API Key provided")));
    }
    let mut params = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map_err(|_| Box::new(stripe_error(400, "unreadable form")))?;
    let received = Received {
        path: req.path().to_owned(),
        account: header("stripe-account"),
        idempotency_key: header("idempotency-key"),
        form: params.iter().cloned().collect(),
    };
    params.sort();
    let mut st = state.lock().expect("state");
    st.received.push(received.clone());
    if st.fail_next > 0 {
        st.fail_next -= 1;
        return Err(Box::new(stripe_error(500, "An unknown error occurred")));
    }
    // Keys are scoped to the account acted on; a repeated key gets the first answer again if
    // the request is the same, else Stripe's idempotency error.
    let Some(key) = received.idempotency_key.clone() else {
        return Ok(received);
    };
    match st.by_key.get(&(received.account.clone(), key.clone())) {
        Some((path, first_params, answer)) if *path == received.path && *first_params == params => {
            Err(Box::new(HttpResponse::Ok().json(answer)))
        }
        Some(_) => Err(Box::new(
            HttpResponse::BadRequest().json(json!({ "error": {
                "type": "idempotency_error",
                "message": format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
            } })),
        )),
        None => Ok(received),
    }
}

/// Remembers the answer to an idempotent request (per account and key, with its parameters).
fn remember(st: &mut State, r: &Received, answer: &Value) {
    if let Some(k) = &r.idempotency_key {
        let mut params: Vec<(String, String)> =
            r.form.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        params.sort();
        st.by_key.insert(
            (r.account.clone(), k.clone()),
            (r.path.clone(), params, answer.clone()),
        );
    }
}

async fn create_session(
    state: web::Data<Arc<Mutex<State>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let r = match record(&state, &req, &body) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let Some(account) = r.account.clone() else {
        return stripe_error(400, "this fake expects a connected account");
    };
    if let Some((status, code, message)) = state.lock().expect("state").refuse_checkout.take() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
            .json(json!({ "error": { "type": "invalid_request_error", "code": code, "message": message } }));
    }
    let mut amount = 0;
    for i in 0.. {
        let Some(unit) = r
            .form
            .get(&format!("line_items[{i}][price_data][unit_amount]"))
        else {
            break;
        };
        let qty: i64 = r
            .form
            .get(&format!("line_items[{i}][quantity]"))
            .map_or(1, |q| q.parse().expect("qty"));
        amount += unit.parse::<i64>().expect("unit amount") * qty;
    }
    let mut metadata = serde_json::Map::new();
    for (k, v) in &r.form {
        if let Some(key) = k
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
        {
            metadata.insert(key.to_owned(), json!(v));
        }
    }
    metadata.insert(
        "amtsplatz_reference".into(),
        json!(r.form.get("client_reference_id")),
    );
    let n = uuid::Uuid::new_v4().simple().to_string();
    let session = Session {
        id: format!("cs_test_{n}"),
        account,
        amount,
        currency: r
            .form
            .get("line_items[0][price_data][currency]")
            .cloned()
            .unwrap_or_default(),
        metadata: Value::Object(metadata),
        payment_intent: format!("pi_{n}"),
        expires_at: r
            .form
            .get("expires_at")
            .map_or(0, |e| e.parse().expect("expires_at")),
    };
    let body = session_json(&session, "open", "unpaid", None);
    let mut st = state.lock().expect("state");
    st.sessions.insert(session.id.clone(), session);
    remember(&mut st, &r, &body);
    HttpResponse::Ok().json(body)
}

async fn create_refund(
    state: web::Data<Arc<Mutex<State>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let r = match record(&state, &req, &body) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let pi = r.form.get("payment_intent").cloned().unwrap_or_default();
    let amount: i64 = r
        .form
        .get("amount")
        .map_or(0, |a| a.parse().expect("amount"));
    let mut st = state.lock().expect("state");
    let Some((paid, refunded)) = st.intents.get(&pi).copied() else {
        return stripe_error(404, &format!("No such payment_intent: '{pi}'"));
    };
    if refunded + amount > paid {
        return stripe_error(
            400,
            &format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                paid - refunded
            ),
        );
    }
    st.intents.insert(pi.clone(), (paid, refunded + amount));
    let body = json!({
        "id": format!("re_{}", uuid::Uuid::new_v4().simple()), "object": "refund", "amount": amount,
        "created": chrono::Utc::now().timestamp(), "currency": "eur", "payment_intent": pi,
        "status": "succeeded", "metadata": {}
    });
    remember(&mut st, &r, &body);
    // Stripe's own event about the refund follows the API's answer, on its own schedule.
    let account = r.account.clone().unwrap_or_default();
    if let Some(endpoint) = st.endpoints.get(&account).cloned() {
        let event = charge_refunded(&account, &pi, paid, refunded + amount, "eur");
        let state = state.get_ref().clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            deliver(state, endpoint, event).await;
        });
    }
    HttpResponse::Ok().json(body)
}

/// `Stripe-Signature` for `body` at unix time `t` with each of `secrets`.
pub fn signature(body: &[u8], secrets: &[&str], t: i64) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        header.push_str(&format!(",v1={hex}"));
    }
    header
}
