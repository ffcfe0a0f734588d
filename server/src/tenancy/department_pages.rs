//! Pages of a tenant's department list, kept for a few seconds. Portal and staff pages show the
//! departments on every visit, while they change only through administration. A change made
//! through this server drops the tenant's pages at once ([`DepartmentPages::forget`]); one made by
//! another replica or the CLI is seen within [`TTL`], as with the tenant directory.
//!
//! The pages are the very results of the one list query, remembered, not a second copy of its
//! logic: a miss runs that query.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use entity::departments;
use uuid::Uuid;

pub use super::cache::TTL;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Page, PageArgs};
use crate::ids::TenantId;

/// Bound on remembered pages (all tenants); past it the cache starts over.
const MAX_PAGES: usize = 10_000;

/// A page is known by its tenant and its arguments.
type Key = (TenantId, usize, Option<Uuid>, bool);

#[derive(Debug, Default)]
pub struct DepartmentPages {
    inner: Mutex<Pages>,
}

#[derive(Debug, Default)]
struct Pages {
    /// Bumped by every change of a tenant's departments: a read that began before it must not
    /// remember what it read.
    generation: HashMap<TenantId, u64>,
    pages: HashMap<Key, Remembered>,
}

#[derive(Debug)]
struct Remembered {
    at: Instant,
    generation: u64,
    page: Page<departments::Model>,
}

fn poisoned() -> AppError {
    AppError::internal("department pages", anyhow::anyhow!("lock poisoned"))
}

impl Pages {
    fn generation_of(&self, tenant: TenantId) -> u64 {
        self.generation.get(&tenant).copied().unwrap_or_default()
    }
}

impl DepartmentPages {
    /// The page of `tenant`'s departments for `args`: remembered, or read by `read` and then
    /// remembered unless the departments changed meanwhile.
    pub async fn page<F, Fut>(
        &self,
        tenant: TenantId,
        args: PageArgs,
        read: F,
    ) -> AppResult<Page<departments::Model>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<Page<departments::Model>>>,
    {
        let key = (tenant, args.first, args.after, args.want_total);
        let generation = {
            let pages = self.inner.lock().map_err(|_| poisoned())?;
            let generation = pages.generation_of(tenant);
            if let Some(r) = pages.pages.get(&key)
                && r.generation == generation
                && r.at.elapsed() < TTL
            {
                return Ok(r.page.clone());
            }
            generation
        };
        let page = read().await?;
        let mut pages = self.inner.lock().map_err(|_| poisoned())?;
        if pages.generation_of(tenant) == generation {
            if pages.pages.len() >= MAX_PAGES {
                pages.pages.clear();
            }
            pages.pages.insert(
                key,
                Remembered {
                    at: Instant::now(),
                    generation,
                    page: page.clone(),
                },
            );
        }
        Ok(page)
    }

    /// Drops `tenant`'s pages; call after a change of its departments committed.
    pub fn forget(&self, tenant: TenantId) -> AppResult<()> {
        let mut pages = self.inner.lock().map_err(|_| poisoned())?;
        *pages.generation.entry(tenant).or_default() += 1;
        pages.pages.retain(|key, _| key.0 != tenant);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(names: &[&str]) -> Page<departments::Model> {
        Page {
            items: names
                .iter()
                .map(|n| departments::Model {
                    id: Uuid::now_v7(),
                    tenant_id: Uuid::nil(),
                    key: (*n).to_owned(),
                    name: (*n).to_owned(),
                    email: None,
                    created_at: chrono::Utc::now(),
                })
                .collect(),
            has_next: false,
            has_previous: false,
            total: None,
        }
    }

    fn args() -> PageArgs {
        PageArgs {
            first: 20,
            after: None,
            want_total: false,
        }
    }

    fn keys(p: &Page<departments::Model>) -> Vec<String> {
        p.items.iter().map(|d| d.key.clone()).collect()
    }

    #[tokio::test]
    async fn a_page_is_read_once_then_remembered_until_its_tenant_changes() {
        let cache = DepartmentPages::default();
        let (a, b) = (TenantId::new(), TenantId::new());
        let first = cache
            .page(a, args(), || async { Ok(page(&["amt"])) })
            .await
            .unwrap();
        let again = cache
            .page(a, args(), || async { Ok(page(&["read again"])) })
            .await
            .unwrap();
        assert_eq!(keys(&again), keys(&first));
        let other = cache
            .page(b, args(), || async { Ok(page(&["b"])) })
            .await
            .unwrap();
        assert_eq!(keys(&other), ["b"], "tenants never share pages");
        let more = PageArgs { first: 1, ..args() };
        let other_args = cache
            .page(a, more, || async { Ok(page(&["one"])) })
            .await
            .unwrap();
        assert_eq!(keys(&other_args), ["one"], "other arguments, other page");

        cache.forget(a).unwrap();
        let fresh = cache
            .page(a, args(), || async { Ok(page(&["new"])) })
            .await
            .unwrap();
        assert_eq!(keys(&fresh), ["new"]);
        let kept = cache
            .page(b, args(), || async { Ok(page(&["unread"])) })
            .await
            .unwrap();
        assert_eq!(keys(&kept), ["b"], "forgetting one tenant keeps the others");
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_change_is_not_remembered() {
        let cache = DepartmentPages::default();
        let t = TenantId::new();
        let stale = cache
            .page(t, args(), || async {
                // The change commits while this read is under way.
                cache.forget(t).unwrap();
                Ok(page(&["before the change"]))
            })
            .await
            .unwrap();
        assert_eq!(keys(&stale), ["before the change"]);
        let next = cache
            .page(t, args(), || async { Ok(page(&["after"])) })
            .await
            .unwrap();
        assert_eq!(keys(&next), ["after"]);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_remembered() {
        let cache = DepartmentPages::default();
        let t = TenantId::new();
        let failed = cache
            .page(t, args(), || async {
                Err(AppError::NotFound("department"))
            })
            .await;
        assert!(failed.is_err());
        let next = cache
            .page(t, args(), || async { Ok(page(&["ok"])) })
            .await
            .unwrap();
        assert_eq!(keys(&next), ["ok"]);
    }
}
