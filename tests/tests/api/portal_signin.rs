//! Citizen sign-in in the portal: the authorization code flow with PKCE against a local
//! provider that speaks it as Keycloak does ([`FakeIdp`]), "My applications", and every way a
//! sign-in can come back wrong.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{FakeIdp, TestApp, data, spawn_app_with};
use crate::portal::{Browser, OWNER, Page, assert_safe_page, start_dog_tax, submit_draft, with};

/// The demo tenants, with Musterstadt's citizens signing in at `idp`.
async fn app_with_login(idp: &FakeIdp) -> (TestApp, tempfile::TempDir) {
    let tenants = idp.tenants_dir_with_login("musterstadt");
    let dir = tenants.path().to_owned();
    let app = spawn_app_with(|s| s.tenants_dir = Some(dir)).await;
    (app, tenants)
}

/// The query parameter `name` of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The provider's answer to an authorization request: where it sends the browser back.
async fn authorize(url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND, "{url}");
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Signs `b` in through the portal from `login` (a `/login?next=…` path); the callback's answer.
async fn sign_in(app: &TestApp, b: &mut Browser<'_>, login: &str) -> Page {
    let to_provider = b.get(login).await;
    assert_eq!(
        to_provider.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_provider.body
    );
    let back = authorize(&to_provider.location()).await;
    let path = back.trim_start_matches(&app.base_url).to_owned();
    assert!(path.starts_with("/t/musterstadt/login/callback?"), "{back}");
    b.get(&path).await
}

#[tokio::test]
async fn a_citizen_signs_in_with_the_municipalitys_provider_and_finds_their_applications() {
    let idp = FakeIdp::start().await;
    let (app, _tenants) = app_with_login(&idp).await;
    let mut b = Browser::new(&app);

    // Signed out: the header offers the sign-in; "My applications" asks for it first.
    let start = b.visit("/t/musterstadt/").await;
    assert_eq!(
        start.attr(".ap-signin", "href").as_deref(),
        Some("/t/musterstadt/login?next=%2Ft%2Fmusterstadt%2F")
    );
    let mine = b.get("/t/musterstadt/my").await;
    assert_eq!(mine.status, StatusCode::SEE_OTHER);
    let login = mine.location();
    assert_eq!(login, "/t/musterstadt/login?next=%2Ft%2Fmusterstadt%2Fmy");

    // To the provider: authorization code with PKCE (S256), state and nonce, our callback.
    let to_provider = b.get(&login).await;
    assert_eq!(to_provider.status, StatusCode::SEE_OTHER);
    let url = to_provider.location();
    assert!(
        url.starts_with(&format!("{}/protocol/openid-connect/auth?", idp.issuer)),
        "{url}"
    );
    assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&url, "client_id").as_deref(), Some("amtsplatz"));
    assert_eq!(
        param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&url, "code_challenge").map(|c| c.len()), Some(43));
    assert!(param(&url, "state").is_some_and(|s| s.len() >= 16));
    assert!(param(&url, "nonce").is_some_and(|s| s.len() >= 16));
    assert_eq!(
        param(&url, "redirect_uri"),
        Some(format!("{}/t/musterstadt/login/callback", app.base_url))
    );
    let scope = param(&url, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "openid"), "{scope}");
    let pending = to_provider
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ap_oidc="))
        .expect("the pending sign-in's cookie");
    assert!(
        pending.contains("HttpOnly") && pending.contains("SameSite=Lax"),
        "{pending}"
    );
    assert!(pending.contains("Path=/t/musterstadt/login"), "{pending}");

    // Back with the code: signed in, and on to where the citizen wanted to go.
    let back = authorize(&url).await;
    let signed_in = b.get(back.trim_start_matches(&app.base_url)).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/t/musterstadt/my");
    assert_eq!(idp.redeemed.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(b.cookies.contains_key("ap_citizen"));
    assert!(
        !b.cookies.contains_key("ap_oidc"),
        "the pending sign-in is used up"
    );
    let mine = b.visit("/t/musterstadt/my").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_safe_page(&mine);
    assert_eq!(mine.texts("h1"), ["Meine Anträge"]);
    assert!(mine.texts(".ap-account__name")[0].contains("Erika Mustermann"));
    assert!(
        mine.body
            .contains("Sie haben keine gespeicherten Entwürfe.")
    );

    // A draft started while signed in belongs to the citizen: no resume link to keep, it is
    // listed under "My applications".
    let (draft, step) = start_dog_tax(&mut b).await;
    assert!(
        !b.cookies.contains_key("ap_draft"),
        "no access token for a signed-in draft"
    );
    let csrf = step.csrf();
    let saved = b
        .post(
            &format!("{draft}/steps/halter"),
            &with(&csrf, "save", OWNER),
        )
        .await;
    let saved = b.visit(&saved.location()).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(saved.attr("#resume-link", "value").is_none());
    assert!(saved.body.contains("Meine Anträge"));
    let mine = b.visit("/t/musterstadt/my").await;
    assert_eq!(
        mine.attr("#main table a", "href").as_deref(),
        Some(draft.as_str())
    );
    let listed = mine.texts("#main table a");
    assert!(listed[0].contains("Hundesteuer"), "{listed:?}");

    // Another citizen, signed in at the same provider, sees none of it.
    *idp.login_as.lock().unwrap() = json!({ "sub": "citizen-0815", "name": "Max Muster" });
    let mut other = Browser::new(&app);
    let ok = sign_in(
        &app,
        &mut other,
        "/t/musterstadt/login?next=%2Ft%2Fmusterstadt%2Fmy",
    )
    .await;
    assert_eq!(ok.location(), "/t/musterstadt/my");
    let theirs = other.visit("/t/musterstadt/my").await;
    assert!(theirs.texts(".ap-account__name")[0].contains("Max Muster"));
    assert!(
        theirs
            .body
            .contains("Sie haben keine gespeicherten Entwürfe.")
    );
    let foreign = other.get(&format!("{draft}/steps/halter")).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);

    // The citizen completes the application; it then appears with its reference and status.
    let resumed = b.visit(&draft).await;
    assert_eq!(resumed.status, StatusCode::OK);
    let steps: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "hund",
            vec![
                ("breed", "Dackel"),
                ("listed_breed", "false"),
                ("date_acquired", "2026-11-01"),
                ("hund_name", "Waldi"),
                ("dog_count", "1"),
            ],
        ),
        (
            "bankverbindung",
            vec![
                ("iban", "DE02120300000000202051"),
                ("account_holder", "Erika Mustermann"),
            ],
        ),
    ];
    for (key, fields) in steps {
        let next = b
            .post(
                &format!("{draft}/steps/{key}"),
                &with(&csrf, "next", &fields),
            )
            .await;
        assert_eq!(next.status, StatusCode::SEE_OTHER, "{key}: {}", next.body);
    }
    let confirmation = submit_draft(&mut b, &draft, &csrf).await;
    let reference = confirmation.texts(".ap-reference").remove(0);
    assert!(
        confirmation.attr("#status-link", "value").is_none(),
        "no token to keep"
    );
    let mine = b.visit("/t/musterstadt/my").await;
    assert!(
        mine.body
            .contains("Sie haben keine gespeicherten Entwürfe.")
    );
    assert_eq!(
        mine.texts("td.ap-reference"),
        std::slice::from_ref(&reference)
    );
    let status_path = mine
        .attr("table a[href*='/applications/']", "href")
        .expect("the application's link");
    let status = b.visit(&status_path).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_eq!(
        status.texts("dd.ap-reference"),
        std::slice::from_ref(&reference)
    );
    assert_eq!(other.get(&status_path).await.status, StatusCode::NOT_FOUND);

    // The API answers the same: the citizen's application, no drafts left.
    let token = idp.id_token(json!({}));
    let resp = app
        .gql(
            Some("musterstadt"),
            Some(&token),
            "{ myApplications { nodes { reference serviceSlug } } myDrafts { nodes { id } } }",
            json!({}),
        )
        .await;
    let d = data(&resp);
    assert_eq!(
        d["myApplications"]["nodes"][0]["reference"],
        reference.as_str()
    );
    assert_eq!(d["myApplications"]["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(d["myDrafts"]["nodes"], json!([]));

    // Signing out forgets the sign-in here.
    let page = b.visit("/t/musterstadt/my").await;
    let out = b
        .post("/t/musterstadt/logout", &[("_csrf", &page.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/t/musterstadt/");
    assert!(!b.cookies.contains_key("ap_citizen"));
    assert_eq!(
        b.get("/t/musterstadt/my").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get(&status_path).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn my_applications_in_the_api_are_for_signed_in_citizens_only() {
    let idp = FakeIdp::start().await;
    let (app, _tenants) = app_with_login(&idp).await;
    let query = "{ myApplications { nodes { id } } myDrafts { nodes { id } } }";
    let anonymous = app.gql(Some("musterstadt"), None, query, json!({})).await;
    crate::helpers::assert_code(&anonymous, "UNAUTHENTICATED");
    let admin = app
        .login(
            Some("musterstadt"),
            ("admin@musterstadt.example", "musterstadt-admin"),
        )
        .await;
    let staff = app
        .gql(Some("musterstadt"), Some(&admin.access), query, json!({}))
        .await;
    crate::helpers::assert_code(&staff, "FORBIDDEN");
    // Musterstadt's provider is not Beispielhausen's: its citizens are strangers there.
    let token = idp.id_token(json!({}));
    let elsewhere = app
        .gql(Some("beispielhausen"), Some(&token), query, json!({}))
        .await;
    crate::helpers::assert_code(&elsewhere, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_sign_in_that_comes_back_wrong_signs_nobody_in() {
    use std::sync::atomic::Ordering::SeqCst;
    let idp = FakeIdp::start().await;
    let (app, _tenants) = app_with_login(&idp).await;
    let callback = "/t/musterstadt/login/callback";

    // No sign-in was started in this browser.
    let mut b = Browser::new(&app);
    let page = b
        .get(&format!("{callback}?code=made-up&state=made-up"))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_safe_page(&page);
    assert_eq!(page.texts("h1"), ["Anmeldung nicht abgeschlossen"]);
    assert!(!b.cookies.contains_key("ap_citizen"));

    // A state that is not this browser's: refused before the code is even redeemed.
    let to_provider = b.get("/t/musterstadt/login").await;
    let back = authorize(&to_provider.location()).await;
    let code = param(&back, "code").unwrap();
    let page = b.get(&format!("{callback}?code={code}&state=forged")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(idp.redeemed.load(SeqCst) + idp.refused.load(SeqCst), 0);
    // …and the pending sign-in is used up by the attempt: the right answer comes too late.
    let late = b.get(back.trim_start_matches(&app.base_url)).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(!b.cookies.contains_key("ap_citizen"));

    // A code obtained in another browser (injected into the victim's callback with the
    // victim's state): the provider refuses it, as the PKCE verifier does not match.
    let mut victim = Browser::new(&app);
    let victims = victim.get("/t/musterstadt/login").await;
    let victim_state = param(&victims.location(), "state").unwrap();
    let mut attacker = Browser::new(&app);
    let attackers = attacker.get("/t/musterstadt/login").await;
    let attacker_code = param(&authorize(&attackers.location()).await, "code").unwrap();
    let injected = victim
        .get(&format!(
            "{callback}?code={attacker_code}&state={victim_state}"
        ))
        .await;
    assert_eq!(
        injected.status,
        StatusCode::BAD_REQUEST,
        "{}",
        injected.body
    );
    assert_eq!(idp.refused.load(SeqCst), 1);
    assert!(!victim.cookies.contains_key("ap_citizen"));

    // An ID token with another request's nonce (a replay) is refused.
    *idp.login_as.lock().unwrap() = json!({ "nonce": "from-another-sign-in" });
    let mut c = Browser::new(&app);
    let replayed = sign_in(&app, &mut c, "/t/musterstadt/login").await;
    assert_eq!(replayed.status, StatusCode::BAD_REQUEST);
    assert!(!c.cookies.contains_key("ap_citizen"));

    // A provider that signs for another client: refused too.
    *idp.login_as.lock().unwrap() = json!({ "aud": "someone-else" });
    let mut d = Browser::new(&app);
    let foreign = sign_in(&app, &mut d, "/t/musterstadt/login").await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(!d.cookies.contains_key("ap_citizen"));

    // `next` never leads off the site.
    *idp.login_as.lock().unwrap() = json!({});
    for next in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2Ft%2Fexempelburg%2F",
    ] {
        let mut e = Browser::new(&app);
        let ok = sign_in(&app, &mut e, &format!("/t/musterstadt/login?next={next}")).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        assert_eq!(ok.location(), "/t/musterstadt/my", "next={next}");
    }

    // A municipality without a provider has no sign-in.
    let mut f = Browser::new(&app);
    let none = f.visit("/t/beispielhausen/").await;
    assert!(none.attr(".ap-signin", "href").is_none());
    assert_eq!(
        f.get("/t/beispielhausen/login").await.status,
        StatusCode::NOT_FOUND
    );
    // One whose provider cannot be reached says so, and the portal stays usable.
    let down = f.get("/t/exempelburg/login").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_safe_page(&down);
    assert_eq!(down.texts("h1"), ["Anmeldung zurzeit nicht möglich"]);
    assert_eq!(f.get("/t/exempelburg/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_sign_in_ends_quietly_and_asks_to_sign_in_again_where_it_is_needed() {
    let idp = FakeIdp::start().await;
    let (app, _tenants) = app_with_login(&idp).await;
    // A draft of the signed-in citizen, made through the API.
    let token = idp.id_token(json!({}));
    let resp = app
        .gql(
            Some("musterstadt"),
            Some(&token),
            "mutation { saveDraft(input: {serviceSlug: \"hundesteuer\", data: {}}) { draft { id } accessToken } }",
            json!({}),
        )
        .await;
    let saved = &data(&resp)["saveDraft"];
    assert!(saved["accessToken"].is_null());
    let id = saved["draft"]["id"].as_str().unwrap().to_owned();

    let now = chrono::Utc::now().timestamp();
    let expired = idp.id_token(json!({ "exp": now - 120, "iat": now - 420 }));
    let mut b = Browser::new(&app);
    b.cookies.insert("ap_citizen".into(), expired);
    // A public page goes on anonymously, and the stale cookie is removed.
    let start = b.get("/t/musterstadt/").await;
    assert_eq!(start.status, StatusCode::OK);
    assert!(start.attr(".ap-signin", "href").is_some());
    assert!(!b.cookies.contains_key("ap_citizen"));
    // The draft needs the sign-in: to the sign-in, and back to the draft afterwards.
    b.cookies.insert(
        "ap_citizen".into(),
        idp.id_token(json!({ "exp": now - 120 })),
    );
    let step = format!("/t/musterstadt/drafts/{id}/steps/halter");
    let again = b.get(&step).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(
        again.location(),
        format!(
            "/t/musterstadt/login?next={}",
            step.replace('/', "%2F").replace('-', "%2D")
        )
    );
    let back = sign_in(&app, &mut b, &again.location()).await;
    assert_eq!(back.location(), step);
    assert_eq!(b.get(&step).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_citizen_signed_in_below_the_services_level_is_told_so_and_nothing_is_saved() {
    let idp = FakeIdp::start().await;
    let (app, _tenants) = app_with_login(&idp).await;
    // Musterstadt's dog tax requires the Online-Ausweis (eIDAS high).
    let admin = app
        .login(Some(crate::helpers::MUSTER), crate::helpers::MUSTER_ADMIN)
        .await;
    let c = app.caller(crate::helpers::MUSTER, &admin);
    let resp = c
        .gql("query { service(slug: \"hundesteuer\") { id } }", json!({}))
        .await;
    let id = crate::helpers::str_at(&data(&resp)["service"], "id");
    data(&c
        .gql(
            "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { revision } } }",
            json!({ "i": { "serviceId": id, "note": "eID", "changes": [{ "setAssuranceLevel": { "level": "HIGH" } }] } }),
        )
        .await);

    // Anonymous visitors are asked to sign in first, and come back to the service.
    let mut anonymous = Browser::new(&app);
    let service = anonymous.visit("/t/musterstadt/services/hundesteuer").await;
    let csrf = service.csrf();
    let to_sign_in = anonymous
        .post(
            "/t/musterstadt/services/hundesteuer/apply",
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(
        to_sign_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_sign_in.body
    );
    assert_eq!(
        to_sign_in.location(),
        "/t/musterstadt/login?next=%2Ft%2Fmusterstadt%2Fservices%2Fhundesteuer"
    );

    // Signed in with user name and password (BundID's Basisregistrierung).
    *idp.login_as.lock().unwrap() =
        json!({ "urn:oid:1.2.40.0.10.2.1.1.261.94": "STORK-QAA-Level-1" });
    let mut b = Browser::new(&app);
    let ok = sign_in(
        &app,
        &mut b,
        "/t/musterstadt/login?next=%2Ft%2Fmusterstadt%2Fmy",
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let service = b.visit("/t/musterstadt/services/hundesteuer").await;
    let csrf = service.csrf();
    let refused = b
        .post(
            "/t/musterstadt/services/hundesteuer/apply",
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.contains("Höheres Vertrauensniveau nötig"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("Online-Ausweis"), "{}", refused.body);
    assert_safe_page(&refused);
    let mine = b.visit("/t/musterstadt/my").await;
    assert!(
        mine.body
            .contains("Sie haben keine gespeicherten Entwürfe."),
        "{}",
        mine.body
    );

    // In English too.
    let refused = b
        .post(
            "/t/musterstadt/services/hundesteuer/apply?lang=en",
            &[("_csrf", &csrf)],
        )
        .await;
    assert!(
        refused.body.contains("Higher level of assurance needed"),
        "{}",
        refused.body
    );
}
