//! FIM import: an XDatenfelder 2 schema (with the Genericode code lists of its `select` fields)
//! becomes a template version's content, plus a report of what was read and what the author
//! should look at. Nothing is stored here: the author publishes the content (as it is, or
//! edited) with `publishTemplateVersion`, so imported forms go through the same semver checks,
//! forks and merges as every other template.
//!
//! Read in this order: [`xml`] (quick-xml's reader into a small tree; no DTD, no entity
//! expansion), [`xdf2`] (the schema as typed data), [`genericode`] (code lists), [`keys`] (keys
//! from paths), [`mapping`] (content), then [`import`] here, which checks the input and
//! parses the result like any other content.
//!
//! XDatenfelder 1 (`urn:xoev-de:fim:standard:xdatenfelder_1`) and 3
//! (`urn:xoev-de:fim:standard:xdatenfelder_3.0.0`) are recognised and refused with a
//! `VALIDATION_FAILED` naming the version: version 1 has no `identifikation` and a different
//! header, and no specification of version 3 was at hand to build on.

pub mod genericode;
pub mod graphql;
pub mod keys;
pub mod mapping;
mod plan;
pub mod xdf2;
pub mod xml;

use serde::Serialize;
use serde_json::Value;

use crate::content::{Key, ServiceContent};
use crate::error::{AppError, FieldErrors};

/// Largest schema document accepted, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 768 * 1024;
/// Largest code list accepted, in bytes.
pub const MAX_CODE_LIST_BYTES: usize = 512 * 1024;
/// Largest schema and code lists together (a GraphQL request is at most 1 MiB anyway).
pub const MAX_TOTAL_BYTES: usize = 1024 * 1024;
/// Most code lists in one import.
pub const MAX_CODE_LISTS: usize = 50;

const XDF1: &str = "urn:xoev-de:fim:standard:xdatenfelder_1";
const XDF3_PREFIX: &str = "urn:xoev-de:fim:standard:xdatenfelder_3";

/// What to import; the field names are the paths errors name (`<xml_field>`,
/// `<code_lists_field>[i]`).
pub struct ImportInput<'a> {
    pub xml: &'a str,
    pub code_lists: &'a [String],
    /// The content's category (a key such as `fim` or `ordnung`).
    pub category: &'a str,
    pub xml_field: &'a str,
    pub code_lists_field: &'a str,
}

/// A thing for the author to look at: where (FIM ids from the schema down) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// FIM ids from the schema to the element, joined by `/` (`S00000094/G00000253/F60000319`).
    pub path: String,
    /// Where the element went in the content (its entry in `fim.elements`), if it went somewhere.
    pub key: Option<String>,
    pub message: String,
}

/// What the import read and made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The standard read (`xdatenfelder-2`), the schema's id, version and name.
    pub standard: String,
    pub schema_id: String,
    pub schema_version: Option<String>,
    pub name: String,
    /// Fields (`datenfeld`) at every place they occur, and distinct ones by (id, version).
    pub fields: usize,
    pub distinct_fields: usize,
    /// Groups (`datenfeldgruppe`) at every place they occur, and distinct ones.
    pub groups: usize,
    pub distinct_groups: usize,
    /// Rules (`regel`) at every place they occur, all turned into notes.
    pub rules: usize,
    /// Code lists whose codes became choices, and referenced ones that were not supplied.
    pub code_lists: usize,
    pub code_lists_missing: usize,
    /// What the content has: steps, form properties, required documents.
    pub steps: usize,
    pub properties: usize,
    pub documents: usize,
    pub warnings: Vec<Warning>,
}

/// The content (canonical, as `publishTemplateVersion` takes it) and the report.
#[derive(Debug, Clone)]
pub struct Imported {
    pub content: Value,
    pub report: Report,
}

/// Imports a schema with its code lists. Bad input is `VALIDATION_FAILED` (with the path of
/// the input and, where known, of the element) or `PAYLOAD_TOO_LARGE`; never a panic.
pub fn import(input: &ImportInput<'_>) -> Result<Imported, AppError> {
    check_text(input.xml_field, input.xml, MAX_SCHEMA_BYTES)?;
    if input.code_lists.len() > MAX_CODE_LISTS {
        return Err(AppError::invalid(
            input.code_lists_field,
            format!("at most {MAX_CODE_LISTS} code lists"),
        ));
    }
    let mut total = input.xml.len();
    for (i, list) in input.code_lists.iter().enumerate() {
        check_text(
            &format!("{}[{i}]", input.code_lists_field),
            list,
            MAX_CODE_LIST_BYTES,
        )?;
        total += list.len();
    }
    if total > MAX_TOTAL_BYTES {
        return Err(AppError::PayloadTooLarge {
            limit_bytes: MAX_TOTAL_BYTES,
        });
    }
    let category =
        Key::parse(input.category.trim()).map_err(|m| AppError::invalid("input.category", m))?;

    let mut code_lists = Vec::new();
    for (i, list) in input.code_lists.iter().enumerate() {
        let field = format!("{}[{i}]", input.code_lists_field);
        let root = xml::parse(list)
            .map_err(|e| AppError::invalid(&field, format!("not well-formed XML: {e}")))?;
        code_lists.push(genericode::read(&root).map_err(|m| AppError::invalid(&field, m))?);
    }

    let root = xml::parse(input.xml)
        .map_err(|e| AppError::invalid(input.xml_field, format!("not well-formed XML: {e}")))?;
    let namespace = root.namespace.as_deref().unwrap_or("");
    if namespace == XDF1 {
        return Err(AppError::invalid(
            input.xml_field,
            format!(
                "XDatenfelder 1 ({XDF1}) is not supported: export the schema as XDatenfelder 2 (urn:xoev-de:fim:standard:xdatenfelder_2) from the FIM portal"
            ),
        ));
    }
    if namespace.starts_with(XDF3_PREFIX) {
        return Err(AppError::invalid(
            input.xml_field,
            format!(
                "XDatenfelder 3 ({namespace}) is not supported yet: export the schema as XDatenfelder 2 (urn:xoev-de:fim:standard:xdatenfelder_2)"
            ),
        ));
    }
    if namespace != xdf2::NAMESPACE || root.name != xdf2::ROOT {
        return Err(AppError::invalid(
            input.xml_field,
            format!(
                "not an XDatenfelder 2 schema: expected `{}` in {}, found `{}` in {}",
                xdf2::ROOT,
                xdf2::NAMESPACE,
                root.name,
                if namespace.is_empty() {
                    "no namespace"
                } else {
                    namespace
                }
            ),
        ));
    }
    let schema = xdf2::read(&root).map_err(|e| {
        let path = if e.path.is_empty() {
            input.xml_field.to_owned()
        } else {
            format!("{}/{}", input.xml_field, e.path)
        };
        AppError::invalid(path, e.message)
    })?;
    if schema.items.is_empty() {
        return Err(AppError::invalid(
            input.xml_field,
            "the schema has no fields or groups",
        ));
    }

    let mut report = Report {
        standard: "xdatenfelder-2".into(),
        schema_id: schema.common.id.clone(),
        schema_version: schema.common.version.clone(),
        name: schema.common.name.clone(),
        ..Report::default()
    };
    count(&schema, &mut report);
    let mapped = mapping::map(&schema, &code_lists, category.as_str(), &mut report);
    report.code_lists = mapped.code_lists;
    report.code_lists_missing = mapped.code_lists_missing;

    // The result is content like any other: what does not parse is named by its path.
    let content = ServiceContent::parse(&mapped.content).map_err(|e| match e {
        AppError::Validation(fields) => AppError::Validation(
            fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        format!("content{k}"),
                        format!("the imported form cannot be used: {v}"),
                    )
                })
                .collect::<FieldErrors>(),
        ),
        other => other,
    })?;
    report.steps = content.form.steps.len();
    report.properties = content.properties().len();
    report.documents = content.required_documents.len();
    Ok(Imported {
        content: content.to_value(),
        report,
    })
}

fn check_text(field: &str, text: &str, limit: usize) -> Result<(), AppError> {
    if text.len() > limit {
        return Err(AppError::PayloadTooLarge { limit_bytes: limit });
    }
    if text.contains('\0') {
        return Err(AppError::invalid(field, "must not contain NUL characters"));
    }
    if text.trim().is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Occurrences and distinct (id, version) pairs of fields and groups, and the rules.
fn count(schema: &xdf2::Schema, report: &mut Report) {
    use std::collections::BTreeSet;
    let mut fields = BTreeSet::new();
    let mut groups = BTreeSet::new();
    report.rules = schema.common.rules.len();
    let mut stack: Vec<&xdf2::Item> = schema.items.iter().collect();
    while let Some(item) = stack.pop() {
        let c = item.node.common();
        report.rules += c.rules.len();
        match &item.node {
            xdf2::Node::Field(_) => {
                report.fields += 1;
                fields.insert((c.id.clone(), c.version.clone()));
            }
            xdf2::Node::Group(g) => {
                report.groups += 1;
                groups.insert((c.id.clone(), c.version.clone()));
                stack.extend(g.items.iter());
            }
        }
    }
    report.distinct_fields = fields.len();
    report.distinct_groups = groups.len();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A small schema with what the mapping must handle: an optional group with a required
    /// field, the same field in two groups, a repeating field and group, a select field with
    /// its code list, a label, a hidden field, a file, a rule and a non-JSON precision.
    const SCHEMA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xdf:xdatenfelder.stammdatenschema.0102 xmlns:xdf="urn:xoev-de:fim:standard:xdatenfelder_2">
 <xdf:header><xdf:nachrichtID>1</xdf:nachrichtID></xdf:header>
 <xdf:stammdatenschema>
  <xdf:identifikation><xdf:id>S1</xdf:id><xdf:version>1.0</xdf:version></xdf:identifikation>
  <xdf:name>Test</xdf:name><xdf:bezeichnungEingabe>Testantrag</xdf:bezeichnungEingabe>
  <xdf:regel><xdf:identifikation><xdf:id>R1</xdf:id></xdf:identifikation><xdf:name>Regel</xdf:name>
   <xdf:definition>Wenn F2 leer ist, dann F3.&#xD;
Sonst nicht.</xdf:definition></xdf:regel>
  <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt>
   <xdf:datenfeldgruppe><xdf:identifikation><xdf:id>G1</xdf:id></xdf:identifikation><xdf:name>Person</xdf:name>
    <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
     <xdf:identifikation><xdf:id>F1</xdf:id></xdf:identifikation><xdf:name>Name</xdf:name>
     <xdf:hilfetextEingabe>Ihr Name</xdf:hilfetextEingabe>
     <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
     <xdf:praezisierung>{"minLength":"1","maxLength":"20","pattern":"[A-Z].*"}</xdf:praezisierung>
    </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
    <xdf:struktur><xdf:anzahl>0:1</xdf:anzahl><xdf:enthaelt>
     <xdf:datenfeldgruppe><xdf:identifikation><xdf:id>G2</xdf:id></xdf:identifikation><xdf:name>Postfach</xdf:name>
      <xdf:struktur><xdf:anzahl>0:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
       <xdf:identifikation><xdf:id>F2</xdf:id></xdf:identifikation><xdf:name>Postfach</xdf:name>
       <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
       <xdf:inhalt>Muster</xdf:inhalt>
      </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
      <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
       <xdf:identifikation><xdf:id>F1</xdf:id></xdf:identifikation><xdf:name>Name</xdf:name>
       <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
      </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
     </xdf:datenfeldgruppe></xdf:enthaelt></xdf:struktur>
    <xdf:struktur><xdf:anzahl>2:5</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
     <xdf:identifikation><xdf:id>F3</xdf:id></xdf:identifikation><xdf:name>Zeile</xdf:name>
     <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
     <xdf:praezisierung>kein JSON</xdf:praezisierung>
    </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
   </xdf:datenfeldgruppe></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
   <xdf:identifikation><xdf:id>F4</xdf:id></xdf:identifikation><xdf:name>Status</xdf:name>
   <xdf:feldart><code>select</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
   <xdf:codelisteReferenz><xdf:identifikation><xdf:id>C1</xdf:id></xdf:identifikation>
    <xdf:genericodeIdentification><xdf:canonicalIdentification>urn:c</xdf:canonicalIdentification>
    <xdf:version>1</xdf:version><xdf:canonicalVersionUri>urn:c_1</xdf:canonicalVersionUri></xdf:genericodeIdentification>
   </xdf:codelisteReferenz></xdf:datenfeld></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>0:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
   <xdf:identifikation><xdf:id>F5</xdf:id></xdf:identifikation><xdf:name>Hinweis</xdf:name>
   <xdf:feldart><code>label</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
   <xdf:inhalt>Bitte lesen.</xdf:inhalt></xdf:datenfeld></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>0:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
   <xdf:identifikation><xdf:id>F6</xdf:id></xdf:identifikation><xdf:name>Intern</xdf:name>
   <xdf:feldart><code>hidden</code></xdf:feldart><xdf:datentyp><code>text</code></xdf:datentyp>
  </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
   <xdf:identifikation><xdf:id>F7</xdf:id></xdf:identifikation><xdf:name>Nachweis</xdf:name>
   <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>file</code></xdf:datentyp>
  </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt>
   <xdf:datenfeldgruppe><xdf:identifikation><xdf:id>G4</xdf:id></xdf:identifikation><xdf:name>Nachweise</xdf:name>
    <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
     <xdf:identifikation><xdf:id>F9</xdf:id></xdf:identifikation><xdf:name>Ausweis</xdf:name>
     <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>file</code></xdf:datentyp>
    </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
   </xdf:datenfeldgruppe></xdf:enthaelt></xdf:struktur>
  <xdf:struktur><xdf:anzahl>0:3</xdf:anzahl><xdf:enthaelt>
   <xdf:datenfeldgruppe><xdf:identifikation><xdf:id>G3</xdf:id></xdf:identifikation><xdf:name>Kind</xdf:name>
    <xdf:struktur><xdf:anzahl>1:1</xdf:anzahl><xdf:enthaelt><xdf:datenfeld>
     <xdf:identifikation><xdf:id>F8</xdf:id></xdf:identifikation><xdf:name>Alter</xdf:name>
     <xdf:feldart><code>input</code></xdf:feldart><xdf:datentyp><code>num_int</code></xdf:datentyp>
     <xdf:praezisierung>{"minValue":"0","maxValue":"17"}</xdf:praezisierung>
    </xdf:datenfeld></xdf:enthaelt></xdf:struktur>
   </xdf:datenfeldgruppe></xdf:enthaelt></xdf:struktur>
 </xdf:stammdatenschema>
</xdf:xdatenfelder.stammdatenschema.0102>"#;

    const CODES: &str = r#"<gc:CodeList xmlns:gc="http://docs.oasis-open.org/codelist/ns/genericode/1.0/"><Identification><ShortName>Status</ShortName><Version>1</Version><CanonicalUri>urn:c</CanonicalUri><CanonicalVersionUri>urn:c_1</CanonicalVersionUri></Identification><ColumnSet><Column Id="code"/><Column Id="name"/><Key Id="codeKey"><ColumnRef Ref="code"/></Key></ColumnSet><SimpleCodeList><Row><Value ColumnRef="code"><SimpleValue>01</SimpleValue></Value><Value ColumnRef="name"><SimpleValue>ledig</SimpleValue></Value></Row><Row><Value ColumnRef="code"><SimpleValue>02</SimpleValue></Value><Value ColumnRef="name"><SimpleValue>verheiratet</SimpleValue></Value></Row></SimpleCodeList></gc:CodeList>"#;

    fn run(xml: &str, lists: &[String]) -> Result<Imported, AppError> {
        import(&ImportInput {
            xml,
            code_lists: lists,
            category: "fim",
            xml_field: "xml",
            code_lists_field: "codeLists",
        })
    }

    #[test]
    fn a_schema_maps_to_content_with_keys_from_paths() {
        let imported = run(SCHEMA, &[CODES.to_owned()]).unwrap();
        let (c, r) = (&imported.content, &imported.report);
        assert_eq!(
            (r.fields, r.distinct_fields, r.groups, r.distinct_groups),
            (10, 9, 4, 4)
        );
        assert_eq!((r.rules, r.code_lists, r.code_lists_missing), (1, 1, 0));
        let schema = &c["form"]["schema"];
        // F1 occurs twice: keys from the path.
        assert_eq!(schema["required"], json!(["g1_f1", "f3", "f4"]));
        assert_eq!(
            schema["properties"]["g1_f1"],
            json!({"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^(?:[A-Z].*)$"})
        );
        // The optional group's required field is required once the group is answered.
        assert_eq!(schema["dependentRequired"], json!({"f2": ["g2_f1"]}));
        assert_eq!(
            schema["properties"]["f3"],
            json!({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 5})
        );
        assert_eq!(schema["properties"]["f4"]["enum"], json!(["01", "02"]));
        assert_eq!(
            schema["properties"]["g3"]["items"]["properties"]["f8"],
            json!({"type": "integer", "minimum": 0, "maximum": 17})
        );
        assert_eq!(schema["properties"]["g3"]["maxItems"], 3);
        let steps = c["form"]["steps"].as_array().unwrap();
        // G4 held only a document: no page of its own; the fields around it are two runs.
        let keys: Vec<&str> = steps.iter().filter_map(|s| s["key"].as_str()).collect();
        assert_eq!(keys, ["g1", "angaben_f4", "angaben_g3"]);
        // Two "Name" fields in one step are told apart by their group.
        assert_eq!(steps[0]["fields"][2]["label"]["de"], "Postfach: Name");
        assert_eq!(steps[0]["fields"][0]["label"]["de"], "Name");
        assert_eq!(steps[1]["key"], "angaben_f4");
        assert_eq!(steps[1]["fields"][0]["choices"]["02"]["de"], "verheiratet");
        assert_eq!(steps[1]["description"]["de"], "Hinweis\nBitte lesen.");
        // Documents, and no page for a group that held only one.
        assert_eq!(c["requiredDocuments"][0]["key"], "f7");
        assert_eq!(c["requiredDocuments"][1]["key"], "f9");
        assert_eq!(c["fim"]["elements"]["g3/f8"]["id"], "F8");
        assert_eq!(
            c["fim"]["notes"][0]["text"],
            "Wenn F2 leer ist, dann F3.\nSonst nicht."
        );
        let warned: Vec<&str> = r.warnings.iter().map(|w| w.path.as_str()).collect();
        for path in ["S1", "S1/G1/F3", "S1/G1/G2/F2", "S1/F6", "S1/G3"] {
            assert!(warned.contains(&path), "{path} in {warned:?}");
        }
        // What comes out is canonical content.
        let parsed = ServiceContent::parse(c).unwrap();
        assert_eq!(&parsed.to_value(), c);
    }

    #[test]
    fn without_its_code_list_a_select_field_takes_text_and_the_report_says_so() {
        let imported = run(SCHEMA, &[]).unwrap();
        assert_eq!(
            imported.content["form"]["schema"]["properties"]["f4"],
            json!({"type": "string"})
        );
        assert_eq!(imported.report.code_lists_missing, 1);
        assert!(
            imported
                .report
                .warnings
                .iter()
                .any(|w| w.message.contains("urn:c_1"))
        );
    }

    #[test]
    fn other_versions_and_documents_are_refused_by_name() {
        let v1 = SCHEMA.replace("xdatenfelder_2", "xdatenfelder_1");
        let AppError::Validation(f) = run(&v1, &[]).unwrap_err() else {
            panic!()
        };
        assert!(f["xml"].contains("XDatenfelder 1"), "{f:?}");
        let v3 = SCHEMA.replace("xdatenfelder_2", "xdatenfelder_3.0.0");
        let AppError::Validation(f) = run(&v3, &[]).unwrap_err() else {
            panic!()
        };
        assert!(f["xml"].contains("XDatenfelder 3"), "{f:?}");
        let AppError::Validation(f) = run(CODES, &[]).unwrap_err() else {
            panic!()
        };
        assert!(f["xml"].contains("not an XDatenfelder 2"), "{f:?}");
        assert!(matches!(
            run(&" ".repeat(MAX_SCHEMA_BYTES + 1), &[]),
            Err(AppError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            run("<a>\0</a>", &[]),
            Err(AppError::Validation(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Arbitrary text never panics the import and fails only with typed errors.
        #[test]
        fn arbitrary_text_fails_cleanly(text in "\\PC{0,400}") {
            match run(&text, &[]) {
                Ok(_) | Err(AppError::Validation(_) | AppError::PayloadTooLarge { .. }) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        /// The test schema, cut anywhere or with a fragment spliced in, fails cleanly or imports
        /// to content that parses.
        #[test]
        fn a_damaged_schema_fails_cleanly(
            at in 0usize..SCHEMA.len(),
            cut in proptest::bool::ANY,
            splice in proptest::prop_oneof![
                proptest::strategy::Just("<xdf:struktur><xdf:anzahl>0:*</xdf:anzahl><xdf:enthaelt>".to_owned()),
                proptest::strategy::Just("</xdf:enthaelt></xdf:struktur>".to_owned()),
                proptest::strategy::Just("&#0;&bogus;<![CDATA[]]>".to_owned()),
                "\\PC{0,20}",
            ],
        ) {
            let at = SCHEMA.floor_char_boundary(at);
            let xml = if cut {
                SCHEMA[..at].to_owned()
            } else {
                format!("{}{splice}{}", &SCHEMA[..at], &SCHEMA[at..])
            };
            match run(&xml, &[CODES.to_owned()]) {
                Ok(i) => proptest::prop_assert!(ServiceContent::parse(&i.content).is_ok()),
                Err(AppError::Validation(f)) => proptest::prop_assert!(!f.is_empty()),
                Err(AppError::PayloadTooLarge { .. }) => {}
                Err(other) => proptest::prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
