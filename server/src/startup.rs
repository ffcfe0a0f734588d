//! `Application::build(settings)`: what `server serve` runs and what every test starts.
//! Migrates, bootstraps the platform admin, applies tenant files, binds (port 0 works).

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service as _};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use futures_util::FutureExt as _;
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use crate::auth::oidc::OidcVerifier;
use crate::auth::rate_limit::LoginLimiter;
use crate::auth::tokens::JwtKeys;
use crate::graphql::CheckedSchema;
use crate::http::AmtsplatzRootSpan;
use crate::metrics::Metrics;
use crate::routes::routes;
use crate::schema::build_schema;
use crate::settings::{DEMO_PLATFORM_ADMIN, Settings};
use crate::state::AppState;
use crate::tenancy::onboarding::{self, Mode, Outcome, PasswordSpec};

/// A demo login to print at start.
#[derive(Debug, Clone)]
pub struct DemoLogin {
    pub tenant: Option<String>,
    pub email: String,
    pub password: String,
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    demo_logins: Vec<DemoLogin>,
    mailer: Arc<crate::messaging::outbox::Mailer>,
    /// The outbox worker's connection (its own role on PostgreSQL).
    outbox_db: sea_orm::DatabaseConnection,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let owner = crate::db::connect_owner(&settings).await?;
        if settings.database.migrate_on_start {
            crate::db::migrate(&owner).await?;
        }
        let db = crate::db::Db::new(crate::db::connect_app(&settings, &owner).await?);
        let outbox_db = crate::messaging::outbox::connect_worker(&settings, db.orm()).await?;
        if settings.is_postgres() {
            // Requests never run as the owner; nothing else needs the owner pool.
            owner.close().await.context("closing the owner pool")?;
        }

        let mut demo_logins = Vec::new();
        if let Some(admin) = &settings.platform_admin {
            crate::auth::service::bootstrap_platform_admin(
                &db,
                &admin.email,
                &admin.display_name,
                admin.password.expose_secret().to_owned(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating the platform administrator: {e}"))?;
        }
        if settings.demo_enabled() {
            let (email, password) = DEMO_PLATFORM_ADMIN;
            crate::auth::service::bootstrap_platform_admin(
                &db,
                email,
                "Demo platform administrator",
                password.to_owned(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating the demo platform administrator: {e}"))?;
            demo_logins.push(DemoLogin {
                tenant: None,
                email: email.into(),
                password: password.into(),
            });
        }
        if let Some(dir) = settings.tenants_dir.as_ref().filter(|d| d.is_dir()) {
            let specs = onboarding::load_dir(dir)?;
            for spec in &specs {
                apply_with_retry(&db, spec)
                    .await
                    .with_context(|| format!("applying tenant {}", spec.slug))?;
                if settings.demo_enabled() {
                    for s in &spec.staff {
                        if let PasswordSpec::Plain(p) = &s.password {
                            demo_logins.push(DemoLogin {
                                tenant: Some(spec.slug.to_string()),
                                email: s.email.to_string(),
                                password: p.clone(),
                            });
                        }
                    }
                }
            }
            for line in crate::tenancy::onboarding::apply_all(&db, dir, &specs).await? {
                tracing::info!(onboarding = %line, "marketplace onboarding");
            }
        }

        let keys = JwtKeys::load_or_generate(&settings.signing_key_path(), &settings.auth)?;
        let (store, local_store) = crate::storage::from_settings(&settings)?;
        let mailer = Arc::new(crate::messaging::outbox::Mailer::from_settings(
            &settings.mail,
        )?);
        let appointments = Arc::new(crate::appointments::Appointments::new(
            &settings.appointments,
            keys.derive_key("amtsplatz/booking-challenge/v1"),
        )?);
        let payments = Arc::new(crate::payments::Payments::new(&settings)?);
        let state = AppState {
            store,
            pinned: Arc::default(),
            live: crate::applications::live::StatusHub::new(settings.is_postgres()),
            outbox_wake: Arc::default(),
            appointments,
            payments,
            fit_connect_routing: Arc::new(crate::fitconnect::routing::RoutingClient::new(
                &settings.fit_connect.routing_api,
                std::time::Duration::from_secs(settings.fit_connect.timeout_secs),
            )?),
            fit_connect: Arc::new(crate::fitconnect::client::SubmissionClient::new(
                &settings.fit_connect.submission_api,
                &settings.fit_connect.token_url,
                std::time::Duration::from_secs(settings.fit_connect.timeout_secs),
            )?),
            local_store,
            oidc: Arc::new(OidcVerifier::new(
                settings.auth.oidc_allow_http,
                std::time::Duration::from_secs(settings.auth.jwks_refetch_cooldown_secs),
            )?),
            oidc_login: Arc::new(crate::auth::oidc_login::OidcLogin::new(
                settings.auth.oidc_allow_http,
            )?),
            sessions: Arc::default(),
            login_limiter: Arc::new(LoginLimiter::new(&settings.auth)),
            write_limiter: Arc::new(crate::auth::rate_limit::IpLimiter::per_minute(
                "writes-ip",
                settings.applications.writes_per_ip_per_minute,
            )),
            metrics: Arc::new(Metrics::new()?),
            tenants: Arc::new(Default::default()),
            department_pages: Arc::default(),
            marketplace_pages: Arc::default(),
            keys: Arc::new(keys),
            db,
            settings: Arc::new(settings),
        };
        let schema = CheckedSchema::new(
            || {
                build_schema(&state.settings.graphql)
                    .data(state.clone())
                    .data(state.db.clone())
            },
            &state.settings.graphql,
        );

        let listener =
            TcpListener::bind(state.settings.bind_addr()?).context("binding the listen address")?;
        let port = listener.local_addr()?.port();
        let shutdown_timeout = state.settings.shutdown_timeout_secs;
        let workers = state
            .settings
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1);
        let server = {
            let state = state.clone();
            HttpServer::new(move || {
                let metrics = state.metrics.clone();
                App::new()
                    .wrap_fn(move |req, srv| {
                        let metrics = metrics.clone();
                        let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                        srv.call(req).map(move |res| {
                            if let Ok(res) = &res {
                                metrics.observe_http(&route, res.status().as_u16());
                            }
                            res
                        })
                    })
                    .wrap(TracingLogger::<AmtsplatzRootSpan>::new())
                    .app_data(web::Data::new(state.clone()))
                    .app_data(web::Data::new(schema.clone()))
                    .configure(routes)
            })
            // No Nagle delay: a compressed page leaves in several writes, and the second waited
            // for the client's delayed ACK (~40 ms per response on a kept-alive connection).
            .on_connect(|conn, _| {
                if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    let _ = tcp.set_nodelay(true);
                }
            })
            .shutdown_timeout(shutdown_timeout)
            .workers(workers)
            .listen(listener)?
            .run()
        };
        Ok(Self {
            port,
            server,
            state,
            demo_logins,
            mailer,
            outbox_db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn demo_logins(&self) -> &[DemoLogin] {
        &self.demo_logins
    }

    /// Serves until SIGTERM/SIGINT, then drains requests in flight (graceful shutdown), and
    /// stops the background workers: the outbox worker finishes the batch it is sending.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let settings = &self.state.settings;
        let fit_connect = crate::fitconnect::sender::Sender::new(
            self.state.clone(),
            self.state.fit_connect.clone(),
        );
        let worker = tokio::spawn(crate::messaging::outbox::run_worker(
            self.outbox_db.clone(),
            self.mailer.clone(),
            vec![Arc::new(fit_connect) as Arc<dyn crate::messaging::outbox::Courier>],
            crate::messaging::outbox::WorkerConfig {
                poll_interval: std::time::Duration::from_millis(settings.mail.poll_interval_ms),
                retry_base: std::time::Duration::from_secs(settings.mail.retry_base_secs),
                max_attempts: settings.mail.max_attempts,
                lease: std::time::Duration::from_secs(120),
                batch: 20,
            },
            self.state.outbox_wake.clone(),
            stop_rx.clone(),
        ));
        let sweeper = tokio::spawn(crate::attachments::sweeper::run(
            self.state.clone(),
            settings.storage.clone(),
            stop_rx.clone(),
        ));
        let housekeeping = tokio::spawn(crate::appointments::housekeeping::run(
            self.state.db.orm().clone(),
            std::time::Duration::from_secs(settings.storage.sweep_interval_secs),
            stop_rx.clone(),
        ));
        let listener = settings.is_postgres().then(|| {
            // Session invalidations reach the other replicas through pg_notify.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.state.sessions.announce_to(tx);
            tokio::spawn(crate::auth::sessions::announce(
                self.state.db.orm().clone(),
                rx,
                stop_rx.clone(),
            ));
            tokio::spawn(crate::applications::live::listen(
                self.state.live.clone(),
                self.state.sessions.clone(),
                settings.database_url(),
                stop_rx,
            ))
        });
        let served = self.server.await;
        let _ = stop_tx.send(true);
        let _ = worker.await;
        let _ = sweeper.await;
        let _ = housekeeping.await;
        if let Some(l) = listener {
            let _ = l.await;
        }
        served
    }
}

/// Two replicas starting at once may race to create the same tenant; the loser retries once
/// and then finds it existing.
async fn apply_with_retry(
    db: &sea_orm::DatabaseConnection,
    spec: &onboarding::TenantSpec,
) -> anyhow::Result<Outcome> {
    match onboarding::apply(db, spec, "system:onboarding", Mode::Upsert).await {
        Ok(applied) => Ok(applied.outcome),
        Err(crate::error::AppError::Conflict { .. }) => {
            onboarding::apply(db, spec, "system:onboarding", Mode::Upsert)
                .await
                .map(|a| a.outcome)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}
