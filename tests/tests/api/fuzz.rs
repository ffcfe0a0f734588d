//! Property test of the GraphQL edge: random bodies, GraphQL-shaped garbage and hostile
//! variables and headers never produce a 5xx, and every error carries a known code.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::helpers::*;

fn graphql_ish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("tenant".to_owned()),
        Just("departments".to_owned()),
        Just("staff".to_owned()),
        Just("me".to_owned()),
        Just("login".to_owned()),
        Just("mutation".to_owned()),
        Just("query".to_owned()),
        Just("first: 999999999999".to_owned()),
        Just("after: \"\"".to_owned()),
        Just("id: \"00000000-0000-0000-0000-000000000000\"".to_owned()),
        Just("...on Tenant".to_owned()),
        Just("fragment f on Query { me { id } }".to_owned()),
        Just("$v".to_owned()),
        Just("@skip(if: true)".to_owned()),
        "[a-zA-Z_]{1,12}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug)]
enum Case {
    Bytes(Vec<u8>),
    Query(String, Value),
    Mutation(Value),
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Case::Bytes),
        (graphql_ish(), any_json()).prop_map(|(q, v)| Case::Query(q, v)),
        any_json().prop_map(Case::Mutation),
    ]
}

#[tokio::test]
async fn random_requests_never_cause_a_server_error() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let mut runner = TestRunner::deterministic();
    let strategy = (case(), 0..4u8);
    let url = format!("{}/graphql", app.base_url);
    for i in 0..400 {
        let (case, header_choice) = strategy.new_tree(&mut runner).unwrap().current();
        let mut req = app
            .client
            .post(&url)
            .header("content-type", "application/json");
        req = match header_choice {
            0 => req,
            1 => req.header("X-Tenant", MUSTER).bearer_auth(&admin.access),
            2 => req
                .header("X-Tenant", "../no such tenant;--")
                .bearer_auth("x.y.z"),
            _ => req.header("X-Tenant", BEISPIEL).bearer_auth(&admin.access),
        };
        let body = match &case {
            Case::Bytes(b) => b.clone(),
            Case::Query(q, v) => serde_json::to_vec(&json!({ "query": q, "variables": v })).unwrap(),
            // Well-formed mutations with random inputs reach the domain services.
            Case::Mutation(v) => serde_json::to_vec(&json!({
                "query": "mutation($i: CreateDepartmentInput!, $s: CreateStaffUserInput!) { createDepartment(input: $i) { department { id } } createStaffUser(input: $s) { staffUser { id } } }",
                "variables": { "i": v, "s": v },
            }))
            .unwrap(),
        };
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        assert!(status < 500, "case {i} {case:?} answered {status}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if let Some(errors) = body["errors"].as_array() {
            for e in errors {
                let code = e["extensions"]["code"].as_str().unwrap_or("");
                assert!(
                    server::error::ALL_CODES.contains(&code) && code != "INTERNAL",
                    "case {i} {case:?}: {e}"
                );
            }
        }
    }
    // The server still serves.
    data(
        &app.gql(Some(MUSTER), None, "{ tenant { name } }", json!({}))
            .await,
    );
}
