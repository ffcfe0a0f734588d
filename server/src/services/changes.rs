//! The typed edits a tenant makes to its service (`customizeService`): add, modify or remove fields
//! and steps, change texts, fees, routing and workflow labels. Each edit addresses elements by
//! key; the result is validated as a whole and the overlay is recomputed as the keyed diff
//! against the pinned upstream version.

use serde_json::Value;

use crate::content::fees::Fee;
use crate::content::form::{Condition, Field, Step};
use crate::content::routing::RoutingRule;
use crate::content::{I18n, Key, ServiceContent};
use crate::error::{AppError, AppResult};

/// One edit.
#[derive(Clone, Debug)]
pub enum Change {
    AddField {
        step: Key,
        after: Option<Key>,
        field: Field,
        /// The JSON Schema of the field's value (e.g. `{"type": "string", "maxLength": 100}`).
        schema: Value,
        required: bool,
    },
    ModifyField {
        key: Key,
        label: Option<I18n>,
        help: Option<Option<I18n>>,
        schema: Option<Value>,
        required: Option<bool>,
        visible_if: Option<Option<Condition>>,
    },
    RemoveField {
        key: Key,
    },
    AddStep {
        after: Option<Key>,
        step: Step,
    },
    ModifyStep {
        key: Key,
        title: Option<I18n>,
        description: Option<Option<I18n>>,
    },
    /// Removes the step and its fields.
    RemoveStep {
        key: Key,
    },
    SetTitle {
        title: I18n,
    },
    SetSummary {
        summary: I18n,
    },
    SetText {
        key: Key,
        text: Option<I18n>,
    },
    AddFee {
        fee: Fee,
    },
    ModifyFee {
        key: Key,
        amount_cents: Option<i64>,
        label: Option<I18n>,
    },
    RemoveFee {
        key: Key,
    },
    AddRoutingRule {
        rule: RoutingRule,
    },
    SetRoutingDepartment {
        key: Key,
        department: Key,
    },
    RemoveRoutingRule {
        key: Key,
    },
    SetWorkflowLabel {
        state: Key,
        label: I18n,
    },
    /// Whether processing waits until the fees are paid.
    SetPaymentRequired {
        required: bool,
    },
    /// The eID assurance level citizens must sign in with (`None`: no requirement).
    SetAssuranceLevel {
        level: Option<crate::auth::assurance::AssuranceLevel>,
    },
}

/// Applies the edits in order. `at(i)` names the input path of edit `i` in errors. The result
/// still has to pass [`ServiceContent::parse`].
pub fn apply(content: &mut ServiceContent, changes: Vec<Change>) -> AppResult<()> {
    for (i, change) in changes.into_iter().enumerate() {
        let at = |what: &str| format!("input.changes[{i}].{what}");
        apply_one(content, change, &at)?;
    }
    Ok(())
}

fn missing(path: String, what: &str, key: &Key) -> AppError {
    AppError::invalid(path, format!("the service has no {what} `{key}`"))
}

fn exists(path: String, what: &str, key: &Key) -> AppError {
    AppError::invalid(path, format!("the service already has a {what} `{key}`"))
}

/// Position after `after` (or at the end), or an error naming `after`.
fn insert_at<T>(
    list: &[T],
    key_of: impl Fn(&T) -> &Key,
    after: Option<&Key>,
    path: String,
    what: &str,
) -> AppResult<usize> {
    match after {
        None => Ok(list.len()),
        Some(a) => list
            .iter()
            .position(|x| key_of(x) == a)
            .map(|p| p + 1)
            .ok_or_else(|| missing(path, what, a)),
    }
}

fn properties(content: &mut ServiceContent) -> AppResult<&mut serde_json::Map<String, Value>> {
    content
        .form
        .schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| AppError::invalid("/form/schema/properties", "the schema has no properties"))
}

fn set_required(content: &mut ServiceContent, key: &Key, required: bool) {
    let Some(schema) = content.form.schema.as_object_mut() else {
        return;
    };
    let list = schema
        .entry("required")
        .or_insert_with(|| Value::Array(vec![]));
    if let Value::Array(items) = list {
        items.retain(|v| v.as_str() != Some(key.as_str()));
        if required {
            items.push(Value::String(key.to_string()));
        }
    }
}

/// Drops a removed field from `dependentRequired` (imported FIM forms use it for the required
/// fields of optional groups): neither a condition on it nor a demand for it stays.
fn forget_dependencies(content: &mut ServiceContent, key: &Key) {
    let Some(deps) = content
        .form
        .schema
        .get_mut("dependentRequired")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    deps.remove(key.as_str());
    for list in deps.values_mut() {
        if let Value::Array(items) = list {
            items.retain(|v| v.as_str() != Some(key.as_str()));
        }
    }
    deps.retain(|_, list| list.as_array().is_none_or(|l| !l.is_empty()));
}

fn field_position(content: &ServiceContent, key: &Key) -> Option<(usize, usize)> {
    content.form.steps.iter().enumerate().find_map(|(s, step)| {
        step.fields
            .iter()
            .position(|f| &f.key == key)
            .map(|f| (s, f))
    })
}

fn apply_one(
    content: &mut ServiceContent,
    change: Change,
    at: &dyn Fn(&str) -> String,
) -> AppResult<()> {
    match change {
        Change::AddField {
            step,
            after,
            field,
            schema,
            required,
        } => {
            if field_position(content, &field.key).is_some() {
                return Err(exists(at("addField.key"), "field", &field.key));
            }
            if !schema.is_object() {
                return Err(AppError::invalid(
                    at("addField.schema"),
                    "must be a JSON Schema object such as {\"type\": \"string\"}",
                ));
            }
            let key = field.key.clone();
            let s = content
                .form
                .steps
                .iter_mut()
                .find(|s| s.key == step)
                .ok_or_else(|| missing(at("addField.step"), "step", &step))?;
            let pos = insert_at(
                &s.fields,
                |f| &f.key,
                after.as_ref(),
                at("addField.after"),
                "field",
            )?;
            s.fields.insert(pos, field);
            properties(content)?.insert(key.to_string(), schema);
            set_required(content, &key, required);
        }
        Change::ModifyField {
            key,
            label,
            help,
            schema,
            required,
            visible_if,
        } => {
            let (s, f) = field_position(content, &key)
                .ok_or_else(|| missing(at("modifyField.key"), "field", &key))?;
            let field = &mut content.form.steps[s].fields[f];
            if let Some(label) = label {
                field.label = label;
            }
            if let Some(help) = help {
                field.help = help;
            }
            if let Some(v) = visible_if {
                field.visible_if = v;
            }
            if let Some(schema) = schema {
                if !schema.is_object() {
                    return Err(AppError::invalid(
                        at("modifyField.schema"),
                        "must be a JSON Schema object",
                    ));
                }
                properties(content)?.insert(key.to_string(), schema);
            }
            if let Some(required) = required {
                set_required(content, &key, required);
            }
        }
        Change::RemoveField { key } => {
            let (s, f) = field_position(content, &key)
                .ok_or_else(|| missing(at("removeField.key"), "field", &key))?;
            content.form.steps[s].fields.remove(f);
            properties(content)?.remove(key.as_str());
            set_required(content, &key, false);
            forget_dependencies(content, &key);
        }
        Change::AddStep { after, step } => {
            if content.form.steps.iter().any(|s| s.key == step.key) {
                return Err(exists(at("addStep.key"), "step", &step.key));
            }
            let pos = insert_at(
                &content.form.steps,
                |s| &s.key,
                after.as_ref(),
                at("addStep.after"),
                "step",
            )?;
            content.form.steps.insert(pos, step);
        }
        Change::ModifyStep {
            key,
            title,
            description,
        } => {
            let step = content
                .form
                .steps
                .iter_mut()
                .find(|s| s.key == key)
                .ok_or_else(|| missing(at("modifyStep.key"), "step", &key))?;
            if let Some(title) = title {
                step.title = title;
            }
            if let Some(d) = description {
                step.description = d;
            }
        }
        Change::RemoveStep { key } => {
            let pos = content
                .form
                .steps
                .iter()
                .position(|s| s.key == key)
                .ok_or_else(|| missing(at("removeStep.key"), "step", &key))?;
            let step = content.form.steps.remove(pos);
            for f in step.fields {
                properties(content)?.remove(f.key.as_str());
                set_required(content, &f.key, false);
            }
        }
        Change::SetTitle { title } => content.title = title,
        Change::SetSummary { summary } => content.summary = summary,
        Change::SetText { key, text } => match text {
            Some(t) => {
                content.texts.insert(key, t);
            }
            None => {
                content
                    .texts
                    .remove(&key)
                    .ok_or_else(|| missing(at("setText.key"), "text", &key))?;
            }
        },
        Change::AddFee { fee } => {
            if content.fees.iter().any(|f| f.key == fee.key) {
                return Err(exists(at("addFee.key"), "fee", &fee.key));
            }
            content.fees.push(fee);
        }
        Change::ModifyFee {
            key,
            amount_cents,
            label,
        } => {
            let fee = content
                .fees
                .iter_mut()
                .find(|f| f.key == key)
                .ok_or_else(|| missing(at("modifyFee.key"), "fee", &key))?;
            if let Some(a) = amount_cents {
                fee.amount_cents = a;
            }
            if let Some(l) = label {
                fee.label = l;
            }
        }
        Change::RemoveFee { key } => {
            let before = content.fees.len();
            content.fees.retain(|f| f.key != key);
            if content.fees.len() == before {
                return Err(missing(at("removeFee.key"), "fee", &key));
            }
        }
        Change::AddRoutingRule { rule } => {
            if content.routing.iter().any(|r| r.key == rule.key) {
                return Err(exists(at("addRoutingRule.key"), "routing rule", &rule.key));
            }
            content.routing.push(rule);
        }
        Change::SetRoutingDepartment { key, department } => {
            let rule = content
                .routing
                .iter_mut()
                .find(|r| r.key == key)
                .ok_or_else(|| missing(at("setRoutingDepartment.key"), "routing rule", &key))?;
            rule.department = department;
        }
        Change::RemoveRoutingRule { key } => {
            let before = content.routing.len();
            content.routing.retain(|r| r.key != key);
            if content.routing.len() == before {
                return Err(missing(at("removeRoutingRule.key"), "routing rule", &key));
            }
        }
        Change::SetWorkflowLabel { state, label } => {
            let s = content
                .workflow
                .states
                .iter_mut()
                .find(|s| s.key == state)
                .ok_or_else(|| missing(at("setWorkflowLabel.state"), "workflow state", &state))?;
            s.label = label;
        }
        Change::SetPaymentRequired { required } => {
            content.payment_required_before_processing = required;
        }
        Change::SetAssuranceLevel { level } => {
            content.assurance_level = level;
        }
    }
    Ok(())
}
