//! Service content: one JSON document that is the whole service — form (JSON Schema 2020-12 for the
//! data plus a layout of steps and fields), workflow, routing, fees, appointment need, required
//! documents, texts. Template versions publish it; tenant services resolve to it.
//!
//! Every list an overlay may touch is a list of objects with a stable `key` (or a set of strings),
//! so the keyed merge in [`crate::services::merge`] addresses elements by key, never by index.
//! [`ServiceContent::parse`] is the only way in: unknown keys, dangling references and invalid
//! JSON Schema come back as one message per path (JSON Pointer over that keyed view).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AppError, FieldErrors};

/// Largest accepted content document (serialized JSON).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
const MAX_FIELDS: usize = 300;
const MAX_TEXT: usize = 4_000;

/// A stable key: lowercase letter first, then lowercase letters, digits and `_`, at most 63.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Key(String);

impl Key {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if first_ok && rest_ok && s.len() <= 63 {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a key (a lowercase letter, then lowercase letters, digits or _; at most 63)"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Key {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Key> for String {
    fn from(k: Key) -> Self {
        k.0
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A text in German (required) and English (optional).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I18n {
    pub de: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub en: Option<String>,
}

/// The whole service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceContent {
    pub title: I18n,
    pub summary: I18n,
    /// LeiKa service key (Leistungskatalog), 14 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leika_code: Option<String>,
    /// A key such as `ordnung`, `verkehr`, `abfall`, `meldewesen`.
    pub category: Key,
    pub form: Form,
    #[serde(default = "Workflow::municipal_default")]
    pub workflow: Workflow,
    /// Each rule whose condition holds sends the application to its department (one task each).
    #[serde(default)]
    pub routing: Vec<RoutingRule>,
    /// ISO 4217 currency of all fees.
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default)]
    pub fees: Vec<Fee>,
    /// Whether processing starts only after the fees are paid.
    #[serde(default)]
    pub payment_required_before_processing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<Appointment>,
    #[serde(default)]
    pub required_documents: Vec<RequiredDocument>,
    /// Limits on files citizens attach (defaults: [`AttachmentRules::default`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<AttachmentRules>,
    /// Free texts by key (confirmation page, legal notes, …).
    #[serde(default)]
    pub texts: BTreeMap<Key, I18n>,
    /// Days a closed application is kept before it may be erased (GDPR); default two years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

impl ServiceContent {
    pub const DEFAULT_RETENTION_DAYS: u32 = 730;

    pub fn retention_days(&self) -> u32 {
        self.retention_days.unwrap_or(Self::DEFAULT_RETENTION_DAYS)
    }

    pub fn attachment_rules(&self) -> AttachmentRules {
        self.attachments.clone().unwrap_or_default()
    }
}

/// How many files of which size and type an application (or its draft) may carry. A file for
/// a required document must also be one of that document's `contentTypes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AttachmentRules {
    #[serde(default = "AttachmentRules::default_max_file_bytes")]
    pub max_file_bytes: u64,
    #[serde(default = "AttachmentRules::default_max_files")]
    pub max_files: u32,
    /// Types of files that are not for a required document.
    #[serde(default = "AttachmentRules::default_content_types")]
    pub content_types: Vec<String>,
}

impl AttachmentRules {
    /// Largest `maxFileBytes` a service may declare (the server's own limit may be lower).
    pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

    fn default_max_file_bytes() -> u64 {
        10 * 1024 * 1024
    }
    fn default_max_files() -> u32 {
        20
    }
    fn default_content_types() -> Vec<String> {
        CONTENT_TYPES.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl Default for AttachmentRules {
    fn default() -> Self {
        Self {
            max_file_bytes: Self::default_max_file_bytes(),
            max_files: Self::default_max_files(),
            content_types: Self::default_content_types(),
        }
    }
}

fn default_currency() -> String {
    "EUR".to_owned()
}

/// The form: JSON Schema for the data, and how it is laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Form {
    /// JSON Schema (draft 2020-12) of an object whose properties are the field keys.
    pub schema: Value,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    pub key: Key,
    pub title: I18n,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<I18n>,
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_if: Option<Condition>,
}

/// One field of the layout; its data type and constraints live in the schema property of the
/// same key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Field {
    pub key: Key,
    pub label: I18n,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<I18n>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_if: Option<Condition>,
}

/// A condition on field values (visibility, routing, fees, documents).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Condition {
    Equals(FieldValue),
    NotEquals(FieldValue),
    In(FieldValues),
    GreaterThan(FieldValue),
    LessThan(FieldValue),
    IsSet(FieldOnly),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldValue {
    pub field: Key,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldValues {
    pub field: Key,
    pub values: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOnly {
    pub field: Key,
}

impl Condition {
    /// Whether the condition holds for the submitted data (an object of field values).
    pub fn holds(&self, data: &Value) -> bool {
        let get = |k: &Key| data.get(k.as_str()).filter(|v| !v.is_null());
        let num = |v: Option<&Value>| v.and_then(Value::as_f64);
        match self {
            Self::Equals(c) => get(&c.field) == Some(&c.value),
            Self::NotEquals(c) => get(&c.field) != Some(&c.value),
            Self::In(c) => get(&c.field).is_some_and(|v| c.values.contains(v)),
            Self::GreaterThan(c) => {
                matches!((num(get(&c.field)), c.value.as_f64()), (Some(a), Some(b)) if a > b)
            }
            Self::LessThan(c) => {
                matches!((num(get(&c.field)), c.value.as_f64()), (Some(a), Some(b)) if a < b)
            }
            Self::IsSet(c) => get(&c.field).is_some(),
            Self::All(cs) => cs.iter().all(|c| c.holds(data)),
            Self::Any(cs) => cs.iter().any(|c| c.holds(data)),
            Self::Not(c) => !c.holds(data),
        }
    }

    fn fields<'a>(&'a self, out: &mut Vec<&'a Key>) {
        match self {
            Self::Equals(c) | Self::NotEquals(c) | Self::GreaterThan(c) | Self::LessThan(c) => {
                out.push(&c.field);
            }
            Self::In(c) => out.push(&c.field),
            Self::IsSet(c) => out.push(&c.field),
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.fields(out)),
            Self::Not(c) => c.fields(out),
        }
    }
}

/// The states an application goes through and who may move it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workflow {
    /// The state a submitted application starts in.
    pub initial: Key,
    pub states: Vec<WorkflowState>,
    pub transitions: Vec<Transition>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowState {
    pub key: Key,
    pub label: I18n,
    /// No transitions leave it (completed, withdrawn, …).
    #[serde(default)]
    pub terminal: bool,
    /// A decision has been made (the citizen can no longer withdraw).
    #[serde(default)]
    pub decided: bool,
    /// Staff asked the citizen for information; the citizen's answer moves the application on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaits_citizen: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transition {
    pub key: Key,
    pub from: Key,
    pub to: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<I18n>,
    /// Who may take it.
    #[serde(default)]
    pub actor: Actor,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Actor {
    #[default]
    Staff,
    Citizen,
}

impl Workflow {
    /// DESIGN.md 6: submitted → in_review ↔ needs_info → approved | rejected → completed;
    /// withdrawn by the citizen before a decision.
    pub fn municipal_default() -> Self {
        let label = |de: &str, en: &str| I18n {
            de: de.to_owned(),
            en: Some(en.to_owned()),
        };
        let key = |s: &str| Key(s.to_owned());
        let state = |k: &str, de: &str, en: &str, terminal: bool, decided: bool| WorkflowState {
            key: key(k),
            label: label(de, en),
            terminal,
            decided,
            awaits_citizen: k == "needs_info",
        };
        let t = |from: &str, to: &str, actor: Actor| Transition {
            key: key(&format!("{from}_to_{to}")),
            from: key(from),
            to: key(to),
            label: None,
            actor,
        };
        Self {
            initial: key("submitted"),
            states: vec![
                state("submitted", "Eingereicht", "Submitted", false, false),
                state("in_review", "In Bearbeitung", "In review", false, false),
                state(
                    "needs_info",
                    "Rückfrage",
                    "Information needed",
                    false,
                    false,
                ),
                state("approved", "Bewilligt", "Approved", false, true),
                state("rejected", "Abgelehnt", "Rejected", false, true),
                state("completed", "Abgeschlossen", "Completed", true, true),
                state("withdrawn", "Zurückgezogen", "Withdrawn", true, false),
            ],
            transitions: vec![
                t("submitted", "in_review", Actor::Staff),
                t("in_review", "needs_info", Actor::Staff),
                t("needs_info", "in_review", Actor::Staff),
                t("in_review", "approved", Actor::Staff),
                t("in_review", "rejected", Actor::Staff),
                t("approved", "completed", Actor::Staff),
                t("rejected", "completed", Actor::Staff),
                t("submitted", "withdrawn", Actor::Citizen),
                t("in_review", "withdrawn", Actor::Citizen),
                t("needs_info", "withdrawn", Actor::Citizen),
            ],
        }
    }
}

/// Sends matching applications to a department of the tenant (by the department's key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoutingRule {
    pub key: Key,
    /// No condition: always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    pub department: Key,
}

/// A fee: `amountCents`, or `amountCents` × the number in `perField` (e.g. per dog).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fee {
    pub key: Key,
    pub label: I18n,
    pub amount_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_field: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Appointment {
    /// Whether an appointment must be booked (else it is offered).
    pub required: bool,
    pub duration_minutes: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequiredDocument {
    pub key: Key,
    pub label: I18n,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<I18n>,
    /// Whether submission needs it (else optional).
    #[serde(default = "yes")]
    pub required: bool,
    /// Allowed content types (`application/pdf`, `image/jpeg`, `image/png`).
    pub content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
}

fn yes() -> bool {
    true
}

/// The file types a service may accept (checked by their magic bytes on upload).
pub const CONTENT_TYPES: &[&str] = &["application/pdf", "image/jpeg", "image/png"];

/// What a form change means for data already collected (semver of template versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    Patch,
    Minor,
    Major,
}

impl ServiceContent {
    /// Parses and validates a content document. Errors: one message per JSON Pointer path.
    pub fn parse(raw: &Value) -> Result<Self, AppError> {
        let size = serde_json::to_vec(raw)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONTENT_BYTES {
            return Err(AppError::invalid(
                "",
                format!("content is {size} bytes; at most {MAX_CONTENT_BYTES} are allowed"),
            ));
        }
        let content: Self = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = keyed_pointer(raw, e.path());
            AppError::invalid(path, e.into_inner().to_string())
        })?;
        let errors = content.check();
        if errors.is_empty() {
            Ok(content)
        } else {
            Err(AppError::Validation(errors))
        }
    }

    /// The canonical JSON form (defaults filled in), which is what gets stored and merged.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The schema's properties (field key → property schema).
    pub fn properties(&self) -> BTreeMap<&str, &Value> {
        self.form
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default()
    }

    fn required_fields(&self) -> BTreeSet<&str> {
        self.form
            .schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// Department keys the routing sends applications to.
    pub fn routing_departments(&self) -> BTreeSet<&str> {
        self.routing.iter().map(|r| r.department.as_str()).collect()
    }

    /// Semantic checks beyond the shape: references resolve, keys are unique, the schema is a
    /// valid draft 2020-12 schema of an object.
    fn check(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let mut err = |path: String, msg: String| {
            errors.entry(path).or_insert(msg);
        };
        for (path, text) in self.texts_with_paths() {
            if text.de.trim().is_empty() {
                err(format!("{path}/de"), "must not be empty".into());
            }
            if text.de.len() > MAX_TEXT || text.en.as_ref().is_some_and(|t| t.len() > MAX_TEXT) {
                err(path, format!("texts are at most {MAX_TEXT} bytes"));
            }
        }
        if let Some(code) = &self.leika_code
            && (code.len() != 14 || !code.bytes().all(|b| b.is_ascii_digit()))
        {
            err("/leikaCode".into(), "a LeiKa key has 14 digits".into());
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            err("/currency".into(), "an ISO 4217 code such as EUR".into());
        }

        // The schema: valid 2020-12, an object, properties keyed like fields.
        let schema = &self.form.schema;
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            err(
                format!("/form/schema{}", e.instance_path()),
                format!("not a valid JSON Schema (draft 2020-12): {e}"),
            );
        } else if let Err(e) = jsonschema::draft202012::new(schema) {
            err("/form/schema".into(), format!("cannot be compiled: {e}"));
        }
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            err("/form/schema/type".into(), "must be \"object\"".into());
        }
        let properties = self.properties();
        if properties.len() > MAX_FIELDS {
            err(
                "/form/schema/properties".into(),
                format!("at most {MAX_FIELDS} fields"),
            );
        }
        for key in properties.keys() {
            if let Err(msg) = Key::parse(key) {
                err(format!("/form/schema/properties/{}", escape(key)), msg);
            }
        }
        for req in self.required_fields() {
            if !properties.contains_key(req) {
                err(
                    format!("/form/schema/required/{}", escape(req)),
                    format!("`{req}` is not a property of the schema"),
                );
            }
        }

        // Layout: unique step keys, every field placed exactly once and defined by the schema.
        let mut steps = BTreeSet::new();
        let mut placed: BTreeMap<&str, String> = BTreeMap::new();
        for step in &self.form.steps {
            let sp = format!("/form/steps/{}", step.key);
            if !steps.insert(step.key.as_str()) {
                err(sp.clone(), "duplicate step key".into());
            }
            for field in &step.fields {
                let fp = format!("{sp}/fields/{}", field.key);
                if let Some(other) = placed.insert(field.key.as_str(), fp.clone()) {
                    err(fp.clone(), format!("field already placed at {other}"));
                }
                if !properties.contains_key(field.key.as_str()) {
                    err(
                        fp,
                        format!("the schema defines no property `{}`", field.key),
                    );
                }
            }
        }
        if self.form.steps.is_empty() {
            err(
                "/form/steps".into(),
                "a form needs at least one step".into(),
            );
        }
        for key in properties.keys() {
            if !placed.contains_key(key) {
                err(
                    format!("/form/schema/properties/{}", escape(key)),
                    "the field is in no step of the layout".into(),
                );
            }
        }

        // Conditions name existing fields.
        let mut conditions: Vec<(String, &Condition)> = Vec::new();
        for step in &self.form.steps {
            let sp = format!("/form/steps/{}", step.key);
            if let Some(c) = &step.visible_if {
                conditions.push((format!("{sp}/visibleIf"), c));
            }
            for f in &step.fields {
                if let Some(c) = &f.visible_if {
                    conditions.push((format!("{sp}/fields/{}/visibleIf", f.key), c));
                }
            }
        }
        for r in &self.routing {
            if let Some(c) = &r.when {
                conditions.push((format!("/routing/{}/when", r.key), c));
            }
        }
        for f in &self.fees {
            if let Some(c) = &f.when {
                conditions.push((format!("/fees/{}/when", f.key), c));
            }
        }
        for d in &self.required_documents {
            if let Some(c) = &d.when {
                conditions.push((format!("/requiredDocuments/{}/when", d.key), c));
            }
        }
        for (path, c) in conditions {
            let mut fields = Vec::new();
            c.fields(&mut fields);
            for f in fields {
                if !properties.contains_key(f.as_str()) {
                    err(path.clone(), format!("refers to unknown field `{f}`"));
                }
            }
        }

        // Workflow: unique states, transitions between known states, initial known.
        let states: BTreeSet<&str> = self
            .workflow
            .states
            .iter()
            .map(|s| s.key.as_str())
            .collect();
        if states.len() != self.workflow.states.len() {
            err("/workflow/states".into(), "duplicate state keys".into());
        }
        if !states.contains(self.workflow.initial.as_str()) {
            err(
                "/workflow/initial".into(),
                format!("`{}` is not a state", self.workflow.initial),
            );
        }
        if !self.workflow.states.iter().any(|s| s.terminal) {
            err(
                "/workflow/states".into(),
                "at least one state must be terminal".into(),
            );
        }
        unique(
            &mut err,
            "/workflow/transitions",
            self.workflow.transitions.iter().map(|t| &t.key),
        );
        for t in &self.workflow.transitions {
            for (end, state) in [("from", &t.from), ("to", &t.to)] {
                if !states.contains(state.as_str()) {
                    err(
                        format!("/workflow/transitions/{}/{end}", t.key),
                        format!("`{state}` is not a state"),
                    );
                }
            }
            let terminal = self
                .workflow
                .states
                .iter()
                .any(|s| s.key == t.from && s.terminal);
            if terminal {
                err(
                    format!("/workflow/transitions/{}/from", t.key),
                    format!("`{}` is terminal; nothing leaves it", t.from),
                );
            }
        }

        unique(&mut err, "/routing", self.routing.iter().map(|r| &r.key));
        unique(&mut err, "/fees", self.fees.iter().map(|f| &f.key));
        for fee in &self.fees {
            let fp = format!("/fees/{}", fee.key);
            if !(0..=100_000_000).contains(&fee.amount_cents) {
                err(
                    format!("{fp}/amountCents"),
                    "must be between 0 and 100000000".into(),
                );
            }
            if let Some(field) = &fee.per_field {
                let numeric = properties.get(field.as_str()).is_some_and(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("integer" | "number")
                    )
                });
                if !numeric {
                    err(
                        format!("{fp}/perField"),
                        format!("`{field}` is not an integer or number field"),
                    );
                }
            }
        }
        if let Some(a) = &self.appointment
            && !(5..=480).contains(&a.duration_minutes)
        {
            err(
                "/appointment/durationMinutes".into(),
                "between 5 and 480 minutes".into(),
            );
        }
        unique(
            &mut err,
            "/requiredDocuments",
            self.required_documents.iter().map(|d| &d.key),
        );
        for d in &self.required_documents {
            if d.content_types.is_empty() {
                err(
                    format!("/requiredDocuments/{}/contentTypes", d.key),
                    "name at least one content type".into(),
                );
            }
            for ct in &d.content_types {
                if !CONTENT_TYPES.contains(&ct.as_str()) {
                    err(
                        format!("/requiredDocuments/{}/contentTypes/{}", d.key, escape(ct)),
                        format!("allowed: {}", CONTENT_TYPES.join(", ")),
                    );
                }
            }
        }
        if let Some(a) = &self.attachments {
            if !(1..=AttachmentRules::MAX_FILE_BYTES).contains(&a.max_file_bytes) {
                err(
                    "/attachments/maxFileBytes".into(),
                    format!("between 1 and {} bytes", AttachmentRules::MAX_FILE_BYTES),
                );
            }
            if !(1..=100).contains(&a.max_files) {
                err("/attachments/maxFiles".into(), "between 1 and 100".into());
            }
            for ct in &a.content_types {
                if !CONTENT_TYPES.contains(&ct.as_str()) {
                    err(
                        format!("/attachments/contentTypes/{}", escape(ct)),
                        format!("allowed: {}", CONTENT_TYPES.join(", ")),
                    );
                }
            }
        }
        errors
    }

    fn texts_with_paths(&self) -> Vec<(String, &I18n)> {
        let mut out = vec![
            ("/title".to_owned(), &self.title),
            ("/summary".to_owned(), &self.summary),
        ];
        for s in &self.form.steps {
            let sp = format!("/form/steps/{}", s.key);
            out.push((format!("{sp}/title"), &s.title));
            for f in &s.fields {
                out.push((format!("{sp}/fields/{}/label", f.key), &f.label));
            }
        }
        for s in &self.workflow.states {
            out.push((format!("/workflow/states/{}/label", s.key), &s.label));
        }
        for f in &self.fees {
            out.push((format!("/fees/{}/label", f.key), &f.label));
        }
        for d in &self.required_documents {
            out.push((format!("/requiredDocuments/{}/label", d.key), &d.label));
        }
        for (k, t) in &self.texts {
            out.push((format!("/texts/{k}"), t));
        }
        out
    }

    /// What this content changes for data collected under `previous`, with the reasons: removing
    /// or retyping a field, or making one required, is major; adding optional fields, steps,
    /// states, fees or documents is minor; anything else is a patch.
    pub fn impact_since(&self, previous: &Self) -> (Impact, Vec<String>) {
        let (old, new) = (previous.properties(), self.properties());
        let (old_req, new_req) = (previous.required_fields(), self.required_fields());
        let mut major = Vec::new();
        let mut minor = Vec::new();
        for (key, old_schema) in &old {
            match new.get(key) {
                None => major.push(format!("field `{key}` removed")),
                Some(new_schema) => {
                    let t = |s: &Value| s.get("type").cloned().unwrap_or(Value::Null);
                    if t(old_schema) != t(new_schema) {
                        major.push(format!(
                            "field `{key}` retyped from {} to {}",
                            t(old_schema),
                            t(new_schema)
                        ));
                    }
                    if new_req.contains(key) && !old_req.contains(key) {
                        major.push(format!("field `{key}` became required"));
                    }
                }
            }
        }
        for key in new.keys().filter(|k| !old.contains_key(*k)) {
            if new_req.contains(key) {
                major.push(format!("required field `{key}` added"));
            } else {
                minor.push(format!("optional field `{key}` added"));
            }
        }
        let new_states: BTreeSet<_> = self.workflow.states.iter().map(|s| &s.key).collect();
        for s in &previous.workflow.states {
            if !new_states.contains(&s.key) {
                major.push(format!("workflow state `{}` removed", s.key));
            }
        }
        let added = |old: Vec<&Key>, new: Vec<&Key>, what: &str, out: &mut Vec<String>| {
            for k in new.iter().filter(|k| !old.contains(k)) {
                out.push(format!("{what} `{k}` added"));
            }
        };
        added(
            previous.form.steps.iter().map(|s| &s.key).collect(),
            self.form.steps.iter().map(|s| &s.key).collect(),
            "step",
            &mut minor,
        );
        added(
            previous.workflow.states.iter().map(|s| &s.key).collect(),
            self.workflow.states.iter().map(|s| &s.key).collect(),
            "workflow state",
            &mut minor,
        );
        added(
            previous.fees.iter().map(|f| &f.key).collect(),
            self.fees.iter().map(|f| &f.key).collect(),
            "fee",
            &mut minor,
        );
        added(
            previous.required_documents.iter().map(|d| &d.key).collect(),
            self.required_documents.iter().map(|d| &d.key).collect(),
            "required document",
            &mut minor,
        );
        if !major.is_empty() {
            (Impact::Major, major)
        } else if !minor.is_empty() {
            (Impact::Minor, minor)
        } else {
            (Impact::Patch, vec![])
        }
    }
}

fn unique<'a>(
    err: &mut impl FnMut(String, String),
    path: &str,
    keys: impl Iterator<Item = &'a Key>,
) {
    let mut seen = BTreeSet::new();
    for k in keys {
        if !seen.insert(k) {
            err(format!("{path}/{k}"), "duplicate key".into());
        }
    }
}

/// RFC 6901 escaping of one path segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Turns serde's path (with list indexes) into a JSON Pointer over the keyed view: an element of
/// a list is named by its `key` when it has one.
fn keyed_pointer(raw: &Value, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut node = Some(raw);
    for seg in path.iter() {
        match seg {
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&escape(key));
                node = node.and_then(|n| n.get(key.as_str()));
            }
            Segment::Seq { index } => {
                let elem = node.and_then(|n| n.get(*index));
                match elem.and_then(|e| e.get("key")).and_then(Value::as_str) {
                    Some(k) => out.push_str(&format!("/{}", escape(k))),
                    None => out.push_str(&format!("/{index}")),
                }
                node = elem;
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Random JSON for property tests of untrusted input, with keys the content and forms use.
#[cfg(test)]
pub(crate) fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_$/~ ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("key".to_owned()),
                    Just("type".to_owned()),
                    Just("properties".to_owned()),
                    Just("field".to_owned()),
                    Just("dog_count".to_owned()),
                    Just("listed_breed".to_owned()),
                    Just("email".to_owned()),
                    "[a-zA-Z_]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn dog_tax() -> Value {
        json!({
            "title": {"de": "Hundesteuer anmelden", "en": "Register a dog for dog tax"},
            "summary": {"de": "Anmeldung eines Hundes zur Hundesteuer"},
            "leikaCode": "99015003001000",
            "category": "steuern",
            "form": {
                "schema": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {
                        "owner_name": {"type": "string", "maxLength": 200},
                        "dog_count": {"type": "integer", "minimum": 1, "maximum": 20}
                    },
                    "required": ["owner_name", "dog_count"],
                    "additionalProperties": false
                },
                "steps": [{
                    "key": "owner",
                    "title": {"de": "Halter"},
                    "fields": [
                        {"key": "owner_name", "label": {"de": "Name"}},
                        {"key": "dog_count", "label": {"de": "Anzahl Hunde"}}
                    ]
                }]
            },
            "routing": [{"key": "tax", "department": "steueramt"}],
            "fees": [{"key": "tax", "label": {"de": "Jahressteuer"}, "amountCents": 9600, "perField": "dog_count"}]
        })
    }

    #[test]
    fn a_valid_document_parses_and_gets_the_default_workflow() {
        let c = ServiceContent::parse(&dog_tax()).unwrap();
        assert_eq!(c.workflow.initial.as_str(), "submitted");
        assert_eq!(c.to_value()["currency"], "EUR");
        // The canonical form parses to the same content.
        assert_eq!(ServiceContent::parse(&c.to_value()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_reported_with_a_keyed_path() {
        let mut doc = dog_tax();
        doc["form"]["steps"][0]["fields"][1]["lable"] = json!("x");
        let AppError::Validation(errors) = ServiceContent::parse(&doc).unwrap_err() else {
            panic!("expected validation")
        };
        let (path, msg) = errors.iter().next().unwrap();
        assert_eq!(path, "/form/steps/owner/fields/dog_count/lable");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn dangling_references_and_invalid_schema_are_reported_per_path() {
        let mut doc = dog_tax();
        doc["form"]["steps"][0]["fields"][0]["key"] = json!("owner");
        doc["routing"][0]["when"] = json!({"equals": {"field": "nope", "value": true}});
        doc["form"]["schema"]["properties"]["dog_count"]["minimum"] = json!("one");
        let AppError::Validation(errors) = ServiceContent::parse(&doc).unwrap_err() else {
            panic!("expected validation")
        };
        assert!(
            errors.contains_key("/form/steps/owner/fields/owner"),
            "{errors:?}"
        );
        assert!(errors.contains_key("/routing/tax/when"), "{errors:?}");
        assert!(
            errors.keys().any(|k| k.starts_with("/form/schema")),
            "{errors:?}"
        );
        assert!(
            errors.contains_key("/form/schema/properties/owner_name"),
            "{errors:?}"
        );
    }

    #[test]
    fn impact_names_removed_retyped_and_added_fields() {
        let old = ServiceContent::parse(&dog_tax()).unwrap();
        let mut doc = dog_tax();
        doc["form"]["schema"]["properties"]["breed"] = json!({"type": "string"});
        doc["form"]["steps"][0]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "breed", "label": {"de": "Rasse"}}));
        let added = ServiceContent::parse(&doc).unwrap();
        assert_eq!(added.impact_since(&old).0, Impact::Minor);

        doc["form"]["schema"]["properties"]["dog_count"] = json!({"type": "string"});
        doc["fees"][0].as_object_mut().unwrap().remove("perField");
        let retyped = ServiceContent::parse(&doc).unwrap();
        let (impact, why) = retyped.impact_since(&old);
        assert_eq!(impact, Impact::Major);
        assert!(
            why.iter()
                .any(|w| w.contains("dog_count") && w.contains("retyped")),
            "{why:?}"
        );

        let mut title_only = dog_tax();
        title_only["title"]["de"] = json!("Hund anmelden");
        let patched = ServiceContent::parse(&title_only).unwrap();
        assert_eq!(patched.impact_since(&old), (Impact::Patch, vec![]));
    }

    #[test]
    fn conditions_evaluate_against_data() {
        let c: Condition = serde_json::from_value(json!({"all": [
            {"equals": {"field": "has_business", "value": true}},
            {"greaterThan": {"field": "dogs", "value": 1}}
        ]}))
        .unwrap();
        assert!(c.holds(&json!({"has_business": true, "dogs": 2})));
        assert!(!c.holds(&json!({"has_business": true, "dogs": 1})));
        assert!(!c.holds(&json!({"dogs": 3})));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Untrusted content never panics the parser and fails only with field errors.
        #[test]
        fn arbitrary_json_is_rejected_with_field_errors_never_a_panic(doc in super::arbitrary_json()) {
            match ServiceContent::parse(&doc) {
                Ok(_) | Err(AppError::Validation(_)) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        /// A valid document with one value replaced anywhere still parses or fails with paths.
        #[test]
        fn a_valid_document_with_one_value_swapped_fails_cleanly(
            pick in 0usize..400,
            replacement in super::arbitrary_json(),
        ) {
            let mut doc = dog_tax();
            let mut n = 0;
            swap_nth(&mut doc, pick, &mut n, &replacement);
            match ServiceContent::parse(&doc) {
                Ok(c) => {
                    // What parses, round-trips through its canonical form.
                    proptest::prop_assert_eq!(ServiceContent::parse(&c.to_value()).ok(), Some(c));
                }
                Err(AppError::Validation(fields)) => proptest::prop_assert!(!fields.is_empty()),
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }

    fn swap_nth(v: &mut Value, target: usize, n: &mut usize, with: &Value) -> bool {
        if *n == target {
            *v = with.clone();
            return true;
        }
        *n += 1;
        match v {
            Value::Array(items) => items.iter_mut().any(|i| swap_nth(i, target, n, with)),
            Value::Object(map) => map.values_mut().any(|i| swap_nth(i, target, n, with)),
            _ => false,
        }
    }
}
