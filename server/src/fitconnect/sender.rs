//! The FIT-Connect sender: the outbox's courier for hand-overs ([`SUBMIT_TASK`]) and for
//! following a submission's events ([`EVENTS_TASK`]).
//!
//! A hand-over, repeated as often as the outbox retries it, always ends in one submission: it
//! checks the destination (active, offering the service and schema), takes its encryption key
//! (RSA, `wrapKey`, RSA-OAEP-256, ≥ 4096 bits), creates the submission once (its ids are stored
//! with a conditional update before anything else happens, so a retry resumes it and a racing
//! worker adopts the stored one), uploads every attachment and then data and metadata as JWE,
//! and records the authentication tags of what it sent. The destination's answer comes as
//! signed events, read every `fit_connect.events_poll_secs` until it accepts or rejects.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use entity::states::{ScanState, UploadState};
use entity::{applications, attachments, fit_connect_submissions, outbox, tenant_services};
use futures_util::StreamExt as _;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{CallError, SubmissionClient};
use super::events::{self, Signer, Verdict};
use super::handover::{EVENTS_TASK, SUBMIT_TASK, change, find, submission_of};
use super::jwe;
use super::metadata::{self, AttachmentMeta, SubmissionMeta};
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::ids::{ApplicationId, TenantId};
use crate::messaging::outbox::{Courier, Delivery, DeliveryError, enqueue_task};
use crate::state::AppState;

/// The courier of FIT-Connect tasks.
pub struct Sender {
    state: AppState,
    client: Arc<SubmissionClient>,
}

impl Sender {
    pub fn new(state: AppState, client: Arc<SubmissionClient>) -> Self {
        Self { state, client }
    }
}

type Outcome = Result<Delivery, DeliveryError>;

/// A failure worth retrying, saying what was being done.
fn retry<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> DeliveryError + '_ {
    move |e| DeliveryError::retry(format!("{what}: {e}"))
}

fn removed() -> DeliveryError {
    DeliveryError::permanent("the service's FIT-Connect hand-over was removed")
}

type Handover = entity::fit_connect_handovers::Model;

impl From<CallError> for DeliveryError {
    fn from(e: CallError) -> Self {
        Self {
            message: e.message,
            permanent: e.permanent,
        }
    }
}

/// A file to hand over.
struct File {
    id: Uuid,
    filename: String,
    content_type: String,
    object_key: String,
}

#[async_trait::async_trait]
impl Courier for Sender {
    fn kinds(&self) -> &'static [&'static str] {
        &[SUBMIT_TASK, EVENTS_TASK]
    }

    async fn deliver(&self, row: &outbox::Model) -> Outcome {
        let tenant = TenantId(
            row.tenant_id
                .ok_or_else(|| DeliveryError::permanent("a FIT-Connect task without tenant"))?,
        );
        let application = ApplicationId(
            Uuid::parse_str(&row.recipient)
                .map_err(|_| DeliveryError::permanent("a FIT-Connect task without application"))?,
        );
        let result = if row.kind == SUBMIT_TASK {
            self.hand_over(tenant, application).await
        } else {
            self.follow(tenant, application).await
        };
        // What went wrong is shown to staff with the application.
        let (state, error) = match &result {
            Err(e) if e.permanent => (Some("failed"), Some(e.message.clone())),
            Err(e) => (None, Some(e.message.clone())),
            Ok(_) => (None, None),
        };
        if error.is_some() {
            let _ = self.note(tenant, application, state, error).await;
        }
        result
    }
}

impl Sender {
    /// Opens a read of `tenant` and finds the application's hand-over and its service's
    /// configuration (`None` once removed).
    async fn load(
        &self,
        tenant: TenantId,
        application: ApplicationId,
    ) -> Result<(TenantTx, fit_connect_submissions::Model, Option<Handover>), DeliveryError> {
        let txn = begin_tenant(self.state.db.orm(), tenant)
            .await
            .map_err(retry("reading the hand-over"))?;
        let sub = submission_of(&txn, application)
            .await
            .map_err(retry("reading the hand-over"))?
            .ok_or_else(|| DeliveryError::permanent("the hand-over record is gone"))?;
        let handover = find(&txn, sub.service_id)
            .await
            .map_err(retry("reading the hand-over"))?;
        Ok((txn, sub, handover))
    }

    /// An access token of the hand-over's API client.
    async fn token(&self, tenant: TenantId, handover: &Handover) -> Result<String, DeliveryError> {
        let secret = self
            .state
            .payments
            .sealer
            .open(tenant.0, &handover.client_secret)
            .map_err(|e| DeliveryError::permanent(format!("the client secret: {e}")))?;
        Ok(self.client.token(&handover.client_id, &secret).await?)
    }

    async fn hand_over(&self, tenant: TenantId, application: ApplicationId) -> Outcome {
        let (txn, sub, handover) = self.load(tenant, application).await?;
        if !matches!(sub.state.as_str(), "pending" | "created" | "failed") {
            return Ok(Delivery::Done);
        }
        let handover = handover.ok_or_else(removed)?;
        let app = txn
            .select::<applications::Entity>()
            .filter(applications::Column::Id.eq(application.0))
            .one(&txn)
            .await
            .map_err(retry("reading the application"))?
            .ok_or_else(|| DeliveryError::permanent("the application is gone"))?;
        let Some(data) = app.data.clone() else {
            return Err(DeliveryError::permanent(
                "the application was erased before it was handed over",
            ));
        };
        let service_name = txn
            .select::<tenant_services::Entity>()
            .filter(tenant_services::Column::Id.eq(app.service_id))
            .one(&txn)
            .await
            .map_err(retry("reading the service"))?
            .map_or_else(|| app.service_slug.clone(), |s| s.title);
        let stored = txn
            .select::<attachments::Entity>()
            .filter(attachments::Column::ApplicationId.eq(application.0))
            .filter(attachments::Column::State.eq(UploadState::Stored))
            .all(&txn)
            .await
            .map_err(retry("reading the attachments"))?;
        let _ = txn.commit().await;
        if stored.iter().any(|f| f.scan_status == ScanState::Pending) {
            return Err(DeliveryError::retry(
                "waiting for the virus scan of an attachment",
            ));
        }
        let files: Vec<File> = stored
            .into_iter()
            .filter(|f| f.scan_status != ScanState::Infected)
            .map(|f| File {
                id: f.id,
                content_type: f
                    .content_type
                    .clone()
                    .unwrap_or_else(|| f.declared_type.clone()),
                filename: f.filename,
                object_key: f.object_key,
            })
            .collect();

        let token = self.token(tenant, &handover).await?;
        let result = self
            .send(
                tenant,
                &sub,
                &handover,
                &app,
                &data,
                &service_name,
                &files,
                &token,
            )
            .await;
        if result
            .as_ref()
            .is_err_and(|e| e.message.contains("HTTP 401"))
        {
            self.client.forget_token(&handover.client_id);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        tenant: TenantId,
        sub: &fit_connect_submissions::Model,
        handover: &Handover,
        app: &applications::Model,
        data: &Value,
        service_name: &str,
        files: &[File],
        token: &str,
    ) -> Outcome {
        let service_identifier = format!("urn:de:fim:leika:leistung:{}", handover.leika_key);
        let destination = self.client.destination(token, sub.destination_id).await?;
        if destination.status.as_deref().is_some_and(|s| s != "active") {
            return Err(DeliveryError::retry(format!(
                "the destination is {}",
                destination.status.as_deref().unwrap_or_default()
            )));
        }
        let offered = destination
            .services
            .iter()
            .find(|s| s.identifier == service_identifier);
        let Some(offered) = offered else {
            return Err(DeliveryError::permanent(format!(
                "the destination does not offer the service {service_identifier}"
            )));
        };
        if !offered
            .submission_schemas
            .iter()
            .any(|s| s.schema_uri == handover.schema_uri)
        {
            return Err(DeliveryError::permanent(format!(
                "the destination does not accept the schema {}",
                handover.schema_uri
            )));
        }
        let kid = destination.encryption_kid.clone();
        let key = self
            .client
            .destination_key(token, sub.destination_id, &kid)
            .await?
            .encryption_key()
            .map_err(|e| DeliveryError::permanent(format!("the destination's key: {e}")))?;

        let submission_id = match sub.submission_id {
            Some(id) => id,
            None => {
                let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
                let created = self
                    .client
                    .create_submission(
                        token,
                        sub.destination_id,
                        service_name,
                        &service_identifier,
                        &ids,
                    )
                    .await?;
                self.adopt(
                    tenant,
                    sub.application_id,
                    created.submission_id,
                    created.case_id,
                )
                .await?
            }
        };

        let mut attachment_tags = BTreeMap::new();
        let mut metas = Vec::new();
        for f in files {
            let bytes = self.read_file(&f.object_key).await?;
            let sealed = jwe::encrypt(&bytes, &key, &kid, &f.content_type)
                .map_err(retry("encrypting an attachment"))?;
            self.client
                .upload_attachment(token, submission_id, f.id, sealed.compact)
                .await?;
            attachment_tags.insert(f.id.to_string(), sealed.tag);
            metas.push(AttachmentMeta {
                id: f.id,
                filename: f.filename.clone(),
                mime_type: f.content_type.clone(),
                sha512: metadata::sha512_hex(&bytes),
            });
        }
        let data_bytes = serde_json::to_vec(data)
            .map_err(|e| DeliveryError::permanent(format!("the form data: {e}")))?;
        let meta = metadata::metadata(&SubmissionMeta {
            reference: &app.reference,
            submitted_on: app.submitted_at.date_naive(),
            leika_code: Some(handover.leika_key.as_str()),
            service_name,
            data_sha512: metadata::sha512_hex(&data_bytes),
            data_schema_uri: &handover.schema_uri,
            attachments: metas,
            reply_email: app.contact_email.as_deref(),
        });
        let meta_bytes = serde_json::to_vec(&meta)
            .map_err(|e| DeliveryError::permanent(format!("the metadata: {e}")))?;
        let sealed_data = jwe::encrypt(&data_bytes, &key, &kid, "application/json")
            .map_err(retry("encrypting the data"))?;
        let sealed_meta = jwe::encrypt(&meta_bytes, &key, &kid, "application/json")
            .map_err(retry("encrypting the metadata"))?;
        let fresh = self
            .client
            .submit(
                token,
                submission_id,
                &sealed_meta.compact,
                &sealed_data.compact,
            )
            .await?;
        // Tags of a submission sent by an attempt whose answer was lost are unknown.
        let tags = fresh.then(|| {
            json!({
                "data": sealed_data.tag,
                "metadata": sealed_meta.tag,
                "attachments": attachment_tags,
            })
        });
        self.submitted(tenant, sub.application_id, tags).await
    }

    /// Stores the created submission's ids unless another attempt stored some first; returns
    /// the submission id that counts.
    async fn adopt(
        &self,
        tenant: TenantId,
        application: Uuid,
        submission: Uuid,
        case: Uuid,
    ) -> Result<Uuid, DeliveryError> {
        let db = self.state.db.orm();
        let txn = begin_tenant_write(db, tenant)
            .await
            .map_err(retry("storing the submission"))?;
        change(&txn, ApplicationId(application))
            .col_expr(
                fit_connect_submissions::Column::SubmissionId,
                Expr::value(submission),
            )
            .col_expr(fit_connect_submissions::Column::CaseId, Expr::value(case))
            .col_expr(
                fit_connect_submissions::Column::State,
                Expr::value("created"),
            )
            .filter(fit_connect_submissions::Column::SubmissionId.is_null())
            .exec(&txn)
            .await
            .map_err(retry("storing the submission"))?;
        let row = submission_of(&txn, ApplicationId(application))
            .await
            .map_err(retry("storing the submission"))?;
        txn.commit()
            .await
            .map_err(retry("storing the submission"))?;
        match row.and_then(|r| r.submission_id) {
            Some(id) => Ok(id),
            None => Err(DeliveryError::retry("the submission's ids were not stored")),
        }
    }

    /// Records the submission as sent and queues following its events.
    async fn submitted(&self, tenant: TenantId, application: Uuid, tags: Option<Value>) -> Outcome {
        let db = self.state.db.orm();
        let now = Utc::now();
        let txn = begin_tenant_write(db, tenant)
            .await
            .map_err(retry("recording the submission"))?;
        let changed = change(&txn, ApplicationId(application))
            .col_expr(
                fit_connect_submissions::Column::State,
                Expr::value("submitted"),
            )
            .col_expr(
                fit_connect_submissions::Column::AuthenticationTags,
                Expr::value(tags),
            )
            .col_expr(
                fit_connect_submissions::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                fit_connect_submissions::Column::SubmittedAt,
                Expr::value(now),
            )
            .filter(fit_connect_submissions::Column::State.is_in(["pending", "created", "failed"]))
            .exec(&txn)
            .await
            .map_err(retry("recording the submission"))?
            .rows_affected;
        if changed > 0 {
            let first_look = now + self.poll_interval();
            enqueue_task(
                &txn,
                tenant,
                EVENTS_TASK,
                application.to_string(),
                Some(first_look),
            )
            .await
            .map_err(retry("queueing the events"))?;
        }
        txn.commit()
            .await
            .map_err(retry("recording the submission"))?;
        Ok(Delivery::Done)
    }

    fn poll_interval(&self) -> chrono::Duration {
        let secs = self.state.settings.fit_connect.events_poll_secs;
        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(300))
    }

    async fn read_file(&self, key: &str) -> Result<Vec<u8>, DeliveryError> {
        let mut stream = self
            .state
            .store
            .get(key)
            .await
            .map_err(retry("reading an attachment"))?
            .ok_or_else(|| DeliveryError::permanent("an attachment's file is missing"))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(retry("reading an attachment"))?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Reads the case's events; records the destination's answer once one is verified.
    async fn follow(&self, tenant: TenantId, application: ApplicationId) -> Outcome {
        let (txn, sub, handover) = self.load(tenant, application).await?;
        let _ = txn.commit().await;
        let (Some(submission), Some(case)) = (sub.submission_id, sub.case_id) else {
            return Err(DeliveryError::permanent("the submission was never created"));
        };
        if sub.state != "submitted" {
            return Ok(Delivery::Done);
        }
        let handover = handover.ok_or_else(removed)?;
        let follow_for = chrono::Duration::days(
            i64::try_from(self.state.settings.fit_connect.events_follow_days).unwrap_or(30),
        );
        if sub
            .submitted_at
            .is_some_and(|at| Utc::now() - at > follow_for)
        {
            return Err(DeliveryError::permanent(
                "the destination did not accept or reject the submission in time",
            ));
        }
        let token = self.token(tenant, &handover).await?;
        let log = self.client.events(&token, case).await?;
        let issuer = self.client.issuer();
        let mut api_keys = None;
        for set in &log {
            let verdict = match self
                .verified(
                    &token,
                    set,
                    sub.destination_id,
                    &issuer,
                    &mut api_keys,
                    submission,
                    case,
                )
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(application = %application.0, error = %e, "ignoring a FIT-Connect event that does not verify");
                    continue;
                }
            };
            match verdict {
                Verdict::Accepted {
                    authentication_tags,
                } => {
                    let confirmed = sub
                        .authentication_tags
                        .as_ref()
                        .map(|ours| Some(ours) == authentication_tags.as_ref());
                    return self
                        .decided(tenant, application, "accepted", None, confirmed)
                        .await;
                }
                Verdict::Rejected { problems } => {
                    return self
                        .decided(tenant, application, "rejected", Some(problems), None)
                        .await;
                }
                Verdict::Other(_) => {}
            }
        }
        Ok(Delivery::Later(Utc::now() + self.poll_interval()))
    }

    /// Verifies one event with the key its issuer may use; the destination's answers count only
    /// when the destination signed them.
    #[allow(clippy::too_many_arguments)]
    async fn verified(
        &self,
        token: &str,
        set: &str,
        destination: Uuid,
        issuer: &str,
        api_keys: &mut Option<Vec<super::jwe::Jwk>>,
        submission: Uuid,
        case: Uuid,
    ) -> anyhow::Result<Verdict> {
        match events::signer(set, destination, issuer)? {
            Signer::Destination(kid) => {
                let key = self
                    .client
                    .destination_key(token, destination, &kid)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                events::verify(set, &key, submission, case)
            }
            Signer::Api(kid) => {
                if api_keys.is_none() {
                    *api_keys = Some(
                        self.client
                            .api_keys()
                            .await
                            .map_err(|e| anyhow::anyhow!(e.message))?,
                    );
                }
                let key = api_keys
                    .iter()
                    .flatten()
                    .find(|k| k.kid == kid)
                    .ok_or_else(|| anyhow::anyhow!("the API has no key {kid}"))?;
                match events::verify(set, key, submission, case)? {
                    // Only the destination decides.
                    Verdict::Accepted { .. } | Verdict::Rejected { .. } => {
                        anyhow::bail!("an answer not signed by the destination")
                    }
                    other => Ok(other),
                }
            }
        }
    }

    async fn decided(
        &self,
        tenant: TenantId,
        application: ApplicationId,
        state: &str,
        problems: Option<Value>,
        tags_confirmed: Option<bool>,
    ) -> Outcome {
        let db = self.state.db.orm();
        let txn = begin_tenant_write(db, tenant)
            .await
            .map_err(retry("recording the answer"))?;
        let mut update = change(&txn, application)
            .col_expr(fit_connect_submissions::Column::State, Expr::value(state))
            .col_expr(
                fit_connect_submissions::Column::Problems,
                Expr::value(problems),
            )
            .col_expr(
                fit_connect_submissions::Column::DecidedAt,
                Expr::value(Utc::now()),
            );
        if let Some(confirmed) = tags_confirmed {
            update = update.col_expr(
                fit_connect_submissions::Column::LastError,
                Expr::value((!confirmed).then(|| {
                    "the destination confirmed other authentication tags than were sent".to_owned()
                })),
            );
        }
        update
            .filter(fit_connect_submissions::Column::State.eq("submitted"))
            .exec(&txn)
            .await
            .map_err(retry("recording the answer"))?;
        txn.commit().await.map_err(retry("recording the answer"))?;
        Ok(Delivery::Done)
    }

    /// Notes an attempt's error (and a final state) on the hand-over, for staff.
    async fn note(
        &self,
        tenant: TenantId,
        application: ApplicationId,
        state: Option<&str>,
        error: Option<String>,
    ) -> Result<(), DeliveryError> {
        let db = self.state.db.orm();
        let txn = begin_tenant_write(db, tenant)
            .await
            .map_err(retry("noting the error"))?;
        let mut update = change(&txn, application).col_expr(
            fit_connect_submissions::Column::LastError,
            Expr::value(error),
        );
        if let Some(state) = state {
            update = update.col_expr(fit_connect_submissions::Column::State, Expr::value(state));
        }
        update
            .filter(fit_connect_submissions::Column::State.is_in([
                "pending",
                "created",
                "submitted",
            ]))
            .exec(&txn)
            .await
            .map_err(retry("noting the error"))?;
        txn.commit().await.map_err(retry("noting the error"))?;
        Ok(())
    }
}
