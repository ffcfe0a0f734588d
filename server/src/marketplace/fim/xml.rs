//! A small element tree read with quick-xml's namespace-aware reader: element local names,
//! attributes, text, children. The XML grammar is quick-xml's; this only collects what it
//! reports, within limits, so that the readers of XDatenfelder and Genericode can walk a tree.
//!
//! Safety: a document type declaration (`<!DOCTYPE …>`) is refused, so no entity can be
//! declared; quick-xml never expands entities or fetches anything external anyway, and a
//! reference to an undeclared entity is an error. Character references (`&#xD;`) and the five
//! predefined entities are resolved. Nesting depth and element count are bounded, and the tree
//! is built with an explicit stack (no recursion on the input).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Deepest element nesting accepted (real XDatenfelder schemas stay below 40).
pub const MAX_DEPTH: usize = 96;
/// Most elements accepted in one document.
pub const MAX_ELEMENTS: usize = 200_000;

/// One element.
#[derive(Debug, Default)]
pub struct Element {
    /// The local name (`datenfeld` for `xdf:datenfeld`).
    pub name: String,
    /// The namespace URI the element's name is bound to, if any.
    pub namespace: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// The element's own text (CDATA included), not its children's.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child of that local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child of that local name.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of local names (first match at each level).
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }

    /// The trimmed text at a path, if not empty.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        self.at(path)
            .map(|e| e.text.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a document could not be read; `position` is the byte offset quick-xml stopped at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct XmlError {
    pub message: String,
    pub position: u64,
}

/// Reads a whole document into its root element.
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let position = reader.buffer_position();
        let fail = |message: String| XmlError { message, position };
        let event = reader
            .read_resolved_event()
            .map_err(|e| fail(e.to_string()))?;
        match event {
            (_, Event::Start(_) | Event::Empty(_)) if root.is_some() => {
                return Err(fail("content after the root element".into()));
            }
            (ns, Event::Start(start)) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(fail(format!("more than {MAX_ELEMENTS} elements")));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(fail(format!("elements nested deeper than {MAX_DEPTH}")));
                }
                stack.push(element(&ns, &start).map_err(fail)?);
            }
            (ns, Event::Empty(start)) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(fail(format!("more than {MAX_ELEMENTS} elements")));
                }
                let e = element(&ns, &start).map_err(fail)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            (_, Event::End(_)) => {
                let Some(done) = stack.pop() else {
                    return Err(fail("an end tag without its start".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            (_, Event::Text(t)) => {
                let text = t.xml10_content().map_err(|e| fail(e.to_string()))?;
                push_text(&mut stack, &text, &root).map_err(fail)?;
            }
            (_, Event::CData(t)) => {
                let text = t.xml10_content().map_err(|e| fail(e.to_string()))?;
                push_text(&mut stack, &text, &root).map_err(fail)?;
            }
            (_, Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref().map_err(|e| fail(e.to_string()))? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| fail(e.to_string()))?;
                        match quick_xml::escape::resolve_xml_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(fail(format!(
                                    "the entity `&{name};` is not defined (entities are not expanded)"
                                )));
                            }
                        }
                    }
                };
                push_text(&mut stack, &resolved, &root).map_err(fail)?;
            }
            (_, Event::DocType(_)) => {
                return Err(fail(
                    "document type declarations (DOCTYPE) are not accepted".into(),
                ));
            }
            (_, Event::Decl(_) | Event::PI(_) | Event::Comment(_)) => {}
            (_, Event::Eof) => {
                if let Some(open) = stack.last() {
                    return Err(fail(format!("the element `{}` is not closed", open.name)));
                }
                return root.ok_or_else(|| fail("no root element".into()));
            }
        }
    }
}

fn element(ns: &ResolveResult<'_>, start: &BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let namespace = match ns {
        ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(prefix) => {
            return Err(format!(
                "the prefix `{}` is not bound to a namespace",
                String::from_utf8_lossy(prefix)
            ));
        }
    };
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| e.to_string())?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        namespace,
        attributes,
        ..Element::default()
    })
}

fn push_text(stack: &mut [Element], text: &str, root: &Option<Element>) -> Result<(), String> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None if root.is_some() => Err("text after the root element".into()),
        None => Err("text before the root element".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_becomes_a_tree_with_references_resolved() {
        let root = parse(
            r#"<?xml version="1.0"?><x:a xmlns:x="urn:t"><x:b k="v &amp; w">1&#xD;&#13;&lt;2</x:b><c/></x:a>"#,
        )
        .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.namespace.as_deref(), Some("urn:t"));
        let b = root.child("b").unwrap();
        assert_eq!(b.text, "1\r\r<2");
        assert_eq!(b.attribute("k"), Some("v & w"));
        assert!(root.child("c").is_some());
    }

    #[test]
    fn doctypes_undeclared_entities_and_broken_documents_are_errors() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>"#;
        assert!(parse(bomb).unwrap_err().message.contains("DOCTYPE"));
        assert!(parse("<a>&e;</a>").unwrap_err().message.contains("&e;"));
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("<p:a/>").is_err());
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
    }
}
