//! Isolation and sessions (issue 23): one authentication rule for every transport, revocation
//! that takes effect on the next request, and platform administrators kept away from citizens'
//! personal data unless an audited break-glass grant is open.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::helpers::*;

/// Opens a graphql-transport-ws connection whose upgrade request carries `headers`, sends an
/// empty `connection_init` and returns the socket with the first answer (or `None` when the
/// server closed without one).
async fn ws_with_headers(
    app: &TestApp,
    headers: &[(&'static str, String)],
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Result<Value, String>,
) {
    let url = app.base_url.replace("http://", "ws://") + "/graphql/ws";
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().unwrap());
    }
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let init = json!({ "type": "connection_init", "payload": {} });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let first = match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("an answer in time")
    {
        Some(Ok(Message::Text(t))) => Ok(serde_json::from_str(&t).unwrap()),
        Some(Ok(Message::Close(frame))) => {
            Err(frame.map(|f| f.reason.to_string()).unwrap_or_default())
        }
        other => Err(format!("{other:?}")),
    };
    (ws, first)
}

#[tokio::test]
async fn websocket_upgrade_headers_authenticate_like_a_post() {
    let app = spawn_app().await;
    let muster = app.login(Some(MUSTER), MUSTER_STAFF).await;

    // POST: Musterstadt's token on Beispielhausen is refused.
    let (status, resp) = app
        .gql_raw(
            Some(BEISPIEL),
            Some(&muster.access),
            "{ me { email } }",
            json!({}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    assert_eq!(status, 403);

    // The same headers on the WebSocket upgrade: refused as well, not an anonymous caller.
    let (_ws, first) = ws_with_headers(
        &app,
        &[
            ("X-Tenant", BEISPIEL.to_owned()),
            ("Authorization", format!("Bearer {}", muster.access)),
        ],
    )
    .await;
    let reason = first.expect_err("the connection must not be acknowledged");
    assert!(reason.contains("forbidden"), "close reason: {reason}");

    // A forged token in the upgrade header is refused too.
    let (_ws, first) = ws_with_headers(
        &app,
        &[
            ("X-Tenant", MUSTER.to_owned()),
            ("Authorization", "Bearer forged.token.here".to_owned()),
        ],
    )
    .await;
    assert!(first.is_err(), "forged token acknowledged: {first:?}");

    // The caller's own tenant in the header: acknowledged and signed in as that user.
    let (mut ws, first) = ws_with_headers(
        &app,
        &[
            ("X-Tenant", MUSTER.to_owned()),
            ("Authorization", format!("Bearer {}", muster.access)),
        ],
    )
    .await;
    assert_eq!(first.unwrap()["type"], "connection_ack");
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ me { email } }" } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let next = ws_next(&mut ws).await;
    assert_eq!(
        next["payload"]["data"]["me"]["email"], MUSTER_STAFF.0,
        "{next}"
    );
}

// ---- revocation takes effect on the next request -----------------------------------------------

const ME: &str = "{ me { email } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(input: {refreshToken: $t}) { accessToken refreshToken } }";
/// A field for tenant administrators only.
const ADMIN_ONLY: &str = "{ tenant { staff(first: 1) { totalCount } } }";

/// `me` with `token`: the email, or the error code.
async fn me(app: &TestApp, tenant: Option<&str>, token: &str) -> Result<String, (u16, String)> {
    let (status, resp) = app.gql_raw(tenant, Some(token), ME, json!({})).await;
    match resp["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => Err((status, code.to_owned())),
        None => Ok(str_at(&resp["data"]["me"], "email")),
    }
}

#[tokio::test]
async fn logout_ends_the_sessions_access_tokens_at_once() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let other = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    // Used once, so the answer is cached: the logout must reach the cache too.
    assert_eq!(
        me(&app, Some(MUSTER), &s.access).await.unwrap(),
        MUSTER_ADMIN.0
    );
    app.logout(Some(MUSTER), &s).await;
    assert_eq!(
        me(&app, Some(MUSTER), &s.access).await,
        Err((401, "UNAUTHENTICATED".to_owned()))
    );
    // Only that session ended: another login of the same user goes on.
    assert_eq!(
        me(&app, Some(MUSTER), &other.access).await.unwrap(),
        MUSTER_ADMIN.0
    );

    // The same for a platform administrator.
    let p = app.login(None, PLATFORM_ADMIN).await;
    assert_eq!(me(&app, None, &p.access).await.unwrap(), PLATFORM_ADMIN.0);
    app.logout(None, &p).await;
    assert_eq!(
        me(&app, None, &p.access).await,
        Err((401, "UNAUTHENTICATED".to_owned()))
    );
}

#[tokio::test]
async fn a_revoked_session_family_ends_its_access_tokens_at_once() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let rotated = app
        .gql(Some(MUSTER), None, REFRESH, json!({ "t": s.refresh }))
        .await;
    let access2 = str_at(&data(&rotated)["refreshSession"], "accessToken");
    assert_eq!(
        me(&app, Some(MUSTER), &s.access).await.unwrap(),
        MUSTER_ADMIN.0
    );
    assert_eq!(
        me(&app, Some(MUSTER), &access2).await.unwrap(),
        MUSTER_ADMIN.0
    );
    // The first refresh token again: reuse, the whole family is revoked.
    assert_code(
        &app.gql(Some(MUSTER), None, REFRESH, json!({ "t": s.refresh }))
            .await,
        "UNAUTHENTICATED",
    );
    for token in [&s.access, &access2] {
        assert_eq!(
            me(&app, Some(MUSTER), token).await,
            Err((401, "UNAUTHENTICATED".to_owned()))
        );
    }
}

#[tokio::test]
async fn a_revoked_role_is_gone_from_the_old_token_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let staff_id = app.staff_id(MUSTER, &admin, MUSTER_STAFF.0).await;
    let grant = "mutation($u: ID!) { grantRole(input: {userId: $u, role: TENANT_ADMIN}) { staffUser { id } } }";
    let revoke = "mutation($u: ID!) { revokeRole(input: {userId: $u, role: TENANT_ADMIN}) { staffUser { id } } }";
    data(
        &app.caller(MUSTER, &admin)
            .gql(grant, json!({ "u": staff_id }))
            .await,
    );
    let promoted = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let caller = app.caller(MUSTER, &promoted);
    assert!(
        data(&caller.gql(ADMIN_ONLY, json!({})).await)["tenant"]["staff"]["totalCount"]
            .as_i64()
            .unwrap()
            >= 1
    );
    data(
        &app.caller(MUSTER, &admin)
            .gql(revoke, json!({ "u": staff_id }))
            .await,
    );
    // The token still claims TENANT_ADMIN; the server goes by the roles of now.
    assert_code(&caller.gql(ADMIN_ONLY, json!({})).await, "FORBIDDEN");
    assert_eq!(
        me(&app, Some(MUSTER), &promoted.access).await.unwrap(),
        MUSTER_STAFF.0
    );
    // And a role granted now is there on the next request, too.
    data(
        &app.caller(MUSTER, &admin)
            .gql(grant, json!({ "u": staff_id }))
            .await,
    );
    data(&caller.gql(ADMIN_ONLY, json!({})).await);
}

#[tokio::test]
async fn a_deactivated_account_is_refused_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let staff_id = app.staff_id(MUSTER, &admin, MUSTER_STAFF.0).await;
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_eq!(
        me(&app, Some(MUSTER), &staff.access).await.unwrap(),
        MUSTER_STAFF.0
    );
    let set_active = "mutation($u: ID!, $a: Boolean!) { updateStaffUser(input: {id: $u, active: $a}) { staffUser { id } } }";
    data(
        &app.caller(MUSTER, &admin)
            .gql(set_active, json!({ "u": staff_id, "a": false }))
            .await,
    );
    assert_eq!(
        me(&app, Some(MUSTER), &staff.access).await,
        Err((401, "UNAUTHENTICATED".to_owned()))
    );
    // Reactivating the account does not revive the sessions it had.
    data(
        &app.caller(MUSTER, &admin)
            .gql(set_active, json!({ "u": staff_id, "a": true }))
            .await,
    );
    assert_eq!(
        me(&app, Some(MUSTER), &staff.access).await,
        Err((401, "UNAUTHENTICATED".to_owned()))
    );
    let again = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_eq!(
        me(&app, Some(MUSTER), &again.access).await.unwrap(),
        MUSTER_STAFF.0
    );
}

// ---- platform administrators and personal data -------------------------------------------------

#[tokio::test]
async fn platform_admins_read_personal_data_only_under_an_audited_break_glass_grant() {
    let app = spawn_app().await;
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { id } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": crate::applications::dog(false) } }),
        )
        .await;
    let id = str_at(&data(&resp)["submitApplication"]["application"], "id");
    let platform = app.login(None, PLATFORM_ADMIN).await;
    let op = app.caller(MUSTER, &platform);
    let list = "{ applications(first: 5) { totalCount edges { node { id data } } } }";
    let detail = "query($id: ID!) { application(id: $id) { reference data } }";
    let export = |path: String| {
        app.client
            .get(format!("{}{path}", app.base_url))
            .header("X-Tenant", MUSTER)
            .bearer_auth(&platform.access)
            .send()
    };
    let reads = || count_where(&app, "audit_log", "action = 'break_glass.read'");

    // No grant: the operator runs the tenant, but citizens' data stay closed.
    data(
        &op.gql("{ tenant { staff(first: 1) { totalCount } } }", json!({}))
            .await,
    );
    assert_code(&op.gql(list, json!({})).await, "FORBIDDEN");
    assert_code(&op.gql(detail, json!({ "id": id })).await, "FORBIDDEN");
    let r = export(format!("/api/applications/{id}.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["extensions"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(
        export("/api/applications/export".into())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(reads().await, 0);

    // A grant needs a reason, and only platform administrators open one.
    let open = "mutation($r: String!) { openBreakGlass(input: {reason: $r, minutes: 30}) { grant { id reason expiresAt } } }";
    let resp = op.gql(open, json!({ "r": "kurz" })).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["extensions"]["fields"]["input.reason"].is_string(),
        "{resp}"
    );
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(open, json!({ "r": "Ticket 4711: Antrag hängt fest" }))
            .await,
        "FORBIDDEN",
    );
    assert_eq!(count_where(&app, "break_glass_grants", "1 = 1").await, 0);

    let resp = op
        .gql(open, json!({ "r": "Ticket 4711: Antrag hängt fest" }))
        .await;
    assert_eq!(
        data(&resp)["openBreakGlass"]["grant"]["reason"],
        "Ticket 4711: Antrag hängt fest"
    );
    assert_eq!(
        count_where(&app, "audit_log", "action = 'break_glass.open'").await,
        1
    );

    // With the grant: each read is allowed and leaves one audit entry.
    let resp = op.gql(list, json!({})).await;
    assert_eq!(data(&resp)["applications"]["totalCount"], 1);
    assert_eq!(reads().await, 1);
    let resp = op.gql(detail, json!({ "id": id })).await;
    assert_eq!(
        data(&resp)["application"]["data"]["name"],
        "Erika Mustermann"
    );
    assert_eq!(reads().await, 2);
    let r = export(format!("/api/applications/{id}.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reads().await, 3);
    assert_eq!(
        count_where(
            &app,
            "audit_log",
            &format!("action = 'break_glass.read' AND target = 'application:{id}' AND actor LIKE 'platform:%'")
        )
        .await,
        2
    );

    // The grant is for Musterstadt only.
    assert_code(
        &app.gql(Some(BEISPIEL), Some(&platform.access), list, json!({}))
            .await,
        "FORBIDDEN",
    );
    // Staff are not audited per read: nothing changes for them.
    let staff = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    data(&app.caller(MUSTER, &staff).gql(list, json!({})).await);
    assert_eq!(reads().await, 3);
}

/// An open WebSocket does not keep a caller signed in: after logout its next operation is
/// refused, and a subscription it holds ends with `UNAUTHENTICATED` instead of delivering the
/// next event.
#[tokio::test]
async fn logout_ends_what_an_open_websocket_may_do() {
    let app = spawn_app().await;
    let (a, _) = crate::applications::submitted(&app, crate::applications::dog(false)).await;
    let id = str_at(&a, "id");
    let clerk = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let mut ws = ws_ready(
        &app,
        json!({ "X-Tenant": MUSTER, "Authorization": format!("Bearer {}", clerk.access) }),
    )
    .await;
    // The clerk follows the application as staff (no citizen's access token).
    let sub = json!({ "id": "s", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { applicationStatusChanged(id: $id) { state } }",
        "variables": { "id": id } } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let first = ws_next(&mut ws).await;
    assert_eq!(
        first["payload"]["data"]["applicationStatusChanged"]["state"], "submitted",
        "{first}"
    );
    let me = ws_once(&mut ws, "me1", "{ me { email } }", json!({})).await;
    assert_eq!(me["payload"]["data"]["me"]["email"], MUSTER_KASSE.0, "{me}");

    app.logout(Some(MUSTER), &clerk).await;

    let me = ws_once(&mut ws, "me2", "{ me { email } }", json!({})).await;
    assert_eq!(
        me["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{me}"
    );
    assert!(me["payload"]["data"]["me"].is_null(), "{me}");

    // A change made now (in another session of the same clerk) does not reach the signed-out
    // connection: the subscription ends instead.
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let moved = app
        .caller(MUSTER, &kasse)
        .gql(
            "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
            json!({ "i": { "id": id, "to": "in_review" } }),
        )
        .await;
    assert_eq!(
        data(&moved)["transitionApplication"]["application"]["state"],
        "in_review"
    );
    let ended = ws_next(&mut ws).await;
    assert_eq!(ended["id"], "s", "{ended}");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    assert!(!ended.to_string().contains("in_review"), "{ended}");
    let complete = ws_next(&mut ws).await;
    assert_eq!(complete["type"], "complete", "{complete}");
    assert_eq!(complete["id"], "s", "{complete}");
}
