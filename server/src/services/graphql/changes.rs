//! The edits `customizeService` takes, one input object per kind of change, parsed into
//! [`Change`]s.

use async_graphql::{InputObject, Json, OneofObject};
use serde_json::Value;

use crate::content::fees::Fee;
use crate::content::form::{Condition, Field, Step};
use crate::content::routing::RoutingRule;
use crate::content::{I18n, Key};
use crate::error::{AppError, AppResult};
use crate::services::changes::Change;

#[derive(InputObject, Clone)]
pub struct I18nInput {
    pub de: String,
    pub en: Option<String>,
}

impl From<I18nInput> for I18n {
    fn from(t: I18nInput) -> Self {
        I18n {
            de: t.de.trim().to_owned(),
            en: t.en.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()),
        }
    }
}

#[derive(InputObject)]
pub struct AddFieldInput {
    /// The step to put the field in.
    pub step: String,
    /// Put it after this field (default: at the end of the step).
    pub after: Option<String>,
    pub key: String,
    pub label: I18nInput,
    pub help: Option<I18nInput>,
    /// JSON Schema of the value, e.g. `{"type": "string", "maxLength": 100}`.
    pub schema: Json<Value>,
    #[graphql(default)]
    pub required: bool,
    /// Condition (see the content reference), e.g. `{"equals": {"field": "x", "value": true}}`.
    pub visible_if: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct ModifyFieldInput {
    pub key: String,
    pub label: Option<I18nInput>,
    pub help: Option<I18nInput>,
    pub schema: Option<Json<Value>>,
    pub required: Option<bool>,
    pub visible_if: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct KeyInput {
    pub key: String,
}

#[derive(InputObject)]
pub struct AddStepInput {
    pub key: String,
    pub title: I18nInput,
    pub description: Option<I18nInput>,
    /// Put it after this step (default: last).
    pub after: Option<String>,
}

#[derive(InputObject)]
pub struct ModifyStepInput {
    pub key: String,
    pub title: Option<I18nInput>,
    pub description: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct SetTextInput {
    pub key: String,
    /// Null removes the text.
    pub text: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct AddFeeInput {
    pub key: String,
    pub label: I18nInput,
    pub amount_cents: i64,
    /// Multiply by this integer field (e.g. number of dogs).
    pub per_field: Option<String>,
}

#[derive(InputObject)]
pub struct ModifyFeeInput {
    pub key: String,
    pub amount_cents: Option<i64>,
    pub label: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct AddRoutingRuleInput {
    pub key: String,
    /// Key of one of the tenant's departments.
    pub department: String,
    pub when: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct SetRoutingDepartmentInput {
    /// The routing rule.
    pub key: String,
    pub department: String,
}

#[derive(InputObject)]
pub struct SetPaymentRequiredInput {
    /// `true`: staff start processing only once the fees are paid.
    pub required: bool,
}

#[derive(InputObject)]
pub struct SetAssuranceLevelInput {
    /// The eID assurance level (Vertrauensniveau) a citizen's sign-in must have to save drafts,
    /// submit and upload files for this service; null removes the requirement. Callers without
    /// it get `INSUFFICIENT_ASSURANCE` (anonymous callers `UNAUTHENTICATED`) and nothing is stored.
    pub level: Option<crate::auth::assurance::AssuranceLevel>,
}

#[derive(InputObject)]
pub struct SetWorkflowLabelInput {
    pub state: String,
    pub label: I18nInput,
}

/// One edit of a service; give exactly one.
#[derive(OneofObject)]
pub enum ServiceChangeInput {
    AddField(AddFieldInput),
    ModifyField(ModifyFieldInput),
    RemoveField(KeyInput),
    AddStep(AddStepInput),
    ModifyStep(ModifyStepInput),
    RemoveStep(KeyInput),
    SetTitle(I18nInput),
    SetSummary(I18nInput),
    SetText(SetTextInput),
    AddFee(AddFeeInput),
    ModifyFee(ModifyFeeInput),
    RemoveFee(KeyInput),
    AddRoutingRule(AddRoutingRuleInput),
    SetRoutingDepartment(SetRoutingDepartmentInput),
    RemoveRoutingRule(KeyInput),
    SetWorkflowLabel(SetWorkflowLabelInput),
    SetPaymentRequired(SetPaymentRequiredInput),
    SetAssuranceLevel(SetAssuranceLevelInput),
}

fn key(field: &str, raw: &str) -> AppResult<Key> {
    Key::parse(raw.trim()).map_err(|m| AppError::invalid(field, m))
}

fn condition(field: &str, raw: Json<Value>) -> AppResult<Condition> {
    serde_json::from_value(raw.0)
        .map_err(|e| AppError::invalid(field, format!("not a condition: {e}")))
}

impl ServiceChangeInput {
    pub(super) fn parse(self, i: usize) -> AppResult<Change> {
        let at = |s: &str| format!("input.changes[{i}].{s}");
        Ok(match self {
            Self::AddField(f) => Change::AddField {
                step: key(&at("addField.step"), &f.step)?,
                after: f
                    .after
                    .map(|a| key(&at("addField.after"), &a))
                    .transpose()?,
                field: Field {
                    key: key(&at("addField.key"), &f.key)?,
                    label: f.label.into(),
                    help: f.help.map(Into::into),
                    visible_if: f
                        .visible_if
                        .map(|c| condition(&at("addField.visibleIf"), c))
                        .transpose()?,
                    choices: Default::default(),
                },
                schema: f.schema.0,
                required: f.required,
            },
            Self::ModifyField(f) => Change::ModifyField {
                key: key(&at("modifyField.key"), &f.key)?,
                label: f.label.map(Into::into),
                help: f.help.map(|h| Some(h.into())),
                schema: f.schema.map(|s| s.0),
                required: f.required,
                visible_if: f
                    .visible_if
                    .map(|c| condition(&at("modifyField.visibleIf"), c).map(Some))
                    .transpose()?,
            },
            Self::RemoveField(k) => Change::RemoveField {
                key: key(&at("removeField.key"), &k.key)?,
            },
            Self::AddStep(s) => Change::AddStep {
                after: s.after.map(|a| key(&at("addStep.after"), &a)).transpose()?,
                step: Step {
                    key: key(&at("addStep.key"), &s.key)?,
                    title: s.title.into(),
                    description: s.description.map(Into::into),
                    fields: vec![],
                    visible_if: None,
                },
            },
            Self::ModifyStep(s) => Change::ModifyStep {
                key: key(&at("modifyStep.key"), &s.key)?,
                title: s.title.map(Into::into),
                description: s.description.map(|d| Some(d.into())),
            },
            Self::RemoveStep(k) => Change::RemoveStep {
                key: key(&at("removeStep.key"), &k.key)?,
            },
            Self::SetTitle(t) => Change::SetTitle { title: t.into() },
            Self::SetSummary(t) => Change::SetSummary { summary: t.into() },
            Self::SetText(t) => Change::SetText {
                key: key(&at("setText.key"), &t.key)?,
                text: t.text.map(Into::into),
            },
            Self::AddFee(f) => Change::AddFee {
                fee: Fee {
                    key: key(&at("addFee.key"), &f.key)?,
                    label: f.label.into(),
                    amount_cents: f.amount_cents,
                    per_field: f
                        .per_field
                        .map(|p| key(&at("addFee.perField"), &p))
                        .transpose()?,
                    when: None,
                },
            },
            Self::ModifyFee(f) => Change::ModifyFee {
                key: key(&at("modifyFee.key"), &f.key)?,
                amount_cents: f.amount_cents,
                label: f.label.map(Into::into),
            },
            Self::RemoveFee(k) => Change::RemoveFee {
                key: key(&at("removeFee.key"), &k.key)?,
            },
            Self::AddRoutingRule(r) => Change::AddRoutingRule {
                rule: RoutingRule {
                    key: key(&at("addRoutingRule.key"), &r.key)?,
                    department: key(&at("addRoutingRule.department"), &r.department)?,
                    when: r
                        .when
                        .map(|c| condition(&at("addRoutingRule.when"), c))
                        .transpose()?,
                },
            },
            Self::SetRoutingDepartment(r) => Change::SetRoutingDepartment {
                key: key(&at("setRoutingDepartment.key"), &r.key)?,
                department: key(&at("setRoutingDepartment.department"), &r.department)?,
            },
            Self::RemoveRoutingRule(k) => Change::RemoveRoutingRule {
                key: key(&at("removeRoutingRule.key"), &k.key)?,
            },
            Self::SetWorkflowLabel(w) => Change::SetWorkflowLabel {
                state: key(&at("setWorkflowLabel.state"), &w.state)?,
                label: w.label.into(),
            },
            Self::SetPaymentRequired(p) => Change::SetPaymentRequired {
                required: p.required,
            },
            Self::SetAssuranceLevel(a) => Change::SetAssuranceLevel { level: a.level },
        })
    }
}
