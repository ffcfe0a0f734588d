//! Applications: citizens' drafts, submitted applications pinned to a service revision, one task
//! per routed department, the append-only timeline, the mailbox, and the notification outbox.
//!
//! Reference numbers come from one counter row per tenant, incremented in the submitting
//! transaction: the row lock serializes concurrent submissions, so numbers are gap-free and
//! `seq` (the export cursor) grows in commit order.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::indexes::{self, unique};
use crate::m20261123_000001_create_tenancy::tenant_fk;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TenantServices {
    Table,
}

#[derive(DeriveIden)]
enum Departments {
    Table,
}

#[derive(DeriveIden)]
enum ApplicationCounters {
    Table,
    TenantId,
    Year,
    LastNumber,
    LastSeq,
}

#[derive(DeriveIden)]
enum Drafts {
    Table,
    Id,
    TenantId,
    ServiceId,
    Data,
    CitizenIssuer,
    CitizenSubject,
    AccessHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Applications {
    Table,
    Id,
    TenantId,
    ServiceId,
    ServiceSlug,
    Revision,
    Seq,
    Reference,
    State,
    Data,
    Fees,
    CitizenIssuer,
    CitizenSubject,
    AccessHash,
    ContactEmail,
    SearchText,
    SubmittedAt,
    UpdatedAt,
    DecidedAt,
    ClosedAt,
    ErasedAt,
}

#[derive(DeriveIden)]
enum ApplicationTasks {
    Table,
    Id,
    TenantId,
    ApplicationId,
    DepartmentId,
    RuleKey,
    State,
    CompletedBy,
    Comment,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum ApplicationEvents {
    Table,
    Id,
    TenantId,
    ApplicationId,
    Kind,
    Actor,
    ActorName,
    FromState,
    ToState,
    Comment,
    Details,
    Internal,
    At,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    TenantId,
    ApplicationId,
    Sender,
    SenderActor,
    SenderName,
    Body,
    Internal,
    CreatedAt,
    ReadAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    TenantId,
    Kind,
    Recipient,
    Subject,
    Body,
    Attempts,
    NextAttemptAt,
    SentAt,
    FailedAt,
    LastError,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApplicationCounters::Table)
                    .col(uuid(ApplicationCounters::TenantId).primary_key())
                    .col(integer(ApplicationCounters::Year))
                    .col(big_integer(ApplicationCounters::LastNumber))
                    .col(big_integer(ApplicationCounters::LastSeq))
                    .foreign_key(
                        ForeignKey::create()
                            .name("application_counters_tenant_id_fkey")
                            .from(ApplicationCounters::Table, ApplicationCounters::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Drafts::Table)
                    .col(pk_uuid(Drafts::Id))
                    .col(uuid(Drafts::TenantId))
                    .col(uuid(Drafts::ServiceId))
                    .col(json_binary(Drafts::Data))
                    .col(string_null(Drafts::CitizenIssuer))
                    .col(string_null(Drafts::CitizenSubject))
                    .col(string_null(Drafts::AccessHash))
                    .col(timestamp_with_time_zone(Drafts::CreatedAt))
                    .col(timestamp_with_time_zone(Drafts::UpdatedAt))
                    .foreign_key(&mut tenant_fk(
                        "drafts_service_fkey",
                        Drafts::Table,
                        Drafts::TenantId,
                        Drafts::ServiceId,
                        TenantServices::Table,
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Applications::Table)
                    .col(pk_uuid(Applications::Id))
                    .col(uuid(Applications::TenantId))
                    .col(uuid(Applications::ServiceId))
                    .col(string(Applications::ServiceSlug))
                    .col(big_integer(Applications::Revision))
                    .col(big_integer(Applications::Seq))
                    .col(string(Applications::Reference))
                    .col(string(Applications::State))
                    .col(json_binary_null(Applications::Data))
                    .col(json_binary(Applications::Fees))
                    .col(string_null(Applications::CitizenIssuer))
                    .col(string_null(Applications::CitizenSubject))
                    .col(string_null(Applications::AccessHash))
                    .col(string_null(Applications::ContactEmail))
                    .col(text(Applications::SearchText))
                    .col(timestamp_with_time_zone(Applications::SubmittedAt))
                    .col(timestamp_with_time_zone(Applications::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Applications::DecidedAt))
                    .col(timestamp_with_time_zone_null(Applications::ClosedAt))
                    .col(timestamp_with_time_zone_null(Applications::ErasedAt))
                    .foreign_key(&mut tenant_fk(
                        "applications_service_fkey",
                        Applications::Table,
                        Applications::TenantId,
                        Applications::ServiceId,
                        TenantServices::Table,
                    ))
                    .index(&mut unique(
                        "applications_tenant_id_id_key",
                        &["tenant_id", "id"],
                    ))
                    .index(&mut unique(
                        "applications_tenant_id_reference_key",
                        &["tenant_id", "reference"],
                    ))
                    .index(&mut unique(
                        "applications_tenant_id_seq_key",
                        &["tenant_id", "seq"],
                    ))
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "applications",
            &[
                ("applications_tenant_id_state_idx", &["tenant_id", "state"]),
                (
                    "applications_citizen_idx",
                    &["tenant_id", "citizen_issuer", "citizen_subject"],
                ),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApplicationTasks::Table)
                    .col(pk_uuid(ApplicationTasks::Id))
                    .col(uuid(ApplicationTasks::TenantId))
                    .col(uuid(ApplicationTasks::ApplicationId))
                    .col(uuid(ApplicationTasks::DepartmentId))
                    .col(string(ApplicationTasks::RuleKey))
                    .col(string(ApplicationTasks::State))
                    .col(uuid_null(ApplicationTasks::CompletedBy))
                    .col(text_null(ApplicationTasks::Comment))
                    .col(timestamp_with_time_zone(ApplicationTasks::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApplicationTasks::CompletedAt))
                    .foreign_key(&mut tenant_fk(
                        "application_tasks_application_fkey",
                        ApplicationTasks::Table,
                        ApplicationTasks::TenantId,
                        ApplicationTasks::ApplicationId,
                        Applications::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "application_tasks_department_fkey",
                        ApplicationTasks::Table,
                        ApplicationTasks::TenantId,
                        ApplicationTasks::DepartmentId,
                        Departments::Table,
                    ))
                    .index(&mut unique(
                        "application_tasks_application_department_key",
                        &["tenant_id", "application_id", "department_id"],
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("application_tasks_department_state_idx")
                    .table(ApplicationTasks::Table)
                    .col(ApplicationTasks::TenantId)
                    .col(ApplicationTasks::DepartmentId)
                    .col(ApplicationTasks::State)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApplicationEvents::Table)
                    .col(pk_uuid(ApplicationEvents::Id))
                    .col(uuid(ApplicationEvents::TenantId))
                    .col(uuid(ApplicationEvents::ApplicationId))
                    .col(string(ApplicationEvents::Kind))
                    .col(string(ApplicationEvents::Actor))
                    .col(string_null(ApplicationEvents::ActorName))
                    .col(string_null(ApplicationEvents::FromState))
                    .col(string_null(ApplicationEvents::ToState))
                    .col(text_null(ApplicationEvents::Comment))
                    .col(json_binary_null(ApplicationEvents::Details))
                    .col(boolean(ApplicationEvents::Internal))
                    .col(timestamp_with_time_zone(ApplicationEvents::At))
                    .foreign_key(&mut tenant_fk(
                        "application_events_application_fkey",
                        ApplicationEvents::Table,
                        ApplicationEvents::TenantId,
                        ApplicationEvents::ApplicationId,
                        Applications::Table,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("application_events_application_idx")
                    .table(ApplicationEvents::Table)
                    .col(ApplicationEvents::TenantId)
                    .col(ApplicationEvents::ApplicationId)
                    .col(ApplicationEvents::At)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(pk_uuid(Messages::Id))
                    .col(uuid(Messages::TenantId))
                    .col(uuid(Messages::ApplicationId))
                    .col(string(Messages::Sender))
                    .col(string(Messages::SenderActor))
                    .col(string_null(Messages::SenderName))
                    .col(text(Messages::Body))
                    .col(boolean(Messages::Internal))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .col(timestamp_with_time_zone_null(Messages::ReadAt))
                    .foreign_key(&mut tenant_fk(
                        "messages_application_fkey",
                        Messages::Table,
                        Messages::TenantId,
                        Messages::ApplicationId,
                        Applications::Table,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messages_application_idx")
                    .table(Messages::Table)
                    .col(Messages::TenantId)
                    .col(Messages::ApplicationId)
                    .col(Messages::CreatedAt)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(pk_uuid(Outbox::Id))
                    .col(uuid_null(Outbox::TenantId))
                    .col(string(Outbox::Kind))
                    .col(string(Outbox::Recipient))
                    .col(string(Outbox::Subject))
                    .col(text(Outbox::Body))
                    .col(integer(Outbox::Attempts))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(timestamp_with_time_zone_null(Outbox::FailedAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_due_idx")
                    .table(Outbox::Table)
                    .col(Outbox::SentAt)
                    .col(Outbox::FailedAt)
                    .col(Outbox::NextAttemptAt)
                    .take(),
            )
            .await?;

        let conn = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            // A submission writes the application's tasks and first event before the application
            // itself (see `applications::service::submit`): their keys are checked at commit.
            for c in [
                "application_tasks ALTER CONSTRAINT application_tasks_application_fkey",
                "application_events ALTER CONSTRAINT application_events_application_fkey",
            ] {
                conn.execute_unprepared(&format!("ALTER TABLE {c} DEFERRABLE INITIALLY DEFERRED"))
                    .await?;
            }
            // Every state change is announced to all replicas (LISTEN, see
            // `applications::live`), by the database itself: at commit, and only if it commits.
            for sql in POSTGRES_STATUS_NOTIFY {
                conn.execute_unprepared(sql).await?;
            }
        }

        // The timeline is append-only: no role may rewrite an event. (Erasure deletes them.)
        let immutable: &[&str] = match manager.get_database_backend() {
            DbBackend::Postgres => &[
                "CREATE FUNCTION application_events_append_only() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                   RAISE EXCEPTION 'application events are append-only'; \
                 END $$",
                "CREATE TRIGGER application_events_append_only BEFORE UPDATE ON application_events \
                 FOR EACH ROW EXECUTE FUNCTION application_events_append_only()",
            ],
            _ => &[
                "CREATE TRIGGER application_events_append_only BEFORE UPDATE \
                 ON application_events BEGIN \
                   SELECT RAISE(ABORT, 'application events are append-only'); \
                 END",
            ],
        };
        for sql in immutable {
            conn.execute_unprepared(sql).await?;
        }

        postgres::grant(manager, "application_counters", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(manager, "drafts", "SELECT, INSERT, UPDATE, DELETE").await?;
        postgres::grant(manager, "applications", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(manager, "application_tasks", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(manager, "application_events", "SELECT, INSERT, DELETE").await?;
        postgres::grant(manager, "messages", "SELECT, INSERT, UPDATE, DELETE").await?;
        // The outbox is the platform's queue, drained by a worker across tenants. (Row-level
        // security and the worker's own role came later: m20261203_000008.)
        postgres::grant(manager, "outbox", "SELECT, INSERT, UPDATE").await?;
        for table in [
            "application_counters",
            "drafts",
            "applications",
            "application_tasks",
            "application_events",
            "messages",
        ] {
            postgres::enable_tenant_rls(manager, table).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(
            manager,
            &[
                "outbox",
                "messages",
                "application_events",
                "application_tasks",
                "applications",
                "drafts",
                "application_counters",
            ],
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS application_events_append_only()")
                .await?;
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS applications_notify_status()")
                .await?;
        }
        Ok(())
    }
}

/// The payload is `applications::live::StatusChange` as JSON.
const POSTGRES_STATUS_NOTIFY: &[&str] = &[
    "CREATE FUNCTION applications_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
       PERFORM pg_notify('amtsplatz_application_status', json_build_object( \
         'tenant_id', NEW.tenant_id, 'application_id', NEW.id, 'reference', NEW.reference, \
         'state', NEW.state, 'at', NEW.updated_at)::text); \
       RETURN NULL; \
     END $$",
    "CREATE TRIGGER applications_notify_insert AFTER INSERT ON applications \
     FOR EACH ROW EXECUTE FUNCTION applications_notify_status()",
    "CREATE TRIGGER applications_notify_state AFTER UPDATE OF state ON applications \
     FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) \
     EXECUTE FUNCTION applications_notify_status()",
];
