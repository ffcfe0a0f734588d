//! FIM import: the real XDatenfelder samples in `../shared/fim-samples` (read from there, never
//! copied here) become template content through `importFimSchema`, are published, forked,
//! customized and merged like any other template, and their JSON Schemas validate citizens'
//! answers. Bad input gets typed errors, never a 5xx.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::marketplace::MUSTER_AUTHOR;

const IMPORT: &str = "mutation($i: ImportFimSchemaInput!) { importFimSchema(input: $i) { content report { standard schemaId schemaVersion name fields distinctFields groups distinctGroups rules codeLists codeListsMissing steps properties documents warnings { path key message } } } }";
const CREATE: &str =
    "mutation($i: CreateTemplateInput!) { createTemplate(input: $i) { template { id } } }";
const PUBLISH: &str = "mutation($i: PublishTemplateVersionInput!) { publishTemplateVersion(input: $i) { version { id version } } }";
const FORK: &str =
    "mutation($i: ForkTemplateInput!) { forkTemplate(input: $i) { service { id } } }";
const GO_LIVE: &str =
    "mutation($i: ServiceIdInput!) { publishService(input: $i) { service { status } } }";
const DRAFT: &str = "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id problems { path message } } } }";

/// The samples folder: `../shared/fim-samples` seen from the repository's root, or
/// `AMTSPLATZ_FIM_SAMPLES`. Missing samples fail the test; they are never skipped.
pub(crate) fn samples() -> PathBuf {
    let dir = std::env::var_os("AMTSPLATZ_FIM_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fim-samples"));
    assert!(
        dir.join("README.md").is_file(),
        "the FIM sample files are missing: expected them in {} (`../shared/fim-samples` next to \
         the repository; AMTSPLATZ_FIM_SAMPLES names another folder). They are third-party \
         files kept outside the repository on purpose.",
        dir.display()
    );
    dir
}

pub(crate) fn read(name: &str) -> String {
    let path = samples().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the FIM sample {}: {e}", path.display()))
}

const BLAUE_KARTE: &str = "xdf2-S00000121-blaue-karte.xml";
const WAFFENBESITZKARTE: &str = "xdf1-S00000036-waffenbesitzkarte.xml";
pub(crate) const MUTTERSCHUTZ: &str = "xdf2-S00000094-mutterschutz/S00000094V1.0_xdf2.xml";

/// The Mutterschutz code lists shipped with the schema.
pub(crate) fn mutterschutz_code_lists() -> Vec<String> {
    let dir = samples().join("xdf2-S00000094-mutterschutz");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_genericode.xml"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    names
        .iter()
        .map(|n| read(&format!("xdf2-S00000094-mutterschutz/{n}")))
        .collect()
}

pub(crate) async fn import(
    app: &TestApp,
    author: &Session,
    xml: &str,
    code_lists: &[String],
) -> Value {
    app.caller(MUSTER, author)
        .gql(
            IMPORT,
            json!({"i": {"xml": xml, "codeLists": code_lists, "category": "familie"}}),
        )
        .await
}

/// The key an element with this FIM id got (its first place).
fn key_of(content: &Value, id: &str) -> String {
    content["fim"]["elements"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, e)| e["id"] == id && e["kind"] == "field")
        .map(|(k, _)| k.clone())
        .unwrap_or_else(|| panic!("no field {id} in {:#}", content["fim"]["elements"]))
}

fn layout_field<'a>(content: &'a Value, key: &str) -> &'a Value {
    content["form"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["fields"].as_array().unwrap())
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("no layout field {key}"))
}

#[tokio::test]
async fn both_xdatenfelder_2_samples_import_with_the_counts_measured_on_them() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;

    let started = std::time::Instant::now();
    let resp = import(&app, &author, &read(BLAUE_KARTE), &[]).await;
    let blue = &data(&resp)["importFimSchema"];
    let r = &blue["report"];
    eprintln!("Blaue Karte imported in {:?}", started.elapsed());
    assert_eq!(
        (&r["standard"], &r["schemaId"], &r["schemaVersion"]),
        (&json!("xdatenfelder-2"), &json!("S00000121"), &json!("1.0"))
    );
    // The samples README: 88 / 71 fields, 29 / 23 groups, 3 rules, 4 code lists referenced.
    assert_eq!(
        (r["fields"].as_i64(), r["distinctFields"].as_i64()),
        (Some(88), Some(71))
    );
    assert_eq!(
        (r["groups"].as_i64(), r["distinctGroups"].as_i64()),
        (Some(29), Some(23))
    );
    assert_eq!(r["rules"], 3);
    // Its code lists are not in the samples: the select fields take text, and the report says so.
    assert_eq!(
        (r["codeLists"].as_i64(), r["codeListsMissing"].as_i64()),
        (Some(0), Some(4))
    );
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["message"]
            .as_str()
            .unwrap()
            .contains("urn:xpersonenstand:schluesseltabelle:geschlecht_2")
            && w["path"] == "S00000121/G00000630/F00000065"),
        "{warnings:#?}"
    );
    // 8 file fields: required documents.
    assert_eq!(r["documents"], 8);
    let content = &blue["content"];
    assert_eq!(content["fim"]["schemaId"], "S00000121");
    // One field at several places: one key per place, made from the path.
    let postcodes: Vec<&String> = content["fim"]["elements"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["id"] == "F00000054")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(postcodes.len(), 3, "{postcodes:?}");
    // `praezisierung` and `anzahl`: lengths, and the repeating address line (2:5).
    let props = &content["form"]["schema"]["properties"];
    let plz = &props[postcodes[0].as_str()];
    assert_eq!(
        (plz["minLength"].as_i64(), plz["maxLength"].as_i64()),
        (Some(5), Some(5))
    );
    let line = key_of(content, "F00000087");
    assert_eq!(props[&line]["type"], "array");
    assert_eq!(
        (
            props[&line]["minItems"].as_i64(),
            props[&line]["maxItems"].as_i64()
        ),
        (Some(2), Some(5))
    );
    let contact = content["fim"]["elements"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, e)| e["id"] == "G00000015")
        .map(|(k, _)| k.clone())
        .unwrap();
    assert_eq!(props[&contact]["items"]["type"], "object");
    assert_eq!(props[&contact]["minItems"], 1);

    let started = std::time::Instant::now();
    let resp = import(
        &app,
        &author,
        &read(MUTTERSCHUTZ),
        &mutterschutz_code_lists(),
    )
    .await;
    let mother = &data(&resp)["importFimSchema"];
    eprintln!("Mutterschutz imported in {:?}", started.elapsed());
    let r = &mother["report"];
    assert_eq!(r["schemaId"], "S00000094");
    assert_eq!(
        (r["fields"].as_i64(), r["distinctFields"].as_i64()),
        (Some(44), Some(29))
    );
    assert_eq!(
        (r["groups"].as_i64(), r["distinctGroups"].as_i64()),
        (Some(16), Some(13))
    );
    assert_eq!(r["rules"], 13);
    assert_eq!(
        (r["codeLists"].as_i64(), r["codeListsMissing"].as_i64()),
        (Some(4), Some(0))
    );
    let content = &mother["content"];
    // A select field: the codes as enum, the names as labels, the code list by URI and version.
    let status = key_of(content, "F00000462");
    assert_eq!(
        content["form"]["schema"]["properties"][&status]["enum"],
        json!(["001", "002"])
    );
    assert_eq!(
        layout_field(content, &status)["choices"]["001"]["de"],
        "ist schwanger"
    );
    let lists = content["fim"]["codeLists"].as_array().unwrap();
    let staat = lists
        .iter()
        .find(|l| {
            l["canonicalUri"] == "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:staat"
        })
        .unwrap();
    assert_eq!(
        (staat["version"].as_str(), staat["codes"].as_i64()),
        (Some("2021-02-19"), Some(197))
    );
    // The pattern of the postcode, anchored as XSD patterns are.
    let plz = key_of(content, "F60000246");
    assert_eq!(
        content["form"]["schema"]["properties"][&plz]["pattern"],
        "^(?:([0]{1}[1-9]{1}|[1-9]{1}[0-9]{1})[0-9]{3})$"
    );
    // Rules: notes for the author with their text, not logic.
    let notes = content["fim"]["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| {
        n["ruleId"] == "R00000849"
            && n["text"]
                .as_str()
                .unwrap()
                .contains("F00000601 zum Pflichtfeld")
    }));

    // Only authors import.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let resp = import(&app, &staff, &read(MUTTERSCHUTZ), &[]).await;
    assert_code(&resp, "FORBIDDEN");
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            IMPORT,
            json!({"i": {"xml": read(MUTTERSCHUTZ)}}),
        )
        .await;
    assert_code(&resp, "UNAUTHENTICATED");
}

/// Answers for every required field of an object schema (strings within their lengths and
/// patterns, the first choice, the minimum number, dates, lists of the least length).
fn filled(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap();
        out.insert(key.to_owned(), value_for(&schema["properties"][key]));
    }
    Value::Object(out)
}

fn value_for(p: &Value) -> Value {
    if let Some(first) = p["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match p["type"].as_str().unwrap_or("string") {
        "boolean" => json!(true),
        "integer" | "number" => p.get("minimum").cloned().unwrap_or(json!(1)),
        "array" => {
            let n = p["minItems"].as_u64().unwrap_or(1).max(1);
            Value::Array((0..n).map(|_| value_for(&p["items"])).collect())
        }
        "object" => filled(p),
        _ if p["format"] == "date" => json!("2026-03-15"),
        _ => match p["pattern"].as_str() {
            Some(pat) if pat.contains('@') => json!("erika@example.org"),
            Some(_) => json!("12345"),
            None => {
                let min = p["minLength"].as_u64().unwrap_or(1) as usize;
                let max = p["maxLength"].as_u64().unwrap_or(12) as usize;
                json!("1".repeat(min.max(8).min(max)))
            }
        },
    }
}

/// Publishes `content` as a new public template of Musterstadt's author; the version's id.
pub(crate) async fn publish(
    app: &TestApp,
    author: &Session,
    slug: &str,
    content: &Value,
) -> (String, String) {
    let a = app.caller(MUSTER, author);
    let resp = a
        .gql(
            CREATE,
            json!({"i": {"slug": slug, "title": "FIM", "category": "familie"}}),
        )
        .await;
    let template = str_at(&data(&resp)["createTemplate"]["template"], "id");
    let resp = a
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.0.0", "content": content}}),
        )
        .await;
    (
        template,
        str_at(&data(&resp)["publishTemplateVersion"]["version"], "id"),
    )
}

/// The paths of a draft's problems with the form data (not the documents).
async fn data_problems(app: &TestApp, tenant: &str, slug: &str, form: &Value) -> BTreeSet<String> {
    let resp = app
        .gql(
            Some(tenant),
            None,
            DRAFT,
            json!({"i": {"serviceSlug": slug, "data": form}}),
        )
        .await;
    data(&resp)["saveDraft"]["draft"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_at(p, "path"))
        .filter(|p| p.starts_with("input.data"))
        .collect()
}

#[tokio::test]
async fn imported_forms_accept_a_filled_form_and_name_a_missing_required_field() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let b = app.caller(BEISPIEL, &admin);
    let samples = [
        ("fim-blaue-karte", read(BLAUE_KARTE), vec![]),
        (
            "fim-mutterschutz",
            read(MUTTERSCHUTZ),
            mutterschutz_code_lists(),
        ),
    ];
    for (slug, xml, lists) in samples {
        let resp = import(&app, &author, &xml, &lists).await;
        let content = data(&resp)["importFimSchema"]["content"].clone();
        let (_, version) = publish(&app, &author, slug, &content).await;
        let resp = b
            .gql(
                FORK,
                json!({"i": {"templateVersionId": version, "slug": slug}}),
            )
            .await;
        let service = str_at(&data(&resp)["forkTemplate"]["service"], "id");
        data(&b.gql(GO_LIVE, json!({"i": {"serviceId": service}})).await);

        let schema = &content["form"]["schema"];
        let form = filled(schema);
        assert_eq!(
            data_problems(&app, BEISPIEL, slug, &form).await,
            BTreeSet::new(),
            "{slug}: {form:#}"
        );
        // Without one required field: that field's path.
        let required = schema["required"][0].as_str().unwrap().to_owned();
        let mut missing = form.clone();
        missing.as_object_mut().unwrap().remove(&required);
        assert_eq!(
            data_problems(&app, BEISPIEL, slug, &missing).await,
            BTreeSet::from([format!("input.data/{required}")]),
            "{slug}"
        );
        // A wrong type and a too long text are named too.
        let text_key = schema["properties"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, p)| {
                p["maxLength"].as_u64().is_some_and(|m| m < 200) && p["pattern"].is_null()
            })
            .map(|(k, _)| k.clone())
            .unwrap();
        let mut long = form.clone();
        long[&text_key] = json!("x".repeat(300));
        assert!(
            data_problems(&app, BEISPIEL, slug, &long)
                .await
                .contains(&format!("input.data/{text_key}")),
            "{slug}"
        );

        if slug == "fim-mutterschutz" {
            // An optional group (Postfach, 0:1): once one of its fields is answered, its
            // required fields are asked for.
            let postbox = key_of(&content, "F60000249");
            let mut partial = form.clone();
            partial[&postbox] = json!("12 34");
            let problems = data_problems(&app, BEISPIEL, slug, &partial).await;
            assert_eq!(problems.len(), 2, "{problems:?}");
            // A citizen submits the filled form.
            let resp = app
                .gql(Some(BEISPIEL), None, "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { reference } } }",
                     json!({"i": {"serviceSlug": slug, "data": form}}))
                .await;
            assert!(
                !str_at(
                    &data(&resp)["submitApplication"]["application"],
                    "reference"
                )
                .is_empty()
            );
        }
    }
}

#[tokio::test]
async fn an_xdatenfelder_1_file_gets_a_clear_error_naming_the_version() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let resp = import(&app, &author, &read(WAFFENBESITZKARTE), &[]).await;
    assert_code(&resp, "VALIDATION_FAILED");
    let message = resp["errors"][0]["extensions"]["fields"]["input.xml"]
        .as_str()
        .unwrap();
    assert!(message.contains("XDatenfelder 1"), "{message}");
    assert!(
        message.contains("urn:xoev-de:fim:standard:xdatenfelder_1"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_hostile_and_huge_input_get_typed_errors() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let a = app.caller(MUSTER, &author);
    let field_error = |resp: &Value, path: &str, words: &str| {
        assert_code(resp, "VALIDATION_FAILED");
        let msg = resp["errors"][0]["extensions"]["fields"][path]
            .as_str()
            .unwrap_or_else(|| panic!("no error at {path}: {resp:#}"));
        assert!(msg.contains(words), "{path}: {msg}");
    };
    let call = |xml: String, lists: Vec<String>| {
        let a = &a;
        async move {
            a.gql(IMPORT, json!({"i": {"xml": xml, "codeLists": lists}}))
                .await
        }
    };
    let xml = read(MUTTERSCHUTZ);
    let half = xml[..xml.floor_char_boundary(xml.len() / 2)].to_owned();
    field_error(&call(half, vec![]).await, "input.xml", "not well-formed");
    field_error(
        &call("<a><b></a>".into(), vec![]).await,
        "input.xml",
        "not well-formed",
    );
    field_error(
        &call("kein XML".into(), vec![]).await,
        "input.xml",
        "not well-formed",
    );
    // Entities: a DTD is refused, so nothing can be declared (let alone expanded).
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>"#;
    field_error(&call(bomb.into(), vec![]).await, "input.xml", "DOCTYPE");
    let external =
        r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><l>&x;</l>"#;
    field_error(&call(external.into(), vec![]).await, "input.xml", "DOCTYPE");
    // Another document type, and a broken element named by its FIM path.
    let list = mutterschutz_code_lists().remove(0);
    field_error(
        &call(list.clone(), vec![]).await,
        "input.xml",
        "not an XDatenfelder 2 schema",
    );
    let broken = xml.replacen(
        "<xdf:anzahl>1:1</xdf:anzahl>",
        "<xdf:anzahl>viele</xdf:anzahl>",
        1,
    );
    field_error(&call(broken, vec![]).await, "input.xml/S00000094", "anzahl");
    field_error(
        &call(xml.clone(), vec![xml.clone()]).await,
        "input.codeLists[0]",
        "Genericode",
    );
    // NUL characters are refused before anything is read.
    let resp = call(format!("{}\u{0}", &xml[..100]), vec![]).await;
    assert_code(&resp, "VALIDATION_FAILED");
    // Over the schema limit, and over the request limit.
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            Some(&author.access),
            IMPORT,
            json!({"i": {"xml": format!("{xml}{}", " ".repeat(620 * 1024))}}),
        )
        .await;
    assert!(status < 500);
    assert_code(&resp, "PAYLOAD_TOO_LARGE");
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            Some(&author.access),
            IMPORT,
            json!({"i": {"xml": "x".repeat(2 * 1024 * 1024)}}),
        )
        .await;
    assert_eq!(status, 413);
    assert_code(&resp, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn an_imported_form_is_forked_customized_and_merged_like_any_template() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let lists = mutterschutz_code_lists();
    let resp = import(&app, &author, &read(MUTTERSCHUTZ), &lists).await;
    let v1 = data(&resp)["importFimSchema"]["content"].clone();
    let (template, version) = publish(&app, &author, "fim-mutterschutz", &v1).await;

    // Beispielhausen forks, changes a label and drops a field of an optional group.
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let b = app.caller(BEISPIEL, &admin);
    let resp = b
        .gql(
            FORK,
            json!({"i": {"templateVersionId": version, "slug": "mutterschutz"}}),
        )
        .await;
    let service = str_at(&data(&resp)["forkTemplate"]["service"], "id");
    let name = key_of(&v1, "F60000319");
    // A field that an optional group's other fields depend on (`dependentRequired`).
    let dependent = v1["form"]["schema"]["dependentRequired"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()[0]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = b
        .gql(
            "mutation($i: CustomizeServiceInput!) { customizeService(input: $i) { service { revision resolvedContent } } }",
            json!({"i": {"serviceId": service, "changes": [
                {"modifyField": {"key": name, "label": {"de": "Name des Betriebs"}}},
                {"removeField": {"key": dependent}}
            ]}}),
        )
        .await;
    let custom = &data(&resp)["customizeService"]["service"]["resolvedContent"];
    assert!(
        custom["form"]["schema"]["properties"]
            .get(&dependent)
            .is_none()
    );
    let deps = serde_json::to_string(&custom["form"]["schema"]["dependentRequired"]).unwrap();
    assert!(!deps.contains(&format!("\"{dependent}\"")), "{deps}");

    // The author reworks the imported form (another step title, a new optional field) and
    // publishes 1.1.0; the fork merges it without conflicts and keeps its changes.
    let mut v2 = v1.clone();
    let first_step = v2["form"]["steps"][0]["key"].as_str().unwrap().to_owned();
    v2["form"]["steps"][0]["title"]["de"] = json!("Arbeitgeber");
    v2["form"]["schema"]["properties"]["hinweis"] = json!({"type": "string", "maxLength": 500});
    v2["form"]["steps"][0]["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "hinweis", "label": {"de": "Hinweis"}}));
    let resp = app
        .caller(MUSTER, &author)
        .gql(
            PUBLISH,
            json!({"i": {"templateId": template, "version": "1.1.0", "content": v2}}),
        )
        .await;
    data(&resp);
    let resp = b
        .gql(
            "query($id: ID!) { serviceUpdatePreview(serviceId: $id, toVersion: \"1.1.0\") { clean conflicts { path } } }",
            json!({"id": service}),
        )
        .await;
    assert_eq!(
        data(&resp)["serviceUpdatePreview"]["clean"],
        true,
        "{resp:#}"
    );
    let resp = b
        .gql(
            "mutation($i: ApplyServiceUpdateInput!) { applyServiceUpdate(input: $i) { service { revision } } }",
            json!({"i": {"serviceId": service, "toVersion": "1.1.0"}}),
        )
        .await;
    data(&resp);
    let resp = b
        .gql(
            "query($s: String!) { service(slug: $s) { resolvedContent } }",
            json!({"s": "mutterschutz"}),
        )
        .await;
    let merged = &data(&resp)["service"]["resolvedContent"];
    let step = merged["form"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == first_step.as_str())
        .unwrap();
    assert_eq!(step["title"]["de"], "Arbeitgeber");
    assert_eq!(
        layout_field(merged, &name)["label"]["de"],
        "Name des Betriebs"
    );
    assert!(
        merged["form"]["schema"]["properties"]
            .get("hinweis")
            .is_some()
    );
    assert!(
        merged["form"]["schema"]["properties"]
            .get(&dependent)
            .is_none()
    );
    assert_eq!(merged["fim"]["schemaId"], "S00000094");
}

/// Inputs near a real schema: cut, with bytes replaced, with tags inserted, or random text.
fn hostile(xml: String) -> impl Strategy<Value = String> {
    let len = xml.len();
    let cut = (0..len).prop_map({
        let xml = xml.clone();
        move |at| xml[..xml.floor_char_boundary(at)].to_owned()
    });
    let tokens = prop_oneof![
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("</xdf:struktur>".to_owned()),
        Just("<xdf:struktur><xdf:anzahl>0:*</xdf:anzahl><xdf:enthaelt>".to_owned()),
        Just("&#0;".to_owned()),
        Just("&amp;".to_owned()),
        Just("&unbekannt;".to_owned()),
        Just("<![CDATA[x]]>".to_owned()),
        Just("{\"minLength\":\"x\"}".to_owned()),
        "\\PC{0,12}",
    ];
    let spliced = (0..len, prop::collection::vec(tokens, 1..6)).prop_map({
        let xml = xml.clone();
        move |(at, tokens)| {
            let at = xml.floor_char_boundary(at);
            format!("{}{}{}", &xml[..at], tokens.concat(), &xml[at..])
        }
    });
    prop_oneof![cut, spliced, "\\PC{0,200}"]
}

#[tokio::test]
async fn random_and_damaged_schemas_never_cause_a_server_error() {
    let app = spawn_app().await;
    let author = app.login(Some(MUSTER), MUSTER_AUTHOR).await;
    let xml = read(MUTTERSCHUTZ);
    let mut runner = TestRunner::deterministic();
    let strategy = hostile(xml);
    for i in 0..48 {
        let input = strategy.new_tree(&mut runner).unwrap().current();
        let (status, resp) = app
            .gql_raw(
                Some(MUSTER),
                Some(&author.access),
                IMPORT,
                json!({"i": {"xml": input}}),
            )
            .await;
        assert!(status < 500, "case {i} answered {status}");
        if let Some(errors) = resp["errors"].as_array() {
            let code = errors[0]["extensions"]["code"].as_str().unwrap_or("");
            assert!(
                ["VALIDATION_FAILED", "PAYLOAD_TOO_LARGE"].contains(&code),
                "case {i}: {resp:#}"
            );
        }
    }
}

#[test]
fn the_cli_imports_a_schema_from_files_and_refuses_version_1() {
    let bin = env!("CARGO_BIN_EXE_amtsplatz-test-server");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("content.json");
    let folder = samples().join("xdf2-S00000094-mutterschutz");
    let mut cmd = Command::new(bin);
    cmd.args(["fim", "import"])
        .arg(folder.join("S00000094V1.0_xdf2.xml"))
        .arg("--out")
        .arg(&out);
    for list in ["C00000020", "C00000021", "C60000006", "C60000020"] {
        cmd.arg("--code-list")
            .arg(folder.join(format!("{list}_genericode.xml")));
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("44 fields (29 distinct), 16 groups (13 distinct)"),
        "{stderr}"
    );
    let content: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(content["fim"]["schemaId"], "S00000094");

    let run = Command::new(bin)
        .args(["fim", "import"])
        .arg(samples().join(WAFFENBESITZKARTE))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("XDatenfelder 1"));
}
