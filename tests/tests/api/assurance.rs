//! eID assurance levels: a service that requires a level refuses citizens signed in below it
//! with `INSUFFICIENT_ASSURANCE` (anonymous callers with `UNAUTHENTICATED`) before anything is
//! stored; the level, the stable subject (bPK2) and the postbox handle come from the ID token's
//! claims as BundID and other brokers send them.

use serde_json::{Value, json};

use crate::applications::dog;
use crate::helpers::*;

const TOWN: &str = IDP_TOWN;
const SAVE: &str =
    "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id } } }";
const SUBMIT: &str = "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id reference } } }";
const CUSTOMIZE: &str = "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { revision resolvedContent } } }";

/// Sets (or with `null`, removes) the service's required level as its administrator.
async fn require_level(app: &TestApp, admin: &Session, service: &str, level: Value) -> Value {
    let resp = app
        .caller(TOWN, admin)
        .gql(
            CUSTOMIZE,
            json!({ "i": { "serviceId": service, "note": "Vertrauensniveau", "changes": [{ "setAssuranceLevel": { "level": level } }] } }),
        )
        .await;
    data(&resp)["customizeService"]["service"]["resolvedContent"].clone()
}

async fn save(app: &TestApp, token: Option<&str>) -> Value {
    app.gql(
        Some(TOWN),
        token,
        SAVE,
        json!({ "i": { "serviceSlug": "hundesteuer", "data": { "name": "Erika" } } }),
    )
    .await
}

async fn submit(app: &TestApp, token: Option<&str>) -> Value {
    app.gql(
        Some(TOWN),
        token,
        SUBMIT,
        json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false) } }),
    )
    .await
}

async fn mine(app: &TestApp, token: &str) -> (i64, i64) {
    let resp = app
        .gql(
            Some(TOWN),
            Some(token),
            "{ myDrafts { totalCount } myApplications { totalCount } }",
            json!({}),
        )
        .await;
    let d = data(&resp);
    (
        d["myDrafts"]["totalCount"].as_i64().unwrap(),
        d["myApplications"]["totalCount"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn a_service_requiring_substantial_refuses_low_sign_ins_and_stores_nothing() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    let (admin, service) = idp_town(&app, &idp).await;
    let content = require_level(&app, &admin, &service, json!("SUBSTANTIAL")).await;
    assert_eq!(content["assuranceLevel"], "substantial");
    let (drafts_before, apps_before) = (
        count(&app, "drafts").await,
        count(&app, "applications").await,
    );

    // Too low, in each form brokers send it: eIDAS low in `acr`, BundID's Basisregistrierung
    // (STORK QAA 1) in its SAML attribute, the BSI's "normal", Keycloak's bare `acr`, nothing.
    for claims in [
        json!({ "acr": "http://eidas.europa.eu/LoA/low" }),
        json!({ "urn:oid:1.2.40.0.10.2.1.1.261.94": "STORK-QAA-Level-1" }),
        json!({ "EID-CITIZEN-QAA-LEVEL": "STORK-QAA-Level-2" }),
        json!({ "acr": "http://bsi.bund.de/eID/LoA/normal" }),
        json!({ "acr": "1" }),
        json!({}),
    ] {
        let token = idp.id_token(claims.clone());
        for resp in [
            save(&app, Some(&token)).await,
            submit(&app, Some(&token)).await,
        ] {
            assert_code(&resp, "INSUFFICIENT_ASSURANCE");
            let ext = &resp["errors"][0]["extensions"];
            assert_eq!(ext["requiredLevel"], "substantial", "{claims}");
        }
        assert_eq!(mine(&app, &token).await, (0, 0), "{claims}");
    }
    let low = idp.id_token(json!({ "acr": "http://eidas.europa.eu/LoA/low" }));
    let resp = save(&app, Some(&low)).await;
    assert_eq!(resp["errors"][0]["extensions"]["actualLevel"], "low");
    let me = app
        .gql(
            Some(TOWN),
            Some(&low),
            "{ me { assuranceLevel } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&me)["me"]["assuranceLevel"], "LOW");

    // Anonymous callers are asked to sign in first.
    assert_code(&save(&app, None).await, "UNAUTHENTICATED");
    assert_code(&submit(&app, None).await, "UNAUTHENTICATED");

    assert_eq!(
        count(&app, "drafts").await,
        drafts_before,
        "no draft stored"
    );
    assert_eq!(
        count(&app, "applications").await,
        apps_before,
        "no application stored"
    );
    assert_eq!(count(&app, "attachments").await, 0, "no file stored");
}

#[tokio::test]
async fn a_service_requiring_substantial_accepts_substantial_and_high_sign_ins() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    let (admin, service) = idp_town(&app, &idp).await;
    require_level(&app, &admin, &service, json!("SUBSTANTIAL")).await;

    for (sub, claims, level) in [
        (
            "elster",
            json!({ "acr": "http://eidas.europa.eu/NotNotified/LoA/substantial" }),
            "substantial",
        ),
        (
            "qaa3",
            json!({ "urn:oid:1.2.40.0.10.2.1.1.261.94": "STORK-QAA-Level-3" }),
            "substantial",
        ),
        (
            "bsi",
            json!({ "acr": "http://bsi.bund.de/eID/LoA/substantiell" }),
            "substantial",
        ),
        (
            "eid",
            json!({ "EID-CITIZEN-QAA-LEVEL": "STORK-QAA-Level-4" }),
            "high",
        ),
        (
            "eidas",
            json!({ "acr": "http://eidas.europa.eu/LoA/high" }),
            "high",
        ),
        (
            "hoch",
            json!({ "levelOfAssurance": "http://bsi.bund.de/eID/LoA/hoch" }),
            "high",
        ),
    ] {
        let mut claims = claims;
        claims["sub"] = json!(sub);
        let token = idp.id_token(claims.clone());
        let resp = save(&app, Some(&token)).await;
        assert!(
            data(&resp)["saveDraft"]["accessToken"].is_null(),
            "{claims}"
        );
        let resp = submit(&app, Some(&token)).await;
        data(&resp);
        assert_eq!(mine(&app, &token).await, (1, 1), "{claims}");
        let export = app
            .gql(Some(TOWN), Some(&token), "{ exportMyData }", json!({}))
            .await;
        assert_eq!(
            data(&export)["exportMyData"]["applications"][0]["assuranceLevel"],
            level,
            "{claims}"
        );
    }

    // Removing the requirement opens the service to anonymous use again.
    let content = require_level(&app, &admin, &service, Value::Null).await;
    assert!(content.get("assuranceLevel").is_none());
    data(&save(&app, None).await);
}

#[tokio::test]
async fn uploads_for_a_service_are_refused_below_its_level() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    let (admin, service) = idp_town(&app, &idp).await;
    require_level(&app, &admin, &service, json!("SUBSTANTIAL")).await;
    let token = idp.id_token(json!({ "acr": "http://eidas.europa.eu/LoA/substantial" }));
    let resp = save(&app, Some(&token)).await;
    let draft = str_at(&data(&resp)["saveDraft"]["draft"], "id");

    // The municipality raises the bar: the same sign-in can no longer add files.
    require_level(&app, &admin, &service, json!("HIGH")).await;
    let (_, resp) = upload_file(
        &app,
        TOWN,
        Some(&token),
        json!({ "draftId": draft, "document": "sachkundenachweis" }),
        "sachkunde.pdf",
        "application/pdf",
        pdf("Sachkunde"),
    )
    .await;
    assert_code(&resp, "INSUFFICIENT_ASSURANCE");
    let resp = app
        .gql(
            Some(TOWN),
            Some(&token),
            "mutation($i: RequestUploadInput!) { requestUpload(input: $i) { attachment { id } } }",
            json!({ "i": { "draftId": draft, "document": "sachkundenachweis", "filename": "a.pdf",
                           "contentType": "application/pdf", "sizeBytes": 100,
                           "sha256": "0".repeat(64) } }),
        )
        .await;
    assert_code(&resp, "INSUFFICIENT_ASSURANCE");
    assert_eq!(count(&app, "attachments").await, 0);

    // With the Online-Ausweis it works.
    let high = idp.id_token(json!({ "acr": "STORK-QAA-Level-4" }));
    let resp = save(&app, Some(&high)).await;
    let draft = str_at(&data(&resp)["saveDraft"]["draft"], "id");
    let (status, resp) = upload_file(
        &app,
        TOWN,
        Some(&high),
        json!({ "draftId": draft, "document": "sachkundenachweis" }),
        "sachkunde.pdf",
        "application/pdf",
        pdf("Sachkunde"),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    data(&resp);
    assert_eq!(count(&app, "attachments").await, 1);
}

#[tokio::test]
async fn the_bpk2_is_the_stable_subject_and_the_postbox_handle_is_kept_for_replies() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    idp_town(&app, &idp).await;
    let bundid = |sub: &str| {
        idp.id_token(json!({
            "sub": sub,
            "urn:oid:1.3.6.1.4.1.25484.494450.3": "bPK2-DE-0815",
            "urn:oid:2.5.4.18": "postkorb-4711",
            "urn:oid:1.2.40.0.10.2.1.1.261.94": "STORK-QAA-Level-4",
        }))
    };
    // A temporary eID sign-in (no account: a new `sub` each time) submits...
    let first = bundid("transient-1");
    let resp = submit(&app, Some(&first)).await;
    let id = str_at(&data(&resp)["submitApplication"]["application"], "id");
    let me = app
        .gql(
            Some(TOWN),
            Some(&first),
            "{ me { id assuranceLevel } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&me)["me"]["id"], "bPK2-DE-0815");
    assert_eq!(data(&me)["me"]["assuranceLevel"], "HIGH");

    // ...and the next sign-in, with another `sub` but the same bPK2, finds the application.
    let second = bundid("transient-2");
    assert_eq!(mine(&app, &second).await, (0, 1));
    let resp = app
        .gql(Some(TOWN), Some(&second), "{ exportMyData }", json!({}))
        .await;
    let exported = &data(&resp)["exportMyData"]["applications"][0];
    assert_eq!(exported["id"], id.as_str());
    assert_eq!(exported["postboxHandle"], "postkorb-4711");
    assert_eq!(exported["assuranceLevel"], "high");

    // Someone else's bPK2 does not.
    let other = idp.id_token(json!({ "sub": "transient-1", "bPK2": "bPK2-DE-9999" }));
    assert_eq!(mine(&app, &other).await, (0, 0));

    // A bPK2 claim that is no identifier makes the token unusable, not someone else's.
    let broken = idp.id_token(json!({ "bPK2": "" }));
    assert_code(
        &app.gql(Some(TOWN), Some(&broken), "{ me { id } }", json!({}))
            .await,
        "UNAUTHENTICATED",
    );
}
