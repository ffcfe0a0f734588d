//! What a content change means for data already collected.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Key, ServiceContent};

/// What a form change means for data already collected (semver of template versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    Patch,
    Minor,
    Major,
}

impl ServiceContent {
    /// What this content changes for data collected under `previous`, with the reasons: removing
    /// or retyping a field, or making one required, is major; adding optional fields, steps,
    /// states, fees or documents is minor; anything else is a patch.
    pub fn impact_since(&self, previous: &Self) -> (Impact, Vec<String>) {
        let (old, new) = (previous.properties(), self.properties());
        let (old_req, new_req) = (previous.required_fields(), self.required_fields());
        let mut major = Vec::new();
        let mut minor = Vec::new();
        for (key, old_schema) in &old {
            match new.get(key) {
                None => major.push(format!("field `{key}` removed")),
                Some(new_schema) => {
                    let t = |s: &Value| s.get("type").cloned().unwrap_or(Value::Null);
                    if t(old_schema) != t(new_schema) {
                        major.push(format!(
                            "field `{key}` retyped from {} to {}",
                            t(old_schema),
                            t(new_schema)
                        ));
                    }
                    if new_req.contains(key) && !old_req.contains(key) {
                        major.push(format!("field `{key}` became required"));
                    }
                }
            }
        }
        for key in new.keys().filter(|k| !old.contains_key(*k)) {
            if new_req.contains(key) {
                major.push(format!("required field `{key}` added"));
            } else {
                minor.push(format!("optional field `{key}` added"));
            }
        }
        let new_states: BTreeSet<_> = self.workflow.states.iter().map(|s| &s.key).collect();
        for s in &previous.workflow.states {
            if !new_states.contains(&s.key) {
                major.push(format!("workflow state `{}` removed", s.key));
            }
        }
        let added = |old: Vec<&Key>, new: Vec<&Key>, what: &str, out: &mut Vec<String>| {
            for k in new.iter().filter(|k| !old.contains(k)) {
                out.push(format!("{what} `{k}` added"));
            }
        };
        added(
            previous.form.steps.iter().map(|s| &s.key).collect(),
            self.form.steps.iter().map(|s| &s.key).collect(),
            "step",
            &mut minor,
        );
        added(
            previous.workflow.states.iter().map(|s| &s.key).collect(),
            self.workflow.states.iter().map(|s| &s.key).collect(),
            "workflow state",
            &mut minor,
        );
        added(
            previous.fees.iter().map(|f| &f.key).collect(),
            self.fees.iter().map(|f| &f.key).collect(),
            "fee",
            &mut minor,
        );
        added(
            previous.required_documents.iter().map(|d| &d.key).collect(),
            self.required_documents.iter().map(|d| &d.key).collect(),
            "required document",
            &mut minor,
        );
        if !major.is_empty() {
            (Impact::Major, major)
        } else if !minor.is_empty() {
            (Impact::Minor, minor)
        } else {
            (Impact::Patch, vec![])
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::content::dog_tax;

    #[test]
    fn impact_names_removed_retyped_and_added_fields() {
        let old = ServiceContent::parse(&dog_tax()).unwrap();
        let mut doc = dog_tax();
        doc["form"]["schema"]["properties"]["breed"] = json!({"type": "string"});
        doc["form"]["steps"][0]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "breed", "label": {"de": "Rasse"}}));
        let added = ServiceContent::parse(&doc).unwrap();
        assert_eq!(added.impact_since(&old).0, Impact::Minor);

        doc["form"]["schema"]["properties"]["dog_count"] = json!({"type": "string"});
        doc["fees"][0].as_object_mut().unwrap().remove("perField");
        let retyped = ServiceContent::parse(&doc).unwrap();
        let (impact, why) = retyped.impact_since(&old);
        assert_eq!(impact, Impact::Major);
        assert!(
            why.iter()
                .any(|w| w.contains("dog_count") && w.contains("retyped")),
            "{why:?}"
        );

        let mut title_only = dog_tax();
        title_only["title"]["de"] = json!("Hund anmelden");
        let patched = ServiceContent::parse(&title_only).unwrap();
        assert_eq!(patched.impact_since(&old), (Impact::Patch, vec![]));
    }
}
