//! Service content: one JSON document that is the whole service — form (JSON Schema 2020-12 for the
//! data plus a layout of steps and fields), workflow, routing, fees, appointment need, required
//! documents, texts. Template versions publish it; tenant services resolve to it.
//!
//! Every list an overlay may touch is a list of objects with a stable `key` (or a set of strings),
//! so the keyed merge in [`crate::services::merge`] addresses elements by key, never by index.
//! [`ServiceContent::parse`] is the only way in: unknown keys, dangling references and invalid
//! JSON Schema come back as one message per path (JSON Pointer over that keyed view).

pub mod appointment;
pub mod documents;
pub mod fees;
pub mod fim;
pub mod form;
pub mod impact;
pub mod routing;
pub mod validation;
pub mod workflow;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use appointment::Appointment;
use documents::{AttachmentRules, RequiredDocument};
use fees::Fee;
use form::Form;
use routing::RoutingRule;
use workflow::Workflow;

/// Largest accepted content document (serialized JSON).
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

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
    /// The eID assurance level (Vertrauensniveau) a citizen's sign-in must have to save a draft,
    /// submit or upload for this service: `low`, `substantial` or `high`. Absent: no requirement,
    /// and anonymous use stays possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assurance_level: Option<crate::auth::assurance::AssuranceLevel>,
    /// Days a closed application is kept before it may be erased (GDPR); default two years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// The FIM schema the content was imported from, if it was (metadata for authors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fim: Option<fim::FimSource>,
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

fn default_currency() -> String {
    "EUR".to_owned()
}

impl ServiceContent {
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
}

/// RFC 6901 escaping of one path segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
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

/// A valid content document (the dog tax) for tests.
#[cfg(test)]
fn dog_tax() -> Value {
    serde_json::json!({
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
