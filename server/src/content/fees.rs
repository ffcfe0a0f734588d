//! Fees an application costs (computed at submission).

use serde::{Deserialize, Serialize};

use super::form::Condition;
use super::{I18n, Key};

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
