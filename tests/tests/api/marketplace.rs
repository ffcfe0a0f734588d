//! Marketplace and services: publish with semver rules, browse and search, fork, customize,
//! upstream updates with three-way merge, rollback, go live, proposals, isolation.

use serde_json::{Value, json};

use crate::helpers::*;

pub const MUSTER_AUTHOR: (&str, &str) = ("autorin@musterstadt.example", "musterstadt-author");

/// A small but complete service: two steps, a per-item fee, routing to the Ordnungsamt.
pub fn content_v1() -> Value {
    json!({
        "title": {"de": "Testhund anmelden", "en": "Register a test dog"},
        "summary": {"de": "Anmeldung eines Hundes für Testzwecke"},
        "leikaCode": "99015003001000",
        "category": "steuern",
        "form": {
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "owner_name": {"type": "string", "maxLength": 200},
                    "dog_count": {"type": "integer", "minimum": 1, "maximum": 20},
                    "breed": {"type": "string"}
                },
                "required": ["owner_name", "dog_count"]
            },
            "steps": [
                {"key": "owner", "title": {"de": "Halter"}, "fields": [
                    {"key": "owner_name", "label": {"de": "Name", "en": "Name"}}
                ]},
                {"key": "dog", "title": {"de": "Hund"}, "fields": [
                    {"key": "dog_count", "label": {"de": "Anzahl Hunde"}},
                    {"key": "breed", "label": {"de": "Rasse"}}
                ]}
            ]
        },
        "routing": [{"key": "tax", "department": "ordnungsamt"}],
        "fees": [{"key": "tax", "label": {"de": "Jahressteuer"}, "amountCents": 9600, "perField": "dog_count"}],
        "texts": {"confirmation": {"de": "Danke für Ihre Anmeldung."}}
    })
}

/// v1 plus an optional field `chip` in step `dog` after `dog_count`, and a reworded text.
pub fn content_v1_1() -> Value {
    let mut c = content_v1();
    c["form"]["schema"]["properties"]["chip"] = json!({"type": "string", "pattern": "^[0-9]{15}$"});
    c["form"]["steps"][1]["fields"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"key": "chip", "label": {"de": "Chipnummer"}}));
    c["texts"]["confirmation"]["de"] = json!("Vielen Dank für Ihre Anmeldung.");
    c
}

const CREATE: &str = "mutation($i: CreateTemplateInput!) { createTemplate(input: $i) { template { id slug visibility } } }";
const PUBLISH: &str = "mutation($i: PublishTemplateVersionInput!) { publishTemplateVersion(input: $i) { version { id version content } } }";
const FORK: &str = "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id slug status revision } } }";
const CUSTOMIZE: &str = "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { id revision } } }";
const SERVICE: &str = "query($s: String!) { service(slug: $s) { id slug status revision resolvedContent overlay upstream { pinnedVersion { version } latestVersion { version } behind } revisions { totalCount edges { node { revision reason } } } } }";
const PREVIEW: &str = "query($id: ID!, $v: String!) { serviceUpdatePreview(serviceId: $id, toVersion: $v) { fromVersion toVersion clean mergedContent conflicts { path kind base ours theirs } } }";
const APPLY: &str = "mutation($i: ApplyServiceUpdateInput!) { applyServiceUpdate(input: $i) { service { revision } } }";

/// Creates a public template as Musterstadt's author and publishes `v1`; returns (template id, version id).
async fn published_template(
    app: &TestApp,
    author: &Session,
    slug: &str,
    visibility: &str,
) -> (String, String) {
    let resp = app
        .caller(MUSTER, author)
        .gql(CREATE, json!({"i": {"slug": slug, "title": "Testhund", "category": "steuern", "visibility": visibility}}))
        .await;
    let template = str_at(&data(&resp)["createTemplate"]["template"], "id");
    let resp = app
        .caller(MUSTER, author)
        .gql(PUBLISH, json!({"i": {"templateId": template, "version": "1.0.0", "content": content_v1(), "changelog": "Erste Version"}}))
        .await;
    let version = str_at(&data(&resp)["publishTemplateVersion"]["version"], "id");
    (template, version)
}

async fn fork(app: &TestApp, tenant: &str, admin: &Session, version: &str, slug: &str) -> String {
    let resp = app
        .caller(tenant, admin)
        .gql(
            FORK,
            json!({"i": {"templateVersionId": version, "slug": slug}}),
        )
        .await;
    let service = &data(&resp)["forkTemplate"]["service"];
    assert_eq!(service["status"], "DRAFT");
    assert_eq!(service["revision"], 1);
    str_at(service, "id")
}

fn field_keys(content: &Value, step: &str) -> Vec<String> {
    content["form"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == step)
        .unwrap_or_else(|| panic!("step {step} in {content:#}"))["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn authors_publish_versions_under_semver_rules_and_versions_are_immutable() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (template, _) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let caller = app.caller(MUSTER, &author);
    let publish = |version: &str, content: Value| {
        caller.gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": version, "content": content}}),
        )
    };

    // The same version again, or an older one: refused, nothing changes.
    let again = publish("1.0.0", content_v1_1()).await;
    assert_code(&again, "VALIDATION_FAILED");
    assert!(
        again["errors"][0]["extensions"]["fields"]["input.version"]
            .as_str()
            .unwrap()
            .contains("greater")
    );

    // Adding an optional field is minor: a patch bump is refused with the reason.
    let patch = publish("1.0.1", content_v1_1()).await;
    assert_code(&patch, "VALIDATION_FAILED");
    let why = patch["errors"][0]["extensions"]["fields"]["input.version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        why.contains("optional field `chip` added") && why.contains("1.1.0"),
        "{why}"
    );
    data(&publish("1.1.0", content_v1_1()).await);

    // Removing a field needs a major version.
    let mut removed = content_v1_1();
    removed["form"]["schema"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("breed");
    removed["form"]["steps"][1]["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["key"] != "breed");
    let minor = publish("1.2.0", removed.clone()).await;
    assert_code(&minor, "VALIDATION_FAILED");
    let why = minor["errors"][0]["extensions"]["fields"]["input.version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        why.contains("field `breed` removed") && why.contains("2.0.0"),
        "{why}"
    );
    // Retyping too.
    let mut retyped = content_v1_1();
    retyped["form"]["schema"]["properties"]["dog_count"]["type"] = json!("string");
    retyped["form"]["schema"]["properties"]["dog_count"]
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k == "type");
    retyped["fees"][0]
        .as_object_mut()
        .unwrap()
        .remove("perField");
    let why = publish("1.2.0", retyped).await["errors"][0]["extensions"]["fields"]["input.version"]
        .clone();
    assert!(why.as_str().unwrap().contains("retyped"), "{why}");
    data(&publish("2.0.0", removed).await);

    // Invalid content names the paths; unknown keys too.
    let mut bad = content_v1();
    bad["form"]["steps"][0]["fields"][0]["lable"] = json!({"de": "x"});
    let resp = publish("3.0.0", bad).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(resp["errors"][0]["extensions"]["fields"]["input.content/form/steps/owner/fields/owner_name/lable"].is_string(), "{resp:#}");
    let mut dangling = content_v1();
    dangling["routing"][0]["when"] = json!({"equals": {"field": "nope", "value": true}});
    dangling["form"]["schema"]["properties"]["dog_count"]["minimum"] = json!("one");
    let resp = publish("3.0.0", dangling).await;
    let fields = resp["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap()
        .clone();
    assert!(
        fields.contains_key("input.content/routing/tax/when"),
        "{fields:#?}"
    );
    assert!(
        fields
            .keys()
            .any(|k| k.starts_with("input.content/form/schema")),
        "{fields:#?}"
    );

    // Versions list newest first with changelog; 1.0.0 still has its original content.
    let resp = app.gql(Some(BEISPIEL), None, "{ template(slug: \"test-hund\") { versions { version content } changelog { version changes } latestVersion { version } } }", json!({})).await;
    let t = &data(&resp)["template"];
    let versions: Vec<_> = t["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2.0.0", "1.1.0", "1.0.0"]);
    assert_eq!(t["latestVersion"]["version"], "2.0.0");
    assert_eq!(t["changelog"][2]["changes"], "Erste Version");
    assert_eq!(
        t["versions"][2]["content"]["form"]["schema"]["properties"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    assert!(
        t["versions"][2]["content"]["form"]["schema"]["properties"]
            .get("chip")
            .is_none()
    );
}

#[tokio::test]
async fn only_authors_of_the_template_tenant_publish() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (template, _) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    // An administrator without the author role.
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    let resp = app
        .caller(MUSTER, &admin)
        .gql(
            CREATE,
            json!({"i": {"slug": "x-y", "title": "X", "category": "x"}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    // Anonymous.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}}),
        )
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
    // Another tenant's administrator (no author role there either) cannot touch it.
    let other = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let resp = app
        .caller(BEISPIEL, &other)
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    // A duplicate slug is a conflict.
    let resp = app
        .caller(MUSTER, &author)
        .gql(
            CREATE,
            json!({"i": {"slug": "test-hund", "title": "Again", "category": "x"}}),
        )
        .await;
    assert_code(&resp, "CONFLICT");
}

#[tokio::test]
async fn browsing_and_search_show_public_templates_and_private_ones_only_to_their_author() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    published_template(&app, &author, "test-hund", "PUBLIC").await;
    let (_, private_version) = published_template(&app, &author, "geheimer-hund", "PRIVATE").await;

    let slugs = |resp: &Value| -> Vec<String> {
        data(resp)["templates"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    let search = "query($f: TemplateFilterInput) { templates(filter: $f, first: 100) { totalCount edges { node { slug title category leikaCode author { slug } } } } }";
    // Another tenant and anonymous visitors see the public one only.
    for tenant in [Some(BEISPIEL), None] {
        let all = slugs(&app.gql(tenant, None, search, json!({})).await);
        assert!(all.contains(&"test-hund".to_owned()), "{all:?}");
        assert!(!all.contains(&"geheimer-hund".to_owned()), "{all:?}");
    }
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            "{ template(slug: \"geheimer-hund\") { slug } }",
            json!({}),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
    // Guessing the private version's ID does not help either.
    let admin_b = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let resp = app
        .caller(BEISPIEL, &admin_b)
        .gql(
            FORK,
            json!({"i": {"templateVersionId": private_version, "slug": "geklaut"}}),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
    // The author tenant sees both.
    let mine = slugs(&app.gql(Some(MUSTER), None, search, json!({})).await);
    assert!(mine.contains(&"geheimer-hund".to_owned()) && mine.contains(&"test-hund".to_owned()));

    // Full text: words of the title, case-insensitive, prefixes; filters combine.
    let found = slugs(
        &app.gql(
            Some(BEISPIEL),
            None,
            search,
            json!({"f": {"search": "TESTHUND anmel"}}),
        )
        .await,
    );
    assert_eq!(found, ["test-hund"]);
    let none = slugs(
        &app.gql(
            Some(BEISPIEL),
            None,
            search,
            json!({"f": {"search": "Parkausweis Testhund"}}),
        )
        .await,
    );
    assert!(none.is_empty(), "{none:?}");
    let odd = app
        .gql(
            Some(BEISPIEL),
            None,
            search,
            json!({"f": {"search": "\"* OR ( NEAR"}}),
        )
        .await;
    data(&odd);
    let by_code = slugs(
        &app.gql(
            None,
            None,
            search,
            json!({"f": {"leikaCode": "99015003001000", "author": MUSTER, "category": "steuern"}}),
        )
        .await,
    );
    assert!(by_code.contains(&"test-hund".to_owned()), "{by_code:?}");
    let nobody = slugs(
        &app.gql(None, None, search, json!({"f": {"author": "atlantis"}}))
            .await,
    );
    assert!(nobody.is_empty());
}

#[tokio::test]
async fn a_fork_is_customized_by_key_and_every_change_is_a_revision() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (_, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let service = fork(&app, BEISPIEL, &admin, &v1, "hund").await;
    let b = app.caller(BEISPIEL, &admin);

    let resp = b.gql(CUSTOMIZE, json!({"i": {"serviceId": service, "note": "lokale Anpassung", "changes": [
        {"addField": {"step": "dog", "after": "dog_count", "key": "vaccinated", "label": {"de": "Geimpft"}, "schema": {"type": "boolean"}, "required": true}},
        {"modifyFee": {"key": "tax", "amountCents": 12000}},
        {"modifyField": {"key": "breed", "label": {"de": "Hunderasse", "en": "Breed"}}},
        {"setWorkflowLabel": {"state": "in_review", "label": {"de": "In Prüfung"}}},
        {"setText": {"key": "confirmation", "text": {"de": "Danke! Ihre Gemeinde Beispielhausen."}}}
    ]}})).await;
    assert_eq!(data(&resp)["customizeService"]["service"]["revision"], 2);

    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    let s = &data(&resp)["service"];
    let content = &s["resolvedContent"];
    assert_eq!(
        field_keys(content, "dog"),
        ["dog_count", "vaccinated", "breed"]
    );
    assert_eq!(content["fees"][0]["amountCents"], 12000);
    assert!(
        content["form"]["schema"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("vaccinated"))
    );
    // The overlay addresses elements by key, never by index.
    let overlay = serde_json::to_string(&s["overlay"]).unwrap();
    assert!(overlay.contains("/fees/tax/amountCents"), "{overlay}");
    assert!(!overlay.contains("/fees/0"), "{overlay}");
    assert_eq!(s["revisions"]["totalCount"], 2);
    assert_eq!(
        s["revisions"]["edges"][1]["node"]["reason"],
        "customize: lokale Anpassung"
    );
    assert_eq!(s["upstream"]["pinnedVersion"]["version"], "1.0.0");

    // Bad edits are typed errors and change nothing.
    for (change, field) in [
        (
            json!({"removeField": {"key": "nope"}}),
            "input.changes[0].removeField.key",
        ),
        (
            json!({"addField": {"step": "dog", "key": "breed", "label": {"de": "x"}, "schema": {"type": "string"}}}),
            "input.changes[0].addField.key",
        ),
        (
            json!({"modifyFee": {"key": "tax", "amountCents": -5}}),
            "/fees/tax/amountCents",
        ),
        (
            json!({"addField": {"step": "dog", "key": "Bad Key", "label": {"de": "x"}, "schema": {"type": "string"}}}),
            "input.changes[0].addField.key",
        ),
        (
            json!({"modifyField": {"key": "dog_count", "schema": {"type": 5}}}),
            "/form/schema/properties/dog_count/type",
        ),
    ] {
        let resp = b
            .gql(
                CUSTOMIZE,
                json!({"i": {"serviceId": service, "changes": [change]}}),
            )
            .await;
        assert_code(&resp, "VALIDATION_FAILED");
        let fields = resp["errors"][0]["extensions"]["fields"]
            .as_object()
            .unwrap();
        assert!(
            fields.keys().any(|k| k.starts_with(field)),
            "{field}: {resp:#}"
        );
    }
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    assert_eq!(data(&resp)["service"]["revision"], 2);

    // Staff without admin rights cannot customize; other tenants cannot see the service.
    let staff = app
        .login(
            Some(BEISPIEL),
            ("rathaus@beispielhausen.example", "beispielhausen-staff"),
        )
        .await;
    let resp = app
        .caller(BEISPIEL, &staff)
        .gql(
            CUSTOMIZE,
            json!({"i": {"serviceId": service, "changes": [{"removeFee": {"key": "tax"}}]}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    let resp = app
        .caller(BEISPIEL, &staff)
        .gql(
            FORK,
            json!({"i": {"templateVersionId": v1, "slug": "hund-zwei"}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            FORK,
            json!({"i": {"templateVersionId": v1, "slug": "hund-zwei"}}),
        )
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
    let muster = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &muster)
        .gql(
            CUSTOMIZE,
            json!({"i": {"serviceId": service, "changes": [{"removeFee": {"key": "tax"}}]}}),
        )
        .await;
    assert_code(&resp, "NOT_FOUND");
    let resp = app
        .caller(MUSTER, &muster)
        .gql(SERVICE, json!({"s": "hund"}))
        .await;
    assert_code(&resp, "NOT_FOUND");
    let resp = app
        .caller(MUSTER, &muster)
        .gql(PREVIEW, json!({"id": service, "v": "1.0.0"}))
        .await;
    assert_code(&resp, "NOT_FOUND");
}

#[tokio::test]
async fn upstream_updates_merge_with_local_changes_and_conflicts_need_resolutions() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (template, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let service = fork(&app, BEISPIEL, &admin, &v1, "hund").await;
    let b = app.caller(BEISPIEL, &admin);
    // Local: fee amount, label of breed, confirmation text.
    data(
        &b.gql(
            CUSTOMIZE,
            json!({"i": {"serviceId": service, "changes": [
                {"modifyFee": {"key": "tax", "amountCents": 12000}},
                {"modifyField": {"key": "breed", "label": {"de": "Hunderasse"}}},
                {"setText": {"key": "confirmation", "text": {"de": "Danke aus Beispielhausen."}}}
            ]}}),
        )
        .await,
    );

    // Upstream 1.1.0: new field chip after dog_count, reworded confirmation (conflicts with ours).
    data(&app.caller(MUSTER, &author).gql(PUBLISH, json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}})).await);
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    assert_eq!(data(&resp)["service"]["upstream"]["behind"], 1);
    assert_eq!(
        data(&resp)["service"]["upstream"]["latestVersion"]["version"],
        "1.1.0"
    );

    let resp = b.gql(PREVIEW, json!({"id": service, "v": "1.1.0"})).await;
    let p = &data(&resp)["serviceUpdatePreview"];
    assert_eq!(p["clean"], false);
    let conflicts = p["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:#?}");
    assert_eq!(conflicts[0]["path"], "/texts/confirmation/de");
    assert_eq!(conflicts[0]["base"], "Danke für Ihre Anmeldung.");
    assert_eq!(conflicts[0]["ours"], "Danke aus Beispielhausen.");
    assert_eq!(conflicts[0]["theirs"], "Vielen Dank für Ihre Anmeldung.");
    // Non-overlapping changes merged already: upstream's new field and our fee and label.
    let merged = &p["mergedContent"];
    assert_eq!(field_keys(merged, "dog"), ["dog_count", "chip", "breed"]);
    assert_eq!(merged["fees"][0]["amountCents"], 12000);

    // Without a resolution: MERGE_CONFLICT naming the path; nothing changes.
    let resp = b
        .gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "1.1.0"}}),
        )
        .await;
    assert_code(&resp, "MERGE_CONFLICT");
    assert_eq!(
        resp["errors"][0]["extensions"]["paths"],
        json!(["/texts/confirmation/de"])
    );
    // A resolution for a path that is not in conflict is refused.
    let resp = b.gql(APPLY, json!({"i": {"serviceId": service, "toVersion": "1.1.0", "resolutions": [
        {"path": "/texts/confirmation/de", "choice": "OURS"}, {"path": "/title/de", "choice": "THEIRS"}]}})).await;
    assert_code(&resp, "VALIDATION_FAILED");
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    assert_eq!(data(&resp)["service"]["revision"], 2);

    // With a given value.
    let resp = b.gql(APPLY, json!({"i": {"serviceId": service, "toVersion": "1.1.0", "resolutions": [
        {"path": "/texts/confirmation/de", "choice": "VALUE", "value": "Vielen Dank, Ihre Gemeinde Beispielhausen."}]}})).await;
    assert_eq!(data(&resp)["applyServiceUpdate"]["service"]["revision"], 3);
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    let s = &data(&resp)["service"];
    assert_eq!(s["upstream"]["pinnedVersion"]["version"], "1.1.0");
    assert_eq!(s["upstream"]["behind"], 0);
    let c = &s["resolvedContent"];
    assert_eq!(
        c["texts"]["confirmation"]["de"],
        "Vielen Dank, Ihre Gemeinde Beispielhausen."
    );
    assert_eq!(field_keys(c, "dog"), ["dog_count", "chip", "breed"]);
    assert_eq!(c["fees"][0]["amountCents"], 12000);
    assert_eq!(
        c["form"]["steps"][1]["fields"][2]["label"]["de"],
        "Hunderasse"
    );
    assert_eq!(
        s["revisions"]["edges"][2]["node"]["reason"],
        "update 1.0.0 -> 1.1.0"
    );
    // The overlay is now relative to 1.1.0: the chip field is upstream's, not a local change.
    let overlay = serde_json::to_string(&s["overlay"]).unwrap();
    assert!(!overlay.contains("chip"), "{overlay}");
    assert!(overlay.contains("/fees/tax/amountCents"), "{overlay}");

    // Rollback to revision 2 creates revision 4 equal to it, pinned to 1.0.0 again.
    let resp = b.gql("mutation($i: RollbackServiceInput!) { rollbackService(input: $i) { service { revision } } }", json!({"i": {"serviceId": service, "revision": 2}})).await;
    assert_eq!(data(&resp)["rollbackService"]["service"]["revision"], 4);
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    let s = &data(&resp)["service"];
    assert_eq!(s["upstream"]["pinnedVersion"]["version"], "1.0.0");
    assert_eq!(
        field_keys(&s["resolvedContent"], "dog"),
        ["dog_count", "breed"]
    );
    assert_eq!(
        s["resolvedContent"]["texts"]["confirmation"]["de"],
        "Danke aus Beispielhausen."
    );
    assert_eq!(
        s["revisions"]["edges"][3]["node"]["reason"],
        "rollback to 2"
    );
    let resp = b.gql("mutation($i: RollbackServiceInput!) { rollbackService(input: $i) { service { revision } } }", json!({"i": {"serviceId": service, "revision": 99}})).await;
    assert_code(&resp, "VALIDATION_FAILED");

    // Resolving with THEIRS takes upstream's text; going "up" to the pinned version is refused.
    let resp = b
        .gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "1.1.0", "resolutions": [
        {"path": "/texts/confirmation/de", "choice": "THEIRS"}]}}),
        )
        .await;
    data(&resp);
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    assert_eq!(
        data(&resp)["service"]["resolvedContent"]["texts"]["confirmation"]["de"],
        "Vielen Dank für Ihre Anmeldung."
    );
    let resp = b
        .gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "1.1.0"}}),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    let resp = b
        .gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "9.9.9"}}),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");

    // OURS keeps the local value when both sides changed it again.
    data(
        &b.gql(
            CUSTOMIZE,
            json!({"i": {"serviceId": service, "changes": [
        {"setText": {"key": "confirmation", "text": {"de": "Beispielhausen sagt danke."}}}]}}),
        )
        .await,
    );
    let mut v12 = content_v1_1();
    v12["texts"]["confirmation"]["de"] = json!("Herzlichen Dank.");
    data(
        &app.caller(MUSTER, &author)
            .gql(
                PUBLISH,
                json!({"i": {"templateId": template, "version": "1.2.0", "content": v12}}),
            )
            .await,
    );
    let resp = b
        .gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "1.2.0", "resolutions": [
        {"path": "/texts/confirmation/de", "choice": "OURS"}]}}),
        )
        .await;
    data(&resp);
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    let s = &data(&resp)["service"];
    assert_eq!(
        s["resolvedContent"]["texts"]["confirmation"]["de"],
        "Beispielhausen sagt danke."
    );
    assert_eq!(s["upstream"]["pinnedVersion"]["version"], "1.2.0");
    assert!(
        serde_json::to_string(&s["overlay"])
            .unwrap()
            .contains("/texts/confirmation/de")
    );
}

#[tokio::test]
async fn services_go_live_only_with_known_departments_and_citizens_see_only_live_ones() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (_, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let service = fork(&app, BEISPIEL, &admin, &v1, "hund").await;
    let b = app.caller(BEISPIEL, &admin);
    let publish =
        "mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }";

    // Beispielhausen has no `ordnungsamt`: going live names the routing rule.
    let resp = b.gql(publish, json!({"i": {"serviceId": service}})).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["extensions"]["fields"]["/routing/tax/department"].is_string(),
        "{resp:#}"
    );
    let depts = app
        .gql(
            Some(BEISPIEL),
            None,
            "{ tenant { departments { edges { node { key } } } } }",
            json!({}),
        )
        .await;
    let local = data(&depts)["tenant"]["departments"]["edges"][0]["node"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    data(&b.gql(CUSTOMIZE, json!({"i": {"serviceId": service, "changes": [{"setRoutingDepartment": {"key": "tax", "department": local}}]}})).await);

    // Anonymous visitors do not see the draft.
    assert_code(
        &app.gql(
            Some(BEISPIEL),
            None,
            "{ service(slug: \"hund\") { slug } }",
            json!({}),
        )
        .await,
        "NOT_FOUND",
    );
    let resp = b.gql(publish, json!({"i": {"serviceId": service}})).await;
    assert_eq!(data(&resp)["publishService"]["service"]["status"], "LIVE");
    let resp = app.gql(Some(BEISPIEL), None, "{ service(slug: \"hund\") { slug status resolvedContent } services { edges { node { slug } } } }", json!({})).await;
    assert_eq!(data(&resp)["service"]["status"], "LIVE");
    assert_eq!(
        data(&resp)["service"]["resolvedContent"]["title"]["de"],
        "Testhund anmelden"
    );
    // ...but not the overlay or revisions.
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            "{ service(slug: \"hund\") { overlay } }",
            json!({}),
        )
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
    assert_code(
        &app.gql(
            Some(BEISPIEL),
            None,
            "{ services(status: DRAFT) { totalCount } }",
            json!({}),
        )
        .await,
        "FORBIDDEN",
    );

    // Retire: gone for citizens; retiring twice is a conflict.
    let retire =
        "mutation($i: ServiceIdInput!) { retireService(input: $i) { service { status } } }";
    assert_eq!(
        data(&b.gql(retire, json!({"i": {"serviceId": service}})).await)["retireService"]["service"]
            ["status"],
        "RETIRED"
    );
    assert_code(
        &b.gql(retire, json!({"i": {"serviceId": service}})).await,
        "CONFLICT",
    );
    assert_code(
        &app.gql(
            Some(BEISPIEL),
            None,
            "{ service(slug: \"hund\") { slug } }",
            json!({}),
        )
        .await,
        "NOT_FOUND",
    );
    // A second fork with the same slug is a conflict.
    let resp = b
        .gql(
            FORK,
            json!({"i": {"templateVersionId": v1, "slug": "hund"}}),
        )
        .await;
    assert_code(&resp, "CONFLICT");
}

#[tokio::test]
async fn adoption_counts_tenants_per_version_and_deprecated_versions_cannot_be_forked() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (template, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let resp = app
        .caller(MUSTER, &author)
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}}),
        )
        .await;
    let v11 = str_at(&data(&resp)["publishTemplateVersion"]["version"], "id");
    let b_admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let m_admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    fork(&app, BEISPIEL, &b_admin, &v1, "hund").await;
    fork(&app, BEISPIEL, &b_admin, &v1, "hund-zwei").await;
    fork(&app, MUSTER, &m_admin, &v11, "hund").await;

    let query = "{ template(slug: \"test-hund\") { adoption { tenants byVersion { version tenants } } versions { version adoption } } }";
    let resp = app.gql(None, None, query, json!({})).await;
    let t = &data(&resp)["template"];
    assert_eq!(t["adoption"]["tenants"], 2);
    assert_eq!(
        t["adoption"]["byVersion"],
        json!([{"version": "1.1.0", "tenants": 1}, {"version": "1.0.0", "tenants": 1}])
    );
    assert_eq!(
        t["versions"],
        json!([{"version": "1.1.0", "adoption": 1}, {"version": "1.0.0", "adoption": 1}])
    );

    let deprecate = "mutation($i: DeprecateTemplateVersionInput!) { deprecateTemplateVersion(input: $i) { version { deprecated deprecationNote } } }";
    let resp = app
        .caller(MUSTER, &m_admin)
        .gql(deprecate, json!({"i": {"id": v1}}))
        .await;
    assert_code(&resp, "FORBIDDEN");
    let resp = app
        .caller(MUSTER, &author)
        .gql(
            deprecate,
            json!({"i": {"id": v1, "note": "Gebührensatzung 2027"}}),
        )
        .await;
    assert_eq!(
        data(&resp)["deprecateTemplateVersion"]["version"]["deprecated"],
        true
    );
    let resp = app
        .caller(MUSTER, &m_admin)
        .gql(FORK, json!({"i": {"templateVersionId": v1, "slug": "alt"}}))
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["extensions"]["fields"]["input.templateVersionId"]
            .as_str()
            .unwrap()
            .contains("Gebührensatzung 2027")
    );
    // Pinned services keep working.
    let resp = app
        .caller(BEISPIEL, &b_admin)
        .gql(SERVICE, json!({"s": "hund"}))
        .await;
    assert_eq!(
        data(&resp)["service"]["upstream"]["pinnedVersion"]["version"],
        "1.0.0"
    );
}

#[tokio::test]
async fn tenants_propose_local_changes_and_the_author_accepts_them_into_a_new_version() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (_, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let service = fork(&app, BEISPIEL, &admin, &v1, "hund").await;
    let b = app.caller(BEISPIEL, &admin);
    let propose = "mutation($i: ProposeTemplateChangeInput!) { proposeTemplateChange(input: $i) { proposal { id status diff } } }";
    // Nothing to propose yet.
    assert_code(
        &b.gql(
            propose,
            json!({"i": {"serviceId": service, "message": "x"}}),
        )
        .await,
        "VALIDATION_FAILED",
    );
    data(&b.gql(CUSTOMIZE, json!({"i": {"serviceId": service, "changes": [
        {"addField": {"step": "dog", "key": "chip", "label": {"de": "Chipnummer"}, "schema": {"type": "string"}}}
    ]}})).await);
    let resp = b
        .gql(
            propose,
            json!({"i": {"serviceId": service, "message": "Chipnummer abfragen"}}),
        )
        .await;
    let proposal = data(&resp)["proposeTemplateChange"]["proposal"].clone();
    assert_eq!(proposal["status"], "OPEN");
    assert!(
        serde_json::to_string(&proposal["diff"])
            .unwrap()
            .contains("chip")
    );

    // The author sees it with its diff; a third tenant does not.
    let list = "{ template(slug: \"test-hund\") { proposals { id message status diff } } }";
    let resp = app.caller(MUSTER, &author).gql(list, json!({})).await;
    assert_eq!(
        data(&resp)["template"]["proposals"][0]["message"],
        "Chipnummer abfragen"
    );
    let exempel = app
        .login(
            Some("exempelburg"),
            ("admin@exempelburg.example", "exempelburg-admin"),
        )
        .await;
    let resp = app
        .caller("exempelburg", &exempel)
        .gql(list, json!({}))
        .await;
    assert_eq!(data(&resp)["template"]["proposals"], json!([]));
    // Only the author tenant's authors decide.
    let accept = "mutation($i: AcceptTemplateProposalInput!) { acceptTemplateProposal(input: $i) { proposal { status resultVersionId } version { version content } } }";
    let resp = b
        .gql(
            accept,
            json!({"i": {"proposalId": proposal["id"], "version": "1.1.0"}}),
        )
        .await;
    assert_code(&resp, "FORBIDDEN");
    // Semver still applies: adding an optional field is at least minor.
    let resp = app
        .caller(MUSTER, &author)
        .gql(
            accept,
            json!({"i": {"proposalId": proposal["id"], "version": "1.0.1"}}),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    let resp = app.caller(MUSTER, &author).gql(accept, json!({"i": {"proposalId": proposal["id"], "version": "1.1.0", "changelog": "Chipnummer (Vorschlag Beispielhausen)"}})).await;
    let accepted = &data(&resp)["acceptTemplateProposal"];
    assert_eq!(accepted["proposal"]["status"], "ACCEPTED");
    assert_eq!(
        field_keys(&accepted["version"]["content"], "dog"),
        ["dog_count", "breed", "chip"]
    );
    assert_code(
        &app.caller(MUSTER, &author)
            .gql(
                accept,
                json!({"i": {"proposalId": proposal["id"], "version": "1.2.0"}}),
            )
            .await,
        "CONFLICT",
    );

    // Updating the fork to the version that took its change in is clean and leaves no overlay.
    let resp = b.gql(PREVIEW, json!({"id": service, "v": "1.1.0"})).await;
    assert_eq!(data(&resp)["serviceUpdatePreview"]["clean"], true);
    data(
        &b.gql(
            APPLY,
            json!({"i": {"serviceId": service, "toVersion": "1.1.0"}}),
        )
        .await,
    );
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    assert_eq!(data(&resp)["service"]["overlay"], json!([]));
}

#[tokio::test]
async fn the_demo_marketplace_is_seeded_and_demo_forks_carry_local_changes() {
    let app = spawn_app().await;
    let resp = app.gql(None, None, "{ templates(first: 100) { edges { node { slug versions { version } adoption { tenants } } } } }", json!({})).await;
    let edges = data(&resp)["templates"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let slugs: Vec<_> = edges
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap())
        .collect();
    for s in [
        "hundesteuer-anmeldung",
        "bewohnerparkausweis",
        "sperrmuell-anmeldung",
        "meldebescheinigung",
    ] {
        assert!(slugs.contains(&s), "{slugs:?}");
    }
    let dog = edges
        .iter()
        .find(|e| e["node"]["slug"] == "hundesteuer-anmeldung")
        .unwrap();
    assert_eq!(
        dog["node"]["versions"],
        json!([{"version": "1.1.0"}, {"version": "1.0.0"}])
    );
    assert_eq!(dog["node"]["adoption"]["tenants"], 2);

    // Musterstadt's dog tax: live, one version behind, with its local fee, field and routing.
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app
        .caller(MUSTER, &admin)
        .gql(SERVICE, json!({"s": "hundesteuer"}))
        .await;
    let s = &data(&resp)["service"];
    assert_eq!(s["status"], "LIVE");
    assert_eq!(s["upstream"]["behind"], 1);
    let c = &s["resolvedContent"];
    assert_eq!(c["fees"][0]["amountCents"], 12000);
    assert!(field_keys(c, "hund").contains(&"hund_name".to_owned()));
    assert_eq!(c["routing"][0]["department"], "kasse");
    // Citizens of Beispielhausen see its live bulky-waste service with the extra fee.
    let resp = app
        .gql(
            Some(BEISPIEL),
            None,
            "{ services { edges { node { slug status resolvedContent } } } }",
            json!({}),
        )
        .await;
    let services = data(&resp)["services"]["edges"].as_array().unwrap().clone();
    assert_eq!(services.len(), 1);
    let fees: Vec<_> = services[0]["node"]["resolvedContent"]["fees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fees, ["abholung", "zusatzvolumen", "anfahrt"]);

    // The update to 1.1.0 merges cleanly: upstream's chip field and Musterstadt's changes.
    let id = str_at(s, "id");
    let resp = app
        .caller(MUSTER, &admin)
        .gql(PREVIEW, json!({"id": id, "v": "1.1.0"}))
        .await;
    let p = &data(&resp)["serviceUpdatePreview"];
    assert_eq!(p["clean"], true, "{p:#}");
    let keys = field_keys(&p["mergedContent"], "hund");
    assert!(
        keys.contains(&"chip_number".to_owned()) && keys.contains(&"hund_name".to_owned()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn concurrent_customizations_never_both_win() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let (_, v1) = published_template(&app, &author, "test-hund", "PUBLIC").await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let service = fork(&app, BEISPIEL, &admin, &v1, "hund").await;
    let b = app.caller(BEISPIEL, &admin);
    let edits: Vec<_> = (0..8)
        .map(|i| {
            b.gql(CUSTOMIZE, json!({"i": {"serviceId": service, "expectedRevision": 1, "changes": [{"modifyFee": {"key": "tax", "amountCents": 10000 + i}}]}}))
        })
        .collect();
    let results = futures_util::future::join_all(edits).await;
    let mut won = 0;
    for r in &results {
        if r.get("errors").is_none_or(serde_json::Value::is_null) {
            won += 1;
        } else {
            // Losers get a typed error, never a server error.
            assert_code(r, "CONFLICT");
        }
    }
    // All eight edited revision 1: exactly one of them lands, on SQLite and PostgreSQL alike.
    assert_eq!(won, 1, "{results:#?}");
    let resp = b.gql(SERVICE, json!({"s": "hund"})).await;
    let s = &data(&resp)["service"];
    assert_eq!(s["revision"], 2);
    assert_eq!(s["revisions"]["totalCount"], 2);
    let winner = results.iter().position(|r| r["errors"].is_null()).unwrap();
    let fee = s["resolvedContent"]["fees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "tax")
        .unwrap()["amountCents"]
        .clone();
    assert_eq!(fee, 10000 + winner);
    // The same edit on the current revision goes through.
    let resp = b
        .gql(CUSTOMIZE, json!({"i": {"serviceId": service, "expectedRevision": 2, "changes": [{"modifyFee": {"key": "tax", "amountCents": 9000}}]}}))
        .await;
    assert_eq!(data(&resp)["customizeService"]["service"]["revision"], 3);
}

/// The value of a Prometheus counter (0 when it has not been counted yet).
/// Each listed node (with the fields `node`) is what the single template query answers for it.
async fn assert_nodes_as_single_templates(app: &TestApp, edges: &[Value], node: &str) {
    for e in edges {
        let slug = e["node"]["slug"].as_str().unwrap();
        let one = app
            .gql(
                Some(MUSTER),
                None,
                &format!("{{ template(slug: \"{slug}\") {{ {node} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(data(&one)["template"], e["node"], "{slug}");
    }
}

#[tokio::test]
async fn nested_lists_of_a_marketplace_page_load_with_the_page_or_in_one_batch_each() {
    let app = spawn_app().await;
    let series = loader_series;
    let batches = || async {
        [
            counter(&app, &series("batches", "VersionsOf")).await,
            counter(&app, &series("batches", "AdoptionOf")).await,
            counter(&app, &series("keys", "VersionsOf")).await,
        ]
    };
    const NODE: &str = "slug versions { version changelog } latestVersion { version } adoption { tenants byVersion { version tenants } }";
    let page = |extra: &str| {
        format!("{{ templates(first: 20) {{ {extra} edges {{ node {{ {NODE} }} }} }} }}")
    };

    // Versions and adoption come along with the page: no loader batch at all.
    let before = batches().await;
    let resp = app.gql(Some(MUSTER), None, &page(""), json!({})).await;
    let edges = data(&resp)["templates"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert!(edges.len() >= 4, "{resp}");
    assert_eq!(batches().await, before);

    // Each node as the single template query (loader path) shows it.
    assert_nodes_as_single_templates(&app, &edges, NODE).await;
    let dog = edges
        .iter()
        .find(|e| e["node"]["slug"] == "hundesteuer-anmeldung")
        .unwrap();
    assert_eq!(dog["node"]["latestVersion"]["version"], "1.1.0");
    assert_eq!(dog["node"]["adoption"]["tenants"], 2);

    // With totalCount the page takes the counting path; its nested lists are still one batch
    // each for the whole page, not one query per template.
    let before = batches().await;
    let resp = app
        .gql(Some(MUSTER), None, &page("totalCount"), json!({}))
        .await;
    assert_eq!(
        data(&resp)["templates"]["edges"].as_array().unwrap(),
        &edges
    );
    let after = batches().await;
    assert_eq!(after[0] - before[0], 1.0);
    assert_eq!(after[1] - before[1], 1.0);
    assert_eq!(after[2] - before[2], edges.len() as f64);
}

#[tokio::test]
async fn a_listing_shows_the_descriptive_fields_exactly_when_asked_for() {
    let app = spawn_app().await;
    let list =
        |node: &str| format!("{{ templates(first: 20) {{ edges {{ node {{ {node} }} }} }} }}");
    const DETAILS: &str = "slug title summary tags leikaCode license";
    let resp = app.gql(Some(MUSTER), None, &list(DETAILS), json!({})).await;
    let edges = data(&resp)["templates"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert!(edges.len() >= 4, "{resp}");
    // As the single template query (which always reads whole rows) shows each.
    assert_nodes_as_single_templates(&app, &edges, DETAILS).await;
    // The seeded templates have them: an empty listing would compare nothing.
    assert!(
        edges
            .iter()
            .all(|e| !e["node"]["summary"].as_str().unwrap().is_empty())
    );
    assert!(
        edges
            .iter()
            .any(|e| !e["node"]["tags"].as_array().unwrap().is_empty())
    );
    assert!(edges.iter().any(|e| e["node"]["leikaCode"].is_string()));
    // Without them (read without those columns on PostgreSQL), the same templates in the same
    // order; each detail asked alone comes in full.
    let resp = app
        .gql(Some(MUSTER), None, &list("slug title"), json!({}))
        .await;
    let short: Vec<Value> = edges
        .iter()
        .map(|e| json!({"node": {"slug": e["node"]["slug"], "title": e["node"]["title"]}}))
        .collect();
    assert_eq!(
        data(&resp)["templates"]["edges"].as_array().unwrap(),
        &short
    );
    for field in ["summary", "tags", "leikaCode", "license"] {
        let resp = app
            .gql(
                Some(MUSTER),
                None,
                &list(&format!("slug {field}")),
                json!({}),
            )
            .await;
        let got = data(&resp)["templates"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        let want: Vec<Value> = edges
            .iter()
            .map(|e| json!({"node": {"slug": e["node"]["slug"], field: e["node"][field]}}))
            .collect();
        assert_eq!(got, want, "{field}");
    }
}

/// The marketplace page is remembered for a few seconds, and every change of templates or
/// versions made here shows at once: a new template, its visibility, a new version, a deprecation.
#[tokio::test]
async fn the_marketplace_page_shows_every_change_made_here_at_once() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    // Slug → its versions as `version` or `version (deprecated)`, as a visitor of `tenant` sees them.
    let listed = |tenant: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .gql(
                    Some(tenant),
                    None,
                    "{ templates(first: 100) { edges { node { slug versions { version deprecated } } } } }",
                    json!({}),
                )
                .await;
            data(&resp)["templates"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let versions: Vec<String> = e["node"]["versions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| match v["deprecated"].as_bool() {
                            Some(true) => format!("{} (deprecated)", str_at(v, "version")),
                            _ => str_at(v, "version"),
                        })
                        .collect();
                    (str_at(&e["node"], "slug"), versions)
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    assert!(!listed(MUSTER).await.contains_key("test-hund"));
    assert!(!listed(BEISPIEL).await.contains_key("test-hund"));

    let (template, v1) = published_template(&app, &author, "test-hund", "PRIVATE").await;
    assert_eq!(listed(MUSTER).await["test-hund"], ["1.0.0"]);
    assert!(!listed(BEISPIEL).await.contains_key("test-hund"), "private");

    let resp = app
        .caller(MUSTER, &author)
        .gql(
            "mutation($i: SetTemplateVisibilityInput!) { setTemplateVisibility(input: $i) { template { visibility } } }",
            json!({"i": {"templateId": template, "visibility": "PUBLIC"}}),
        )
        .await;
    assert_eq!(
        data(&resp)["setTemplateVisibility"]["template"]["visibility"],
        "PUBLIC"
    );
    assert_eq!(listed(BEISPIEL).await["test-hund"], ["1.0.0"]);

    let resp = app
        .caller(MUSTER, &author)
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": content_v1_1()}}),
        )
        .await;
    data(&resp);
    assert_eq!(listed(BEISPIEL).await["test-hund"], ["1.1.0", "1.0.0"]);

    let resp = app
        .caller(MUSTER, &author)
        .gql(
            "mutation($i: DeprecateTemplateVersionInput!) { deprecateTemplateVersion(input: $i) { version { deprecated } } }",
            json!({"i": {"id": v1}}),
        )
        .await;
    data(&resp);
    assert_eq!(
        listed(BEISPIEL).await["test-hund"],
        ["1.1.0", "1.0.0 (deprecated)"]
    );
}
