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
async fn row_level_security_hides_other_tenants_rows_from_the_request_role() {
    let app = spawn_app().await;
    if !app.is_postgres {
        eprintln!("skipped: row-level security exists on PostgreSQL only");
        return;
    }
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
