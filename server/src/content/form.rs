//! The form: JSON Schema for the data, the layout of steps and fields, and the conditions on
//! field values that visibility, routing, fees and documents use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{I18n, Key};

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
    /// Labels of the choices of a field whose schema has an `enum`, by value (the value as
    /// text: `"001"`, `"true"`, `"3"`). A choice without a label shows its value. Optional: older
    /// content has none, and every key must be a value of the `enum`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub choices: BTreeMap<String, I18n>,
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

    pub fn fields<'a>(&'a self, out: &mut Vec<&'a Key>) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
