//! The workflow: the states an application goes through and who may move it.

use serde::{Deserialize, Serialize};

use super::{I18n, Key};

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
