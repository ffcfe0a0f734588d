//! Pass one of the mapping: where each element's key lives (a step, the form data or one
//! repeated group's items, the documents) and the path it is made from, then the keys
//! themselves ([`super::keys`]). Pass two ([`super::mapping`]) builds the content with them.

use std::collections::BTreeMap;

use super::keys::keys_for;
use super::xdf2::{Field, Item, Node};

/// Where a key lives: steps, form data (top level or inside one repeated group), documents,
/// nested groups (metadata only).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Ns {
    Step,
    Data(usize),
    Document,
    Group,
    None,
}

pub(super) const TOP: usize = usize::MAX;

/// What pass one learnt about each element, in pre-order.
pub(super) struct Planned {
    pub(super) ns: Ns,
    /// The path the key is made from (relative to the data scope for data keys).
    pub(super) path: Vec<String>,
}

pub(super) fn is_document(f: &Field) -> bool {
    matches!(f.data_type.as_str(), "file" | "obj")
}

pub(super) fn has_key(f: &Field) -> bool {
    matches!(f.kind.as_str(), "input" | "select")
}

/// Pass one: the namespace and key path of every element, in pre-order.
pub(super) fn plan(
    items: &[Item],
    full: &[String],
    rel: &[String],
    scope: usize,
    out: &mut Vec<Planned>,
) {
    for item in items {
        let id = item.node.common().id.clone();
        let full_path: Vec<String> = full.iter().cloned().chain([id.clone()]).collect();
        let rel_path: Vec<String> = rel.iter().cloned().chain([id]).collect();
        let top = full.is_empty();
        match &item.node {
            Node::Field(f) => {
                let (ns, path) = if !has_key(f) {
                    (Ns::None, full_path)
                } else if is_document(f) {
                    (Ns::Document, full_path)
                } else {
                    (Ns::Data(scope), rel_path)
                };
                out.push(Planned { ns, path });
            }
            Node::Group(g) => {
                if item.cardinality.repeats() {
                    let me = out.len();
                    out.push(Planned {
                        ns: Ns::Data(scope),
                        path: rel_path,
                    });
                    plan(&g.items, &full_path, &[], me, out);
                } else {
                    let ns = if top { Ns::Step } else { Ns::Group };
                    out.push(Planned {
                        ns,
                        path: full_path.clone(),
                    });
                    plan(&g.items, &full_path, &rel_path, scope, out);
                }
            }
        }
    }
}

/// Pass one's keys: each element's, unique within its namespace (empty where it has none).
pub(super) fn assign_keys(planned: &[Planned]) -> Vec<String> {
    let mut by_ns: BTreeMap<Ns, Vec<usize>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        by_ns.entry(p.ns).or_default().push(i);
    }
    let mut keys = vec![String::new(); planned.len()];
    for (ns, members) in by_ns {
        if ns == Ns::None {
            continue;
        }
        let paths: Vec<Vec<String>> = members.iter().map(|&i| planned[i].path.clone()).collect();
        for (i, key) in members.into_iter().zip(keys_for(&paths)) {
            keys[i] = key;
        }
    }
    keys
}
