//! The XDatenfelder 2 schema message (`xdatenfelder.stammdatenschema.0102`) as a typed tree:
//! the schema, its structure of groups (`datenfeldgruppe`) and fields (`datenfeld`) with their
//! cardinality (`anzahl`), and the rules (`regel`). Read from the element tree of [`super::xml`].

use super::xml::Element;

pub const NAMESPACE: &str = "urn:xoev-de:fim:standard:xdatenfelder_2";
pub const ROOT: &str = "xdatenfelder.stammdatenschema.0102";

/// `anzahl`: how often an element occurs (`0:1`, `1:*`, `2:5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cardinality {
    pub min: u32,
    /// `None` for `*`.
    pub max: Option<u32>,
    pub raw: String,
}

impl Cardinality {
    fn parse(raw: &str) -> Option<Self> {
        let (min, max) = raw.trim().split_once(':')?;
        let min: u32 = min.trim().parse().ok()?;
        let max = match max.trim() {
            "*" => None,
            m => Some(m.parse::<u32>().ok().filter(|m| *m >= min.max(1))?),
        };
        Some(Self {
            min,
            max,
            raw: raw.trim().to_owned(),
        })
    }

    /// Whether it may occur more than once.
    pub fn repeats(&self) -> bool {
        self.max != Some(1)
    }
}

/// What every schema element has.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub id: String,
    pub version: Option<String>,
    pub name: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub help: Option<String>,
    pub rules: Vec<Rule>,
}

impl Common {
    /// What the citizen reads: the input label, else the name, else the id.
    pub fn title(&self) -> String {
        self.label
            .clone()
            .or_else(|| Some(self.name.clone()).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| self.id.clone())
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub version: Option<String>,
    pub name: String,
    pub definition: String,
}

/// The reference of a `select` field to its code list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeListRef {
    pub id: Option<String>,
    pub canonical_uri: Option<String>,
    pub version: Option<String>,
    pub canonical_version_uri: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub common: Common,
    /// `input`, `select`, `label`, `hidden`, `locked`.
    pub kind: String,
    /// `text`, `date`, `bool`, `num`, `num_int`, `num_currency`, `file`, `obj`.
    pub data_type: String,
    pub precision: Option<String>,
    pub content: Option<String>,
    pub code_list: Option<CodeListRef>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub common: Common,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Node {
    Group(Group),
    Field(Field),
}

impl Node {
    pub fn common(&self) -> &Common {
        match self {
            Self::Group(g) => &g.common,
            Self::Field(f) => &f.common,
        }
    }
}

/// One place in a structure: an element with its cardinality there.
#[derive(Debug, Clone)]
pub struct Item {
    pub cardinality: Cardinality,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub common: Common,
    pub output_label: Option<String>,
    pub items: Vec<Item>,
}

/// A problem in the document, at a path of FIM ids (`S00000094/G00000253/F60000319`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> ReadError {
    ReadError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads the schema message's root element.
pub fn read(root: &Element) -> Result<Schema, ReadError> {
    let schema = root
        .child("stammdatenschema")
        .ok_or_else(|| err("", "the message has no `stammdatenschema`"))?;
    let common = common(schema, "")?;
    let path = common.id.clone();
    let items = structure(schema, &path)?;
    Ok(Schema {
        output_label: schema.text_at(&["bezeichnungAusgabe"]),
        common,
        items,
    })
}

fn common(e: &Element, parent: &str) -> Result<Common, ReadError> {
    let id = e.text_at(&["identifikation", "id"]).ok_or_else(|| {
        err(
            parent,
            format!("a `{}` without `identifikation/id`", e.name),
        )
    })?;
    let path = join(parent, &id);
    let rules = e
        .children("regel")
        .map(|r| -> Result<Rule, ReadError> {
            Ok(Rule {
                id: r
                    .text_at(&["identifikation", "id"])
                    .ok_or_else(|| err(&path, "a `regel` without `identifikation/id`"))?,
                version: r.text_at(&["identifikation", "version"]),
                name: r.text_at(&["name"]).unwrap_or_default(),
                definition: r.text_at(&["definition"]).unwrap_or_default(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Common {
        version: e.text_at(&["identifikation", "version"]),
        name: e.text_at(&["name"]).unwrap_or_default(),
        label: e.text_at(&["bezeichnungEingabe"]),
        description: e.text_at(&["beschreibung"]),
        help: e.text_at(&["hilfetextEingabe"]),
        rules,
        id,
    })
}

fn join(parent: &str, id: &str) -> String {
    if parent.is_empty() {
        id.to_owned()
    } else {
        format!("{parent}/{id}")
    }
}

/// The `struktur` children of a schema or group. Recursion is bounded by the element tree's
/// depth limit.
fn structure(e: &Element, path: &str) -> Result<Vec<Item>, ReadError> {
    let mut items = Vec::new();
    for s in e.children("struktur") {
        let raw = s
            .text_at(&["anzahl"])
            .ok_or_else(|| err(path, "a `struktur` without `anzahl`"))?;
        let cardinality = Cardinality::parse(&raw).ok_or_else(|| {
            err(
                path,
                format!(
                    "`anzahl` must be `min:max` (max a number ≥ min and ≥ 1, or *), not `{raw}`"
                ),
            )
        })?;
        let content = s
            .child("enthaelt")
            .ok_or_else(|| err(path, "a `struktur` without `enthaelt`"))?;
        let mut found = false;
        for child in &content.children {
            let node = match child.name.as_str() {
                "datenfeldgruppe" => {
                    let common = common(child, path)?;
                    let inner = join(path, &common.id);
                    Node::Group(Group {
                        items: structure(child, &inner)?,
                        common,
                    })
                }
                "datenfeld" => Node::Field(field(child, path)?),
                _ => continue,
            };
            found = true;
            items.push(Item {
                cardinality: cardinality.clone(),
                node,
            });
        }
        if !found {
            return Err(err(
                path,
                "an `enthaelt` with neither `datenfeld` nor `datenfeldgruppe`",
            ));
        }
    }
    Ok(items)
}

fn code(e: &Element, name: &str) -> Option<String> {
    e.text_at(&[name, "code"])
}

fn field(e: &Element, parent: &str) -> Result<Field, ReadError> {
    let common = common(e, parent)?;
    let path = join(parent, &common.id);
    let kind = code(e, "feldart").ok_or_else(|| err(&path, "a `datenfeld` without `feldart`"))?;
    let data_type = code(e, "datentyp").unwrap_or_else(|| "text".to_owned());
    let code_list = e.child("codelisteReferenz").map(|r| CodeListRef {
        id: r.text_at(&["identifikation", "id"]),
        canonical_uri: r.text_at(&["genericodeIdentification", "canonicalIdentification"]),
        version: r.text_at(&["genericodeIdentification", "version"]),
        canonical_version_uri: r.text_at(&["genericodeIdentification", "canonicalVersionUri"]),
    });
    Ok(Field {
        kind,
        data_type,
        precision: e.text_at(&["praezisierung"]),
        content: e.text_at(&["inhalt"]),
        code_list,
        common,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinalities_parse_and_nonsense_does_not() {
        let c = Cardinality::parse("1:*").unwrap();
        assert_eq!((c.min, c.max, c.repeats()), (1, None, true));
        assert!(!Cardinality::parse("0:1").unwrap().repeats());
        assert_eq!(Cardinality::parse("2:5").unwrap().max, Some(5));
        for bad in ["", "1", "a:b", "3:2", "0:0", "-1:1", "1:99999999999"] {
            assert!(Cardinality::parse(bad).is_none(), "{bad}");
        }
    }
}
