//! Request limits: depth, complexity, aliases, body size, batching, malformed input.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn queries_deeper_than_the_limit_are_rejected() {
    let app = spawn_app_with(|s| s.graphql.max_depth = 5).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let deep = "{ tenant { staff { edges { node { memberships { department { name } } } } } } }";
    let resp = app.caller(MUSTER, &admin).gql(deep, json!({})).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nested"),
        "{resp}"
    );
    data(
        &app.gql(
            Some(MUSTER),
            None,
            "{ tenant { departments { totalCount } } }",
            json!({}),
        )
        .await,
    );
}

#[tokio::test]
async fn queries_more_complex_than_the_limit_are_rejected() {
    let app = spawn_app_with(|s| s.graphql.max_complexity = 10).await;
    let q = "{ tenant { id slug name ags timeZone status departments { totalCount edges { cursor node { id key name email } } } } }";
    let resp = app.gql(Some(MUSTER), None, q, json!({})).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{resp}"
    );
}

#[tokio::test]
async fn too_many_aliases_are_rejected() {
    let app = spawn_app().await;
    let ok: String = (0..30).map(|i| format!("a{i}: __typename ")).collect();
    data(
        &app.gql(Some(MUSTER), None, &format!("{{ {ok} }}"), json!({}))
            .await,
    );
    let many: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    // Parsed documents are kept by their text: a refused one is refused again, an accepted one
    // answers the same again, with other variables too.
    for _ in 0..2 {
        let resp = app
            .gql(Some(MUSTER), None, &format!("{{ {many} }}"), json!({}))
            .await;
        assert_code(&resp, "VALIDATION_FAILED");
        assert!(
            resp["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("aliases"),
            "{resp}"
        );
    }
    let by_slug = "query($s: String!) { template(slug: $s) { slug } }";
    for slug in ["hundesteuer-anmeldung", "meldebescheinigung"] {
        let resp = app
            .gql(Some(MUSTER), None, by_slug, json!({ "s": slug }))
            .await;
        assert_eq!(data(&resp)["template"]["slug"], slug);
    }
}

#[tokio::test]
async fn batched_requests_are_rejected_with_a_clear_error() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .json(&json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_code(&body, "VALIDATION_FAILED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("validation failed")
    );
    assert!(
        body["errors"][0]["extensions"]["fields"]["body"]
            .as_str()
            .unwrap()
            .contains("batched")
    );
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused() {
    let app = spawn_app().await;
    let padding = "x".repeat(1024 * 1024);
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .json(&json!({ "query": "{ __typename }", "variables": { "pad": padding } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_code(&body, "PAYLOAD_TOO_LARGE");
    assert_eq!(body["errors"][0]["extensions"]["limitBytes"], 1024 * 1024);
}

#[tokio::test]
async fn malformed_requests_are_validation_errors_never_server_errors() {
    let app = spawn_app().await;
    for body in ["", "{", "null", "{\"query\": 5}", "\"just a string\""] {
        let resp = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "body {body:?}");
        assert_code(&resp.json().await.unwrap(), "VALIDATION_FAILED");
    }
    for query in [
        "{ nosuchfield }",
        "{ tenant { ",
        "query($x: Int!) { __typename }",
        "{ department(id: \"not-a-uuid\") { name } }",
    ] {
        let resp = app.gql(Some(MUSTER), None, query, json!({})).await;
        assert_code(&resp, "VALIDATION_FAILED");
    }
}
