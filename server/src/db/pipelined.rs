//! Tenant reads and transactions on PostgreSQL in one round trip each.
//!
//! Row-level security needs `app.tenant_id` set transaction-locally before the SELECT. Through
//! sea-orm (sqlx) a tenant read is BEGIN, `set_config(…, true)`, the SELECT and COMMIT, each
//! sent and awaited on its own. Here a tenant read is one batch of the extended query protocol:
//! Bind and Execute of `SELECT set_config('app.tenant_id', $1, true)`, Bind and Execute of the
//! SELECT, then one Sync. PostgreSQL runs everything before a Sync as one implicit transaction,
//! so the setting holds for the SELECT and is gone when the batch ends. Both statements are
//! parsed once per connection (under names of ours), so nothing is parsed or planned again, and
//! values are bound as text, which PostgreSQL reads with the input function of each parameter's
//! type.
//!
//! tokio-postgres cannot send such a batch (each of its queries carries its own Sync, so each is
//! a transaction of its own), and it runs every connection behind a task that requests reach
//! through channels. A [`Conn`] here is a socket that the request borrowing it writes and reads
//! itself; messages are encoded and decoded by `postgres-protocol`, tokio-postgres's own codec.
//! pgbench, departments page, 16 clients, same machine and run: the SET LOCAL + EXECUTE message
//! this replaces 19.0–22.5k reads/s, the prepared SELECT alone (no tenant setting) 30.7–32.9k.
//!
//! Rows come back as one JSON text per row (`row_to_json`) and are deserialized into the entity
//! model, which keeps this path generic over entities without a second row mapping.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::LazyLock;

use bytes::{BufMut as _, BytesMut};
use fallible_iterator::FallibleIterator as _;
use migration::{APP_ROLE, TENANT_SETTING};
use postgres_protocol::IsNull;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement, Value};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::settings::Settings;

pub type Pool = deadpool::managed::Pool<ConnManager>;
type Object = deadpool::managed::Object<ConnManager>;

/// What went wrong on a [`Conn`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("PostgreSQL connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("PostgreSQL {code}: {message}")]
    Db { code: String, message: String },
    #[error("PostgreSQL protocol: {0}")]
    Protocol(String),
}

impl WireError {
    fn db(body: &ErrorResponseBody) -> Self {
        let (mut code, mut message) = (String::new(), String::new());
        let mut fields = body.fields();
        while let Ok(Some(field)) = fields.next() {
            match field.type_() {
                b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
                _ => {}
            }
        }
        Self::Db { code, message }
    }
}

trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// A connection of the pool: its socket, the statements parsed on it, and whether it may be
/// lent again.
pub struct Conn {
    socket: Box<dyn Socket>,
    read: BytesMut,
    write: BytesMut,
    /// Statements parsed on this connection, SQL to name.
    prepared: HashMap<String, String>,
    /// Names are never reused, so a statement whose Parse did not run is simply parsed again
    /// under a new one.
    next_name: u64,
    /// False from the moment a batch is written until its ReadyForQuery is read: a connection
    /// whose batch was interrupted (the request was dropped, the socket failed) still has
    /// answers coming and is never lent again.
    ready: bool,
    /// The transaction status of the last ReadyForQuery: `I` idle, `T` in a transaction block,
    /// `E` in a failed one. Only idle connections go back to the pool.
    status: u8,
}

/// What one statement of a batch answered: the first column of its rows as text, and the row
/// count of its command tag.
#[derive(Default)]
struct Outcome {
    rows: Vec<String>,
    count: u64,
}

/// How many statements a connection keeps parsed before it deallocates them all (the SQL of a
/// read varies with the length of its `IN` lists).
const MAX_PREPARED: usize = 512;

/// The statement that sets the tenant until the end of the transaction.
static SET_TENANT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT set_config('{TENANT_SETTING}', $1, true)"));

impl Conn {
    async fn connect(config: &tokio_postgres::Config) -> Result<Self, WireError> {
        use tokio_postgres::config::Host;
        let ports = config.get_ports();
        let mut failed = None;
        for (i, host) in config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let socket: std::io::Result<Box<dyn Socket>> = match host {
                Host::Tcp(name) => tokio::net::TcpStream::connect((name.as_str(), port))
                    .await
                    .and_then(|s| {
                        // Batches are written whole: waiting to coalesce them only adds latency.
                        s.set_nodelay(true)?;
                        Ok(Box::new(s) as Box<dyn Socket>)
                    }),
                #[cfg(unix)]
                Host::Unix(dir) => {
                    tokio::net::UnixStream::connect(dir.join(format!(".s.PGSQL.{port}")))
                        .await
                        .map(|s| Box::new(s) as Box<dyn Socket>)
                }
            };
            match socket {
                Ok(socket) => return Self::start(socket, config).await,
                Err(e) => failed = Some(e),
            }
        }
        Err(failed.map_or_else(
            || WireError::Protocol("the database URL names no host".into()),
            WireError::Io,
        ))
    }

    /// Startup, authentication, and the server's parameters up to its first ReadyForQuery.
    async fn start(
        socket: Box<dyn Socket>,
        config: &tokio_postgres::Config,
    ) -> Result<Self, WireError> {
        let mut conn = Self {
            socket,
            read: BytesMut::with_capacity(8 * 1024),
            write: BytesMut::with_capacity(1024),
            prepared: HashMap::new(),
            next_name: 0,
            ready: false,
            status: 0,
        };
        let user = config
            .get_user()
            .ok_or_else(|| WireError::Protocol("the database URL names no user".into()))?;
        let mut params = vec![("client_encoding", "UTF8"), ("user", user)];
        if let Some(db) = config.get_dbname() {
            params.push(("database", db));
        }
        if let Some(options) = config.get_options() {
            params.push(("options", options));
        }
        if let Some(name) = config.get_application_name() {
            params.push(("application_name", name));
        }
        frontend::startup_message(params, &mut conn.write)?;
        conn.send().await?;
        conn.authenticate(config.get_password(), user).await?;
        loop {
            match conn.next().await? {
                Message::ReadyForQuery(body) => {
                    conn.status = body.status();
                    conn.ready = true;
                    return Ok(conn);
                }
                Message::ErrorResponse(body) => return Err(WireError::db(&body)),
                _ => {}
            }
        }
    }

    /// Trust, cleartext, MD5 and SCRAM-SHA-256 (without channel binding: this connection has
    /// no TLS to bind to).
    async fn authenticate(&mut self, password: Option<&[u8]>, user: &str) -> Result<(), WireError> {
        let password = || {
            password.ok_or_else(|| {
                WireError::Protocol("the server asks for a password the database URL lacks".into())
            })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.next().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?, &mut self.write)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = false;
                    while let Some(m) = mechanisms.next()? {
                        offered |= m == sasl::SCRAM_SHA_256;
                    }
                    if !offered {
                        return Err(WireError::Protocol("no supported SASL mechanism".into()));
                    }
                    let s =
                        sasl::ScramSha256::new(password()?, sasl::ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        s.message(),
                        &mut self.write,
                    )?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| unexpected("SASL continue"))?;
                    s.update(body.data())?;
                    frontend::sasl_response(s.message(), &mut self.write)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| unexpected("SASL final"))?;
                    s.finish(body.data())?;
                    continue;
                }
                Message::ErrorResponse(body) => return Err(WireError::db(&body)),
                _ => {
                    return Err(WireError::Protocol(
                        "unsupported authentication method".into(),
                    ));
                }
            }
            self.send().await?;
        }
    }

    async fn send(&mut self) -> Result<(), WireError> {
        self.socket.write_all(&self.write).await?;
        self.write.clear();
        Ok(())
    }

    async fn next(&mut self) -> Result<Message, WireError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read)? {
                return Ok(message);
            }
            if self.socket.read_buf(&mut self.read).await? == 0 {
                return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Sends one simple-protocol statement and reads its answer (statements of our own, such
    /// as `ROLLBACK`).
    async fn simple(&mut self, sql: &str) -> Result<(), WireError> {
        frontend::query(sql, &mut self.write)?;
        self.ready = false;
        self.send().await?;
        let mut error = None;
        loop {
            match self.next().await? {
                Message::ErrorResponse(body) => error = error.or(Some(WireError::db(&body))),
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    self.ready = true;
                    return error.map_or(Ok(()), Err);
                }
                _ => {}
            }
        }
    }

    /// Sends `statements` (SQL and values as text, `None` for NULL) and one Sync, and answers
    /// each. Statements new to the connection are parsed in the same batch. A failing statement
    /// ends the batch: PostgreSQL skips the rest up to the Sync.
    async fn batch(
        &mut self,
        statements: &[(&str, Vec<Option<String>>)],
    ) -> Result<Vec<Outcome>, WireError> {
        if self.prepared.len() + statements.len() > MAX_PREPARED {
            self.simple("DEALLOCATE ALL").await?;
            self.prepared.clear();
        }
        let mut parsed = Vec::new();
        for (sql, params) in statements {
            if !self.prepared.contains_key(*sql) {
                let name = format!("amtsplatz_{}", self.next_name);
                self.next_name += 1;
                frontend::parse(&name, sql, [], &mut self.write)?;
                parsed.push(*sql);
                self.prepared.insert((*sql).to_owned(), name);
            }
            let name = &self.prepared[*sql];
            frontend::bind(
                "",
                name,
                [], // every value as text
                params,
                |value, buf| {
                    Ok(match value {
                        Some(text) => {
                            buf.put_slice(text.as_bytes());
                            IsNull::No
                        }
                        None => IsNull::Yes,
                    })
                },
                [], // every column as text
                &mut self.write,
            )
            .map_err(|e| match e {
                frontend::BindError::Conversion(e) => {
                    WireError::Protocol(format!("binding a value: {e}"))
                }
                frontend::BindError::Serialization(e) => WireError::Io(e),
            })?;
            frontend::execute("", 0, &mut self.write)?;
        }
        frontend::sync(&mut self.write);
        self.ready = false;
        self.send().await?;

        let mut outcomes = Vec::with_capacity(statements.len());
        let mut current = Outcome::default();
        let (mut parses, mut error) = (0, None);
        loop {
            match self.next().await? {
                Message::ParseComplete => parses += 1,
                Message::DataRow(row) => {
                    let first = row.ranges().next()?.flatten();
                    current.rows.push(match first {
                        Some(range) => std::str::from_utf8(&row.buffer()[range])
                            .map_err(|e| WireError::Protocol(format!("a row is not UTF-8: {e}")))?
                            .to_owned(),
                        None => "null".to_owned(),
                    });
                }
                Message::CommandComplete(body) => {
                    current.count = body
                        .tag()?
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    outcomes.push(std::mem::take(&mut current));
                }
                Message::EmptyQueryResponse => outcomes.push(std::mem::take(&mut current)),
                Message::ErrorResponse(body) => error = error.or(Some(WireError::db(&body))),
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    self.ready = true;
                    break;
                }
                Message::BindComplete
                | Message::NoData
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                _ => return Err(unexpected("message in a batch's answer")),
            }
        }
        // The Parses that ran were answered in order; those after an error did not run.
        for sql in parsed.into_iter().skip(parses) {
            self.prepared.remove(sql);
        }
        if let Some(e) = error {
            return Err(e);
        }
        if outcomes.len() != statements.len() {
            return Err(WireError::Protocol(format!(
                "{} statements sent, {} answered",
                statements.len(),
                outcomes.len()
            )));
        }
        Ok(outcomes)
    }
}

fn unexpected(what: &str) -> WireError {
    WireError::Protocol(format!("unexpected {what}"))
}

/// Makes [`Conn`]s for the pool; lends one again only when it is idle with nothing in flight.
pub struct ConnManager(tokio_postgres::Config);

impl deadpool::managed::Manager for ConnManager {
    type Type = Conn;
    type Error = WireError;

    async fn create(&self) -> Result<Conn, WireError> {
        match self.0.get_connect_timeout() {
            Some(limit) => tokio::time::timeout(*limit, Conn::connect(&self.0))
                .await
                .map_err(|_| WireError::Protocol("connecting timed out".into()))?,
            None => Conn::connect(&self.0).await,
        }
    }

    async fn recycle(
        &self,
        conn: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<WireError> {
        if conn.ready && conn.status == b'I' {
            Ok(())
        } else {
            Err(deadpool::managed::RecycleError::Message(
                "interrupted, or left inside a transaction".into(),
            ))
        }
    }
}

/// A pool of the request role, or `None` when the URL requires TLS or channel binding (this
/// pool speaks neither; the sea-orm path serves those deployments).
pub fn pool(settings: &Settings) -> anyhow::Result<Option<Pool>> {
    let mut config = match &settings.database.app_url {
        Some(url) => tokio_postgres::Config::from_str(url.expose_secret())?,
        None => {
            let mut c = tokio_postgres::Config::from_str(&settings.database_url())?;
            c.options(format!("-c role={APP_ROLE}"));
            c
        }
    };
    use tokio_postgres::config::{ChannelBinding, SslMode};
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer)
        || config.get_channel_binding() == ChannelBinding::Require
    {
        return Ok(None);
    }
    if config.get_user().is_none() {
        return Ok(None);
    }
    config.application_name("amtsplatz-reads");
    let pool = Pool::builder(ConnManager(config))
        .max_size(settings.database.max_connections as usize)
        .build()?;
    Ok(Some(pool))
}

fn internal(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::internal(what, anyhow::Error::new(e))
}

/// Runs one batch on `conn`: BEGIN first when `begin`, then the tenant setting when there is a
/// tenant, the steps, and COMMIT when `commit`; answers the steps.
async fn run(
    conn: &mut Conn,
    begin: bool,
    tenant: Option<TenantId>,
    steps: &[Step],
    commit: bool,
) -> AppResult<Vec<Answer>> {
    let mut statements = prologue(begin, tenant, steps.len() + 1);
    let before = statements.len();
    for step in steps {
        let (Step::Rows(sql, values) | Step::Write(sql, values)) = step;
        let params = texts(values).ok_or_else(|| {
            AppError::internal(
                "pipelined transaction",
                anyhow::anyhow!("a value of a kind this path does not send: {sql}"),
            )
        })?;
        statements.push((sql, params));
    }
    if commit {
        statements.push(("COMMIT", Vec::new()));
    }
    let outcomes = conn
        .batch(&statements)
        .await
        .map_err(|e| internal("pipelined statements", e))?;
    Ok(outcomes
        .into_iter()
        .skip(before)
        .zip(steps)
        .map(|(outcome, step)| match step {
            Step::Rows(..) => Answer::Rows(outcome.rows),
            Step::Write(..) => Answer::Written(outcome.count),
        })
        .collect())
}

/// Runs `query` for `tenant` (or with no tenant set: only shared rows are visible) in one
/// batch (see the module docs); `None` when a bound value is of a kind this path does not
/// send (the caller then takes the sea-orm path).
pub async fn read<M: serde::de::DeserializeOwned>(
    pool: &Pool,
    tenant: Option<TenantId>,
    query: &SelectStatement,
) -> AppResult<Option<Vec<M>>> {
    let (sql, values) = json_rows(query);
    let Some(params) = texts(&values) else {
        return Ok(None);
    };
    let mut conn = pool
        .get()
        .await
        .map_err(|e| internal("pipelined read pool", e))?;
    let mut statements = prologue(false, tenant, 1);
    statements.push((&sql, params));
    let outcome = conn
        .batch(&statements)
        .await
        .map_err(|e| internal("tenant read", e))?
        .pop()
        .unwrap_or_default();
    outcome
        .rows
        .iter()
        .map(|json| decode_row(json))
        .collect::<AppResult<_>>()
        .map(Some)
}

/// The statements before a batch's own, with room for `more`: BEGIN when `begin`, then the
/// tenant setting when there is a tenant.
fn prologue(
    begin: bool,
    tenant: Option<TenantId>,
    more: usize,
) -> Vec<(&'static str, Vec<Option<String>>)> {
    let mut statements = Vec::with_capacity(more + 2);
    if begin {
        statements.push(("BEGIN", Vec::new()));
    }
    if let Some(tenant) = tenant {
        statements.push((SET_TENANT.as_str(), vec![Some(tenant.to_string())]));
    }
    statements
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

/// `values` as text (`None` for NULL); `None` when one has no text here.
fn texts(values: &[Value]) -> Option<Vec<Option<String>>> {
    values.iter().map(text_of).collect()
}

/// A value in its text form, which PostgreSQL reads with the input function of the parameter's
/// type, so a value that does not fit the parameter is refused there as a binary one would be.
/// `Some(None)` is NULL; `None` for kinds this path does not send, and for text with NUL, which
/// PostgreSQL cannot hold.
fn text_of(value: &Value) -> Option<Option<String>> {
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
    if text.as_deref().is_some_and(|t| t.contains('\0')) {
        return None;
    }
    Some(text)
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

/// A tenant transaction whose statements go out in *flights*: each flight is one batch (see
/// the module docs), so its statements leave together and come back together, one round trip
/// however many they are. The first flight carries BEGIN and the tenant setting;
/// [`Txn::commit`] carries the last steps and COMMIT. A transaction dropped before its commit
/// is rolled back before its connection returns to the pool (the pool lends only idle
/// connections, so the next borrower never sees it open).
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
        let begin = !self.begun;
        // Set before the flight leaves: one that fails half-way still needs its ROLLBACK.
        self.begun = true;
        let tenant = if begin { self.tenant } else { None };
        run(conn, begin, tenant, &steps, commit).await
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // Never begun: the connection is idle. Interrupted mid-flight: answers are still coming,
        // so nothing can be sent; the pool will not lend it again and closing it ends the
        // transaction in PostgreSQL.
        if !self.begun || !conn.ready {
            return;
        }
        // Returned to the pool only once rolled back.
        tokio::spawn(async move {
            if let Err(e) = conn.simple("ROLLBACK").await {
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

    fn text(value: &Value) -> Option<String> {
        text_of(value).expect("a value with a text form")
    }

    #[test]
    fn values_are_bound_in_their_text_form() {
        assert_eq!(
            text(&Value::String(Some("it's".into()))).as_deref(),
            Some("it's")
        );
        assert_eq!(text(&Value::String(None)), None);
        assert_eq!(text(&Value::BigInt(Some(-21))).as_deref(), Some("-21"));
        assert_eq!(text(&Value::Bool(Some(true))).as_deref(), Some("true"));
        assert_eq!(
            text(&Value::Json(Some(Box::new(
                serde_json::json!({"a": "b'c"})
            ))))
            .as_deref(),
            Some(r#"{"a":"b'c"}"#)
        );
        // PostgreSQL text cannot hold NUL, and floats are not sent here: no text form (the read
        // takes the sea-orm path).
        assert!(text_of(&Value::String(Some("a\0b".into()))).is_none());
        assert!(text_of(&Value::Double(Some(1.5))).is_none());
    }

    /// A connection to the test database when the PostgreSQL tests run.
    async fn connection() -> Option<(Conn, tokio_postgres::Config)> {
        let Ok(url) = std::env::var("AMTSPLATZ_TEST_DATABASE_URL") else {
            eprintln!("skipped: AMTSPLATZ_TEST_DATABASE_URL is not set");
            return None;
        };
        let config = tokio_postgres::Config::from_str(&url).expect("a database URL");
        let conn = Conn::connect(&config)
            .await
            .expect("connecting to PostgreSQL");
        Some((conn, config))
    }

    fn rows(outcomes: &[Outcome]) -> Vec<Vec<&str>> {
        outcomes
            .iter()
            .map(|o| o.rows.iter().map(String::as_str).collect())
            .collect()
    }

    /// What PostgreSQL reads from a value bound as text is exactly the value, whatever the text
    /// holds (quotes, backslashes, `$$`, comment and statement syntax, any Unicode).
    #[tokio::test]
    async fn postgres_reads_back_exactly_the_value_bound_as_text() {
        let Some((mut conn, _)) = connection().await else {
            return;
        };
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
            let value = text(&Value::String(Some(s.clone())));
            let got = conn
                .batch(&[("SELECT $1::text", vec![value])])
                .await
                .unwrap();
            assert_eq!(rows(&got), [[s.as_str()]]);
        }
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:13:46.679819+00:00")
            .unwrap()
            .to_utc();
        conn.simple("SET TIME ZONE 'UTC'").await.unwrap();
        let typed = [
            (
                Value::ChronoDateTimeUtc(Some(t)),
                "SELECT $1::timestamptz::text",
                "2026-11-27 09:13:46.679819+00",
            ),
            (
                Value::BigInt(Some(i64::MIN)),
                "SELECT $1::int8::text",
                "-9223372036854775808",
            ),
            (
                Value::Uuid(Some(uuid::Uuid::nil())),
                "SELECT $1::uuid::text",
                "00000000-0000-0000-0000-000000000000",
            ),
            (
                Value::Json(Some(Box::new(serde_json::json!({"k": "v\\'"})))),
                "SELECT $1::jsonb::text",
                r#"{"k": "v\\'"}"#,
            ),
            (Value::Bool(Some(false)), "SELECT $1::bool::text", "false"),
            (
                Value::String(None),
                "SELECT coalesce($1::text, 'NULL')",
                "NULL",
            ),
        ];
        for (value, sql, want) in typed {
            let got = conn.batch(&[(sql, vec![text(&value)])]).await.unwrap();
            assert_eq!(rows(&got), [[want]], "{sql}");
        }
    }

    /// A failing statement ends its batch. Statements parsed before it stay prepared; one whose
    /// Parse was skipped is parsed again next time; the connection is idle and goes on working.
    #[tokio::test]
    async fn a_failed_batch_leaves_the_connection_idle_and_consistent() {
        let Some((mut conn, _)) = connection().await else {
            return;
        };
        let (before, failing, after) = (
            "SELECT 'a'::text",
            "SELECT (1 / $1::int)::text",
            "SELECT 'c'::text",
        );
        let err = conn
            .batch(&[
                (before, vec![]),
                (failing, vec![Some("0".into())]),
                (after, vec![]),
            ])
            .await
            .err();
        assert!(
            matches!(&err, Some(WireError::Db { code, .. }) if code == "22012"),
            "{err:?}"
        );
        assert!(conn.prepared.contains_key(before) && conn.prepared.contains_key(failing));
        assert!(!conn.prepared.contains_key(after));
        assert!(conn.ready && conn.status == b'I');
        let got = conn
            .batch(&[
                (after, vec![]),
                (before, vec![]),
                (failing, vec![Some("1".into())]),
            ])
            .await
            .unwrap();
        assert_eq!(rows(&got), [["c"], ["a"], ["1"]]);
    }

    /// The tenant is set for its batch only: the next batch on the connection sees none.
    #[tokio::test]
    async fn the_tenant_setting_ends_with_its_batch() {
        let Some((mut conn, _)) = connection().await else {
            return;
        };
        let step = Step::Rows(
            format!("SELECT coalesce(current_setting('{TENANT_SETTING}', true), '')"),
            Vec::new(),
        );
        let tenant = TenantId::new();
        let read = |answers: Vec<Answer>| match answers.as_slice() {
            [Answer::Rows(rows)] => rows.clone(),
            _ => panic!("one answer with rows expected"),
        };
        let set = run(
            &mut conn,
            false,
            Some(tenant),
            std::slice::from_ref(&step),
            false,
        )
        .await
        .unwrap();
        assert_eq!(read(set), [tenant.to_string()]);
        let unset = run(&mut conn, false, None, std::slice::from_ref(&step), false)
            .await
            .unwrap();
        assert_eq!(read(unset), [String::new()]);
    }

    /// A batch dropped before its answer came leaves a connection the pool does not lend
    /// again; one left inside a transaction neither.
    #[tokio::test]
    async fn interrupted_or_open_connections_are_not_lent_again() {
        use deadpool::managed::Manager as _;
        let Some((mut conn, config)) = connection().await else {
            return;
        };
        let manager = ConnManager(config);
        let metrics = deadpool::managed::Metrics::default();
        assert!(manager.recycle(&mut conn, &metrics).await.is_ok());
        conn.simple("BEGIN").await.unwrap();
        assert!(manager.recycle(&mut conn, &metrics).await.is_err());
        conn.simple("ROLLBACK").await.unwrap();
        assert!(manager.recycle(&mut conn, &metrics).await.is_ok());
        let interrupted = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            conn.batch(&[("SELECT pg_sleep(2)::text", vec![])]),
        )
        .await;
        assert!(interrupted.is_err(), "the sleep should outlast the timeout");
        assert!(manager.recycle(&mut conn, &metrics).await.is_err());
    }
}
