//! From an XDatenfelder 2 schema to service content.
//!
//! - Each top-level group becomes a step; top-level fields in a row become one step
//!   ("Weitere Angaben"). Nested groups are flattened into their step: the data stays one flat
//!   object of field values, as the portal and the rest of the content expect.
//! - A field becomes a JSON Schema property and a layout field: `datentyp` gives the type
//!   (`text` string, `date` string/date, `bool` boolean, `num`/`num_currency` number, `num_int`
//!   integer), `praezisierung` the constraints (`minLength`, `maxLength`, `pattern` — anchored,
//!   as XSD patterns are —, `minValue`/`maxValue` as `minimum`/`maximum`).
//! - `anzahl` min ≥ 1 makes a field required where every group above it is required too. The
//!   required fields of an optional group (`0:1`) become `dependentRequired`: once any field of
//!   the group is answered, its required fields are. A field that repeats becomes an array with
//!   `minItems`/`maxItems`; a group that repeats becomes one array of objects.
//! - `select` fields take their codes as `enum` and the names as choice labels from the code
//!   lists supplied along; without the list, the field is free text and a warning says so.
//! - `file`/`obj` fields become required documents; `label` fields become the step's text;
//!   `hidden` and `locked` fields are left out (with a warning).
//! - Rules (`regel`) are free text: they become notes for the author and warnings, never logic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::genericode::CodeList;
use super::keys::slug;
use super::plan::{TOP, assign_keys, is_document, plan};
use super::xdf2::{Cardinality, Field, Item, Node, Schema};
use super::{Report, Warning};
use crate::content::documents::CONTENT_TYPES;

/// At most this many bytes of a text (label, help) are kept; longer ones are cut with a warning.
const MAX_TEXT: usize = 4_000;

/// An object schema being built: the top-level form, or the items of a repeated group.
#[derive(Default)]
struct Scope {
    properties: Map<String, Value>,
    required: Vec<String>,
    dependent: BTreeMap<String, BTreeSet<String>>,
}

impl Scope {
    fn into_schema(self, top: bool) -> Value {
        let mut schema = Map::new();
        if top {
            schema.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
        }
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), Value::Object(self.properties));
        if !self.required.is_empty() {
            schema.insert("required".into(), json!(self.required));
        }
        if !self.dependent.is_empty() {
            schema.insert("dependentRequired".into(), json!(self.dependent));
        }
        schema.insert("additionalProperties".into(), false.into());
        Value::Object(schema)
    }
}

/// A layout field being placed in a step, with the group label that may tell it apart.
struct Placed {
    field: Value,
    label: String,
    parent: Option<String>,
}

struct StepBuild {
    key: String,
    title: String,
    description: Vec<String>,
    fields: Vec<Placed>,
}

/// Pass two's state.
struct Mapper<'a> {
    keys: Vec<String>,
    next: usize,
    code_lists: &'a [CodeList],
    used_lists: BTreeMap<String, Value>,
    warnings: Vec<Warning>,
    elements: BTreeMap<String, Value>,
    notes: Vec<Value>,
    documents: Vec<Value>,
    /// Inside a repeated group: `<its key>/`, before the keys of its fields in `elements`.
    prefix: String,
}

/// The content and the parts of the report the mapping knows.
pub struct Mapped {
    pub content: Value,
    pub code_lists: usize,
    pub code_lists_missing: usize,
}

pub fn map(
    schema: &Schema,
    code_lists: &[CodeList],
    category: &str,
    report: &mut Report,
) -> Mapped {
    let mut planned = Vec::new();
    plan(&schema.items, &[], &[], TOP, &mut planned);
    let mut m = Mapper {
        keys: assign_keys(&planned),
        next: 0,
        code_lists,
        used_lists: BTreeMap::new(),
        warnings: Vec::new(),
        elements: BTreeMap::new(),
        notes: Vec::new(),
        documents: Vec::new(),
        prefix: String::new(),
    };
    m.rules(&schema.common.rules, "", &schema.common.id);

    let mut top = Scope::default();
    let mut steps: Vec<StepBuild> = Vec::new();
    let mut run: Option<StepBuild> = None;
    for item in &schema.items {
        let path = format!("{}/{}", schema.common.id, item.node.common().id);
        match &item.node {
            Node::Group(g) if !item.cardinality.repeats() => {
                if let Some(done) = run.take() {
                    steps.push(done);
                }
                let id = m.take();
                let key = m.keys[id].clone();
                let at = format!("steps/{key}");
                m.element(&at, "group", &g.common, &path, &item.cardinality, None);
                m.rules(&g.common.rules, &at, &path);
                let mut step = StepBuild {
                    key,
                    title: text(&g.common.title()),
                    description: g.common.help.iter().map(|h| text(h)).collect(),
                    fields: Vec::new(),
                };
                let required = item.cardinality.min >= 1;
                let keys = m.items(&g.items, &path, &mut top, &mut step, None, required);
                m.settle(&item.cardinality, keys, &mut top);
                steps.push(step);
            }
            _ => {
                let step = run.get_or_insert_with(|| StepBuild {
                    key: String::new(),
                    title: "Weitere Angaben".to_owned(),
                    description: Vec::new(),
                    fields: Vec::new(),
                });
                let keys = m.item(item, &schema.common.id, &mut top, step, None, true);
                m.settle_top(keys, &mut top);
                if step.key.is_empty()
                    && let Some(first) = step.fields.first()
                {
                    step.key = format!("angaben_{}", first.field["key"].as_str().unwrap_or("x"));
                }
            }
        }
    }
    if let Some(done) = run.take() {
        steps.push(done);
    }
    // A run of fields that placed nothing (labels, documents) still needs a key.
    let mut step_keys = BTreeSet::new();
    for (i, s) in steps.iter_mut().enumerate() {
        if s.key.is_empty() || !step_keys.insert(s.key.clone()) {
            s.key = format!("angaben_{}", i + 1);
            step_keys.insert(s.key.clone());
        }
    }

    // A group that held only documents or left-out fields asks nothing on a page of its own.
    steps.retain(|s| !s.fields.is_empty() || !s.description.is_empty());
    let steps: Vec<Value> = steps.into_iter().map(layout).collect();
    let title = text(&schema.common.title());
    let summary = schema
        .common
        .description
        .clone()
        .or_else(|| schema.output_label.clone())
        .unwrap_or_else(|| schema.common.name.clone());
    let summary = if summary.trim().is_empty() {
        title.clone()
    } else {
        text(&summary)
    };
    let code_lists_missing = m.used_lists.values().filter(|l| l["codes"] == 0).count();
    let code_lists_count = m.used_lists.len() - code_lists_missing;
    report.warnings.append(&mut m.warnings);
    let content = json!({
        "title": {"de": title},
        "summary": {"de": summary},
        "category": category,
        "form": {"schema": top.into_schema(true), "steps": steps},
        "requiredDocuments": m.documents,
        "fim": {
            "standard": "xdatenfelder-2",
            "schemaId": schema.common.id,
            "schemaVersion": schema.common.version.clone().unwrap_or_default(),
            "name": schema.common.name,
            "elements": m.elements,
            "codeLists": m.used_lists.into_values().collect::<Vec<_>>(),
            "notes": m.notes,
        }
    });
    Mapped {
        content,
        code_lists: code_lists_count,
        code_lists_missing,
    }
}

fn layout(step: StepBuild) -> Value {
    // Two fields of one step with the same label (two postcodes, say) are told apart by
    // their group's label.
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &step.fields {
        *count.entry(f.label.as_str()).or_default() += 1;
    }
    let fields: Vec<Value> = step
        .fields
        .iter()
        .map(|f| {
            let mut field = f.field.clone();
            if count.get(f.label.as_str()).copied().unwrap_or(0) > 1
                && let Some(parent) = &f.parent
            {
                field["label"]["de"] = text(&format!("{parent}: {}", f.label)).into();
            }
            field
        })
        .collect();
    let mut out = json!({"key": step.key, "title": {"de": step.title}, "fields": fields});
    if !step.description.is_empty() {
        out["description"] = json!({"de": text(&step.description.join("\n\n"))});
    }
    out
}

/// A text as content keeps it: line ends normalized, at most [`MAX_TEXT`] bytes.
fn text(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let s = s.trim();
    if s.len() <= MAX_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_TEXT - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Data keys under an element, each with whether it is required relative to that element.
type Under = Vec<(String, bool)>;

impl<'a> Mapper<'a> {
    fn take(&mut self) -> usize {
        let id = self.next;
        self.next += 1;
        id
    }

    fn warn(&mut self, path: &str, key: Option<&str>, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.to_owned(),
            key: key.map(str::to_owned),
            message: message.into(),
        });
    }

    fn element(
        &mut self,
        key: &str,
        kind: &str,
        common: &super::xdf2::Common,
        path: &str,
        cardinality: &Cardinality,
        code_list: Option<String>,
    ) {
        let mut e =
            json!({"kind": kind, "id": common.id, "path": path, "cardinality": cardinality.raw});
        if let Some(v) = &common.version {
            e["version"] = v.clone().into();
        }
        if let Some(c) = code_list {
            e["codeList"] = c.into();
        }
        self.elements.insert(key.to_owned(), e);
    }

    fn rules(&mut self, rules: &[super::xdf2::Rule], at: &str, path: &str) {
        for r in rules {
            let mut key = slug(&r.id);
            let mut n = 2;
            while self.notes.iter().any(|x| x["key"] == key.as_str()) {
                key = format!("{}_{n}", slug(&r.id));
                n += 1;
            }
            let mut note = json!({"key": key, "at": at, "ruleId": r.id, "name": text(&r.name), "text": text(&r.definition)});
            if let Some(v) = &r.version {
                note["ruleVersion"] = v.clone().into();
            }
            self.notes.push(note);
            let key = (!at.is_empty()).then_some(at);
            self.warn(
                path,
                key,
                format!(
                    "rule {} „{}“ is free text and was not turned into logic: {}",
                    r.id,
                    r.name,
                    text(&r.definition)
                ),
            );
        }
    }

    /// Requiredness of what a top-level non-repeated group holds.
    fn settle(&mut self, card: &Cardinality, under: Under, scope: &mut Scope) {
        let under = self.optional(card, under, scope);
        self.settle_top(under, scope);
    }

    fn settle_top(&mut self, under: Under, scope: &mut Scope) {
        for (key, required) in under {
            if required {
                scope.required.push(key);
            }
        }
    }

    /// Under an optional group, its required fields depend on any of its fields.
    fn optional(&mut self, card: &Cardinality, under: Under, scope: &mut Scope) -> Under {
        if card.min >= 1 {
            return under;
        }
        let required: BTreeSet<&String> =
            under.iter().filter(|(_, r)| *r).map(|(k, _)| k).collect();
        if !required.is_empty() {
            for (key, _) in &under {
                let deps: BTreeSet<String> = required
                    .iter()
                    .filter(|r| r.as_str() != key.as_str())
                    .map(|r| (*r).clone())
                    .collect();
                if !deps.is_empty() {
                    scope.dependent.entry(key.clone()).or_default().extend(deps);
                }
            }
        }
        under.into_iter().map(|(k, _)| (k, false)).collect()
    }

    /// The items of a group, placed into `step` (or into a repeated group's object when
    /// `step` is that group's collector); returns their data keys.
    fn items(
        &mut self,
        items: &[Item],
        path: &str,
        scope: &mut Scope,
        step: &mut StepBuild,
        parent: Option<&str>,
        chain_required: bool,
    ) -> Under {
        let mut under = Vec::new();
        for item in items {
            under.extend(self.item(item, path, scope, step, parent, chain_required));
        }
        under
    }

    fn item(
        &mut self,
        item: &Item,
        parent_path: &str,
        scope: &mut Scope,
        step: &mut StepBuild,
        parent_label: Option<&str>,
        chain_required: bool,
    ) -> Under {
        let (card, node) = (&item.cardinality, &item.node);
        let path = format!("{parent_path}/{}", node.common().id);
        let id = self.take();
        let key = self.keys[id].clone();
        match node {
            Node::Group(g) if card.repeats() => {
                let at = format!("{}{key}", self.prefix);
                self.element(&at, "group", &g.common, &path, card, None);
                self.rules(&g.common.rules, &at, &path);
                let outer = std::mem::replace(&mut self.prefix, format!("{at}/"));
                let mut inner = Scope::default();
                let mut collector = StepBuild {
                    key: String::new(),
                    title: String::new(),
                    description: Vec::new(),
                    fields: Vec::new(),
                };
                let under = self.items(&g.items, &path, &mut inner, &mut collector, None, false);
                self.prefix = outer;
                for (k, required) in under {
                    if required {
                        inner.required.push(k);
                    }
                }
                let mut prop = json!({"type": "array", "items": inner.into_schema(false)});
                if card.min > 0 {
                    prop["minItems"] = card.min.into();
                }
                if let Some(max) = card.max {
                    prop["maxItems"] = max.into();
                }
                scope.properties.insert(key.clone(), prop);
                self.warn(
                    &path,
                    Some(&key),
                    format!(
                        "the group repeats ({}): its answers are a list of objects; the citizen portal does not render repeating groups yet",
                        card.raw
                    ),
                );
                let label = text(&g.common.title());
                let mut field = json!({"key": key, "label": {"de": label}});
                if let Some(h) = &g.common.help {
                    field["help"] = json!({"de": text(h)});
                }
                step.fields.push(Placed {
                    field,
                    label,
                    parent: parent_label.map(str::to_owned),
                });
                vec![(key, card.min >= 1)]
            }
            Node::Group(g) => {
                let at = format!("groups/{key}");
                self.element(&at, "group", &g.common, &path, card, None);
                self.rules(&g.common.rules, &at, &path);
                let label = g.common.title();
                let under = self.items(
                    &g.items,
                    &path,
                    scope,
                    step,
                    Some(&label),
                    chain_required && card.min >= 1,
                );
                self.optional(card, under, scope)
            }
            Node::Field(f) => self.field(
                f,
                card,
                &key,
                &path,
                scope,
                step,
                parent_label,
                chain_required,
            ),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one walk, its state spelled out")]
    fn field(
        &mut self,
        f: &Field,
        card: &Cardinality,
        key: &str,
        path: &str,
        scope: &mut Scope,
        step: &mut StepBuild,
        parent_label: Option<&str>,
        chain_required: bool,
    ) -> Under {
        let label = text(&f.common.title());
        let at = if is_document(f) {
            format!("documents/{key}")
        } else {
            format!("{}{key}", self.prefix)
        };
        self.rules(&f.common.rules, &at, path);
        match f.kind.as_str() {
            "label" => {
                let body = f.content.clone().or_else(|| f.common.help.clone());
                step.description.push(text(
                    &[Some(label), body]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("\n"),
                ));
                return vec![];
            }
            "input" | "select" => {}
            other => {
                self.warn(
                    path,
                    None,
                    format!("a field of kind `{other}` is not asked of citizens and was left out"),
                );
                return vec![];
            }
        }
        if is_document(f) {
            self.element(&at, "document", &f.common, path, card, None);
            let mut doc = json!({
                "key": key,
                "label": {"de": label},
                "required": chain_required && card.min >= 1,
                "contentTypes": CONTENT_TYPES,
            });
            if let Some(h) = &f.common.help {
                doc["description"] = json!({"de": text(h)});
            }
            if card.repeats() {
                self.warn(
                    path,
                    None,
                    format!(
                        "the document may be attached {} times; the content names it once",
                        card.raw
                    ),
                );
            }
            self.documents.push(doc);
            return vec![];
        }

        if let Some(preset) = &f.content {
            self.warn(
                path,
                Some(&at),
                format!(
                    "the preset value „{}“ (`inhalt`) was not taken over",
                    text(preset)
                ),
            );
        }
        let (mut prop, choices, list_key) = self.property(f, key, path);
        self.element(&at, "field", &f.common, path, card, list_key);
        if card.repeats() {
            let mut array = json!({"type": "array", "items": prop});
            if card.min > 0 {
                array["minItems"] = card.min.into();
            }
            if let Some(max) = card.max {
                array["maxItems"] = max.into();
            }
            prop = array;
        }
        scope.properties.insert(key.to_owned(), prop);
        let mut field = json!({"key": key, "label": {"de": label}});
        if let Some(h) = &f.common.help {
            field["help"] = json!({"de": text(h)});
        }
        if !choices.is_empty() {
            field["choices"] = Value::Object(choices);
        }
        step.fields.push(Placed {
            field,
            label,
            parent: parent_label.map(str::to_owned),
        });
        vec![(key.to_owned(), card.min >= 1)]
    }

    /// A field's property schema, its choice labels and its code list's key.
    fn property(
        &mut self,
        f: &Field,
        key: &str,
        path: &str,
    ) -> (Value, Map<String, Value>, Option<String>) {
        let mut prop = match f.data_type.as_str() {
            "text" | "string" => json!({"type": "string"}),
            "date" => json!({"type": "string", "format": "date"}),
            "bool" => json!({"type": "boolean"}),
            "num" | "num_currency" => json!({"type": "number"}),
            "num_int" => json!({"type": "integer"}),
            other => {
                self.warn(
                    path,
                    Some(key),
                    format!("data type `{other}` is not known; taken as text"),
                );
                json!({"type": "string"})
            }
        };
        if let Some(p) = &f.precision {
            self.precision(&mut prop, p, key, path);
        }
        let mut choices = Map::new();
        let mut list_key = None;
        if f.kind == "select" {
            match &f.code_list {
                None => self.warn(
                    path,
                    Some(key),
                    "a select field without a code list; taken as text",
                ),
                Some(r) => {
                    let lists: &'a [CodeList] = self.code_lists;
                    let found = lists.iter().find(|l| {
                        (r.canonical_version_uri.is_some()
                            && l.canonical_version_uri == r.canonical_version_uri)
                            || (r.canonical_uri.as_deref() == Some(l.canonical_uri.as_str())
                                && r.version == l.version)
                    });
                    let lkey =
                        r.id.as_deref()
                            .map(slug)
                            .or_else(|| r.canonical_uri.as_deref().map(slug))
                            .unwrap_or_else(|| "codeliste".to_owned());
                    let uri = r
                        .canonical_uri
                        .clone()
                        .or_else(|| found.map(|l| l.canonical_uri.clone()))
                        .unwrap_or_default();
                    let mut record = json!({"key": lkey, "canonicalUri": uri, "codes": 0});
                    if let Some(v) = r
                        .version
                        .clone()
                        .or_else(|| found.and_then(|l| l.version.clone()))
                    {
                        record["version"] = v.into();
                    }
                    if let Some(v) = r
                        .canonical_version_uri
                        .clone()
                        .or_else(|| found.and_then(|l| l.canonical_version_uri.clone()))
                    {
                        record["canonicalVersionUri"] = v.into();
                    }
                    match found {
                        Some(list) if !list.rows.is_empty() => {
                            if let Some(n) = &list.short_name {
                                record["name"] = n.clone().into();
                            }
                            record["codes"] = list.rows.len().into();
                            let mut seen = BTreeSet::new();
                            let codes: Vec<&String> = list
                                .rows
                                .iter()
                                .map(|(c, _)| c)
                                .filter(|c| seen.insert(c.as_str()))
                                .collect();
                            prop = json!({"type": "string", "enum": codes});
                            for (code, name) in &list.rows {
                                choices
                                    .entry(code.clone())
                                    .or_insert_with(|| json!({"de": text(name)}));
                            }
                        }
                        _ => self.warn(
                            path,
                            Some(key),
                            format!(
                                "code list {} was not supplied: the field takes free text until it is imported along",
                                r.canonical_version_uri.as_deref().unwrap_or(&uri)
                            ),
                        ),
                    }
                    let lkey_owned = lkey.clone();
                    self.used_lists.entry(lkey).or_insert(record);
                    list_key = Some(lkey_owned);
                }
            }
        }
        (prop, choices, list_key)
    }

    /// `praezisierung`: a JSON object in XDatenfelder 2 (numbers as strings).
    fn precision(&mut self, prop: &mut Value, raw: &str, key: &str, path: &str) {
        let Ok(Value::Object(p)) = serde_json::from_str::<Value>(raw) else {
            self.warn(
                path,
                Some(key),
                format!(
                    "`praezisierung` is not a JSON object and was ignored: {}",
                    text(raw)
                ),
            );
            return;
        };
        let ty = prop["type"].as_str().unwrap_or("string").to_owned();
        let is_string = ty == "string" && prop.get("format").is_none();
        let number = |v: &Value| match v {
            Value::Number(n) => Some(n.clone()),
            Value::String(s) => s.trim().parse::<i64>().map(Into::into).ok().or_else(|| {
                s.trim()
                    .replace(',', ".")
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
            }),
            _ => None,
        };
        for (name, value) in &p {
            match (name.as_str(), is_string) {
                ("minLength" | "maxLength", true) => match number(value).and_then(|n| n.as_u64()) {
                    Some(n) => prop[name] = n.into(),
                    None => self.warn(path, Some(key), format!("`{name}` is not a length: {value}")),
                },
                ("pattern", true) => {
                    let pattern = value.as_str().unwrap_or_default();
                    // XSD patterns match the whole value; JSON Schema's match anywhere.
                    let anchored = format!("^(?:{pattern})$");
                    let check = json!({"type": "string", "pattern": anchored});
                    if jsonschema::draft202012::new(&check).is_ok() {
                        prop["pattern"] = anchored.into();
                    } else {
                        self.warn(path, Some(key), format!("the pattern `{pattern}` is not a valid regular expression here and was left out"));
                    }
                }
                ("minValue" | "maxValue", false) if ty == "number" || ty == "integer" => {
                    let target = if name == "minValue" { "minimum" } else { "maximum" };
                    match number(value) {
                        Some(n) => prop[target] = Value::Number(n),
                        None => self.warn(path, Some(key), format!("`{name}` is not a number: {value}")),
                    }
                }
                _ => self.warn(
                    path,
                    Some(key),
                    format!("`praezisierung` `{name}` = {value} does not apply to a {ty} field and was left out"),
                ),
            }
        }
    }
}
