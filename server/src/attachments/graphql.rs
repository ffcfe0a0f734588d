//! GraphQL of attachments: inline upload (multipart), presigned upload and its confirmation,
//! removal from drafts, downloads by short-lived URL, and the storage sweep.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Upload};
use chrono::{DateTime, Utc};
use entity::attachments;
use entity::states::{ScanState, UploadState};

use super::download;
use super::service::Target;
use super::sweeper::{self, SweepReport};
use super::upload::{self, InlineFile, UploadRequest};
use crate::applications::access::Viewer;
use crate::error::{AppError, AppResult};
use crate::graphql::{RequestOrigin, parse_id};
use crate::graphql::{request_ctx, state, tenant_ctx};
use crate::settings::StorageSettings;
use crate::state::AppState;

fn deps<'a>(ctx: &'a Context<'_>) -> AppResult<&'a AppState> {
    state::<AppState>(ctx)
}

fn cfg<'a>(ctx: &'a Context<'_>) -> AppResult<&'a StorageSettings> {
    Ok(&state::<AppState>(ctx)?.settings.storage)
}

/// The local backend signs paths (`/storage/…`); clients get them on `origin`. Other backends'
/// URLs are absolute already.
pub fn on_origin(origin: &str, url: String) -> String {
    if url.starts_with('/') {
        format!("{origin}{url}")
    } else {
        url
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "UploadState")]
pub enum AttachmentState {
    /// Announced with `requestUpload`; the bytes are not confirmed yet.
    Uploading,
    Stored,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "ScanState")]
pub enum ScanStatus {
    /// No virus scanner is configured.
    Skipped,
    /// Not scanned yet (or the scanner could not decide); not handed out.
    Pending,
    Clean,
    /// Found infected; the bytes are deleted.
    Infected,
}

/// A file attached to a draft or an application.
pub struct Attachment {
    pub model: attachments::Model,
    pub viewer: Viewer,
}

#[Object]
impl Attachment {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// The client's filename, sanitized (no folders, no control characters).
    async fn filename(&self) -> &str {
        &self.model.filename
    }
    /// The type found by the file's magic bytes (while uploading: the announced type).
    async fn content_type(&self) -> &str {
        self.model
            .content_type
            .as_deref()
            .unwrap_or(&self.model.declared_type)
    }
    async fn size_bytes(&self) -> i64 {
        self.model.size_bytes
    }
    /// Hex SHA-256 of the stored bytes (while uploading: the announced one).
    async fn sha256(&self) -> Option<&str> {
        self.model.sha256.as_deref()
    }
    /// The required document of the service this file provides.
    async fn document(&self) -> Option<&str> {
        self.model.document_key.as_deref()
    }
    async fn state(&self) -> AttachmentState {
        self.model.state.into()
    }
    async fn scan_status(&self) -> ScanStatus {
        self.model.scan_status.into()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn stored_at(&self) -> Option<DateTime<Utc>> {
        self.model.stored_at
    }
    /// A URL to download the file, valid for a few minutes: for the applicant and for staff of a
    /// department working on the application. Others are `FORBIDDEN`, as is a file not yet
    /// scanned clean.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let tctx = tenant_ctx(ctx)?;
        let url =
            download::download_url(deps(ctx)?, cfg(ctx)?, &tctx, &self.model, &self.viewer).await?;
        Ok(absolute(ctx, url))
    }
}

/// [`on_origin`] with the origin the client called.
pub fn absolute(ctx: &Context<'_>, url: String) -> String {
    on_origin(RequestOrigin::of(ctx), url)
}

fn target(application_id: Option<&ID>, draft_id: Option<&ID>) -> AppResult<Target> {
    Target::from_input(
        application_id
            .map(|id| parse_id("input.applicationId", id))
            .transpose()?,
        draft_id
            .map(|id| parse_id("input.draftId", id))
            .transpose()?,
    )
}

#[derive(Default)]
pub struct AttachmentsQuery;

#[Object]
impl AttachmentsQuery {
    /// One attachment, for the applicant (anonymous ones pass the access token of their draft or
    /// application) and for staff working on its application.
    async fn attachment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<Attachment> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (model, viewer) =
            download::find(deps(ctx)?, &tctx, id, access_token.as_deref()).await?;
        Ok(Attachment { model, viewer })
    }
}

#[derive(InputObject)]
pub struct UploadAttachmentInput {
    /// The application (after submission) or the draft (before) the file is for; exactly one.
    pub application_id: Option<ID>,
    pub draft_id: Option<ID>,
    /// The access token of the draft or application (anonymous citizens).
    pub access_token: Option<String>,
    /// The key of the required document this file provides (see the service's
    /// `requiredDocuments`); leave out for other files.
    pub document: Option<String>,
    /// The file, as a GraphQL multipart request part (small files; larger ones use
    /// `requestUpload`).
    pub file: Upload,
}

#[derive(SimpleObject)]
pub struct AttachmentPayload {
    pub attachment: Attachment,
}

#[derive(InputObject)]
pub struct RequestUploadInput {
    pub application_id: Option<ID>,
    pub draft_id: Option<ID>,
    pub access_token: Option<String>,
    pub document: Option<String>,
    pub filename: String,
    /// `application/pdf`, `image/jpeg` or `image/png` (as the service allows); the bytes must be
    /// of this type.
    pub content_type: String,
    /// The exact size; the upload URL accepts no other.
    pub size_bytes: i64,
    /// Hex SHA-256 of the file; checked when the upload is confirmed.
    pub sha256: String,
}

#[derive(SimpleObject)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(SimpleObject)]
pub struct RequestUploadPayload {
    pub attachment: Attachment,
    /// Send the bytes here with `uploadMethod` and exactly `uploadHeaders`, then call
    /// `confirmUpload`.
    pub upload_url: String,
    pub upload_method: String,
    pub upload_headers: Vec<HttpHeader>,
    pub expires_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct AttachmentRefInput {
    pub id: ID,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeleteAttachmentPayload {
    pub id: ID,
}

#[derive(Default)]
pub struct AttachmentsMutation;

#[Object]
impl AttachmentsMutation {
    /// Attaches a small file sent with the request (GraphQL multipart request).
    async fn upload_attachment(
        &self,
        ctx: &Context<'_>,
        input: UploadAttachmentInput,
    ) -> async_graphql::Result<AttachmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        crate::graphql::rate_limit_write(ctx).await?;
        let target = target(input.application_id.as_ref(), input.draft_id.as_ref())?;
        let upload = input
            .file
            .value(ctx)
            .map_err(|_| AppError::invalid("input.file", "send the file as a multipart part"))?;
        let model = upload::upload_inline(
            deps(ctx)?,
            cfg(ctx)?,
            &tctx,
            target,
            input.access_token.as_deref(),
            input.document.as_deref(),
            InlineFile {
                filename: upload.filename,
                file: upload.content,
            },
        )
        .await?;
        Ok(AttachmentPayload {
            attachment: Attachment {
                model,
                viewer: Viewer::Applicant,
            },
        })
    }

    /// Announces a (large) file and returns a presigned URL to PUT it to, bound to its exact size
    /// and type, valid for a few minutes. Then call `confirmUpload`.
    async fn request_upload(
        &self,
        ctx: &Context<'_>,
        input: RequestUploadInput,
    ) -> async_graphql::Result<RequestUploadPayload> {
        let tctx = tenant_ctx(ctx)?;
        crate::graphql::rate_limit_write(ctx).await?;
        let target = target(input.application_id.as_ref(), input.draft_id.as_ref())?;
        let size = u64::try_from(input.size_bytes)
            .map_err(|_| AppError::invalid("input.sizeBytes", "must not be negative"))?;
        let content_type = input.content_type.clone();
        let grant = upload::request_upload(
            deps(ctx)?,
            cfg(ctx)?,
            &tctx,
            UploadRequest {
                target,
                access_token: input.access_token,
                document: input.document,
                filename: input.filename,
                content_type: input.content_type,
                size_bytes: size,
                sha256: input.sha256,
            },
        )
        .await?;
        Ok(RequestUploadPayload {
            attachment: Attachment {
                model: grant.attachment,
                viewer: Viewer::Applicant,
            },
            upload_url: absolute(ctx, grant.url),
            upload_method: "PUT".into(),
            upload_headers: vec![
                HttpHeader {
                    name: "Content-Type".into(),
                    value: content_type,
                },
                HttpHeader {
                    name: "Content-Length".into(),
                    value: size.to_string(),
                },
            ],
            expires_at: grant.expires_at,
        })
    }

    /// Checks an uploaded file against what `requestUpload` announced (size, SHA-256, type by
    /// its content, virus scan) and attaches it; a file that fails is deleted.
    async fn confirm_upload(
        &self,
        ctx: &Context<'_>,
        input: AttachmentRefInput,
    ) -> async_graphql::Result<AttachmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model = upload::confirm_upload(
            deps(ctx)?,
            cfg(ctx)?,
            &tctx,
            id,
            input.access_token.as_deref(),
        )
        .await?;
        Ok(AttachmentPayload {
            attachment: Attachment {
                model,
                viewer: Viewer::Applicant,
            },
        })
    }

    /// Removes a file from a draft (or an unconfirmed upload).
    async fn delete_attachment(
        &self,
        ctx: &Context<'_>,
        input: AttachmentRefInput,
    ) -> async_graphql::Result<DeleteAttachmentPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let removed = upload::delete(deps(ctx)?, &tctx, id, input.access_token.as_deref()).await?;
        Ok(DeleteAttachmentPayload {
            id: ID(removed.id.to_string()),
        })
    }

    /// Reconciles object storage with the database now (it also runs periodically). Platform
    /// administrators only.
    async fn sweep_storage(&self, ctx: &Context<'_>) -> async_graphql::Result<SweepReport> {
        request_ctx(ctx)?.require_platform_admin()?;
        Ok(sweeper::sweep(deps(ctx)?, cfg(ctx)?, Utc::now()).await?)
    }
}
