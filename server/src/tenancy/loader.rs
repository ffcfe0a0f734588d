//! Request-wide DataLoader for nested tenancy lookups: a page of staff users with their roles and
//! memberships costs one query per nested list, never one per user. Keys carry their tenant, so
//! one loader serves every tenant a request may read (platform administrators read several);
//! each batch runs in a transaction of its tenant.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use entity::{departments, staff_memberships};

use super::service;
use crate::context::Role;
use crate::error::AppError;
use crate::ids::TenantId;

pub struct TenancyLoader {
    pub db: crate::db::Db,
}

impl crate::graphql::loaders::Lazy for TenancyLoader {
    fn make(loaders: &crate::graphql::loaders::Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

/// Key: the roles of a staff user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RolesOf(pub TenantId, pub Uuid);

/// Key: the department memberships of a staff user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MembershipsOf(pub TenantId, pub Uuid);

/// Key: a department by ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DepartmentById(pub TenantId, pub Uuid);

fn gql(e: AppError) -> async_graphql::Error {
    e.into()
}

/// Groups keys by tenant: `(tenant, ids)`.
fn by_tenant<K>(
    keys: &[K],
    split: impl Fn(&K) -> (TenantId, Uuid),
) -> HashMap<TenantId, Vec<Uuid>> {
    let mut out: HashMap<TenantId, Vec<Uuid>> = HashMap::new();
    for k in keys {
        let (t, id) = split(k);
        out.entry(t).or_default().push(id);
    }
    out
}

/// Runs one batch query per tenant, each in a read transaction of that tenant.
macro_rules! per_tenant {
    ($self:ident, $keys:ident, $key:ident, |$txn:ident, $tenant:ident, $ids:ident| $query:expr) => {{
        let mut out = HashMap::new();
        for ($tenant, $ids) in by_tenant($keys, |k| (k.0, k.1)) {
            let $txn = crate::db::begin_tenant(&$self.db, $tenant)
                .await
                .map_err(gql)?;
            let found = $query.await.map_err(gql)?;
            $txn.commit().await.map_err(|e| gql(e.into()))?;
            out.extend(found.into_iter().map(|(id, v)| ($key($tenant, id), v)));
        }
        Ok(out)
    }};
}

impl Loader<RolesOf> for TenancyLoader {
    type Value = Vec<Role>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RolesOf]) -> Result<HashMap<RolesOf, Self::Value>, Self::Error> {
        per_tenant!(self, keys, RolesOf, |txn, tenant, ids| service::roles_of(
            &txn, &ids
        ))
    }
}

impl Loader<MembershipsOf> for TenancyLoader {
    type Value = Vec<staff_memberships::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MembershipsOf],
    ) -> Result<HashMap<MembershipsOf, Self::Value>, Self::Error> {
        per_tenant!(self, keys, MembershipsOf, |txn, tenant, ids| {
            service::memberships_of(&txn, &ids)
        })
    }
}

impl Loader<DepartmentById> for TenancyLoader {
    type Value = departments::Model;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[DepartmentById],
    ) -> Result<HashMap<DepartmentById, Self::Value>, Self::Error> {
        per_tenant!(self, keys, DepartmentById, |txn, tenant, ids| {
            service::departments_by_ids(&txn, &ids)
        })
    }
}
