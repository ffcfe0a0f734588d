//! Files at the hand-over points of an application: a submission checks the draft's files
//! against the required documents and moves them to the application; an erasure deletes them.

use entity::attachments;
use entity::states::{ScanState, UploadState};
use sea_orm::{ColumnTrait, QueryFilter};
use uuid::Uuid;

use crate::content::ServiceContent;
use crate::db::TenantTx;
use crate::error::{AppResult, FieldErrors};
use crate::ids::{ApplicationId, DraftId};

/// Required documents that `data` calls for and `files` do not provide: path → message.
pub fn missing_documents(
    content: &ServiceContent,
    data: &serde_json::Value,
    files: &[attachments::Model],
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for doc in &content.required_documents {
        if !doc.required || doc.when.as_ref().is_some_and(|c| !c.holds(data)) {
            continue;
        }
        let provided = files.iter().any(|f| {
            f.document_key.as_deref() == Some(doc.key.as_str())
                && f.state == UploadState::Stored
                && f.scan_status != ScanState::Infected
        });
        if !provided {
            errors.insert(
                format!("input.documents/{}", doc.key),
                format!(
                    "„{}“ is missing: attach it to the draft ({})",
                    doc.label.de,
                    doc.content_types.join(", ")
                ),
            );
        }
    }
    errors
}

/// The files of a draft being submitted: checked against the required documents.
pub async fn of_draft_in(
    txn: &TenantTx,
    draft: Option<DraftId>,
) -> AppResult<Vec<attachments::Model>> {
    let Some(draft) = draft else {
        return Ok(Vec::new());
    };
    Ok(txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::DraftId.eq(draft))
        .all(txn)
        .await?)
}

/// Moves a submitted draft's files to its application (same transaction as the submission).
pub async fn move_to_application(
    txn: &TenantTx,
    draft: DraftId,
    application: ApplicationId,
) -> AppResult<()> {
    txn.update_many::<attachments::Entity>()
        .col_expr(
            attachments::Column::ApplicationId,
            sea_orm::sea_query::Expr::value(application),
        )
        .col_expr(
            attachments::Column::DraftId,
            sea_orm::sea_query::Expr::value(Option::<Uuid>::None),
        )
        .filter(attachments::Column::DraftId.eq(draft))
        .exec(txn)
        .await?;
    Ok(())
}

/// Deletes the rows of an application's files (in the caller's transaction) and returns their
/// object keys, to delete from storage after the commit.
pub async fn delete_rows_of_application(
    txn: &TenantTx,
    application: ApplicationId,
) -> AppResult<Vec<String>> {
    let keys: Vec<String> = txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::ApplicationId.eq(application))
        .all(txn)
        .await?
        .into_iter()
        .map(|a| a.object_key)
        .collect();
    txn.delete_many::<attachments::Entity>()
        .filter(attachments::Column::ApplicationId.eq(application))
        .exec(txn)
        .await?;
    Ok(keys)
}
