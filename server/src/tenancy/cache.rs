//! A short-lived cache of the tenant directory: every request resolves its tenant by slug or ID,
//! and tenants change only through onboarding. Entries live [`TTL`], so a change made by another
//! process (`server tenants apply`) is seen within seconds. Unknown slugs are not cached, so a new
//! tenant is found at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use entity::tenants;

use super::service;
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;

pub const TTL: Duration = Duration::from_secs(5);
/// Bound on entries; past it the cache starts over (tenants are few, this is a safety net).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub struct TenantCache {
    by_slug: Mutex<HashMap<String, (Instant, Arc<tenants::Model>)>>,
    by_id: Mutex<HashMap<TenantId, (Instant, Arc<tenants::Model>)>>,
}

fn poisoned() -> AppError {
    AppError::internal("tenant cache", anyhow::anyhow!("lock poisoned"))
}

impl TenantCache {
    pub async fn by_slug(
        &self,
        db: &DatabaseConnection,
        slug: &str,
    ) -> AppResult<Option<Arc<tenants::Model>>> {
        // No slug holds a NUL (PostgreSQL would refuse to even compare it): unknown, not an error.
        if slug.contains('\0') {
            return Ok(None);
        }
        if let Some((at, t)) = self.by_slug.lock().map_err(|_| poisoned())?.get(slug)
            && at.elapsed() < TTL
        {
            return Ok(Some(t.clone()));
        }
        let found = service::tenant_by_slug(db, slug).await?.map(Arc::new);
        if let Some(t) = &found {
            self.remember(t.clone())?;
        }
        Ok(found)
    }

    pub async fn by_id(
        &self,
        db: &DatabaseConnection,
        id: TenantId,
    ) -> AppResult<Option<Arc<tenants::Model>>> {
        if let Some((at, t)) = self.by_id.lock().map_err(|_| poisoned())?.get(&id)
            && at.elapsed() < TTL
        {
            return Ok(Some(t.clone()));
        }
        let found = service::tenant_by_id(db, id).await?.map(Arc::new);
        if let Some(t) = &found {
            self.remember(t.clone())?;
        }
        Ok(found)
    }

    fn remember(&self, tenant: Arc<tenants::Model>) -> AppResult<()> {
        let now = Instant::now();
        let mut by_slug = self.by_slug.lock().map_err(|_| poisoned())?;
        if by_slug.len() >= MAX_ENTRIES {
            by_slug.clear();
        }
        by_slug.insert(tenant.slug.clone(), (now, tenant.clone()));
        drop(by_slug);
        let mut by_id = self.by_id.lock().map_err(|_| poisoned())?;
        if by_id.len() >= MAX_ENTRIES {
            by_id.clear();
        }
        by_id.insert(TenantId(tenant.id), (now, tenant));
        Ok(())
    }
}
