//! Payments: Stripe Checkout on the tenant's connected account (against the local fake Stripe),
//! signed webhooks applied exactly once and in any order, refunds, payment at the counter, the
//! treasury report.

use serde_json::{Value, json};

use crate::applications::{dog, exec, validate_against_xsd};
use crate::fake_stripe::{FakeStripe, STRIPE_KEY, own_endpoint, signature};
use crate::helpers::*;

pub(crate) const MUSTER_SECRET: &str = "whsec_musterstadt_0123456789abcdef";
const BEISPIEL_SECRET: &str = "whsec_beispielhausen_0123456789abcdef";
pub(crate) const MUSTER_ACCOUNT: &str = "acct_1MusterstadtKasse";
const BEISPIEL_ACCOUNT: &str = "acct_1BeispielhausenKa";

const PAYMENT_FIELDS: &str = "id applicationId provider state amountCents refundedCents currency checkoutUrl paidAt providerPaymentId";
const START: &str = "mutation($i: StartPaymentInput!) { startPayment(input: $i) { paymentId checkoutUrl payment { id state amountCents provider } } }";
const REFUND: &str = "mutation($i: RefundPaymentInput!) { refundPayment(input: $i) { refundId providerRefundId payment { state amountCents refundedCents } } }";
const CONFIGURE: &str = "mutation($i: ConfigureStripePaymentsInput!) { configureStripePayments(input: $i) { account { provider accountId successUrl cancelUrl webhookSecretSet webhookPath } } }";

pub(crate) async fn stripe_app() -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start().await;
    let base = fake.base_url.clone();
    let app = spawn_app_with(move |s| {
        s.payments.stripe_secret_key = Some(STRIPE_KEY.to_owned().into());
        s.payments.stripe_api_base = base;
    })
    .await;
    (app, fake)
}

pub(crate) async fn configure(
    app: &TestApp,
    tenant: &str,
    admin: (&str, &str),
    account: &str,
    secret: &str,
) -> Value {
    let admin = app.login(Some(tenant), admin).await;
    let resp = app
        .caller(tenant, &admin)
        .gql(
            CONFIGURE,
            json!({ "i": {
                "accountId": account, "webhookSecret": secret,
                "successUrl": format!("https://{tenant}.example/bezahlt?antrag={{REFERENCE}}"),
                "cancelUrl": format!("https://{tenant}.example/abgebrochen?antrag={{APPLICATION_ID}}"),
            } }),
        )
        .await;
    data(&resp)["configureStripePayments"]["account"].clone()
}

/// Musterstadt's dog tax, paid before processing (as its administrator sets it).
async fn require_payment_first(app: &TestApp) {
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let c = app.caller(MUSTER, &admin);
    let resp = c
        .gql("query { service(slug: \"hundesteuer\") { id } }", json!({}))
        .await;
    let id = str_at(&data(&resp)["service"], "id");
    let resp = c
        .gql(
            "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { revision } } }",
            json!({ "i": { "serviceId": id, "note": "Zahlung vor Bearbeitung", "changes": [{ "setPaymentRequired": { "required": true } }] } }),
        )
        .await;
    data(&resp);
}

/// A dog-tax application by an anonymous citizen: (id, access token).
async fn application(app: &TestApp, tenant: &str) -> (String, String) {
    let resp = app
        .gql(
            Some(tenant),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id feeTotalCents } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false) } }),
        )
        .await;
    let p = &data(&resp)["submitApplication"];
    (str_at(&p["application"], "id"), str_at(p, "accessToken"))
}

async fn start(app: &TestApp, tenant: &str, id: &str, token: &str, provider: &str) -> Value {
    app.gql(
        Some(tenant),
        None,
        START,
        json!({ "i": { "applicationId": id, "provider": provider, "accessToken": token } }),
    )
    .await
}

async fn as_applicant(app: &TestApp, id: &str, token: &str) -> Value {
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            &format!("query($id: ID!, $t: String) {{ application(id: $id, accessToken: $t) {{ state awaitingPayment feeTotalCents payments {{ {PAYMENT_FIELDS} }} timeline {{ kind }} }} }}"),
            json!({ "id": id, "t": token }),
        )
        .await;
    data(&resp)["application"].clone()
}

/// Posts `event` to the tenant's Stripe webhook with `header` (`None`: signed now with `secret`).
pub(crate) async fn deliver(
    app: &TestApp,
    tenant: &str,
    body: &str,
    header: Option<String>,
    secret: &str,
) -> (u16, Value) {
    let header = header
        .unwrap_or_else(|| signature(body.as_bytes(), &[secret], chrono::Utc::now().timestamp()));
    let resp = app
        .client
        .post(format!("{}/webhooks/stripe/{tenant}", app.base_url))
        .header("Stripe-Signature", header)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("webhook");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Posts `body` to Musterstadt's webhook of `provider` without a signature; the status.
async fn post_unsigned(app: &TestApp, provider: &str, body: String) -> u16 {
    app.client
        .post(format!("{}/webhooks/{provider}/{MUSTER}", app.base_url))
        .body(body)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

/// The kinds of an application's timeline entries, oldest first.
fn timeline_kinds(application: &Value) -> Vec<String> {
    application["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| str_at(e, "kind"))
        .collect()
}

pub(crate) fn session_of(checkout_url: &str) -> String {
    checkout_url
        .rsplit('/')
        .next()
        .expect("session id")
        .to_owned()
}

async fn transition(app: &TestApp, staff: &Session, id: &str, to: &str) -> Value {
    app.caller(MUSTER, staff)
        .gql(
            "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
            json!({ "i": { "id": id, "to": to } }),
        )
        .await
}

#[tokio::test]
async fn a_citizen_pays_the_dog_tax_online_and_the_treasury_refunds_part_of_it() {
    let (app, fake) = stripe_app().await;
    let account = configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    assert_eq!(account["webhookSecretSet"], true);
    assert_eq!(account["webhookPath"], "/webhooks/stripe/musterstadt");
    require_payment_first(&app).await;
    let (id, token) = application(&app, MUSTER).await;

    // Processing waits for the money; the treasury's clerk (who has the task) may not start.
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let before = as_applicant(&app, &id, &token).await;
    assert_eq!(before["awaitingPayment"], true);
    assert_eq!(before["feeTotalCents"], 12000);
    let resp = transition(&app, &kasse, &id, "in_review").await;
    assert_code(&resp, "CONFLICT");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("fees are paid")
    );

    // The client cannot name an amount: the input has no such field.
    let resp = app
        .gql(Some(MUSTER), None, START, json!({ "i": { "applicationId": id, "provider": "STRIPE", "accessToken": token, "amountCents": 1 } }))
        .await;
    assert_code(&resp, "VALIDATION_FAILED");

    // Checkout on the municipality's connected account, for the server's amount.
    let resp = start(&app, MUSTER, &id, &token, "STRIPE").await;
    let started = &data(&resp)["startPayment"];
    let payment_id = str_at(started, "paymentId");
    let url = str_at(started, "checkoutUrl");
    assert_eq!(started["payment"]["state"], "PENDING");
    assert_eq!(started["payment"]["amountCents"], 12000);
    let session = session_of(&url);
    let sent = fake.received();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.path, "/v1/checkout/sessions");
    assert_eq!(r.account.as_deref(), Some(MUSTER_ACCOUNT));
    assert_eq!(
        r.idempotency_key.as_deref(),
        Some(format!("checkout-{payment_id}").as_str())
    );
    assert_eq!(r.form["mode"], "payment");
    assert_eq!(r.form["line_items[0][price_data][unit_amount]"], "12000");
    assert_eq!(r.form["line_items[0][price_data][currency]"], "eur");
    assert_eq!(r.form["metadata[amtsplatz_payment_id]"], payment_id);
    assert!(
        r.form["success_url"]
            .starts_with("https://musterstadt.example/bezahlt?antrag=MUSTERSTADT-"),
        "{:?}",
        r.form["success_url"]
    );
    assert_eq!(fake.session(&session).amount, 12000);

    // Starting again returns the same checkout (no second session at Stripe).
    let again = start(&app, MUSTER, &id, &token, "STRIPE").await;
    assert_eq!(
        data(&again)["startPayment"]["paymentId"],
        payment_id.as_str()
    );
    assert_eq!(data(&again)["startPayment"]["checkoutUrl"], url.as_str());
    assert_eq!(fake.received().len(), 1);
    // Nor a second way to pay while the checkout is open.
    assert_code(
        &start(&app, MUSTER, &id, &token, "ON_SITE").await,
        "CONFLICT",
    );

    // The citizen pays; Stripe's webhook confirms; the application moves on.
    let paid = fake.pay(&session).to_string();
    let (status, body) = deliver(&app, MUSTER, &paid, None, MUSTER_SECRET).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("applied")));
    let after = as_applicant(&app, &id, &token).await;
    assert_eq!(after["awaitingPayment"], false);
    let payment = &after["payments"][0];
    assert_eq!(payment["state"], "PAID");
    assert!(payment["paidAt"].is_string());
    assert!(
        payment["checkoutUrl"].is_null(),
        "no checkout link once paid"
    );
    assert_eq!(
        payment["providerPaymentId"],
        fake.session(&session).payment_intent.as_str()
    );
    let kinds = timeline_kinds(&after);
    assert_eq!(kinds, ["submitted", "payment_started", "payment_paid"]);
    assert_eq!(
        data(&transition(&app, &kasse, &id, "in_review").await)["transitionApplication"]["application"]
            ["state"],
        "in_review"
    );
    assert_eq!(
        count_where(&app, "outbox", "subject LIKE 'Zahlungseingang%'").await,
        1
    );

    // A late expiry of the paid session changes nothing.
    let (status, body) = deliver(
        &app,
        MUSTER,
        &fake.expire(&session).to_string(),
        None,
        MUSTER_SECRET,
    )
    .await;
    assert_eq!((status, body["result"].as_str()), (200, Some("no effect")));
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PAID"
    );
    assert_code(
        &start(&app, MUSTER, &id, &token, "STRIPE").await,
        "CONFLICT",
    );

    // Refunds: cashiers only, with a reason, never more than is left.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let refund = |amount: i64, reason: &str| json!({ "i": { "paymentId": payment_id, "amountCents": amount, "reason": reason } });
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql(REFUND, refund(2500, "Ermäßigung"))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.gql(Some(MUSTER), None, REFUND, refund(2500, "Ermäßigung"))
            .await,
        "UNAUTHENTICATED",
    );
    let k = app.caller(MUSTER, &kasse);
    assert_field_error(
        &k.gql(REFUND, refund(0, "Ermäßigung")).await,
        "input.amountCents",
        "positive",
    );
    assert_field_error(
        &k.gql(REFUND, refund(100, " ")).await,
        "input.reason",
        "1 to 500",
    );
    // Stripe reports the refund made through its API with its own charge.refunded, to the
    // endpoint Musterstadt created on its account (no top-level `account`).
    fake.endpoint(
        MUSTER_ACCOUNT,
        format!("{}/webhooks/stripe/{MUSTER}", app.base_url),
        MUSTER_SECRET,
        false,
    );
    let resp = k
        .gql(REFUND, refund(2500, "Ermäßigung für Schwerbehinderte"))
        .await;
    let done = &data(&resp)["refundPayment"];
    assert_eq!(done["payment"]["state"], "PARTIALLY_REFUNDED");
    assert_eq!(done["payment"]["refundedCents"], 2500);
    assert!(
        done["providerRefundId"]
            .as_str()
            .unwrap()
            .starts_with("re_")
    );
    let r = fake.received().last().cloned().unwrap();
    assert_eq!(r.path, "/v1/refunds");
    assert_eq!(r.account.as_deref(), Some(MUSTER_ACCOUNT));
    assert_eq!(r.form["amount"], "2500");
    assert_eq!(
        r.form["payment_intent"],
        fake.session(&session).payment_intent
    );
    assert_field_error(
        &k.gql(REFUND, refund(9501, "zu viel")).await,
        "input.amountCents",
        "at most 9500",
    );
    let delivered = fake.wait_for_deliveries(1).await;
    assert_eq!(delivered[0].event["type"], "charge.refunded");
    assert!(delivered[0].event.get("account").is_none());
    assert_eq!(
        delivered[0].event["data"]["object"]["amount_refunded"],
        2500
    );
    // The event reports what the ledger already has: acknowledged, nothing counted twice.
    assert_eq!(
        (delivered[0].status, delivered[0].body["result"].as_str()),
        (200, Some("no effect"))
    );
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["refundedCents"],
        2500
    );
    assert_eq!(
        count_where(&app, "payment_refunds", "amount_cents > 0").await,
        1
    );
    assert_eq!(
        count_where(&app, "outbox", "subject LIKE 'Erstattung%'").await,
        1
    );
    assert_eq!(
        fake.received().len(),
        2,
        "the refused refund never reached Stripe"
    );

    // A refund made in Stripe's dashboard arrives as charge.refunded and is taken over.
    let (status, _) = deliver(
        &app,
        MUSTER,
        &fake.refund_in_dashboard(&session, 500).to_string(),
        None,
        MUSTER_SECRET,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["refundedCents"],
        3000
    );

    // Back-office exports carry the payment.
    let get = |ext: &str| {
        app.client
            .get(format!("{}/api/applications/{id}.{ext}", app.base_url))
            .header("X-Tenant", MUSTER)
            .bearer_auth(&kasse.access)
            .send()
    };
    let xml = get("xml").await.unwrap().text().await.unwrap();
    validate_against_xsd(&xml);
    assert!(xml.contains(&format!("<payment id=\"{payment_id}\" amountCents=\"12000\" refundedCents=\"3000\" currency=\"EUR\">")), "{xml}");
    assert!(
        xml.contains("<state>partially_refunded</state>")
            && xml.contains("<provider>stripe</provider>"),
        "{xml}"
    );
    let exported: Value = get("json").await.unwrap().json().await.unwrap();
    assert_eq!(exported["payments"][0]["amountCents"], 12000);
    assert_eq!(exported["payments"][0]["state"], "partially_refunded");

    // The treasury's report and CSV show the payment and the refunds.
    let (from, to) = (
        chrono::Utc::now() - chrono::Duration::hours(1),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let resp = k
        .gql(
            "query($f: DateTime!, $t: DateTime!) { paymentsReport(from: $f, to: $t) { receivedCents refundedCents netCents entries { kind reference amountCents reason payment { id provider } fees { key amountCents } } } }",
            json!({ "f": from, "t": to }),
        )
        .await;
    let report = &data(&resp)["paymentsReport"];
    assert_eq!(report["receivedCents"], 12000);
    assert_eq!(report["refundedCents"], 3000);
    assert_eq!(report["netCents"], 9000);
    assert_eq!(report["entries"][0]["kind"], "payment");
    assert_eq!(report["entries"][0]["fees"][0]["key"], "steuer");
    assert_eq!(report["entries"][1]["kind"], "refund");
    assert_eq!(report["entries"][1]["amountCents"], -2500);
    assert_eq!(
        report["entries"][1]["reason"],
        "Ermäßigung für Schwerbehinderte"
    );
    assert_eq!(
        report["entries"][2]["amountCents"], -500,
        "the dashboard refund is in the ledger too"
    );
    assert_code(&app.caller(MUSTER, &staff).gql("query($f: DateTime!, $t: DateTime!) { paymentsReport(from: $f, to: $t) { netCents } }", json!({ "f": from, "t": to })).await, "FORBIDDEN");

    let csv = app
        .client
        .get(format!("{}/payments/report.csv", app.base_url))
        .query(&[("from", from.to_rfc3339()), ("to", to.to_rfc3339())])
        .header("X-Tenant", MUSTER)
        .bearer_auth(&kasse.access)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(
        rows[0][..6],
        [
            "booked_at",
            "kind",
            "reference",
            "payment_id",
            "provider",
            "amount_cents"
        ]
    );
    assert_eq!(
        (rows[1][1], rows[1][5], rows[1][4]),
        ("payment", "12000", "stripe")
    );
    assert_eq!((rows[2][1], rows[2][5]), ("refund", "-2500"));
    assert_eq!(rows[1][3], payment_id);
    assert!(rows[1][2].starts_with("MUSTERSTADT-"));
    let anonymous = app
        .client
        .get(format!(
            "{}/payments/report.csv?from={}&to={}",
            app.base_url, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
        ))
        .header("X-Tenant", MUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn webhooks_with_bad_signatures_stale_times_or_tampered_bodies_are_refused_and_change_nothing()
 {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let (id, token) = application(&app, MUSTER).await;
    let url = str_at(
        &data(&start(&app, MUSTER, &id, &token, "STRIPE").await)["startPayment"],
        "checkoutUrl",
    );
    let session = session_of(&url);
    let event = fake.pay(&session).to_string();
    let now = chrono::Utc::now().timestamp();

    let wrong_secret = signature(event.as_bytes(), &["whsec_guessed_0123456789abcdef"], now);
    let stale = signature(event.as_bytes(), &[MUSTER_SECRET], now - 301);
    let future = signature(event.as_bytes(), &[MUSTER_SECRET], now + 400);
    let tampered_body = event.replace("\"amount_total\":12000", "\"amount_total\":1");
    assert_ne!(tampered_body, event);
    for (body, header) in [
        (event.clone(), wrong_secret),
        (event.clone(), stale),
        (event.clone(), future),
        (
            tampered_body,
            signature(event.as_bytes(), &[MUSTER_SECRET], now),
        ),
        (event.clone(), "t=abc,v1=zz".to_owned()),
        (event.clone(), String::new()),
    ] {
        let (status, _) = deliver(&app, MUSTER, &body, Some(header.clone()), MUSTER_SECRET).await;
        assert_eq!(status, 400, "{header}");
    }
    assert_eq!(
        post_unsigned(&app, "stripe", event.clone()).await,
        400,
        "no signature header"
    );
    let huge = format!(
        "{{\"id\":\"evt_big\",\"pad\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    assert_eq!(
        deliver(&app, MUSTER, &huge, None, MUSTER_SECRET).await.0,
        413,
        "over the body limit"
    );
    // Unknown tenants and providers are not endpoints.
    assert_eq!(
        deliver(&app, "nirgendwo", &event, None, MUSTER_SECRET)
            .await
            .0,
        404
    );
    assert_eq!(post_unsigned(&app, "on_site", event.clone()).await, 404);
    // Not JSON, but signed: refused as well.
    assert_eq!(
        deliver(&app, MUSTER, "not json", None, MUSTER_SECRET)
            .await
            .0,
        400
    );

    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PENDING"
    );
    assert_eq!(count_where(&app, "provider_events", "1 = 1").await, 0);

    // During a secret roll Stripe signs with both secrets: any matching v1 passes.
    let both = signature(
        event.as_bytes(),
        &["whsec_the_old_one_0123456789", MUSTER_SECRET],
        now,
    );
    let (status, body) = deliver(&app, MUSTER, &event, Some(both), MUSTER_SECRET).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("applied")));
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PAID"
    );
}

#[tokio::test]
async fn the_same_event_delivered_fifty_times_at_once_has_one_effect() {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let (id, token) = application(&app, MUSTER).await;
    let url = str_at(
        &data(&start(&app, MUSTER, &id, &token, "STRIPE").await)["startPayment"],
        "checkoutUrl",
    );
    let event = fake.pay(&session_of(&url)).to_string();
    let header = signature(
        event.as_bytes(),
        &[MUSTER_SECRET],
        chrono::Utc::now().timestamp(),
    );

    let deliveries =
        (0..50).map(|_| deliver(&app, MUSTER, &event, Some(header.clone()), MUSTER_SECRET));
    let results = futures_util::future::join_all(deliveries).await;
    let mut applied = 0;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        match body["result"].as_str() {
            Some("applied") => applied += 1,
            Some("duplicate") => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    let after = as_applicant(&app, &id, &token).await;
    assert_eq!(after["payments"][0]["state"], "PAID");
    let paid_events = timeline_kinds(&after)
        .iter()
        .filter(|k| *k == "payment_paid")
        .count();
    assert_eq!(paid_events, 1);
    assert_eq!(count_where(&app, "provider_events", "1 = 1").await, 1);
    assert_eq!(
        count_where(&app, "outbox", "subject LIKE 'Zahlungseingang%'").await,
        1
    );
}

#[tokio::test]
async fn events_out_of_order_never_undo_a_payment_and_failures_are_typed() {
    let (app, fake) = stripe_app().await;
    let (id, token) = application(&app, MUSTER).await;
    // A tenant without Stripe set up does not take online payments: nothing is stored.
    assert_code(
        &start(&app, MUSTER, &id, &token, "STRIPE").await,
        "PAYMENT_FAILED",
    );
    assert_eq!(count_where(&app, "payments", "1 = 1").await, 0);
    assert!(fake.received().is_empty());
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;

    // Stripe is down: PAYMENT_FAILED, the attempt is recorded as failed; a retry works.
    fake.fail_next(1);
    let resp = start(&app, MUSTER, &id, &token, "STRIPE").await;
    assert_code(&resp, "PAYMENT_FAILED");
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "FAILED"
    );
    let url = str_at(
        &data(&start(&app, MUSTER, &id, &token, "STRIPE").await)["startPayment"],
        "checkoutUrl",
    );
    let session = session_of(&url);

    // The expiry is delivered first, the payment afterwards (Stripe does not promise order):
    // the money counts.
    let expired = fake.expire(&session).to_string();
    let paid = fake.pay(&session).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &expired, None, MUSTER_SECRET).await.1["result"],
        "applied"
    );
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][1]["state"],
        "EXPIRED"
    );
    assert_eq!(
        deliver(&app, MUSTER, &paid, None, MUSTER_SECRET).await.1["result"],
        "applied"
    );
    assert_eq!(
        deliver(&app, MUSTER, &expired, None, MUSTER_SECRET).await.1["result"],
        "duplicate"
    );
    let after = as_applicant(&app, &id, &token).await;
    assert_eq!(after["payments"][1]["state"], "PAID");
    assert_eq!(after["payments"][0]["state"], "FAILED");

    // An event about a session Amtsplatz did not create (the account's other business).
    let mut foreign = fake.expire(&session);
    foreign["data"]["object"]["metadata"] = json!({});
    assert_eq!(
        deliver(&app, MUSTER, &foreign.to_string(), None, MUSTER_SECRET)
            .await
            .1["result"],
        "no effect"
    );
}

#[tokio::test]
async fn one_tenants_webhook_secret_cannot_confirm_another_tenants_payment() {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    configure(
        &app,
        BEISPIEL,
        BEISPIEL_ADMIN,
        BEISPIEL_ACCOUNT,
        BEISPIEL_SECRET,
    )
    .await;
    let (id, token) = application(&app, MUSTER).await;
    let url = str_at(
        &data(&start(&app, MUSTER, &id, &token, "STRIPE").await)["startPayment"],
        "checkoutUrl",
    );
    let event = fake.pay(&session_of(&url)).to_string();

    // Signed with Beispielhausen's secret: Musterstadt's endpoint refuses it.
    assert_eq!(
        deliver(&app, MUSTER, &event, None, BEISPIEL_SECRET).await.0,
        400
    );
    // Beispielhausen's endpoint accepts its own signature but has no such payment.
    let (status, body) = deliver(&app, BEISPIEL, &event, None, BEISPIEL_SECRET).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("no effect")));
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PENDING"
    );

    // An event of Beispielhausen's account, with Musterstadt's payment id, at Beispielhausen.
    let mut crafted: Value = serde_json::from_str(&event).unwrap();
    crafted["account"] = json!(BEISPIEL_ACCOUNT);
    crafted["id"] = json!("evt_crafted_1");
    assert_eq!(
        deliver(&app, BEISPIEL, &crafted.to_string(), None, BEISPIEL_SECRET)
            .await
            .1["result"],
        "no effect"
    );
    // The same as Beispielhausen's own endpoint receives it (no `account`): its tenant has no
    // such payment, whatever the event's metadata says.
    let mut own = own_endpoint(serde_json::from_str(&event).unwrap());
    own["id"] = json!("evt_own_1");
    assert_eq!(
        deliver(&app, BEISPIEL, &own.to_string(), None, BEISPIEL_SECRET)
            .await
            .1["result"],
        "no effect"
    );
    // At Musterstadt, an event of another account (a Connect endpoint's shape) changes nothing.
    assert_eq!(
        deliver(&app, MUSTER, &crafted.to_string(), None, MUSTER_SECRET)
            .await
            .1["result"],
        "no effect"
    );
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PENDING"
    );
    // Musterstadt's own endpoint (no `account`): applied by the tenant of the endpoint alone.
    assert_eq!(
        deliver(&app, MUSTER, &own.to_string(), None, MUSTER_SECRET)
            .await
            .1["result"],
        "applied"
    );
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PAID"
    );
    // The Connect shape of the same payment afterwards: already paid.
    assert_eq!(
        deliver(&app, MUSTER, &event, None, MUSTER_SECRET).await.1["result"],
        "no effect"
    );

    // Secrets are stored sealed, and nobody reads them back.
    assert_eq!(
        count_where(&app, "payment_accounts", "webhook_secret LIKE '%whsec%'").await,
        0
    );
    assert_eq!(
        count_where(&app, "payment_accounts", "webhook_secret IS NOT NULL").await,
        2
    );
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let resp = app
        .caller(BEISPIEL, &admin)
        .gql(
            "query { paymentAccounts { accountId webhookSecretSet } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&resp)["paymentAccounts"],
        json!([{ "accountId": BEISPIEL_ACCOUNT, "webhookSecretSet": true }])
    );
    // Beispielhausen's staff do not see Musterstadt's application or its payments.
    let resp = app
        .caller(BEISPIEL, &admin)
        .gql(
            "query($id: ID!) { application(id: $id) { payments { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
}

#[tokio::test]
async fn delayed_payments_are_settled_by_the_async_payment_events() {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let checkout = |id: String, token: String| {
        let app = &app;
        async move {
            let resp = start(app, MUSTER, &id, &token, "STRIPE").await;
            session_of(&str_at(&data(&resp)["startPayment"], "checkoutUrl"))
        }
    };

    // SEPA debit: the checkout completes unpaid, the money arrives days later.
    let (id, token) = application(&app, MUSTER).await;
    let session = checkout(id.clone(), token.clone()).await;
    let completed = fake.complete_unpaid(&session).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &completed, None, MUSTER_SECRET).await,
        (200, json!({ "result": "no effect" }))
    );
    let pending = as_applicant(&app, &id, &token).await;
    assert_eq!(pending["payments"][0]["state"], "PENDING");
    assert!(pending["payments"][0]["paidAt"].is_null());
    // The municipality's own endpoint: no top-level `account`.
    let succeeded = own_endpoint(fake.async_payment_succeeded(&session)).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &succeeded, None, MUSTER_SECRET).await,
        (200, json!({ "result": "applied" }))
    );
    let paid = as_applicant(&app, &id, &token).await;
    assert_eq!(paid["payments"][0]["state"], "PAID");
    assert_eq!(
        paid["payments"][0]["providerPaymentId"],
        fake.session(&session).payment_intent.as_str()
    );
    assert_eq!(
        timeline_kinds(&paid),
        ["submitted", "payment_started", "payment_paid"]
    );
    assert_eq!(
        count_where(&app, "outbox", "subject LIKE 'Zahlungseingang%'").await,
        1
    );

    // The debit bounces: the payment failed, the application still awaits its fees.
    let (id, token) = application(&app, MUSTER).await;
    let session = checkout(id.clone(), token.clone()).await;
    let completed = fake.complete_unpaid(&session).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &completed, None, MUSTER_SECRET)
            .await
            .1["result"],
        "no effect"
    );
    let failed = fake.async_payment_failed(&session).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &failed, None, MUSTER_SECRET).await,
        (200, json!({ "result": "applied" }))
    );
    let after = as_applicant(&app, &id, &token).await;
    assert_eq!(after["payments"][0]["state"], "FAILED");
    assert_eq!(
        timeline_kinds(&after),
        ["submitted", "payment_started", "payment_failed"]
    );
    assert_eq!(
        count_where(&app, "outbox", "subject LIKE 'Zahlungseingang%'").await,
        1,
        "no receipt for a failed payment"
    );
    // A late success of the same session still counts (the money did arrive after all).
    let late = fake.async_payment_succeeded(&session).to_string();
    assert_eq!(
        deliver(&app, MUSTER, &late, None, MUSTER_SECRET).await.1["result"],
        "applied"
    );
    assert_eq!(
        as_applicant(&app, &id, &token).await["payments"][0]["state"],
        "PAID"
    );
}

#[tokio::test]
async fn stripe_refusing_the_checkout_is_a_typed_payment_error() {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let (id, token) = application(&app, MUSTER).await;
    fake.refuse_next_checkout(
        400,
        "url_invalid",
        "Not a valid URL: https://musterstadt.example/bezahlt",
    );
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            None,
            START,
            json!({ "i": { "applicationId": id, "provider": "STRIPE", "accessToken": token } }),
        )
        .await;
    assert_eq!(status, 200);
    assert_code(&resp, "PAYMENT_FAILED");
    assert!(
        str_at(&resp["errors"][0], "message").contains("Not a valid URL"),
        "Stripe's own message for a request it refused: {resp:#}"
    );
    let after = as_applicant(&app, &id, &token).await;
    assert_eq!(after["payments"][0]["state"], "FAILED");
    assert!(after["payments"][0]["checkoutUrl"].is_null());
    // The next attempt is a new payment and works.
    let resp = start(&app, MUSTER, &id, &token, "STRIPE").await;
    assert_eq!(data(&resp)["startPayment"]["payment"]["state"], "PENDING");
    assert_eq!(count_where(&app, "payments", "1 = 1").await, 2);
}

#[tokio::test]
async fn a_checkout_asked_again_after_a_lost_answer_is_the_same_session() {
    let (app, fake) = stripe_app().await;
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let (id, token) = application(&app, MUSTER).await;
    let resp = start(&app, MUSTER, &id, &token, "STRIPE").await;
    let started = &data(&resp)["startPayment"];
    let (payment, url) = (str_at(started, "paymentId"), str_at(started, "checkoutUrl"));
    // The server died after Stripe created the session and before it stored the answer.
    exec(
        &app,
        "UPDATE payments SET checkout_url = NULL, checkout_session_id = NULL, expires_at = NULL",
    )
    .await;
    assert_eq!(
        count_where(&app, "payments", "checkout_url IS NULL").await,
        1
    );
    // Some time later (other `now`), the applicant asks again: the same key must carry the same
    // parameters, or Stripe refuses it (`idempotency_error`) instead of answering the session.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let resp = start(&app, MUSTER, &id, &token, "STRIPE").await;
    let again = &data(&resp)["startPayment"];
    assert_eq!(again["paymentId"], payment.as_str());
    assert_eq!(again["checkoutUrl"], url.as_str());
    let sent = fake.received();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].idempotency_key, sent[1].idempotency_key);
    assert_eq!(sent[0].form, sent[1].form);

    // The fake holds Stripe's rule: the same key with other parameters is refused.
    let client = reqwest::Client::new();
    let form = |amount: &str| {
        vec![
            ("mode", "payment".to_owned()),
            ("line_items[0][price_data][unit_amount]", amount.to_owned()),
            ("line_items[0][quantity]", "1".to_owned()),
        ]
    };
    let post = |account: &'static str, amount: &'static str| {
        client
            .post(format!("{}v1/checkout/sessions", fake.base_url))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", account)
            .header("Idempotency-Key", "checkout-same-key")
            .form(&form(amount))
            .send()
    };
    let first: Value = post(MUSTER_ACCOUNT, "100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay: Value = post(MUSTER_ACCOUNT, "100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], replay["id"]);
    let other = post(MUSTER_ACCOUNT, "200").await.unwrap();
    assert_eq!(other.status(), 400);
    assert_eq!(
        other.json::<Value>().await.unwrap()["error"]["type"],
        "idempotency_error"
    );
    // Keys are per connected account: another account's same key is another request.
    let elsewhere: Value = post(BEISPIEL_ACCOUNT, "200")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(elsewhere["id"], first["id"]);
}

#[tokio::test]
async fn tasks_of_a_service_paid_first_are_completed_only_once_the_fees_are_paid() {
    let app = spawn_app().await;
    require_payment_first(&app).await;
    let (id, token) = application(&app, MUSTER).await;
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let k = app.caller(MUSTER, &kasse);
    let resp = k
        .gql(
            "query($id: ID!) { application(id: $id) { tasks { id state department { key } } } }",
            json!({ "id": id }),
        )
        .await;
    let task = data(&resp)["application"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["department"]["key"] == "kasse")
        .map(|t| str_at(t, "id"))
        .unwrap();
    let complete = "mutation($i: CompleteTaskInput!) { completeTask(input: $i) { task { state } application { done } } }";

    // Unpaid: refused, and the task stays open.
    let resp = k.gql(complete, json!({ "i": { "id": task } })).await;
    assert_code(&resp, "CONFLICT");
    assert!(
        str_at(&resp["errors"][0], "message").contains("once the fees are paid"),
        "{resp:#}"
    );
    assert_eq!(
        count_where(&app, "application_tasks", "state = 'open'").await,
        1
    );
    assert_eq!(
        count_where(&app, "application_events", "kind = 'task_completed'").await,
        0
    );

    // Paid at the counter: the same call goes through.
    let resp = start(&app, MUSTER, &id, &token, "ON_SITE").await;
    let payment = str_at(&data(&resp)["startPayment"], "paymentId");
    data(&k
        .gql(
            "mutation($i: MarkPaymentPaidInput!) { markPaymentPaid(input: $i) { payment { state } } }",
            json!({ "i": { "paymentId": payment } }),
        )
        .await);
    let resp = k.gql(complete, json!({ "i": { "id": task } })).await;
    assert_eq!(data(&resp)["completeTask"]["task"]["state"], "done");
    assert_eq!(
        count_where(&app, "application_tasks", "state = 'open'").await,
        0
    );
}

#[tokio::test]
async fn fees_paid_at_the_counter_are_confirmed_by_the_treasury() {
    // No Stripe key at all: the counter still works.
    let app = spawn_app().await;
    require_payment_first(&app).await;
    let (id, token) = application(&app, MUSTER).await;
    assert_code(
        &start(&app, MUSTER, &id, &token, "STRIPE").await,
        "PAYMENT_FAILED",
    );
    let resp = start(&app, MUSTER, &id, &token, "ON_SITE").await;
    let started = &data(&resp)["startPayment"];
    assert!(started["checkoutUrl"].is_null());
    assert_eq!(started["payment"]["provider"], "ON_SITE");
    let payment = str_at(started, "paymentId");
    // Asking again gives the same payment.
    assert_eq!(
        data(&start(&app, MUSTER, &id, &token, "ON_SITE").await)["startPayment"]["paymentId"],
        payment.as_str()
    );

    let mark = "mutation($i: MarkPaymentPaidInput!) { markPaymentPaid(input: $i) { payment { state paidAt } } }";
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql(mark, json!({ "i": { "paymentId": payment } }))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            mark,
            json!({ "i": { "paymentId": payment } }),
        )
        .await,
        "UNAUTHENTICATED",
    );
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let k = app.caller(MUSTER, &kasse);
    assert_code(
        &transition(&app, &kasse, &id, "in_review").await,
        "CONFLICT",
    );
    let resp = k.gql(mark, json!({ "i": { "paymentId": payment } })).await;
    assert_eq!(data(&resp)["markPaymentPaid"]["payment"]["state"], "PAID");
    assert_code(
        &k.gql(mark, json!({ "i": { "paymentId": payment } })).await,
        "CONFLICT",
    );
    assert_eq!(
        data(&transition(&app, &kasse, &id, "in_review").await)["transitionApplication"]["application"]
            ["state"],
        "in_review"
    );

    // Money back at the counter: recorded, no provider involved; the whole rest refunds fully.
    let resp = k.gql(REFUND, json!({ "i": { "paymentId": payment, "amountCents": 12000, "reason": "Hund abgemeldet" } })).await;
    let done = &data(&resp)["refundPayment"];
    assert_eq!(done["payment"]["state"], "REFUNDED");
    assert!(done["providerRefundId"].is_null());
    assert_code(
        &k.gql(
            REFUND,
            json!({ "i": { "paymentId": payment, "amountCents": 1, "reason": "nochmal" } }),
        )
        .await,
        "CONFLICT",
    );
    // Another tenant's cashier-less admin cannot touch it.
    let other = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    assert_code(
        &app.caller(BEISPIEL, &other)
            .gql(mark, json!({ "i": { "paymentId": payment } }))
            .await,
        "NOT_FOUND",
    );
    let after = as_applicant(&app, &id, &token).await;
    let kinds = timeline_kinds(&after);
    assert!(
        kinds.len() >= 4
            && kinds[kinds.len() - 4..]
                == [
                    "payment_started",
                    "payment_paid",
                    "transitioned",
                    "payment_refunded"
                ],
        "{kinds:?}"
    );
}

#[tokio::test]
async fn stripe_settings_are_checked_and_only_for_administrators() {
    let (app, _fake) = stripe_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let c = app.caller(MUSTER, &admin);
    let resp = c
        .gql(CONFIGURE, json!({ "i": { "accountId": "acc_nope", "webhookSecret": "secret", "successUrl": "http://evil.example/", "cancelUrl": "javascript:alert(1)" } }))
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    let fields = &resp["errors"][0]["extensions"]["fields"];
    for f in [
        "input.accountId",
        "input.webhookSecret",
        "input.successUrl",
        "input.cancelUrl",
    ] {
        assert!(fields[f].is_string(), "{f}: {resp}");
    }
    assert_eq!(count_where(&app, "payment_accounts", "1 = 1").await, 0);
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let resp = app
        .caller(MUSTER, &kasse)
        .gql(CONFIGURE, json!({ "i": { "accountId": MUSTER_ACCOUNT, "webhookSecret": MUSTER_SECRET, "successUrl": "https://a.example/", "cancelUrl": "https://a.example/" } }))
        .await;
    assert_code(&resp, "FORBIDDEN");
    // Changing the URLs keeps the stored secret.
    configure(&app, MUSTER, MUSTER_ADMIN, MUSTER_ACCOUNT, MUSTER_SECRET).await;
    let resp = c
        .gql(CONFIGURE, json!({ "i": { "accountId": MUSTER_ACCOUNT, "successUrl": "https://musterstadt.example/danke", "cancelUrl": "https://musterstadt.example/zurueck" } }))
        .await;
    let account = &data(&resp)["configureStripePayments"]["account"];
    assert_eq!(account["webhookSecretSet"], true);
    assert_eq!(account["successUrl"], "https://musterstadt.example/danke");
    assert_eq!(
        count_where(&app, "audit_log", "action = 'payments.stripe_configured'").await,
        2
    );
    assert_eq!(
        count_where(&app, "audit_log", "CAST(details AS TEXT) LIKE '%whsec%'").await,
        0
    );
}
