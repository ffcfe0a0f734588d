//! Typed, layered settings: defaults < config file < environment.
//!
//! The config file is `$AMTSPLATZ_CONFIG`, else `./amtsplatz.toml` if it exists. Every field can be
//! set from the environment as `AMTSPLATZ_<SECTION>__<FIELD>` (e.g. `AMTSPLATZ_AUTH__ISSUER`);
//! top-level fields as `AMTSPLATZ_<FIELD>` (`AMTSPLATZ_BIND`); the database URL also as `DATABASE_URL`.
//! With nothing configured the server runs the embedded default: SQLite under `./data/`, demo on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod fit_connect;
pub use fit_connect::FitConnectSettings;

/// A setting that failed to load or validate, naming the setting and how to set it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Whether `url` is an absolute http(s) URL (the APIs the server calls).
fn http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn bad(key: &str, env: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("`{key}` (environment variable {env}): {why}"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `AMTSPLATZ_BIND`: address to listen on; port 0 picks a free one.
    pub bind: String,
    /// `AMTSPLATZ_DATA_DIR`: folder for the SQLite file, local objects and the generated signing key.
    pub data_dir: PathBuf,
    /// `AMTSPLATZ_TENANTS_DIR`: tenant onboarding files applied at start (skipped if the folder is missing).
    pub tenants_dir: Option<PathBuf>,
    /// `AMTSPLATZ_BASE_DOMAIN`: with `example.org`, requests to `musterstadt.example.org` go to tenant `musterstadt`.
    pub base_domain: Option<String>,
    /// `AMTSPLATZ_DEMO`: create the demo platform admin and print demo logins. Default: on for SQLite only.
    pub demo: Option<bool>,
    /// `AMTSPLATZ_LOG_FORMAT`: `json` or `text`. Unset: text when standard output is a terminal,
    /// JSON lines otherwise ([`crate::telemetry::choose`]).
    pub log_format: Option<LogFormat>,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub graphql: GraphqlSettings,
    pub mail: MailSettings,
    pub applications: ApplicationSettings,
    pub appointments: AppointmentSettings,
    pub payments: PaymentSettings,
    pub storage: StorageSettings,
    pub fit_connect: FitConnectSettings,
    /// `AMTSPLATZ_PLATFORM_ADMIN__EMAIL` / `__PASSWORD`: bootstrap a platform administrator at start
    /// (created once; an existing account is left as it is).
    pub platform_admin: Option<PlatformAdminSettings>,
    /// `AMTSPLATZ_SHUTDOWN_TIMEOUT_SECS`: how long a SIGTERM waits for requests in flight.
    pub shutdown_timeout_secs: u64,
    /// `AMTSPLATZ_WORKERS`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` / `AMTSPLATZ_DATABASE__URL`: `sqlite://…` or `postgres://…` (the owner; runs migrations).
    /// Default: `sqlite://<data_dir>/amtsplatz.db`.
    pub url: Option<SecretString>,
    /// `AMTSPLATZ_DATABASE__APP_URL`: PostgreSQL login for requests. Default: the owner URL acting as
    /// role `amtsplatz_app` (connection option `role=`), so requests never run as the owner.
    pub app_url: Option<SecretString>,
    /// `AMTSPLATZ_DATABASE__MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `AMTSPLATZ_DATABASE__MIGRATE_ON_START`: apply pending migrations before serving.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `AMTSPLATZ_AUTH__ISSUER`: `iss` of the access tokens we sign.
    pub issuer: String,
    /// `AMTSPLATZ_AUTH__AUDIENCE`: `aud` of the access tokens we sign and accept.
    pub audience: String,
    /// `AMTSPLATZ_AUTH__ACCESS_TOKEN_TTL_SECS`.
    pub access_token_ttl_secs: u64,
    /// `AMTSPLATZ_AUTH__REFRESH_TOKEN_TTL_SECS`.
    pub refresh_token_ttl_secs: u64,
    /// `AMTSPLATZ_AUTH__SIGNING_KEY_FILE`: ES256 private key (PKCS#8 PEM). Default:
    /// `<data_dir>/jwt-es256.pem`, generated on first start.
    pub signing_key_file: Option<PathBuf>,
    /// `AMTSPLATZ_AUTH__LOGIN_PER_IP_PER_MINUTE`.
    pub login_per_ip_per_minute: u32,
    /// `AMTSPLATZ_AUTH__LOGIN_PER_ACCOUNT_PER_MINUTE`.
    pub login_per_account_per_minute: u32,
    /// `AMTSPLATZ_AUTH__TRUST_FORWARDED_FOR`: take the client IP from `X-Forwarded-For` (behind a proxy).
    pub trust_forwarded_for: bool,
    /// `AMTSPLATZ_AUTH__OIDC_ALLOW_HTTP`: allow `http://` JWKS URLs on loopback (development, tests).
    pub oidc_allow_http: bool,
    /// `AMTSPLATZ_AUTH__JWKS_REFETCH_COOLDOWN_SECS`: an unknown `kid` refetches the provider's keys
    /// at most this often (key rotation works; made-up kids cannot flood the provider).
    pub jwks_refetch_cooldown_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlSettings {
    /// `AMTSPLATZ_GRAPHQL__MAX_DEPTH`.
    pub max_depth: usize,
    /// `AMTSPLATZ_GRAPHQL__MAX_COMPLEXITY`.
    pub max_complexity: usize,
    /// `AMTSPLATZ_GRAPHQL__MAX_ALIASES`.
    pub max_aliases: usize,
    /// `AMTSPLATZ_GRAPHQL__MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `AMTSPLATZ_GRAPHQL__QUERY_BUDGET_MS`: time one query operation may take before it is
    /// refused (`VALIDATION_FAILED`); mutations are not cut short.
    pub query_budget_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplicationSettings {
    /// `AMTSPLATZ_APPLICATIONS__WRITES_PER_IP_PER_MINUTE`: drafts saved plus applications
    /// submitted per client IP and minute (citizens may be anonymous; this keeps spam out).
    pub writes_per_ip_per_minute: u32,
}

impl Default for ApplicationSettings {
    fn default() -> Self {
        Self {
            writes_per_ip_per_minute: 120,
        }
    }
}

/// Booking appointments: abuse limits, reminders, challenges.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppointmentSettings {
    /// `AMTSPLATZ_APPOINTMENTS__BOOKINGS_PER_IP_PER_MINUTE`: bookings, holds and moves per client
    /// IP and minute.
    pub bookings_per_ip_per_minute: u32,
    /// `AMTSPLATZ_APPOINTMENTS__BOOKINGS_PER_CONTACT_PER_HOUR`: bookings per contact email and hour.
    pub bookings_per_contact_per_hour: u32,
    /// `AMTSPLATZ_APPOINTMENTS__REMINDER_HOURS_BEFORE`: the reminder mail goes out this long
    /// before the appointment (none when the booking is made later than that).
    pub reminder_hours_before: u32,
    /// `AMTSPLATZ_APPOINTMENTS__CHALLENGE_TTL_SECS`: how long a booking challenge may be solved.
    pub challenge_ttl_secs: u32,
}

impl Default for AppointmentSettings {
    fn default() -> Self {
        Self {
            bookings_per_ip_per_minute: 20,
            bookings_per_contact_per_hour: 10,
            reminder_hours_before: 24,
            challenge_ttl_secs: 600,
        }
    }
}

/// Paying fees: Stripe (the platform's account; tenants charge on their connected accounts) and
/// webhook handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// `AMTSPLATZ_PAYMENTS__STRIPE_SECRET_KEY`: the platform's Stripe secret key (`sk_…`).
    /// Without it online payment is off (on-site payment always works).
    pub stripe_secret_key: Option<SecretString>,
    /// `AMTSPLATZ_PAYMENTS__STRIPE_API_BASE`: Stripe's API (a local fake in tests).
    pub stripe_api_base: String,
    /// `AMTSPLATZ_PAYMENTS__SECRETS_KEY_FILE`: key that seals tenants' webhook secrets in the
    /// database (generated if missing). Default: `<data_dir>/payment-secrets.key`.
    pub secrets_key_file: Option<PathBuf>,
    /// `AMTSPLATZ_PAYMENTS__WEBHOOK_TOLERANCE_SECS`: how old a signed webhook may be.
    pub webhook_tolerance_secs: u64,
    /// `AMTSPLATZ_PAYMENTS__CHECKOUT_EXPIRY_MINUTES`: how long a Checkout Session stays open
    /// (Stripe allows 30 to 1440).
    pub checkout_expiry_minutes: u32,
    /// `AMTSPLATZ_PAYMENTS__PROVIDER_TIMEOUT_SECS`: longest wait for the provider's API.
    pub provider_timeout_secs: u64,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_api_base: "https://api.stripe.com/".into(),
            secrets_key_file: None,
            webhook_tolerance_secs: 300,
            checkout_expiry_minutes: 60,
            provider_timeout_secs: 20,
        }
    }
}

/// Object storage of attachments: local files (default) or S3 when `storage.s3` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `AMTSPLATZ_STORAGE__LOCAL_DIR`: folder of the local backend. Default: `<data_dir>/objects`.
    pub local_dir: Option<PathBuf>,
    /// `AMTSPLATZ_STORAGE__PUBLIC_URL`: base of the local backend's presigned URLs (e.g.
    /// `https://amtsplatz.example.org`). Default: the origin the client called.
    pub public_url: Option<String>,
    /// `AMTSPLATZ_STORAGE__URL_SIGNING_KEY_FILE`: HMAC key of the local backend's URLs (shared by
    /// replicas). Default: `<data_dir>/storage-url.key`, generated on first start.
    pub url_signing_key_file: Option<PathBuf>,
    /// `AMTSPLATZ_STORAGE__S3__*`: use S3 (or an S3-compatible server) instead of local files.
    pub s3: Option<S3Settings>,
    /// `AMTSPLATZ_STORAGE__MAX_FILE_BYTES`: no file is ever larger, whatever a service allows.
    pub max_file_bytes: u64,
    /// `AMTSPLATZ_STORAGE__MULTIPART_MAX_BYTES`: largest file sent inline through GraphQL
    /// multipart (`uploadAttachment`); larger ones go through `requestUpload`.
    pub multipart_max_bytes: u64,
    /// `AMTSPLATZ_STORAGE__UPLOAD_URL_TTL_SECS`: how long a presigned upload URL is valid.
    pub upload_url_ttl_secs: u64,
    /// `AMTSPLATZ_STORAGE__DOWNLOAD_URL_TTL_SECS`: how long a presigned download URL is valid.
    pub download_url_ttl_secs: u64,
    /// `AMTSPLATZ_STORAGE__ABANDONED_DRAFT_FILES_AFTER_HOURS`: files of drafts untouched this
    /// long are deleted.
    pub abandoned_draft_files_after_hours: u64,
    /// `AMTSPLATZ_STORAGE__ORPHAN_GRACE_SECS`: an object no attachment names is deleted once it is
    /// this old (younger ones may belong to an upload still being committed).
    pub orphan_grace_secs: u64,
    /// `AMTSPLATZ_STORAGE__SWEEP_INTERVAL_SECS`: how often the sweeper reconciles storage.
    pub sweep_interval_secs: u64,
    /// `AMTSPLATZ_STORAGE__SCAN_COMMAND`: virus scanner run on every file, the file's path
    /// appended (e.g. `["clamdscan", "--no-summary", "--fdpass"]`); exit 0 clean, 1 infected.
    /// Unset: files are not scanned (`scanStatus: SKIPPED`).
    pub scan_command: Option<Vec<String>>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            local_dir: None,
            public_url: None,
            url_signing_key_file: None,
            s3: None,
            max_file_bytes: 256 * 1024 * 1024,
            multipart_max_bytes: 10 * 1024 * 1024,
            upload_url_ttl_secs: 900,
            download_url_ttl_secs: 300,
            abandoned_draft_files_after_hours: 14 * 24,
            orphan_grace_secs: 3600,
            sweep_interval_secs: 600,
            scan_command: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `AMTSPLATZ_STORAGE__S3__BUCKET`.
    pub bucket: String,
    /// `AMTSPLATZ_STORAGE__S3__REGION` (default `eu-central-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// `AMTSPLATZ_STORAGE__S3__ENDPOINT`: for S3-compatible servers, e.g. `http://minio:9000`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `AMTSPLATZ_STORAGE__S3__PATH_STYLE`: `host/bucket/key` instead of `bucket.host/key`.
    #[serde(default)]
    pub path_style: bool,
    /// `AMTSPLATZ_STORAGE__S3__ACCESS_KEY` / `__SECRET_KEY`.
    #[serde(default)]
    pub access_key: Option<SecretString>,
    #[serde(default)]
    pub secret_key: Option<SecretString>,
}

fn default_region() -> String {
    "eu-central-1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `AMTSPLATZ_MAIL__SMTP_URL`: e.g. `smtps://user:password@mail.example.org` or
    /// `smtp://127.0.0.1:2525` (no TLS). Unset: notifications are written to the log.
    pub smtp_url: Option<SecretString>,
    /// `AMTSPLATZ_MAIL__FROM`: sender of notifications.
    pub from: String,
    /// `AMTSPLATZ_MAIL__POLL_INTERVAL_MS`: how often the outbox worker looks for due mail.
    pub poll_interval_ms: u64,
    /// `AMTSPLATZ_MAIL__RETRY_BASE_SECS`: first retry delay; doubles per attempt (at most an hour).
    pub retry_base_secs: u64,
    /// `AMTSPLATZ_MAIL__MAX_ATTEMPTS`: attempts before a mail is marked failed.
    pub max_attempts: i32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Amtsplatz <noreply@amtsplatz.example>".into(),
            poll_interval_ms: 2_000,
            retry_base_secs: 30,
            max_attempts: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformAdminSettings {
    pub email: String,
    pub password: SecretString,
    #[serde(default = "default_admin_name")]
    pub display_name: String,
}

fn default_admin_name() -> String {
    "Platform administrator".into()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            tenants_dir: Some(PathBuf::from("tenants")),
            base_domain: None,
            demo: None,
            log_format: None,
            database: DatabaseSettings::default(),
            auth: AuthSettings::default(),
            graphql: GraphqlSettings::default(),
            mail: MailSettings::default(),
            applications: ApplicationSettings::default(),
            appointments: AppointmentSettings::default(),
            payments: PaymentSettings::default(),
            storage: StorageSettings::default(),
            fit_connect: FitConnectSettings::default(),
            platform_admin: None,
            shutdown_timeout_secs: 30,
            workers: None,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            app_url: None,
            max_connections: 16,
            migrate_on_start: true,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "amtsplatz".into(),
            audience: "amtsplatz-api".into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            signing_key_file: None,
            login_per_ip_per_minute: 30,
            login_per_account_per_minute: 5,
            trust_forwarded_for: false,
            oidc_allow_http: false,
            jwks_refetch_cooldown_secs: 30,
        }
    }
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 1000,
            max_aliases: 30,
            max_body_bytes: 1024 * 1024,
            query_budget_ms: 10_000,
        }
    }
}

/// `AMTSPLATZ_*` variables that are not settings: the config file path and the test/CI variables,
/// which a developer may well have exported while starting the server.
const NOT_SETTINGS: &[&str] = &[
    "CONFIG",
    "TEST_DATABASE_URL",
    "CI_POSTGRES_URL",
    "REQUIRE_BACKUP_TOOLS",
];

/// The demo platform administrator of the embedded default.
pub const DEMO_PLATFORM_ADMIN: (&str, &str) = ("platform@amtsplatz.example", "amtsplatz-demo");

impl Settings {
    /// Loads defaults < config file < environment and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match std::env::var_os("AMTSPLATZ_CONFIG") {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(bad(
                        "config file",
                        "AMTSPLATZ_CONFIG",
                        format!("{} does not exist", path.display()),
                    ));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new("amtsplatz.toml").is_file() => {
                figment = figment.merge(Toml::file_exact("amtsplatz.toml"));
            }
            None => {}
        }
        figment = figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::prefixed("AMTSPLATZ_").ignore(NOT_SETTINGS).split("__"));
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError(explain_figment(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: addresses, URLs, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        let url = self.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(bad(
                "database.url",
                "DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(bad(
                "database.max_connections",
                "AMTSPLATZ_DATABASE__MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if !(30..=86_400).contains(&self.auth.access_token_ttl_secs) {
            return Err(bad(
                "auth.access_token_ttl_secs",
                "AMTSPLATZ_AUTH__ACCESS_TOKEN_TTL_SECS",
                "must be between 30 and 86400 seconds",
            ));
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return Err(bad(
                "auth.refresh_token_ttl_secs",
                "AMTSPLATZ_AUTH__REFRESH_TOKEN_TTL_SECS",
                "must not be shorter than the access token lifetime",
            ));
        }
        if self.auth.issuer.trim().is_empty() || self.auth.audience.trim().is_empty() {
            return Err(bad(
                "auth.issuer / auth.audience",
                "AMTSPLATZ_AUTH__ISSUER",
                "must not be empty",
            ));
        }
        if self.auth.login_per_ip_per_minute == 0 || self.auth.login_per_account_per_minute == 0 {
            return Err(bad(
                "auth.login_per_*_per_minute",
                "AMTSPLATZ_AUTH__LOGIN_PER_ACCOUNT_PER_MINUTE",
                "must be at least 1",
            ));
        }
        let g = &self.graphql;
        if g.max_depth == 0
            || g.max_complexity == 0
            || g.max_aliases == 0
            || g.max_body_bytes < 1024
            || g.query_budget_ms == 0
        {
            return Err(bad(
                "graphql.*",
                "AMTSPLATZ_GRAPHQL__MAX_DEPTH",
                "limits must be positive (body at least 1024 bytes)",
            ));
        }
        if self.applications.writes_per_ip_per_minute == 0 {
            return Err(bad(
                "applications.writes_per_ip_per_minute",
                "AMTSPLATZ_APPLICATIONS__WRITES_PER_IP_PER_MINUTE",
                "must be at least 1",
            ));
        }
        let a = &self.appointments;
        if a.bookings_per_ip_per_minute == 0 || a.bookings_per_contact_per_hour == 0 {
            return Err(bad(
                "appointments.bookings_per_*",
                "AMTSPLATZ_APPOINTMENTS__BOOKINGS_PER_IP_PER_MINUTE",
                "must be at least 1",
            ));
        }
        if !(1..=24 * 30).contains(&a.reminder_hours_before) {
            return Err(bad(
                "appointments.reminder_hours_before",
                "AMTSPLATZ_APPOINTMENTS__REMINDER_HOURS_BEFORE",
                "must be between 1 and 720",
            ));
        }
        if !(10..=86_400).contains(&a.challenge_ttl_secs) {
            return Err(bad(
                "appointments.challenge_ttl_secs",
                "AMTSPLATZ_APPOINTMENTS__CHALLENGE_TTL_SECS",
                "must be between 10 and 86400",
            ));
        }
        self.validate_payments()?;
        self.fit_connect.validate()?;
        if self.mail.poll_interval_ms == 0 || self.mail.max_attempts < 1 {
            return Err(bad(
                "mail.poll_interval_ms / mail.max_attempts",
                "AMTSPLATZ_MAIL__POLL_INTERVAL_MS",
                "must be at least 1",
            ));
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(bad(
                "mail.from",
                "AMTSPLATZ_MAIL__FROM",
                "must be an email address, optionally with a name: `Name <a@b.example>`",
            ));
        }
        self.validate_storage()?;
        if let Some(admin) = &self.platform_admin {
            if !admin.email.contains('@') {
                return Err(bad(
                    "platform_admin.email",
                    "AMTSPLATZ_PLATFORM_ADMIN__EMAIL",
                    "is not an email address",
                ));
            }
            if admin.password.expose_secret().len() < 12 {
                return Err(bad(
                    "platform_admin.password",
                    "AMTSPLATZ_PLATFORM_ADMIN__PASSWORD",
                    "must have at least 12 characters",
                ));
            }
        }
        Ok(())
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let p = &self.payments;
        if !http_url(&p.stripe_api_base) {
            return Err(bad(
                "payments.stripe_api_base",
                "AMTSPLATZ_PAYMENTS__STRIPE_API_BASE",
                "must be an http(s) URL",
            ));
        }
        if let Some(key) = &p.stripe_secret_key
            && !(key.expose_secret().starts_with("sk_") || key.expose_secret().starts_with("rk_"))
        {
            return Err(bad(
                "payments.stripe_secret_key",
                "AMTSPLATZ_PAYMENTS__STRIPE_SECRET_KEY",
                "must be a Stripe secret or restricted key (`sk_…`, `rk_…`)",
            ));
        }
        if !(30..=1440).contains(&p.checkout_expiry_minutes) {
            return Err(bad(
                "payments.checkout_expiry_minutes",
                "AMTSPLATZ_PAYMENTS__CHECKOUT_EXPIRY_MINUTES",
                "must be between 30 and 1440 (Stripe's limits)",
            ));
        }
        if !(1..=3600).contains(&p.webhook_tolerance_secs)
            || !(1..=300).contains(&p.provider_timeout_secs)
        {
            return Err(bad(
                "payments.webhook_tolerance_secs / payments.provider_timeout_secs",
                "AMTSPLATZ_PAYMENTS__WEBHOOK_TOLERANCE_SECS",
                "must be 1 to 3600 and 1 to 300 seconds",
            ));
        }
        Ok(())
    }

    fn validate_storage(&self) -> Result<(), ConfigError> {
        let st = &self.storage;
        if st.max_file_bytes == 0 || st.multipart_max_bytes == 0 {
            return Err(bad(
                "storage.max_file_bytes / storage.multipart_max_bytes",
                "AMTSPLATZ_STORAGE__MAX_FILE_BYTES",
                "must be at least 1",
            ));
        }
        if !(1..=7 * 24 * 3600).contains(&st.upload_url_ttl_secs)
            || !(1..=7 * 24 * 3600).contains(&st.download_url_ttl_secs)
        {
            return Err(bad(
                "storage.*_url_ttl_secs",
                "AMTSPLATZ_STORAGE__UPLOAD_URL_TTL_SECS",
                "must be between 1 second and 7 days",
            ));
        }
        if st.sweep_interval_secs == 0 {
            return Err(bad(
                "storage.sweep_interval_secs",
                "AMTSPLATZ_STORAGE__SWEEP_INTERVAL_SECS",
                "must be at least 1",
            ));
        }
        if let Some(url) = &st.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad(
                "storage.public_url",
                "AMTSPLATZ_STORAGE__PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }
        if st.scan_command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(bad(
                "storage.scan_command",
                "AMTSPLATZ_STORAGE__SCAN_COMMAND",
                "name a program, e.g. [\"clamdscan\", \"--no-summary\"]",
            ));
        }
        if let Some(s3) = &st.s3 {
            let name_ok = (3..=63).contains(&s3.bucket.len())
                && s3
                    .bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !name_ok {
                return Err(bad(
                    "storage.s3.bucket",
                    "AMTSPLATZ_STORAGE__S3__BUCKET",
                    "must be an S3 bucket name (3-63 lowercase letters, digits, '-' or '.')",
                ));
            }
            if s3.access_key.is_some() != s3.secret_key.is_some() {
                return Err(bad(
                    "storage.s3.access_key / secret_key",
                    "AMTSPLATZ_STORAGE__S3__SECRET_KEY",
                    "set both or neither",
                ));
            }
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind.parse().map_err(|e| {
            bad(
                "bind",
                "AMTSPLATZ_BIND",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080 ({e})",
                    self.bind
                ),
            )
        })
    }

    /// The owner database URL, defaulting to the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("amtsplatz.db").display()
            ),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url().starts_with("postgres")
    }

    /// Demo mode: on by default for the embedded SQLite setup only.
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or(!self.is_postgres())
    }

    pub fn payment_secrets_key_path(&self) -> PathBuf {
        self.payments
            .secrets_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("payment-secrets.key"))
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.auth
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("jwt-es256.pem"))
    }
}

/// Figment names the key and the source; we add the environment variable that sets it.
fn explain_figment(err: figment::Error) -> String {
    let mut out = Vec::new();
    for e in err {
        let path = e.path.join(".");
        if path.is_empty() {
            out.push(e.to_string());
        } else {
            let env = format!(
                "AMTSPLATZ_{}",
                e.path
                    .iter()
                    .map(|p| p.to_uppercase())
                    .collect::<Vec<_>>()
                    .join("__")
            );
            out.push(format!("`{path}` (environment variable {env}): {}", e.kind));
        }
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::default();
        s.validate().expect("defaults validate");
        assert!(s.database_url().starts_with("sqlite://"));
        assert!(s.demo_enabled());
        assert_eq!(s.bind_addr().expect("bind").port(), 8080);
    }

    #[test]
    fn a_bad_bind_address_names_the_variable() {
        let s = Settings {
            bind: "localhost".into(),
            ..Settings::default()
        };
        let err = s.validate().expect_err("must fail").to_string();
        assert!(err.contains("AMTSPLATZ_BIND"), "{err}");
    }

    #[test]
    fn postgres_turns_demo_off_by_default() {
        let mut s = Settings::default();
        s.database.url = Some(SecretString::from("postgres://u@h/db"));
        assert!(!s.demo_enabled());
    }
}
