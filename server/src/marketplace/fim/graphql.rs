//! GraphQL of the FIM import: `importFimSchema` for template authors.

use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use serde_json::Value;

use super::{ImportInput, Report, Warning, import};
use crate::graphql::tenant_ctx;

#[derive(InputObject)]
pub struct ImportFimSchemaInput {
    /// The XDatenfelder 2 schema message (`xdatenfelder.stammdatenschema.0102`), as XML text.
    pub xml: String,
    /// The Genericode code lists of its `select` fields, as XML texts (optional: a field whose
    /// list is missing takes free text, and the report warns).
    #[graphql(default)]
    pub code_lists: Vec<String>,
    /// The category of the resulting content (a key such as `ordnung`).
    #[graphql(default_with = "String::from(\"fim\")")]
    pub category: String,
}

/// Something the author should look at.
#[derive(SimpleObject)]
pub struct FimImportWarning {
    /// FIM ids from the schema down to the element (`S00000094/G00000253/F60000319`).
    pub path: String,
    /// Where the element went in the content (its entry in `content.fim.elements`), if anywhere.
    pub key: Option<String>,
    pub message: String,
}

/// What the import read and made. Counts of fields and groups count every place an element
/// occurs (the same address group in two steps counts twice), `distinct…` each (id, version)
/// once.
#[derive(SimpleObject)]
pub struct FimImportReport {
    /// `xdatenfelder-2`.
    pub standard: String,
    pub schema_id: String,
    pub schema_version: Option<String>,
    pub name: String,
    pub fields: i32,
    pub distinct_fields: i32,
    pub groups: i32,
    pub distinct_groups: i32,
    /// Rules (`regel`); each became a note in `content.fim.notes` and a warning.
    pub rules: i32,
    /// Code lists whose codes became choices.
    pub code_lists: i32,
    /// Code lists referenced but not supplied (their fields take free text).
    pub code_lists_missing: i32,
    pub steps: i32,
    pub properties: i32,
    pub documents: i32,
    pub warnings: Vec<FimImportWarning>,
}

fn n(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl From<Report> for FimImportReport {
    fn from(r: Report) -> Self {
        Self {
            standard: r.standard,
            schema_id: r.schema_id,
            schema_version: r.schema_version,
            name: r.name,
            fields: n(r.fields),
            distinct_fields: n(r.distinct_fields),
            groups: n(r.groups),
            distinct_groups: n(r.distinct_groups),
            rules: n(r.rules),
            code_lists: n(r.code_lists),
            code_lists_missing: n(r.code_lists_missing),
            steps: n(r.steps),
            properties: n(r.properties),
            documents: n(r.documents),
            warnings: r.warnings.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Warning> for FimImportWarning {
    fn from(w: Warning) -> Self {
        Self {
            path: w.path,
            key: w.key,
            message: w.message,
        }
    }
}

#[derive(SimpleObject)]
pub struct ImportFimSchemaPayload {
    /// The service content made from the schema: pass it (as it is, or edited) to
    /// `publishTemplateVersion`. Carries the FIM ids, code lists and rules under `fim`.
    pub content: Json<Value>,
    pub report: FimImportReport,
}

#[derive(Default)]
pub struct FimMutation;

#[Object]
impl FimMutation {
    /// Turns a FIM XDatenfelder 2 schema (and the Genericode code lists of its select fields)
    /// into a template version's content. Template authors only. Stores nothing: publish the
    /// content with `publishTemplateVersion` (new template or new version), then it is
    /// forked, customized and merged like any other template. Groups become steps (nested
    /// groups are flattened into their step), fields JSON Schema properties with layout fields,
    /// `anzahl` required/arrays, `praezisierung` length/pattern/range, code lists choices
    /// with labels; rules become notes for the author. Keys are made from the elements' FIM
    /// id paths. Errors: `VALIDATION_FAILED` with the input's path (not well-formed XML, a
    /// DOCTYPE — entities are never expanded —, NUL characters, XDatenfelder 1 or 3, a
    /// broken element with its FIM path), `PAYLOAD_TOO_LARGE` over 768 KiB of schema or
    /// 512 KiB per code list.
    async fn import_fim_schema(
        &self,
        ctx: &Context<'_>,
        input: ImportFimSchemaInput,
    ) -> async_graphql::Result<ImportFimSchemaPayload> {
        tenant_ctx(ctx)?.require_author()?;
        let imported = import(&ImportInput {
            xml: &input.xml,
            code_lists: &input.code_lists,
            category: &input.category,
            xml_field: "input.xml",
            code_lists_field: "input.codeLists",
        })?;
        Ok(ImportFimSchemaPayload {
            content: Json(imported.content),
            report: imported.report.into(),
        })
    }
}
