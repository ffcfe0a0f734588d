//! Parsing and checking a content document: shape, references, keys, the JSON Schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::documents::{AttachmentRules, CONTENT_TYPES};
use super::form::Condition;
use super::{I18n, Key, MAX_CONTENT_BYTES, ServiceContent, escape};
use crate::error::{AppError, FieldErrors};

const MAX_FIELDS: usize = 300;
const MAX_TEXT: usize = 4_000;

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
        for step in &self.form.steps {
            for field in &step.fields {
                let choices: BTreeSet<String> = properties
                    .get(field.key.as_str())
                    .and_then(|p| p.get("enum"))
                    .and_then(Value::as_array)
                    .map(|e| e.iter().map(value_text).collect())
                    .unwrap_or_default();
                for value in field.choices.keys() {
                    if !choices.contains(value) {
                        err(
                            format!(
                                "/form/steps/{}/fields/{}/choices/{}",
                                step.key,
                                field.key,
                                escape(value)
                            ),
                            format!("`{value}` is not a value of the field's enum"),
                        );
                    }
                }
            }
        }
        if let Some(deps) = schema.get("dependentRequired").and_then(Value::as_object) {
            for (key, list) in deps {
                let named = std::iter::once(key.as_str()).chain(
                    list.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                );
                for name in named {
                    if !properties.contains_key(name) {
                        err(
                            format!("/form/schema/dependentRequired/{}", escape(key)),
                            format!("`{name}` is not a property of the schema"),
                        );
                    }
                }
            }
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
        if let Some(fim) = &self.fim {
            unique(
                &mut err,
                "/fim/codeLists",
                fim.code_lists.iter().map(|c| &c.key),
            );
            unique(&mut err, "/fim/notes", fim.notes.iter().map(|n| &n.key));
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
                for (value, label) in &f.choices {
                    let path = format!("{sp}/fields/{}/choices/{}", f.key, escape(value));
                    out.push((path, label));
                }
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
}

/// A choice's value as the keys of [`crate::content::form::Field::choices`] name it.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::content::{arbitrary_json, dog_tax};

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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Untrusted content never panics the parser and fails only with field errors.
        #[test]
        fn arbitrary_json_is_rejected_with_field_errors_never_a_panic(doc in arbitrary_json()) {
            match ServiceContent::parse(&doc) {
                Ok(_) | Err(AppError::Validation(_)) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        /// A valid document with one value replaced anywhere still parses or fails with paths.
        #[test]
        fn a_valid_document_with_one_value_swapped_fails_cleanly(
            pick in 0usize..400,
            replacement in arbitrary_json(),
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
