//! Operations: health, readiness, metrics, JWKS, schema drift, WebSocket transport.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_report_ok() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "database": true, "migrations": true })
    );
}

#[tokio::test]
async fn metrics_count_graphql_requests_by_operation_name() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let resp = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header("X-Tenant", MUSTER)
            .json(&json!({ "query": "query TenantName { tenant { name } }", "operationName": "TenantName" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    app.gql(Some(MUSTER), None, "{ nosuchfield }", json!({}))
        .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"amtsplatz_graphql_requests_total{operation="TenantName",outcome="ok"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"amtsplatz_graphql_requests_total{operation="anonymous",outcome="error"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"amtsplatz_graphql_request_duration_seconds_count{operation="TenantName"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"amtsplatz_http_responses_total{route="/graphql",status="200"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_public_signing_key_is_published_as_jwks() {
    let app = spawn_app().await;
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["alg"], "ES256");
    assert!(
        key.get("d").is_none(),
        "the private part must never be published"
    );
}

#[tokio::test]
async fn a_server_issued_token_verifies_against_the_published_jwks() {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let app = spawn_app().await;
    let session = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let jwks: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    // A relying party (a back-office system) verifies with nothing but the published set.
    let header = decode_header(&session.access).unwrap();
    let kid = header.kid.clone().expect("our tokens name their key");
    let jwk = jwks.find(&kid).expect("the token's key is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&["amtsplatz"]);
    validation.set_audience(&["amtsplatz-api"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let claims = decode::<Value>(&session.access, &key, &validation)
        .unwrap()
        .claims;
    let me = data(
        &app.caller(MUSTER, &session)
            .gql("{ me { id } }", json!({}))
            .await,
    )["me"]["id"]
        .clone();
    assert_eq!(claims["sub"], me);
    // Control: the same check refuses a token whose payload was changed after signing.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = session.access.split('.').collect();
    let mut forged = claims.clone();
    forged["sub"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        base64::Engine::encode(&b64, serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    assert!(decode::<Value>(&forged, &key, &validation).is_err());
}

/// Readiness follows the database: 503 while the server cannot reach it (connections cut and
/// refused), 200 again once it can. On SQLite the database is a file of the process itself.
#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn readiness_answers_503_while_the_database_is_unreachable() {
    use sea_orm::{ConnectionTrait, Database};
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let name = app.db_url.rsplit('/').next().unwrap().to_owned();
    let admin = Database::connect(postgres_base_url().unwrap())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), app.get("/readyz"))
        .await
        .expect("readiness answers while the database is down");
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "database": false, "migrations": false })
    );
    eprintln!("readyz answered 503 after {:?}", started.elapsed());
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);

    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let mut status = 0;
    for _ in 0..100 {
        status = app.get("/readyz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    admin.close().await.ok();
}

#[test]
fn committed_schema_matches_the_code() {
    let committed = std::fs::read_to_string(repo_root().join("frontend-schema/schema.graphql"))
        .unwrap_or_default();
    let current = server::schema::sdl();
    assert!(
        committed == current,
        "frontend-schema/schema.graphql is stale: run `cargo run -p server -- export-schema` and commit it"
    );
}

#[tokio::test]
async fn graphql_over_websocket_resolves_tenant_and_token_from_connection_init() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let mut ws = ws_ready(
        &app,
        json!({ "X-Tenant": MUSTER, "Authorization": format!("Bearer {}", s.access) }),
    )
    .await;
    let next = ws_once(&mut ws, "1", "{ tenant { name } me { email } }", json!({})).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["tenant"]["name"],
        "Stadt Musterstadt"
    );
    assert_eq!(next["payload"]["data"]["me"]["email"], MUSTER_STAFF.0);
    let bad = json!({ "id": "2", "type": "subscribe", "payload": { "query": "{ tenant { staff { totalCount } } }" } });
    ws.send(Message::text(bad.to_string())).await.unwrap();
    loop {
        let msg = ws_next(&mut ws).await;
        if msg["id"] == "2" {
            assert_eq!(
                msg["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{msg}"
            );
            break;
        }
    }
    // Errors raised before execution (validation) carry their code over WebSocket too.
    let invalid =
        json!({ "id": "3", "type": "subscribe", "payload": { "query": "{ nosuchfield }" } });
    ws.send(Message::text(invalid.to_string())).await.unwrap();
    loop {
        let msg = ws_next(&mut ws).await;
        if msg["id"] == "3" {
            let errors = if msg["payload"].is_array() {
                &msg["payload"]
            } else {
                &msg["payload"]["errors"]
            };
            assert_eq!(
                errors[0]["extensions"]["code"], "VALIDATION_FAILED",
                "{msg}"
            );
            break;
        }
    }
}

#[tokio::test]
async fn a_websocket_with_a_forged_token_is_refused() {
    let app = spawn_app().await;
    let mut ws = ws_connect(&app).await;
    let init = json!({ "type": "connection_init", "payload": { "X-Tenant": MUSTER, "Authorization": "Bearer forged.token.here" } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {}
        Some(Ok(Message::Text(t))) => assert_ne!(
            serde_json::from_str::<Value>(&t).unwrap()["type"],
            "connection_ack"
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn every_example_operation_validates_against_the_live_schema() {
    let app = spawn_app().await;
    let doc =
        std::fs::read_to_string(repo_root().join("frontend-schema/examples.graphql")).unwrap();
    // GraphQL validates the whole document, whichever operation runs.
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .json(&json!({ "query": doc, "operationName": "TenantOverview" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(data(&resp)["tenant"]["slug"], MUSTER);
}

#[tokio::test]
async fn migrations_roll_back_completely_and_apply_again() {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait as _;
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = fresh_database(dir.path()).await;
    let db = sea_orm::Database::connect(&url).await.unwrap();
    let tables = |db: sea_orm::DatabaseConnection| async move {
        let sql = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'seaql_migrations'"
            }
            _ => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'"
            }
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    Migrator::up(&db, None).await.unwrap();
    let all = tables(db.clone()).await;
    assert!(all >= 25, "{all} tables");
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(tables(db.clone()).await, 0, "down leaves no table behind");
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(tables(db.clone()).await, all);
    db.close().await.ok();
}
