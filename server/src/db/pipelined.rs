//! Tenant reads and transactions on PostgreSQL in as few round trips and statements as they
//! can take.
//!
//! Row-level security needs `app.tenant_id` set transaction-locally before the SELECT. Through
//! sea-orm (sqlx) a tenant read is BEGIN, `set_config(…, true)`, the SELECT and COMMIT, each
//! sent and awaited on its own. Here a tenant read is one simple-protocol message:
//! `SET LOCAL app.tenant_id = '…'; EXECUTE name(…)`. PostgreSQL runs the statements of one
//! message as one implicit transaction, so the setting holds for the query and is gone when the
//! message ends; the query itself was `PREPARE`d once on the connection, so it is not planned
//! again. One message, one answer, two statements, no planning (pgbench, departments page, 16
//! clients: 10.5–11.9k reads/s, against 10.7–12.7k for the four statements pipelined behind one
//! Sync and 17.8–21k for a single prepared SELECT without row-level security; the four
//! statements as tokio-postgres sends them, each with its own Sync and flush, cost more still).
//!
//! Values travel as literals of the `EXECUTE` (see [`write_literal`]): PostgreSQL reads each
//! with the input function of the prepared parameter's type.
//!
//! Rows come back as one JSON text per row (`row_to_json`) and are deserialized into the entity
//! model, which keeps this path generic over entities without a second row mapping.

use std::collections::HashMap;
use std::str::FromStr as _;

use deadpool_postgres::{ManagerConfig, RecyclingMethod};
use migration::APP_ROLE;
use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement, Value};
use secrecy::ExposeSecret;
use tokio_postgres::SimpleQueryMessage;

use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::settings::Settings;

pub type Pool = deadpool::managed::Pool<ConnManager>;
type Object = deadpool::managed::Object<ConnManager>;

/// A connection of the pool: the client and the statements `PREPARE`d on it, by SQL. They are
/// prepared under names of ours because a simple-protocol message can only run a prepared
/// statement by its name, and tokio-postgres does not tell the names of its own.
pub struct Conn {
    client: deadpool_postgres::ClientWrapper,
    prepared: HashMap<String, String>,
}

/// How many statements a connection keeps prepared before it deallocates them all (the SQL of
/// a read varies with the length of its `IN` lists).
const MAX_PREPARED: usize = 512;

impl Conn {
    /// The name `sql` is prepared under on this connection; prepared now if it is new.
    async fn prepared(&mut self, sql: &str) -> AppResult<&str> {
        if !self.prepared.contains_key(sql) {
            if self.prepared.len() >= MAX_PREPARED {
                self.client
                    .batch_execute("DEALLOCATE ALL")
                    .await
                    .map_err(|e| internal("deallocating statements", e))?;
                self.prepared.clear();
            }
            let name = format!("amtsplatz_{}", self.prepared.len());
            self.client
                .batch_execute(&format!("PREPARE {name} AS {sql}"))
                .await
                .map_err(|e| internal("preparing a statement", e))?;
            self.prepared.insert(sql.to_owned(), name);
        }
        Ok(&self.prepared[sql])
    }
}

/// deadpool-postgres's manager, with [`Conn`] around its connections.
pub struct ConnManager(deadpool_postgres::Manager);

impl deadpool::managed::Manager for ConnManager {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Conn, Self::Error> {
        Ok(Conn {
            client: self.0.create().await?,
            prepared: HashMap::new(),
        })
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        self.0.recycle(&mut conn.client, metrics).await
    }

    fn detach(&self, conn: &mut Conn) {
        self.0.detach(&mut conn.client);
    }
}

/// A pool of the request role, or `None` when the URL requires TLS (this pool speaks none; the
/// sea-orm path serves those deployments).
pub fn pool(settings: &Settings) -> anyhow::Result<Option<Pool>> {
    let mut config = match &settings.database.app_url {
        Some(url) => tokio_postgres::Config::from_str(url.expose_secret())?,
        None => {
            let mut c = tokio_postgres::Config::from_str(&settings.database_url())?;
            c.options(format!("-c role={APP_ROLE}"));
            c
        }
    };
    use tokio_postgres::config::SslMode;
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Ok(None);
    }
    config.application_name("amtsplatz-reads");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(ConnManager(manager))
        .max_size(settings.database.max_connections as usize)
        .build()?;
    Ok(Some(pool))
}

fn internal(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::internal(what, anyhow::Error::new(e))
}

/// Runs `query` for `tenant` (or with no tenant set: only shared rows are visible) in one
/// message (see the module docs); `None` when a bound value is of a kind this path does not
/// send (the caller then takes the sea-orm path).
pub async fn read<M: serde::de::DeserializeOwned>(
    pool: &Pool,
    tenant: Option<TenantId>,
    query: &SelectStatement,
) -> AppResult<Option<Vec<M>>> {
    let (sql, values) = json_rows(query);
    let Some(args) = literals(&values) else {
        return Ok(None);
    };
    let mut conn = pool
        .get()
        .await
        .map_err(|e| internal("pipelined read pool", e))?;
    let mut text = String::new();
    if let Some(tenant) = tenant {
        set_tenant(&mut text, tenant);
    }
    write_execute(&mut text, conn.prepared(&sql).await?, &args);
    let messages = conn
        .client
        .simple_query(&text)
        .await
        .map_err(|e| internal("tenant read", e))?;
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("null")),
            _ => None,
        })
        .map(decode_row)
        .collect::<AppResult<Vec<M>>>()
        .map(Some)
}

/// Appends the statement that sets the tenant for the rest of the transaction (row-level
/// security reads it). A tenant ID is a UUID: its text is safe between quotes.
fn set_tenant(out: &mut String, tenant: TenantId) {
    use std::fmt::Write as _;
    let _ = write!(out, "SET LOCAL app.tenant_id = '{tenant}';");
}

/// `query` wrapped to answer each row as one JSON text (see the module docs).
fn json_rows(query: &SelectStatement) -> (String, Vec<Value>) {
    let (sql, values) = query.build(PostgresQueryBuilder);
    (
        format!("SELECT row_to_json(t)::text FROM ({sql}) AS t"),
        values.0,
    )
}

fn decode_row<M: serde::de::DeserializeOwned>(json: &str) -> AppResult<M> {
    serde_json::from_str(json).map_err(|e| internal("decoding a row", e))
}

/// Appends `EXECUTE name(args);`.
fn write_execute(out: &mut String, name: &str, args: &str) {
    out.push_str("EXECUTE ");
    out.push_str(name);
    if !args.is_empty() {
        out.push('(');
        out.push_str(args);
        out.push(')');
    }
    out.push(';');
}

/// `values` as the argument list of an `EXECUTE`; `None` when one has no literal here.
fn literals(values: &[Value]) -> Option<String> {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_literal(&mut out, value)?;
    }
    Some(out)
}

/// A value as an SQL literal: `NULL`, or its text form as an escape string (`E'…'`, where only
/// backslash and quote are special, whatever `standard_conforming_strings` says). PostgreSQL
/// gives the literal the type of the prepared statement's parameter and reads it with that
/// type's input function, so a value that does not fit the parameter is refused there, as a
/// bound one would be. `None` for kinds this path does not send, and for text with NUL, which
/// PostgreSQL cannot hold.
fn write_literal(out: &mut String, value: &Value) -> Option<()> {
    let text = match value {
        Value::Bool(b) => b.map(|b| b.to_string()),
        Value::SmallInt(n) => n.map(|n| n.to_string()),
        Value::Int(n) => n.map(|n| n.to_string()),
        Value::BigInt(n) => n.map(|n| n.to_string()),
        Value::SmallUnsigned(n) => n.map(|n| n.to_string()),
        Value::Unsigned(n) => n.map(|n| n.to_string()),
        Value::BigUnsigned(n) => n.map(|n| n.to_string()),
        Value::Uuid(u) => u.map(|u| u.to_string()),
        Value::String(s) => s.clone(),
        // Microseconds (PostgreSQL's resolution), truncated as the binary encoding does.
        Value::ChronoDateTimeUtc(t) => {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        Value::Json(j) => j.as_deref().map(serde_json::Value::to_string),
        _ => return None,
    };
    let Some(text) = text else {
        out.push_str("NULL");
        return Some(());
    };
    if text.contains('\0') {
        return None;
    }
    out.reserve(text.len() + 3);
    out.push_str("E'");
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    Some(())
}

/// One statement of a [`Txn`] flight.
pub enum Step {
    /// A SELECT (SQL and values); its rows come back as JSON text, one per row (see
    /// [`Answer::decode`]).
    Rows(String, Vec<Value>),
    /// An INSERT, UPDATE or DELETE; its answer is how many rows it touched.
    Write(String, Vec<Value>),
}

impl Step {
    pub fn rows<E: sea_orm::EntityTrait>(select: sea_orm::Select<E>) -> Self {
        use sea_orm::QueryTrait as _;
        Self::select(&select.into_query())
    }

    pub fn select(query: &SelectStatement) -> Self {
        let (sql, values) = json_rows(query);
        Self::Rows(sql, values)
    }

    pub fn write(statement: &impl sea_orm::sea_query::QueryStatementWriter) -> Self {
        let (sql, values) = statement.build(PostgresQueryBuilder);
        Self::Write(sql, values.0)
    }
}

/// The answer to a [`Step`].
pub enum Answer {
    Rows(Vec<String>),
    Written(u64),
}

impl Answer {
    /// The rows of a [`Step::Rows`] decoded as `M`.
    pub fn decode<M: serde::de::DeserializeOwned>(&self) -> AppResult<Vec<M>> {
        match self {
            Self::Rows(rows) => rows.iter().map(|json| decode_row(json)).collect(),
            Self::Written(_) => Err(AppError::internal(
                "pipelined transaction",
                anyhow::anyhow!("a write has no rows"),
            )),
        }
    }

    /// How many rows a [`Step::Write`] touched (0 for a SELECT: it writes none).
    pub fn written(&self) -> u64 {
        match self {
            Self::Written(n) => *n,
            Self::Rows(_) => 0,
        }
    }

    /// The answers of a flight of `N` steps, one binding each.
    pub fn exactly<const N: usize>(answers: Vec<Self>) -> AppResult<[Self; N]> {
        answers.try_into().map_err(|got: Vec<Self>| {
            AppError::internal(
                "pipelined transaction",
                anyhow::anyhow!("{N} answers expected, {} came", got.len()),
            )
        })
    }
}

/// A tenant transaction whose statements go out in *flights*: each flight is one
/// simple-protocol message of `EXECUTE`s, so its statements leave together and come back
/// together, one round trip and one answer however many they are. The first flight carries
/// BEGIN and the tenant setting; [`Txn::commit`] carries the last steps and COMMIT. A
/// transaction dropped before its commit is rolled back (the ROLLBACK is queued on the
/// connection before it returns to the pool, so the next borrower never sees it open).
///
/// Statements of one flight run one after the other in PostgreSQL, each (READ COMMITTED) with a
/// fresh snapshot: a read after a `FOR UPDATE` in the same flight sees what the lock's previous
/// holder committed. A failing statement ends the flight: those after it do not run.
pub struct Txn {
    conn: Option<Object>,
    /// Set transaction-locally in the first flight (none: only shared rows are visible).
    tenant: Option<TenantId>,
    begun: bool,
}

impl Txn {
    pub async fn new(pool: &Pool, tenant: Option<TenantId>) -> AppResult<Self> {
        let conn = pool
            .get()
            .await
            .map_err(|e| internal("pipelined transaction pool", e))?;
        Ok(Self {
            conn: Some(conn),
            tenant,
            begun: false,
        })
    }

    /// Sends `steps` in one flight and answers each in order.
    pub async fn flight(&mut self, steps: Vec<Step>) -> AppResult<Vec<Answer>> {
        self.send(steps, false).await
    }

    /// Sends `steps` and COMMIT in one flight.
    pub async fn commit(mut self, steps: Vec<Step>) -> AppResult<Vec<Answer>> {
        let answers = self.send(steps, true).await?;
        // Committed: nothing to roll back; the connection goes back to the pool.
        self.conn = None;
        Ok(answers)
    }

    async fn send(&mut self, steps: Vec<Step>, commit: bool) -> AppResult<Vec<Answer>> {
        let conn = self.conn.as_mut().ok_or_else(|| {
            AppError::internal("pipelined transaction", anyhow::anyhow!("already ended"))
        })?;
        let mut text = String::new();
        // Statements before the steps: their answers are not the caller's.
        let mut before = 0;
        if !self.begun {
            text.push_str("BEGIN;");
            before += 1;
            if let Some(tenant) = self.tenant {
                set_tenant(&mut text, tenant);
                before += 1;
            }
        }
        let mut answers = Vec::with_capacity(steps.len());
        for step in &steps {
            let (Step::Rows(sql, values) | Step::Write(sql, values)) = step;
            let args = literals(values).ok_or_else(|| {
                AppError::internal(
                    "pipelined transaction",
                    anyhow::anyhow!("a value of a kind this path does not send: {sql}"),
                )
            })?;
            write_execute(&mut text, conn.prepared(sql).await?, &args);
            answers.push(match step {
                Step::Rows(..) => Answer::Rows(Vec::new()),
                Step::Write(..) => Answer::Written(0),
            });
        }
        if commit {
            text.push_str("COMMIT;");
        }
        // Set before the flight leaves: one that fails half-way still needs its ROLLBACK.
        self.begun = true;
        let messages = conn
            .client
            .simple_query(&text)
            .await
            .map_err(|e| internal("pipelined transaction", e))?;
        // Each statement answers its rows, then its completion.
        let mut statement = 0_usize;
        for message in messages {
            let answer = statement
                .checked_sub(before)
                .and_then(|i| answers.get_mut(i));
            match (message, answer) {
                (SimpleQueryMessage::Row(row), Some(Answer::Rows(rows))) => {
                    rows.push(row.get(0).unwrap_or("null").to_owned());
                }
                (SimpleQueryMessage::CommandComplete(n), answer) => {
                    if let Some(Answer::Written(written)) = answer {
                        *written = n;
                    }
                    statement += 1;
                }
                _ => {}
            }
        }
        let sent = before + steps.len() + usize::from(commit);
        if statement != sent {
            return Err(AppError::internal(
                "pipelined transaction",
                anyhow::anyhow!("{sent} statements sent, {statement} answered"),
            ));
        }
        Ok(answers)
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.begun {
            return;
        }
        // Queued now (the request leaves on the task's first poll, before the connection can be
        // borrowed again: it returns to the pool only when this task drops it).
        tokio::spawn(async move {
            if let Err(e) = conn.client.batch_execute("ROLLBACK").await {
                tracing::warn!(error = %e, "rolling back a pipelined transaction");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;

    use super::*;

    fn literal(value: &Value) -> String {
        let mut out = String::new();
        write_literal(&mut out, value).expect("a literal");
        out
    }

    #[test]
    fn values_become_escape_string_literals() {
        assert_eq!(literal(&Value::String(Some("it's".into()))), r"E'it\'s'");
        assert_eq!(literal(&Value::String(Some(r"a\'b".into()))), r"E'a\\\'b'");
        assert_eq!(literal(&Value::String(None)), "NULL");
        assert_eq!(literal(&Value::BigInt(Some(-21))), "E'-21'");
        assert_eq!(literal(&Value::Bool(Some(true))), "E'true'");
        assert_eq!(
            literal(&Value::Json(Some(Box::new(
                serde_json::json!({"a": "b'c"})
            )))),
            r#"E'{"a":"b\'c"}'"#
        );
        // PostgreSQL text cannot hold NUL: no literal (the read takes the sea-orm path).
        assert!(write_literal(&mut String::new(), &Value::String(Some("a\0b".into()))).is_none());
    }

    /// What PostgreSQL reads from a literal is exactly the value, whatever the text holds
    /// (quotes, backslashes, `$$`, comment and statement syntax, any Unicode): on the real
    /// server when the PostgreSQL tests run.
    #[tokio::test]
    async fn postgres_reads_back_exactly_the_value_of_every_literal() {
        let Ok(url) = std::env::var("AMTSPLATZ_TEST_DATABASE_URL") else {
            eprintln!("skipped: AMTSPLATZ_TEST_DATABASE_URL is not set");
            return;
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connecting to PostgreSQL");
        tokio::spawn(connection);
        let strings = prop_oneof![
            "\\PC{0,40}",
            "[\\\\'\"$;\\-/* ]{0,20}",
            Just(r"\'; SELECT 1; --".to_owned()),
            Just(r"E'\\'".to_owned()),
        ]
        .prop_filter("no NUL", |s| !s.contains('\0'));
        let mut runner = TestRunner::default();
        for _ in 0..256 {
            let s = strings.new_tree(&mut runner).unwrap().current();
            let text = format!("SELECT {}::text", literal(&Value::String(Some(s.clone()))));
            let rows = client.simple_query(&text).await.expect(&text);
            let got: Vec<&str> = rows
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0),
                    _ => None,
                })
                .collect();
            assert_eq!(got, [s.as_str()], "{text}");
        }
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:13:46.679819+00:00")
            .unwrap()
            .to_utc();
        let typed = [
            (
                Value::ChronoDateTimeUtc(Some(t)),
                "timestamptz",
                "2026-11-27 09:13:46.679819+00",
            ),
            (
                Value::BigInt(Some(i64::MIN)),
                "int8",
                "-9223372036854775808",
            ),
            (
                Value::Uuid(Some(uuid::Uuid::nil())),
                "uuid",
                "00000000-0000-0000-0000-000000000000",
            ),
            (
                Value::Json(Some(Box::new(serde_json::json!({"k": "v\\'"})))),
                "jsonb",
                r#"{"k": "v\\'"}"#,
            ),
            (Value::Bool(Some(false)), "bool", "f"),
        ];
        for (value, ty, want) in typed {
            let text = format!("SET TIME ZONE 'UTC'; SELECT {}::{ty}", literal(&value));
            let rows = client.simple_query(&text).await.expect(&text);
            let got = rows.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0),
                _ => None,
            });
            assert_eq!(got, Some(want), "{text}");
        }
    }
}
