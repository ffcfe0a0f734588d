//! The citizen portal's pages, driven like a browser without JavaScript: plain GETs and form
//! POSTs with the cookies the server sets, asserting on status codes, the HTML (parsed with
//! html5ever via `scraper`) and on what the API then reads back.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use scraper::{Html, Selector};
use serde_json::json;

use crate::helpers::{TestApp, big_pdf, data, pdf, spawn_app, spawn_app_with, str_at};
use futures_util::StreamExt as _;

/// A browser without JavaScript: keeps cookies, follows nothing by itself.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub(crate) cookies: HashMap<String, String>,
}

pub(crate) struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub(crate) fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    pub(crate) fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("a redirect, got {} {}", self.status, self.body))
            .to_owned()
    }

    /// Texts of the elements matching `css`.
    pub(crate) fn texts(&self, css: &str) -> Vec<String> {
        let sel = Selector::parse(css).expect("selector");
        self.html()
            .select(&sel)
            .map(|e| {
                e.text()
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    pub(crate) fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let sel = Selector::parse(css).expect("selector");
        self.html()
            .select(&sel)
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_owned))
    }

    pub(crate) fn csrf(&self) -> String {
        self.attr("input[name=_csrf]", "value")
            .expect("a CSRF field")
    }
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.app.base_url)
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, resp: reqwest::Response) -> Page {
        for value in resp.headers().get_all(SET_COOKIE) {
            let raw = value.to_str().expect("ascii cookie");
            let (pair, attrs) = raw.split_once(';').unwrap_or((raw, ""));
            let (name, val) = pair.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") || val.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), val.to_owned());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.take(resp).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let resp = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("POST");
        self.take(resp).await
    }

    async fn upload(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, Vec<u8>, &str),
    ) -> Page {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text((*k).to_owned(), (*v).to_owned());
        }
        let part = reqwest::multipart::Part::bytes(file.1)
            .file_name(file.0.to_owned())
            .mime_str(file.2)
            .unwrap();
        form = form.part("file", part);
        let resp = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .multipart(form)
            .send()
            .await
            .expect("POST multipart");
        self.take(resp).await
    }

    /// GETs `path`, following redirects; the final page.
    pub(crate) async fn visit(&mut self, path: &str) -> Page {
        let mut page = self.get(path).await;
        let mut hops = 0;
        while page.status == StatusCode::SEE_OTHER || page.status == StatusCode::PERMANENT_REDIRECT
        {
            hops += 1;
            assert!(hops < 5, "too many redirects");
            let to = page.location();
            page = self.get(&to).await;
        }
        page
    }
}

/// Every page: the security headers, and no script the policy would have to allow inline.
pub(crate) fn assert_safe_page(page: &Page) {
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .expect("a Content-Security-Policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
    let html = page.html();
    for script in html.select(&Selector::parse("script").unwrap()) {
        assert!(
            script.value().attr("src").is_some(),
            "inline script: {}",
            script.html()
        );
        assert!(script.text().collect::<String>().trim().is_empty());
    }
    let attrs_with_handlers = html
        .select(&Selector::parse("*").unwrap())
        .flat_map(|e| {
            e.value()
                .attrs()
                .map(|(k, _)| k.to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|k| k.starts_with("on") || k == "style")
        .count();
    assert_eq!(attrs_with_handlers, 0, "inline handlers or styles");
    // Every form that posts carries the CSRF token.
    for form in html.select(&Selector::parse("form[method=post]").unwrap()) {
        assert!(
            form.select(&Selector::parse("input[name=_csrf]").unwrap())
                .next()
                .is_some(),
            "a form without CSRF token: {}",
            form.html()
        );
    }
}

#[tokio::test]
async fn the_start_page_lists_live_services_by_topic_and_searches_them() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let page = b.visit("/t/musterstadt").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_safe_page(&page);
    assert_eq!(page.attr("html", "lang").as_deref(), Some("de"));
    assert!(page.texts("h1")[0].contains("Stadt Musterstadt"));
    let links = page.texts(".ap-services a");
    assert!(
        links.contains(&"Hund zur Hundesteuer anmelden".to_owned()),
        "{links:?}"
    );
    assert_eq!(
        page.attr(".ap-services a[href$='/services/hundesteuer']", "href")
            .as_deref(),
        Some("/t/musterstadt/services/hundesteuer")
    );
    assert!(page.texts("h3").contains(&"Steuern und Abgaben".to_owned()));

    let found = b.visit("/t/musterstadt/?q=Hundesteuer").await;
    let links = found.texts(".ap-services a");
    assert_eq!(links, ["Hund zur Hundesteuer anmelden"], "{}", found.body);
    let none = b.visit("/t/musterstadt/?q=Raumfahrt").await;
    assert!(none.texts(".ap-services a").is_empty());
    assert!(none.body.contains("Keine passende Leistung gefunden."));

    // The other municipality's portal shows its own services only.
    let other = b.visit("/t/beispielhausen/?q=Hundesteuer").await;
    assert!(other.texts(".ap-services a").is_empty(), "{}", other.body);

    let english = b.visit("/t/musterstadt/?lang=en").await;
    assert_eq!(english.attr("html", "lang").as_deref(), Some("en"));
    assert!(
        english
            .texts("h2")
            .contains(&"Services by topic".to_owned())
    );
    // Services in English where their content has it (German otherwise).
    let links = english.texts(".ap-services a");
    assert!(
        links.contains(&"Register a dog for dog tax".to_owned()),
        "{links:?}"
    );
    assert!(!links.contains(&"Hund zur Hundesteuer anmelden".to_owned()));
    // The choice is remembered.
    let again = b.visit("/t/musterstadt/").await;
    assert_eq!(again.attr("html", "lang").as_deref(), Some("en"));
}

#[tokio::test]
async fn the_platform_index_lists_the_municipalities_portals() {
    let app = spawn_app().await;
    let page = Browser::new(&app).visit("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_safe_page(&page);
    let names = page.texts(".ap-municipalities a");
    assert!(names.contains(&"Stadt Musterstadt".to_owned()), "{names:?}");
    assert_eq!(
        page.attr(".ap-municipalities a[href='/t/musterstadt/']", "href")
            .as_deref(),
        Some("/t/musterstadt/")
    );
}

#[tokio::test]
async fn a_service_page_shows_fees_documents_appointment_and_the_office_in_both_languages() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let page = b.visit("/t/musterstadt/services/hundesteuer").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_safe_page(&page);
    assert_eq!(page.texts("h1"), ["Hund zur Hundesteuer anmelden"]);
    let fees = page.texts(".ap-fees td");
    // Musterstadt's own rate (overlay: 120 € instead of 96 €) and the listed-breed surcharge.
    assert_eq!(fees, ["120,00 €", "600,00 €"]);
    assert!(page.texts(".ap-fees th")[0].contains("× Anzahl der Hunde"));
    assert!(page.body.contains("Sachkundenachweis"));
    // Routing sends every application to the treasury here (overlay), with its contact.
    assert!(page.body.contains("Stadtkasse"), "{}", page.body);
    assert!(page.body.contains("Sie müssen nicht vorbeikommen."));

    let en = b.visit("/t/musterstadt/services/hundesteuer?lang=en").await;
    assert_eq!(en.texts("h1"), ["Register a dog for dog tax"]);
    assert_eq!(en.texts(".ap-fees td"), ["€120.00", "€600.00"]);
    assert!(en.body.contains("Certificate of competence"));

    let appointment = b
        .visit("/t/musterstadt/services/meldebescheinigung?lang=de")
        .await;
    assert!(
        appointment
            .body
            .contains("Auf Wunsch können Sie nach dem Antrag einen Termin")
    );

    let missing = b.visit("/t/musterstadt/services/gibt-es-nicht").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_safe_page(&missing);
    assert!(missing.body.contains("Seite nicht gefunden"));
    let no_tenant = b.visit("/t/nirgendwo/").await;
    assert_eq!(no_tenant.status, StatusCode::NOT_FOUND);
}

/// Starts an application for `slug` of `tenant` from its service page: the form's CSRF token
/// and the new draft's path.
pub(crate) async fn start_application(
    b: &mut Browser<'_>,
    tenant: &str,
    slug: &str,
) -> (String, String) {
    let service = b.visit(&format!("/t/{tenant}/services/{slug}")).await;
    assert_eq!(service.status, StatusCode::OK, "{tenant}/{slug}");
    let csrf = service.csrf();
    let started = b
        .post(
            &format!("/t/{tenant}/services/{slug}/apply"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let draft = started.location();
    assert!(
        draft.starts_with(&format!("/t/{tenant}/drafts/")),
        "{draft}"
    );
    (csrf, draft)
}

/// Starts an application for the dog tax; the first step's page.
pub(crate) async fn start_dog_tax(b: &mut Browser<'_>) -> (String, Page) {
    let (_, draft) = start_application(b, "musterstadt", "hundesteuer").await;
    let step = b.visit(&draft).await;
    (draft, step)
}

/// Submits `draft` from its review page; the confirmation page it leads to.
pub(crate) async fn submit_draft(b: &mut Browser<'_>, draft: &str, csrf: &str) -> Page {
    let submitted = b.post(&format!("{draft}/submit"), &[("_csrf", csrf)]).await;
    assert_eq!(
        submitted.status,
        StatusCode::SEE_OTHER,
        "{}",
        submitted.body
    );
    let confirmation = b.visit(&submitted.location()).await;
    assert_eq!(confirmation.status, StatusCode::OK, "{}", confirmation.body);
    confirmation
}

pub(crate) const OWNER: &[(&str, &str)] = &[
    ("name", "Erika Mustermann"),
    ("street", "Hauptstraße 1"),
    ("postcode", "12345"),
    ("city", "Musterstadt"),
    ("email", "erika@example.org"),
];

pub(crate) fn with<'a>(
    csrf: &'a str,
    action: &'a str,
    fields: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("_csrf", csrf), ("_action", action)];
    form.extend_from_slice(fields);
    form
}

#[tokio::test]
async fn a_citizen_applies_without_javascript_from_the_service_page_to_the_confirmation() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (draft, step) = start_dog_tax(&mut b).await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert_safe_page(&step);
    assert_eq!(step.texts("h1"), ["Halterin oder Halter"]);
    assert!(step.texts(".kern-preline")[0].contains("Schritt 1 von 3"));
    assert_eq!(
        step.attr("#f-postcode", "name").as_deref(),
        Some("postcode")
    );
    assert_eq!(step.attr("#f-email", "type").as_deref(), Some("email"));
    assert_eq!(
        step.attr("#f-email", "autocomplete").as_deref(),
        Some("email")
    );
    let csrf = step.csrf();
    let halter = format!("{draft}/steps/halter");

    // Missing postcode, wrong email: the step comes back with both errors, at the fields and
    // in the summary, in German, and keeps what was typed.
    let wrong = b
        .post(
            &halter,
            &with(
                &csrf,
                "next",
                &[
                    ("name", "Erika Mustermann"),
                    ("street", "Hauptstraße 1"),
                    ("city", "Musterstadt"),
                    ("email", "keine-mail"),
                ],
            ),
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_safe_page(&wrong);
    let summary = wrong.texts("#error-summary a");
    assert!(
        summary.contains(&"Bitte geben Sie „Postleitzahl“ an.".to_owned()),
        "{summary:?}"
    );
    assert!(
        summary.iter().any(|s| s.contains("E-Mail-Adresse")),
        "{summary:?}"
    );
    assert_eq!(
        wrong
            .attr("#error-summary a[href$='#f-postcode']", "href")
            .as_deref(),
        Some("#f-postcode")
    );
    assert_eq!(
        wrong.attr("#f-email", "aria-invalid").as_deref(),
        Some("true")
    );
    assert!(
        wrong
            .attr("#f-email", "aria-describedby")
            .unwrap()
            .contains("f-email-error")
    );
    assert_eq!(
        wrong.attr("#f-email", "value").as_deref(),
        Some("keine-mail")
    );
    assert!(wrong.texts("title")[0].starts_with("Fehler:"));

    let ok = b.post(&halter, &with(&csrf, "next", OWNER)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), format!("{draft}/steps/hund"));

    // A number that is no number is named as such.
    let hund = format!("{draft}/steps/hund");
    let dog = [
        ("breed", "Dackel"),
        ("listed_breed", "false"),
        ("date_acquired", "2026-11-01"),
        ("hund_name", "Waldi"),
    ];
    let mut bad = dog.to_vec();
    bad.push(("dog_count", "zwei"));
    let wrong = b.post(&hund, &with(&csrf, "next", &bad)).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        wrong.texts("#error-summary a"),
        ["Geben Sie bei „Anzahl der Hunde“ eine ganze Zahl zwischen 1 und 20 ein."]
    );
    let mut good = dog.to_vec();
    good.push(("dog_count", "2"));
    let ok = b.post(&hund, &with(&csrf, "next", &good)).await;
    assert_eq!(ok.location(), format!("{draft}/steps/bankverbindung"));
    let ok = b
        .post(
            &format!("{draft}/steps/bankverbindung"),
            &with(
                &csrf,
                "next",
                &[
                    ("iban", "DE02120300000000202051"),
                    ("account_holder", "Erika Mustermann"),
                ],
            ),
        )
        .await;
    assert_eq!(ok.location(), format!("{draft}/review"));

    // The review shows every answer and the fees the server computes for them.
    let review = b.visit(&format!("{draft}/review")).await;
    assert_eq!(review.status, StatusCode::OK);
    assert_safe_page(&review);
    let values = review.texts(".kern-description-list-item__value");
    assert!(
        values.iter().any(|v| v.starts_with("01.11.2026")),
        "{values:?}"
    );
    assert!(values.iter().any(|v| v.starts_with("Nein")), "{values:?}");
    assert_eq!(review.texts(".ap-total"), ["240,00 €"]);
    assert_eq!(
        review.attr(".ap-change", "href").as_deref(),
        Some(format!("{draft}/steps/halter#f-name").as_str())
    );

    let confirmation = submit_draft(&mut b, &draft, &csrf).await;
    assert_safe_page(&confirmation);
    let reference = confirmation.texts(".ap-reference").remove(0);
    assert!(reference.starts_with("MUSTERSTADT-"), "{reference}");
    let status_link = confirmation
        .attr("#status-link", "value")
        .expect("the status link");
    assert!(status_link.contains("/access?token="), "{status_link}");
    assert!(confirmation.body.contains("Hundesteuermarke"));

    // The draft is gone with the submission: its pages are not found any more.
    let gone = b.get(&format!("{draft}/review")).await;
    assert!(
        matches!(gone.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
        "{}",
        gone.status
    );

    // The status link works in another browser, and only there with the token.
    let mut other = Browser::new(&app);
    let path = status_link.trim_start_matches(&app.base_url).to_owned();
    let status = other.visit(&path).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    assert_safe_page(&status);
    assert_eq!(
        status.texts("dd.ap-reference"),
        std::slice::from_ref(&reference)
    );
    assert!(status.body.contains("Antrag eingegangen"));
    let app_path = path.split("/access").next().unwrap().to_owned();
    let stranger = Browser::new(&app).get(&app_path).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    let wrong_token = Browser::new(&app)
        .get(&format!("{app_path}/access?token=falsch"))
        .await;
    assert_eq!(wrong_token.status, StatusCode::NOT_FOUND);

    // What the API stores is what was typed, typed: the staff see the application.
    let admin = app
        .login(
            Some("musterstadt"),
            ("admin@musterstadt.example", "musterstadt-admin"),
        )
        .await;
    let resp = app
        .caller("musterstadt", &admin)
        .gql(
            "query($s: String) { applications(filter: {search: $s}) { nodes { reference data feeTotalCents } } }",
            json!({ "s": reference }),
        )
        .await;
    let nodes = &data(&resp)["applications"]["nodes"];
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{resp}");
    assert_eq!(nodes[0]["data"]["dog_count"], 2);
    assert_eq!(nodes[0]["data"]["listed_breed"], false);
    assert_eq!(nodes[0]["data"]["postcode"], "12345");
    assert_eq!(nodes[0]["feeTotalCents"], 24000);
}

#[tokio::test]
async fn save_and_continue_later_gives_a_resume_link_that_works_in_another_browser() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (draft, step) = start_dog_tax(&mut b).await;
    let csrf = step.csrf();
    // Saving for later stores even an incomplete step, without complaint.
    let saved = b
        .post(
            &format!("{draft}/steps/halter"),
            &with(&csrf, "save", &[("name", "Erika Mustermann")]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let page = b.visit(&saved.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_safe_page(&page);
    let link = page.attr("#resume-link", "value").expect("the resume link");
    assert!(
        link.starts_with(&app.base_url) && link.contains("/resume?token="),
        "{link}"
    );

    let mut other = Browser::new(&app);
    let path = link.trim_start_matches(&app.base_url).to_owned();
    let resumed = other.get(&path).await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER);
    // The token leaves the address at once; the cookie carries it, only on the draft's pages.
    assert!(!resumed.location().contains("token"));
    let cookie = resumed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("ap_draft="))
        .expect("the draft cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains(&format!("Path={draft}")), "{cookie}");
    let step = other.visit(&resumed.location()).await;
    assert_eq!(step.texts("h1"), ["Halterin oder Halter"]);
    assert_eq!(
        step.attr("#f-name", "value").as_deref(),
        Some("Erika Mustermann")
    );

    let wrong = Browser::new(&app)
        .get(&format!("{draft}/resume?token=falsch"))
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    let nobody = Browser::new(&app)
        .get(&format!("{draft}/steps/halter"))
        .await;
    assert_eq!(nobody.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_change_nothing() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (draft, step) = start_dog_tax(&mut b).await;
    let csrf = step.csrf();
    let halter = format!("{draft}/steps/halter");
    for form in [
        vec![("_action", "save"), ("name", "Angreifer")],
        vec![
            ("_csrf", "falsch"),
            ("_action", "save"),
            ("name", "Angreifer"),
        ],
    ] {
        let refused = b.post(&halter, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.body.contains("Formular abgelaufen"));
    }
    // The right token sent from another site's page is refused too.
    let cross = b
        .client
        .post(b.url(&halter))
        .header("cookie", b.cookie_header())
        .header("origin", "https://evil.example")
        .form(&with(&csrf, "save", &[("name", "Angreifer")]))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // An opaque origin (`Origin: null`) counts only when the browser says the form is our own.
    let opaque = |site: &'static str| {
        b.client
            .post(b.url(&halter))
            .header("cookie", b.cookie_header())
            .header("origin", "null")
            .header("sec-fetch-site", site)
            .form(&with(&csrf, "save", &[("name", "Angreifer")]))
            .send()
    };
    assert_eq!(
        opaque("same-site").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let page = b.visit(&halter).await;
    assert_eq!(page.attr("#f-name", "value").as_deref(), Some(""));
    // Our own form posted under `Referrer-Policy: no-referrer`, as browsers send it.
    let own = b
        .client
        .post(b.url(&halter))
        .header("cookie", b.cookie_header())
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&with(&csrf, "save", &[("name", "Erika Mustermann")]))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    // Starting an application needs the token as well.
    let start = b
        .post("/t/musterstadt/services/hundesteuer/apply", &[])
        .await;
    assert_eq!(start.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_set_only_http_only_same_site_cookies_and_serve_their_assets() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let page = b.get("/t/musterstadt/").await;
    let cookies: Vec<String> = page
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("ap_csrf="))
        .expect("the CSRF cookie");
    assert!(
        csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"),
        "{csrf}"
    );
    assert!(!csrf.contains("Secure"), "plain HTTP here: {csrf}");
    // The same cookie is kept, not renewed on every page.
    let again = b.get("/t/musterstadt/").await;
    assert!(
        again
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("ap_csrf="))
    );

    // Every stylesheet and script the page links is served from here.
    let html = page.html();
    let refs: Vec<String> = html
        .select(&Selector::parse("link[rel=stylesheet], script[src]").unwrap())
        .filter_map(|e| {
            e.value()
                .attr("href")
                .or(e.value().attr("src"))
                .map(str::to_owned)
        })
        .collect();
    assert!(refs.len() >= 3, "{refs:?}");
    for r in refs {
        assert!(r.starts_with('/'), "only our own assets: {r}");
        let asset = b.get(&r).await;
        assert_eq!(asset.status, StatusCode::OK, "{r}");
        if r.starts_with("/static/") {
            let etag = asset.headers["etag"].to_str().unwrap().to_owned();
            let cached = b
                .client
                .get(b.url(&r))
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap();
            assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{r}");
        }
    }
    let brand = b.get("/t/musterstadt/brand.css").await;
    assert!(brand.body.contains("#0a5c8a"), "{}", brand.body);
    assert_eq!(
        b.get("/static/nothing-here.css").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn graphiql_is_served_from_our_own_pinned_assets_and_needs_no_internet() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let page = b.get("/graphql").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = page.html();
    let refs: Vec<String> = html
        .select(&Selector::parse("link[href], script[src]").unwrap())
        .filter_map(|e| {
            e.value()
                .attr("href")
                .or(e.value().attr("src"))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(refs.len(), 3, "{refs:?}");
    for r in &refs {
        assert!(r.starts_with("/static/vendor/graphiql/"), "{r}");
        let asset = b.get(r).await;
        assert_eq!(asset.status, StatusCode::OK, "{r}");
        let ty = asset.headers["content-type"].to_str().unwrap();
        assert!(ty.contains("css") || ty.contains("javascript"), "{r}: {ty}");
        // Nothing in them is fetched from elsewhere at run time.
        assert!(
            !asset.body.contains("unpkg.com") && !asset.body.contains("cdn.jsdelivr"),
            "{r}"
        );
    }
    // The editor's workers, which init.js starts, are there too.
    for worker in ["editor", "json", "graphql"] {
        let w = b
            .get(&format!("/static/vendor/graphiql/{worker}.worker.js"))
            .await;
        assert_eq!(w.status, StatusCode::OK, "{worker}");
    }
    assert_eq!(
        page.attr("#graphiql", "data-endpoint").as_deref(),
        Some("/graphql")
    );
}

#[tokio::test]
async fn the_documents_a_service_asks_for_are_uploaded_at_their_place_with_errors_shown_there() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (draft, step) = start_dog_tax(&mut b).await;
    let csrf = step.csrf();
    b.post(
        &format!("{draft}/steps/halter"),
        &with(&csrf, "next", OWNER),
    )
    .await;
    let dog = [
        ("dog_count", "1"),
        ("breed", "Pitbull-Terrier"),
        ("listed_breed", "true"),
        ("date_acquired", "2026-11-01"),
    ];
    b.post(&format!("{draft}/steps/hund"), &with(&csrf, "next", &dog))
        .await;
    let last = b
        .post(
            &format!("{draft}/steps/bankverbindung"),
            &with(
                &csrf,
                "next",
                &[
                    ("iban", "DE02120300000000202051"),
                    ("account_holder", "Erika Mustermann"),
                ],
            ),
        )
        .await;
    // A listed breed needs the certificate of competence: the documents step comes next.
    assert_eq!(last.location(), format!("{draft}/documents"));
    let page = b.visit(&format!("{draft}/documents")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_safe_page(&page);
    assert_eq!(page.texts(".ap-document h2"), ["Sachkundenachweis"]);
    assert_eq!(
        page.attr("#file-sachkundenachweis", "accept").as_deref(),
        Some("application/pdf,image/jpeg,image/png")
    );
    let upload_form = "form[enctype='multipart/form-data']";
    assert!(
        page.attr(upload_form, "action")
            .unwrap()
            .ends_with("/documents")
    );

    // Going on without it names the missing document.
    let missing = b
        .post(&format!("{draft}/documents/next"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.texts("#error-summary a"),
        ["Laden Sie „Sachkundenachweis“ hoch."]
    );

    // A file of the wrong kind is refused at the document; nothing is attached.
    let fields = [("_csrf", csrf.as_str()), ("document", "sachkundenachweis")];
    let wrong = b
        .upload(
            &format!("{draft}/documents"),
            &fields,
            ("notiz.txt", b"nur Text".to_vec(), "text/plain"),
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.body
    );
    assert_safe_page(&wrong);
    assert_eq!(
        wrong.texts("#file-sachkundenachweis-error"),
        ["Fehler: Diese Datei hat kein erlaubtes Format. Erlaubt: PDF, JPEG, PNG."]
    );
    assert!(wrong.texts(".ap-filename").is_empty());
    // No CSRF token, no upload.
    let forged = b
        .upload(
            &format!("{draft}/documents"),
            &[("document", "sachkundenachweis")],
            ("a.pdf", pdf("x"), "application/pdf"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Uploaded, removed, uploaded again: the list follows.
    let ok = b
        .upload(
            &format!("{draft}/documents"),
            &fields,
            ("sachkunde.pdf", pdf("erste"), "application/pdf"),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let listed = b.visit(&format!("{draft}/documents")).await;
    assert_eq!(listed.texts(".ap-filename"), ["sachkunde.pdf"]);
    let attachment = listed.attr("input[name=attachment]", "value").unwrap();
    let removed = b
        .post(
            &format!("{draft}/documents/delete"),
            &[("_csrf", &csrf), ("attachment", &attachment)],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(
        b.visit(&format!("{draft}/documents"))
            .await
            .texts(".ap-filename")
            .is_empty()
    );
    b.upload(
        &format!("{draft}/documents"),
        &fields,
        ("nachweis.pdf", pdf("zweite"), "application/pdf"),
    )
    .await;

    let on = b
        .post(&format!("{draft}/documents/next"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(on.location(), format!("{draft}/review"));
    let review = b.visit(&on.location()).await;
    assert_eq!(
        review.texts(".ap-files li"),
        ["Sachkundenachweis: nachweis.pdf"]
    );
    // 120 € tax and the 600 € surcharge.
    assert_eq!(review.texts(".ap-total"), ["720,00 €"]);
    let submitted = b
        .post(&format!("{draft}/submit"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(
        submitted.status,
        StatusCode::SEE_OTHER,
        "{}",
        submitted.body
    );
    let confirmation = b.visit(&submitted.location()).await;
    let reference = confirmation.texts(".ap-reference").remove(0);

    // The application holds exactly the one file, for its document.
    let admin = app
        .login(
            Some("musterstadt"),
            ("admin@musterstadt.example", "musterstadt-admin"),
        )
        .await;
    let resp = app
        .caller("musterstadt", &admin)
        .gql(
            "query($s: String) { applications(filter: {search: $s}) { nodes { attachments { filename document } } } }",
            json!({ "s": reference }),
        )
        .await;
    assert_eq!(
        data(&resp)["applications"]["nodes"][0]["attachments"],
        json!([{ "filename": "nachweis.pdf", "document": "sachkundenachweis" }])
    );
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_at_its_document_without_storing_anything() {
    let app = spawn_app_with(|s| s.storage.multipart_max_bytes = 64 * 1024).await;
    let mut b = Browser::new(&app);
    let (draft, step) = start_dog_tax(&mut b).await;
    let csrf = step.csrf();
    b.post(
        &format!("{draft}/steps/hund"),
        &with(&csrf, "save", &[("listed_breed", "true")]),
    )
    .await;
    let fields = [("_csrf", csrf.as_str()), ("document", "sachkundenachweis")];
    let big = b
        .upload(
            &format!("{draft}/documents"),
            &fields,
            ("gross.pdf", big_pdf(200 * 1024), "application/pdf"),
        )
        .await;
    assert_eq!(big.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", big.body);
    let error = big.texts("#file-sachkundenachweis-error").remove(0);
    assert!(error.contains("Die Datei ist zu groß"), "{error}");
    assert!(
        b.visit(&format!("{draft}/documents"))
            .await
            .texts(".ap-filename")
            .is_empty()
    );
}

/// An application submitted through the API by an anonymous citizen, opened in a browser by
/// its status link; (application id, its page).
async fn submitted_application(app: &TestApp, b: &mut Browser<'_>) -> (String, String) {
    let resp = app
        .gql(
            Some("musterstadt"),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": crate::applications::dog(false) } }),
        )
        .await;
    let id = str_at(&data(&resp)["submitApplication"]["application"], "id");
    let token = str_at(&data(&resp)["submitApplication"], "accessToken");
    let page = format!("/t/musterstadt/applications/{id}");
    let opened = b.get(&format!("{page}/access?token={token}")).await;
    assert_eq!(opened.location(), page);
    (id, page)
}

#[tokio::test]
async fn the_applicant_writes_to_the_office_and_answers_its_request_from_the_status_page() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (id, page) = submitted_application(&app, &mut b).await;
    let status = b.visit(&page).await;
    assert_safe_page(&status);
    let csrf = status.csrf();
    assert!(
        status.attr("textarea#provide-message", "name").is_none(),
        "nothing was asked yet"
    );

    let empty = b
        .post(
            &format!("{page}/messages"),
            &[("_csrf", &csrf), ("body", "  ")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        empty.texts("#error-summary a"),
        ["Bitte schreiben Sie eine Nachricht."]
    );
    let sent = b
        .post(
            &format!("{page}/messages"),
            &[
                ("_csrf", &csrf),
                ("body", "Ist der Bescheid schon unterwegs?"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let status = b.visit(&page).await;
    assert!(
        status
            .texts(".ap-message--citizen p")
            .contains(&"Ist der Bescheid schon unterwegs?".to_owned())
    );

    // The office sees it, and asks for more information.
    let kasse = app
        .login(
            Some("musterstadt"),
            ("kasse@musterstadt.example", "musterstadt-kasse"),
        )
        .await;
    let office = app.caller("musterstadt", &kasse);
    let resp = office
        .gql(
            "query($id: ID!) { application(id: $id) { messages { sender body } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data(&resp)["application"]["messages"],
        json!([{ "sender": "citizen", "body": "Ist der Bescheid schon unterwegs?" }])
    );
    for to in ["in_review", "needs_info"] {
        let resp = office
            .gql(
                "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
                json!({ "i": { "id": id, "to": to, "comment": "Bitte Chipnummer nennen" } }),
            )
            .await;
        assert_eq!(
            data(&resp)["transitionApplication"]["application"]["state"],
            to,
            "{resp}"
        );
    }
    let asked = b.visit(&page).await;
    assert_safe_page(&asked);
    assert!(asked.texts(".ap-provide h2")[0].contains("weitere Angaben"));
    let answered = b
        .post(
            &format!("{page}/provide"),
            &[("_csrf", &csrf), ("message", "Chipnummer 276098106543210")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let resp = office
        .gql(
            "query($id: ID!) { application(id: $id) { state timeline { kind } } }",
            json!({ "id": id }),
        )
        .await;
    let kinds: Vec<String> = data(&resp)["application"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_at(e, "kind"))
        .collect();
    assert!(
        kinds.contains(&"information_provided".to_owned()),
        "{kinds:?}"
    );
    assert_ne!(data(&resp)["application"]["state"], "needs_info");
    // Without the application's cookie, no one writes in its name.
    let stranger = Browser::new(&app)
        .post(
            &format!("{page}/messages"),
            &[("_csrf", &csrf), ("body", "Fremd")],
        )
        .await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_status_page_streams_status_changes_while_it_is_open() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (id, page) = submitted_application(&app, &mut b).await;
    let status = b.visit(&page).await;
    assert_eq!(
        status.attr("#status", "data-state").as_deref(),
        Some("submitted")
    );
    assert_eq!(
        status.attr("#status", "data-events"),
        Some(format!("{page}/events"))
    );

    let resp = b
        .client
        .get(b.url(&format!("{page}/events")))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = resp.bytes_stream();
    let mut seen = String::new();
    let mut next_event = async || loop {
        if let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            return event;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    };
    let first = next_event().await;
    assert!(first.starts_with("event: status\n"), "{first}");
    assert!(first.contains("\"state\":\"submitted\""), "{first}");

    let kasse = app
        .login(
            Some("musterstadt"),
            ("kasse@musterstadt.example", "musterstadt-kasse"),
        )
        .await;
    app.caller("musterstadt", &kasse)
        .gql(
            "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
            json!({ "i": { "id": id, "to": "in_review" } }),
        )
        .await;
    let second = next_event().await;
    assert!(second.contains("\"state\":\"in_review\""), "{second}");

    // Without the application's cookie the stream says nothing but that it ends.
    let stranger = reqwest::get(format!("{}{page}/events", app.base_url))
        .await
        .unwrap();
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), stranger.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("event: end"), "{body}");
    assert!(!body.contains("submitted"), "{body}");
}

#[tokio::test]
async fn the_applicant_chooses_to_pay_at_the_counter_and_sees_the_treasury_confirm_it() {
    let app = spawn_app().await;
    let mut b = Browser::new(&app);
    let (id, page) = submitted_application(&app, &mut b).await;
    let status = b.visit(&page).await;
    assert_safe_page(&status);
    // The amount the server computed; no Stripe account here, so only the counter.
    assert_eq!(status.texts(".ap-pay-amount"), ["120,00 €"]);
    let providers: Vec<String> = status
        .html()
        .select(&Selector::parse("#payment input[name=provider]").unwrap())
        .filter_map(|e| e.value().attr("value").map(str::to_owned))
        .collect();
    assert_eq!(providers, ["ON_SITE"]);
    let csrf = status.csrf();
    let chosen = b
        .post(
            &format!("{page}/pay"),
            &[("_csrf", &csrf), ("provider", "ON_SITE")],
        )
        .await;
    assert_eq!(chosen.status, StatusCode::SEE_OTHER, "{}", chosen.body);
    assert_eq!(chosen.location(), format!("{page}#payment"));
    let waiting = b.visit(&page).await;
    assert!(
        waiting.texts(".ap-pay-amount").is_empty(),
        "no second offer"
    );
    assert_eq!(
        waiting.texts(".ap-payments li"),
        ["An der Kasse bezahlen: 120,00 € – offen"]
    );

    let kasse = app
        .login(
            Some("musterstadt"),
            ("kasse@musterstadt.example", "musterstadt-kasse"),
        )
        .await;
    let office = app.caller("musterstadt", &kasse);
    let resp = office
        .gql(
            "query($id: ID!) { application(id: $id) { payments { id } } }",
            json!({ "id": id }),
        )
        .await;
    let payment = str_at(&data(&resp)["application"]["payments"][0], "id");
    let resp = office
        .gql(
            "mutation($i: MarkPaymentPaidInput!) { markPaymentPaid(input: $i) { payment { state } } }",
            json!({ "i": { "paymentId": payment } }),
        )
        .await;
    assert_eq!(data(&resp)["markPaymentPaid"]["payment"]["state"], "PAID");
    let paid = b.visit(&page).await;
    let line = paid.texts(".ap-payments li").remove(0);
    assert!(
        line.starts_with("An der Kasse bezahlen: 120,00 € – bezahlt am "),
        "{line}"
    );
}

#[tokio::test]
async fn paying_online_goes_to_stripe_checkout_and_the_return_page_waits_for_the_webhook() {
    use crate::payments::{
        MUSTER_ACCOUNT, MUSTER_SECRET, configure, deliver, session_of, stripe_app,
    };
    let (app, fake) = stripe_app().await;
    configure(
        &app,
        "musterstadt",
        ("admin@musterstadt.example", "musterstadt-admin"),
        MUSTER_ACCOUNT,
        MUSTER_SECRET,
    )
    .await;
    let mut b = Browser::new(&app);
    let (_, page) = submitted_application(&app, &mut b).await;
    let status = b.visit(&page).await;
    let providers: Vec<String> = status
        .html()
        .select(&Selector::parse("#payment input[name=provider]").unwrap())
        .filter_map(|e| e.value().attr("value").map(str::to_owned))
        .collect();
    assert_eq!(providers, ["STRIPE", "ON_SITE"]);
    let csp = status.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://checkout.stripe.com"),
        "{csp}"
    );
    let csrf = status.csrf();
    let to_stripe = b
        .post(
            &format!("{page}/pay"),
            &[("_csrf", &csrf), ("provider", "STRIPE")],
        )
        .await;
    assert_eq!(
        to_stripe.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_stripe.body
    );
    let checkout = to_stripe.location();
    let session = session_of(&checkout);
    assert_eq!(fake.session(&session).amount, 12000);

    // Back from Stripe before its webhook: a notice, the payment still open.
    let back = b.visit(&format!("{page}/payment/done")).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_safe_page(&back);
    assert!(
        back.body
            .contains("Sobald der Zahlungsdienst die Zahlung bestätigt")
    );
    assert_eq!(
        back.texts(".ap-payments li"),
        ["Online bezahlen: 120,00 € – offen"]
    );
    let paid = fake.pay(&session).to_string();
    let (code, _) = deliver(&app, "musterstadt", &paid, None, MUSTER_SECRET).await;
    assert_eq!(code, 200);
    let after = b.visit(&page).await;
    assert!(
        after.texts(".ap-payments li")[0].starts_with("Online bezahlen: 120,00 € – bezahlt am ")
    );
    assert!(after.texts(".ap-pay-amount").is_empty());
    let cancelled = b.visit(&format!("{page}/payment/cancelled")).await;
    assert!(cancelled.body.contains("Die Zahlung wurde abgebrochen."));
}

#[tokio::test]
async fn with_a_base_domain_each_municipality_has_its_portal_at_the_root_of_its_own_host() {
    let app = spawn_app_with(|s| s.base_domain = Some("amtsplatz.test".into())).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, host: &str| {
        client
            .get(format!("{}{path}", app.base_url))
            .header("host", host)
            .send()
    };
    let start = get("/", "musterstadt.amtsplatz.test").await.unwrap();
    assert_eq!(start.status(), StatusCode::OK);
    let html = Html::parse_document(&start.text().await.unwrap());
    let link = html
        .select(&Selector::parse(".ap-services a").unwrap())
        .filter_map(|a| a.value().attr("href"))
        .find(|h| h.contains("hundesteuer"))
        .unwrap()
        .to_owned();
    // Links stay on the tenant's host, without the /t/<tenant> prefix.
    assert_eq!(link, "/services/hundesteuer");
    let service = get(&link, "musterstadt.amtsplatz.test").await.unwrap();
    assert_eq!(service.status(), StatusCode::OK);
    let body = service.text().await.unwrap();
    assert!(
        body.contains("action=\"/services/hundesteuer/apply\""),
        "{body}"
    );
    // Another municipality's host shows its own portal; the platform's host lists them all.
    let other = get("/", "beispielhausen.amtsplatz.test").await.unwrap();
    assert!(
        other
            .text()
            .await
            .unwrap()
            .contains("Gemeinde Beispielhausen")
    );
    let platform = get("/", "amtsplatz.test").await.unwrap();
    assert!(platform.text().await.unwrap().contains("ap-municipalities"));
    // The API is where it always is, on every host.
    let api = get("/healthz", "musterstadt.amtsplatz.test").await.unwrap();
    assert_eq!(api.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_appointment_is_booked_from_the_status_page_then_moved_and_cancelled_from_the_mail_link()
{
    let sink = crate::helpers::SmtpSink::start(0).await;
    let port = sink.port;
    let app = spawn_app_with(move |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail.poll_interval_ms = 100;
    })
    .await;
    let resp = app
        .gql(
            Some("musterstadt"),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id } } }",
            json!({ "i": { "serviceSlug": "meldebescheinigung", "data": {
                "name": "Erika Mustermann", "birth_date": "1980-02-03", "street": "Hauptstraße 1",
                "postcode": "12345", "city": "Musterstadt", "kind": "einfach", "delivery": "abholung"
            } } }),
        )
        .await;
    let id = str_at(&data(&resp)["submitApplication"]["application"], "id");
    let token = str_at(&data(&resp)["submitApplication"], "accessToken");
    let mut b = Browser::new(&app);
    let page = format!("/t/musterstadt/applications/{id}");
    b.get(&format!("{page}/access?token={token}")).await;
    let status = b.visit(&page).await;
    let link = status
        .attr(".ap-book", "href")
        .expect("a link to book an appointment");
    assert_eq!(link, format!("{page}/appointment"));

    // The picker: days with free slots, the first day's times, the name from the application.
    let picker = b.visit(&link).await;
    assert_eq!(picker.status, StatusCode::OK, "{}", picker.body);
    assert_safe_page(&picker);
    assert!(!picker.texts(".ap-days li").is_empty());
    let slots: Vec<String> = picker
        .html()
        .select(&Selector::parse("input[name=start]").unwrap())
        .filter_map(|e| e.value().attr("value").map(str::to_owned))
        .collect();
    assert!(slots.len() >= 2, "{slots:?}");
    assert_eq!(
        picker.attr("#contact-name", "value").as_deref(),
        Some("Erika Mustermann")
    );
    let csrf = picker.csrf();
    let location = picker.attr("input[name=location]", "value").unwrap();

    // Without an email address nothing is booked; the choice is named at the slots.
    let incomplete = b
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("start", &slots[0]),
                ("location", &location),
                ("name", "Erika Mustermann"),
                ("email", ""),
            ],
        )
        .await;
    assert_eq!(
        incomplete.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        incomplete.body
    );
    assert!(!incomplete.texts("#error-summary a").is_empty());
    let booked = b
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("start", &slots[0]),
                ("location", &location),
                ("name", "Erika Mustermann"),
                ("email", "erika@example.org"),
            ],
        )
        .await;
    assert_eq!(booked.status, StatusCode::SEE_OTHER, "{}", booked.body);
    let booking_page = booked.location();
    assert!(booking_page.ends_with("?booked=1"), "{booking_page}");
    let shown = b.visit(&booking_page).await;
    assert_safe_page(&shown);
    assert!(shown.body.contains("Ihr Termin ist gebucht."));
    let first_when = shown.texts(".ap-when").remove(0);
    let ics = shown.attr(".ap-ics", "href").unwrap();
    let calendar = b.get(&ics).await;
    assert_eq!(calendar.status, StatusCode::OK);
    assert!(calendar.body.contains("BEGIN:VEVENT"));

    // The confirmation mail links to the page that moves or cancels it.
    // (The office is told of the application too: the citizen's mail is the one to her.)
    let mut text = String::new();
    for n in 1..=5 {
        let mails = sink.wait_for(n).await;
        if let Some(mail) = mails
            .iter()
            .find(|m| m.to.iter().any(|t| t.contains("erika@example.org")))
        {
            let message = mail_parser::MessageParser::default()
                .parse(mail.data.as_bytes())
                .unwrap();
            text = message.body_text(0).unwrap().to_string();
            break;
        }
    }
    let manage = text
        .lines()
        .find_map(|l| l.strip_prefix("Termin verschieben oder absagen: "))
        .expect("the link to move or cancel")
        .trim()
        .to_owned();
    assert!(
        manage.contains("/appointments/") && manage.contains("/manage?token="),
        "{manage}"
    );

    let mut other = Browser::new(&app);
    let path = manage.trim_start_matches(&app.base_url).to_owned();
    let opened = other.get(&path).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert!(!opened.location().contains("token"));
    let mine = other.visit(&opened.location()).await;
    assert_eq!(mine.texts(".ap-when"), std::slice::from_ref(&first_when));
    let later: Vec<String> = mine
        .html()
        .select(&Selector::parse("input[name=start]").unwrap())
        .filter_map(|e| e.value().attr("value").map(str::to_owned))
        .collect();
    let target = later.last().unwrap().clone();
    assert_ne!(target, slots[0]);
    let csrf = mine.csrf();
    let moved = other
        .post(
            &format!("{}/reschedule", opened.location()),
            &[("_csrf", &csrf), ("start", &target)],
        )
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    let after = other.visit(&opened.location()).await;
    assert_ne!(after.texts(".ap-when"), [first_when]);
    let cancelled = other
        .post(
            &format!("{}/cancel", opened.location()),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    let gone = other.visit(&opened.location()).await;
    assert_eq!(gone.texts(".ap-cancelled"), ["Dieser Termin ist abgesagt."]);
    // Without the mail's link, the booking's page stays closed.
    assert_eq!(
        Browser::new(&app).get(&opened.location()).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_imported_fim_form_shows_its_choices_by_their_labels() {
    use crate::fim::{MUTTERSCHUTZ, import, mutterschutz_code_lists, publish, read};
    let app = spawn_app().await;
    let author = app
        .login(Some("musterstadt"), crate::marketplace::MUSTER_AUTHOR)
        .await;
    let resp = import(
        &app,
        &author,
        &read(MUTTERSCHUTZ),
        &mutterschutz_code_lists(),
    )
    .await;
    let content = data(&resp)["importFimSchema"]["content"].clone();
    let (_, version) = publish(&app, &author, "fim-mutterschutz", &content).await;
    let admin = app
        .login(Some("musterstadt"), crate::helpers::MUSTER_ADMIN)
        .await;
    let a = app.caller("musterstadt", &admin);
    let resp = a
        .gql(
            "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id } } }",
            json!({"i": {"templateVersionId": version, "slug": "mutterschutz"}}),
        )
        .await;
    let service = str_at(&data(&resp)["forkTemplate"]["service"], "id");
    data(
        &a.gql(
            "mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }",
            json!({"i": {"serviceId": service}}),
        )
        .await,
    );

    let mut b = Browser::new(&app);
    let (_, draft) = start_application(&mut b, "musterstadt", "mutterschutz").await;
    let step = b.visit(&format!("{draft}/steps/g00000255")).await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.body);
    assert_safe_page(&step);
    // Two choices: radios labelled with the code list's names, the codes as values.
    assert_eq!(step.attr("#f-f00000462", "value").as_deref(), Some("001"));
    let labels = step.texts("label[for^=f-f00000462]");
    assert!(labels.contains(&"ist schwanger".to_owned()), "{labels:?}");
    assert!(
        labels.contains(&"hat geboren / ist stillend".to_owned()),
        "{labels:?}"
    );
    // 197 states: a select with their names.
    let states = step.texts("#f-f60000261 option");
    assert!(
        states.contains(&"Deutschland".to_owned()),
        "{:?}",
        &states[..5]
    );
}

/// What a citizen types, by field name, for every field of the demo services' forms.
fn demo_answer(name: &str) -> Option<String> {
    let in_ten_days = (chrono::Utc::now() + chrono::Duration::days(10))
        .date_naive()
        .to_string();
    Some(
        match name {
            "name" | "account_holder" => "Erika Mustermann",
            "street" => "Hauptstraße 1",
            "postcode" => "12345",
            "city" => "Musterstadt",
            "email" => "erika@example.org",
            "phone" => "+49 30 123456",
            "birth_date" => "1980-05-17",
            "kind" => "einfach",
            "purpose" => "",
            "delivery" => "post",
            "items" => "Ein Sofa und zwei Stühle",
            "volume_m3" => "2",
            "preferred_date" => return Some(in_ten_days),
            "placement_note" => "",
            "licence_plate" => "B AB 123",
            "vehicle_owner_is_applicant" => "true",
            "zone" => "A",
            "permit_years" => "1",
            "breed" => "Dackel",
            "listed_breed" => "false",
            "date_acquired" => "2026-11-01",
            "hund_name" => "Waldi",
            "dog_count" => "1",
            "chip_number" => "276098106543210",
            "iban" => "DE02120300000000202051",
            _ => return None,
        }
        .to_owned(),
    )
}

/// The README's promise: a newcomer completes an application for each demo service in the
/// portal, without JavaScript. Every live service of every demo municipality, found through the
/// API, is walked from its service page through each step the form shows to the confirmation.
#[tokio::test]
async fn every_demo_service_can_be_applied_for_in_the_portal_from_start_to_confirmation() {
    let app = spawn_app().await;
    let resp = app
        .gql(None, None, "{ municipalities { slug } }", json!({}))
        .await;
    let tenants: Vec<String> = data(&resp)["municipalities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| str_at(m, "slug"))
        .collect();
    let mut done = Vec::new();
    for tenant in &tenants {
        let resp = app
            .gql(
                Some(tenant),
                None,
                "{ services(first: 100) { nodes { slug } } }",
                json!({}),
            )
            .await;
        for service in data(&resp)["services"]["nodes"].as_array().unwrap() {
            let slug = str_at(service, "slug");
            let mut b = Browser::new(&app);
            let (csrf, mut at) = start_application(&mut b, tenant, &slug).await;
            let mut steps = 0;
            let confirmation = loop {
                steps += 1;
                assert!(steps < 12, "{tenant}/{slug}: no end after {at}");
                let mut page = b.get(&at).await;
                while page.status == StatusCode::SEE_OTHER {
                    at = page.location();
                    page = b.get(&at).await;
                }
                assert_eq!(
                    page.status,
                    StatusCode::OK,
                    "{tenant}/{slug} {at}: {}",
                    page.body
                );
                assert_safe_page(&page);
                let path = at.split(['?', '#']).next().unwrap().to_owned();
                if path.ends_with("/review") {
                    let draft = path.trim_end_matches("/review").to_owned();
                    break submit_draft(&mut b, &draft, &csrf).await;
                }
                if path.ends_with("/documents") {
                    // Each document the answers call for, as a PDF; then on.
                    let keys = Selector::parse("form input[name=document]").unwrap();
                    let keys: std::collections::BTreeSet<String> = page
                        .html()
                        .select(&keys)
                        .filter_map(|e| e.value().attr("value").map(str::to_owned))
                        .collect();
                    for key in keys {
                        let fields = [("_csrf", csrf.as_str()), ("document", key.as_str())];
                        let up = b
                            .upload(
                                &path,
                                &fields,
                                ("nachweis.pdf", pdf(&key), "application/pdf"),
                            )
                            .await;
                        assert_eq!(
                            up.status,
                            StatusCode::SEE_OTHER,
                            "{tenant}/{slug} {key}: {}",
                            up.body
                        );
                    }
                    let next = b.post(&format!("{path}/next"), &[("_csrf", &csrf)]).await;
                    assert_eq!(
                        next.status,
                        StatusCode::SEE_OTHER,
                        "{tenant}/{slug}: {}",
                        next.body
                    );
                    at = next.location();
                    continue;
                }
                assert!(
                    path.contains("/steps/"),
                    "{tenant}/{slug}: unexpected page {path}"
                );
                let html = page.html();
                let mut form: Vec<(String, String)> = vec![
                    ("_csrf".into(), csrf.clone()),
                    ("_action".into(), "next".into()),
                ];
                let mut seen = std::collections::BTreeSet::new();
                let fields =
                    Selector::parse("form input[name], form select[name], form textarea[name]")
                        .unwrap();
                for el in html.select(&fields) {
                    let name = el.value().attr("name").unwrap().to_owned();
                    if name.starts_with('_') || !seen.insert(name.clone()) {
                        continue;
                    }
                    let value = if el.value().attr("type") == Some("hidden") {
                        el.value().attr("value").unwrap_or_default().to_owned()
                    } else {
                        demo_answer(&name).unwrap_or_else(|| {
                            panic!("{tenant}/{slug}: no answer for field {name}")
                        })
                    };
                    form.push((name, value));
                }
                let pairs: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let next = b.post(&path, &pairs).await;
                assert_eq!(
                    next.status,
                    StatusCode::SEE_OTHER,
                    "{tenant}/{slug} {path}: {}",
                    next.body
                );
                at = next.location();
            };
            let reference = confirmation.texts(".ap-reference");
            assert_eq!(reference.len(), 1, "{tenant}/{slug}: {}", confirmation.body);
            done.push(format!("{tenant}/{slug}"));
        }
    }
    done.sort();
    assert_eq!(
        done,
        [
            "beispielhausen/sperrmuell",
            "exempelburg/bewohnerparken",
            "exempelburg/hundesteuer",
            "musterstadt/hundesteuer",
            "musterstadt/meldebescheinigung",
        ]
    );
}
