//! The storage sweeper: reconciles object storage with the `attachments` table.
//!
//! - uploads announced but not confirmed in time: row and object go;
//! - files of drafts nobody touched for `abandoned_draft_files_after_hours`: row and object go;
//! - files whose scan could not decide: scanned again;
//! - objects no row names (an upload whose commit failed, a deletion that failed half-way, a
//!   deleted tenant) once they are older than `orphan_grace_secs`: deleted.
//!
//! Runs every `sweep_interval_secs` in each replica (all of it is idempotent) and on demand
//! (`sweepStorage`, platform administrators).

use std::collections::{HashMap, HashSet};

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};
use entity::states::{ScanState, UploadState};
use entity::{attachments, drafts, tenants};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::scan::ScanOutcome;
use super::service;
use super::upload;
use crate::db::{begin_tenant, begin_tenant_write};
use crate::error::AppResult;
use crate::ids::TenantId;
use crate::settings::StorageSettings;
use crate::state::AppState;
use crate::storage;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, SimpleObject)]
pub struct SweepReport {
    /// Announced uploads that were never confirmed in time.
    pub expired_uploads: u64,
    /// Files of drafts abandoned for longer than the configured time.
    pub abandoned_draft_files: u64,
    /// Objects in storage that no attachment names.
    pub orphan_objects: u64,
    /// Files scanned again because an earlier scan could not decide.
    pub rescanned: u64,
}

pub async fn sweep(
    deps: &AppState,
    cfg: &StorageSettings,
    now: DateTime<Utc>,
) -> AppResult<SweepReport> {
    let mut report = SweepReport::default();
    let tenant_ids: Vec<Uuid> = tenants::Entity::find()
        .all(deps.db.orm())
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    for tenant in &tenant_ids {
        let tenant = TenantId(*tenant);
        let (expired, abandoned) = remove_stale(deps, cfg, tenant, now).await?;
        report.expired_uploads += expired;
        report.abandoned_draft_files += abandoned;
        report.rescanned += rescan_pending(deps, cfg, tenant).await?;
    }
    // Listed before the rows are read: an object that appears in between is young, and the
    // grace period keeps it.
    let objects = deps
        .store
        .list("")
        .await
        .map_err(|e| crate::error::AppError::internal("listing storage", e))?;
    let mut known: HashMap<Uuid, HashSet<String>> = HashMap::new();
    for tenant in &tenant_ids {
        let tenant = TenantId(*tenant);
        let txn = begin_tenant(&deps.db, tenant).await?;
        let keys = txn
            .select::<attachments::Entity>()
            .all(&txn)
            .await?
            .into_iter()
            .map(|a| a.object_key)
            .collect();
        txn.commit().await?;
        known.insert(tenant.0, keys);
    }
    let grace =
        chrono::Duration::seconds(i64::try_from(cfg.orphan_grace_secs).unwrap_or(i64::MAX / 4));
    for obj in objects {
        let Some(tenant) = storage::key_tenant(&obj.key) else {
            continue; // not ours: other data may share the bucket
        };
        let named = known.get(&tenant).is_some_and(|k| k.contains(&obj.key));
        if !named && obj.modified + grace <= now {
            if let Err(e) = deps.store.delete(&obj.key).await {
                tracing::warn!(error = %format!("{e:#}"), "deleting an orphan object failed");
                continue;
            }
            report.orphan_objects += 1;
        }
    }
    if report != SweepReport::default() {
        tracing::info!(?report, "storage sweep");
    }
    Ok(report)
}

/// Expired uploads and files of abandoned drafts: rows first (committed), then objects.
async fn remove_stale(
    deps: &AppState,
    cfg: &StorageSettings,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> AppResult<(u64, u64)> {
    let cutoff = now
        - chrono::Duration::hours(
            i64::try_from(cfg.abandoned_draft_files_after_hours).unwrap_or(i64::MAX / 4_000_000),
        );
    let txn = begin_tenant_write(&deps.db, tenant).await?;
    let expired = txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::State.eq(UploadState::Uploading))
        .filter(attachments::Column::UploadExpiresAt.lt(now))
        .all(&txn)
        .await?;
    let stale_drafts: Vec<Uuid> = txn
        .select::<drafts::Entity>()
        .filter(drafts::Column::UpdatedAt.lt(cutoff))
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| d.id)
        .collect();
    let abandoned = if stale_drafts.is_empty() {
        Vec::new()
    } else {
        txn.select::<attachments::Entity>()
            .filter(attachments::Column::DraftId.is_in(stale_drafts))
            .all(&txn)
            .await?
    };
    let mut ids: Vec<Uuid> = expired.iter().map(|a| a.id).collect();
    ids.extend(
        abandoned
            .iter()
            .filter(|a| a.state != UploadState::Uploading)
            .map(|a| a.id),
    );
    if ids.is_empty() {
        txn.commit().await?;
        return Ok((0, 0));
    }
    txn.delete_many::<attachments::Entity>()
        .filter(attachments::Column::Id.is_in(ids.clone()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    let keys: Vec<String> = expired
        .iter()
        .chain(
            abandoned
                .iter()
                .filter(|a| a.state != UploadState::Uploading),
        )
        .map(|a| a.object_key.clone())
        .collect();
    service::delete_objects(deps.store.as_ref(), &keys).await;
    let n_expired = expired.len() as u64;
    Ok((n_expired, ids.len() as u64 - n_expired))
}

/// Files whose scan could not decide, scanned again. Infected ones lose their object (the row
/// stays, so the citizen sees why the document is missing).
async fn rescan_pending(
    deps: &AppState,
    cfg: &StorageSettings,
    tenant: TenantId,
) -> AppResult<u64> {
    if cfg.scan_command.is_none() {
        return Ok(0);
    }
    let txn = begin_tenant(&deps.db, tenant).await?;
    let pending = txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::State.eq(UploadState::Stored))
        .filter(attachments::Column::ScanStatus.eq(ScanState::Pending))
        .all(&txn)
        .await?;
    txn.commit().await?;
    let mut n = 0;
    for att in pending {
        let Ok(Some(body)) = deps.store.get(&att.object_key).await else {
            continue;
        };
        let status = match upload::rescan(cfg, body).await {
            ScanOutcome::Clean | ScanOutcome::Skipped => ScanState::Clean,
            ScanOutcome::Infected => ScanState::Infected,
            ScanOutcome::Failed => continue,
        };
        let txn = begin_tenant_write(&deps.db, tenant).await?;
        let key = att.object_key.clone();
        let mut active: attachments::ActiveModel = att.into();
        active.scan_status = Set(status);
        active.update(&txn).await?;
        txn.commit().await?;
        if status == ScanState::Infected {
            service::delete_objects(deps.store.as_ref(), &[key]).await;
        }
        n += 1;
    }
    Ok(n)
}

/// Sweeps every `interval` until `stop` turns true.
pub async fn run(
    deps: AppState,
    cfg: StorageSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = std::time::Duration::from_secs(cfg.sweep_interval_secs);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = sweep(&deps, &cfg, Utc::now()).await {
            tracing::warn!(error = %e, "storage sweep failed; retrying next round");
        }
    }
}
