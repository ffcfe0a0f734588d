//! FIT-Connect hand-over: a service configured with a destination hands each application over,
//! encrypted to the destination's key, against a local fake FIT-Connect (see
//! `fake_fitconnect`) that decrypts everything with its private key and validates the metadata
//! against the published schema; the destination's signed answer reaches the application.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::applications::{dog, draft_with_certificate};
use crate::fake_fitconnect::*;
use crate::helpers::*;

const CONFIGURE: &str = "mutation($i: ConfigureFitConnectHandoverInput!) { configureFitConnectHandover(input: $i) { serviceId destinationId leikaKey schemaUri clientId } }";
const HANDOVER: &str =
    "query($s: ID!) { fitConnectHandover(serviceId: $s) { destinationId clientId } }";
const STATE: &str = "query($id: ID!) { application(id: $id) { fitConnect { state destinationId submissionId caseId lastError problems submittedAt decidedAt } } }";
const SUBMIT: &str = "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id reference } } }";

async fn service_id(app: &TestApp, tenant: &str, slug: &str) -> String {
    let resp = app
        .gql(
            Some(tenant),
            None,
            "query($s: String!) { service(slug: $s) { id } }",
            json!({ "s": slug }),
        )
        .await;
    str_at(&data(&resp)["service"], "id")
}

fn handover_input(service: &str, fake: &FakeFitConnect) -> Value {
    json!({
        "serviceId": service, "destinationId": fake.destination.to_string(), "leikaKey": LEIKA,
        "schemaUri": SCHEMA_URI, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
    })
}

/// A server pointed at `fake`, with Musterstadt's dog tax handed over to its destination.
async fn configured(fake: &FakeFitConnect) -> (TestApp, Session) {
    let app = spawn_app_with(|s| fake.configure(s)).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let service = service_id(&app, MUSTER, "hundesteuer").await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": handover_input(&service, fake) }))
        .await;
    assert_eq!(
        data(&resp)["configureFitConnectHandover"]["leikaKey"],
        LEIKA,
        "{resp:#}"
    );
    (app, admin)
}

/// Submits a dog tax application (with the certificate of competence for a listed breed).
async fn submit(app: &TestApp, listed: bool) -> (String, String) {
    let form = dog(listed);
    let mut input = json!({ "serviceSlug": "hundesteuer", "data": form });
    if listed {
        let (draft, access) = draft_with_certificate(app, None, &input["data"]).await;
        input["draftId"] = json!(draft);
        input["accessToken"] = json!(access);
    }
    let resp = app
        .gql(Some(MUSTER), None, SUBMIT, json!({ "i": input }))
        .await;
    let a = &data(&resp)["submitApplication"]["application"];
    (str_at(a, "id"), str_at(a, "reference"))
}

async fn hand_over_state(app: &TestApp, admin: &Session, id: &str) -> Value {
    let resp = app
        .caller(MUSTER, admin)
        .gql(STATE, json!({ "id": id }))
        .await;
    data(&resp)["application"]["fitConnect"].clone()
}

/// Waits (up to 30 s) until the application's hand-over is in `state`.
async fn wait_for_state(app: &TestApp, admin: &Session, id: &str, state: &str) -> Value {
    for _ in 0..300 {
        let s = hand_over_state(app, admin, id).await;
        if s["state"] == state {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the hand-over never reached {state}: {:#}",
        hand_over_state(app, admin, id).await
    );
}

#[tokio::test]
async fn an_application_reaches_the_destination_encrypted_with_valid_metadata_and_is_accepted() {
    let fake = FakeFitConnect::start().await;
    let (app, admin) = configured(&fake).await;
    let (id, reference) = submit(&app, true).await;

    let s = wait_for_state(&app, &admin, &id, "SUBMITTED").await;
    let received = fake.received();
    assert_eq!(received.len(), 1, "one submission");
    let (submission, got) = &received[0];
    assert_eq!(s["submissionId"], submission.to_string());
    assert_eq!(s["caseId"], got.case_id.to_string());
    assert_eq!(s["destinationId"], fake.destination.to_string());
    assert!(s["submittedAt"].is_string());
    // What the destination decrypted is what the citizen submitted.
    assert_eq!(got.data.as_ref(), Some(&dog(true)));
    assert_eq!(
        got.problems,
        Vec::<String>::new(),
        "the metadata validates and every hash matches"
    );
    let meta = got.metadata.as_ref().unwrap();
    assert_eq!(
        meta["additionalReferenceInfo"]["senderReference"],
        reference
    );
    assert_eq!(
        meta["publicServiceType"]["identifier"],
        format!("urn:de:fim:leika:leistung:{LEIKA}")
    );
    assert_eq!(
        meta["contentStructure"]["data"]["submissionSchema"]["schemaUri"],
        SCHEMA_URI
    );
    assert_eq!(
        meta["replyChannel"]["eMail"]["address"],
        "erika@example.org"
    );
    assert_eq!(
        got.service_type["identifier"],
        format!("urn:de:fim:leika:leistung:{LEIKA}")
    );
    // The certificate of competence, decrypted, is the uploaded file.
    assert_eq!(got.attachments.len(), 1);
    let (_, bytes) = got.attachments.values().next().unwrap();
    assert_eq!(bytes, &pdf("Sachkundeprüfung bestanden"));
    assert_eq!(
        meta["contentStructure"]["attachments"][0]["filename"],
        "sachkunde.pdf"
    );

    // The destination accepts, naming the tags of what it received: the application shows it.
    fake.accept(*submission);
    let s = wait_for_state(&app, &admin, &id, "ACCEPTED").await;
    assert!(s["decidedAt"].is_string());
    assert_eq!(s["lastError"], Value::Null, "the tags match what was sent");
    assert_eq!(fake.inner.creates.load(Ordering::SeqCst), 1);
    assert_eq!(fake.inner.submits.load(Ordering::SeqCst), 1);
    assert_eq!(
        count_where(
            &app,
            "outbox",
            "kind LIKE 'fitconnect.%' AND sent_at IS NULL AND failed_at IS NULL"
        )
        .await,
        0,
        "nothing left to do"
    );

    // The applicant does not see FIT-Connect internals.
    let resp = app
        .gql(Some(MUSTER), None, STATE, json!({ "id": id }))
        .await;
    assert!(
        resp["data"]["application"].is_null()
            || resp["data"]["application"]["fitConnect"].is_null(),
        "{resp:#}"
    );
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_completes_the_same_submission() {
    let fake = FakeFitConnect::start().await;
    fake.inner.fail_submits.store(2, Ordering::SeqCst);
    let (app, admin) = configured(&fake).await;
    let (id, _) = submit(&app, false).await;

    let s = wait_for_state(&app, &admin, &id, "SUBMITTED").await;
    assert_eq!(
        fake.inner.creates.load(Ordering::SeqCst),
        1,
        "the retries resumed the created submission"
    );
    assert_eq!(fake.inner.submits.load(Ordering::SeqCst), 1);
    assert_eq!(fake.received().len(), 1);
    assert_eq!(
        s["lastError"],
        Value::Null,
        "the error of the failed attempts is cleared"
    );
    assert_eq!(fake.received()[0].1.problems, Vec::<String>::new());
}

#[tokio::test]
async fn only_the_destination_can_accept_or_reject_and_a_rejection_shows_its_problems() {
    let fake = FakeFitConnect::start().await;
    let (app, admin) = configured(&fake).await;
    let (id, _) = submit(&app, false).await;
    wait_for_state(&app, &admin, &id, "SUBMITTED").await;
    let (submission, got) = fake.received().remove(0);

    // An acceptance signed by someone else (an outsider's key under the destination's name,
    // or the API's own key) is ignored.
    let dest = fake.destination.to_string();
    fake.add_event(
        got.case_id,
        sign_event(
            outsider(),
            SIGNATURE_KID,
            &dest,
            submission,
            got.case_id,
            ACCEPT_EVENT,
            json!({}),
        ),
    );
    fake.add_event(
        got.case_id,
        sign_event(
            api_signer(),
            API_KID,
            &fake.base,
            submission,
            got.case_id,
            ACCEPT_EVENT,
            json!({}),
        ),
    );
    // So is the destination's acceptance of another submission.
    fake.add_event(
        got.case_id,
        sign_event(
            destination_signer(),
            SIGNATURE_KID,
            &dest,
            Uuid::new_v4(),
            got.case_id,
            ACCEPT_EVENT,
            json!({}),
        ),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hand_over_state(&app, &admin, &id).await["state"],
        "SUBMITTED",
        "forged answers change nothing"
    );

    fake.reject(submission);
    let s = wait_for_state(&app, &admin, &id, "REJECTED").await;
    assert_eq!(s["problems"][0]["title"], "Authentifizierungs-Tag ungültig");
    assert!(s["decidedAt"].is_string());
}

#[tokio::test]
async fn a_destination_that_does_not_offer_the_service_fails_the_hand_over_with_a_reason() {
    let fake = FakeFitConnect::start().await;
    fake.inner.services.lock().unwrap().clear();
    let (app, admin) = configured(&fake).await;
    let (id, _) = submit(&app, false).await;
    let s = wait_for_state(&app, &admin, &id, "FAILED").await;
    let why = s["lastError"].as_str().unwrap();
    assert!(why.contains("does not offer the service"), "{why}");
    assert_eq!(
        fake.inner.creates.load(Ordering::SeqCst),
        0,
        "nothing was created"
    );
    assert_eq!(
        count_where(
            &app,
            "outbox",
            "kind = 'fitconnect.submit' AND failed_at IS NOT NULL"
        )
        .await,
        1,
        "not retried"
    );

    // Once the destination offers the service, an administrator queues it again.
    let retry =
        "mutation($id: ID!) { retryFitConnectHandover(applicationId: $id) { state lastError } }";
    let clerk = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(
        &app.caller(MUSTER, &clerk)
            .gql(retry, json!({ "id": id }))
            .await,
        "FORBIDDEN",
    );
    fake.inner
        .services
        .lock()
        .unwrap()
        .push(format!("urn:de:fim:leika:leistung:{LEIKA}"));
    let resp = app
        .caller(MUSTER, &admin)
        .gql(retry, json!({ "id": id }))
        .await;
    assert_eq!(
        data(&resp)["retryFitConnectHandover"],
        json!({ "state": "PENDING", "lastError": null })
    );
    wait_for_state(&app, &admin, &id, "SUBMITTED").await;
    assert_eq!(fake.inner.creates.load(Ordering::SeqCst), 1);
    // Only a failed hand-over is retried.
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(retry, json!({ "id": id }))
            .await,
        "CONFLICT",
    );
}

#[tokio::test]
async fn applications_submitted_on_two_replicas_are_each_handed_over_exactly_once() {
    let fake = FakeFitConnect::start().await;
    let (a, b) = spawn_replicas(|s| fake.configure(s)).await;
    let admin = a.login(Some(MUSTER), MUSTER_ADMIN).await;
    let service = service_id(&a, MUSTER, "hundesteuer").await;
    let resp = a
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": handover_input(&service, &fake) }))
        .await;
    assert!(resp["errors"].is_null(), "{resp:#}");

    let mut ids = Vec::new();
    let submissions = (0..6).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move { submit(app, false).await.0 }
    });
    ids.extend(futures_util::future::join_all(submissions).await);
    for id in &ids {
        wait_for_state(&a, &admin, id, "SUBMITTED").await;
    }
    assert_eq!(
        fake.inner.creates.load(Ordering::SeqCst),
        6,
        "one submission per application"
    );
    assert_eq!(fake.inner.submits.load(Ordering::SeqCst), 6);
    let mut references: Vec<String> = fake
        .received()
        .iter()
        .map(|(_, r)| {
            r.metadata.as_ref().unwrap()["additionalReferenceInfo"]["senderReference"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    references.sort();
    references.dedup();
    assert_eq!(references.len(), 6, "six different applications arrived");
}

#[tokio::test]
async fn configuring_a_hand_over_is_for_administrators_validated_and_keeps_the_secret_sealed() {
    let fake = FakeFitConnect::start().await;
    let app = spawn_app_with(|s| fake.configure(s)).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let clerk = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let service = service_id(&app, MUSTER, "hundesteuer").await;
    let input = handover_input(&service, &fake);

    assert_code(
        &app.caller(MUSTER, &clerk)
            .gql(CONFIGURE, json!({ "i": input }))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.caller(MUSTER, &clerk)
            .gql(HANDOVER, json!({ "s": service }))
            .await,
        "FORBIDDEN",
    );

    let mut bad = input.clone();
    bad["leikaKey"] = json!("12345");
    bad["schemaUri"] = json!("http://evil.example/schema.json");
    bad["clientId"] = json!("");
    let resp = app
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": bad }))
        .await;
    assert_field_error(&resp, "input.leikaKey", "Leistungsschlüssel");
    assert_field_error(&resp, "input.schemaUri", "https");
    assert_field_error(&resp, "input.clientId", "client");
    let mut no_secret = input.clone();
    no_secret["clientSecret"] = Value::Null;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": no_secret }))
        .await;
    assert_field_error(&resp, "input.clientSecret", "required");
    let mut nul = input.clone();
    nul["clientSecret"] = json!("secret\u{0}");
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(CONFIGURE, json!({ "i": nul }))
            .await,
        "VALIDATION_FAILED",
    );
    assert_eq!(
        count(&app, "fit_connect_handovers").await,
        0,
        "nothing stored"
    );

    // Another municipality's service is not one of ours.
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            "{ services(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let other = str_at(&data(&resp)["services"]["nodes"][0], "id");
    let mut foreign = input.clone();
    foreign["serviceId"] = json!(other);
    assert_field_error(
        &app.caller(MUSTER, &admin)
            .gql(CONFIGURE, json!({ "i": foreign }))
            .await,
        "input.serviceId",
        "no such service",
    );

    let resp = app
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": input }))
        .await;
    assert_eq!(
        data(&resp)["configureFitConnectHandover"]["clientId"],
        CLIENT_ID
    );
    // Updating without a secret keeps the stored one.
    let resp = app
        .caller(MUSTER, &admin)
        .gql(CONFIGURE, json!({ "i": no_secret }))
        .await;
    assert!(resp["errors"].is_null(), "{resp:#}");
    assert_eq!(
        count_where(
            &app,
            "fit_connect_handovers",
            &format!("client_secret LIKE '%{CLIENT_SECRET}%'")
        )
        .await,
        0,
        "the secret is sealed"
    );
    let resp = app
        .caller(MUSTER, &admin)
        .gql(HANDOVER, json!({ "s": service }))
        .await;
    assert_eq!(
        data(&resp)["fitConnectHandover"]["destinationId"],
        fake.destination.to_string()
    );
    // Beispielhausen's administrator sees nothing of it.
    let other_admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let resp = app
        .caller(BEISPIEL, &other_admin)
        .gql(HANDOVER, json!({ "s": service }))
        .await;
    assert_eq!(data(&resp)["fitConnectHandover"], Value::Null);

    // The sealed secret still opens: a submission goes through.
    let (id, _) = submit(&app, false).await;
    wait_for_state(&app, &admin, &id, "SUBMITTED").await;

    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($s: ID!) { removeFitConnectHandover(serviceId: $s) }",
            json!({ "s": service }),
        )
        .await;
    assert_eq!(data(&resp)["removeFitConnectHandover"], true);
    let (id, _) = submit(&app, false).await;
    assert_eq!(
        hand_over_state(&app, &admin, &id).await,
        Value::Null,
        "no hand-over without configuration"
    );
    assert_eq!(fake.inner.creates.load(Ordering::SeqCst), 1);
}
