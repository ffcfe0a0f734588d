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

/// Random nesting in every place the issue found (arguments, object values, directives,
/// variable defaults, a draft's data literal, variables): up to 64 brackets are answered by
/// GraphQL, deeper ones refused with 400 before parsing; the server never dies.
#[tokio::test]
async fn random_nesting_is_answered_up_to_the_limit_and_refused_beyond() {
    use crate::guard::{MAX_NESTING, nest, post};
    let app = spawn_app().await;
    let mut runner = TestRunner::deterministic();
    let strategy = (0..6u8, prop_oneof![1..80usize, 80..3000usize]);
    for i in 0..80 {
        let (kind, depth) = strategy.new_tree(&mut runner).unwrap().current();
        let (query, variables) = match kind {
            0 => (
                format!("{{ __typename(x: {}) }}", nest("[", "]", "1", depth)),
                json!({}),
            ),
            1 => (
                format!("{{ __typename(x: {}) }}", nest("{a:", "}", "1", depth)),
                json!({}),
            ),
            2 => (
                format!(
                    "{{ __typename @skip(if: {}) }}",
                    nest("[", "]", "false", depth)
                ),
                json!({}),
            ),
            3 => (
                format!(
                    "query($v: [Int] = {}) {{ __typename }}",
                    nest("[", "]", "1", depth)
                ),
                json!({}),
            ),
            4 => (
                format!(
                    "mutation {{ saveDraft(input: {{serviceSlug: \"hundesteuer\", data: {}}}) {{ draft {{ id }} }} }}",
                    nest("{a:", "}", "1", depth)
                ),
                json!({}),
            ),
            // Variables: serde_json refuses more than 128 levels itself (422).
            _ => (
                "query($v: JSON) { __typename }".to_owned(),
                json!({ "v": serde_json::from_str::<Value>(&nest("[", "]", "1", depth.min(120))).unwrap() }),
            ),
        };
        // No string in these documents holds a bracket: counting them all is exact.
        let mut deepest = 0usize;
        let mut level = 0usize;
        for c in query.chars() {
            match c {
                '{' | '[' | '(' => {
                    level += 1;
                    deepest = deepest.max(level);
                }
                '}' | ']' | ')' => level -= 1,
                _ => {}
            }
        }
        let too_deep = if kind == 5 {
            depth.min(120) > MAX_NESTING
        } else {
            deepest > MAX_NESTING
        };
        let (status, body) = post(&app, &json!({ "query": query, "variables": variables })).await;
        if too_deep {
            assert_eq!(status, 400, "case {i} (kind {kind}, depth {depth}): {body}");
            assert_code(&body, "VALIDATION_FAILED");
        } else {
            assert_eq!(status, 200, "case {i} (kind {kind}, depth {depth}): {body}");
            for e in body["errors"].as_array().into_iter().flatten() {
                assert_ne!(e["extensions"]["code"], "INTERNAL", "case {i}: {e}");
            }
        }
    }
    data(
        &app.gql(Some(MUSTER), None, "{ __typename }", json!({}))
            .await,
    );
}

/// Random fragment fan-out (chains of fragments, each spreading the next `fan` times): the
/// expanded size decides, the time does not grow with it.
#[tokio::test]
async fn random_fragment_fan_out_is_refused_beyond_the_cap_quickly() {
    use crate::guard::{fragment_bomb, post};
    let app = spawn_app().await;
    let mut runner = TestRunner::deterministic();
    let leaves = prop::sample::select(vec![
        ("__typename", 1usize),
        ("tenant { name }", 2),
        ("tenant { departments { totalCount } }", 3),
    ]);
    let strategy = (1..10usize, 1..13usize, leaves);
    for i in 0..60 {
        let (n, fan, (leaf, leaf_size)) = strategy.new_tree(&mut runner).unwrap().current();
        // Selections with spreads expanded: each spread counts one plus what it expands to.
        let mut size = leaf_size;
        for _ in 0..n - 1 {
            size = size.saturating_mul(fan).saturating_add(fan).min(1 << 40);
        }
        let total = 1 + size;
        let query = fragment_bomb(n, fan, leaf);
        let started = std::time::Instant::now();
        let (status, body) = post(&app, &json!({ "query": query })).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "case {i}: {body}");
        if total > 5_000 {
            assert_code(&body, "VALIDATION_FAILED");
            assert!(
                body["errors"][0]["extensions"]["fields"]["query"]
                    .as_str()
                    .is_some_and(|m| m.contains("selections")),
                "case {i} (n {n}, fan {fan}, {total}): {body}"
            );
            assert!(
                took < std::time::Duration::from_secs(1),
                "case {i}: {took:?}"
            );
        } else {
            for e in body["errors"].as_array().into_iter().flatten() {
                assert_ne!(e["extensions"]["code"], "INTERNAL", "case {i}: {e}");
            }
        }
    }
}

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } types { kind name enumValues { name } inputFields { name type { ...T } } fields { name type { ...T } args { name type { ...T } } } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// The schema's types by name, from introspection.
struct Types(std::collections::HashMap<String, Value>);

impl Types {
    fn named(&self, t: &Value) -> Value {
        match t["kind"].as_str() {
            Some("NON_NULL" | "LIST") => self.named(&t["ofType"]),
            _ => self.0[t["name"].as_str().unwrap()].clone(),
        }
    }

    /// A GraphQL type reference as written in a variable definition.
    fn render(t: &Value) -> String {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => format!("{}!", Self::render(&t["ofType"])),
            "LIST" => format!("[{}]", Self::render(&t["ofType"])),
            _ => t["name"].as_str().unwrap().to_owned(),
        }
    }

    /// A plausible value of type `t`; with `nul`, the string at that path (`.field`, `[0]`)
    /// holds a NUL character. Nullable input fields are left out unless the path leads there.
    fn fill(&self, t: &Value, nul: Option<&[String]>) -> Value {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => return self.fill(&t["ofType"], nul),
            "LIST" => {
                let rest = nul.map(|p| &p[1..]);
                return json!([self.fill(&t["ofType"], rest)]);
            }
            _ => {}
        }
        let ty = self.named(t);
        let name = ty["name"].as_str().unwrap();
        match ty["kind"].as_str().unwrap() {
            "ENUM" => ty["enumValues"][0]["name"].clone(),
            "INPUT_OBJECT" => {
                let mut obj = serde_json::Map::new();
                for f in ty["inputFields"].as_array().unwrap() {
                    let fname = f["name"].as_str().unwrap();
                    let here = nul.filter(|p| p.first().is_some_and(|s| s == &format!(".{fname}")));
                    if here.is_some() || f["type"]["kind"] == "NON_NULL" {
                        obj.insert(
                            fname.to_owned(),
                            self.fill(&f["type"], here.map(|p| &p[1..])),
                        );
                    }
                }
                Value::Object(obj)
            }
            _ if nul.is_some() => match name {
                "JSON" => json!({ "text": "a\u{0}b" }),
                _ => json!("a\u{0}b"),
            },
            _ => match name {
                "Int" => json!(1),
                "Float" => json!(1.5),
                "Boolean" => json!(true),
                "DateTime" => json!("2027-01-04T10:00:00Z"),
                "NaiveDate" => json!("2027-01-04"),
                "JSON" => json!({}),
                "Upload" => Value::Null,
                "ID" | "UUID" => json!("00000000-0000-0000-0000-000000000000"),
                _ => json!("x"),
            },
        }
    }

    /// Paths (`.field`, `[0]`, …) to every place a string can sit in a value of type `t`:
    /// String and ID scalars, JSON values, through lists and input objects.
    fn string_paths(&self, t: &Value, depth: usize) -> Vec<Vec<String>> {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => return self.string_paths(&t["ofType"], depth),
            "LIST" => {
                return self
                    .string_paths(&t["ofType"], depth)
                    .into_iter()
                    .map(|mut p| {
                        p.insert(0, "[0]".to_owned());
                        p
                    })
                    .collect();
            }
            _ => {}
        }
        let ty = self.named(t);
        match (ty["kind"].as_str().unwrap(), ty["name"].as_str().unwrap()) {
            ("SCALAR", "String" | "ID" | "JSON") => vec![vec![]],
            ("INPUT_OBJECT", _) if depth < 4 => ty["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|f| {
                    let name = format!(".{}", f["name"].as_str().unwrap());
                    self.string_paths(&f["type"], depth + 1)
                        .into_iter()
                        .map(move |mut p| {
                            p.insert(0, name.clone());
                            p
                        })
                })
                .collect(),
            _ => vec![],
        }
    }
}

/// Every string argument of every query and mutation, and every string field of their input
/// objects (from introspection), with a NUL character: `VALIDATION_FAILED` naming exactly that
/// path, never a 5xx or `INTERNAL`, and nothing stored.
#[tokio::test]
async fn nul_characters_in_every_string_argument_are_validation_errors() {
    let app = spawn_app_with(|s| {
        // The introspection query nests deeper than clients' queries.
        s.graphql.max_depth = 20;
        s.graphql.max_complexity = 100_000;
    })
    .await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let schema = app
        .caller(MUSTER, &admin)
        .gql(INTROSPECTION, json!({}))
        .await;
    let schema = &data(&schema)["__schema"];
    let types = Types(
        schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
            .collect(),
    );
    let tables = ["drafts", "applications", "bookings", "outbox"];
    let mut before = Vec::new();
    for table in tables {
        before.push(count_where(&app, table, "1 = 1").await);
    }
    let mut checked = 0;
    for (keyword, root) in [
        ("query", &schema["queryType"]),
        ("mutation", &schema["mutationType"]),
    ] {
        let root = &types.0[root["name"].as_str().unwrap()];
        for field in root["fields"].as_array().unwrap() {
            let fname = field["name"].as_str().unwrap();
            let args = field["args"].as_array().unwrap();
            let ret = types.named(&field["type"]);
            let selection = match ret["kind"].as_str().unwrap() {
                "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
                _ => "",
            };
            for (target, arg) in args.iter().enumerate() {
                for path in types.string_paths(&arg["type"], 0) {
                    let mut defs = Vec::new();
                    let mut uses = Vec::new();
                    let mut vars = serde_json::Map::new();
                    for (k, a) in args.iter().enumerate() {
                        let aname = a["name"].as_str().unwrap();
                        defs.push(format!("$a{k}: {}", Types::render(&a["type"])));
                        uses.push(format!("{aname}: $a{k}"));
                        if k == target {
                            vars.insert(format!("a{k}"), types.fill(&a["type"], Some(&path)));
                        } else if a["type"]["kind"] == "NON_NULL" {
                            vars.insert(format!("a{k}"), types.fill(&a["type"], None));
                        }
                    }
                    let query = format!(
                        "{keyword}({}) {{ {fname}({}){selection} }}",
                        defs.join(", "),
                        uses.join(", ")
                    );
                    let mut expected = format!("variables.a{target}{}", path.concat());
                    // A JSON value holds the NUL one level further down.
                    if vars_leaf_is_json(&types, &arg["type"], &path) {
                        expected.push_str(".text");
                    }
                    let (status, body) = app
                        .gql_raw(
                            Some(MUSTER),
                            Some(&admin.access),
                            &query,
                            Value::Object(vars),
                        )
                        .await;
                    assert!(status < 500, "{query} answered {status}: {body}");
                    assert_code(&body, "VALIDATION_FAILED");
                    let fields = &body["errors"][0]["extensions"]["fields"];
                    assert!(
                        fields[&expected]
                            .as_str()
                            .is_some_and(|m| m.contains("NUL")),
                        "{query}: expected {expected}, got {body}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "every string argument was tried ({checked})");
    println!("{checked} string positions refused with NUL");
    for (table, before) in tables.into_iter().zip(before) {
        assert_eq!(count_where(&app, table, "1 = 1").await, before, "{table}");
    }
}

/// Whether the string at `path` in a value of type `t` is a JSON scalar.
fn vars_leaf_is_json(types: &Types, t: &Value, path: &[String]) -> bool {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => return vars_leaf_is_json(types, &t["ofType"], path),
        "LIST" => return vars_leaf_is_json(types, &t["ofType"], &path[1..]),
        _ => {}
    }
    let ty = types.named(t);
    match path.first() {
        None => ty["name"] == "JSON",
        Some(seg) => ty["inputFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| format!(".{}", f["name"].as_str().unwrap()) == *seg)
            .is_some_and(|f| vars_leaf_is_json(types, &f["type"], &path[1..])),
    }
}
