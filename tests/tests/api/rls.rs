//! PostgreSQL row-level security: the request role sees nothing without the tenant setting,
//! only its tenant with it, and cannot rewrite the audit log.

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};

use crate::helpers::*;

async fn count(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn row_level_security_hides_other_tenants_rows_from_the_request_role() {
    let app = spawn_app().await;
    let owner = Database::connect(&app.db_url).await.unwrap();
    assert_eq!(
        count(&owner, "SELECT count(*) FROM departments").await,
        7,
        "the superuser owner sees every tenant"
    );
    let muster: String = owner
        .query_one_raw(Statement::from_string(
            owner.get_database_backend(),
            "SELECT id::text FROM tenants WHERE slug = 'musterstadt'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();

    // The same connection as the server's request pool: role amtsplatz_app.
    let app_role = Database::connect(format!("{}?options=-c%20role%3Damtsplatz_app", app.db_url))
        .await
        .unwrap();
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM departments").await,
        0,
        "no tenant set: no rows"
    );
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM staff_users").await,
        0
    );
    assert_eq!(count(&app_role, "SELECT count(*) FROM audit_log").await, 0);

    let txn = app_role.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT set_config('app.tenant_id', '{muster}', true)"
    ))
    .await
    .unwrap();
    assert_eq!(
        count(&txn, "SELECT count(*) FROM departments").await,
        3,
        "only musterstadt's departments"
    );
    assert_eq!(
        count(
            &txn,
            &format!("SELECT count(*) FROM departments WHERE tenant_id <> '{muster}'")
        )
        .await,
        0
    );
    // Writing a row for another tenant violates the policy.
    let other = txn
        .execute_unprepared("INSERT INTO departments (id, tenant_id, key, name, created_at) SELECT gen_random_uuid(), id, 'evil', 'Evil', now() FROM tenants WHERE slug = 'beispielhausen'")
        .await;
    assert!(other.is_err(), "inserting into another tenant must fail");
    txn.rollback().await.unwrap();

    // The setting was transaction-local: the pooled connection is clean again.
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM departments").await,
        0
    );

    // The audit log is append-only for the request role.
    let txn = app_role.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT set_config('app.tenant_id', '{muster}', true)"
    ))
    .await
    .unwrap();
    let upd = txn
        .execute_unprepared("UPDATE audit_log SET action = 'forged'")
        .await;
    assert!(upd.is_err(), "UPDATE on audit_log must be denied");
    txn.rollback().await.unwrap();
}

async fn tenant_id(owner: &impl ConnectionTrait, slug: &str) -> String {
    owner
        .query_one_raw(Statement::from_string(
            owner.get_database_backend(),
            format!("SELECT id::text FROM tenants WHERE slug = '{slug}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn marketplace_rows_follow_visibility_and_published_content_is_immutable() {
    let app = spawn_app().await;
    let owner = Database::connect(&app.db_url).await.unwrap();
    let muster = tenant_id(&owner, "musterstadt").await;
    let beispiel = tenant_id(&owner, "beispielhausen").await;
    // A private template of Musterstadt next to the public demo ones.
    owner
        .execute_unprepared(&format!(
            "INSERT INTO templates (id, author_tenant_id, slug, title, summary, category, tags, license, visibility, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{muster}', 'intern', 'Intern', '', 'intern', '[]', 'EUPL-1.2', 'private', now(), now())"
        ))
        .await
        .unwrap();
    let public = count(
        &owner,
        "SELECT count(*) FROM templates WHERE visibility = 'public'",
    )
    .await;
    assert!(public >= 4);

    let app_role = Database::connect(format!("{}?options=-c%20role%3Damtsplatz_app", app.db_url))
        .await
        .unwrap();
    // No tenant: public templates and their versions; no services, revisions or proposals.
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM templates").await,
        public
    );
    assert!(count(&app_role, "SELECT count(*) FROM template_versions").await >= 5);
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM tenant_services").await,
        0
    );
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM service_revisions").await,
        0
    );

    let as_tenant = |t: String| {
        let app_role = app_role.clone();
        async move {
            let txn = app_role.begin().await.unwrap();
            txn.execute_unprepared(&format!("SELECT set_config('app.tenant_id', '{t}', true)"))
                .await
                .unwrap();
            txn
        }
    };
    let txn = as_tenant(beispiel.clone()).await;
    assert_eq!(
        count(&txn, "SELECT count(*) FROM templates").await,
        public,
        "B does not see A's private template"
    );
    assert_eq!(
        count(
            &txn,
            &format!("SELECT count(*) FROM tenant_services WHERE tenant_id <> '{beispiel}'")
        )
        .await,
        0
    );
    // B cannot publish a version of A's template, nor change its metadata.
    let forged = txn
        .execute_unprepared(
            "INSERT INTO template_versions (id, template_id, version, major, minor, patch, content, changelog, status, published_at) \
             SELECT gen_random_uuid(), id, '9.0.0', 9, 0, 0, '{}', '', 'published', now() FROM templates WHERE slug = 'hundesteuer-anmeldung'",
        )
        .await;
    assert!(forged.is_err(), "another tenant must not publish versions");
    txn.rollback().await.unwrap();
    let txn = as_tenant(beispiel.clone()).await;
    let renamed = txn
        .execute_unprepared(
            "UPDATE templates SET title = 'gekapert' WHERE slug = 'hundesteuer-anmeldung'",
        )
        .await
        .unwrap();
    assert_eq!(
        renamed.rows_affected(),
        0,
        "another tenant's template is not updatable"
    );
    txn.rollback().await.unwrap();

    // The author tenant sees its private template, but cannot rewrite published content:
    // the request role lacks the column privilege, and a trigger stops even the owner.
    let txn = as_tenant(muster.clone()).await;
    assert_eq!(
        count(&txn, "SELECT count(*) FROM templates").await,
        public + 1
    );
    let rewrite = txn
        .execute_unprepared("UPDATE template_versions SET content = '{}' WHERE version = '1.0.0'")
        .await;
    assert!(
        rewrite.is_err(),
        "content is not updatable by the request role"
    );
    txn.rollback().await.unwrap();
    let owner_rewrite = owner
        .execute_unprepared("UPDATE template_versions SET content = '{}' WHERE version = '1.0.0'")
        .await;
    let message = owner_rewrite.unwrap_err().to_string();
    assert!(message.contains("immutable"), "{message}");
    // Deprecation (the status) stays possible for the author.
    let txn = as_tenant(muster).await;
    let deprecated = txn
        .execute_unprepared(
            "UPDATE template_versions SET status = 'deprecated' WHERE version = '1.0.0'",
        )
        .await
        .unwrap();
    assert!(deprecated.rows_affected() >= 1);
    txn.rollback().await.unwrap();
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn every_table_with_a_tenant_id_forces_row_level_security() {
    let app = spawn_app().await;
    let owner = Database::connect(&app.db_url).await.unwrap();
    let rows = owner
        .query_all_raw(Statement::from_string(
            owner.get_database_backend(),
            "SELECT c.table_name::text AS name, \
                    COALESCE(k.relrowsecurity AND k.relforcerowsecurity, false) AS forced \
             FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             LEFT JOIN pg_class k ON k.oid = format('%I.%I', c.table_schema, c.table_name)::regclass \
             WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' \
               AND t.table_type = 'BASE TABLE' \
             ORDER BY 1",
        ))
        .await
        .unwrap();
    let tables: Vec<(String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "name").unwrap(),
                r.try_get("", "forced").unwrap(),
            )
        })
        .collect();
    // The list is read from the catalogue, so a new tenant table is covered without editing
    // this test; a few known ones prove the query found them.
    for known in [
        "applications",
        "audit_log",
        "outbox",
        "payments",
        "refresh_tokens",
    ] {
        assert!(
            tables.iter().any(|(name, _)| name == known),
            "{known} missing from {tables:?}"
        );
    }
    let unforced: Vec<&str> = tables
        .iter()
        .filter(|(_, forced)| !forced)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        unforced.is_empty(),
        "tables with tenant_id but without ENABLE + FORCE ROW LEVEL SECURITY: {unforced:?}"
    );
}

#[tokio::test]
#[cfg_attr(not(pg), ignore = "PostgreSQL only")]
async fn the_outbox_shows_the_request_role_only_its_tenants_mail() {
    let app = spawn_app().await;
    let owner = Database::connect(&app.db_url).await.unwrap();
    let muster = tenant_id(&owner, "musterstadt").await;
    let beispiel = tenant_id(&owner, "beispielhausen").await;
    // One queued mail per tenant, due in a day (the worker leaves them alone meanwhile).
    for (tenant, to) in [
        (&muster, "erika@example.org"),
        (&beispiel, "max@example.org"),
    ] {
        owner
            .execute_unprepared(&format!(
                "INSERT INTO outbox (id, tenant_id, kind, recipient, subject, body, attempts, next_attempt_at, created_at, topic) \
                 VALUES (gen_random_uuid(), '{tenant}', 'email', '{to}', 'Ihr Antrag', 'Geheim', 0, now() + interval '1 day', now(), 'rls-test')"
            ))
            .await
            .unwrap();
    }
    let app_role = Database::connect(format!("{}?options=-c%20role%3Damtsplatz_app", app.db_url))
        .await
        .unwrap();
    assert_eq!(
        count(&app_role, "SELECT count(*) FROM outbox").await,
        0,
        "no tenant set: no tenant's mail"
    );
    let txn = app_role.begin().await.unwrap();
    txn.execute_unprepared(&format!(
        "SELECT set_config('app.tenant_id', '{beispiel}', true)"
    ))
    .await
    .unwrap();
    assert_eq!(
        count(&txn, "SELECT count(*) FROM outbox WHERE topic = 'rls-test'").await,
        1,
        "Beispielhausen sees its own mail only"
    );
    let rewritten = txn
        .execute_unprepared(&format!(
            "UPDATE outbox SET recipient = 'attacker@example.org' WHERE tenant_id = '{muster}'"
        ))
        .await
        .unwrap();
    assert_eq!(
        rewritten.rows_affected(),
        0,
        "another tenant's mail is not writable"
    );
    let moved = txn
        .execute_unprepared(&format!(
            "UPDATE outbox SET tenant_id = '{muster}' WHERE tenant_id = '{beispiel}'"
        ))
        .await;
    assert!(moved.is_err(), "a row must not be moved to another tenant");
    txn.rollback().await.unwrap();
    assert_eq!(
        count(
            &owner,
            "SELECT count(*) FROM outbox WHERE recipient = 'attacker@example.org'"
        )
        .await,
        0
    );

    // The worker's role sees every tenant's mail, and may touch nothing but the outbox.
    let worker = Database::connect(format!(
        "{}?options=-c%20role%3Damtsplatz_outbox",
        app.db_url
    ))
    .await
    .unwrap();
    assert_eq!(
        count(
            &worker,
            "SELECT count(*) FROM outbox WHERE topic = 'rls-test'"
        )
        .await,
        2
    );
    assert!(
        worker
            .query_one_raw(Statement::from_string(
                worker.get_database_backend(),
                "SELECT count(*) FROM applications",
            ))
            .await
            .is_err(),
        "the worker role must not read other tables"
    );
    assert!(
        worker
            .execute_unprepared("DELETE FROM outbox")
            .await
            .is_err(),
        "the worker role must not delete mail"
    );
}
