//! Tenants, departments, staff, roles, memberships, audit; cross-tenant isolation.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_three_demo_tenants_are_public_with_their_departments() {
    let app = spawn_app().await;
    for (slug, count) in [(MUSTER, 3), (BEISPIEL, 2), ("exempelburg", 2)] {
        let resp = app.gql(Some(slug), None, "{ tenant { slug name ags timeZone branding { primaryColor } departments { totalCount } } }", json!({})).await;
        let t = &data(&resp)["tenant"];
        assert_eq!(t["slug"], slug);
        assert_eq!(t["timeZone"], "Europe/Berlin");
        assert_eq!(t["departments"]["totalCount"], count);
    }
    let (status, resp) = app
        .gql_raw(Some("atlantis"), None, "{ tenant { name } }", json!({}))
        .await;
    assert_code(&resp, "NOT_FOUND");
    assert_eq!(status, 404);
    assert_code(
        &app.gql(None, None, "{ tenant { name } }", json!({})).await,
        "NOT_FOUND",
    );
}

const CREATE_DEPT: &str = "mutation($i: CreateDepartmentInput!) { createDepartment(input: $i) { department { id key name email } } }";

#[tokio::test]
async fn admins_manage_departments_and_every_change_is_audited() {
    let app = spawn_app().await;
    // The public list (cached for a few seconds) shows every change at once.
    let listed = || async {
        let resp = app
            .gql(
                Some(MUSTER),
                None,
                "{ tenant { departments(first: 100) { edges { node { key name } } } } }",
                json!({}),
            )
            .await;
        data(&resp)["tenant"]["departments"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (str_at(&e["node"], "key"), str_at(&e["node"], "name")))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let at_first = listed().await;
    assert!(!at_first.contains_key("standesamt"));
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let resp = app.caller(MUSTER, &admin).gql(CREATE_DEPT, json!({ "i": { "key": "standesamt", "name": "Standesamt", "email": "Standesamt@Musterstadt.example" } })).await;
    let dept = data(&resp)["createDepartment"]["department"].clone();
    assert_eq!(dept["email"], "standesamt@musterstadt.example");
    assert_eq!(listed().await["standesamt"], "Standesamt");

    let dup = app
        .caller(MUSTER, &admin)
        .gql(
            CREATE_DEPT,
            json!({ "i": { "key": "standesamt", "name": "Zweites" } }),
        )
        .await;
    assert_code(&dup, "CONFLICT");
    assert_eq!(dup["errors"][0]["extensions"]["field"], "key");

    let bad = app
        .caller(MUSTER, &admin)
        .gql(
            CREATE_DEPT,
            json!({ "i": { "key": "Bad Key", "name": "", "email": "nope" } }),
        )
        .await;
    assert_code(&bad, "VALIDATION_FAILED");
    assert!(
        bad["errors"][0]["extensions"]["fields"]["input.key"].is_string(),
        "{bad}"
    );

    let upd = app.caller(MUSTER, &admin).gql("mutation($i: UpdateDepartmentInput!) { updateDepartment(input: $i) { department { name email } } }",
            json!({ "i": { "id": dept["id"], "name": "Standesamt Musterstadt", "email": "" } }))
        .await;
    assert_eq!(
        data(&upd)["updateDepartment"]["department"],
        json!({ "name": "Standesamt Musterstadt", "email": null })
    );
    assert_eq!(listed().await["standesamt"], "Standesamt Musterstadt");

    let del = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($i: DeleteDepartmentInput!) { deleteDepartment(input: $i) { deletedId } }",
            json!({ "i": { "id": dept["id"] } }),
        )
        .await;
    assert_eq!(data(&del)["deleteDepartment"]["deletedId"], dept["id"]);
    assert_eq!(listed().await, at_first);

    // A department with members cannot be deleted.
    let bb = app.department_id(MUSTER, "buergerbuero").await;
    let busy = app
        .caller(MUSTER, &admin)
        .gql(
            "mutation($i: DeleteDepartmentInput!) { deleteDepartment(input: $i) { deletedId } }",
            json!({ "i": { "id": bb } }),
        )
        .await;
    assert_code(&busy, "CONFLICT");

    let log = app
        .caller(MUSTER, &admin)
        .gql(
            "{ auditLog(first: 100) { edges { node { action actor target } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<String> = data(&log)["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "tenant.onboard",
        "session.login",
        "department.create",
        "department.update",
        "department.delete",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing in {actions:?}"
        );
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "department.delete").count(),
        1,
        "the refused delete is not logged"
    );
}

#[tokio::test]
async fn staff_and_anonymous_callers_cannot_administer() {
    let app = spawn_app().await;
    let staff = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let input = json!({ "i": { "key": "x-amt", "name": "X" } });
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql(CREATE_DEPT, input.clone())
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.gql(Some(MUSTER), None, CREATE_DEPT, input).await,
        "UNAUTHENTICATED",
    );
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql("{ tenant { staff { totalCount } } }", json!({}))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.caller(MUSTER, &staff)
            .gql("{ auditLog { totalCount } }", json!({}))
            .await,
        "FORBIDDEN",
    );
    // Nothing was created.
    let resp = app
        .gql(
            Some(MUSTER),
            None,
            "{ tenant { departments { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&resp)["tenant"]["departments"]["totalCount"], 3);
}

const STAFF_FIELDS: &str =
    "id email displayName active roles memberships { role department { key } }";

#[tokio::test]
async fn admins_manage_staff_roles_and_memberships() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let kasse = app.department_id(MUSTER, "kasse").await;
    let q = format!(
        "mutation($i: CreateStaffUserInput!) {{ createStaffUser(input: $i) {{ staffUser {{ {STAFF_FIELDS} }} }} }}"
    );
    let resp = app.caller(MUSTER, &admin).gql(&q, json!({ "i": {
            "email": "kassiererin@musterstadt.example", "displayName": "Karla Kasse", "password": "kasse-password-1",
            "roles": ["AUTHOR"], "memberships": [{ "departmentId": kasse, "role": "LEAD" }] } }))
        .await;
    let user = data(&resp)["createStaffUser"]["staffUser"].clone();
    assert_eq!(user["roles"], json!(["AUTHOR", "STAFF"]));
    assert_eq!(
        user["memberships"],
        json!([{ "role": "LEAD", "department": { "key": "kasse" } }])
    );

    // The new account logs in; its token carries the roles.
    let karla = app
        .login(
            Some(MUSTER),
            ("kassiererin@musterstadt.example", "kasse-password-1"),
        )
        .await;
    let me = app
        .caller(MUSTER, &karla)
        .gql("{ me { roles } }", json!({}))
        .await;
    assert_eq!(data(&me)["me"]["roles"], json!(["AUTHOR", "STAFF"]));

    // Grant and revoke tenant admin; STAFF cannot be granted directly.
    let grant = "mutation($i: RoleInput!) { grantRole(input: $i) { staffUser { roles } } }";
    let revoke = "mutation($i: RoleInput!) { revokeRole(input: $i) { staffUser { roles } } }";
    let r = app
        .caller(MUSTER, &admin)
        .gql(
            grant,
            json!({ "i": { "userId": user["id"], "role": "TENANT_ADMIN" } }),
        )
        .await;
    assert_eq!(
        data(&r)["grantRole"]["staffUser"]["roles"],
        json!(["AUTHOR", "STAFF", "TENANT_ADMIN"])
    );
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(
                grant,
                json!({ "i": { "userId": user["id"], "role": "TENANT_ADMIN" } }),
            )
            .await,
        "CONFLICT",
    );
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(
                grant,
                json!({ "i": { "userId": user["id"], "role": "STAFF" } }),
            )
            .await,
        "VALIDATION_FAILED",
    );
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(
                grant,
                json!({ "i": { "userId": user["id"], "role": "PLATFORM_ADMIN" } }),
            )
            .await,
        "VALIDATION_FAILED",
    );
    let r = app
        .caller(MUSTER, &admin)
        .gql(
            revoke,
            json!({ "i": { "userId": user["id"], "role": "TENANT_ADMIN" } }),
        )
        .await;
    assert_eq!(
        data(&r)["revokeRole"]["staffUser"]["roles"],
        json!(["AUTHOR", "STAFF"])
    );

    // Memberships.
    let bb = app.department_id(MUSTER, "buergerbuero").await;
    let add = "mutation($i: AddMembershipInput!) { addDepartmentMembership(input: $i) { staffUser { memberships { department { key } } } } }";
    let r = app
        .caller(MUSTER, &admin)
        .gql(
            add,
            json!({ "i": { "userId": user["id"], "departmentId": bb } }),
        )
        .await;
    assert_eq!(
        data(&r)["addDepartmentMembership"]["staffUser"]["memberships"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(
                add,
                json!({ "i": { "userId": user["id"], "departmentId": bb } }),
            )
            .await,
        "CONFLICT",
    );
    let rm = "mutation($i: RemoveMembershipInput!) { removeDepartmentMembership(input: $i) { staffUser { memberships { department { key } } } } }";
    let r = app
        .caller(MUSTER, &admin)
        .gql(
            rm,
            json!({ "i": { "userId": user["id"], "departmentId": bb } }),
        )
        .await;
    assert_eq!(
        data(&r)["removeDepartmentMembership"]["staffUser"]["memberships"],
        json!([{ "department": { "key": "kasse" } }])
    );

    // Disabling ends sessions: login and refresh fail.
    let upd = "mutation($i: UpdateStaffUserInput!) { updateStaffUser(input: $i) { staffUser { active } } }";
    let r = app
        .caller(MUSTER, &admin)
        .gql(upd, json!({ "i": { "id": user["id"], "active": false } }))
        .await;
    assert_eq!(data(&r)["updateStaffUser"]["staffUser"]["active"], false);
    assert_code(
        &app.try_login(
            Some(MUSTER),
            "kassiererin@musterstadt.example",
            "kasse-password-1",
        )
        .await,
        "UNAUTHENTICATED",
    );
    let refresh = app
        .gql(
            Some(MUSTER),
            None,
            "mutation($t: String!) { refreshSession(input: {refreshToken: $t}) { accessToken } }",
            json!({ "t": karla.refresh }),
        )
        .await;
    assert_code(&refresh, "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_last_administrator_cannot_be_removed() {
    let app = spawn_app().await;
    let admin = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let me = app
        .caller(BEISPIEL, &admin)
        .gql("{ me { id } }", json!({}))
        .await;
    let id = data(&me)["me"]["id"].clone();
    let r = app
        .caller(BEISPIEL, &admin)
        .gql(
            "mutation($i: RoleInput!) { revokeRole(input: $i) { staffUser { roles } } }",
            json!({ "i": { "userId": id, "role": "TENANT_ADMIN" } }),
        )
        .await;
    assert_code(&r, "CONFLICT");
    let r = app.caller(BEISPIEL, &admin).gql("mutation($i: UpdateStaffUserInput!) { updateStaffUser(input: $i) { staffUser { active } } }", json!({ "i": { "id": id, "active": false } })).await;
    assert_code(&r, "CONFLICT");
}

#[tokio::test]
async fn staff_change_their_own_password() {
    let app = spawn_app().await;
    let s = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let q = "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { ok } }";
    assert_code(&app.caller(MUSTER, &s).gql(q, json!({ "i": { "currentPassword": "wrong-one-xyz", "newPassword": "a-new-long-password" } })).await, "VALIDATION_FAILED");
    assert_code(
        &app.caller(MUSTER, &s)
            .gql(
                q,
                json!({ "i": { "currentPassword": MUSTER_STAFF.1, "newPassword": "short" } }),
            )
            .await,
        "VALIDATION_FAILED",
    );
    data(&app.caller(MUSTER, &s).gql(q, json!({ "i": { "currentPassword": MUSTER_STAFF.1, "newPassword": "a-new-long-password" } })).await);
    assert_code(
        &app.try_login(Some(MUSTER), MUSTER_STAFF.0, MUSTER_STAFF.1)
            .await,
        "UNAUTHENTICATED",
    );
    app.login(Some(MUSTER), (MUSTER_STAFF.0, "a-new-long-password"))
        .await;
}

#[tokio::test]
async fn an_admin_of_tenant_a_sees_and_changes_nothing_of_tenant_b_even_with_guessed_ids() {
    let app = spawn_app().await;
    let a = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let b = app.login(Some(BEISPIEL), BEISPIEL_ADMIN).await;
    let b_dept = app.department_id(BEISPIEL, "rathaus").await;
    let b_user = app.staff_id(BEISPIEL, &b, BEISPIEL_ADMIN.0).await;
    let a_user = app.staff_id(MUSTER, &a, MUSTER_STAFF.0).await;

    let t = Some(MUSTER);
    let tok = Some(a.access.as_str());
    assert_code(
        &app.gql(
            t,
            tok,
            "query($id: ID!) { department(id: $id) { name } }",
            json!({ "id": b_dept }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(
            t,
            tok,
            "query($id: ID!) { staffUser(id: $id) { email } }",
            json!({ "id": b_user }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(&app.gql(t, tok, "mutation($i: UpdateDepartmentInput!) { updateDepartment(input: $i) { department { name } } }", json!({ "i": { "id": b_dept, "name": "Hijacked" } })).await, "NOT_FOUND");
    assert_code(
        &app.gql(
            t,
            tok,
            "mutation($i: DeleteDepartmentInput!) { deleteDepartment(input: $i) { deletedId } }",
            json!({ "i": { "id": b_dept } }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(
        &app.gql(
            t,
            tok,
            "mutation($i: RoleInput!) { grantRole(input: $i) { staffUser { id } } }",
            json!({ "i": { "userId": b_user, "role": "AUTHOR" } }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_code(&app.gql(t, tok, "mutation($i: UpdateStaffUserInput!) { updateStaffUser(input: $i) { staffUser { id } } }", json!({ "i": { "id": b_user, "active": false } })).await, "NOT_FOUND");
    // Own user into B's department: the department is not found in A.
    assert_code(&app.gql(t, tok, "mutation($i: AddMembershipInput!) { addDepartmentMembership(input: $i) { staffUser { id } } }", json!({ "i": { "userId": a_user, "departmentId": b_dept } })).await, "NOT_FOUND");
    // A's lists contain only A.
    let staff = app
        .gql(
            t,
            tok,
            "{ tenant { staff(first: 100) { edges { node { email } } } } }",
            json!({}),
        )
        .await;
    for e in data(&staff)["tenant"]["staff"]["edges"].as_array().unwrap() {
        assert!(
            e["node"]["email"]
                .as_str()
                .unwrap()
                .ends_with("@musterstadt.example")
        );
    }
    let log = app
        .gql(
            t,
            tok,
            "{ auditLog(first: 100) { edges { node { target } } } }",
            json!({}),
        )
        .await;
    assert!(!data(&log).to_string().contains(&b_user));

    // B is unchanged.
    let resp = app.caller(BEISPIEL, &b).gql("query($id: ID!, $u: ID!) { department(id: $id) { name } staffUser(id: $u) { active roles } }", json!({ "id": b_dept, "u": b_user })).await;
    assert_eq!(data(&resp)["department"]["name"], "Rathaus Beispielhausen");
    assert_eq!(
        data(&resp)["staffUser"],
        json!({ "active": true, "roles": ["TENANT_ADMIN"] })
    );
}

#[tokio::test]
async fn connections_page_with_cursors_and_bounded_size() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let q = "query($f: Int, $a: String) { tenant { staff(first: $f, after: $a) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { email } } } } }";
    let p1 = app.caller(MUSTER, &admin).gql(q, json!({ "f": 2 })).await;
    let c1 = &data(&p1)["tenant"]["staff"];
    // Musterstadt's demo staff: admin, Sachbearbeitung, Kasse, Autorin.
    assert_eq!(c1["totalCount"], 4);
    assert_eq!(c1["pageInfo"]["hasNextPage"], true);
    assert_eq!(c1["pageInfo"]["hasPreviousPage"], false);
    let p2 = app
        .caller(MUSTER, &admin)
        .gql(q, json!({ "f": 2, "a": c1["pageInfo"]["endCursor"] }))
        .await;
    let c2 = &data(&p2)["tenant"]["staff"];
    assert_eq!(c2["edges"].as_array().unwrap().len(), 2);
    assert_eq!(c2["pageInfo"]["hasNextPage"], false);
    let mut all: Vec<_> = c1["edges"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c2["edges"].as_array().unwrap())
        .map(|e| e["node"]["email"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4);

    let too_many = app.caller(MUSTER, &admin).gql(q, json!({ "f": 101 })).await;
    assert_code(&too_many, "VALIDATION_FAILED");
    assert!(too_many["errors"][0]["extensions"]["fields"]["first"].is_string());
    assert_code(
        &app.caller(MUSTER, &admin).gql(q, json!({ "f": -1 })).await,
        "VALIDATION_FAILED",
    );
    assert_code(
        &app.caller(MUSTER, &admin)
            .gql(q, json!({ "a": "not-a-cursor" }))
            .await,
        "VALIDATION_FAILED",
    );
}

const ONBOARD: &str = "mutation($i: OnboardTenantInput!) { onboardTenant(input: $i) { tenant { slug name departments { edges { node { key } } } } } }";

fn onboard_input(slug: &str) -> serde_json::Value {
    json!({ "i": {
        "slug": slug, "name": "Neue Gemeinde", "ags": "07999005",
        "departments": [{ "key": "rathaus", "name": "Rathaus" }],
        "firstAdmin": { "email": "chefin@neu.example", "displayName": "Chefin", "password": "neue-gemeinde-pw" },
    }})
}

#[tokio::test]
async fn platform_admins_onboard_tenants_whose_admin_can_log_in() {
    let app = spawn_app().await;
    let p = app.login(None, PLATFORM_ADMIN).await;
    let resp = app
        .gql(
            None,
            Some(&p.access),
            ONBOARD,
            onboard_input("neue-gemeinde"),
        )
        .await;
    assert_eq!(
        data(&resp)["onboardTenant"]["tenant"]["departments"]["edges"][0]["node"]["key"],
        "rathaus"
    );
    let admin = app
        .login(
            Some("neue-gemeinde"),
            ("chefin@neu.example", "neue-gemeinde-pw"),
        )
        .await;
    let me = app
        .gql(
            Some("neue-gemeinde"),
            Some(&admin.access),
            "{ me { roles } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&me)["me"]["roles"], json!(["TENANT_ADMIN"]));

    assert_code(
        &app.gql(
            None,
            Some(&p.access),
            ONBOARD,
            onboard_input("neue-gemeinde"),
        )
        .await,
        "CONFLICT",
    );
    let tenant_admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    assert_code(
        &app.caller(MUSTER, &tenant_admin)
            .gql(ONBOARD, onboard_input("andere"))
            .await,
        "FORBIDDEN",
    );
    assert_code(
        &app.gql(None, None, ONBOARD, onboard_input("andere")).await,
        "UNAUTHENTICATED",
    );

    let mut bad = onboard_input("x");
    bad["i"]["ags"] = json!("123");
    bad["i"]["timeZone"] = json!("Mars/Olympus");
    let resp = app.gql(None, Some(&p.access), ONBOARD, bad).await;
    assert_code(&resp, "VALIDATION_FAILED");
    // Nothing was created by the failed attempts.
    let list = app
        .gql(
            None,
            Some(&p.access),
            "{ tenants { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data(&list)["tenants"]["totalCount"], 4);
}

/// `me` answers from the account row the session check read (no second read per request); a
/// change to the account shows on the very next request all the same.
#[tokio::test]
async fn a_renamed_staff_member_sees_the_new_name_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.login(Some(MUSTER), MUSTER_ADMIN).await;
    let clerk = app.login(Some(MUSTER), MUSTER_STAFF).await;
    let me = "{ me { id displayName email } }";
    let before = app.caller(MUSTER, &clerk).gql(me, json!({})).await;
    let id = str_at(&data(&before)["me"], "id");
    let old_name = str_at(&data(&before)["me"], "displayName");
    assert_eq!(data(&before)["me"]["email"], MUSTER_STAFF.0);

    let rename = "mutation($i: UpdateStaffUserInput!) { updateStaffUser(input: $i) { staffUser { displayName } } }";
    let r = app
        .caller(MUSTER, &admin)
        .gql(
            rename,
            json!({ "i": { "id": id, "displayName": "Erika Umbenannt" } }),
        )
        .await;
    assert_eq!(
        data(&r)["updateStaffUser"]["staffUser"]["displayName"],
        "Erika Umbenannt"
    );
    let after = app.caller(MUSTER, &clerk).gql(me, json!({})).await;
    assert_eq!(
        data(&after)["me"]["displayName"],
        "Erika Umbenannt",
        "was {old_name}"
    );

    // Deactivated: the cached row does not keep the session alive.
    let r = app
        .caller(MUSTER, &admin)
        .gql(rename, json!({ "i": { "id": id, "active": false } }))
        .await;
    assert!(r["errors"].is_null(), "{r:#}");
    assert_code(
        &app.caller(MUSTER, &clerk).gql(me, json!({})).await,
        "UNAUTHENTICATED",
    );
}
