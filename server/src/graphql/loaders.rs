//! The request-wide DataLoaders: nested lists load in one batch per level (no N+1), and every
//! batch is counted in the metrics by key type, so `/metrics` shows how many queries a page cost.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};

use crate::error::{AppError, AppResult};
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
/// Held by type, so this module names no domain's loader: each domain says how its loader is
/// made ([`Lazy`]) beside the loader.
pub struct Loaders {
    pub db: crate::db::Db,
    metrics: Arc<Metrics>,
    /// The tenant the request is for (the marketplace shows it its private templates).
    pub viewer: Option<crate::ids::TenantId>,
    /// Append-only: a slot, once filled, holds its loader for the whole request, so loaders are
    /// handed out by reference.
    slots: [OnceLock<(TypeId, Box<dyn Any + Send + Sync>)>; LOADER_TYPES_MAX],
}

/// More than the domains have loaders.
const LOADER_TYPES_MAX: usize = 8;

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
            slots: Default::default(),
        }
    }

    /// The request's loader around `T`, made on first use.
    fn get<T: Lazy>(&self) -> AppResult<&RequestLoader<T>> {
        for slot in &self.slots {
            // Only the first empty slot is filled, and with `T`: a loader is made at most once.
            let (ty, loader) = slot.get_or_init(|| {
                let loader: Box<dyn Any + Send + Sync> =
                    Box::new(new(T::make(self), &self.metrics));
                (TypeId::of::<T>(), loader)
            });
            if *ty == TypeId::of::<T>() {
                return loader.downcast_ref().ok_or_else(|| {
                    AppError::internal("DataLoaders", anyhow::anyhow!("mistyped slot"))
                });
            }
        }
        Err(AppError::internal(
            "DataLoaders",
            anyhow::anyhow!("more than {LOADER_TYPES_MAX} loader types"),
        ))
    }
}

/// A loader that [`Loaders`] makes on first use.
pub trait Lazy: Sized + Send + Sync + 'static {
    fn make(loaders: &Loaders) -> Self;
}

/// The request's DataLoader around `T`.
pub fn request_loader<'a, T: Lazy>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<T>> {
    super::state::<Loaders>(ctx)?.get::<T>()
}
