//! FIT-Connect routing: tenant administrators find the destination responsible for a service
//! (LeiKa key) in their municipality (its AGS) through the routing API 2.0.0, here a local fake
//! serving the documented `route-result` shape and its documented errors.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::*;

const ROUTES: &str = "query($k: String!) { fitConnectRoutes(leikaKey: $k) { ags leikaKey totalCount routes { destinationId destinationSignature destinationName destinationShortName origin } } }";
const DESTINATION: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const SIGNATURE: &str = "eyJhbGciOiJQUzUxMiJ9.eyJkZXN0aW5hdGlvbklkIjoiM2ZhODVmNjQifQ.c2lnbmF0dXJl";

/// A local routing API: answers `GET /v1/routes` by LeiKa key, and records each query string.
struct FakeRouting {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
    _server: actix_web::dev::ServerHandle,
}

async fn routes(req: HttpRequest, seen: web::Data<Arc<Mutex<Vec<String>>>>) -> HttpResponse {
    seen.lock().unwrap().push(req.query_string().to_owned());
    let q: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let problem = |status: u16, title: &str, detail: &str| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/problem+json")
            .json(json!({ "type": "about:blank", "title": title, "status": status, "detail": detail }))
    };
    match get("leikaKey").as_deref() {
        Some("99015003001000") => HttpResponse::Ok()
            .insert_header(("RateLimit-Limit", "100"))
            .insert_header(("RateLimit-Remaining", "99"))
            .insert_header(("RateLimit-Reset", "60"))
            .json(json!({
                "count": 1, "offset": 0, "totalCount": 1,
                "routes": [{
                    "destinationId": DESTINATION,
                    "destinationSignature": SIGNATURE,
                    "destinationName": "Stadtverwaltung Musterstadt - Steueramt",
                    "destinationShortName": "Steueramt Musterstadt",
                    "destinationLogo": "https://musterstadt.example/logo.svg",
                    "contactPersons": [{ "name": "Dr. Erika Muster", "email": "mail@example.org" }],
                    "address": { "street": "Am Markt", "houseNumber": "1", "zip": "99999", "city": "Musterstadt" },
                    "processingDuration": { "minDuration": 1, "maxDuration": 4, "unit": "week" },
                    "customParameters": { "hunderasse": 3 },
                    "origin": "PVOG"
                }]
            })),
        Some("99000000000000") => {
            HttpResponse::Ok().json(json!({ "count": 0, "offset": 0, "totalCount": 0, "routes": [] }))
        }
        Some("99000000000400") => problem(
            400,
            "Bad Request",
            "Für den Leistungsschlüssel ist keine eindeutige Zuständigkeit ermittelbar",
        ),
        Some("99000000000429") => HttpResponse::TooManyRequests()
            .insert_header(("RateLimit-Reset", "17"))
            .json(json!({})),
        Some("99000000000999") => HttpResponse::Ok().json(json!({ "routes": "not a list" })),
        _ => problem(500, "Internal Server Error", "boom"),
    }
}

impl FakeRouting {
    async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1/", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/routes", web::get().to(routes))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            seen,
            _server: handle,
        }
    }

    fn queries(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn app_with(fake: &FakeRouting) -> TestApp {
    let base = fake.base.clone();
    spawn_app_with(move |s| s.fit_connect.routing_api = base).await
}

async fn ask(app: &TestApp, session: &Session, key: &str) -> Value {
    app.caller(MUSTER, session)
        .gql(ROUTES, json!({ "k": key }))
        .await
}

#[tokio::test]
async fn an_administrator_finds_the_destination_for_a_leika_key_in_the_municipality() {
    let fake = FakeRouting::start().await;
    let app = app_with(&fake).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;

    let resp = ask(&app, &admin, "99015003001000").await;
    let r = &data(&resp)["fitConnectRoutes"];
    assert_eq!(r["ags"], "09999001", "Musterstadt's AGS");
    assert_eq!(r["leikaKey"], "99015003001000");
    assert_eq!(r["totalCount"], 1);
    assert_eq!(
        r["routes"],
        json!([{
            "destinationId": DESTINATION,
            "destinationSignature": SIGNATURE,
            "destinationName": "Stadtverwaltung Musterstadt - Steueramt",
            "destinationShortName": "Steueramt Musterstadt",
            "origin": "PVOG",
        }])
    );
    let q: Vec<(String, String)> = serde_urlencoded::from_str(&fake.queries()[0]).unwrap();
    assert!(
        q.contains(&("leikaKey".into(), "99015003001000".into())),
        "{q:?}"
    );
    assert!(q.contains(&("ags".into(), "09999001".into())), "{q:?}");

    // No destination known: an empty list, not an error.
    let resp = ask(&app, &admin, " 99000000000000 ").await;
    assert_eq!(data(&resp)["fitConnectRoutes"]["routes"], json!([]));
}

#[tokio::test]
async fn malformed_keys_and_refused_queries_are_typed_errors() {
    let fake = FakeRouting::start().await;
    let app = app_with(&fake).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;

    for bad in [
        "",
        "123",
        "88015003001000",
        "9901500300100x",
        "990150030010001",
    ] {
        let resp = ask(&app, &admin, bad).await;
        assert_code(&resp, "VALIDATION_FAILED");
        assert!(
            resp["errors"][0]["extensions"]["fields"]["leikaKey"].is_string(),
            "{resp}"
        );
    }
    assert!(
        fake.queries().is_empty(),
        "malformed keys never reach the API"
    );

    // The API refuses the query: its explanation at the field.
    let resp = ask(&app, &admin, "99000000000400").await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["extensions"]["fields"]["leikaKey"]
            .as_str()
            .unwrap()
            .contains("keine eindeutige Zuständigkeit"),
        "{resp}"
    );
    // Its rate limit is ours, with its reset time.
    let resp = ask(&app, &admin, "99000000000429").await;
    assert_code(&resp, "RATE_LIMITED");
    assert_eq!(resp["errors"][0]["extensions"]["retryAfterSeconds"], 17);
    // A broken API is not the caller's fault, and says nothing of its insides.
    for broken in ["99000000000500", "99000000000999"] {
        let resp = ask(&app, &admin, broken).await;
        assert_code(&resp, "INTERNAL");
        assert!(!resp.to_string().contains("boom"), "{resp}");
    }
}

#[tokio::test]
async fn only_tenant_administrators_ask_for_routes() {
    let fake = FakeRouting::start().await;
    let app = app_with(&fake).await;
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(&ask(&app, &staff, "99015003001000").await, "FORBIDDEN");
    let resp = app
        .gql(Some(MUSTER), None, ROUTES, json!({ "k": "99015003001000" }))
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
    assert!(fake.queries().is_empty());

    // Each tenant asks for its own municipality.
    let other = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let resp = app
        .caller(BEISPIEL, &other)
        .gql(ROUTES, json!({ "k": "99015003001000" }))
        .await;
    assert_ne!(data(&resp)["fitConnectRoutes"]["ags"], "09999001");
}
