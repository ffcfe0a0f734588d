//! Bounds on untrusted GraphQL input that async-graphql does not set itself, checked before its
//! parser, validation and execution see a request, for HTTP, multipart and WebSocket alike:
//!
//! - nesting: async-graphql's parser recurses once per bracket of a value (`[[[…]]]`,
//!   `{a:{a:…}}`) without a limit, and so do value conversion and validation; a few thousand
//!   levels overflow a worker's stack and abort the process. [`screen`] scans the query text's
//!   brackets (a byte scan, no parsing) and the variables' depth first.
//! - fragment fan-out: validation (complexity, depth, field merging) and execution walk every
//!   fragment spread as often as it is expanded, so `F0` spreading `F1` ten times, `F1` spreading
//!   `F2` ten times … costs 10^n. [`document`] counts the expanded selections once per fragment
//!   (memoized: linear in the document) and refuses past a cap.
//! - NUL characters: PostgreSQL refuses them in text and `jsonb`; [`document`] and [`variables`]
//!   refuse any string (or object key) holding one, with the path to it.

use std::collections::HashMap;
use std::fmt::Write as _;

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, Request, Value, Variables};

use crate::error::AppError;

/// Brackets (`{ [ (`) in the query text, and levels of lists and objects in variables, nested
/// deeper than this are refused. The parser itself refuses selection sets deeper than 64.
pub const MAX_NESTING: usize = 64;

/// Selections (fields, fragment spreads, inline fragments) of a document with every fragment
/// spread expanded, above which it is refused. A query within the complexity limit (1000, each
/// field counting at least one) stays far below; `__typename` counts here but not there.
pub const MAX_EXPANDED_SELECTIONS: usize = 5_000;

const NUL: &str = "must not contain NUL characters";

/// The checks that need no parsing: bracket depth of the query text, depth of the variables.
/// Run before the parser sees the query; a refusal is answered with HTTP 400 on POST.
pub fn screen(request: &Request) -> Result<(), AppError> {
    text(&request.query)?;
    for (name, value) in request.variables.iter() {
        let mut path = format!("variables.{name}");
        if let Some(found) = find(value, 0, &mut path, false) {
            return Err(found.into_error());
        }
    }
    Ok(())
}

/// The bracket depth of the query text, before it is parsed.
pub fn text(query: &str) -> Result<(), AppError> {
    if text_nesting(query) > MAX_NESTING {
        return Err(AppError::invalid(
            "query",
            format!("nests brackets deeper than {MAX_NESTING} levels"),
        ));
    }
    Ok(())
}

/// Variables nested too deep, or strings (and object keys) in them holding NUL characters, by
/// path (`variables.i.data.name`).
pub fn variables(vars: &Variables) -> Result<(), AppError> {
    for (name, value) in vars.iter() {
        let mut path = format!("variables.{name}");
        if let Some(found) = find(value, 0, &mut path, true) {
            return Err(found.into_error());
        }
    }
    Ok(())
}

/// The checks on a parsed document: expanded size (fragment fan-out) and NUL characters in its
/// literal values (argument values by argument name, e.g. `input.data.name`; variable defaults
/// as `variables.<name>`).
pub fn document(doc: &ExecutableDocument) -> Result<(), AppError> {
    let mut sizes = Expansion {
        doc,
        sizes: HashMap::new(),
    };
    let mut total = 0usize;
    for (_, op) in doc.operations.iter() {
        total = total.saturating_add(sizes.selection_set(&op.node.selection_set.node, 0)?);
    }
    if total > MAX_EXPANDED_SELECTIONS {
        return Err(AppError::invalid(
            "query",
            format!(
                "expands to {total} selections, more than {MAX_EXPANDED_SELECTIONS} \
                 (a fragment counts as often as it is spread)"
            ),
        ));
    }
    for (_, op) in doc.operations.iter() {
        for var in &op.node.variable_definitions {
            if let Some(default) = &var.node.default_value {
                let mut path = format!("variables.{}", var.node.name.node);
                if let Some(found) = find(&default.node, 0, &mut path, true) {
                    return Err(found.into_error());
                }
            }
        }
        literals_in_directives(&op.node.directives)?;
        literals(&op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        literals_in_directives(&fragment.node.directives)?;
        literals(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

/// The deepest nesting of `{`, `[` and `(` outside strings and comments. Strings are skipped as
/// async-graphql's grammar reads them, so that brackets the parser sees are never taken for
/// string content: a `"""` without its closing `"""` is read as an empty string `""` followed
/// by a `"`, as the grammar falls back to.
fn text_nesting(query: &str) -> usize {
    let b = query.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                let mut j = i + 3;
                let mut closed = None;
                while j < b.len() {
                    if b[j..].starts_with(b"\\\"\"\"") {
                        j += 4;
                    } else if b[j..].starts_with(b"\"\"\"") {
                        closed = Some(j + 2);
                        break;
                    } else {
                        j += 1;
                    }
                }
                // Unclosed: the grammar reads `""` and goes on.
                i = closed.unwrap_or(i + 1);
            }
            b'"' => {
                // A string ends at its closing quote or, unterminated, at a line end (the parse
                // fails there, so nothing after it is parsed).
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' && b[i] != b'\r' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Expanded selection counts, memoized per fragment.
struct Expansion<'a> {
    doc: &'a ExecutableDocument,
    sizes: HashMap<&'a str, usize>,
}

impl<'a> Expansion<'a> {
    /// Selections of `set` with spreads expanded. `depth` is the nesting so far, fragments
    /// included: a chain of fragments nests as deep as its selection sets would, and past
    /// [`MAX_NESTING`] it is refused (async-graphql refuses past 32 anyway) — this also bounds
    /// the recursion here, which a long chain `F1 → F2 → … ` would otherwise drive.
    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize) -> Result<usize, AppError> {
        if depth > MAX_NESTING {
            return Err(AppError::invalid(
                "query",
                format!("nests selections (with fragments) deeper than {MAX_NESTING} levels"),
            ));
        }
        let mut n = 0usize;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(f) => self.selection_set(&f.node.selection_set.node, depth + 1)?,
                Selection::InlineFragment(f) => {
                    self.selection_set(&f.node.selection_set.node, depth + 1)?
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    self.fragment(name, depth)?
                }
            };
            n = n.saturating_add(1).saturating_add(size);
        }
        Ok(n)
    }

    fn fragment(&mut self, name: &'a str, depth: usize) -> Result<usize, AppError> {
        if let Some(size) = self.sizes.get(name) {
            return Ok(*size);
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Ok(0); // unknown: validation says so
        };
        // A cycle comes back here before the size is known: counted as 0, refused by validation.
        self.sizes.insert(name, 0);
        let size = self.selection_set(&fragment.node.selection_set.node, depth + 1)?;
        self.sizes.insert(name, size);
        Ok(size)
    }
}

fn literals_in_directives(directives: &[Positioned<Directive>]) -> Result<(), AppError> {
    for d in directives {
        for (name, value) in &d.node.arguments {
            let value = value.node.clone().into_const_with(null_variable);
            argument(&name.node, &value.unwrap_or_default())?;
        }
    }
    Ok(())
}

/// NUL characters in the literal argument values of a selection set (without following
/// spreads: every fragment definition is checked once by [`document`]). Recursion is bounded
/// by the text's bracket depth, checked before parsing.
fn literals(set: &SelectionSet) -> Result<(), AppError> {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                for (name, value) in &f.node.arguments {
                    let value = value.node.clone().into_const_with(null_variable);
                    argument(&name.node, &value.unwrap_or_default())?;
                }
                literals_in_directives(&f.node.directives)?;
                literals(&f.node.selection_set.node)?;
            }
            Selection::InlineFragment(f) => {
                literals_in_directives(&f.node.directives)?;
                literals(&f.node.selection_set.node)?;
            }
            Selection::FragmentSpread(s) => literals_in_directives(&s.node.directives)?,
        }
    }
    Ok(())
}

/// NUL characters in a literal argument value (variables in it read as `null`: they are
/// checked as variables).
fn argument(name: &Name, value: &Value) -> Result<(), AppError> {
    let mut path = name.to_string();
    match find(value, 0, &mut path, true) {
        Some(found) => Err(found.into_error()),
        None => Ok(()),
    }
}

/// A variable inside a literal, read as `null` (variables are checked on their own).
fn null_variable(_: Name) -> Result<Value, std::convert::Infallible> {
    Ok(Value::Null)
}

#[derive(Debug, PartialEq, Eq)]
enum Problem {
    TooDeep,
    Nul,
}

struct Found {
    problem: Problem,
    path: String,
}

impl Found {
    fn into_error(self) -> AppError {
        match self.problem {
            Problem::TooDeep => too_deep(self.path),
            Problem::Nul => AppError::invalid(self.path, NUL),
        }
    }
}

fn too_deep(path: String) -> AppError {
    AppError::invalid(path, format!("is nested deeper than {MAX_NESTING} levels"))
}

/// The first value nested deeper than [`MAX_NESTING`] or (with `nul`) holding a NUL character,
/// with its path (`path` is the path of `value`; it is extended in place while descending).
fn find(value: &Value, depth: usize, path: &mut String, nul: bool) -> Option<Found> {
    if depth > MAX_NESTING {
        return Some(Found {
            problem: Problem::TooDeep,
            path: path.clone(),
        });
    }
    if nul && matches!(value, Value::String(s) if s.contains('\0')) {
        return Some(Found {
            problem: Problem::Nul,
            path: path.clone(),
        });
    }
    let len = path.len();
    if let Value::List(items) = value {
        for (i, item) in items.iter().enumerate() {
            let _ = write!(path, "[{i}]");
            let found = find(item, depth + 1, path, nul);
            path.truncate(len);
            if found.is_some() {
                return found;
            }
        }
    } else if let Value::Object(fields) = value {
        for (key, item) in fields {
            path.push('.');
            // A key with NUL is shown escaped: the path itself stays plain text.
            path.push_str(&key.replace('\0', "\\u0000"));
            if nul && key.contains('\0') {
                return Some(Found {
                    problem: Problem::Nul,
                    path: path.clone(),
                });
            }
            let found = find(item, depth + 1, path, nul);
            path.truncate(len);
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count_and_cannot_hide_nesting() {
        assert_eq!(text_nesting("{ a(x: [[1]]) { b } }"), 4);
        assert_eq!(text_nesting("{ a(x: \"[[[[[[\") }"), 2);
        assert_eq!(text_nesting("{ a # [[[[[[[\n }"), 1);
        assert_eq!(text_nesting("{ a(x: \"\"\"[[[[ \\\"\"\" [[[\"\"\") }"), 2);
        // Closing brackets in a string do not lower the count.
        assert_eq!(text_nesting("[\"]\"[\"]\"[\"]\"["), 4);
        // An unclosed block string is `""` and a string: the brackets after count.
        assert_eq!(text_nesting("[\"\"\"[\" [[[[]]]]]"), 5);
        // An unterminated string ends at the line end.
        assert_eq!(text_nesting("[\"abc\n[[["), 4);
    }

    #[test]
    fn fragment_fan_out_is_counted_as_expanded_in_linear_time() {
        let mut q = String::from("{ ...F0 }");
        for i in 0..7 {
            q.push_str(&format!(" fragment F{i} on Query {{"));
            for _ in 0..10 {
                q.push_str(&format!(" ...F{}", i + 1));
            }
            q.push('}');
        }
        q.push_str(" fragment F7 on Query { __typename }");
        let started = std::time::Instant::now();
        let err = document(&parse(&q)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert!(err.describe().contains("selections"));

        // A cycle terminates (validation names it).
        document(&parse(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        ))
        .unwrap();
        // A long chain of fragments is refused without deep recursion.
        let mut chain = String::from("{ ...F0 }");
        for i in 0..5000 {
            chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        assert!(document(&parse(&chain)).is_err());
    }

    #[test]
    fn nul_characters_are_found_with_their_path() {
        let err = document(&parse(
            "{ a(input: { data: { list: [\"ok\", \"x\\u0000y\"] } }) }",
        ))
        .unwrap_err();
        assert_eq!(err.describe(), format!("`input.data.list[1]` {NUL}"));
        let err = document(&parse(
            "query($s: String = \"\\u0000\") { a @skip(if: $s) }",
        ))
        .unwrap_err();
        assert_eq!(err.describe(), format!("`variables.s` {NUL}"));
        let vars = Variables::from_json(serde_json::json!({ "i": { "a\u{0}b": 1 } }));
        assert_eq!(
            variables(&vars).unwrap_err().describe(),
            format!("`variables.i.a\\u0000b` {NUL}")
        );
        variables(&Variables::from_json(
            serde_json::json!({ "i": ["a", { "b": "c" }] }),
        ))
        .unwrap();
    }
}
