//! Staff login, refresh rotation, logout, token verification, rate limits, citizen OIDC.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::*;

const ME: &str = "{ me { kind id email roles tenant { slug } departments { key } } }";

#[tokio::test]
async fn staff_login_returns_tokens_and_me_shows_roles_and_departments() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let me = app.caller(MUSTER, &s).gql(ME, json!({})).await;
    let me = &data(&me)["me"];
    assert_eq!(me["kind"], "STAFF");
    assert_eq!(me["email"], MUSTER_STAFF.0);
    assert_eq!(me["roles"], json!(["STAFF"]));
    assert_eq!(me["tenant"]["slug"], MUSTER);
    let keys: Vec<_> = me["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["buergerbuero", "ordnungsamt"]);
    // Without X-Tenant, the token's tenant is used.
    let me2 = app.gql(None, Some(&s.access), ME, json!({})).await;
    assert_eq!(data(&me2)["me"]["tenant"]["slug"], MUSTER);
}

#[tokio::test]
async fn anonymous_me_is_null() {
    let app = spawn_app().await;
    let resp = app.gql(Some(MUSTER), None, ME, json!({})).await;
    assert!(data(&resp)["me"].is_null());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let app = spawn_app().await;
    let wrong = app
        .try_login(Some(MUSTER), MUSTER_ADMIN.0, "not-the-password")
        .await;
    assert_code(&wrong, "UNAUTHENTICATED");
    let unknown = app
        .try_login(
            Some(MUSTER),
            "nobody@musterstadt.example",
            "not-the-password",
        )
        .await;
    assert_code(&unknown, "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    // Right password, wrong tenant: the account does not exist there.
    assert_code(
        &app.try_login(Some(BEISPIEL), MUSTER_ADMIN.0, MUSTER_ADMIN.1)
            .await,
        "UNAUTHENTICATED",
    );
}

const REFRESH: &str = "mutation($t: String!) { refreshSession(input: {refreshToken: $t}) { accessToken refreshToken } }";

#[tokio::test]
async fn refresh_rotates_and_reusing_an_old_token_revokes_the_family() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;

    let r1 = app
        .gql(Some(MUSTER), None, REFRESH, json!({ "t": s.refresh }))
        .await;
    let second = str_at(&data(&r1)["refreshSession"], "refreshToken");
    let access2 = str_at(&data(&r1)["refreshSession"], "accessToken");
    assert_ne!(second, s.refresh);
    assert_eq!(
        data(&app.gql(Some(MUSTER), Some(&access2), ME, json!({})).await)["me"]["email"],
        MUSTER_ADMIN.0
    );

    // The first token again: reuse. It fails, and so does the legitimately rotated one.
    assert_code(
        &app.gql(Some(MUSTER), None, REFRESH, json!({ "t": s.refresh }))
            .await,
        "UNAUTHENTICATED",
    );
    assert_code(
        &app.gql(Some(MUSTER), None, REFRESH, json!({ "t": second }))
            .await,
        "UNAUTHENTICATED",
    );

    // A fresh login starts a new, working family.
    let s2 = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    data(
        &app.gql(Some(MUSTER), None, REFRESH, json!({ "t": s2.refresh }))
            .await,
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_hashed() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let secret = s.refresh.rsplit('.').next().unwrap();
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    use sea_orm::ConnectionTrait;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT token_hash FROM refresh_tokens",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let hash: String = row.try_get("", "token_hash").unwrap();
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(secret));
    }
}

#[tokio::test]
async fn logout_ends_the_session_family() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    app.logout(Some(MUSTER), &s).await;
    assert_code(
        &app.gql(Some(MUSTER), None, REFRESH, json!({ "t": s.refresh }))
            .await,
        "UNAUTHENTICATED",
    );
}

#[tokio::test]
async fn a_refresh_token_of_another_tenant_is_forbidden() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    assert_code(
        &app.gql(Some(BEISPIEL), None, REFRESH, json!({ "t": s.refresh }))
            .await,
        "FORBIDDEN",
    );
}

fn sign(pem: &str, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn valid_claims(sub: &str, tenant: &str, sid: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "iss": "amtsplatz", "aud": "amtsplatz-api", "sub": sub, "exp": now + 600, "nbf": now - 5, "iat": now,
            "jti": "x", "kind": "staff", "tenant": tenant, "roles": ["tenant_admin"], "sid": sid })
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_rejected() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    // Take sub and tenant from a real token so only the field under test is wrong.
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let (sub, tenant, sid) = (
        payload["sub"].as_str().unwrap(),
        payload["tenant"].as_str().unwrap(),
        payload["sid"].as_str().unwrap(),
    );
    let pem = app.signing_key_pem();
    let es256 = Header::new(Algorithm::ES256);

    // Control: a token we sign with the server's key and valid claims works.
    let ok = sign(&pem, es256.clone(), &valid_claims(sub, tenant, sid));
    assert_eq!(
        data(&app.gql(Some(MUSTER), Some(&ok), ME, json!({})).await)["me"]["kind"],
        "STAFF"
    );

    let now = chrono::Utc::now().timestamp();
    let mut cases: Vec<(&str, String)> = Vec::new();
    for (name, key, value) in [
        ("expired", "exp", json!(now - 120)),
        ("wrong audience", "aud", json!("someone-else")),
        ("wrong issuer", "iss", json!("amtsplatz-evil")),
        ("not yet valid", "nbf", json!(now + 600)),
    ] {
        let mut c = valid_claims(sub, tenant, sid);
        c[key] = value;
        cases.push((name, sign(&pem, es256.clone(), &c)));
    }
    // Signed by the server's key, but naming a session that never existed.
    let mut c = valid_claims(sub, tenant, sid);
    c["sid"] = json!(uuid::Uuid::new_v4().to_string());
    cases.push(("unknown session", sign(&pem, es256.clone(), &c)));
    for missing in ["nbf", "exp", "aud", "sub", "sid"] {
        let mut c = valid_claims(sub, tenant, sid);
        c.as_object_mut().unwrap().remove(missing);
        cases.push(("missing claim", sign(&pem, es256.clone(), &c)));
    }
    // alg=none: header and payload, empty signature.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(serde_json::to_vec(&valid_claims(sub, tenant, sid)).unwrap())
    );
    cases.push(("alg none", none));
    // HS256 keyed with the public key (the classic algorithm-confusion attack).
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    cases.push((
        "HS256",
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &valid_claims(sub, tenant, sid),
            &EncodingKey::from_secret(&public),
        )
        .unwrap(),
    ));
    // Tampered payload: roles changed after signing.
    let parts: Vec<&str> = s.access.split('.').collect();
    let mut tampered_claims = payload.clone();
    tampered_claims["roles"] = json!(["tenant_admin", "author"]);
    cases.push((
        "tampered",
        format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(serde_json::to_vec(&tampered_claims).unwrap()),
            parts[2]
        ),
    ));
    cases.push(("garbage", "not.a.token".into()));

    for (name, token) in cases {
        let (status, resp) = app.gql_raw(Some(MUSTER), Some(&token), ME, json!({})).await;
        assert_eq!(
            resp["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{name}: {resp}"
        );
        assert_eq!(status, 401, "{name}");
    }
    // A non-Bearer Authorization header is not silently anonymous either.
    let resp = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", MUSTER)
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_token_of_tenant_a_is_forbidden_on_tenant_b() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let (status, resp) = app
        .gql_raw(
            Some(BEISPIEL),
            Some(&s.access),
            "{ tenant { name } }",
            json!({}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    assert_eq!(status, 403);
}

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let app = spawn_app_with(|s| s.auth.login_per_account_per_minute = 3).await;
    for _ in 0..3 {
        assert_code(
            &app.try_login(Some(MUSTER), MUSTER_ADMIN.0, "wrong-password-123")
                .await,
            "UNAUTHENTICATED",
        );
    }
    // The fourth attempt is refused even with the right password, and says when to retry.
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            None,
            "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }",
            json!({ "e": MUSTER_ADMIN.0, "p": MUSTER_ADMIN.1 }),
        )
        .await;
    assert_code(&resp, "RATE_LIMITED");
    assert!(
        resp["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(status, 429, "RATE_LIMITED speaks HTTP");
    // Another account is not affected.
    data(
        &app.try_login(Some(MUSTER), MUSTER_STAFF.0, MUSTER_STAFF.1)
            .await,
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_ip() {
    let app = spawn_app_with(|s| s.auth.login_per_ip_per_minute = 4).await;
    for i in 0..4 {
        let resp = app
            .try_login(
                Some(MUSTER),
                &format!("user{i}@musterstadt.example"),
                "whatever-password",
            )
            .await;
        assert_code(&resp, "UNAUTHENTICATED");
    }
    assert_code(
        &app.try_login(Some(MUSTER), MUSTER_ADMIN.0, MUSTER_ADMIN.1)
            .await,
        "RATE_LIMITED",
    );
}

#[tokio::test]
async fn platform_admin_logs_in_without_tenant_and_lists_tenants() {
    let app = spawn_app().await;
    let p = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(
            None,
            Some(&p.access),
            "{ me { kind roles tenant { slug } } tenants { totalCount edges { node { slug } } } }",
            json!({}),
        )
        .await;
    let d = data(&resp);
    assert_eq!(d["me"]["kind"], "PLATFORM_ADMIN");
    assert!(d["me"]["tenant"].is_null());
    assert_eq!(d["tenants"]["totalCount"], 3);
    // Tenant staff may not list tenants.
    let s = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    assert_code(
        &app.caller(MUSTER, &s)
            .gql("{ tenants { totalCount } }", json!({}))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.gql(None, None, "{ tenants { totalCount } }", json!({}))
            .await,
        "UNAUTHENTICATED",
    );
}

/// Onboards a tenant whose citizens sign in at `idp`.
async fn tenant_with_idp(app: &TestApp, idp: &FakeIdp) {
    let p = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(
            None,
            Some(&p.access),
            "mutation($i: OnboardTenantInput!) { onboardTenant(input: $i) { tenant { slug citizenLoginIssuer } } }",
            json!({ "i": {
                "slug": "idp-town", "name": "IdP Town", "ags": "01999004",
                "citizenLogin": { "issuer": idp.issuer, "clientId": "amtsplatz", "jwksUrl": idp.jwks_url },
                "firstAdmin": { "email": "admin@idp.example", "displayName": "Admin", "password": "idp-town-admin-pw" },
            }}),
        )
        .await;
    assert_eq!(
        data(&resp)["onboardTenant"]["tenant"]["citizenLoginIssuer"],
        idp.issuer.as_str()
    );
}

#[tokio::test]
async fn citizen_id_tokens_are_verified_against_the_tenants_jwks() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    tenant_with_idp(&app, &idp).await;

    let token = idp.id_token(json!({}));
    let resp = app
        .gql(
            Some("idp-town"),
            Some(&token),
            "{ me { kind id email roles tenant { slug } } }",
            json!({}),
        )
        .await;
    let me = &data(&resp)["me"];
    assert_eq!(me["kind"], "CITIZEN");
    assert_eq!(me["id"], "citizen-4711");
    assert_eq!(me["roles"], json!(["CITIZEN"]));

    let now = chrono::Utc::now().timestamp();
    for (name, token) in [
        ("expired", idp.id_token(json!({ "exp": now - 120 }))),
        (
            "wrong audience",
            idp.id_token(json!({ "aud": "another-client" })),
        ),
        ("no subject", idp.id_token(json!({ "sub": null }))),
    ] {
        let resp = app
            .gql(Some("idp-town"), Some(&token), "{ me { kind } }", json!({}))
            .await;
        assert_code(&resp, "UNAUTHENTICATED");
        let _ = name;
    }
    // A token signed by a key the JWKS does not publish.
    let rogue = FakeIdp::start().await;
    let forged = rogue.id_token(json!({ "iss": idp.issuer }));
    assert_code(
        &app.gql(
            Some("idp-town"),
            Some(&forged),
            "{ me { kind } }",
            json!({}),
        )
        .await,
        "UNAUTHENTICATED",
    );
    // The same valid ID token on another tenant: that tenant trusts no such issuer.
    assert_code(
        &app.gql(Some(MUSTER), Some(&token), "{ me { kind } }", json!({}))
            .await,
        "UNAUTHENTICATED",
    );
    // Citizens are not staff.
    assert_code(
        &app.gql(
            Some("idp-town"),
            Some(&token),
            "{ tenant { staff { totalCount } } }",
            json!({}),
        )
        .await,
        "FORBIDDEN",
    );
}

#[tokio::test]
async fn a_rotated_provider_key_is_fetched_when_its_kid_first_appears() {
    let app = spawn_app_with(|s| s.auth.jwks_refetch_cooldown_secs = 0).await;
    let idp = FakeIdp::start().await;
    tenant_with_idp(&app, &idp).await;
    let me = "{ me { kind id } }";
    // The first token loads and caches the key set.
    let resp = app
        .gql(
            Some("idp-town"),
            Some(&idp.id_token(json!({}))),
            me,
            json!({}),
        )
        .await;
    assert_eq!(data(&resp)["me"]["kind"], "CITIZEN");
    // The provider rotates: the new kid is not in the cached set, so the server refetches.
    idp.rotate();
    let rotated = idp.id_token(json!({ "sub": "citizen-after-rotation" }));
    let resp = app
        .gql(Some("idp-town"), Some(&rotated), me, json!({}))
        .await;
    assert_eq!(data(&resp)["me"]["id"], "citizen-after-rotation");
}

/// Tokens as Keycloak and other providers issue them: RS256, a header without `kid`, `aud` as an
/// array (the client among other audiences).
#[tokio::test]
async fn id_tokens_in_rs256_without_kid_and_with_an_audience_array_are_verified() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    tenant_with_idp(&app, &idp).await;
    let me = |token: String| {
        let app = &app;
        async move {
            app.gql(
                Some("idp-town"),
                Some(&token),
                "{ me { kind id } }",
                json!({}),
            )
            .await
        }
    };
    let cases = [
        (
            "RS256 with kid",
            idp.sign(RS256, true, json!({ "sub": "rs-kid" })),
            "rs-kid",
        ),
        (
            "RS256 without kid",
            idp.sign(RS256, false, json!({ "sub": "rs-nokid" })),
            "rs-nokid",
        ),
        (
            "ES256 without kid",
            idp.sign(ES256, false, json!({ "sub": "es-nokid" })),
            "es-nokid",
        ),
        (
            "aud as an array",
            idp.sign(
                RS256,
                true,
                json!({ "sub": "rs-aud", "aud": ["account", "amtsplatz"] }),
            ),
            "rs-aud",
        ),
        (
            "aud array, no kid",
            idp.sign(
                ES256,
                false,
                json!({ "sub": "es-aud", "aud": ["amtsplatz", "broker"] }),
            ),
            "es-aud",
        ),
    ];
    for (name, token, sub) in cases {
        let resp = me(token).await;
        assert_eq!(data(&resp)["me"]["id"], sub, "{name}: {resp:#}");
        assert_eq!(data(&resp)["me"]["kind"], "CITIZEN", "{name}");
    }

    // Still refused: an audience array without this client, an expired token without kid, a
    // token without kid signed by a key the set does not publish, a kid naming a key of
    // another type than the header's algorithm.
    let now = chrono::Utc::now().timestamp();
    let rogue = FakeIdp::start().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rs = idp.sign(RS256, true, json!({}));
    let mut parts: Vec<String> = rs.split('.').map(str::to_owned).collect();
    parts[0] = b64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"rsa-1"}"#);
    let refused = [
        (
            "aud array without us",
            idp.sign(RS256, false, json!({ "aud": ["account", "broker"] })),
        ),
        (
            "expired, no kid",
            idp.sign(RS256, false, json!({ "exp": now - 120 })),
        ),
        (
            "unknown signer, no kid",
            rogue.sign(ES256, false, json!({ "iss": idp.issuer })),
        ),
        ("kid of an RSA key, ES256 header", parts.join(".")),
    ];
    for (name, token) in refused {
        let resp = me(token).await;
        assert_code(&resp, "UNAUTHENTICATED");
        let _ = name;
    }
}

#[tokio::test]
async fn unknown_kids_do_not_refetch_the_key_set_within_the_cooldown() {
    let app = spawn_app().await; // default cooldown: 30 s
    let idp = FakeIdp::start().await;
    tenant_with_idp(&app, &idp).await;
    data(
        &app.gql(
            Some("idp-town"),
            Some(&idp.id_token(json!({}))),
            "{ me { kind } }",
            json!({}),
        )
        .await,
    );
    idp.rotate();
    // Within the cooldown the new key is not fetched yet: the token is refused, not trusted blindly.
    let resp = app
        .gql(
            Some("idp-town"),
            Some(&idp.id_token(json!({}))),
            "{ me { kind } }",
            json!({}),
        )
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
}
