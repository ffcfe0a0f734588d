//! Adding files: inline uploads (GraphQL multipart) and presigned uploads with their
//! confirmation, each checked for size, type by magic bytes, SHA-256 and (optionally) viruses;
//! and the applicant removing a file again.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::states::{ScanState, UploadState};
use entity::{attachments, drafts, tenant_services};
use futures_util::StreamExt as _;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, PaginatorTrait, QueryFilter,
    QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::scan::{self, ScanOutcome};
use super::service::{Target, discard, owner_filter};
use crate::applications::access::{self, Viewer};
use crate::applications::drafts::owned_draft;
use crate::applications::service::Pinned;
use crate::content::ServiceContent;
use crate::content::documents::RequiredDocument;
use crate::context::{Principal, TenantCtx};
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::{ApplicationId, AttachmentId, DraftId, TenantId};
use crate::settings::StorageSettings;
use crate::state::AppState;
use crate::storage::{self, ObjectStore};

/// Bytes read to recognise a file type by its magic bytes.
const SNIFF_BYTES: usize = 8 * 1024;

/// A draft or application the caller may add files to, with the content that sets the rules.
struct Owner {
    pinned: Arc<Pinned>,
}

/// The caller's draft or application, locked against concurrent additions (PostgreSQL `FOR
/// UPDATE`; SQLite write transactions are exclusive anyway). Files are added by the applicant
/// only, and only while the application is not finished.
async fn owner(
    deps: &AppState,
    txn: &TenantTx,
    ctx: &TenantCtx,
    target: Target,
    access_token: Option<&str>,
) -> AppResult<Owner> {
    access::require_applicant_side(ctx)?;
    match target {
        Target::Draft(id) => {
            let draft = owned_draft(txn, ctx, id, access_token).await?;
            if txn.get_database_backend() == DbBackend::Postgres {
                txn.select::<drafts::Entity>()
                    .filter(drafts::Column::Id.eq(id))
                    .lock_exclusive()
                    .one(txn)
                    .await?;
            }
            let service = txn
                .select::<tenant_services::Entity>()
                .filter(tenant_services::Column::Id.eq(draft.service_id))
                .one(txn)
                .await?
                .ok_or(AppError::NotFound("service"))?;
            let pinned = deps
                .pinned(txn, service.id, service.current_revision)
                .await?;
            crate::auth::assurance::require(pinned.content.assurance_level, &ctx.principal)?;
            Ok(Owner { pinned })
        }
        Target::Application(id) => {
            let app = access::lock(txn, id).await?;
            if access::viewer_of(txn, ctx, &app, access_token).await? != Viewer::Applicant {
                return Err(AppError::NotFound("application"));
            }
            let pinned = deps.pinned(txn, app.service_id, app.revision).await?;
            crate::auth::assurance::require(pinned.content.assurance_level, &ctx.principal)?;
            if crate::applications::rules::state_of(&pinned.content.workflow, &app.state)
                .is_some_and(|s| s.terminal)
            {
                return Err(AppError::conflict(
                    "input.applicationId",
                    "this application is finished; it takes no more files",
                ));
            }
            Ok(Owner { pinned })
        }
    }
}

/// What a new file must satisfy before any byte is accepted: its document exists, its declared
/// type is allowed, it is not too large, and the owner has room for another file.
struct Admission<'a> {
    document: Option<&'a RequiredDocument>,
    allowed: Vec<String>,
    limit: u64,
}

fn admit<'a>(
    content: &'a ServiceContent,
    cfg: &StorageSettings,
    document: Option<&str>,
    declared_size: Option<u64>,
    existing: u64,
) -> AppResult<Admission<'a>> {
    let rules = content.attachment_rules();
    let doc = match document {
        Some(key) => Some(
            content
                .required_documents
                .iter()
                .find(|d| d.key.as_str() == key)
                .ok_or_else(|| {
                    let known: Vec<&str> = content
                        .required_documents
                        .iter()
                        .map(|d| d.key.as_str())
                        .collect();
                    AppError::invalid(
                        "input.document",
                        if known.is_empty() {
                            "this service asks for no documents; leave `document` out".to_owned()
                        } else {
                            format!(
                                "unknown document; this service asks for: {}",
                                known.join(", ")
                            )
                        },
                    )
                })?,
        ),
        None => None,
    };
    let limit = rules.max_file_bytes.min(cfg.max_file_bytes);
    if let Some(size) = declared_size {
        if size > limit {
            return Err(AppError::PayloadTooLarge {
                limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        if size == 0 {
            return Err(AppError::invalid("input.sizeBytes", "the file is empty"));
        }
    }
    if existing >= u64::from(rules.max_files) {
        return Err(AppError::invalid(
            "input.file",
            format!(
                "this service takes at most {} files per application",
                rules.max_files
            ),
        ));
    }
    let allowed = doc.map_or(rules.content_types, |d| d.content_types.clone());
    Ok(Admission {
        document: doc,
        allowed,
        limit,
    })
}

fn check_type(field: &str, detected: Option<&str>, allowed: &[String]) -> AppResult<String> {
    match detected {
        Some(t) if allowed.iter().any(|a| a == t) => Ok(t.to_owned()),
        Some(t) => Err(AppError::invalid(
            field,
            format!(
                "the file's content is {t}; allowed here: {}",
                allowed.join(", ")
            ),
        )),
        None => Err(AppError::invalid(
            field,
            format!(
                "the file's content is not a recognised type; allowed here: {}",
                allowed.join(", ")
            ),
        )),
    }
}

/// The type magic bytes say a file has.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    infer::get(head).map(|t| t.mime_type())
}

async fn count_files(txn: &TenantTx, target: Target) -> AppResult<u64> {
    Ok(txn
        .select::<attachments::Entity>()
        .filter(owner_filter(target))
        .count(txn)
        .await?)
}

fn uploader(ctx: &TenantCtx) -> String {
    match &ctx.principal {
        Principal::Citizen(c) => format!("citizen:{}", c.subject),
        Principal::Anonymous => "anonymous".to_owned(),
        other => other.audit_actor(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What reading a file's bytes once told us.
struct Examined {
    size: u64,
    sha256: String,
    detected: Option<&'static str>,
    scan: ScanOutcome,
}

/// Reads a stream once: size, SHA-256, magic bytes, and (if configured) the virus scanner's
/// verdict, the scanner reading the same bytes on its standard input. Memory: one chunk.
async fn examine(
    cfg: &StorageSettings,
    mut body: storage::ByteStream,
    limit: u64,
) -> AppResult<Examined> {
    let mut scanner = scan::start(cfg)?;
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::internal("reading a stored file", e))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(AppError::PayloadTooLarge {
                limit_bytes: usize::try_from(limit).unwrap_or(usize::MAX),
            });
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        if let Some(s) = scanner.as_mut() {
            s.feed(&chunk).await;
        }
    }
    let scan = match scanner {
        Some(s) => s.verdict().await,
        None => ScanOutcome::Skipped,
    };
    Ok(Examined {
        size,
        sha256: hex(&hasher.finalize()),
        detected: sniff(&head),
        scan,
    })
}

fn scan_status(outcome: ScanOutcome) -> ScanState {
    match outcome {
        ScanOutcome::Skipped => ScanState::Skipped,
        ScanOutcome::Clean => ScanState::Clean,
        ScanOutcome::Infected => ScanState::Infected,
        // The scanner could not decide: the sweeper asks again; until then nobody gets the file.
        ScanOutcome::Failed => ScanState::Pending,
    }
}

fn infected() -> AppError {
    AppError::invalid("input.file", "the virus scanner rejected this file")
}

// ---- inline upload (GraphQL multipart) ---------------------------------------------------------

/// A file that arrived with the request (GraphQL multipart), in a temporary file.
pub struct InlineFile {
    pub filename: String,
    pub file: std::fs::File,
}

/// `uploadAttachment`: checks, stores and records a small file in one go.
pub async fn upload_inline(
    deps: &AppState,
    cfg: &StorageSettings,
    ctx: &TenantCtx,
    target: Target,
    access_token: Option<&str>,
    document: Option<&str>,
    upload: InlineFile,
) -> AppResult<attachments::Model> {
    let size = upload
        .file
        .metadata()
        .map_err(|e| AppError::internal("reading an upload", e))?
        .len();
    if size > cfg.multipart_max_bytes {
        return Err(AppError::PayloadTooLarge {
            limit_bytes: usize::try_from(cfg.multipart_max_bytes).unwrap_or(usize::MAX),
        });
    }
    // Admission first, in a read: a refused file costs no hashing and no storage.
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let own = owner(deps, &txn, ctx, target, access_token).await?;
    let existing = count_files(&txn, target).await?;
    let adm = admit(&own.pinned.content, cfg, document, Some(size), existing)?;
    let (document_key, allowed, limit) = (
        adm.document.map(|d| d.key.to_string()),
        adm.allowed,
        adm.limit,
    );
    txn.commit().await?;

    let file = tokio::fs::File::from_std(upload.file);
    let reader = file
        .try_clone()
        .await
        .map_err(|e| AppError::internal("reading an upload", e))?;
    let examined = examine(
        cfg,
        Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            64 * 1024,
        )),
        limit,
    )
    .await?;
    let content_type = check_type("input.file", examined.detected, &allowed)?;
    if examined.scan == ScanOutcome::Infected {
        return Err(infected());
    }
    let mut file = file;
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| AppError::internal("reading an upload", e))?;
    let key = storage::object_key(ctx.tenant_id.0, target.id());
    deps.store
        .put(&key, file, examined.size, &content_type)
        .await
        .map_err(|e| AppError::internal("storing an upload", e))?;

    let now = Utc::now();
    let row = attachments::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        application_id: Set(matches!(target, Target::Application(_)).then(|| target.id())),
        draft_id: Set(matches!(target, Target::Draft(_)).then(|| target.id())),
        document_key: Set(document_key),
        filename: Set(storage::sanitize_filename(&upload.filename)),
        declared_type: Set(content_type.clone()),
        content_type: Set(Some(content_type)),
        size_bytes: Set(i64::try_from(examined.size).unwrap_or(i64::MAX)),
        sha256: Set(Some(examined.sha256)),
        object_key: Set(key.clone()),
        state: Set(UploadState::Stored),
        scan_status: Set(scan_status(examined.scan)),
        uploaded_by: Set(uploader(ctx)),
        upload_expires_at: Set(None),
        created_at: Set(now),
        stored_at: Set(Some(now)),
    };
    record_or_discard(deps.store.as_ref(), &key, async {
        let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
        // Again under the lock: a concurrent upload may have taken the last place.
        let own = owner(deps, &txn, ctx, target, access_token).await?;
        let existing = count_files(&txn, target).await?;
        admit(&own.pinned.content, cfg, document, Some(size), existing)?;
        let model = row.insert(&txn).await?;
        txn.commit().await?;
        Ok(model)
    })
    .await
}

/// Runs the transaction that records the object at `key`; if it does not commit, the object
/// goes (and if even that fails, the sweeper finds it).
async fn record_or_discard<T>(
    store: &dyn ObjectStore,
    key: &str,
    record: impl std::future::Future<Output = AppResult<T>>,
) -> AppResult<T> {
    let result = record.await;
    if result.is_err() {
        discard(store, key).await;
    }
    result
}

// ---- presigned upload --------------------------------------------------------------------------

pub struct UploadRequest {
    pub target: Target,
    pub access_token: Option<String>,
    pub document: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub sha256: String,
}

/// A granted upload: the attachment (state `uploading`) and where to PUT the bytes.
pub struct UploadGrant {
    pub attachment: attachments::Model,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// `requestUpload`: records the announced file and returns a presigned PUT for exactly its size
/// and type.
pub async fn request_upload(
    deps: &AppState,
    cfg: &StorageSettings,
    ctx: &TenantCtx,
    req: UploadRequest,
) -> AppResult<UploadGrant> {
    let sha = req.sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::invalid(
            "input.sha256",
            "must be the file's SHA-256 as 64 hexadecimal characters",
        ));
    }
    let mut errors = FieldErrors::new();
    if req.filename.trim().is_empty() || req.filename.len() > 1024 {
        errors.insert(
            "input.filename".into(),
            "must have 1 to 1024 characters".into(),
        );
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let own = owner(deps, &txn, ctx, req.target, req.access_token.as_deref()).await?;
    let existing = count_files(&txn, req.target).await?;
    let adm = admit(
        &own.pinned.content,
        cfg,
        req.document.as_deref(),
        Some(req.size_bytes),
        existing,
    )?;
    if !adm.allowed.contains(&req.content_type) {
        return Err(AppError::invalid(
            "input.contentType",
            format!("allowed here: {}", adm.allowed.join(", ")),
        ));
    }
    let ttl = Duration::from_secs(cfg.upload_url_ttl_secs);
    let now = Utc::now();
    let expires_at = now + chrono::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(900));
    let key = storage::object_key(ctx.tenant_id.0, req.target.id());
    let attachment = attachments::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        application_id: Set(matches!(req.target, Target::Application(_)).then(|| req.target.id())),
        draft_id: Set(matches!(req.target, Target::Draft(_)).then(|| req.target.id())),
        document_key: Set(adm.document.map(|d| d.key.to_string())),
        filename: Set(storage::sanitize_filename(&req.filename)),
        declared_type: Set(req.content_type.clone()),
        content_type: Set(None),
        size_bytes: Set(i64::try_from(req.size_bytes).unwrap_or(i64::MAX)),
        sha256: Set(Some(sha)),
        object_key: Set(key.clone()),
        state: Set(UploadState::Uploading),
        scan_status: Set(ScanState::Pending),
        uploaded_by: Set(uploader(ctx)),
        upload_expires_at: Set(Some(expires_at)),
        created_at: Set(now),
        stored_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    let url = deps
        .store
        .presign_put(&key, ttl, req.size_bytes, &req.content_type)
        .await
        .map_err(|e| AppError::internal("presigning an upload", e))?;
    Ok(UploadGrant {
        attachment,
        url,
        expires_at,
    })
}

/// The attachment `id` if the caller is its uploader (the draft's or application's owner).
async fn owned_attachment(
    deps: &AppState,
    txn: &TenantTx,
    ctx: &TenantCtx,
    id: AttachmentId,
    access_token: Option<&str>,
) -> AppResult<(attachments::Model, Owner)> {
    let att = txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::Id.eq(id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("attachment"))?;
    let target = Target::from_input(
        att.application_id.map(ApplicationId),
        att.draft_id.map(DraftId),
    )?;
    let own = owner(deps, txn, ctx, target, access_token).await?;
    Ok((att, own))
}

/// [`owned_attachment`] in a read transaction of its own.
async fn uploaded_by_caller(
    deps: &AppState,
    ctx: &TenantCtx,
    id: AttachmentId,
    access_token: Option<&str>,
) -> AppResult<attachments::Model> {
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let (att, _) = owned_attachment(deps, &txn, ctx, id, access_token).await?;
    txn.commit().await?;
    Ok(att)
}

/// `confirmUpload`: checks what arrived against what was announced (size, SHA-256, type by magic
/// bytes, virus scan) and makes it a stored attachment. A file that fails is deleted with its
/// record, and the error says why.
pub async fn confirm_upload(
    deps: &AppState,
    cfg: &StorageSettings,
    ctx: &TenantCtx,
    id: AttachmentId,
    access_token: Option<&str>,
) -> AppResult<attachments::Model> {
    let att = uploaded_by_caller(deps, ctx, id, access_token).await?;
    if att.state != UploadState::Uploading {
        return Err(AppError::conflict(
            "input.id",
            "this upload is already confirmed",
        ));
    }
    if att.upload_expires_at.is_some_and(|t| t < Utc::now()) {
        return Err(AppError::conflict(
            "input.id",
            "the upload link has expired; request a new upload",
        ));
    }
    let meta = deps
        .store
        .head(&att.object_key)
        .await
        .map_err(|e| AppError::internal("checking an upload", e))?
        .ok_or_else(|| AppError::conflict("input.id", "nothing has been uploaded yet"))?;
    let declared = u64::try_from(att.size_bytes).unwrap_or(0);
    if meta.size != declared {
        remove(deps, ctx.tenant_id, &att.id, &[&att.object_key]).await?;
        return Err(AppError::invalid(
            "input.id",
            format!("{} bytes arrived; {declared} were announced", meta.size),
        ));
    }
    // The bytes move to a key no URL was ever issued for, and are checked there: whoever still
    // holds the upload URL cannot swap them after the check.
    let owner_id = att.application_id.or(att.draft_id).unwrap_or(att.id);
    let key = storage::object_key(ctx.tenant_id.0, owner_id);
    deps.store
        .relocate(&att.object_key, &key)
        .await
        .map_err(|e| AppError::internal("moving an upload into place", e))?;
    let checked = check_arrival(deps, cfg, &att, &key, declared).await;
    let (content_type, scan) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            remove(deps, ctx.tenant_id, &att.id, &[&key]).await?;
            return Err(e);
        }
    };
    record_or_discard(deps.store.as_ref(), &key, async {
        let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
        let current = txn
            .select::<attachments::Entity>()
            .filter(attachments::Column::Id.eq(att.id))
            .filter(attachments::Column::State.eq(UploadState::Uploading))
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::conflict("input.id", "this upload is already confirmed"))?;
        let mut active: attachments::ActiveModel = current.into();
        active.state = Set(UploadState::Stored);
        active.object_key = Set(key.clone());
        active.content_type = Set(Some(content_type));
        active.scan_status = Set(scan_status(scan));
        active.upload_expires_at = Set(None);
        active.stored_at = Set(Some(Utc::now()));
        let model = active.update(&txn).await?;
        txn.commit().await?;
        Ok(model)
    })
    .await
}

/// Size, SHA-256, type and virus scan of an uploaded object against what was announced.
async fn check_arrival(
    deps: &AppState,
    cfg: &StorageSettings,
    att: &attachments::Model,
    key: &str,
    declared: u64,
) -> AppResult<(String, ScanOutcome)> {
    let body = deps
        .store
        .get(key)
        .await
        .map_err(|e| AppError::internal("reading an upload", e))?
        .ok_or_else(|| AppError::conflict("input.id", "nothing has been uploaded yet"))?;
    let examined = examine(cfg, body, declared).await.map_err(|e| match e {
        AppError::PayloadTooLarge { .. } => AppError::invalid(
            "input.id",
            format!("more than the announced {declared} bytes arrived"),
        ),
        other => other,
    })?;
    if examined.size != declared {
        return Err(AppError::invalid(
            "input.id",
            format!("{} bytes arrived; {declared} were announced", examined.size),
        ));
    }
    if att.sha256.as_deref() != Some(examined.sha256.as_str()) {
        return Err(AppError::invalid(
            "input.id",
            "the file that arrived does not have the announced SHA-256",
        ));
    }
    let content_type = check_type(
        "input.id",
        examined.detected,
        std::slice::from_ref(&att.declared_type),
    )?;
    if examined.scan == ScanOutcome::Infected {
        return Err(infected());
    }
    Ok((content_type, examined.scan))
}

/// Deletes an attachment: its row first (committed), then its objects.
async fn remove(deps: &AppState, tenant: TenantId, id: &Uuid, keys: &[&str]) -> AppResult<()> {
    let txn = begin_tenant_write(&deps.db, tenant).await?;
    txn.delete_many::<attachments::Entity>()
        .filter(attachments::Column::Id.eq(*id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    for key in keys {
        discard(deps.store.as_ref(), key).await;
    }
    Ok(())
}

/// `deleteAttachment`: the applicant removes a file from a draft (or an upload not yet confirmed).
/// Files of submitted applications are part of the record and stay.
pub async fn delete(
    deps: &AppState,
    ctx: &TenantCtx,
    id: AttachmentId,
    access_token: Option<&str>,
) -> AppResult<attachments::Model> {
    let att = uploaded_by_caller(deps, ctx, id, access_token).await?;
    if att.application_id.is_some() && att.state == UploadState::Stored {
        return Err(AppError::conflict(
            "input.id",
            "files of a submitted application are part of its record and cannot be removed",
        ));
    }
    remove(deps, ctx.tenant_id, &att.id, &[&att.object_key]).await?;
    Ok(att)
}

/// Writes a stream into a scanner's standard input; used by [`super::sweeper`] for rescans.
pub(crate) async fn rescan(cfg: &StorageSettings, body: storage::ByteStream) -> ScanOutcome {
    match examine(cfg, body, u64::MAX).await {
        Ok(e) => e.scan,
        Err(_) => ScanOutcome::Failed,
    }
}
