//! Per-request DataLoader for nested tenancy lookups: a page of staff users with their roles and
//! memberships costs one query per nested list, never one per user.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use entity::{departments, staff_memberships};

use super::service;
use crate::context::Role;
use crate::error::AppError;
use crate::ids::TenantId;

/// Created per request, bound to the request's tenant.
pub struct TenancyLoader {
    pub db: DatabaseConnection,
    pub tenant: TenantId,
}

/// Key: the roles of a staff user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RolesOf(pub Uuid);

/// Key: the department memberships of a staff user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MembershipsOf(pub Uuid);

/// Key: a department by ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DepartmentById(pub Uuid);

fn gql(e: AppError) -> async_graphql::Error {
    e.into()
}

/// Runs one batch query in a read transaction of the loader's tenant.
macro_rules! in_tenant {
    ($self:ident, |$txn:ident| $query:expr) => {{
        let $txn = crate::db::begin_tenant(&$self.db, $self.tenant).await.map_err(gql)?;
        let out = $query.await.map_err(gql)?;
        $txn.commit().await.map_err(|e| gql(e.into()))?;
        out
    }};
}

impl Loader<RolesOf> for TenancyLoader {
    type Value = Vec<Role>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RolesOf]) -> Result<HashMap<RolesOf, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let map = in_tenant!(self, |txn| service::roles_of(&txn, self.tenant, &ids));
        Ok(map.into_iter().map(|(k, v)| (RolesOf(k), v)).collect())
    }
}

impl Loader<MembershipsOf> for TenancyLoader {
    type Value = Vec<staff_memberships::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[MembershipsOf]) -> Result<HashMap<MembershipsOf, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let map = in_tenant!(self, |txn| service::memberships_of(&txn, self.tenant, &ids));
        Ok(map.into_iter().map(|(k, v)| (MembershipsOf(k), v)).collect())
    }
}

impl Loader<DepartmentById> for TenancyLoader {
    type Value = departments::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[DepartmentById]) -> Result<HashMap<DepartmentById, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let map = in_tenant!(self, |txn| service::departments_by_ids(&txn, self.tenant, &ids));
        Ok(map.into_iter().map(|(k, v)| (DepartmentById(k), v)).collect())
    }
}
