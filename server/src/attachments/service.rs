//! What the attachment use cases share: scan states, where a file goes ([`Target`]), and
//! deleting objects no row names. The use cases: [`super::upload`] (adding, checking, removing),
//! [`super::download`] (reading, handing out), [`super::handover`] (what submission and erasure
//! of applications do with files).
//!
//! Order of work, so that nothing acknowledged is lost and nothing unacknowledged stays: bytes go
//! to storage first, then the row is committed; if the commit fails the object is deleted, and
//! if even that fails the sweeper finds the object that no row names. Removals commit the row
//! deletion first and delete objects after.

use entity::attachments;
use sea_orm::ColumnTrait;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, DraftId};
use crate::storage::ObjectStore;

/// Where a file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Draft(DraftId),
    Application(ApplicationId),
}

impl Target {
    /// From the `applicationId` / `draftId` pair of an input: exactly one must be given.
    pub fn from_input(
        application: Option<ApplicationId>,
        draft: Option<DraftId>,
    ) -> AppResult<Self> {
        match (application, draft) {
            (Some(a), None) => Ok(Self::Application(a)),
            (None, Some(d)) => Ok(Self::Draft(d)),
            _ => Err(AppError::invalid(
                "input.applicationId",
                "give either applicationId or draftId",
            )),
        }
    }

    pub(super) fn id(self) -> Uuid {
        match self {
            Self::Draft(DraftId(id)) | Self::Application(ApplicationId(id)) => id,
        }
    }
}

pub(super) fn owner_filter(target: Target) -> sea_orm::Condition {
    match target {
        Target::Draft(id) => sea_orm::Condition::all().add(attachments::Column::DraftId.eq(id)),
        Target::Application(id) => {
            sea_orm::Condition::all().add(attachments::Column::ApplicationId.eq(id))
        }
    }
}

/// Deletes an object that no committed row names; if that fails too, the sweeper will.
pub(super) async fn discard(store: &dyn ObjectStore, key: &str) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(error = %format!("{e:#}"), "an uncommitted object stays for the sweeper");
    }
}

/// Deletes objects whose rows are gone (after a commit); failures are left to the sweeper.
pub async fn delete_objects(store: &dyn ObjectStore, keys: &[String]) {
    for key in keys {
        discard(store, key).await;
    }
}
