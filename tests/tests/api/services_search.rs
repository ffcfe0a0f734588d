//! Search and category filter over a tenant's services (`services(filter: …)`): full text over
//! title and summary (German stemming on PostgreSQL, prefixes everywhere, every word must match),
//! the index kept in step with customizations, tenant isolation, drafts hidden from citizens,
//! input limits, and the migration filling services that existed before it.

use serde_json::{Value, json};

use crate::helpers::*;

const SERVICES: &str = "query($f: ServiceFilterInput, $s: ServiceState) { services(status: $s, filter: $f, first: 100) { totalCount edges { node { id slug title summary category status revision } } } }";
const CUSTOMIZE: &str = "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { id title summary category revision } } }";

/// The services a caller finds with `filter` (slugs, in list order); asserts that `totalCount`
/// agrees with the edges.
async fn find(app: &TestApp, tenant: &str, token: Option<&str>, filter: Value) -> Vec<Value> {
    find_in(app, tenant, token, filter, None).await
}

async fn find_in(
    app: &TestApp,
    tenant: &str,
    token: Option<&str>,
    filter: Value,
    status: Option<&str>,
) -> Vec<Value> {
    let resp = app
        .gql(
            Some(tenant),
            token,
            SERVICES,
            json!({ "f": filter, "s": status }),
        )
        .await;
    let services = &data(&resp)["services"];
    let nodes: Vec<Value> = services["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(
        services["totalCount"].as_u64(),
        Some(nodes.len() as u64),
        "totalCount agrees with the page: {resp:#}"
    );
    nodes
}

fn slugs(nodes: &[Value]) -> Vec<&str> {
    nodes.iter().map(|n| n["slug"].as_str().unwrap()).collect()
}

async fn anonymous_slugs(app: &TestApp, tenant: &str, filter: Value) -> Vec<String> {
    slugs(&find(app, tenant, None, filter).await)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn anonymous_search_finds_live_services_by_every_word_as_a_prefix() {
    let app = spawn_app().await;
    let search = |s: &str| json!({ "search": s });

    let found = find(&app, MUSTER, None, search("Hund")).await;
    assert_eq!(slugs(&found), ["hundesteuer"]);
    let hund = &found[0];
    assert_eq!(hund["title"], "Hund zur Hundesteuer anmelden");
    assert_eq!(hund["category"], "steuern");
    assert!(
        hund["summary"]
            .as_str()
            .unwrap()
            .starts_with("Melden Sie Ihren Hund"),
        "{hund:#}"
    );
    assert_eq!(hund["status"], "LIVE");

    // Prefixes, any case, title or summary.
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Hundest")).await,
        ["hundesteuer"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("HUNDESTEUER")).await,
        ["hundesteuer"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Listenhunde")).await,
        ["hundesteuer"],
        "a word of the summary"
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Meldebesch")).await,
        ["meldebescheinigung"]
    );
    // Every word must match.
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("hund anmelden")).await,
        ["hundesteuer"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Meldebescheinigung Anschrift")).await,
        ["meldebescheinigung"]
    );
    assert!(
        anonymous_slugs(&app, MUSTER, search("Hund Anschrift"))
            .await
            .is_empty()
    );
    assert!(
        anonymous_slugs(&app, MUSTER, search("Katze"))
            .await
            .is_empty()
    );
    // Query syntax is not syntax: punctuation separates words.
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("\"Hund*\" -zur")).await,
        ["hundesteuer"]
    );
    // No words: no search.
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("  *  ")).await,
        ["hundesteuer", "meldebescheinigung"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!(null)).await,
        ["hundesteuer", "meldebescheinigung"]
    );

    // German stemming on PostgreSQL (inflected forms find the stem); SQLite matches prefixes only.
    let stemmed = if app.is_postgres {
        vec!["hundesteuer".to_owned()]
    } else {
        vec![]
    };
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Hunden")).await,
        stemmed
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, search("Anmeldung Hunde")).await,
        stemmed
    );
}

#[tokio::test]
async fn the_category_filter_narrows_alone_and_with_a_search() {
    let app = spawn_app().await;
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "steuern" })).await,
        ["hundesteuer"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "meldewesen" })).await,
        ["meldebescheinigung"]
    );
    assert!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "abfall" }))
            .await
            .is_empty()
    );
    assert_eq!(
        anonymous_slugs(
            &app,
            MUSTER,
            json!({ "category": "steuern", "search": "Hund" })
        )
        .await,
        ["hundesteuer"]
    );
    assert!(
        anonymous_slugs(
            &app,
            MUSTER,
            json!({ "category": "meldewesen", "search": "Hund" })
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn the_search_follows_a_customized_title_and_summary() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let before = find(&app, MUSTER, None, json!({ "search": "Hundesteuer" })).await;
    let id = str_at(&before[0], "id");
    let revision = before[0]["revision"].as_i64().unwrap();
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            CUSTOMIZE,
            json!({"i": {"serviceId": id, "changes": [
                {"setTitle": {"de": "Vierbeiner registrieren"}},
                {"setSummary": {"de": "Für Samtpfoten und Fellnasen."}},
            ]}}),
        )
        .await;
    let service = &data(&resp)["customizeService"]["service"];
    assert_eq!(service["title"], "Vierbeiner registrieren");
    assert_eq!(service["summary"], "Für Samtpfoten und Fellnasen.");
    assert_eq!(service["category"], "steuern");

    let found = find(&app, MUSTER, None, json!({ "search": "vierbein" })).await;
    assert_eq!(slugs(&found), ["hundesteuer"]);
    assert_eq!(found[0]["title"], "Vierbeiner registrieren");
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "search": "Samtpfote" })).await,
        ["hundesteuer"]
    );
    // The old title and summary are gone from the index.
    for old in ["Hund", "anmelden", "Listenhunde"] {
        assert!(
            anonymous_slugs(&app, MUSTER, json!({ "search": old }))
                .await
                .is_empty(),
            "{old} still finds the service"
        );
    }
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "steuern" })).await,
        ["hundesteuer"]
    );

    // Rolling back restores title, summary and the index.
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($i: RollbackServiceInput!) { rollbackService(input: $i) { service { title summary } } }",
            json!({"i": {"serviceId": id, "revision": revision}}),
        )
        .await;
    assert_eq!(
        data(&resp)["rollbackService"]["service"]["title"],
        "Hund zur Hundesteuer anmelden"
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "search": "Listenhunde" })).await,
        ["hundesteuer"]
    );
    assert!(
        anonymous_slugs(&app, MUSTER, json!({ "search": "Samtpfote" }))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_search_never_finds_services_of_another_tenant() {
    let app = spawn_app().await;
    let muster = find(&app, MUSTER, None, json!({ "search": "Hund" })).await;
    assert_eq!(slugs(&muster), ["hundesteuer"]);

    // Beispielhausen has no dog tax: nothing of Musterstadt's, for citizens or its own staff.
    assert!(
        anonymous_slugs(&app, BEISPIEL, json!({ "search": "Hund" }))
            .await
            .is_empty()
    );
    assert!(
        anonymous_slugs(&app, BEISPIEL, json!({ "category": "steuern" }))
            .await
            .is_empty()
    );
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    assert!(
        find(
            &app,
            BEISPIEL,
            Some(&admin.access),
            json!({ "search": "Hundesteuer" })
        )
        .await
        .is_empty()
    );
    assert_eq!(
        anonymous_slugs(&app, BEISPIEL, json!({ "search": "Sperrm" })).await,
        ["sperrmuell"]
    );

    // Exempelburg forks the same template: it finds its own service, never Musterstadt's.
    let exempel = find(&app, "exempelburg", None, json!({ "search": "Hund" })).await;
    assert_eq!(slugs(&exempel), ["hundesteuer"]);
    assert_ne!(exempel[0]["id"], muster[0]["id"]);
}

#[tokio::test]
async fn drafts_are_found_by_staff_only() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "{ template(slug: \"hundesteuer-anmeldung\") { latestVersion { id } } }",
            json!({}),
        )
        .await;
    let version = str_at(&data(&resp)["template"]["latestVersion"], "id");
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { status summary category } } }",
            json!({"i": {"templateVersionId": version, "slug": "hund-entwurf"}}),
        )
        .await;
    let draft = &data(&resp)["forkTemplate"]["service"];
    assert_eq!(draft["status"], "DRAFT");
    assert_eq!(draft["category"], "steuern");
    assert!(draft["summary"].as_str().unwrap().contains("Hund"));

    // Citizens find only the live service.
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "search": "Hund" })).await,
        ["hundesteuer"]
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "steuern" })).await,
        ["hundesteuer"]
    );
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            SERVICES,
            json!({ "f": { "search": "Hund" }, "s": "DRAFT" }),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");

    // Staff find both, or the draft alone.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let token = Some(staff.access.as_str());
    assert_eq!(
        slugs(&find(&app, MUSTER, token, json!({ "search": "Hund" })).await),
        ["hundesteuer", "hund-entwurf"]
    );
    assert_eq!(
        slugs(
            &find_in(
                &app,
                MUSTER,
                token,
                json!({ "search": "Hund" }),
                Some("DRAFT")
            )
            .await
        ),
        ["hund-entwurf"]
    );
}

#[tokio::test]
async fn an_over_long_or_nul_search_is_refused() {
    let app = spawn_app().await;
    let query = |search: String| {
        let app = &app;
        async move {
            app.gql(
                Some(MUSTER),
                None,
                SERVICES,
                json!({ "f": { "search": search } }),
            )
            .await
        }
    };
    let resp = query("a".repeat(201)).await;
    assert_field_error(&resp, "filter.search", "at most 200 characters");
    // The limit counts characters: 200 umlauts (400 bytes) are fine.
    data(&query("ä".repeat(200)).await);
    let resp = query("Hund\u{0}".to_owned()).await;
    assert_code(&resp, "VALIDATION_FAILED");
}

#[tokio::test]
async fn the_search_migration_fills_services_that_existed_before_it() {
    use migration::{Migrator, MigratorTrait};
    let app = spawn_app().await;
    let db = sea_orm::Database::connect(&app.db_url).await.unwrap();
    // Back to before the search columns (the demo services stay), and forward again.
    Migrator::down(&db, Some(1)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.close().await.ok();

    let found = find(&app, MUSTER, None, json!({ "search": "Listenhunde" })).await;
    assert_eq!(slugs(&found), ["hundesteuer"]);
    assert_eq!(found[0]["category"], "steuern");
    assert!(
        found[0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Melden Sie Ihren Hund")
    );
    assert_eq!(
        anonymous_slugs(&app, MUSTER, json!({ "category": "meldewesen" })).await,
        ["meldebescheinigung"]
    );
    assert_eq!(
        anonymous_slugs(&app, "exempelburg", json!({ "search": "Hund" })).await,
        ["hundesteuer"]
    );
    assert!(
        anonymous_slugs(&app, BEISPIEL, json!({ "search": "Hund" }))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn services_answer_their_title_and_summary_in_the_language_asked_for() {
    let app = crate::helpers::spawn_app().await;
    let resp = app
        .gql(
            Some("musterstadt"),
            None,
            "{ services(first: 100) { nodes { slug title summary de: titleIn(language: DE) en: titleIn(language: EN) enSummary: summaryIn(language: EN) } } }",
            serde_json::json!({}),
        )
        .await;
    let nodes = crate::helpers::data(&resp)["services"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    let dog = nodes
        .iter()
        .find(|n| n["slug"] == "hundesteuer")
        .expect("the dog tax");
    assert_eq!(dog["de"], dog["title"]);
    assert_eq!(dog["en"], "Register a dog for dog tax");
    assert!(
        dog["enSummary"]
            .as_str()
            .unwrap()
            .starts_with("Register your dog")
    );
    assert_ne!(dog["enSummary"], dog["summary"]);
}
