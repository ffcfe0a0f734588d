//! The test harness: [`spawn_app`] and a [`TestApp`] with typed helpers.

use std::path::PathBuf;

use futures_util::StreamExt as _;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use server::settings::Settings;
use server::startup::Application;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// Demo accounts from `tenants/`.
pub const MUSTER: &str = "musterstadt";
pub const BEISPIEL: &str = "beispielhausen";
pub const MUSTER_ADMIN: (&str, &str) = ("admin@musterstadt.example", "musterstadt-admin");
pub const MUSTER_STAFF: (&str, &str) = ("sachbearbeitung@musterstadt.example", "musterstadt-staff");
pub const BEISPIEL_ADMIN: (&str, &str) = ("admin@beispielhausen.example", "beispielhausen-admin");
pub const PLATFORM_ADMIN: (&str, &str) = ("platform@amtsplatz.example", "amtsplatz-demo");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The PostgreSQL server to create test databases on, if the suite runs on PostgreSQL.
pub fn postgres_base_url() -> Option<String> {
    std::env::var("AMTSPLATZ_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// A fresh, empty PostgreSQL database, dropped when this value is dropped.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    base: String,
}

impl PgDatabase {
    pub async fn create(base: &str) -> Self {
        let name = format!("amtsplatz_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(base)
            .await
            .expect("connect to the PostgreSQL test server");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        // Options such as `?sslmode=require` stay on the new database's URL.
        let (path, options) = match base.split_once('?') {
            Some((path, options)) => (path, format!("?{options}")),
            None => (base, String::new()),
        };
        let url = match path.rsplit_once('/') {
            Some((server, _db)) => format!("{server}/{name}{options}"),
            None => panic!("AMTSPLATZ_TEST_DATABASE_URL must end in /<database>"),
        };
        Self {
            name,
            url,
            base: base.to_owned(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs outside async context; a short-lived runtime on its own thread does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&base).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    /// The owner URL of this test's database.
    pub db_url: String,
    pub data_dir: PathBuf,
    pub is_postgres: bool,
    /// The data folder's and database's guards; `None` on a replica (the first server owns them).
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

/// Settings every test starts from: port 0, a temporary data folder, the demo tenants.
pub fn test_settings(data_dir: &std::path::Path, db_url: &str) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        tenants_dir: Some(repo_root().join("tenants")),
        demo: Some(true),
        workers: Some(1),
        shutdown_timeout_secs: 1,
        ..Settings::default()
    };
    s.database.url = Some(db_url.to_owned().into());
    s.database.max_connections = 8;
    s.auth.oidc_allow_http = true;
    // Tests submit hundreds of applications from one IP; the limit has its own test.
    s.applications.writes_per_ip_per_minute = 100_000;
    s.appointments.bookings_per_ip_per_minute = 100_000;
    s.appointments.bookings_per_contact_per_hour = 100_000;
    s
}

/// A fresh database URL (and, on PostgreSQL, the database's guard) in `dir`.
pub async fn fresh_database(dir: &std::path::Path) -> (String, Option<PgDatabase>) {
    match postgres_base_url() {
        Some(base) => {
            let pg = PgDatabase::create(&base).await;
            (pg.url.clone(), Some(pg))
        }
        None => (
            format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            None,
        ),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        server::telemetry::init(server::settings::LogFormat::Text);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (db_url, pg) = fresh_database(dir.path()).await;
    let mut settings = test_settings(dir.path(), &db_url);
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("the application builds");
    let base_url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base_url,
        client: reqwest::Client::new(),
        db_url,
        data_dir: dir.path().to_owned(),
        is_postgres: pg.is_some(),
        _dir: Some(dir),
        _pg: pg,
    }
}

/// Two servers on one database and one data folder (signing key, payment secrets key, local
/// object store), as replicas behind a load balancer are; both with the settings `configure`
/// makes. The first owns the database and folder, so it must outlive the second.
pub async fn spawn_replicas(configure: impl Fn(&mut Settings)) -> (TestApp, TestApp) {
    let a = spawn_app_with(&configure).await;
    let b = a.spawn_replica(&configure).await;
    (a, b)
}

impl TestApp {
    /// Another server on this one's database and data folder: a replica.
    pub async fn spawn_replica(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings(&self.data_dir, &self.db_url);
        configure(&mut settings);
        let app = Application::build(settings)
            .await
            .expect("the replica builds");
        let base_url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            base_url,
            client: reqwest::Client::new(),
            db_url: self.db_url.clone(),
            data_dir: self.data_dir.clone(),
            is_postgres: self.is_postgres,
            _dir: None,
            _pg: None,
        }
    }
}

/// Access and refresh token of a login.
pub struct Session {
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// Sends a GraphQL request with an optional `X-Tenant` and bearer token; returns status and body.
    pub async fn gql_raw(
        &self,
        tenant: Option<&str>,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base_url))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = tenant {
            req = req.header("X-Tenant", t);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    pub async fn gql(
        &self,
        tenant: Option<&str>,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        self.gql_raw(tenant, token, query, variables).await.1
    }

    /// A caller signed in to `tenant` with `session`.
    pub fn caller<'a>(&'a self, tenant: &'a str, session: &'a Session) -> Caller<'a> {
        Caller {
            app: self,
            tenant,
            token: &session.access,
        }
    }

    pub async fn try_login(&self, tenant: Option<&str>, email: &str, password: &str) -> Value {
        self.gql(
            tenant,
            None,
            "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken refreshToken accessTokenExpiresAt viewer { kind roles } } }",
            json!({ "e": email, "p": password }),
        )
        .await
    }

    /// Logs `session` out (with its refresh token) and asserts that it worked.
    pub async fn logout(&self, tenant: Option<&str>, session: &Session) {
        let out = self
            .gql(
                tenant,
                None,
                "mutation($t: String!) { logout(input: {refreshToken: $t}) { ok } }",
                json!({ "t": session.refresh }),
            )
            .await;
        assert_eq!(data(&out)["logout"]["ok"], true, "{out:#}");
    }

    pub async fn login(&self, tenant: Option<&str>, (email, password): (&str, &str)) -> Session {
        let resp = self.try_login(tenant, email, password).await;
        let login = &data(&resp)["login"];
        Session {
            access: str_at(login, "accessToken"),
            refresh: str_at(login, "refreshToken"),
        }
    }

    /// The ID of a department of `tenant` by key (public query).
    pub async fn department_id(&self, tenant: &str, key: &str) -> String {
        let resp = self
            .gql(
                Some(tenant),
                None,
                "{ tenant { departments(first: 100) { edges { node { id key } } } } }",
                json!({}),
            )
            .await;
        data(&resp)["tenant"]["departments"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .find(|e| e["node"]["key"] == key)
            .map(|e| str_at(&e["node"], "id"))
            .unwrap_or_else(|| panic!("department {key} of {tenant}"))
    }

    /// The ID of a staff user of `tenant` by email, as seen by its admin.
    pub async fn staff_id(&self, tenant: &str, admin: &Session, email: &str) -> String {
        let resp = self
            .gql(
                Some(tenant),
                Some(&admin.access),
                "{ tenant { staff(first: 100) { edges { node { id email } } } } }",
                json!({}),
            )
            .await;
        data(&resp)["tenant"]["staff"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .find(|e| e["node"]["email"] == email)
            .map(|e| str_at(&e["node"], "id"))
            .unwrap_or_else(|| panic!("staff {email} of {tenant}"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request")
    }

    /// The server's signing key (PKCS#8 PEM), to forge tokens with chosen claims.
    pub fn signing_key_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("jwt-es256.pem")).expect("signing key file")
    }
}

/// A signed-in client of one tenant.
pub struct Caller<'a> {
    app: &'a TestApp,
    tenant: &'a str,
    token: &'a str,
}

impl Caller<'_> {
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.app
            .gql(Some(self.tenant), Some(self.token), query, variables)
            .await
    }
}

/// The `data` of a response that must have no errors.
#[track_caller]
pub fn data(resp: &Value) -> &Value {
    assert!(
        resp.get("errors").is_none_or(Value::is_null),
        "unexpected errors: {resp:#}"
    );
    &resp["data"]
}

#[track_caller]
pub fn str_at(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v:#}"))
        .to_owned()
}

/// Asserts the response failed with exactly this `extensions.code` (first error).
#[track_caller]
pub fn assert_code(resp: &Value, code: &str) {
    let got = resp["errors"][0]["extensions"]["code"].as_str();
    assert_eq!(got, Some(code), "expected {code}, got {resp:#}");
}

/// A local OIDC provider: P-256 signing keys and their JWKS served on 127.0.0.1.
/// [`FakeIdp::rotate`] publishes a new key and signs with it from then on. The set also holds
/// an RS256 key (Keycloak's default; a fixed test key from `tests/fixtures`, the same for every
/// `FakeIdp`), used by [`FakeIdp::sign`].
///
/// It also speaks the authorization code flow as Keycloak does, for the portal's sign-in:
/// discovery at `<issuer>/.well-known/openid-configuration`, an authorization endpoint that
/// signs in [`FakeIdp::login_as`] at once (no login form) and redirects back with a one-time
/// code, and a token endpoint that insists on the PKCE verifier (S256) and the same
/// redirect URI and client, and answers an ID token carrying the request's nonce.
pub struct FakeIdp {
    pub jwks_url: String,
    pub issuer: String,
    jwks: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    signing: std::sync::Arc<std::sync::Mutex<(jsonwebtoken::EncodingKey, String)>>,
    /// Claims (over the defaults) of whoever signs in next through the authorization endpoint.
    pub login_as: std::sync::Arc<std::sync::Mutex<Value>>,
    /// Codes redeemed at the token endpoint, and those refused.
    pub redeemed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: actix_web::dev::ServerHandle,
}

/// A new P-256 key: its encoding key and public JWK with `kid`.
fn new_idp_key(kid: &str) -> (jsonwebtoken::EncodingKey, Value) {
    use base64::Engine as _;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let secret = loop {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).expect("key");
    let point = p256::EncodedPoint::from(secret.public_key());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64.encode(point.x().expect("x")), "y": b64.encode(point.y().expect("y")),
    });
    (encoding, jwk)
}

type Signing = std::sync::Arc<std::sync::Mutex<(jsonwebtoken::EncodingKey, String)>>;

/// An ES256 ID token by the current key: `claims` over valid defaults for `issuer`.
fn sign_es256(signing: &Signing, issuer: &str, overrides: &Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer, "aud": "amtsplatz", "sub": "citizen-4711", "exp": now + 300, "iat": now,
        "email": "erika@example.org", "name": "Erika Mustermann",
    });
    if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            c.insert(k.clone(), v.clone());
        }
    }
    let signing = signing.lock().expect("signing");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(signing.1.clone());
    jsonwebtoken::encode(&header, &claims, &signing.0).expect("sign")
}

/// An authorization the fake provider granted, until its code is redeemed.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    claims: Value,
}

impl FakeIdp {
    pub async fn start() -> Self {
        use actix_web::{HttpResponse, web};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let (encoding, jwk) = new_idp_key("key-1");
        let jwks = Arc::new(Mutex::new(vec![jwk]));
        let signing: Signing = Arc::new(Mutex::new((encoding, "key-1".to_owned())));
        let login_as = Arc::new(Mutex::new(json!({})));
        let grants: Arc<Mutex<std::collections::HashMap<String, Grant>>> = Arc::default();
        let (redeemed, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let rsa_jwk: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("tests/fixtures/idp-rs256.jwk.json"))
                .expect("RSA JWK fixture"),
        )
        .expect("JWK");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let issuer = format!("{base}/realms/buerger");
        let (served, iss) = (jwks.clone(), issuer.clone());
        let (sign_key, who) = (signing.clone(), login_as.clone());
        let (ok, bad) = (redeemed.clone(), refused.clone());
        let server = actix_web::HttpServer::new(move || {
            let (served, rsa_jwk, iss) = (served.clone(), rsa_jwk.clone(), iss.clone());
            let (grants_a, grants_t) = (grants.clone(), grants.clone());
            let (sign_key, who, ok, bad) = (sign_key.clone(), who.clone(), ok.clone(), bad.clone());
            let discovery = json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/protocol/openid-connect/auth"),
                "token_endpoint": format!("{iss}/protocol/openid-connect/token"),
                "jwks_uri": format!("{}/certs", iss.trim_end_matches("/realms/buerger")),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "email"],
            });
            actix_web::App::new()
                .route(
                    "/certs",
                    web::get().to(move || {
                        let mut keys = served.lock().expect("jwks").clone();
                        keys.push(rsa_jwk.clone());
                        async move { HttpResponse::Ok().json(json!({ "keys": keys })) }
                    }),
                )
                .route(
                    "/realms/buerger/.well-known/openid-configuration",
                    web::get().to(move || {
                        let doc = discovery.clone();
                        async move { HttpResponse::Ok().json(doc) }
                    }),
                )
                .route(
                    "/realms/buerger/protocol/openid-connect/auth",
                    web::get().to(
                        move |q: web::Query<std::collections::HashMap<String, String>>| {
                            let q = q.into_inner();
                            let grant = (|| {
                                if q.get("response_type")? != "code"
                                    || q.get("code_challenge_method")? != "S256"
                                    || !q.get("scope")?.split(' ').any(|s| s == "openid")
                                {
                                    return None;
                                }
                                Some(Grant {
                                    client_id: q.get("client_id")?.clone(),
                                    redirect_uri: q.get("redirect_uri")?.clone(),
                                    challenge: q.get("code_challenge")?.clone(),
                                    nonce: q.get("nonce").cloned(),
                                    claims: who.lock().expect("login_as").clone(),
                                })
                            })();
                            let answer = match grant {
                                Some(grant) => {
                                    let code = format!("code-{}", uuid::Uuid::new_v4());
                                    let state = q.get("state").cloned().unwrap_or_default();
                                    let to = format!(
                                        "{}?code={code}&state={}&session_state=fake",
                                        grant.redirect_uri,
                                        percent_encode(&state)
                                    );
                                    grants_a.lock().expect("grants").insert(code, grant);
                                    HttpResponse::Found()
                                        .insert_header(("location", to))
                                        .finish()
                                }
                                None => HttpResponse::BadRequest().body("invalid request"),
                            };
                            async move { answer }
                        },
                    ),
                )
                .route(
                    "/realms/buerger/protocol/openid-connect/token",
                    web::post().to(
                        move |form: web::Form<std::collections::HashMap<String, String>>| {
                            let f = form.into_inner();
                            let grant = f
                                .get("code")
                                .and_then(|c| grants_t.lock().expect("grants").remove(c));
                            let verified = grant.as_ref().is_some_and(|g| {
                                use base64::Engine as _;
                                use sha2::Digest as _;
                                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                                    .encode(sha2::Sha256::digest(verifier.as_bytes()));
                                f.get("grant_type").map(String::as_str)
                                    == Some("authorization_code")
                                    && computed == g.challenge
                                    && f.get("redirect_uri") == Some(&g.redirect_uri)
                                    && f.get("client_id") == Some(&g.client_id)
                            });
                            let answer = match grant {
                                Some(g) if verified => {
                                    ok.fetch_add(1, Ordering::SeqCst);
                                    let mut claims = g.claims.clone();
                                    // An `aud` in `login_as` stands for a token for another client.
                                    if claims.get("aud").is_none() {
                                        claims["aud"] = json!(g.client_id);
                                    }
                                    // A nonce in `login_as` stands for a replayed token.
                                    if let Some(n) = &g.nonce
                                        && claims.get("nonce").is_none()
                                    {
                                        claims["nonce"] = json!(n);
                                    }
                                    HttpResponse::Ok().json(json!({
                                        "access_token": "fake-access-token",
                                        "token_type": "Bearer",
                                        "expires_in": 300,
                                        "id_token": sign_es256(&sign_key, &iss, &claims),
                                    }))
                                }
                                _ => {
                                    bad.fetch_add(1, Ordering::SeqCst);
                                    HttpResponse::BadRequest()
                                        .json(json!({ "error": "invalid_grant" }))
                                }
                            };
                            async move { answer }
                        },
                    ),
                )
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            jwks_url: format!("{base}/certs"),
            issuer,
            jwks,
            signing,
            login_as,
            redeemed,
            refused,
            _server: handle,
        }
    }

    /// Publishes a new key (keeping the old one) and signs with it from now on.
    pub fn rotate(&self) {
        let mut signing = self.signing.lock().expect("signing");
        let kid = format!("key-{}", self.jwks.lock().expect("jwks").len() + 1);
        let (encoding, jwk) = new_idp_key(&kid);
        self.jwks.lock().expect("jwks").push(jwk);
        *signing = (encoding, kid);
    }

    /// Signs an ID token with the given claims (merged over valid defaults).
    pub fn id_token(&self, overrides: Value) -> String {
        self.sign(jsonwebtoken::Algorithm::ES256, true, overrides)
    }

    /// An ID token signed with `alg` (ES256: the current P-256 key; RS256: the RSA key), with
    /// or without `kid` in its header.
    pub fn sign(&self, alg: jsonwebtoken::Algorithm, with_kid: bool, overrides: Value) -> String {
        if alg == jsonwebtoken::Algorithm::ES256 && with_kid {
            return sign_es256(&self.signing, &self.issuer, &overrides);
        }
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": self.issuer, "aud": "amtsplatz", "sub": "citizen-4711", "exp": now + 300, "iat": now,
            "email": "erika@example.org", "name": "Erika Mustermann",
        });
        if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                c.insert(k.clone(), v.clone());
            }
        }
        let mut header = jsonwebtoken::Header::new(alg);
        if alg == jsonwebtoken::Algorithm::RS256 {
            let pem = std::fs::read(repo_root().join("tests/fixtures/idp-rs256.pem"))
                .expect("RSA key fixture");
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA key");
            header.kid = with_kid.then(|| "rsa-1".to_owned());
            return jsonwebtoken::encode(&header, &claims, &key).expect("sign");
        }
        let signing = self.signing.lock().expect("signing");
        header.kid = with_kid.then(|| signing.1.clone());
        jsonwebtoken::encode(&header, &claims, &signing.0).expect("sign")
    }

    /// A copy of the repository's tenant files in which `tenant` lets its citizens sign in here.
    pub fn tenants_dir_with_login(&self, tenant: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&repo_root().join("tenants"), dir.path());
        let file = dir.path().join(format!("{tenant}.toml"));
        let mut text = std::fs::read_to_string(&file).expect("tenant file");
        text.push_str(&format!(
            "\n[settings.oidc]\nissuer = \"{}\"\nclient_id = \"amtsplatz\"\njwks_url = \"{}\"\n",
            self.issuer, self.jwks_url
        ));
        std::fs::write(&file, text).expect("write tenant file");
        dir
    }
}

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The municipality [`idp_town`] onboards.
pub const IDP_TOWN: &str = "idp-town";

/// A municipality ([`IDP_TOWN`]) whose citizens sign in at `idp`, with the dog tax live; returns its
/// administrator's session and the service's ID.
pub async fn idp_town(app: &TestApp, idp: &FakeIdp) -> (Session, String) {
    let p = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(None, Some(&p.access),
             "mutation($i: OnboardTenantInput!) { onboardTenant(input: $i) { tenant { slug } } }",
             json!({ "i": {
                 "slug": IDP_TOWN, "name": "IdP Town", "ags": "01999004",
                 "citizenLogin": { "issuer": idp.issuer, "clientId": "amtsplatz", "jwksUrl": idp.jwks_url },
                 "departments": [{ "key": "steueramt", "name": "Steueramt" }, { "key": "ordnungsamt", "name": "Ordnungsamt" }],
                 "firstAdmin": { "email": "admin@idp.example", "displayName": "Admin", "password": "idp-town-admin-pw" },
             }}))
        .await;
    data(&resp);
    let admin_session = app
        .login(Some(IDP_TOWN), ("admin@idp.example", "idp-town-admin-pw"))
        .await;
    let admin = app.caller(IDP_TOWN, &admin_session);
    let resp = admin
        .gql(
            "{ template(slug: \"hundesteuer-anmeldung\") { versions { id version } } }",
            json!({}),
        )
        .await;
    let version = data(&resp)["template"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "1.1.0")
        .map(|v| str_at(v, "id"))
        .unwrap();
    let resp = admin
        .gql(
            "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id } } }",
            json!({ "i": { "templateVersionId": version, "slug": "hundesteuer" } }),
        )
        .await;
    let service = str_at(&data(&resp)["forkTemplate"]["service"], "id");
    data(&admin.gql("mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }", json!({ "i": { "serviceId": service } })).await);
    (admin_session, service)
}

/// A client's graphql-transport-ws connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a graphql-transport-ws connection to the app.
pub async fn ws_connect(app: &TestApp) -> Ws {
    let url = app.base_url.replace("http://", "ws://") + "/graphql/ws";
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// A connection initialised with `payload` (what headers would carry: `X-Tenant`,
/// `Authorization`) and acknowledged.
pub async fn ws_ready(app: &TestApp, payload: Value) -> Ws {
    use futures_util::SinkExt as _;
    let mut ws = ws_connect(app).await;
    let init = json!({ "type": "connection_init", "payload": payload });
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = ws_next(&mut ws).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

/// Sends `query` with `variables` as operation `id` over `ws` and returns its one answer; the
/// `complete` after it is read too.
pub async fn ws_once(ws: &mut Ws, id: &str, query: &str, variables: Value) -> Value {
    use futures_util::SinkExt as _;
    let sub = json!({ "id": id, "type": "subscribe",
        "payload": { "query": query, "variables": variables } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let answer = ws_next(ws).await;
    assert_eq!(answer["id"], id, "{answer}");
    let complete = ws_next(ws).await;
    assert_eq!(complete["type"], "complete", "{complete}");
    assert_eq!(complete["id"], id, "{complete}");
    answer
}

pub async fn ws_next(
    ws: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> Value {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("websocket ended: {other:?}"),
        }
    }
}

pub const MUSTER_KASSE: (&str, &str) = ("kasse@musterstadt.example", "musterstadt-kasse");

/// One mail as an SMTP sink received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A real SMTP server on 127.0.0.1 that accepts every mail (RFC 5321 subset: EHLO/HELO, MAIL,
/// RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT). `fail_first` mails are refused with a
/// temporary error (451) to exercise retries.
pub struct SmtpSink {
    pub port: u16,
    pub mails: std::sync::Arc<std::sync::Mutex<Vec<ReceivedMail>>>,
}

impl SmtpSink {
    pub async fn start(fail_first: usize) -> Self {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let store = mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let store = store.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                    let (mut from, mut to) = (String::new(), Vec::new());
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250-sink.test\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            from = line[10..]
                                .trim()
                                .trim_matches(|c| c == '<' || c == '>')
                                .to_owned();
                            to.clear();
                            b"250 OK\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(
                                line[8..]
                                    .trim()
                                    .trim_matches(|c| c == '<' || c == '>')
                                    .to_owned(),
                            );
                            b"250 OK\r\n"
                        } else if upper == "DATA" {
                            let _ = w.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                                data.push('\n');
                            }
                            let refuse = failures
                                .fetch_update(
                                    std::sync::atomic::Ordering::SeqCst,
                                    std::sync::atomic::Ordering::SeqCst,
                                    |n| n.checked_sub(1),
                                )
                                .is_ok();
                            if refuse {
                                b"451 try again later\r\n"
                            } else {
                                store.lock().unwrap().push(ReceivedMail {
                                    from: from.clone(),
                                    to: to.clone(),
                                    data,
                                });
                                b"250 queued\r\n"
                            }
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
                            b"250 OK\r\n"
                        } else {
                            b"502 not implemented\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, mails }
    }

    /// Waits until at least `n` mails arrived (the outbox worker sends asynchronously).
    pub async fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        for _ in 0..200 {
            let mails = self.mails.lock().unwrap().clone();
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "expected {n} mails, got {:?}",
            self.mails.lock().unwrap().clone()
        );
    }
}

// ---- files -------------------------------------------------------------------------------------

/// Credentials of the in-process S3 server.
/// The value of one Prometheus series on `/metrics` (0 when it has not been observed yet).
pub async fn counter(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The series counting DataLoader batches (`kind` = `batches`) or keys (`keys`) of one key type.
pub fn loader_series(kind: &str, key: &str) -> String {
    format!("amtsplatz_dataloader_{kind}_total{{key=\"{key}\"}}")
}

pub const S3_KEYS: (&str, &str) = ("amtsplatz-test", "amtsplatz-test-secret-key-0123456789");
pub const S3_BUCKET: &str = "amtsplatz-files";

/// A real S3-compatible server (s3s + s3s-fs, SigV4 checked) on 127.0.0.1, storing under a
/// temporary folder.
pub struct S3Server {
    pub endpoint: String,
    pub root: tempfile::TempDir,
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(S3_BUCKET)).expect("bucket folder");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(S3_KEYS.0, S3_KEYS.1));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Self { endpoint, root }
    }

    /// Points the server's storage at this S3 server.
    pub fn configure(&self, s: &mut Settings) {
        s.storage.s3 = Some(server::settings::S3Settings {
            bucket: S3_BUCKET.into(),
            region: "us-east-1".into(),
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
            access_key: Some(S3_KEYS.0.to_owned().into()),
            secret_key: Some(S3_KEYS.1.to_owned().into()),
        });
    }
}

/// Which object storage a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Local,
    S3,
}

/// A test server on the given storage; the S3 server (if any) lives as long as it.
pub struct FileApp {
    pub app: TestApp,
    pub s3: Option<S3Server>,
}

impl std::ops::Deref for FileApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

pub async fn spawn_file_app(storage: Storage, configure: impl FnOnce(&mut Settings)) -> FileApp {
    let s3 = match storage {
        Storage::Local => None,
        Storage::S3 => Some(S3Server::start().await),
    };
    let app = spawn_app_with(|s| {
        if let Some(s3) = &s3 {
            s3.configure(s);
        }
        configure(s);
    })
    .await;
    FileApp { app, s3 }
}

impl FileApp {
    /// Where the objects are on disk (local backend or the S3 server's bucket folder).
    pub fn objects_dir(&self) -> PathBuf {
        match &self.s3 {
            Some(s3) => s3.root.path().join(S3_BUCKET),
            None => self.app.data_dir.join("objects"),
        }
    }

    /// Keys (`<tenant>/<owner>/<uuid>`) of all objects in storage.
    pub fn object_keys(&self) -> Vec<String> {
        let root = self.objects_dir();
        let mut keys = Vec::new();
        for tenant in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for owner in std::fs::read_dir(tenant.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                for file in std::fs::read_dir(owner.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let key = format!(
                        "{}/{}/{}",
                        tenant.file_name().to_string_lossy(),
                        owner.file_name().to_string_lossy(),
                        file.file_name().to_string_lossy()
                    );
                    let parts: Vec<&str> = key.split('/').collect();
                    if parts.iter().all(|p| uuid::Uuid::parse_str(p).is_ok())
                        && file.path().is_file()
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        keys
    }
}

pub const UPLOAD: &str = "mutation($i: UploadAttachmentInput!) { uploadAttachment(input: $i) { attachment { id filename contentType sizeBytes sha256 document state scanStatus } } }";

/// `uploadAttachment` as a GraphQL multipart request (the file is part `0`). The body is built
/// by hand, the filename encoded as browsers do (`"`, CR and LF percent-encoded), so tests send
/// exactly what a hostile client could.
pub async fn upload_file(
    app: &TestApp,
    tenant: &str,
    token: Option<&str>,
    input: Value,
    filename: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let mut input = input;
    input["file"] = Value::Null;
    let operations = json!({ "query": UPLOAD, "variables": { "i": input } });
    let boundary = format!("amtsplatz-{}", uuid::Uuid::new_v4().simple());
    let filename = filename
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\": [\"variables.i.file\"]}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("X-Tenant", tenant)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// A small well-formed PDF whose content varies with `marker`.
pub fn pdf(marker: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n% {marker}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// A PDF of `size` bytes (header, then filler).
pub fn big_pdf(size: usize) -> Vec<u8> {
    let mut v = pdf("gross");
    v.resize(size, b'0');
    v
}

/// The first bytes of a PNG (enough for any sniffer).
pub fn png() -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    v.extend_from_slice(b"IHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde");
    v
}

/// Asserts `VALIDATION_FAILED` with a message for `field` that contains `words`.
#[track_caller]
pub fn assert_field_error(resp: &Value, field: &str, words: &str) {
    assert_code(resp, "VALIDATION_FAILED");
    let message = resp["errors"][0]["extensions"]["fields"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no message for {field}: {resp:#}"));
    assert!(message.contains(words), "{field}: {message}");
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Counts all rows of `table`.
pub async fn count(app: &TestApp, table: &str) -> i64 {
    count_where(app, table, "1 = 1").await
}

/// Counts rows of `table` matching `filter` (SQL after WHERE).
pub async fn count_where(app: &TestApp, table: &str, filter: &str) -> i64 {
    let db = Database::connect(&app.db_url).await.expect("db");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}"),
        ))
        .await
        .expect("query")
        .expect("row");
    let n: i64 = row.try_get("", "n").expect("n");
    db.close().await.ok();
    n
}
