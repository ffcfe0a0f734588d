//! The form wizard's model: a service revision's steps and fields as the pages show them
//! (every field type the content model knows), and the way back from a posted step to form
//! data. Visibility uses the content's own conditions ([`Condition::holds`]), the same code
//! submission and routing use.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::i18n::{self, Lang};
use crate::content::ServiceContent;
use crate::content::form::{Condition, Field, Step};

/// A choice of a radio group or select.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// One entry of a repeating field.
pub struct Item {
    pub id: String,
    pub value: String,
    pub index: usize,
}

/// A field as the step page renders it.
pub struct FieldView {
    pub key: String,
    /// The element id (`f-<key>`); errors link to it.
    pub id: String,
    pub label: String,
    pub help: Option<String>,
    pub required: bool,
    /// `text`, `textarea`, `number`, `radio`, `select`, `yesno` or `list`.
    pub kind: &'static str,
    /// For `text` and `number`: the input's `type` (`text`, `email`, `date`, `tel`, `number`).
    pub input_type: &'static str,
    pub inputmode: Option<&'static str>,
    pub autocomplete: Option<&'static str>,
    pub maxlength: Option<u64>,
    pub step: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub value: String,
    pub options: Vec<Opt>,
    pub items: Vec<Item>,
    pub error: Option<String>,
    /// Shown only under a condition on another answer of the same step (without JavaScript
    /// the field stays visible, with this note).
    pub only_if: bool,
}

impl FieldView {
    /// The ids of the hint and the error, for `aria-describedby`.
    pub fn described_by(&self) -> String {
        let mut ids = Vec::new();
        if self.help.is_some() {
            ids.push(format!("{}-hint", self.id));
        }
        if self.error.is_some() {
            ids.push(format!("{}-error", self.id));
        }
        ids.join(" ")
    }
}

/// A step as the page renders it.
pub struct StepView {
    pub title: String,
    pub description: Option<String>,
    pub fields: Vec<FieldView>,
}

/// An error for the summary at the top: its text and the element it links to.
pub struct ErrorLink {
    pub href: String,
    pub text: String,
}

/// The service's form for one draft.
pub struct Wizard {
    pub content: ServiceContent,
}

impl Wizard {
    pub fn new(content: ServiceContent) -> Self {
        Self { content }
    }

    /// The steps shown for `data` (a step's condition decides; a step without one is shown).
    pub fn visible_steps(&self, data: &Value) -> Vec<&Step> {
        self.content
            .form
            .steps
            .iter()
            .filter(|s| s.visible_if.as_ref().is_none_or(|c| c.holds(data)))
            .collect()
    }

    pub fn step(&self, key: &str) -> Option<&Step> {
        self.content
            .form
            .steps
            .iter()
            .find(|s| s.key.as_str() == key)
    }

    fn property(&self, key: &str) -> &Value {
        static EMPTY: Value = Value::Null;
        self.content
            .form
            .schema
            .get("properties")
            .and_then(|p| p.get(key))
            .unwrap_or(&EMPTY)
    }

    fn required(&self, key: &str) -> bool {
        self.content
            .form
            .schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
    }

    /// Whether a field is asked: its condition holds, or depends on an answer of the same step
    /// (then it is shown with a note, since the answer may still change on this page).
    fn shown(&self, step: &Step, field: &Field, data: &Value) -> (bool, bool) {
        match &field.visible_if {
            None => (true, false),
            Some(c) if c.holds(data) => (true, false),
            Some(c) if depends_on_step(c, step) => (true, true),
            Some(_) => (false, false),
        }
    }

    /// The step's fields with their values in `data` and the messages of `problems` (the API's
    /// field paths → messages).
    pub fn view(
        &self,
        lang: Lang,
        step: &Step,
        data: &Value,
        problems: &BTreeMap<String, String>,
    ) -> StepView {
        let fields = step
            .fields
            .iter()
            .filter_map(|field| {
                let (shown, only_if) = self.shown(step, field, data);
                shown.then(|| self.field_view(lang, field, data, problems, only_if))
            })
            .collect();
        StepView {
            title: lang.pick(&step.title),
            description: step.description.as_ref().map(|d| lang.pick(d)),
            fields,
        }
    }

    fn field_view(
        &self,
        lang: Lang,
        field: &Field,
        data: &Value,
        problems: &BTreeMap<String, String>,
        only_if: bool,
    ) -> FieldView {
        let key = field.key.as_str();
        let schema = self.property(key);
        let label = lang.pick(&field.label);
        let value = data.get(key).unwrap_or(&Value::Null);
        let error =
            field_problem(problems, key).map(|api| i18n::field_error(lang, &label, schema, api));
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        let choices = schema.get("enum").and_then(Value::as_array);
        let mut view = FieldView {
            key: key.to_owned(),
            id: format!("f-{key}"),
            help: field.help.as_ref().map(|h| lang.pick(h)),
            required: self.required(key),
            kind: "text",
            input_type: "text",
            inputmode: None,
            autocomplete: autocomplete(key),
            maxlength: schema.get("maxLength").and_then(Value::as_u64),
            step: None,
            min: None,
            max: None,
            value: as_text(value),
            options: Vec::new(),
            items: Vec::new(),
            error,
            only_if,
            label,
        };
        let t = lang.texts();
        if let Some(choices) = choices {
            view.options = choices
                .iter()
                .map(|c| Opt {
                    value: as_text(c),
                    label: choice_label(lang, field, c),
                    checked: c == value,
                })
                .collect();
            view.kind = if choices.len() <= 5 {
                "radio"
            } else {
                "select"
            };
            return view;
        }
        match ty {
            "boolean" => {
                view.kind = "yesno";
                view.options = [(true, t.yes), (false, t.no)]
                    .into_iter()
                    .map(|(b, label)| Opt {
                        value: b.to_string(),
                        label: label.to_owned(),
                        checked: value.as_bool() == Some(b),
                    })
                    .collect();
            }
            "integer" | "number" => {
                view.kind = "number";
                view.input_type = "text";
                view.inputmode = Some(if ty == "integer" {
                    "numeric"
                } else {
                    "decimal"
                });
                view.min = schema.get("minimum").map(as_text);
                view.max = schema.get("maximum").map(as_text);
                view.step = schema.get("multipleOf").map(as_text);
            }
            "array" => {
                view.kind = "list";
                view.items = value
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .enumerate()
                            .map(|(index, v)| Item {
                                id: format!("f-{key}-{index}"),
                                value: as_text(v),
                                index,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if view.items.is_empty() {
                    view.items.push(Item {
                        id: format!("f-{key}-0"),
                        value: String::new(),
                        index: 0,
                    });
                }
                let item = schema.get("items").unwrap_or(&Value::Null);
                view.input_type = text_input_type(item);
                view.maxlength = item.get("maxLength").and_then(Value::as_u64);
            }
            _ => {
                view.input_type = text_input_type(schema);
                if view.maxlength.is_some_and(|m| m > 300) {
                    view.kind = "textarea";
                }
            }
        }
        view
    }

    /// Writes the posted answers of `step` into `data`: empty answers are removed, numbers and
    /// yes/no become JSON numbers and booleans. An answer that does not convert is kept as
    /// text, so the page shows it again with the API's message. Repeating fields take every
    /// posted value of their name, `add`/`remove` actions change their length.
    pub fn apply(
        &self,
        step: &Step,
        data: &mut Map<String, Value>,
        posted: &[(String, String)],
        action: &str,
    ) {
        for field in &step.fields {
            let key = field.key.as_str();
            let schema = self.property(key);
            let values: Vec<&str> = posted
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            if schema.get("type").and_then(Value::as_str) == Some("array") {
                let item = schema.get("items").unwrap_or(&Value::Null);
                let mut items: Vec<Value> = values
                    .iter()
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| convert(item, v))
                    .collect();
                if let Some(i) = action
                    .strip_prefix("remove:")
                    .and_then(|rest| rest.strip_prefix(key))
                    .and_then(|rest| rest.strip_prefix(':'))
                    .and_then(|i| i.parse::<usize>().ok())
                    && i < items.len()
                {
                    items.remove(i);
                }
                if action == format!("add:{key}") {
                    items.push(Value::String(String::new()));
                }
                if items.is_empty() {
                    data.remove(key);
                } else {
                    data.insert(key.to_owned(), Value::Array(items));
                }
                continue;
            }
            match values.first().map(|v| v.trim()) {
                None | Some("") => {
                    data.remove(key);
                }
                Some(v) => {
                    data.insert(key.to_owned(), convert(schema, v));
                }
            }
        }
        self.prune(data);
    }

    /// Drops answers to questions no longer asked (their step or field condition fails), so
    /// they are neither stored nor checked.
    pub fn prune(&self, data: &mut Map<String, Value>) {
        loop {
            let snapshot = Value::Object(data.clone());
            let mut hidden = Vec::new();
            for step in &self.content.form.steps {
                let step_shown = step.visible_if.as_ref().is_none_or(|c| c.holds(&snapshot));
                for field in &step.fields {
                    let field_shown = field.visible_if.as_ref().is_none_or(|c| c.holds(&snapshot));
                    if (!step_shown || !field_shown) && data.contains_key(field.key.as_str()) {
                        hidden.push(field.key.to_string());
                    }
                }
            }
            if hidden.is_empty() {
                return;
            }
            // Removing an answer may hide further questions: repeat until nothing changes.
            for key in hidden {
                data.remove(&key);
            }
        }
    }

    /// The field keys of a step.
    pub fn keys_of(step: &Step) -> impl Iterator<Item = &str> {
        step.fields.iter().map(|f| f.key.as_str())
    }

    /// A stored answer as the review page shows it.
    pub fn display(&self, lang: Lang, key: &str, value: &Value) -> String {
        let schema = self.property(key);
        let t = lang.texts();
        match value {
            Value::Null => t.not_answered.to_owned(),
            Value::Bool(true) => t.yes.to_owned(),
            Value::Bool(false) => t.no.to_owned(),
            Value::String(s) if schema.get("format").and_then(Value::as_str) == Some("date") => {
                lang.date(s)
            }
            Value::Number(n) if lang == Lang::De => n.to_string().replace('.', ","),
            Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(", "),
            other => match self.field(key) {
                Some(field) if schema.get("enum").is_some() => choice_label(lang, field, other),
                _ => as_text(other),
            },
        }
    }

    fn field(&self, key: &str) -> Option<&Field> {
        self.content
            .form
            .steps
            .iter()
            .flat_map(|s| &s.fields)
            .find(|f| f.key.as_str() == key)
    }

    /// The summary's entries for the problems that belong to the given steps' fields (all
    /// steps when `only` is `None`), each linking to its field.
    pub fn error_links(
        &self,
        lang: Lang,
        problems: &BTreeMap<String, String>,
        only: Option<&Step>,
        link_to_step: &dyn Fn(&str) -> String,
    ) -> Vec<ErrorLink> {
        let mut out = Vec::new();
        for step in &self.content.form.steps {
            if only.is_some_and(|o| o.key != step.key) {
                continue;
            }
            for field in &step.fields {
                let key = field.key.as_str();
                if let Some(api) = field_problem(problems, key) {
                    let label = lang.pick(&field.label);
                    out.push(ErrorLink {
                        href: format!("{}#f-{key}", link_to_step(step.key.as_str())),
                        text: i18n::field_error(lang, &label, self.property(key), api),
                    });
                }
            }
        }
        out
    }
}

/// The message the API gave for `key` (at the field, or inside it for lists).
pub fn field_problem<'a>(problems: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    let at = format!("input.data/{key}");
    problems
        .iter()
        .find(|(path, _)| *path == &at || path.starts_with(&format!("{at}/")))
        .map(|(_, m)| m.as_str())
}

fn depends_on_step(condition: &Condition, step: &Step) -> bool {
    let mut fields = Vec::new();
    condition.fields(&mut fields);
    fields
        .iter()
        .any(|f| step.fields.iter().any(|sf| &sf.key == *f))
}

/// A posted text as the property's JSON type; text that does not convert stays text.
fn convert(schema: &Value, raw: &str) -> Value {
    let raw = raw.trim();
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    match ty {
        "integer" => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        "number" => raw
            .replace(',', ".")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| {
                // 2.0 is stored as 2, like a JSON client would send it.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map_or(Value::Number(n.clone()), |f| Value::from(f as i64))
            })
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        _ => Value::String(raw.to_owned()),
    }
}

/// A choice as people read it: its label when the field has one for it, else its value.
fn choice_label(lang: Lang, field: &Field, choice: &Value) -> String {
    let value = as_text(choice);
    match field.choices.get(&value) {
        Some(label) => lang.pick(label),
        None => value,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text_input_type(schema: &Value) -> &'static str {
    match schema.get("format").and_then(Value::as_str) {
        Some("date") => "date",
        Some("email") => "email",
        _ => "text",
    }
}

/// The input purpose of common personal-data fields (WCAG 1.3.5), by the key's usual name.
fn autocomplete(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" | "full_name" => "name",
        "given_name" | "first_name" => "given-name",
        "family_name" | "last_name" => "family-name",
        "street" | "address" => "street-address",
        "postcode" | "postal_code" => "postal-code",
        "city" => "address-level2",
        "email" => "email",
        "phone" | "telephone" => "tel",
        "birth_date" | "date_of_birth" => "bday",
        "iban" => "off",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wizard() -> Wizard {
        let content = json!({
            "title": {"de": "T"}, "summary": {"de": "S"}, "category": "test",
            "form": {
                "schema": {"type": "object", "properties": {
                    "count": {"type": "integer", "minimum": 1},
                    "size": {"type": "number", "multipleOf": 0.5},
                    "listed": {"type": "boolean"},
                    "permit": {"type": "string", "maxLength": 20},
                    "names": {"type": "array", "items": {"type": "string"}}
                }, "required": ["count"]},
                "steps": [
                    {"key": "a", "title": {"de": "A"}, "fields": [
                        {"key": "count", "label": {"de": "Anzahl"}},
                        {"key": "size", "label": {"de": "Größe"}},
                        {"key": "listed", "label": {"de": "Liste"}},
                        {"key": "names", "label": {"de": "Namen"}},
                        {"key": "permit", "label": {"de": "Erlaubnis"},
                         "visibleIf": {"equals": {"field": "listed", "value": true}}}
                    ]}
                ]
            }
        });
        Wizard::new(serde_json::from_value(content).unwrap())
    }

    fn post(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn posted_answers_become_typed_json_and_unanswered_ones_disappear() {
        let w = wizard();
        let step = w.step("a").unwrap();
        let mut data = Map::new();
        data.insert("size".into(), json!(3));
        w.apply(
            step,
            &mut data,
            &post(&[
                ("count", " 2 "),
                ("size", "1,5"),
                ("listed", "true"),
                ("permit", "P-1"),
            ]),
            "",
        );
        assert_eq!(
            Value::Object(data.clone()),
            json!({"count": 2, "size": 1.5, "listed": true, "permit": "P-1"})
        );
        // Text that is no number stays as typed, for the API to name; a hidden field's answer goes.
        w.apply(
            step,
            &mut data,
            &post(&[("count", "zwei"), ("listed", "false"), ("permit", "P-1")]),
            "",
        );
        assert_eq!(
            Value::Object(data),
            json!({"count": "zwei", "listed": false})
        );
    }

    #[test]
    fn repeating_fields_take_every_value_and_grow_or_shrink_on_request() {
        let w = wizard();
        let step = w.step("a").unwrap();
        let mut data = Map::new();
        w.apply(
            step,
            &mut data,
            &post(&[("names", "Bello"), ("names", ""), ("names", "Rex")]),
            "add:names",
        );
        assert_eq!(data["names"], json!(["Bello", "Rex", ""]));
        w.apply(
            step,
            &mut data,
            &post(&[("names", "Bello"), ("names", "Rex")]),
            "remove:names:0",
        );
        assert_eq!(data["names"], json!(["Rex"]));
    }

    #[test]
    fn a_field_that_depends_on_an_answer_of_its_own_step_stays_visible_with_a_note() {
        let w = wizard();
        let step = w.step("a").unwrap();
        let view = w.view(Lang::De, step, &json!({}), &BTreeMap::new());
        let permit = view.fields.iter().find(|f| f.key == "permit").unwrap();
        assert!(permit.only_if);
        let count = view.fields.iter().find(|f| f.key == "count").unwrap();
        assert_eq!((count.kind, count.required), ("number", true));
        assert_eq!(
            view.fields.iter().find(|f| f.key == "listed").unwrap().kind,
            "yesno"
        );
        assert_eq!(
            view.fields.iter().find(|f| f.key == "names").unwrap().kind,
            "list"
        );
    }

    #[test]
    fn api_problems_are_shown_at_their_field_in_the_page_language() {
        let w = wizard();
        let step = w.step("a").unwrap();
        let problems = BTreeMap::from([("input.data/count".to_owned(), "is required".to_owned())]);
        let view = w.view(Lang::En, step, &json!({}), &problems);
        let count = view.fields.iter().find(|f| f.key == "count").unwrap();
        assert_eq!(count.error.as_deref(), Some("Enter “Anzahl”."));
        let links = w.error_links(Lang::En, &problems, None, &|s| format!("/steps/{s}"));
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].href, "/steps/a#f-count");
    }

    #[test]
    fn choices_show_their_labels_and_fall_back_to_the_value() {
        let content = json!({
            "title": {"de": "T"}, "summary": {"de": "S"}, "category": "test",
            "form": {
                "schema": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["001", "002"]}
                }},
                "steps": [{"key": "a", "title": {"de": "A"}, "fields": [
                    {"key": "status", "label": {"de": "Die Person"},
                     "choices": {"001": {"de": "ist schwanger", "en": "is pregnant"}}}
                ]}]
            }
        });
        let w = Wizard::new(serde_json::from_value(content).unwrap());
        let step = w.step("a").unwrap();
        let view = w.view(Lang::En, step, &json!({"status": "002"}), &BTreeMap::new());
        let labels: Vec<(&str, &str, bool)> = view.fields[0]
            .options
            .iter()
            .map(|o| (o.value.as_str(), o.label.as_str(), o.checked))
            .collect();
        assert_eq!(
            labels,
            [("001", "is pregnant", false), ("002", "002", true)]
        );
        assert_eq!(
            w.display(Lang::De, "status", &json!("001")),
            "ist schwanger"
        );
        assert_eq!(w.display(Lang::De, "status", &json!("002")), "002");
    }
}
