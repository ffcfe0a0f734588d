//! OASIS Genericode 1.0 code lists (the FIM code lists behind `select` fields): identification
//! and, per row, the code and its name.
//!
//! The code is the value of the column the list's first key names (`codeKey`), else the
//! first column; the name is the column of the key `codenameKey`, else a column `name`, else
//! the first other column.

use super::xml::Element;

pub const NAMESPACE: &str = "http://docs.oasis-open.org/codelist/ns/genericode/1.0/";

/// One code list.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeList {
    pub short_name: Option<String>,
    pub canonical_uri: String,
    pub version: Option<String>,
    pub canonical_version_uri: Option<String>,
    /// (code, name) in the list's order.
    pub rows: Vec<(String, String)>,
}

/// Most codes taken from one list.
pub const MAX_ROWS: usize = 2_000;

/// Reads a `gc:CodeList`; the error says what is missing.
pub fn read(root: &Element) -> Result<CodeList, String> {
    if root.name != "CodeList" || root.namespace.as_deref() != Some(NAMESPACE) {
        return Err(format!(
            "not a Genericode code list (root `{}` in {})",
            root.name,
            root.namespace.as_deref().unwrap_or("no namespace")
        ));
    }
    let ident = root
        .child("Identification")
        .ok_or("the code list has no Identification")?;
    let canonical_uri = ident
        .text_at(&["CanonicalUri"])
        .ok_or("the code list has no CanonicalUri")?;
    let columns: Vec<&str> = root
        .children("ColumnSet")
        .flat_map(|s| s.children("Column"))
        .filter_map(|c| c.attribute("Id"))
        .collect();
    let key_column = |id: &str| {
        root.children("ColumnSet")
            .flat_map(|s| s.children("Key"))
            .find(|k| k.attribute("Id") == Some(id))
            .and_then(|k| k.child("ColumnRef"))
            .and_then(|r| r.attribute("Ref"))
    };
    let first_key = root
        .children("ColumnSet")
        .flat_map(|s| s.children("Key"))
        .find_map(|k| k.child("ColumnRef").and_then(|r| r.attribute("Ref")));
    let code_col = key_column("codeKey")
        .or(first_key)
        .or(columns.first().copied())
        .ok_or("the code list names no columns")?;
    let name_col = key_column("codenameKey")
        .filter(|c| *c != code_col)
        .or(columns.iter().copied().find(|c| *c == "name"))
        .or(columns.iter().copied().find(|c| *c != code_col));
    let mut rows = Vec::new();
    for row in root
        .children("SimpleCodeList")
        .flat_map(|l| l.children("Row"))
    {
        if rows.len() >= MAX_ROWS {
            return Err(format!("the code list has more than {MAX_ROWS} rows"));
        }
        let value = |col: &str| {
            row.children("Value")
                .find(|v| v.attribute("ColumnRef") == Some(col))
                .and_then(|v| v.text_at(&["SimpleValue"]))
        };
        let Some(code) = value(code_col) else {
            continue;
        };
        let name = name_col.and_then(value).unwrap_or_else(|| code.clone());
        rows.push((code, name));
    }
    Ok(CodeList {
        short_name: ident.text_at(&["ShortName"]),
        canonical_uri,
        version: ident.text_at(&["Version"]),
        canonical_version_uri: ident.text_at(&["CanonicalVersionUri"]),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_come_from_the_key_columns() {
        let xml = r#"<gc:CodeList xmlns:gc="http://docs.oasis-open.org/codelist/ns/genericode/1.0/"><Identification><ShortName>S</ShortName><Version>1</Version><CanonicalUri>urn:x</CanonicalUri><CanonicalVersionUri>urn:x_1</CanonicalVersionUri></Identification><ColumnSet><Column Id="k"/><Column Id="n"/><Key Id="codeKey"><ColumnRef Ref="k"/></Key><Key Id="codenameKey"><ColumnRef Ref="n"/></Key></ColumnSet><SimpleCodeList><Row><Value ColumnRef="n"><SimpleValue>Eins</SimpleValue></Value><Value ColumnRef="k"><SimpleValue>1</SimpleValue></Value></Row><Row><Value ColumnRef="k"><SimpleValue>2</SimpleValue></Value></Row></SimpleCodeList></gc:CodeList>"#;
        let list = read(&super::super::xml::parse(xml).unwrap()).unwrap();
        assert_eq!(list.canonical_version_uri.as_deref(), Some("urn:x_1"));
        assert_eq!(
            list.rows,
            [("1".into(), "Eins".into()), ("2".into(), "2".into())]
        );
    }
}
