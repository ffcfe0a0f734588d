//! The pure rules of an application, from its pinned service content: form validation, routing,
//! fees, workflow moves, reference numbers. No I/O here, so all of it is unit- and property-tested.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::ServiceContent;
use crate::content::workflow::{Actor, Transition, Workflow, WorkflowState};
use crate::error::{AppError, FieldErrors};

/// Largest accepted form data (serialized), drafts and submissions alike.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// A compiled form schema (JSON Schema 2020-12, formats asserted).
pub struct FormValidator(jsonschema::Validator);

impl FormValidator {
    pub fn compile(schema: &Value) -> Result<Self, AppError> {
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(schema)
            .map(Self)
            .map_err(|e| {
                AppError::internal("compiling a published form schema", anyhow::anyhow!("{e}"))
            })
    }

    /// Checks `data` (found at `input.<root>`); one message per field path, e.g.
    /// `input.data/dog_count`. A missing required field is reported at its own path.
    pub fn check(&self, root: &str, data: &Value) -> Result<(), AppError> {
        check_shape(root, data)?;
        let mut fields = FieldErrors::new();
        for err in self.0.iter_errors(data) {
            let mut path = format!("input.{root}{}", err.instance_path().as_str());
            let message = match err.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    path.push('/');
                    path.push_str(&crate::content::escape(name));
                    "is required".to_owned()
                }
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        fields.insert(
                            format!("{path}/{}", crate::content::escape(name)),
                            "is not a field of this form".to_owned(),
                        );
                    }
                    continue;
                }
                _ => err.masked().to_string(),
            };
            fields.entry(path).or_insert(message);
        }
        if fields.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(fields))
        }
    }
}

/// Form data must be a JSON object within [`MAX_DATA_BYTES`].
pub fn check_shape(root: &str, data: &Value) -> Result<(), AppError> {
    if !data.is_object() {
        return Err(AppError::invalid(
            format!("input.{root}"),
            "must be a JSON object of field values",
        ));
    }
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    if size > MAX_DATA_BYTES {
        return Err(AppError::invalid(
            format!("input.{root}"),
            format!("is {size} bytes; at most {MAX_DATA_BYTES} are accepted"),
        ));
    }
    Ok(())
}

/// One computed fee line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeLine {
    pub key: String,
    pub label: String,
    pub amount_cents: i64,
}

/// The fees that apply to `data`: conditional ones only when their condition holds; per-field
/// ones multiplied by that field's (non-negative integer) value.
pub fn fees_for(content: &ServiceContent, data: &Value) -> Vec<FeeLine> {
    content
        .fees
        .iter()
        .filter(|f| f.when.as_ref().is_none_or(|c| c.holds(data)))
        .filter_map(|f| {
            let factor = match &f.per_field {
                None => 1,
                Some(field) => data
                    .get(field.as_str())
                    .and_then(Value::as_i64)
                    .filter(|n| *n >= 0)?,
            };
            let amount = f.amount_cents.checked_mul(factor)?;
            (amount > 0).then(|| FeeLine {
                key: f.key.as_str().to_owned(),
                label: f.label.de.clone(),
                amount_cents: amount,
            })
        })
        .collect()
}

/// The departments (by key) the routing rules send `data` to, with the first rule naming each;
/// in rule order, without duplicates.
pub fn route(content: &ServiceContent, data: &Value) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    content
        .routing
        .iter()
        .filter(|r| r.when.as_ref().is_none_or(|c| c.holds(data)))
        .filter(|r| seen.insert(r.department.as_str().to_owned()))
        .map(|r| (r.department.as_str().to_owned(), r.key.as_str().to_owned()))
        .collect()
}

/// Who asks for a workflow move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mover {
    Staff,
    Citizen,
}

pub fn state_of<'w>(workflow: &'w Workflow, key: &str) -> Option<&'w WorkflowState> {
    workflow.states.iter().find(|s| s.key.as_str() == key)
}

/// The transitions `mover` may take from `from`.
pub fn moves_from<'w>(workflow: &'w Workflow, from: &str, mover: Mover) -> Vec<&'w Transition> {
    workflow
        .transitions
        .iter()
        .filter(|t| t.from.as_str() == from)
        .filter(|t| match mover {
            Mover::Staff => t.actor == Actor::Staff,
            Mover::Citizen => t.actor == Actor::Citizen,
        })
        .collect()
}

/// The transition from `from` to `to` for `mover`, or a typed error naming what is allowed:
/// `CONFLICT` when no such move exists from this state, `FORBIDDEN` when it exists for the
/// other side only.
pub fn find_move<'w>(
    workflow: &'w Workflow,
    from: &str,
    to: &str,
    mover: Mover,
) -> Result<&'w Transition, AppError> {
    if state_of(workflow, to).is_none() {
        return Err(AppError::invalid(
            "input.to",
            format!(
                "`{to}` is not a state of this service's workflow (states: {})",
                workflow
                    .states
                    .iter()
                    .map(|s| s.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let any = workflow
        .transitions
        .iter()
        .find(|t| t.from.as_str() == from && t.to.as_str() == to);
    match any {
        Some(t) if moves_from(workflow, from, mover).contains(&t) => Ok(t),
        Some(_) => Err(AppError::Forbidden(match mover {
            Mover::Staff => "only the applicant may take this step",
            Mover::Citizen => "only staff may take this step",
        })),
        None => {
            let allowed: Vec<&str> = moves_from(workflow, from, mover)
                .iter()
                .map(|t| t.to.as_str())
                .collect();
            Err(AppError::conflict(
                "input.to",
                format!(
                    "an application in state `{from}` cannot move to `{to}`; allowed: {}",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ))
        }
    }
}

/// The citizen's withdrawal from `from`: their move to a terminal state without a decision.
pub fn withdrawal_from<'w>(workflow: &'w Workflow, from: &str) -> Option<&'w Transition> {
    moves_from(workflow, from, Mover::Citizen)
        .into_iter()
        .find(|t| state_of(workflow, t.to.as_str()).is_some_and(|s| s.terminal && !s.decided))
}

/// Where an answer to a request for information moves the application: from a state that waits
/// for the citizen, the move back to a state that is neither terminal nor decided.
pub fn answer_from<'w>(workflow: &'w Workflow, from: &str) -> Option<&'w Transition> {
    if !state_of(workflow, from).is_some_and(|s| s.awaits_citizen) {
        return None;
    }
    workflow.transitions.iter().find(|t| {
        t.from.as_str() == from
            && state_of(workflow, t.to.as_str()).is_some_and(|s| !s.terminal && !s.decided)
    })
}

/// `MUSTERSTADT-2026-000042`.
pub fn reference(tenant_slug: &str, year: i32, number: i64) -> String {
    format!("{}-{year}-{number:06}", tenant_slug.to_uppercase())
}

/// Lower-cased reference and every string or number in `data`, for staff search.
pub fn search_text(reference: &str, data: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push(' ');
                out.push_str(&s.to_lowercase());
            }
            Value::Number(n) => {
                out.push(' ');
                out.push_str(&n.to_string());
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = reference.to_lowercase();
    walk(data, &mut out);
    out
}

/// The applicant's contact address: the identity provider's, else a form field `email`.
pub fn contact_email(token_email: Option<&str>, data: &Value) -> Option<String> {
    token_email
        .or_else(|| data.get("email").and_then(Value::as_str))
        .filter(|e| e.len() <= 254 && e.contains('@') && !e.contains(['\r', '\n']))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dog_tax() -> ServiceContent {
        let raw: Value = serde_json::from_str(include_str!(
            "../../../tenants/marketplace/hundesteuer-anmeldung/1.1.0.json"
        ))
        .unwrap();
        ServiceContent::parse(&raw).unwrap()
    }

    #[test]
    fn routing_sends_listed_breeds_to_two_departments() {
        let c = dog_tax();
        let one = route(&c, &json!({"listed_breed": false}));
        let two = route(&c, &json!({"listed_breed": true}));
        assert_eq!(one.len(), 1);
        assert_eq!(two.len(), 2);
        assert!(two.iter().any(|(d, _)| d == "ordnungsamt"));
    }

    #[test]
    fn fees_multiply_per_field_and_respect_conditions() {
        let c = dog_tax();
        let lines = fees_for(&c, &json!({"dog_count": 2, "listed_breed": false}));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].amount_cents, 2 * 9600);
        let lines = fees_for(&c, &json!({"dog_count": 1, "listed_breed": true}));
        assert_eq!(
            lines.iter().map(|l| l.amount_cents).sum::<i64>(),
            9600 + 60000
        );
    }

    #[test]
    fn default_workflow_moves() {
        let w = Workflow::municipal_default();
        assert!(find_move(&w, "submitted", "in_review", Mover::Staff).is_ok());
        let err = find_move(&w, "submitted", "approved", Mover::Staff).unwrap_err();
        assert_eq!(err.code(), "CONFLICT");
        let err = find_move(&w, "submitted", "withdrawn", Mover::Staff).unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
        let err = find_move(&w, "in_review", "approved", Mover::Citizen).unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
        assert_eq!(
            find_move(&w, "submitted", "nowhere", Mover::Staff)
                .unwrap_err()
                .code(),
            "VALIDATION_FAILED"
        );
        assert_eq!(
            withdrawal_from(&w, "in_review").unwrap().to.as_str(),
            "withdrawn"
        );
        assert!(withdrawal_from(&w, "approved").is_none());
        assert_eq!(
            answer_from(&w, "needs_info").unwrap().to.as_str(),
            "in_review"
        );
        assert!(answer_from(&w, "in_review").is_none());
    }

    #[test]
    fn validation_reports_each_field_path() {
        let c = dog_tax();
        let v = FormValidator::compile(&c.form.schema).unwrap();
        let Err(AppError::Validation(fields)) = v.check(
            "data",
            &json!({"dog_count": 0, "postcode": "abc", "nickname": "x"}),
        ) else {
            panic!("expected a validation error")
        };
        assert!(fields.contains_key("input.data/dog_count"), "{fields:?}");
        assert!(fields.contains_key("input.data/postcode"), "{fields:?}");
        assert!(fields.contains_key("input.data/name"), "{fields:?}");
        assert!(fields.contains_key("input.data/nickname"), "{fields:?}");
        assert!(v.check("data", &json!([1])).is_err());
    }

    #[test]
    fn references_are_zero_padded() {
        assert_eq!(
            reference("musterstadt", 2026, 42),
            "MUSTERSTADT-2026-000042"
        );
    }

    proptest::proptest! {
        /// Any JSON at all gets a verdict, never a panic.
        #[test]
        fn validation_never_panics(data in crate::content::arbitrary_json()) {
            let c = dog_tax();
            let v = FormValidator::compile(&c.form.schema).unwrap();
            let _ = v.check("data", &data);
            let _ = route(&c, &data);
            let _ = fees_for(&c, &data);
        }
    }
}
