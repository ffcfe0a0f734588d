//! The request-wide DataLoaders: nested lists load in one batch per level (no N+1), and every
//! batch is counted in the metrics by key type, so `/metrics` shows how many queries a page cost.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};

use crate::error::AppResult;
use crate::metrics::Metrics;

/// A request's DataLoader around `T` (see [`request_loader`]).
pub type RequestLoader<T> = DataLoader<Counted<T>>;

/// A loader whose batches are counted.
pub struct Counted<T> {
    fetch: T,
    metrics: Arc<Metrics>,
}

impl<K, T> Loader<K> for Counted<T>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    T: Loader<K>,
{
    type Value = T::Value;
    type Error = T::Error;

    async fn load(&self, keys: &[K]) -> Result<HashMap<K, T::Value>, T::Error> {
        self.metrics.observe_batch(key_name::<K>(), keys.len());
        self.fetch.load(keys).await
    }
}

/// `VersionsOf` for `amtsplatz::marketplace::graphql::VersionsOf`.
fn key_name<K>() -> &'static str {
    let full = std::any::type_name::<K>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A DataLoader that fetches as soon as the resolvers that asked have yielded, instead of
/// sleeping 1 ms (async-graphql's default) on every batch. Batching is not lost: actix runs each
/// worker on a single-threaded runtime, so the spawned fetch runs only after the executor has
/// polled every sibling resolver of a list, and each registers its key on that first poll.
pub fn new<T: Send + Sync + 'static>(fetch: T, metrics: &Arc<Metrics>) -> RequestLoader<T> {
    DataLoader::new(
        Counted {
            fetch,
            metrics: metrics.clone(),
        },
        tokio::spawn,
    )
    .delay(std::time::Duration::ZERO)
}

/// The request's DataLoaders, each made on first use: most requests use none or one of them.
pub struct Loaders {
    db: crate::db::Db,
    metrics: Arc<Metrics>,
    /// The tenant the request is for (the marketplace shows it its private templates).
    viewer: Option<crate::ids::TenantId>,
    tenancy: OnceLock<RequestLoader<crate::tenancy::loader::TenancyLoader>>,
    marketplace: OnceLock<RequestLoader<crate::marketplace::graphql::MarketplaceLoader>>,
    services: OnceLock<RequestLoader<crate::services::graphql::ServicesLoader>>,
    applications: OnceLock<RequestLoader<crate::applications::graphql::ApplicationsLoader>>,
}

impl Loaders {
    pub fn new(
        db: &crate::db::Db,
        metrics: &Arc<Metrics>,
        viewer: Option<crate::ids::TenantId>,
    ) -> Self {
        Self {
            db: db.clone(),
            metrics: metrics.clone(),
            viewer,
            tenancy: OnceLock::new(),
            marketplace: OnceLock::new(),
            services: OnceLock::new(),
            applications: OnceLock::new(),
        }
    }
}

/// A loader that [`Loaders`] makes on first use.
pub trait Lazy: Sized + Send + Sync + 'static {
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>>;
    fn make(loaders: &Loaders) -> Self;
}

impl Lazy for crate::tenancy::loader::TenancyLoader {
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>> {
        &loaders.tenancy
    }
    fn make(loaders: &Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

impl Lazy for crate::marketplace::graphql::MarketplaceLoader {
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>> {
        &loaders.marketplace
    }
    fn make(loaders: &Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
            viewer: loaders.viewer,
        }
    }
}

impl Lazy for crate::services::graphql::ServicesLoader {
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>> {
        &loaders.services
    }
    fn make(loaders: &Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

impl Lazy for crate::applications::graphql::ApplicationsLoader {
    fn slot(loaders: &Loaders) -> &OnceLock<RequestLoader<Self>> {
        &loaders.applications
    }
    fn make(loaders: &Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

/// The request's DataLoader around `T`.
pub fn request_loader<'a, T: Lazy>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<T>> {
    let loaders = super::state::<Loaders>(ctx)?;
    Ok(T::slot(loaders).get_or_init(|| new(T::make(loaders), &loaders.metrics)))
}
