//! Routing: which department of the tenant gets an application.

use serde::{Deserialize, Serialize};

use super::Key;
use super::form::Condition;

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
