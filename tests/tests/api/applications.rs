//! Applications: drafts, submission, routing, workflow, mailbox, live status, export, GDPR.

use std::collections::BTreeSet;

use futures_util::SinkExt as _;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

const APP_FIELDS: &str = "id reference state stateLabel serviceSlug revision data feeTotalCents \
    fees { key amountCents } tasks { id state ruleKey department { key } } done \
    allowedTransitions { to } timeline { kind actor fromState toState comment internal }";

pub(crate) fn dog(listed: bool) -> Value {
    json!({
        "name": "Erika Mustermann", "street": "Hauptstraße 1", "postcode": "12345",
        "city": "Musterstadt", "email": "erika@example.org", "dog_count": 1,
        "breed": "Pitbull-Terrier", "listed_breed": listed, "date_acquired": "2026-10-01",
        "iban": "DE02120300000000202051", "account_holder": "Erika Mustermann"
    })
}

async fn submit(app: &TestApp, token: Option<&str>, data: Value) -> Value {
    let mut input = json!({ "serviceSlug": "hundesteuer", "data": data });
    // A listed breed needs the certificate of competence, which comes with a draft.
    if data["listed_breed"] == true {
        let (draft_id, draft_token) = draft_with_certificate(app, token, &data).await;
        input["draftId"] = json!(draft_id);
        input["accessToken"] = json!(draft_token);
    }
    app.gql(
        Some(MUSTER),
        token,
        &format!("mutation($i: SubmitApplicationInput!) {{ submitApplication(input: $i) {{ accessToken application {{ {APP_FIELDS} }} }} }}"),
        json!({ "i": input }),
    )
    .await
}

/// A draft of the dog tax with the certificate of competence attached; (id, access token).
pub(crate) async fn draft_with_certificate(
    app: &TestApp,
    token: Option<&str>,
    form: &Value,
) -> (String, Option<String>) {
    let resp = app
        .gql(
            Some(MUSTER),
            token,
            "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": form } }),
        )
        .await;
    let p = &data(&resp)["saveDraft"];
    let (id, access) = (
        str_at(&p["draft"], "id"),
        p["accessToken"].as_str().map(str::to_owned),
    );
    attach_certificate(app, token, &id, access.as_deref()).await;
    (id, access)
}

async fn attach_certificate(app: &TestApp, token: Option<&str>, draft: &str, access: Option<&str>) {
    let (status, resp) = upload_file(
        app,
        MUSTER,
        token,
        json!({ "draftId": draft, "accessToken": access, "document": "sachkundenachweis" }),
        "sachkunde.pdf",
        "application/pdf",
        pdf("Sachkundeprüfung bestanden"),
    )
    .await;
    assert_eq!(status, 200);
    data(&resp);
}

pub(crate) async fn submitted(app: &TestApp, data: Value) -> (Value, String) {
    let resp = submit(app, None, data).await;
    let p = &data_of(&resp)["submitApplication"];
    (p["application"].clone(), str_at(p, "accessToken"))
}

#[track_caller]
fn data_of(resp: &Value) -> &Value {
    data(resp)
}

async fn transition(caller: &Caller<'_>, id: &str, to: &str, comment: Option<&str>) -> Value {
    caller
        .gql(
            &format!("mutation($i: TransitionApplicationInput!) {{ transitionApplication(input: $i) {{ application {{ {APP_FIELDS} }} }} }}"),
            json!({ "i": { "id": id, "to": to, "comment": comment } }),
        )
        .await
}

async fn as_applicant(app: &TestApp, id: &str, token: &str, fields: &str) -> Value {
    app.gql(
        Some(MUSTER),
        None,
        &format!(
            "query($id: ID!, $t: String) {{ application(id: $id, accessToken: $t) {{ {fields} }} }}"
        ),
        json!({ "id": id, "t": token }),
    )
    .await
}

pub(crate) async fn exec(app: &TestApp, sql: &str) {
    let db = Database::connect(&app.db_url).await.unwrap();
    db.execute_unprepared(sql).await.unwrap();
    db.close().await.ok();
}

#[tokio::test]
async fn a_citizen_goes_from_draft_to_decision_while_two_departments_process_it() {
    let app = spawn_app().await;

    // Draft: saved anonymously, resumed with the access token only.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { id serviceSlug data } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": { "name": "Erika" } } }),
        )
        .await;
    let saved = &data(&resp)["saveDraft"];
    let draft_id = str_at(&saved["draft"], "id");
    let draft_token = str_at(saved, "accessToken");
    assert!(draft_token.len() >= 40, "an unguessable token");
    let resume =
        "query($id: ID!, $t: String) { draft(id: $id, accessToken: $t) { id data serviceSlug } }";
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            resume,
            json!({ "id": draft_id, "t": draft_token }),
        )
        .await;
    assert_eq!(data(&resp)["draft"]["data"]["name"], "Erika");
    assert_code(
        &app.gql(Some(MUSTER), None, resume, json!({ "id": draft_id }))
            .await,
        "UNAUTHENTICATED",
    );
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            resume,
            json!({ "id": draft_id, "t": "guessed" }),
        )
        .await,
        "NOT_FOUND",
    );
    // Updating needs the token too.
    let update =
        "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { accessToken draft { data } } }";
    let resp = app
        .gql(Some(MUSTER), None, update, json!({ "i": { "serviceSlug": "hundesteuer", "draftId": draft_id, "accessToken": draft_token, "data": dog(true) } }))
        .await;
    assert!(
        data(&resp)["saveDraft"]["accessToken"].is_null(),
        "shown once only"
    );
    assert_eq!(
        data(&resp)["saveDraft"]["draft"]["data"]["breed"],
        "Pitbull-Terrier"
    );

    // Submit from the draft, with the certificate a listed breed needs: reference, two
    // departments, fees, first event.
    attach_certificate(&app, None, &draft_id, Some(&draft_token)).await;
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            &format!("mutation($i: SubmitApplicationInput!) {{ submitApplication(input: $i) {{ accessToken application {{ {APP_FIELDS} }} }} }}"),
            json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(true), "draftId": draft_id, "accessToken": draft_token } }),
        )
        .await;
    let p = &data(&resp)["submitApplication"];
    let token = str_at(p, "accessToken");
    let a = &p["application"];
    let id = str_at(a, "id");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(a["reference"], format!("MUSTERSTADT-{year}-000001"));
    assert_eq!(a["state"], "submitted");
    assert_eq!(a["stateLabel"], "Eingereicht");
    assert_eq!(
        a["revision"], 2,
        "fork (1) plus Musterstadt's local changes (2)"
    );
    // Musterstadt's rate (12000) plus the listed-breed surcharge of the template.
    assert_eq!(a["feeTotalCents"], 12000 + 60000);
    let depts: BTreeSet<String> = a["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_at(&t["department"], "key"))
        .collect();
    assert_eq!(
        depts,
        BTreeSet::from(["kasse".to_owned(), "ordnungsamt".to_owned()])
    );
    assert_eq!(a["timeline"][0]["kind"], "submitted");
    assert_eq!(count(&app, "drafts").await, 0, "the draft is used up");
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            resume,
            json!({ "id": draft_id, "t": draft_token }),
        )
        .await,
        "NOT_FOUND",
    );

    // Staff of each department see it in their lists; staff of neither department do not.
    let ordnung = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let ordnung = app.caller(MUSTER, &ordnung);
    let kasse = app.caller(MUSTER, &kasse);
    let list = "query($f: ApplicationsFilter) { applications(filter: $f, first: 20) { totalCount edges { node { id reference tasks { state department { key } } } } } }";
    for caller in [&ordnung, &kasse] {
        let resp = caller
            .gql(list, json!({ "f": { "state": "submitted" } }))
            .await;
        assert_eq!(data(&resp)["applications"]["totalCount"], 1);
    }
    let resp = ordnung
        .gql(list, json!({ "f": { "search": "pitbull erika" } }))
        .await;
    assert_eq!(data(&resp)["applications"]["totalCount"], 1);
    let resp = ordnung
        .gql(list, json!({ "f": { "search": "dackel" } }))
        .await;
    assert_eq!(data(&resp)["applications"]["totalCount"], 0);
    let tasks = "query($f: TasksFilter) { tasks(filter: $f, first: 20) { totalCount edges { node { id state department { key } application { reference } } } } }";
    let resp = kasse.gql(tasks, json!({ "f": { "state": "open" } })).await;
    let edges = data(&resp)["tasks"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["department"]["key"], "kasse");
    let kasse_task = str_at(&edges[0]["node"], "id");
    let ordnungsamt = app.department_id(MUSTER, "ordnungsamt").await;
    assert_code(
        &kasse
            .gql(tasks, json!({ "f": { "department": ordnungsamt } }))
            .await,
        "FORBIDDEN",
    );
    let resp = ordnung
        .gql(tasks, json!({ "f": { "department": ordnungsamt } }))
        .await;
    let ordnung_task = str_at(&data(&resp)["tasks"]["edges"][0]["node"], "id");

    // Workflow: legal and illegal moves, wrong side, open tasks block closing.
    assert_code(
        &transition(&ordnung, &id, "approved", None).await,
        "CONFLICT",
    );
    assert_code(
        &transition(&ordnung, &id, "withdrawn", None).await,
        "FORBIDDEN",
    );
    assert_code(
        &transition(&ordnung, &id, "teleported", None).await,
        "VALIDATION_FAILED",
    );
    let resp = transition(&ordnung, &id, "in_review", Some("Wir prüfen.")).await;
    assert_eq!(
        data(&resp)["transitionApplication"]["application"]["state"],
        "in_review"
    );
    let resp = app
        .gql(Some(MUSTER), None, "mutation($i: TransitionApplicationInput!) { transitionApplication(input: $i) { application { state } } }",
             json!({ "i": { "id": id, "to": "approved", "accessToken": token } }))
        .await;
    assert_code(&resp, "FORBIDDEN");
    let resp = transition(&kasse, &id, "approved", None).await;
    assert_eq!(
        data(&resp)["transitionApplication"]["application"]["state"],
        "approved"
    );
    let resp = transition(&kasse, &id, "completed", None).await;
    assert_code(&resp, "CONFLICT");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Stadtkasse"),
        "{resp}"
    );

    // Each department completes only its own task.
    let complete = "mutation($i: CompleteTaskInput!) { completeTask(input: $i) { task { state } application { done } } }";
    assert_code(
        &ordnung
            .gql(complete, json!({ "i": { "id": kasse_task } }))
            .await,
        "NOT_FOUND",
    );
    let resp = ordnung
        .gql(
            complete,
            json!({ "i": { "id": ordnung_task, "comment": "Erlaubnis liegt vor" } }),
        )
        .await;
    assert_eq!(data(&resp)["completeTask"]["application"]["done"], false);
    assert_code(
        &ordnung
            .gql(complete, json!({ "i": { "id": ordnung_task } }))
            .await,
        "CONFLICT",
    );
    let resp = kasse
        .gql(complete, json!({ "i": { "id": kasse_task } }))
        .await;
    assert_eq!(data(&resp)["completeTask"]["application"]["done"], true);
    let resp = transition(&kasse, &id, "completed", None).await;
    assert_eq!(
        data(&resp)["transitionApplication"]["application"]["state"],
        "completed"
    );

    // The applicant follows it with the access link; internal entries stay hidden.
    let resp = as_applicant(
        &app,
        &id,
        &token,
        "state timeline { kind toState internal actor }",
    )
    .await;
    let a = &data(&resp)["application"];
    assert_eq!(a["state"], "completed");
    let kinds: Vec<&str> = a["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["submitted", "transitioned", "transitioned", "transitioned"]
    );
    assert!(
        a["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["internal"] == false && e["actor"] != json!(null))
    );
    // Staff see the task completions too.
    let resp = kasse
        .gql(
            "query($id: ID!) { application(id: $id) { timeline { kind } } }",
            json!({ "id": id }),
        )
        .await;
    let staff_kinds: Vec<&str> = data(&resp)["application"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        staff_kinds
            .iter()
            .filter(|k| **k == "task_completed")
            .count(),
        2
    );
    assert_eq!(count(&app, "application_events").await, 6);
}

#[tokio::test]
async fn invalid_submissions_name_each_field_and_store_nothing() {
    let app = spawn_app().await;
    let mut bad = dog(false);
    bad["dog_count"] = json!(0);
    bad["postcode"] = json!("12");
    bad.as_object_mut().unwrap().remove("iban");
    bad["favourite_food"] = json!("bones");
    let resp = submit(&app, None, bad).await;
    assert_code(&resp, "VALIDATION_FAILED");
    let fields = &resp["errors"][0]["extensions"]["fields"];
    for path in [
        "input.data/dog_count",
        "input.data/postcode",
        "input.data/iban",
        "input.data/favourite_food",
    ] {
        assert!(fields[path].is_string(), "{path} missing in {fields:#}");
    }
    assert_code(
        &submit(&app, None, json!([1, 2])).await,
        "VALIDATION_FAILED",
    );
    let resp = submit(&app, None, json!({ "name": "x".repeat(300 * 1024) })).await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(
        resp["errors"][0]["extensions"]["fields"]["input.data"]
            .as_str()
            .unwrap()
            .contains("bytes")
    );
    // Unknown and not-live services.
    let resp = app
        .gql(Some(MUSTER), None, "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken } }",
             json!({ "i": { "serviceSlug": "gibt-es-nicht", "data": dog(false) } }))
        .await;
    assert_code(&resp, "NOT_FOUND");
    // Staff do not submit for citizens.
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(
        &submit(&app, Some(&staff.access), dog(false)).await,
        "FORBIDDEN",
    );
    for table in [
        "applications",
        "application_tasks",
        "application_events",
        "outbox",
    ] {
        assert_eq!(count(&app, table).await, 0, "{table} stays empty");
    }
    // The counter did not move: the first valid submission gets number 1.
    let (a, _) = submitted(&app, dog(false)).await;
    assert!(a["reference"].as_str().unwrap().ends_with("-000001"), "{a}");
    assert_eq!(
        a["tasks"].as_array().unwrap().len(),
        1,
        "not a listed breed: the tax office only"
    );
}

#[tokio::test]
async fn reference_numbers_stay_unique_and_gap_free_under_concurrent_submissions() {
    let app = spawn_app().await;
    let n = 100;
    let futures = (0..n).map(|i| {
        let app = &app;
        async move {
            let mut d = dog(i % 2 == 0);
            d["name"] = json!(format!("Person {i}"));
            let resp = submit(app, None, d).await;
            str_at(
                &data(&resp)["submitApplication"]["application"],
                "reference",
            )
        }
    });
    let refs: Vec<String> = futures_util::future::join_all(futures).await;
    let numbers: BTreeSet<u32> = refs
        .iter()
        .map(|r| r.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=n).collect::<BTreeSet<u32>>(), "{refs:?}");
    assert_eq!(count(&app, "applications").await, i64::from(n));
    // Tasks were created in the same transactions: 100 for the tax office, 50 for listed breeds.
    assert_eq!(count(&app, "application_tasks").await, 150);
}

#[tokio::test]
async fn applications_keep_their_revision_across_a_fork_update() {
    let app = spawn_app().await;
    let (old, token) = submitted(&app, dog(false)).await;
    assert_eq!(old["revision"], 2);
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let admin = app.caller(MUSTER, &admin);
    let resp = admin
        .gql("{ service(slug: \"hundesteuer\") { id } }", json!({}))
        .await;
    let service_id = str_at(&data(&resp)["service"], "id");
    let resp = admin
        .gql(
            "mutation($i: ApplyServiceUpdateInput!) { applyServiceUpdate(input: $i) { service { revision } } }",
            json!({ "i": { "serviceId": service_id, "toVersion": "1.1.0", "resolutions": [] } }),
        )
        .await;
    assert_eq!(data(&resp)["applyServiceUpdate"]["service"]["revision"], 3);
    let fields = "revision serviceContent";
    let resp = as_applicant(&app, str_at(&old, "id").as_str(), &token, fields).await;
    let before = &data(&resp)["application"];
    assert_eq!(before["revision"], 2);
    let (new, new_token) = submitted(&app, dog(false)).await;
    assert_eq!(new["revision"], 3);
    let resp = as_applicant(&app, str_at(&new, "id").as_str(), &new_token, fields).await;
    let after = &data(&resp)["application"];
    assert_ne!(
        before["serviceContent"], after["serviceContent"],
        "the update changed the form"
    );
    // Reading the old one again still gives revision 1's content.
    let resp = as_applicant(&app, str_at(&old, "id").as_str(), &token, fields).await;
    assert_eq!(
        data(&resp)["application"]["serviceContent"],
        before["serviceContent"]
    );
}

#[tokio::test]
async fn requests_for_information_messages_and_notes_reach_only_who_they_should() {
    let app = spawn_app().await;
    let (a, token) = submitted(&app, dog(true)).await;
    let id = str_at(&a, "id");
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let staff = app.caller(MUSTER, &staff);
    data(&transition(&staff, &id, "in_review", None).await);
    data(
        &transition(
            &staff,
            &id,
            "needs_info",
            Some("Bitte Nachweis der Erlaubnis nachreichen."),
        )
        .await,
    );

    let send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id sender internal readAt } } }";
    data(&staff.gql(send, json!({ "i": { "applicationId": id, "body": "Wir brauchen das Datum der Erlaubnis." } })).await);
    data(&staff.gql(send, json!({ "i": { "applicationId": id, "body": "Halterin telefonisch nicht erreicht.", "internal": true } })).await);
    // Citizens cannot write internal notes.
    assert_code(
        &app.gql(Some(MUSTER), None, send, json!({ "i": { "applicationId": id, "body": "x", "internal": true, "accessToken": token } })).await,
        "FORBIDDEN",
    );
    let resp = as_applicant(
        &app,
        &id,
        &token,
        "state allowedTransitions { to } messages { sender body internal readAt }",
    )
    .await;
    let seen = &data(&resp)["application"];
    assert_eq!(seen["state"], "needs_info");
    assert_eq!(seen["allowedTransitions"], json!([{ "to": "withdrawn" }]));
    assert_eq!(
        seen["messages"].as_array().unwrap().len(),
        1,
        "the note stays internal: {seen}"
    );

    // Read receipts.
    let read = "mutation($i: MarkMessagesReadInput!) { markMessagesRead(input: $i) { marked } }";
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            read,
            json!({ "i": { "applicationId": id, "accessToken": token } }),
        )
        .await;
    assert_eq!(data(&resp)["markMessagesRead"]["marked"], 1);
    let resp = staff
        .gql(
            "query($id: ID!) { application(id: $id) { messages { internal readAt } } }",
            json!({ "id": id }),
        )
        .await;
    let msgs = data(&resp)["application"]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(msgs.len(), 2);
    assert!(
        msgs.iter()
            .any(|m| m["internal"] == false && m["readAt"].is_string())
    );

    // The answer: invalid data is refused, valid data plus a message moves it back to review.
    let answer = "mutation($i: ProvideInformationInput!) { provideInformation(input: $i) { application { state data } } }";
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            answer,
            json!({ "i": { "id": id, "accessToken": token, "data": { "postcode": "x" } } }),
        )
        .await;
    assert_code(&resp, "VALIDATION_FAILED");
    assert!(resp["errors"][0]["extensions"]["fields"]["input.data/postcode"].is_string());
    let resp = app
        .gql(Some(MUSTER), None, answer, json!({ "i": { "id": id, "accessToken": token, "data": { "breed": "Mischling" }, "message": "Erlaubnis vom 1.10. anbei." } }))
        .await;
    let answered = &data(&resp)["provideInformation"]["application"];
    assert_eq!(answered["state"], "in_review");
    assert_eq!(answered["data"]["breed"], "Mischling");
    // Answering twice is a conflict: nobody asks any more.
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            answer,
            json!({ "i": { "id": id, "accessToken": token, "message": "noch was" } }),
        )
        .await,
        "CONFLICT",
    );
    let resp = staff
        .gql(
            "query($id: ID!) { application(id: $id) { messages { sender } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        data(&resp)["application"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Withdrawal: by the applicant only, before a decision.
    let withdraw = "mutation($i: WithdrawApplicationInput!) { withdrawApplication(input: $i) { application { state closedAt } } }";
    assert_code(
        &staff.gql(withdraw, json!({ "i": { "id": id } })).await,
        "FORBIDDEN",
    );
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            withdraw,
            json!({ "i": { "id": id, "accessToken": token, "reason": "Hund abgegeben" } }),
        )
        .await;
    assert_eq!(
        data(&resp)["withdrawApplication"]["application"]["state"],
        "withdrawn"
    );
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            withdraw,
            json!({ "i": { "id": id, "accessToken": token } }),
        )
        .await,
        "CONFLICT",
    );
    let resp = staff
        .gql(
            "query($id: ID!) { application(id: $id) { tasks { state } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        data(&resp)["application"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "cancelled")
    );
}

#[tokio::test]
async fn nobody_else_sees_an_application() {
    let app = spawn_app().await;
    let (a, token) = submitted(&app, dog(false)).await;
    let id = str_at(&a, "id");
    let q =
        "query($id: ID!, $t: String) { application(id: $id, accessToken: $t) { reference data } }";
    // Another tenant's admin, also with the right access token.
    let other = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    assert_code(
        &app.gql(Some(BEISPIEL), Some(&other.access), q, json!({ "id": id }))
            .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(Some(BEISPIEL), None, q, json!({ "id": id, "t": token }))
            .await,
        "NOT_FOUND",
    );
    let resp = app
        .gql(
            Some(BEISPIEL),
            Some(&other.access),
            "{ applications(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&resp)["applications"]["totalCount"], 0);
    // A token of tenant B on tenant A.
    assert_code(
        &app.gql(Some(MUSTER), Some(&other.access), q, json!({ "id": id }))
            .await,
        "FORBIDDEN",
    );
    // Another citizen's token; no token at all.
    let (_, other_token) = submitted(&app, dog(false)).await;
    assert_code(
        &app.gql(Some(MUSTER), None, q, json!({ "id": id, "t": other_token }))
            .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(Some(MUSTER), None, q, json!({ "id": id })).await,
        "UNAUTHENTICATED",
    );
    // Staff of a department the application is not routed to (the tax office here is `kasse`).
    let ordnung = app.login(Some(MUSTER), MUSTER_STAFF).await;
    assert_code(
        &app.gql(Some(MUSTER), Some(&ordnung.access), q, json!({ "id": id }))
            .await,
        "NOT_FOUND",
    );
    let resp = app
        .gql(
            Some(MUSTER),
            Some(&ordnung.access),
            "{ applications(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&resp)["applications"]["totalCount"], 0);
    // Citizens have no staff lists.
    assert_code(
        &app.gql(
            Some(MUSTER),
            None,
            "{ applications(first: 5) { totalCount } }",
            json!({}),
        )
        .await,
        "UNAUTHENTICATED",
    );
    // The export endpoint applies the same rules.
    let url = format!("{}/api/applications/{id}.json", app.base_url);
    let r = app
        .client
        .get(&url)
        .header("X-Tenant", BEISPIEL)
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .get(&url)
        .header("X-Tenant", MUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(&url)
        .header("X-Tenant", MUSTER)
        .header("X-Access-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Runs `xmllint --schema` on `xml` (libxml2-utils; `.ci/run` installs it).
pub(crate) fn validate_against_xsd(xml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.xml");
    std::fs::write(&file, xml).unwrap();
    let xsd = repo_root().join("frontend-schema/application-export.xsd");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint runs (install libxml2-utils: apt-get install libxml2-utils)");
    assert!(
        out.status.success(),
        "export does not validate: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn back_office_systems_pull_xml_that_validates_and_batches_after_a_cursor() {
    let app = spawn_app().await;
    let mut odd = dog(true);
    odd["name"] = json!("Zoë <&> \"O'Brien\" \u{1}");
    odd["hund_name"] = json!("Bello ]]> ✓");
    let (a, _) = submitted(&app, odd).await;
    let (b, _) = submitted(&app, dog(false)).await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let get = |path: String| {
        app.client
            .get(format!("{}{path}", app.base_url))
            .header("X-Tenant", MUSTER)
            .bearer_auth(&admin.access)
            .send()
    };
    let r = get(format!("/api/applications/{}.xml", str_at(&a, "id")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/xml")
    );
    let xml = r.text().await.unwrap();
    validate_against_xsd(&xml);
    assert!(
        xml.contains("<leikaCode>99102013104000</leikaCode>"),
        "{xml}"
    );
    assert!(
        xml.contains("<departmentKey>ordnungsamt</departmentKey>"),
        "{xml}"
    );
    assert!(xml.contains("Zoë &lt;&amp;&gt;"), "{xml}");

    let r = get(format!("/api/applications/{}.json", str_at(&b, "id")))
        .await
        .unwrap();
    let json: Value = r.json().await.unwrap();
    assert_eq!(json["reference"], b["reference"]);
    assert_eq!(json["service"]["leikaCode"], "99102013104000");
    assert_eq!(json["service"]["revision"], 2);
    assert_eq!(json["data"]["breed"], "Pitbull-Terrier");
    assert_eq!(json["routing"][0]["departmentKey"], "kasse");

    // Batches: everything after the cursor, then nothing new, then the next one.
    let r = get("/api/applications/export?limit=1".into())
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["applications"][0]["reference"], a["reference"]);
    let cursor = first["cursor"].as_i64().unwrap();
    let r = get(format!(
        "/api/applications/export?after={cursor}&format=xml"
    ))
    .await
    .unwrap();
    let xml = r.text().await.unwrap();
    validate_against_xsd(&xml);
    assert!(
        xml.contains(b["reference"].as_str().unwrap())
            && !xml.contains(a["reference"].as_str().unwrap())
    );
    let r = get(format!("/api/applications/export?after={}", cursor + 1))
        .await
        .unwrap();
    let empty: Value = r.json().await.unwrap();
    assert_eq!(empty["applications"], json!([]));
    assert_eq!(
        empty["cursor"],
        cursor + 1,
        "an empty batch keeps the cursor"
    );
    let (c, _) = submitted(&app, dog(false)).await;
    let r = get(format!("/api/applications/export?after={}", cursor + 1))
        .await
        .unwrap();
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["applications"][0]["reference"], c["reference"]);
    for bad in ["limit=0", "limit=1000", "format=pdf", "after=abc"] {
        let r = get(format!("/api/applications/export?{bad}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{bad}");
    }
    // Citizens cannot pull batches.
    let r = app
        .client
        .get(format!("{}/api/applications/export", app.base_url))
        .header("X-Tenant", MUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn notifications_are_sent_over_smtp_and_retried() {
    let sink = SmtpSink::start(1).await;
    let port = sink.port;
    let app = spawn_app_with(move |s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}").into());
        s.mail.poll_interval_ms = 100;
        s.mail.retry_base_secs = 0;
    })
    .await;
    let (a, token) = submitted(&app, dog(false)).await;
    // Citizen acknowledgement; Musterstadt's Stadtkasse has no address, so no department mail.
    // The first attempt is refused (451) and retried.
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["erika@example.org"]);
    assert_eq!(mails[0].from, "noreply@amtsplatz.example");
    assert!(
        mails[0].data.contains(a["reference"].as_str().unwrap()),
        "{}",
        mails[0].data
    );
    let staff = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let staff = app.caller(MUSTER, &staff);
    data(&transition(&staff, str_at(&a, "id").as_str(), "in_review", None).await);
    let mails = sink.wait_for(2).await;
    assert!(
        mails[1].data.contains("In Bearbeitung"),
        "{}",
        mails[1].data
    );
    // The outbox records the sending and the failed first attempt. The worker marks a mail
    // sent once the SMTP server has answered, a moment after the sink has it: wait for that.
    let db = Database::connect(&app.db_url).await.unwrap();
    let mut sent = 0;
    for _ in 0..100 {
        sent = count_where(&app, "outbox", "sent_at IS NOT NULL AND attempts >= 1").await;
        if sent >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sent, 2);
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM outbox WHERE attempts = 2 AND last_error IS NOT NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.try_get::<i64>("", "n").unwrap(),
        1,
        "one mail needed a retry"
    );
    let _ = token;
}

pub(crate) async fn subscribe_status(app: &TestApp, id: &str, token: &str) -> Ws {
    let mut ws = ws_ready(app, json!({ "X-Tenant": MUSTER })).await;
    let sub = json!({ "id": "s", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!, $t: String) { applicationStatusChanged(id: $id, accessToken: $t) { reference state } }",
        "variables": { "id": id, "t": token } } });
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let first = ws_next(&mut ws).await;
    assert_eq!(
        first["payload"]["data"]["applicationStatusChanged"]["state"], "submitted",
        "{first}"
    );
    ws
}

#[tokio::test]
async fn status_changes_are_pushed_live_also_across_server_replicas() {
    let app = spawn_app().await;
    let (a, token) = submitted(&app, dog(false)).await;
    let id = str_at(&a, "id");
    let mut ws = subscribe_status(&app, &id, &token).await;

    // A second replica on the same database (PostgreSQL: through LISTEN/NOTIFY).
    let replica = if app.is_postgres {
        let url = app.db_url.clone();
        Some(spawn_app_with(move |s| s.database.url = Some(url.into())).await)
    } else {
        None
    };
    let mut remote = match &replica {
        Some(r) => Some(subscribe_status(r, &id, &token).await),
        None => None,
    };
    // Give the replica's listener its LISTEN before the change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let staff = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let staff = app.caller(MUSTER, &staff);
    data(&transition(&staff, &id, "in_review", None).await);
    let next = ws_next(&mut ws).await;
    assert_eq!(
        next["payload"]["data"]["applicationStatusChanged"]["state"], "in_review",
        "{next}"
    );
    if let Some(remote) = remote.as_mut() {
        let next = ws_next(remote).await;
        assert_eq!(
            next["payload"]["data"]["applicationStatusChanged"]["state"], "in_review",
            "{next}"
        );
    }
    // Someone else's token cannot subscribe.
    let mut ws2 = ws_connect(&app).await;
    ws2.send(Message::text(
        json!({ "type": "connection_init", "payload": { "X-Tenant": MUSTER } }).to_string(),
    ))
    .await
    .unwrap();
    ws_next(&mut ws2).await;
    ws2.send(Message::text(json!({ "id": "x", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { applicationStatusChanged(id: $id, accessToken: \"nope\") { state } }",
        "variables": { "id": id } } }).to_string())).await.unwrap();
    let err = ws_next(&mut ws2).await;
    assert_eq!(err["type"], "next", "{err}");
    assert_eq!(
        err["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{err}"
    );
}

#[tokio::test]
async fn citizens_export_their_data_and_admins_erase_after_retention() {
    let app = spawn_app().await;
    let idp = FakeIdp::start().await;
    // A municipality whose citizens sign in at the fake identity provider, with the dog tax
    // service forked from the marketplace and live.
    let town = IDP_TOWN;
    let (admin_session, _service) = idp_town(&app, &idp).await;
    let admin = app.caller(town, &admin_session);

    let citizen = idp.id_token(json!({ "email": "citizen@example.org" }));
    let resp = app
        .gql(Some(town), Some(&citizen), "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken application { id reference } } }",
             json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false) } }))
        .await;
    let a = &data(&resp)["submitApplication"];
    assert!(
        a["accessToken"].is_null(),
        "signed-in citizens need no link"
    );
    assert!(
        a["application"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("IDP-TOWN-")
    );
    let id = str_at(&a["application"], "id");
    let resp = app
        .gql(Some(town), Some(&citizen), "{ exportMyData }", json!({}))
        .await;
    let export = &data(&resp)["exportMyData"];
    assert_eq!(export["applications"][0]["id"], id.as_str());
    assert_eq!(
        export["applications"][0]["contactEmail"],
        "citizen@example.org"
    );
    let other = idp.id_token(json!({ "sub": "someone-else" }));
    let resp = app
        .gql(Some(town), Some(&other), "{ exportMyData }", json!({}))
        .await;
    assert_eq!(data(&resp)["exportMyData"]["applications"], json!([]));
    assert_code(
        &app.gql(
            Some(town),
            Some(&other),
            "query($id: ID!) { application(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(Some(town), None, "{ exportMyData }", json!({}))
            .await,
        "UNAUTHENTICATED",
    );

    let erase = "mutation($i: EraseApplicationInput!) { eraseApplication(input: $i) { application { reference data erasedAt } } }";
    assert_code(
        &admin.gql(erase, json!({ "i": { "id": id } })).await,
        "CONFLICT",
    );
    for to in ["in_review", "rejected"] {
        data(&transition(&admin, &id, to, None).await);
    }
    let resp = admin
        .gql(
            "query($id: ID!) { application(id: $id) { tasks { id } } }",
            json!({ "id": id }),
        )
        .await;
    for t in data(&resp)["application"]["tasks"].as_array().unwrap() {
        data(&admin.gql("mutation($i: CompleteTaskInput!) { completeTask(input: $i) { task { state } } }", json!({ "i": { "id": t["id"] } })).await);
    }
    data(&transition(&admin, &id, "completed", None).await);
    // Closed, but within two years: still kept.
    let resp = admin.gql(erase, json!({ "i": { "id": id } })).await;
    assert_code(&resp, "CONFLICT");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("730 days"),
        "{resp}"
    );
    let reference = a["application"]["reference"].as_str().unwrap();
    exec(&app, &format!("UPDATE applications SET closed_at = '2020-01-01 00:00:00+00:00' WHERE reference = '{reference}'")).await;
    let resp = admin.gql(erase, json!({ "i": { "id": id } })).await;
    let erased = &data(&resp)["eraseApplication"]["application"];
    assert!(erased["data"].is_null() && erased["erasedAt"].is_string());
    assert_eq!(count(&app, "application_events").await, 0);
    assert_eq!(count(&app, "messages").await, 0);
    let resp = admin
        .gql(
            "{ auditLog(first: 50) { edges { node { action target } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = data(&resp)["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"application.erased"), "{actions:?}");
    let resp = app
        .gql(Some(town), Some(&citizen), "{ exportMyData }", json!({}))
        .await;
    assert_eq!(
        data(&resp)["exportMyData"]["applications"],
        json!([]),
        "nothing personal is left"
    );
}

#[tokio::test]
async fn citizens_writes_are_rate_limited_per_ip() {
    let app = spawn_app_with(|s| s.applications.writes_per_ip_per_minute = 3).await;
    let draft = "mutation($i: SaveDraftInput!) { saveDraft(input: $i) { draft { id } } }";
    data(
        &app.gql(
            Some(MUSTER),
            None,
            draft,
            json!({ "i": { "serviceSlug": "hundesteuer", "data": {} } }),
        )
        .await,
    );
    submitted(&app, dog(false)).await;
    // Invalid attempts count too: spam does not get through by being invalid.
    assert_code(&submit(&app, None, json!({})).await, "VALIDATION_FAILED");
    let (status, resp) = app
        .gql_raw(
            Some(MUSTER),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { accessToken } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false) } }),
        )
        .await;
    assert_eq!(status, 429, "RATE_LIMITED speaks HTTP");
    assert_code(&resp, "RATE_LIMITED");
    assert!(
        resp["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 1),
        "{resp}"
    );
    assert_eq!(count(&app, "applications").await, 1);
}

#[tokio::test]
async fn staff_filter_applications_by_service_and_submission_time() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let admin = app.caller(MUSTER, &admin);
    let submit_as = |slug: &'static str, data: Value| {
        let app = &app;
        async move {
            let resp = app
                .gql(
                    Some(MUSTER),
                    None,
                    "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { id submittedAt } } }",
                    json!({ "i": { "serviceSlug": slug, "data": data } }),
                )
                .await;
            data_of(&resp)["submitApplication"]["application"].clone()
        }
    };
    let certificate = json!({
        "name": "Max Mustermann", "birth_date": "1980-01-01", "street": "Hauptstraße 2",
        "postcode": "12345", "city": "Musterstadt", "kind": "einfach", "delivery": "post"
    });
    let first = submit_as("hundesteuer", dog(false)).await;
    let second = submit_as("meldebescheinigung", certificate.clone()).await;
    let third = submit_as("hundesteuer", dog(false)).await;

    let list = "query($f: ApplicationsFilter) { applications(filter: $f, first: 20) { totalCount edges { node { id serviceSlug } } } }";
    let ids = |resp: &Value| -> BTreeSet<String> {
        data_of(resp)["applications"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| str_at(&e["node"], "id"))
            .collect()
    };
    let id = |a: &Value| str_at(a, "id");
    let resp = admin.gql(list, json!({ "f": null })).await;
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 3);

    // By service (slug).
    let resp = admin
        .gql(list, json!({ "f": { "service": "hundesteuer" } }))
        .await;
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 2);
    assert_eq!(ids(&resp), BTreeSet::from([id(&first), id(&third)]));
    let resp = admin
        .gql(list, json!({ "f": { "service": "meldebescheinigung" } }))
        .await;
    assert_eq!(ids(&resp), BTreeSet::from([id(&second)]));
    let resp = admin
        .gql(list, json!({ "f": { "service": "keiner" } }))
        .await;
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 0);

    // Submitted strictly after a time; with the service filter both must hold.
    let resp = admin
        .gql(
            list,
            json!({ "f": { "submittedAfter": first["submittedAt"] } }),
        )
        .await;
    assert_eq!(ids(&resp), BTreeSet::from([id(&second), id(&third)]));
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 2);
    let resp = admin
        .gql(
            list,
            json!({ "f": { "submittedAfter": second["submittedAt"], "service": "hundesteuer" } }),
        )
        .await;
    assert_eq!(ids(&resp), BTreeSet::from([id(&third)]));
    let resp = admin
        .gql(
            list,
            json!({ "f": { "submittedAfter": third["submittedAt"] } }),
        )
        .await;
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 0);
    // The same instant written with an offset is the same instant.
    let before_all = chrono::DateTime::parse_from_rfc3339(first["submittedAt"].as_str().unwrap())
        .unwrap()
        - chrono::Duration::seconds(1);
    let resp = admin
        .gql(
            list,
            json!({ "f": { "submittedAfter": before_all.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339() } }),
        )
        .await;
    assert_eq!(data_of(&resp)["applications"]["totalCount"], 3);
}

#[tokio::test]
async fn an_illegal_move_is_a_conflict_naming_the_allowed_moves() {
    let app = spawn_app().await;
    let (a, _token) = submitted(&app, dog(false)).await;
    let id = str_at(&a, "id");
    let staff = app.login(Some(MUSTER), MUSTER_KASSE).await;
    let staff = app.caller(MUSTER, &staff);
    let message = |resp: &Value| {
        assert_code(resp, "CONFLICT");
        str_at(&resp["errors"][0], "message")
    };
    let resp = transition(&staff, &id, "completed", None).await;
    assert_eq!(
        message(&resp),
        "conflict: an application in state `submitted` cannot move to `completed`; allowed: in_review"
    );
    data_of(&transition(&staff, &id, "in_review", None).await);
    let resp = transition(&staff, &id, "submitted", None).await;
    let allowed: Vec<String> = data_of(
        &staff
            .gql(
                "query($id: ID!) { application(id: $id) { allowedTransitions { to } } }",
                json!({ "id": id }),
            )
            .await,
    )["application"]["allowedTransitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_at(t, "to"))
        .collect();
    assert!(allowed.len() >= 2, "{allowed:?}");
    assert_eq!(
        message(&resp),
        format!(
            "conflict: an application in state `in_review` cannot move to `submitted`; allowed: {}",
            allowed.join(", ")
        )
    );
    // Nothing moved.
    let resp = staff
        .gql(
            "query($id: ID!) { application(id: $id) { state } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data_of(&resp)["application"]["state"], "in_review");
}

/// A work list reads its tasks and their departments in the page's own transaction: the page
/// costs no loader batch, and each node reads exactly as the single application query (the
/// loader path) shows it.
#[tokio::test]
async fn a_work_list_reads_its_tasks_and_their_departments_with_the_page() {
    let app = spawn_app().await;
    for listed in [true, false, true] {
        data(&submit(&app, None, dog(listed)).await);
    }
    let batches = || async {
        [
            counter(&app, &loader_series("batches", "TasksOf")).await,
            counter(&app, &loader_series("batches", "DepartmentById")).await,
        ]
    };
    const NODE: &str = "id reference done tasks { id state ruleKey department { id key name } }";
    let list = format!("{{ applications(first: 20) {{ edges {{ node {{ {NODE} }} }} }} }}");
    let single = format!("query($id: ID!) {{ application(id: $id) {{ {NODE} }} }}");
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let kasse = app.login(Some(MUSTER), MUSTER_KASSE).await;
    for (caller, expected) in [
        (app.caller(MUSTER, &admin), 3),
        (app.caller(MUSTER, &kasse), 3),
    ] {
        let before = batches().await;
        let resp = caller.gql(&list, json!({})).await;
        let edges = data(&resp)["applications"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(edges.len(), expected, "{resp}");
        assert_eq!(batches().await, before, "the page read its tasks itself");
        for e in &edges {
            let tasks = e["node"]["tasks"].as_array().unwrap();
            assert!(!tasks.is_empty(), "{e}");
            assert!(
                tasks.iter().all(|t| t["department"]["key"].is_string()),
                "{e}"
            );
            let before = batches().await;
            let one = caller.gql(&single, json!({ "id": e["node"]["id"] })).await;
            assert_eq!(data(&one)["application"], e["node"]);
            let after = batches().await;
            assert_eq!(
                [after[0] - before[0], after[1] - before[1]],
                [1.0, 1.0],
                "a single application loads its tasks and departments through the loaders"
            );
        }
    }
}

#[tokio::test]
async fn a_draft_tells_what_submitting_would_refuse_and_what_it_would_cost() {
    let app = spawn_app().await;
    let preview = "problems { path message } fees { key amountCents } feeTotalCents";
    let mut form = dog(true);
    form.as_object_mut().unwrap().remove("postcode");
    form["dog_count"] = json!(2);
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            &format!("mutation($i: SaveDraftInput!) {{ saveDraft(input: $i) {{ accessToken draft {{ id {preview} }} }} }}"),
            json!({ "i": { "serviceSlug": "hundesteuer", "data": form } }),
        )
        .await;
    let draft = &data(&resp)["saveDraft"]["draft"];
    let paths: BTreeSet<String> = draft["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_at(p, "path"))
        .collect();
    // What submission would answer: the missing field and the missing document.
    assert_eq!(
        paths,
        BTreeSet::from([
            "input.data/postcode".to_owned(),
            "input.documents/sachkundenachweis".to_owned()
        ])
    );
    // Musterstadt's rate of 120 € per dog, twice, plus the listed-breed surcharge.
    assert_eq!(draft["feeTotalCents"], 2 * 12000 + 60000);
    let submitted = app
        .gql(
            Some(MUSTER),
            None,
            "mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { application { id } } }",
            json!({ "i": { "serviceSlug": "hundesteuer", "data": form,
                           "draftId": str_at(draft, "id"),
                           "accessToken": str_at(&data(&resp)["saveDraft"], "accessToken") } }),
        )
        .await;
    assert_code(&submitted, "VALIDATION_FAILED");
    let fields: BTreeSet<String> = submitted["errors"][0]["extensions"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // Submission stops at the data's problems before it looks at the documents; the draft
    // names both at once, with the same paths.
    assert_eq!(fields, BTreeSet::from(["input.data/postcode".to_owned()]));
    assert!(fields.is_subset(&paths));

    // A complete draft has none.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            &format!("mutation($i: SaveDraftInput!) {{ saveDraft(input: $i) {{ draft {{ {preview} }} }} }}"),
            json!({ "i": { "serviceSlug": "hundesteuer", "data": dog(false) } }),
        )
        .await;
    let draft = &data(&resp)["saveDraft"]["draft"];
    assert_eq!(draft["problems"], json!([]));
    assert_eq!(
        draft["fees"],
        json!([{ "key": "steuer", "amountCents": 12000 }])
    );
}

#[tokio::test]
async fn the_municipalities_are_listed_publicly_by_name() {
    let app = spawn_app().await;
    let resp = app
        .gql(None, None, "{ municipalities { slug name } }", json!({}))
        .await;
    let list = data(&resp)["municipalities"].as_array().unwrap().clone();
    let slugs: Vec<String> = list.iter().map(|m| str_at(m, "slug")).collect();
    assert_eq!(
        slugs,
        ["beispielhausen", "exempelburg", "musterstadt"],
        "{resp}"
    );
}
