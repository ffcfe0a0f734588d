//! Hand-over to back-office systems: one application as JSON or XML, and batches of new
//! applications after a cursor for polling systems.
//!
//! The XML follows `frontend-schema/application-export.xsd` (namespace [`XML_NAMESPACE`]). Form
//! data is arbitrary JSON, so it is written generically: each value is an element named after
//! its JSON type, object members carry their key as an attribute.

use std::io::Cursor;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::states::UploadState;
use entity::{applications, departments, tenant_services};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::queries;
use super::rules::FeeLine;
use super::service;
use crate::context::TenantCtx;
use crate::db::begin_tenant;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub const XML_NAMESPACE: &str = "https://amtsplatz.example/schema/application-export/1";

/// Most applications in one export batch.
pub const MAX_BATCH: u64 = 100;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedApplication {
    pub id: Uuid,
    pub reference: String,
    /// Cursor value of this application in batch exports.
    pub sequence: i64,
    pub tenant: ExportedTenant,
    pub service: ExportedService,
    pub state: String,
    pub submitted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    pub contact_email: Option<String>,
    /// The eID assurance level of the citizen's sign-in at submission (`low`, `substantial`,
    /// `high`), if stated.
    pub assurance_level: Option<String>,
    /// The citizen's postbox handle (BundID), where replies can go.
    pub postbox_handle: Option<String>,
    pub data: Option<Value>,
    pub routing: Vec<ExportedTask>,
    pub fees: Vec<FeeLine>,
    pub currency: String,
    /// Payments of the fees (every attempt, with its state).
    pub payments: Vec<ExportedPayment>,
    /// The application's stored files, each with a stable link.
    pub attachments: Vec<ExportedAttachment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedPayment {
    pub id: Uuid,
    /// `stripe` or `on_site`.
    pub provider: String,
    pub state: String,
    pub amount_cents: i64,
    pub refunded_cents: i64,
    pub currency: String,
    pub paid_at: Option<DateTime<Utc>>,
    /// The provider's payment id (Stripe PaymentIntent).
    pub provider_payment_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedAttachment {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    /// The required document it provides.
    pub document: Option<String>,
    /// `GET` with the same credentials as the export: redirects to a short-lived download URL.
    pub href: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedTenant {
    pub slug: String,
    pub name: String,
    /// Amtlicher Gemeindeschlüssel.
    pub ags: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedService {
    pub slug: String,
    pub title: String,
    pub leika_code: Option<String>,
    pub revision: i64,
    pub template_id: Option<Uuid>,
    pub template_version_id: Option<Uuid>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedTask {
    pub department_key: String,
    pub department_name: String,
    pub rule_key: String,
    pub state: String,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Builds the export of applications the caller may already see.
pub async fn documents(
    deps: &AppState,
    ctx: &TenantCtx,
    apps: Vec<applications::Model>,
    origin: &str,
) -> AppResult<Vec<ExportedApplication>> {
    if apps.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = apps.iter().map(|a| a.id).collect();
    let tasks = queries::tasks_of(&deps.db, ctx.tenant_id, ids.clone()).await?;
    let files =
        crate::attachments::download::of_applications(&deps.db, ctx.tenant_id, ids.clone()).await?;
    let payments = crate::payments::service::of_applications(&deps.db, ctx.tenant_id, ids).await?;
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let depts: std::collections::HashMap<Uuid, departments::Model> = txn
        .select::<departments::Entity>()
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    let service_ids: Vec<Uuid> = apps.iter().map(|a| a.service_id).collect();
    let services: std::collections::HashMap<Uuid, tenant_services::Model> = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.is_in(service_ids))
        .all(&txn)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
        let svc = services.get(&app.service_id);
        let routing = tasks
            .iter()
            .filter(|t| t.application_id == app.id)
            .map(|t| {
                let d = depts.get(&t.department_id);
                ExportedTask {
                    department_key: d.map(|d| d.key.clone()).unwrap_or_default(),
                    department_name: d.map(|d| d.name.clone()).unwrap_or_default(),
                    rule_key: t.rule_key.clone(),
                    state: t.state.to_string(),
                    completed_at: t.completed_at,
                }
            })
            .collect();
        out.push(ExportedApplication {
            id: app.id,
            reference: app.reference.clone(),
            sequence: app.seq,
            tenant: ExportedTenant {
                slug: ctx.tenant.slug.clone(),
                name: ctx.tenant.name.clone(),
                ags: ctx.tenant.ags.clone(),
            },
            service: ExportedService {
                slug: app.service_slug.clone(),
                title: pinned.content.title.de.clone(),
                leika_code: pinned.content.leika_code.clone(),
                revision: app.revision,
                template_id: svc.and_then(|s| s.template_id),
                template_version_id: svc.and_then(|s| s.upstream_version_id),
            },
            fees: service::fees_of(&app),
            currency: pinned.content.currency.clone(),
            state: app.state,
            submitted_at: app.submitted_at,
            updated_at: app.updated_at,
            decided_at: app.decided_at,
            closed_at: app.closed_at,
            erased_at: app.erased_at,
            contact_email: app.contact_email,
            assurance_level: app.citizen_assurance,
            postbox_handle: app.citizen_postbox,
            data: app.data,
            routing,
            payments: payments
                .iter()
                .filter(|p| p.application_id == app.id)
                .map(|p| ExportedPayment {
                    id: p.id,
                    provider: p.provider.clone(),
                    state: p.state.to_string(),
                    amount_cents: p.amount_cents,
                    refunded_cents: p.refunded_cents,
                    currency: p.currency.clone(),
                    paid_at: p.paid_at,
                    provider_payment_id: p.provider_payment_id.clone(),
                })
                .collect(),
            attachments: files
                .iter()
                .filter(|f| f.application_id == Some(app.id) && f.state == UploadState::Stored)
                .map(|f| ExportedAttachment {
                    id: f.id,
                    filename: f.filename.clone(),
                    content_type: f.content_type.clone().unwrap_or_default(),
                    size_bytes: f.size_bytes,
                    sha256: f.sha256.clone().unwrap_or_default(),
                    document: f.document_key.clone(),
                    href: format!("{origin}/api/attachments/{}", f.id),
                })
                .collect(),
        });
    }
    txn.commit().await?;
    Ok(out)
}

type XmlWriter = Writer<Cursor<Vec<u8>>>;

fn xml_err(e: impl std::fmt::Display) -> AppError {
    AppError::internal("writing XML", anyhow::anyhow!("{e}"))
}

fn text_el(w: &mut XmlWriter, name: &str, text: &str) -> AppResult<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(&xml_safe(text)))
        .map_err(xml_err)?;
    Ok(())
}

fn opt_el(w: &mut XmlWriter, name: &str, text: Option<String>) -> AppResult<()> {
    match text {
        Some(t) => text_el(w, name, &t),
        None => Ok(()),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// XML 1.0 cannot carry most control characters, even escaped; they are dropped.
fn xml_safe(s: &str) -> String {
    s.chars()
        .filter(|c| {
            matches!(c, '\t' | '\n' | '\r') || (*c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        })
        .collect()
}

fn start(w: &mut XmlWriter, el: BytesStart<'_>) -> AppResult<()> {
    w.write_event(Event::Start(el)).map_err(xml_err)?;
    Ok(())
}

fn end(w: &mut XmlWriter, name: &str) -> AppResult<()> {
    w.write_event(Event::End(BytesEnd::new(name)))
        .map_err(xml_err)?;
    Ok(())
}

/// One JSON value as `<string>`, `<number>`, `<boolean>`, `<null/>`, `<array>` or `<object>` with
/// `<member key="…">` children.
fn json_value(w: &mut XmlWriter, v: &Value) -> AppResult<()> {
    match v {
        Value::Null => {
            w.write_event(Event::Empty(BytesStart::new("null")))
                .map_err(xml_err)?;
        }
        Value::Bool(b) => text_el(w, "boolean", if *b { "true" } else { "false" })?,
        Value::Number(n) => text_el(w, "number", &n.to_string())?,
        Value::String(s) => text_el(w, "string", s)?,
        Value::Array(items) => {
            start(w, BytesStart::new("array"))?;
            for i in items {
                json_value(w, i)?;
            }
            end(w, "array")?;
        }
        Value::Object(map) => {
            start(w, BytesStart::new("object"))?;
            for (k, v) in map {
                json_member(w, k, v)?;
            }
            end(w, "object")?;
        }
    }
    Ok(())
}

fn json_member(w: &mut XmlWriter, key: &str, v: &Value) -> AppResult<()> {
    let key = xml_safe(key);
    start(
        w,
        BytesStart::new("member").with_attributes([("key", key.as_str())]),
    )?;
    json_value(w, v)?;
    end(w, "member")
}

fn write_application(w: &mut XmlWriter, a: &ExportedApplication) -> AppResult<()> {
    let seq = a.sequence.to_string();
    let id = a.id.to_string();
    start(
        w,
        BytesStart::new("application")
            .with_attributes([("id", id.as_str()), ("sequence", seq.as_str())]),
    )?;
    text_el(w, "reference", &a.reference)?;
    start(w, BytesStart::new("tenant"))?;
    text_el(w, "slug", &a.tenant.slug)?;
    text_el(w, "name", &a.tenant.name)?;
    text_el(w, "ags", &a.tenant.ags)?;
    end(w, "tenant")?;
    start(w, BytesStart::new("service"))?;
    text_el(w, "slug", &a.service.slug)?;
    text_el(w, "title", &a.service.title)?;
    opt_el(w, "leikaCode", a.service.leika_code.clone())?;
    text_el(w, "revision", &a.service.revision.to_string())?;
    opt_el(
        w,
        "templateId",
        a.service.template_id.map(|u| u.to_string()),
    )?;
    opt_el(
        w,
        "templateVersionId",
        a.service.template_version_id.map(|u| u.to_string()),
    )?;
    end(w, "service")?;
    text_el(w, "state", &a.state)?;
    text_el(w, "submittedAt", &ts(a.submitted_at))?;
    text_el(w, "updatedAt", &ts(a.updated_at))?;
    opt_el(w, "decidedAt", a.decided_at.map(ts))?;
    opt_el(w, "closedAt", a.closed_at.map(ts))?;
    opt_el(w, "erasedAt", a.erased_at.map(ts))?;
    opt_el(w, "contactEmail", a.contact_email.clone())?;
    opt_el(w, "assuranceLevel", a.assurance_level.clone())?;
    opt_el(w, "postboxHandle", a.postbox_handle.clone())?;
    if let Some(Value::Object(fields)) = &a.data {
        start(w, BytesStart::new("data"))?;
        for (k, v) in fields {
            json_member(w, k, v)?;
        }
        end(w, "data")?;
    }
    start(w, BytesStart::new("routing"))?;
    for t in &a.routing {
        start(
            w,
            BytesStart::new("task").with_attributes([("state", t.state.as_str())]),
        )?;
        text_el(w, "departmentKey", &t.department_key)?;
        text_el(w, "departmentName", &t.department_name)?;
        text_el(w, "ruleKey", &t.rule_key)?;
        opt_el(w, "completedAt", t.completed_at.map(ts))?;
        end(w, "task")?;
    }
    end(w, "routing")?;
    start(
        w,
        BytesStart::new("fees").with_attributes([("currency", a.currency.as_str())]),
    )?;
    for f in &a.fees {
        let amount = f.amount_cents.to_string();
        start(
            w,
            BytesStart::new("fee")
                .with_attributes([("key", f.key.as_str()), ("amountCents", amount.as_str())]),
        )?;
        text_el(w, "label", &f.label)?;
        end(w, "fee")?;
    }
    end(w, "fees")?;
    start(w, BytesStart::new("payments"))?;
    for p in &a.payments {
        let (id, amount, refunded) = (
            p.id.to_string(),
            p.amount_cents.to_string(),
            p.refunded_cents.to_string(),
        );
        start(
            w,
            BytesStart::new("payment").with_attributes([
                ("id", id.as_str()),
                ("amountCents", amount.as_str()),
                ("refundedCents", refunded.as_str()),
                ("currency", p.currency.as_str()),
            ]),
        )?;
        text_el(w, "provider", &p.provider)?;
        text_el(w, "state", &p.state)?;
        opt_el(w, "paidAt", p.paid_at.map(ts))?;
        opt_el(w, "providerPaymentId", p.provider_payment_id.clone())?;
        end(w, "payment")?;
    }
    end(w, "payments")?;
    start(w, BytesStart::new("attachments"))?;
    for f in &a.attachments {
        let id = f.id.to_string();
        start(
            w,
            BytesStart::new("attachment").with_attributes([("id", id.as_str())]),
        )?;
        text_el(w, "filename", &f.filename)?;
        text_el(w, "contentType", &f.content_type)?;
        text_el(w, "size", &f.size_bytes.to_string())?;
        text_el(w, "sha256", &f.sha256)?;
        opt_el(w, "document", f.document.clone())?;
        text_el(w, "href", &f.href)?;
        end(w, "attachment")?;
    }
    end(w, "attachments")?;
    end(w, "application")
}

fn writer() -> AppResult<XmlWriter> {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(xml_err)?;
    Ok(w)
}

fn finish(w: XmlWriter) -> AppResult<String> {
    String::from_utf8(w.into_inner().into_inner()).map_err(xml_err)
}

/// One application as an XML document (root `applicationExport` with one `application`).
pub fn to_xml(a: &ExportedApplication) -> AppResult<String> {
    let mut w = writer()?;
    write_root(&mut w, "applicationExport", None, std::slice::from_ref(a))?;
    finish(w)
}

/// A batch as an XML document (root `applicationExport` with `cursor`).
pub fn batch_to_xml(apps: &[ExportedApplication], cursor: i64) -> AppResult<String> {
    let mut w = writer()?;
    write_root(&mut w, "applicationExport", Some(cursor), apps)?;
    finish(w)
}

fn write_root(
    w: &mut XmlWriter,
    root: &str,
    cursor: Option<i64>,
    apps: &[ExportedApplication],
) -> AppResult<()> {
    let cursor = cursor.map(|c| c.to_string());
    let mut el = BytesStart::new(root).with_attributes([("xmlns", XML_NAMESPACE)]);
    if let Some(c) = &cursor {
        el.push_attribute(("cursor", c.as_str()));
    }
    start(w, el)?;
    for a in apps {
        write_application(w, a)?;
    }
    end(w, root)
}
