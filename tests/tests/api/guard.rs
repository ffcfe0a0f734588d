//! Hostile GraphQL input (issue 23): deep nesting, fragment fan-out and NUL characters are
//! refused with `VALIDATION_FAILED` before they can crash or stall the server; `RATE_LIMITED`
//! speaks HTTP (429, `Retry-After`) and holds over the WebSocket too.

use std::time::{Duration, Instant};

use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Brackets the server accepts nested in the query text and in variables.
pub(crate) const MAX_NESTING: usize = 64;

/// `levels` of `open`…`close` around `inner`.
pub(crate) fn nest(open: &str, close: &str, inner: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

/// Sends a raw GraphQL POST (anonymous, tenant Musterstadt); status and body.
pub(crate) async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[track_caller]
fn assert_too_deep(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_field_error(body, "query", "deeper than 64");
}

/// The server answers a plain query (it did not crash or stall).
async fn still_serving(app: &TestApp) {
    let resp = app
        .gql(Some(MUSTER), None, "{ tenant { name } }", json!({}))
        .await;
    assert_eq!(data(&resp)["tenant"]["name"], "Stadt Musterstadt");
}

fn save_draft_literal(data: &str) -> String {
    format!(
        "mutation {{ saveDraft(input: {{serviceSlug: \"hundesteuer\", data: {data}}}) {{ accessToken draft {{ id }} }} }}"
    )
}

#[tokio::test]
async fn deeply_nested_documents_are_refused_before_parsing_and_the_server_survives() {
    let app = spawn_app().await;
    let deep = 1531;
    let cases = [
        (
            "list argument",
            format!("{{ __typename(x: {}) }}", nest("[", "]", "1", deep)),
        ),
        (
            "object argument",
            format!("{{ __typename(x: {}) }}", nest("{a:", "}", "1", deep)),
        ),
        (
            "directive argument",
            format!(
                "{{ __typename @skip(if: {}) }}",
                nest("[", "]", "true", deep)
            ),
        ),
        (
            "variable default",
            format!(
                "query($v: [Int] = {}) {{ __typename }}",
                nest("[", "]", "1", deep)
            ),
        ),
        (
            "saveDraft data, 200 levels",
            save_draft_literal(&nest("{a:", "}", "1", 200)),
        ),
        (
            "saveDraft data",
            save_draft_literal(&nest("{a:", "}", "1", deep)),
        ),
    ];
    for (what, query) in &cases {
        let (status, body) = post(&app, &json!({ "query": query })).await;
        assert_too_deep(status, &body, what);
    }
    // Variables nested deeper than 64 (within serde_json's own limit of 128).
    let (status, body) = post(
        &app,
        &json!({
            "query": "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { draft { id } } }",
            "variables": { "i": { "serviceSlug": "hundesteuer",
                "data": serde_json::from_str::<Value>(&nest("{\"a\":", "}", "1", 100)).unwrap() } },
        }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_code(&body, "VALIDATION_FAILED");
    let fields = body["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap();
    assert!(
        fields.keys().any(|k| k.starts_with("variables.i.data.a.a")),
        "{body}"
    );
    assert_eq!(count_where(&app, "drafts", "1 = 1").await, 0);

    // The multipart `operations` part.
    let operations = json!({ "query": &cases[0].1, "variables": {} });
    let boundary = "amtsplatz-deep";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{}}\r\n--{boundary}--\r\n"
    );
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_too_deep(status, &resp.json().await.unwrap(), "multipart");

    // The WebSocket `subscribe` payload: refused, and the connection keeps working.
    let mut ws = ws_ready(&app, json!({ "X-Tenant": MUSTER })).await;
    for (i, (what, query)) in cases.iter().enumerate() {
        let msg = ws_once(&mut ws, &format!("d{i}"), query, json!({})).await;
        assert_eq!(msg["type"], "next", "{what}: {msg}");
        assert_field_error(&msg["payload"], "query", "deeper than 64");
    }
    let sub =
        json!({ "id": "ok", "type": "subscribe", "payload": { "query": "{ tenant { name } }" } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    assert_eq!(
        ws_next(&mut ws).await["payload"]["data"]["tenant"]["name"],
        "Stadt Musterstadt"
    );
    still_serving(&app).await;
}

/// The largest nesting still answered: 64 brackets. A draft whose data literal reaches it is
/// saved and reads back (the data as deep as it may be); one level more is refused.
#[tokio::test]
async fn nesting_up_to_the_limit_is_answered_and_reads_back() {
    let app = spawn_app().await;
    // `mutation {` `saveDraft(` `input: {` open three levels before the data.
    let levels = MAX_NESTING - 3;
    let (status, body) = post(
        &app,
        &json!({ "query": save_draft_literal(&nest("{a:", "}", "\"x\"", levels)) }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let saved = &data(&body)["saveDraft"];
    let (id, token) = (str_at(&saved["draft"], "id"), str_at(saved, "accessToken"));
    let read = app
        .gql(
            Some(MUSTER),
            None,
            "query($id: ID!, $t: String) { draft(id: $id, accessToken: $t) { data } }",
            json!({ "id": id, "t": token }),
        )
        .await;
    let mut value = &data(&read)["draft"]["data"];
    for _ in 0..levels {
        value = &value["a"];
    }
    assert_eq!(value, "x", "{read}");

    let (status, body) = post(
        &app,
        &json!({ "query": save_draft_literal(&nest("{a:", "}", "\"x\"", levels + 1)) }),
    )
    .await;
    assert_too_deep(status, &body, "one level more");
    assert_eq!(count_where(&app, "drafts", "1 = 1").await, 1);

    // Lists count alike, and so do variables: 64 levels pass, 65 do not.
    let list = format!(
        "{{ __typename(x: {}) }}",
        nest("[", "]", "1", MAX_NESTING - 2)
    );
    let (status, body) = post(&app, &json!({ "query": list })).await;
    assert_eq!(status, 200, "answered by GraphQL: {body}");
    let q = "query($v: JSON!) { __typename }";
    let v = |n| serde_json::from_str::<Value>(&nest("[", "]", "1", n)).unwrap();
    let (status, body) = post(
        &app,
        &json!({ "query": q, "variables": { "v": v(MAX_NESTING) } }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &app,
        &json!({ "query": q, "variables": { "v": v(MAX_NESTING + 1) } }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_code(&body, "VALIDATION_FAILED");
}

/// `{ ...F0 }`, each of `F0`…`F{n-2}` spreading the next `fan` times, the last being `leaf`.
pub(crate) fn fragment_bomb(n: usize, fan: usize, leaf: &str) -> String {
    let mut q = String::from("{...F0}");
    for i in 0..n - 1 {
        q.push_str(&format!("fragment F{i} on Query{{"));
        q.push_str(&vec![format!("...F{}", i + 1); fan].join(" "));
        q.push('}');
    }
    q.push_str(&format!("fragment F{} on Query{{{leaf}}}", n - 1));
    q
}

/// The issue's documents, written as sent: `{ ...F0 }`, then `fragment Fi on Query { ...F(i+1)
/// … }` with ten spreads each, the last fragment `{ __typename }`; `width` pads with blanks.
fn spaced_fragment_bomb(n: usize, width: usize) -> String {
    let mut q = String::from("{ ...F0 }");
    for i in 0..n - 1 {
        let spreads = vec![format!("...F{}", i + 1); 10].join(" ");
        q.push_str(&format!(" fragment F{i} on Query {{ {spreads} }}"));
    }
    q.push_str(&format!(" fragment F{} on Query {{ __typename }}", n - 1));
    format!("{q:width$}")
}

#[tokio::test]
async fn fragment_fan_out_is_refused_at_once_and_does_not_stall_the_server() {
    let app = spawn_app().await;
    // 640 bytes took 7.2 s, 738 bytes (one level more) 87 s before the fan-out cap.
    let issue = [spaced_fragment_bomb(8, 0), spaced_fragment_bomb(9, 738)];
    assert_eq!(issue.each_ref().map(String::len), [640, 738]);
    for bomb in issue.iter().chain([&fragment_bomb(8, 10, "__typename")]) {
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, body) = post(&app, &json!({ "query": bomb })).await;
            fastest = fastest.min(started.elapsed());
            assert_eq!(status, 200, "{body}");
            assert_field_error(&body, "query", "selections");
        }
        println!(
            "fragment document of {} bytes refused in {fastest:?} (fastest of 3, HTTP included)",
            bomb.len()
        );
        assert!(fastest < Duration::from_millis(50), "{fastest:?}");
    }
    let bomb = fragment_bomb(8, 10, "__typename");

    // Ending in real fields: refused as fast, not after seconds of complexity counting.
    let real = fragment_bomb(8, 10, "tenant { name departments { totalCount } }");
    let started = Instant::now();
    let (_, body) = post(&app, &json!({ "query": &real })).await;
    assert_field_error(&body, "query", "selections");
    assert!(started.elapsed() < Duration::from_secs(1));

    // Several in flight, and the health check answers meanwhile.
    let started = Instant::now();
    let body = json!({ "query": &bomb });
    let bombs = (0..4).map(|_| post(&app, &body));
    let (answers, health) =
        tokio::join!(futures_util::future::join_all(bombs), app.get("/healthz"));
    assert_eq!(health.status(), 200);
    for (_, body) in answers {
        assert_code(&body, "VALIDATION_FAILED");
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    // A document using fragments within the limits is answered.
    let fine = fragment_bomb(3, 3, "tenant { name }");
    let (_, body) = post(&app, &json!({ "query": fine })).await;
    assert_eq!(data(&body)["tenant"]["name"], "Stadt Musterstadt");
}

#[tokio::test]
async fn query_operations_have_a_time_budget_mutations_run_to_the_end() {
    let app = spawn_app_with(|s| s.graphql.query_budget_ms = 1).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let heavy = "{ tenant { staff(first: 100) { edges { node { email memberships { department { name } } } } } departments(first: 100) { totalCount edges { node { id name } } } } applications(first: 100) { totalCount edges { node { id state } } } }";
    let (status, resp) = app
        .gql_raw(Some(MUSTER), Some(&admin.access), heavy, json!({}))
        .await;
    assert_eq!(status, 200);
    assert_field_error(&resp, "query", "did not finish within 1 ms");
    // The same query over the WebSocket is held to the same budget.
    let mut ws = ws_ready(
        &app,
        json!({ "X-Tenant": MUSTER, "Authorization": format!("Bearer {}", admin.access) }),
    )
    .await;
    let over = ws_once(&mut ws, "h", heavy, json!({})).await;
    assert_eq!(over["type"], "next", "{over}");
    assert_field_error(&over["payload"], "query", "did not finish within 1 ms");
    // A mutation is not cut short (login ran above); a query that needs no waiting passes.
    data(
        &app.gql(Some(MUSTER), None, "{ __typename }", json!({}))
            .await,
    );
}

#[tokio::test]
async fn nul_characters_are_validation_errors_with_their_path_and_nothing_is_stored() {
    let app = spawn_app().await;
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            None,
            "query($s: String!) { service(slug: $s) { id } }",
            json!({ "s": "a\u{0}b" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_field_error(&resp, "variables.s", "NUL");

    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "{ service(slug: \"a\\u0000b\") { id } }",
            json!({}),
        )
        .await;
    assert_field_error(&resp, "slug", "NUL");

    let draft = "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { draft { id } } }";
    let input = json!({ "serviceSlug": "hundesteuer", "data": { "name": "Erika\u{0}", "dogs": [{ "breed": "Pudel" }] } });
    let resp = app
        .gql(Some(MUSTER), None, draft, json!({ "i": input }))
        .await;
    assert_field_error(&resp, "variables.i.data.name", "NUL");
    let input = json!({ "serviceSlug": "hundesteuer", "data": { "k\u{0}ey": 1 } });
    let resp = app
        .gql(Some(MUSTER), None, draft, json!({ "i": input }))
        .await;
    assert_field_error(&resp, "variables.i.data.k\\u0000ey", "NUL");
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            &save_draft_literal("{ name: \"x\\u0000\" }"),
            json!({}),
        )
        .await;
    assert_field_error(&resp, "input.data.name", "NUL");
    assert_eq!(count_where(&app, "drafts", "1 = 1").await, 0);

    // Signed in, in the applications search.
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "query($q: String) { applications(first: 5, filter: {search: $q}) { totalCount } }",
            json!({ "q": "\u{0}" }),
        )
        .await;
    assert_field_error(&resp, "variables.q", "NUL");
}

#[tokio::test]
async fn rate_limited_answers_429_with_retry_after_and_the_same_body() {
    let app = spawn_app_with(|s| s.auth.login_per_account_per_minute = 1).await;
    app.try_login(Some(MUSTER), MUSTER_ADMIN.0, "wrong-password-123")
        .await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }",
            "variables": { "e": MUSTER_ADMIN.0, "p": MUSTER_ADMIN.1 },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert_code(&body, "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfterSeconds"], retry);
    assert_eq!(body["data"], Value::Null);
}

/// Over the WebSocket, limits per client IP hold as on POST, and the error says when to retry.
#[tokio::test]
async fn rate_limits_per_ip_hold_over_the_websocket() {
    let app = spawn_app_with(|s| s.auth.login_per_ip_per_minute = 2).await;
    let mut ws = ws_ready(&app, json!({ "X-Tenant": MUSTER })).await;
    let mut codes = Vec::new();
    let mut last = Value::Null;
    for i in 0..3 {
        // Other accounts each time: only the limit per IP can refuse.
        last = ws_once(
            &mut ws,
            &format!("l{i}"),
            "mutation($e: String!) { login(input: {email: $e, password: \"wrong-password-123\"}) { accessToken } }",
            json!({ "e": format!("nobody{i}@musterstadt.example") }),
        )
        .await;
        codes.push(last["payload"]["errors"][0]["extensions"]["code"].clone());
    }
    assert_eq!(
        codes,
        vec![
            json!("UNAUTHENTICATED"),
            json!("UNAUTHENTICATED"),
            json!("RATE_LIMITED")
        ],
        "{last}"
    );
    assert!(
        last["payload"]["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 1),
        "{last}"
    );
    // The same IP over POST is limited too: one budget per client, whatever the transport.
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            None,
            "mutation { login(input: {email: \"x@musterstadt.example\", password: \"wrong-password-123\"}) { accessToken } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 429);
    assert_code(&resp, "RATE_LIMITED");
}

/// Text with NUL entering outside GraphQL (a tenant slug in a path or query string, the
/// WebSocket's `connection_init`) names no tenant: 404 or a refused connection, never a 5xx.
#[tokio::test]
async fn nul_characters_in_tenant_slugs_outside_graphql_are_unknown_tenants() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(format!("{}/webhooks/stripe/muster%00stadt", app.base_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .get(&format!(
            "/bookings/{}.ics?token=x&tenant=a%00b",
            uuid::Uuid::nil()
        ))
        .await;
    assert_eq!(resp.status(), 404);

    let mut ws = ws_connect(&app).await;
    let init = json!({ "type": "connection_init", "payload": { "X-Tenant": "muster\u{0}stadt" } });
    ws.send(Message::text(init.to_string())).await.unwrap();
    // graphql-transport-ws refuses `connection_init` by closing with the error's message.
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut ws),
    )
    .await
    .expect("an answer in time");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert!(frame.reason.contains("not found"), "{frame:?}")
        }
        other => panic!("expected the connection to be closed: {other:?}"),
    }
    still_serving(&app).await;
}
