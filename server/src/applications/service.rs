//! What every use case of applications shares: pinned service revisions (cached in
//! [`AppState`], in [`super::pinned`]), what follows a commit, and small helpers. The use cases live beside it: [`super::access`],
//! [`super::drafts`], [`super::submit`], [`super::workflow`], [`super::timeline`],
//! [`super::queries`], [`super::gdpr`].
//!
//! Every change runs in one tenant transaction that also appends its timeline event and queues its
//! notifications; the new status reaches subscribers after the commit ([`super::live`]). Readers
//! never see half of it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{applications, service_revisions};
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use super::live::StatusChange;
use super::pinned::PINNED_CACHE_MAX;
pub use super::pinned::Pinned;
use super::rules::{self, FeeLine, FormValidator};
use crate::content::ServiceContent;
use crate::db::{TenantTx, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::state::AppState;

/// What applications do with the server's state: pinned revisions, and what follows a commit.
impl AppState {
    /// The pinned revision `revision` of `service`, read in the tenant's transaction.
    pub async fn pinned(
        &self,
        txn: &TenantTx,
        service: Uuid,
        revision: i64,
    ) -> AppResult<Arc<Pinned>> {
        if let Some(p) = self.cached(service, revision) {
            return Ok(p);
        }
        let row = txn
            .select::<service_revisions::Entity>()
            .filter(service_revisions::Column::ServiceId.eq(service))
            .filter(service_revisions::Column::Revision.eq(revision))
            .one(txn)
            .await?
            .ok_or(AppError::NotFound("service revision"))?;
        let content: ServiceContent = serde_json::from_value(row.content)
            .map_err(|e| AppError::internal("reading a stored service revision", e))?;
        let validator = FormValidator::compile(&content.form.schema)?;
        let pinned = Arc::new(Pinned { content, validator });
        let mut cache = self
            .pinned
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= PINNED_CACHE_MAX {
            cache.clear();
        }
        cache.insert((service, revision), pinned.clone());
        Ok(pinned)
    }

    /// [`AppState::pinned`] outside a transaction: a cache miss reads in one of its own.
    pub async fn pinned_now(
        &self,
        tenant: TenantId,
        service: Uuid,
        revision: i64,
    ) -> AppResult<Arc<Pinned>> {
        if let Some(p) = self.cached(service, revision) {
            return Ok(p);
        }
        let txn = begin_tenant(&self.db, tenant).await?;
        let pinned = self.pinned(&txn, service, revision).await?;
        txn.commit().await?;
        Ok(pinned)
    }

    fn cached(&self, service: Uuid, revision: i64) -> Option<Arc<Pinned>> {
        self.pinned
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(service, revision))
            .cloned()
    }

    /// Commits `txn`, then delivers the announced changes and wakes the outbox worker.
    pub(crate) async fn finish(&self, txn: TenantTx, changes: Vec<StatusChange>) -> AppResult<()> {
        txn.commit().await?;
        self.committed(changes);
        Ok(())
    }

    /// After a commit: delivers the announced changes and wakes the outbox worker.
    pub(crate) fn committed(&self, changes: Vec<StatusChange>) {
        for c in changes {
            self.live.committed(c);
        }
        self.outbox_wake.notify_one();
    }
}

pub(super) fn status_change(app: &applications::Model, at: DateTime<Utc>) -> StatusChange {
    StatusChange {
        tenant_id: app.tenant_id,
        application_id: app.id,
        reference: app.reference.clone(),
        state: app.state.clone(),
        at,
    }
}

pub fn state_label(content: &ServiceContent, state: &str) -> String {
    rules::state_of(&content.workflow, state)
        .map_or_else(|| state.to_owned(), |s| s.label.de.clone())
}

/// A computed fee line as stored.
pub fn fees_of(app: &applications::Model) -> Vec<FeeLine> {
    serde_json::from_value(app.fees.clone()).unwrap_or_default()
}
