//! Where content imported from a FIM schema came from (XDatenfelder): the schema's id and version,
//! each element's FIM id and version by its key here, the code lists its choices were taken
//! from, and the schema's rules as notes for the author. Metadata only: nothing here changes how
//! a form validates; the author reads it, merges carry it like any other part of the content.
//! See [`crate::marketplace::fim`] for the import.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Key;

/// The FIM schema a content document was imported from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FimSource {
    /// The standard read, e.g. `xdatenfelder-2`.
    pub standard: String,
    /// The schema's id (`S00000094`) and version (`1.0`).
    pub schema_id: String,
    pub schema_version: String,
    pub name: String,
    /// Each imported element by where it went: a field's key (`f60000227`; inside a repeating
    /// group `<group key>/<field key>`), `steps/<key>`, `documents/<key>`, or `groups/<key>` for
    /// a nested group (keys are made from the element's path, since one FIM element can occur
    /// at several places).
    #[serde(default)]
    pub elements: BTreeMap<String, FimElement>,
    /// The code lists whose codes became choices (or which were referenced but not supplied).
    #[serde(default)]
    pub code_lists: Vec<FimCodeList>,
    /// The schema's rules, in the words of the FIM editors: for the author to implement (as
    /// conditions, say); never turned into logic by the import.
    #[serde(default)]
    pub notes: Vec<FimNote>,
}

/// One element of the schema at one place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FimElement {
    /// `field`, `group` or `document`.
    pub kind: String,
    /// FIM id and version (`F60000227`, `1.2`).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The ids from the schema's root to this element, joined by `/`.
    pub path: String,
    /// `anzahl` as written (`0:1`, `1:*`).
    pub cardinality: String,
    /// The key of its code list in [`FimSource::code_lists`], for choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_list: Option<Key>,
}

/// A Genericode code list, kept by canonical URI and version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FimCodeList {
    pub key: Key,
    pub canonical_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_version_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many codes were imported; 0 when the list was referenced but not supplied.
    pub codes: u32,
}

/// A rule of the schema, as a note for the author.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FimNote {
    pub key: Key,
    /// Where the rule sits: `""` for the schema, else its element's entry in
    /// [`FimSource::elements`].
    pub at: String,
    /// FIM id and version of the rule (`R00000849`, `1.0`).
    pub rule_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_version: Option<String>,
    pub name: String,
    /// The rule's definition (free text).
    pub text: String,
}
