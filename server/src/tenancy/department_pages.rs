//! Pages of a tenant's department list, remembered for a few seconds ([`crate::memo`]): portal
//! and staff pages show the departments on every visit, while they change only through
//! administration. Every department change made here forgets the tenant's pages.

use entity::departments;
use uuid::Uuid;

use crate::error::AppResult;
use crate::graphql::connection::{Page, PageArgs};
use crate::ids::TenantId;
use crate::memo::Memo;

#[derive(Debug, Default)]
pub struct DepartmentPages {
    pages: Memo<TenantId, (usize, Option<Uuid>, bool), Page<departments::Model>>,
}

impl DepartmentPages {
    /// The page of `tenant`'s departments for `args`: remembered, or read by `read`.
    pub async fn page<F, Fut>(
        &self,
        tenant: TenantId,
        args: PageArgs,
        read: F,
    ) -> AppResult<Page<departments::Model>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = AppResult<Page<departments::Model>>>,
    {
        let key = (args.first, args.after, args.want_total);
        self.pages.get_or_read(tenant, key, read).await
    }

    /// Drops `tenant`'s pages; call after a change of its departments committed.
    pub fn forget(&self, tenant: TenantId) -> AppResult<()> {
        self.pages.forget(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;

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
