//! Whether the service needs an appointment, and how long one takes.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Appointment {
    /// Whether an appointment must be booked (else it is offered).
    pub required: bool,
    pub duration_minutes: u32,
}
