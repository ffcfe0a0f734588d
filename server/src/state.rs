//! Application state shared by all requests. No process-global state: each [`AppState`] is
//! independent, so tests run many servers in one process.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::oidc::OidcVerifier;
use crate::auth::rate_limit::LoginLimiter;
use crate::auth::tokens::JwtKeys;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::tenancy::cache::TenantCache;

#[derive(Clone, Debug)]
pub struct AppState {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The request pool (PostgreSQL: acts as the non-owner role `amtsplatz_app`).
    pub db: crate::db::Db,
    /// Our ES256 signing key and verifier.
    pub keys: Arc<JwtKeys>,
    /// Citizens' ID-token verifier with its JWKS cache.
    pub oidc: Arc<OidcVerifier>,
    /// The portal's side of citizen sign-in (discovery, code exchange).
    pub oidc_login: Arc<crate::auth::oidc_login::OidcLogin>,
    /// Whether access tokens' sessions still stand, cached briefly.
    pub sessions: Arc<crate::auth::sessions::SessionCache>,
    /// Login attempt limits.
    pub login_limiter: Arc<LoginLimiter>,
    /// Citizens' drafts and submissions per client IP.
    pub write_limiter: Arc<crate::auth::rate_limit::IpLimiter>,
    /// Prometheus metrics of this server.
    pub metrics: Arc<Metrics>,
    /// The tenant directory, cached for a few seconds.
    pub tenants: Arc<TenantCache>,
    /// Pages of each tenant's department list, cached for a few seconds.
    pub department_pages: Arc<crate::tenancy::department_pages::DepartmentPages>,
    /// Marketplace pages, cached for a few seconds.
    pub marketplace_pages: Arc<crate::marketplace::pages::MarketplacePages>,
    /// Service revisions that applications were submitted against, parsed once.
    pub pinned: Arc<crate::applications::pinned::PinnedCache>,
    /// Status changes for live subscribers (across replicas on PostgreSQL).
    pub live: crate::applications::live::StatusHub,
    /// Wakes the outbox worker after a commit that queued mail.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Object storage of attachments.
    pub store: Arc<dyn crate::storage::ObjectStore>,
    /// Booking limits, challenges and reminders.
    pub appointments: Arc<crate::appointments::Appointments>,
    /// Payment providers (on site; Stripe when configured) and the key sealing webhook secrets.
    pub payments: Arc<crate::payments::Payments>,
    /// The FIT-Connect routing API client (`fit_connect.routing_api`).
    pub fit_connect_routing: Arc<crate::fitconnect::routing::RoutingClient>,
    /// The FIT-Connect Submission API client (`fit_connect.submission_api`, `token_url`).
    pub fit_connect: Arc<crate::fitconnect::client::SubmissionClient>,
    /// The local storage backend when it is the configured one (its presigned URLs are routes of
    /// this server); `None` on S3.
    pub local_store: Option<Arc<crate::storage::LocalFs>>,
}

/// The client's IP address, attached to GraphQL requests for rate limiting.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);
