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

/// Form data near the valid dog-tax form: the known fields, each kept, dropped or replaced by
/// random JSON, plus random extra keys.
fn dog_form_ish() -> impl Strategy<Value = Value> {
    let valid = json!({
        "name": "Erika Mustermann", "street": "Hauptstraße 1", "postcode": "12345",
        "city": "Musterstadt", "email": "erika@example.org", "dog_count": 1,
        "breed": "Pudel", "listed_breed": false, "date_acquired": "2026-10-01",
        "iban": "DE02120300000000202051", "account_holder": "Erika Mustermann"
    });
    let fields: Vec<(String, Value)> = valid.as_object().unwrap().clone().into_iter().collect();
    // Mostly kept, so that a fair share of the forms is valid.
    let choice = prop_oneof![18 => Just(2u8), 1 => Just(0u8), 1 => Just(1u8)];
    let choices = prop::collection::vec((choice, any_json()), fields.len());
    let extra = prop::collection::btree_map("[a-z_]{1,10}", any_json(), 0..2);
    (choices, extra, 0..4u8).prop_map(move |(choices, extra, extra_choice)| {
        let mut out = serde_json::Map::new();
        for ((key, value), (choice, random)) in fields.iter().zip(choices) {
            match choice {
                0 => {}
                1 => {
                    out.insert(key.clone(), random);
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        if extra_choice == 0 {
            out.extend(extra);
        }
        Value::Object(out)
    })
}

#[tokio::test]
async fn random_submissions_never_cause_a_server_error_and_store_only_valid_ones() {
    let app = spawn_app().await;
    let mut runner = TestRunner::deterministic();
    let strategy = prop_oneof![1 => any_json(), 3 => dog_form_ish()];
    let submit = "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { reference } } }";
    let draft = "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { draft { id } } }";
    let mut accepted = 0;
    for i in 0..300 {
        let data = strategy.new_tree(&mut runner).unwrap().current();
        let (query, input) = if i % 5 == 0 {
            (draft, json!({ "serviceSlug": "hundesteuer", "data": data }))
        } else {
            (
                submit,
                json!({ "serviceSlug": "hundesteuer", "data": data }),
            )
        };
        let (status, body) = app
            .gql_raw(Some(MUSTER), None, query, json!({ "i": input }))
            .await;
        assert!(status < 500, "case {i} {data} answered {status}");
        match body["errors"].as_array() {
            Some(errors) => {
                for e in errors {
                    let code = e["extensions"]["code"].as_str().unwrap_or("");
                    assert!(code == "VALIDATION_FAILED", "case {i} {data}: {e}");
                    // Field errors from the server, or GraphQL's own input coercion (`null` data).
                    let coercion = e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Invalid value for argument"));
                    assert!(
                        e["extensions"]["fields"].is_object() || coercion,
                        "case {i}: {e}"
                    );
                }
            }
            None if query == submit => accepted += 1,
            None => {}
        }
    }
    assert!(
        accepted > 10,
        "the generator also makes valid forms ({accepted})"
    );
    // Exactly the accepted submissions were stored, numbered without gaps.
    let resp = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let total = app
        .caller(MUSTER, &resp)
        .gql("{ applications(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(data(&total)["applications"]["totalCount"], accepted);
}

/// Bytes that are sometimes a real file type, mostly not: a magic prefix (PDF, PNG, JPEG, GIF,
/// HTML, ZIP or nothing) and random bytes after it.
fn file_ish() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        b"%PDF-1.7\n".to_vec(),
        vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a],
        vec![0xff, 0xd8, 0xff, 0xe0],
        b"GIF89a".to_vec(),
        b"<!doctype html><script>".to_vec(),
        b"PK\x03\x04".to_vec(),
        Vec::new(),
    ];
    (
        prop::sample::select(prefixes),
        prop::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(mut p, rest)| {
            p.extend(rest);
            p
        })
}

#[tokio::test]
async fn random_uploads_never_cause_a_server_error_and_only_allowed_types_are_stored() {
    let app = spawn_app().await;
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": {} } }),
        )
        .await;
    let (draft, token) = (
        str_at(&data(&resp)["saveDraft"]["draft"], "id"),
        str_at(&data(&resp)["saveDraft"], "accessToken"),
    );
    let mut runner = TestRunner::deterministic();
    let names = prop::string::string_regex("[\\PC/\\\\.\"\r\n;%]{0,40}").unwrap();
    let mimes = prop::sample::select(vec![
        "application/pdf",
        "image/png",
        "text/html",
        "application/octet-stream",
    ]);
    let mut stored = 0;
    for i in 0..60 {
        let bytes = file_ish().new_tree(&mut runner).unwrap().current();
        let name = names.new_tree(&mut runner).unwrap().current();
        let mime = mimes.new_tree(&mut runner).unwrap().current();
        let allowed = bytes.starts_with(b"%PDF")
            || bytes.starts_with(&[0x89, b'P', b'N', b'G'])
            || bytes.starts_with(&[0xff, 0xd8, 0xff]);
        // The draft holds at most 20 files: delete what was stored to keep room.
        let (status, body) = upload_file(
            &app,
            MUSTER,
            None,
            json!({ "draftId": draft, "accessToken": token }),
            &name,
            mime,
            bytes.clone(),
        )
        .await;
        assert!(status < 500, "case {i}: {status} {body}");
        match body["errors"].as_array() {
            Some(errors) => {
                let code = errors[0]["extensions"]["code"].as_str().unwrap_or("");
                assert_eq!(code, "VALIDATION_FAILED", "case {i} ({name:?}): {body}");
                // A filename the multipart grammar cannot carry (empty, or ending in a backslash
                // that escapes the closing quote) makes the part no file: the request is refused
                // as malformed. Any other refusal of an allowed type is a bug.
                let malformed = errors[0]["extensions"]["fields"]["body"].is_string();
                assert!(
                    !allowed || malformed,
                    "case {i}: an allowed file was refused: {body}"
                );
            }
            None => {
                let att = &body["data"]["uploadAttachment"]["attachment"];
                assert!(allowed, "case {i}: a disallowed file was stored: {body}");
                let filename = att["filename"].as_str().unwrap();
                assert!(!filename.is_empty() && !filename.contains(['/', '\\', '"', '\r', '\n']));
                stored += 1;
                let del = app
                    .gql(
                        Some(MUSTER),
                        None,
                        "mutation($i: AttachmentRefInput!) { deleteAttachment(input: $i) { id } }",
                        json!({ "i": { "id": att["id"], "accessToken": token } }),
                    )
                    .await;
                data(&del);
            }
        }
    }
    assert!(
        stored > 5,
        "the generator also makes allowed files ({stored})"
    );
}
