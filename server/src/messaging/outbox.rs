//! The notification outbox: emails are rows written in the transaction of the change they
//! announce (so nothing is announced that did not happen, and nothing that happened goes
//! unannounced), and a worker sends them.
//!
//! The worker *leases* due rows (moves `next_attempt_at` ahead and counts the attempt; on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas never take the same row), sends outside any
//! transaction, then marks them sent or schedules a retry with exponential backoff. A crash
//! mid-send only means the lease runs out and the mail is tried again (at least once).
//!
//! Rows of other kinds than `email` are tasks for a [`Courier`] (the FIT-Connect hand-over and
//! the following of its events): leased, retried and settled the same way, so they too are
//! written with the change that calls for them and never lost.
//!
//! On PostgreSQL the outbox has row-level security like every tenant table: requests see their
//! tenant's mail only. The worker, which sends for all tenants, has its own small pool acting as
//! the role [`migration::OUTBOX_ROLE`], which may read and settle outbox rows and nothing else
//! ([`connect_worker`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use entity::outbox;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    EntityTrait, FromQueryResult, QueryFilter, Set, Statement,
};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::settings::MailSettings;

/// An email to queue.
#[derive(Clone, Debug, Default)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Files sent with it.
    pub files: Vec<MailFile>,
    /// What it is about, so that it can be withdrawn while unsent ([`withdraw`]).
    pub topic: Option<String>,
    /// Not sent before this time (a reminder); default: at once.
    pub send_at: Option<DateTime<Utc>>,
}

/// A file sent with an email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFile {
    pub filename: String,
    pub content_type: String,
    #[serde(with = "base64_bytes")]
    pub base64: Vec<u8>,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Queues `email` in the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    tenant: Option<TenantId>,
    email: Email,
) -> AppResult<()> {
    enqueue_all(conn, tenant, vec![email]).await
}

/// Queues several emails with one statement.
pub async fn enqueue_all<C: ConnectionTrait>(
    conn: &C,
    tenant: Option<TenantId>,
    emails: Vec<Email>,
) -> AppResult<()> {
    if let Some(insert) = insert_all(tenant, emails) {
        insert.exec_without_returning(conn).await?;
    }
    Ok(())
}

/// The one INSERT that queues `emails` (none for no emails).
fn insert_all(
    tenant: Option<TenantId>,
    emails: Vec<Email>,
) -> Option<sea_orm::InsertMany<outbox::ActiveModel>> {
    if emails.is_empty() {
        return None;
    }
    let now = Utc::now();
    let rows = emails.into_iter().map(|email| outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.map(|t| t.0)),
        kind: Set("email".into()),
        recipient: Set(email.to),
        subject: Set(email.subject),
        body: Set(email.body),
        attempts: Set(0),
        next_attempt_at: Set(email.send_at.unwrap_or(now)),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        attachments: Set((!email.files.is_empty())
            .then(|| serde_json::to_value(&email.files).unwrap_or_default())),
        topic: Set(email.topic),
    });
    Some(outbox::Entity::insert_many(rows))
}

/// Queues a task of `kind` about `subject` (e.g. an application's id) for the [`Courier`] of
/// that kind, in the caller's transaction; not before `send_at` (default: at once).
pub async fn enqueue_task<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    kind: &str,
    subject: String,
    send_at: Option<DateTime<Utc>>,
) -> AppResult<()> {
    let now = Utc::now();
    outbox::Entity::insert(outbox::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(Some(tenant.0)),
        kind: Set(kind.into()),
        recipient: Set(subject),
        subject: Set(kind.into()),
        body: Set(String::new()),
        attempts: Set(0),
        next_attempt_at: Set(send_at.unwrap_or(now)),
        sent_at: Set(None),
        failed_at: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        attachments: Set(None),
        topic: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// What a courier's task came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Done: the row is settled.
    Done,
    /// Look again at this time (following events): the row waits, with its attempts reset.
    Later(DateTime<Utc>),
}

/// A task that did not succeed: retried with backoff, unless retrying cannot help.
#[derive(Debug)]
pub struct DeliveryError {
    pub message: String,
    pub permanent: bool,
}

impl DeliveryError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Delivers the outbox rows of its kinds (other than `email`).
#[async_trait::async_trait]
pub trait Courier: Send + Sync {
    /// The row kinds it takes.
    fn kinds(&self) -> &'static [&'static str];
    /// Does the row's task; called at least once per row, so it must be safe to repeat.
    async fn deliver(&self, row: &outbox::Model) -> Result<Delivery, DeliveryError>;
}

/// The couriers of a worker.
pub type Couriers = Vec<Arc<dyn Courier>>;

/// Withdraws the unsent mail about `topic` (a reminder of a booking that was moved or cancelled),
/// in the caller's transaction. A mail already leased by the worker may still go out.
pub async fn withdraw<C: ConnectionTrait>(conn: &C, topic: &str) -> AppResult<u64> {
    let update = outbox::ActiveModel {
        failed_at: Set(Some(Utc::now())),
        last_error: Set(Some("withdrawn".into())),
        ..Default::default()
    };
    let result = outbox::Entity::update_many()
        .set(update)
        .filter(outbox::Column::Topic.eq(topic))
        .filter(outbox::Column::SentAt.is_null())
        .filter(outbox::Column::FailedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// The files stored with an outbox row.
fn files_of(row: &outbox::Model) -> Result<Vec<MailFile>, String> {
    match &row.attachments {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("stored files: {e}")),
    }
}

/// How mail leaves the server.
pub enum Mailer {
    /// Embedded default: written to the log (recipient and subject only).
    Log,
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
}

impl Mailer {
    pub fn from_settings(mail: &MailSettings) -> anyhow::Result<Self> {
        let Some(url) = &mail.smtp_url else {
            return Ok(Self::Log);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("mail.smtp_url is not a valid SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from = mail
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from is not an email address: {e}"))?;
        Ok(Self::Smtp { transport, from })
    }

    async fn send(&self, row: &outbox::Model) -> Result<(), String> {
        match self {
            Self::Log => {
                // The recipient is personal data: the log names the mail, not the person.
                tracing::info!(
                    outbox.id = %row.id,
                    subject = %row.subject,
                    body_bytes = row.body.len(),
                    files = files_of(row)?.len(),
                    "email (no SMTP server configured; logged instead)"
                );
                Ok(())
            }
            Self::Smtp { transport, from } => {
                let to: Mailbox = row
                    .recipient
                    .parse()
                    .map_err(|e| format!("bad recipient: {e}"))?;
                let builder = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(row.subject.clone());
                let files = files_of(row)?;
                let message = if files.is_empty() {
                    builder
                        .header(ContentType::TEXT_PLAIN)
                        .body(row.body.clone())
                } else {
                    let mut parts =
                        MultiPart::mixed().singlepart(SinglePart::plain(row.body.clone()));
                    for f in files {
                        let content_type = ContentType::parse(&f.content_type)
                            .map_err(|e| format!("stored content type: {e}"))?;
                        parts = parts
                            .singlepart(Attachment::new(f.filename).body(f.base64, content_type));
                    }
                    builder.multipart(parts)
                }
                .map_err(|e| format!("building the message: {e}"))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("SMTP: {e}"))
            }
        }
    }
}

/// The worker's connection. On PostgreSQL a pool of its own (two connections) on the owner's
/// login acting as [`migration::OUTBOX_ROLE`]: the request role sees only one tenant's mail at a
/// time, and the worker leases due rows of every tenant in one statement. On SQLite, `app` itself.
pub async fn connect_worker(
    settings: &crate::settings::Settings,
    app: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    if app.get_database_backend() != DbBackend::Postgres {
        return Ok(app.clone());
    }
    let mut opt = ConnectOptions::new(settings.database_url());
    opt.max_connections(2)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .sqlx_logging_level(tracing::log::LevelFilter::Debug)
        .map_sqlx_postgres_opts(|o| {
            o.options([("role", migration::OUTBOX_ROLE)])
                .application_name("amtsplatz-outbox")
        });
    Database::connect(opt)
        .await
        .context("connecting to the database (outbox worker role)")
}

/// Retries after the n-th failed attempt: 2^n × base, at most an hour.
pub fn backoff(attempts: i32, base: Duration) -> Duration {
    let factor = 1u32 << attempts.clamp(0, 16) as u32;
    (base * factor).min(Duration::from_secs(3600))
}

/// The worker's knobs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub poll_interval: Duration,
    pub retry_base: Duration,
    pub max_attempts: i32,
    pub lease: Duration,
    pub batch: u64,
}

/// Sends due mail until `stop` fires; `wake` makes it look at once (after a commit that queued
/// something). The batch in progress is finished before it returns (graceful shutdown).
pub async fn run_worker(
    db: DatabaseConnection,
    mailer: Arc<Mailer>,
    couriers: Couriers,
    config: WorkerConfig,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match drain_once(&db, &mailer, &couriers, &config).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox worker"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// Leases, sends and settles one batch; returns how many rows it handled.
pub async fn drain_once(
    db: &DatabaseConnection,
    mailer: &Mailer,
    couriers: &[Arc<dyn Courier>],
    config: &WorkerConfig,
) -> AppResult<usize> {
    let rows = lease(db, config).await?;
    for row in &rows {
        let result = if row.kind == "email" {
            mailer
                .send(row)
                .await
                .map(|()| Delivery::Done)
                .map_err(DeliveryError::retry)
        } else {
            match couriers
                .iter()
                .find(|c| c.kinds().contains(&row.kind.as_str()))
            {
                Some(courier) => courier.deliver(row).await,
                // Perhaps a newer replica's kind: leave it to retries.
                None => Err(DeliveryError::retry(format!(
                    "no courier for `{}`",
                    row.kind
                ))),
            }
        };
        let mut update = <outbox::ActiveModel as Default>::default();
        match result {
            Ok(Delivery::Done) => update.sent_at = Set(Some(Utc::now())),
            Ok(Delivery::Later(at)) => {
                update.next_attempt_at = Set(at);
                update.attempts = Set(0);
                update.last_error = Set(None);
            }
            Err(DeliveryError {
                message: error,
                permanent,
            }) => {
                tracing::warn!(outbox.id = %row.id, outbox.kind = %row.kind, attempts = row.attempts, error = %error, "outbox row not delivered");
                update.last_error = Set(Some(error));
                if permanent || row.attempts >= config.max_attempts {
                    update.failed_at = Set(Some(Utc::now()));
                } else {
                    let wait = backoff(row.attempts - 1, config.retry_base);
                    update.next_attempt_at = Set(Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)));
                }
            }
        }
        outbox::Entity::update_many()
            .set(update)
            .filter(outbox::Column::Id.eq(row.id))
            .filter(outbox::Column::SentAt.is_null())
            .exec(db)
            .await?;
    }
    Ok(rows.len())
}

async fn lease(db: &DatabaseConnection, config: &WorkerConfig) -> AppResult<Vec<outbox::Model>> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let until =
        now + chrono::Duration::from_std(config.lease).unwrap_or(chrono::Duration::minutes(1));
    let (skip_locked, p) = match backend {
        DbBackend::Postgres => (" FOR UPDATE SKIP LOCKED", ["$1", "$2", "$3"]),
        _ => ("", ["?", "?", "?"]),
    };
    let sql = format!(
        "UPDATE outbox SET next_attempt_at = {}, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM outbox \
                      WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= {} \
                      ORDER BY next_attempt_at LIMIT {}{skip_locked}) \
         RETURNING *",
        p[0], p[1], p[2]
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [until.into(), now.into(), (config.batch as i64).into()],
        ))
        .await?;
    rows.iter()
        .map(|r| outbox::Model::from_query_result(r, "").map_err(AppError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(0, base), Duration::from_secs(30));
        assert_eq!(backoff(3, base), Duration::from_secs(240));
        assert_eq!(backoff(40, base), Duration::from_secs(3600));
    }
}
