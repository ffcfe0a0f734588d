//! Three-way merge of service content.
//!
//! A tenant's service is a fork of a published template version (its *content*, a JSON
//! document). The tenant's local changes are kept as an [`Overlay`], `diff(pinned upstream,
//! local content)`, which [`apply`] replays. When the template author publishes a new version,
//! [`merge3`] combines *base* (the pinned upstream), *ours* (the tenant's content) and *theirs*
//! (the new upstream): changes that do not overlap merge on their own, overlapping ones become
//! [`Conflict`]s that the tenant settles with [`resolve`].
//!
//! # The keyed view
//!
//! Elements are addressed by stable keys, never by array index, so that upstream reorderings and
//! insertions do not disturb local edits:
//!
//! - an array of objects that all carry a string `"key"`, pairwise distinct, is a *keyed list*;
//! - an array of pairwise distinct strings is a *string set* (JSON Schema `required`, `enum`,
//!   `type`), each element addressed by the string itself;
//! - an empty array is a list of either kind;
//! - any other array is *atomic*: compared and replaced as a whole, like a scalar.
//!
//! Lists of both kinds also have an order, which merges separately from their elements.
//!
//! Paths are RFC 6901 JSON Pointers over this view: `/form/steps/personal/fields/dog_count/label`
//! goes through the step with key `personal` and the field with key `dog_count`, and
//! `/form/schema/required/dog_count` names that string in the `required` set.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// Paths

/// A malformed JSON Pointer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A non-empty pointer must start with `/`.
    #[error("a non-empty JSON pointer must start with '/'")]
    MissingSlash,
    /// A `~` not followed by `0` or `1`.
    #[error("invalid escape in segment {segment:?}: '~' must be followed by '0' or '1'")]
    BadEscape {
        /// The segment as written.
        segment: String,
    },
}

/// Splits a JSON Pointer into its unescaped segments; the root `""` has none.
pub fn parse_path(path: &str) -> Result<Vec<String>, PathError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or(PathError::MissingSlash)?;
    rest.split('/').map(unescape).collect()
}

fn unescape(segment: &str) -> Result<String, PathError> {
    if !segment
        .split('~')
        .skip(1)
        .all(|rest| rest.starts_with(['0', '1']))
    {
        let segment = segment.to_owned();
        return Err(PathError::BadEscape { segment });
    }
    // RFC 6901 order: "~01" is "~1", not "/".
    Ok(segment.replace("~1", "/").replace("~0", "~"))
}

/// Renders segments as a JSON Pointer, escaping `~` as `~0` and `/` as `~1`.
pub fn render_path<S: AsRef<str>>(segments: &[S]) -> String {
    segments
        .iter()
        .fold(String::new(), |path, segment| join(&path, segment.as_ref()))
}

/// The pointer to `segment` below `path`.
fn join(path: &str, segment: &str) -> String {
    format!("{path}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

/// Looks up the node at `path` in the keyed view; `Ok(None)` when there is none.
pub fn get<'a>(doc: &'a Value, path: &str) -> Result<Option<&'a Value>, PathError> {
    Ok(parse_path(path)?
        .iter()
        .try_fold(doc, |node, segment| child(node, segment)))
}

// The keyed view

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListKind {
    Keyed,
    Set,
}

/// An array seen as a list: its kind (none while empty) and its elements by key, in order.
#[derive(Default)]
struct ListView<'a> {
    kind: Option<ListKind>,
    entries: Vec<(&'a str, &'a Value)>,
    by_key: BTreeMap<&'a str, &'a Value>,
}

impl<'a> ListView<'a> {
    fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.entries.iter().map(|(key, _)| *key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.by_key.get(key).copied()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.keys().position(|k| k == key)
    }

    /// The keys in order, as a JSON array (how order conflicts show each side).
    fn keys_value(&self) -> Value {
        Value::Array(self.keys().map(Value::from).collect())
    }
}

/// The kind and key a list element would have.
fn element_key(value: &Value) -> Option<(ListKind, &str)> {
    match value {
        Value::String(s) => Some((ListKind::Set, s)),
        Value::Object(map) => Some((ListKind::Keyed, map.get("key")?.as_str()?)),
        _ => None,
    }
}

/// The kind of list `value` can be an element of under `key`, if any.
fn element_kind(value: &Value, key: &str) -> Option<ListKind> {
    element_key(value)
        .filter(|(_, k)| *k == key)
        .map(|(kind, _)| kind)
}

fn list_view(items: &[Value]) -> Option<ListView<'_>> {
    let mut list = ListView::default();
    for item in items {
        let (kind, key) = element_key(item)?;
        // Mixed kinds or a repeated key make the array atomic.
        if list.kind.is_some_and(|k| k != kind) || list.by_key.insert(key, item).is_some() {
            return None;
        }
        list.kind = Some(kind);
        list.entries.push((key, item));
    }
    Some(list)
}

fn as_list(value: &Value) -> Option<ListView<'_>> {
    value.as_array().and_then(|items| list_view(items))
}

fn child<'a>(node: &'a Value, segment: &str) -> Option<&'a Value> {
    match node {
        Value::Object(map) => map.get(segment),
        _ => as_list(node)?.get(segment),
    }
}

/// The child at `segment`, and whether it is an element of a keyed list.
fn child_mut<'a>(node: &'a mut Value, segment: &str) -> Option<(&'a mut Value, bool)> {
    match node {
        Value::Object(map) => Some((map.get_mut(segment)?, false)),
        Value::Array(items) => {
            let list = list_view(items)?;
            let (at, keyed) = (list.position(segment)?, list.kind == Some(ListKind::Keyed));
            Some((items.get_mut(at)?, keyed))
        }
        _ => None,
    }
}

/// The node at `segments`, and whether it is an element of a keyed list.
fn node_mut<'a>(mut node: &'a mut Value, segments: &[String]) -> Option<(&'a mut Value, bool)> {
    let mut keyed = false;
    for segment in segments {
        (node, keyed) = child_mut(node, segment)?;
    }
    Some((node, keyed))
}

/// `keys` as members, when they are exactly the members in some order.
fn permutation<'k, 'v>(
    keys: impl IntoIterator<Item = Option<&'k str>>,
    members: &BTreeSet<&'v str>,
) -> Option<Vec<&'v str>> {
    let order = keys
        .into_iter()
        .map(|key| members.get(key?).copied())
        .collect::<Option<Vec<_>>>()?;
    let distinct: BTreeSet<_> = order.iter().collect();
    (order.len() == members.len() && distinct.len() == members.len()).then_some(order)
}

// Overlays

/// One step of an overlay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum OverlayOp {
    /// Sets the node at `path`, adding it when missing (its parent must exist). For a keyed-list
    /// element the value is the whole element object (its `"key"` must equal the last path
    /// segment); for a string-set element the value is that string. New list elements are
    /// appended.
    Set {
        /// Where to set.
        path: String,
        /// The new node.
        value: Value,
    },
    /// Removes the node at `path` (a property, a keyed-list element or a string-set element).
    Remove {
        /// What to remove.
        path: String,
    },
    /// Puts the list at `path` into this order (a permutation of its element keys).
    Order {
        /// The list.
        path: String,
        /// Its element keys in the new order.
        keys: Vec<String>,
    },
}

impl OverlayOp {
    /// The path the op addresses.
    pub fn path(&self) -> &str {
        match self {
            Self::Set { path, .. } | Self::Remove { path } | Self::Order { path, .. } => path,
        }
    }
}

/// A tenant's local changes to a template version, as a sequence of ops.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Overlay(pub Vec<OverlayOp>);

/// An overlay op that does not fit the document it is applied to.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("cannot apply overlay op at {path:?}: {problem}")]
pub struct ApplyError {
    /// The op's path.
    pub path: String,
    /// What is wrong there.
    pub problem: ApplyProblem,
}

/// What made an overlay op fail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyProblem {
    /// The path is no valid JSON Pointer.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The parent of the node to set or remove does not exist.
    #[error("the parent does not exist")]
    MissingParent,
    /// There is no node to remove or reorder.
    #[error("there is nothing at this path")]
    Missing,
    /// The parent is a scalar.
    #[error("the parent is neither an object nor a list")]
    NotAContainer,
    /// An array addressed by key is atomic (not a keyed list or string set).
    #[error("the array is not a keyed list or string set")]
    NotAList,
    /// A list element is neither an object with this `"key"` nor this string.
    #[error("the value is neither an object with this \"key\" nor this string")]
    KeyMismatch,
    /// A keyed element for a string set, or a string for a keyed list.
    #[error("the element is of another kind than the list's")]
    KindMismatch,
    /// The `"key"` of a keyed-list element would change or disappear.
    #[error("the \"key\" of a keyed-list element cannot change")]
    KeyField,
    /// An order that is not a permutation of the list's keys.
    #[error("the keys are not a permutation of the list's keys")]
    BadPermutation,
    /// The root cannot be removed.
    #[error("the document root cannot be removed")]
    RemoveRoot,
}

/// The ops that turn `base` into `target`: minimal (nothing that is equal is touched, order only
/// where appending new elements would not give the target's) and deterministic (properties in
/// sorted order; per list removals, then elements in target order, then its order).
pub fn diff(base: &Value, target: &Value) -> Overlay {
    let mut ops = Vec::new();
    diff_node(String::new(), base, target, &mut ops);
    Overlay(ops)
}

fn diff_node(path: String, base: &Value, target: &Value, ops: &mut Vec<OverlayOp>) {
    if base == target {
        return;
    }
    if let (Value::Object(b), Value::Object(t)) = (base, target) {
        let keys: BTreeSet<&String> = b.keys().chain(t.keys()).collect();
        for key in keys {
            let path = join(&path, key);
            match (b.get(key), t.get(key)) {
                (Some(b), Some(t)) => diff_node(path, b, t, ops),
                (_, Some(t)) => ops.push(set_op(path, t)),
                // The key comes from one of the maps, so here it is only in base.
                _ => ops.push(OverlayOp::Remove { path }),
            }
        }
        return;
    }
    match (as_list(base), as_list(target)) {
        (Some(b), Some(t)) if b.kind.is_none() || t.kind.is_none() || b.kind == t.kind => {
            diff_list(path, &b, &t, ops);
        }
        _ => ops.push(set_op(path, target)),
    }
}

fn set_op(path: String, value: &Value) -> OverlayOp {
    let value = value.clone();
    OverlayOp::Set { path, value }
}

fn diff_list(path: String, base: &ListView, target: &ListView, ops: &mut Vec<OverlayOp>) {
    for key in base.keys().filter(|key| target.get(key).is_none()) {
        let path = join(&path, key);
        ops.push(OverlayOp::Remove { path });
    }
    for (key, t) in &target.entries {
        match base.get(key) {
            Some(b) => diff_node(join(&path, key), b, t, ops),
            None => ops.push(set_op(join(&path, key), t)),
        }
    }
    // Applying appends new elements, so the order is only needed when that is not the target's.
    let appended: Vec<&str> = base
        .keys()
        .filter(|key| target.get(key).is_some())
        .chain(target.keys().filter(|key| base.get(key).is_none()))
        .collect();
    if !appended.iter().copied().eq(target.keys()) {
        let keys = target.keys().map(str::to_owned).collect();
        ops.push(OverlayOp::Order { path, keys });
    }
}

/// Replays `overlay` on a copy of `base`, op by op.
pub fn apply(base: &Value, overlay: &Overlay) -> Result<Value, ApplyError> {
    let mut doc = base.clone();
    for op in &overlay.0 {
        apply_op(&mut doc, op).map_err(|problem| ApplyError {
            path: op.path().to_owned(),
            problem,
        })?;
    }
    Ok(doc)
}

fn apply_op(doc: &mut Value, op: &OverlayOp) -> Result<(), ApplyProblem> {
    let segments = parse_path(op.path())?;
    let last = segments.split_last();
    match (op, last) {
        (OverlayOp::Set { value, .. }, None) => {
            *doc = value.clone();
            Ok(())
        }
        (OverlayOp::Remove { .. }, None) => Err(ApplyProblem::RemoveRoot),
        (OverlayOp::Order { keys, .. }, _) => {
            let (node, _) = node_mut(doc, &segments).ok_or(ApplyProblem::Missing)?;
            reorder(node, keys)
        }
        (OverlayOp::Set { value, .. }, Some((name, parents))) => {
            let (parent, in_keyed) = node_mut(doc, parents).ok_or(ApplyProblem::MissingParent)?;
            set(parent, in_keyed, name, value)
        }
        (OverlayOp::Remove { .. }, Some((name, parents))) => {
            let (parent, in_keyed) = node_mut(doc, parents).ok_or(ApplyProblem::MissingParent)?;
            remove(parent, in_keyed, name)
        }
    }
}

fn set(parent: &mut Value, in_keyed: bool, name: &str, value: &Value) -> Result<(), ApplyProblem> {
    match parent {
        Value::Object(map) => {
            // Elements are addressed by their key, so it must stay what the path says.
            if in_keyed && name == "key" && map.get(name) != Some(value) {
                return Err(ApplyProblem::KeyField);
            }
            map.insert(name.to_owned(), value.clone());
        }
        Value::Array(items) => {
            let list = list_view(items).ok_or(ApplyProblem::NotAList)?;
            let kind = element_kind(value, name).ok_or(ApplyProblem::KeyMismatch)?;
            if list.kind.is_some_and(|k| k != kind) {
                return Err(ApplyProblem::KindMismatch);
            }
            match list.position(name).and_then(|at| items.get_mut(at)) {
                Some(slot) => *slot = value.clone(),
                None => items.push(value.clone()),
            }
        }
        _ => return Err(ApplyProblem::NotAContainer),
    }
    Ok(())
}

fn remove(parent: &mut Value, in_keyed: bool, name: &str) -> Result<(), ApplyProblem> {
    let removed = match parent {
        Value::Object(_) if in_keyed && name == "key" => return Err(ApplyProblem::KeyField),
        Value::Object(map) => map.remove(name).is_some(),
        Value::Array(items) => {
            let list = list_view(items).ok_or(ApplyProblem::NotAList)?;
            let at = list.position(name).ok_or(ApplyProblem::Missing)?;
            items.remove(at);
            true
        }
        _ => return Err(ApplyProblem::NotAContainer),
    };
    removed.then_some(()).ok_or(ApplyProblem::Missing)
}

fn reorder(node: &mut Value, keys: &[String]) -> Result<(), ApplyProblem> {
    let Value::Array(items) = node else {
        return Err(ApplyProblem::NotAList);
    };
    let list = list_view(items).ok_or(ApplyProblem::NotAList)?;
    let members = list.keys().collect();
    let order = permutation(keys.iter().map(|k| Some(k.as_str())), &members)
        .ok_or(ApplyProblem::BadPermutation)?;
    let reordered: Vec<Value> = order.iter().filter_map(|k| list.get(k).cloned()).collect();
    *items = reordered;
    Ok(())
}

// Merging

/// What a conflict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictKind {
    /// Both sides changed (or one removed and the other changed) the node differently.
    Value,
    /// Both sides reordered the list's common elements differently.
    Order,
}

/// Changes of both sides that cannot both be kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// Where; nothing below it is reported separately.
    pub path: String,
    /// Whether the node or the list's order is in conflict.
    pub kind: ConflictKind,
    /// The node in base (`None`: absent); for order conflicts its keys in base's order.
    pub base: Option<Value>,
    /// The node in ours, likewise.
    pub ours: Option<Value>,
    /// The node in theirs, likewise.
    pub theirs: Option<Value>,
}

/// The outcome of [`merge3`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Merge {
    /// The merged document; at a conflicted path it provisionally holds ours (for an order
    /// conflict: ours' order plus theirs' additions).
    pub merged: Value,
    /// The conflicts in document order.
    pub conflicts: Vec<Conflict>,
}

/// How the tenant settles one conflict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Choice {
    /// Keep the local side (for an order conflict: ours' order plus theirs' additions).
    Ours,
    /// Take upstream's side (for an order conflict: theirs' order plus ours' additions).
    Theirs,
    /// Put this value there (for an order conflict: all keys of the merged list, after its
    /// elements' resolutions, in the wanted order).
    Value(Value),
}

/// Why [`resolve`] could not produce a document.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// Conflicts without a resolution, in document order.
    #[error("conflicts without a resolution: {paths:?}")]
    Unresolved {
        /// All of them.
        paths: Vec<String>,
    },
    /// Resolutions for paths that are not conflicts (stale, or below a conflict).
    #[error("resolutions for paths that are not conflicts: {paths:?}")]
    Unknown {
        /// All of them, sorted.
        paths: Vec<String>,
    },
    /// A resolution that does not fit its conflict.
    #[error("invalid resolution at {path:?}: {reason}")]
    Invalid {
        /// The conflict's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Merges the changes base → ours and base → theirs, node by node.
pub fn merge3(base: &Value, ours: &Value, theirs: &Value) -> Merge {
    let mut merger = Merger::default();
    let merged = merger.root(base, ours, theirs);
    let conflicts = merger.conflicts;
    Merge { merged, conflicts }
}

/// Merges like [`merge3`] and settles every conflict with its entry in `resolutions` (keyed by
/// conflict path). Unknown resolutions are reported first, then unresolved conflicts, then the
/// first invalid resolution.
pub fn resolve(
    base: &Value,
    ours: &Value,
    theirs: &Value,
    resolutions: &BTreeMap<String, Choice>,
) -> Result<Value, ResolveError> {
    let mut merger = Merger {
        resolutions: Some(resolutions),
        ..Merger::default()
    };
    let resolved = merger.root(base, ours, theirs);
    let conflicts: BTreeSet<&str> = merger.conflicts.iter().map(|c| c.path.as_str()).collect();
    let unknown: Vec<String> = resolutions
        .keys()
        .filter(|path| !conflicts.contains(path.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ResolveError::Unknown { paths: unknown });
    }
    let unresolved: Vec<String> = merger
        .conflicts
        .into_iter()
        .filter(|c| !resolutions.contains_key(&c.path))
        .map(|c| c.path)
        .collect();
    if !unresolved.is_empty() {
        return Err(ResolveError::Unresolved { paths: unresolved });
    }
    merger.invalid.map_or(Ok(resolved), Err)
}

/// The merge walk; with resolutions it also settles the conflicts it finds.
#[derive(Default)]
struct Merger<'r> {
    resolutions: Option<&'r BTreeMap<String, Choice>>,
    conflicts: Vec<Conflict>,
    invalid: Option<ResolveError>,
}

impl<'r> Merger<'r> {
    fn root(&mut self, base: &Value, ours: &Value, theirs: &Value) -> Value {
        // Ours is present at the root, so every outcome is too; the default is never used.
        self.node(String::new(), None, [Some(base), Some(ours), Some(theirs)])
            .unwrap_or_default()
    }

    /// Merges one node given as base, ours and theirs (`None` = absent). `element` is the list
    /// kind and key when the node is a list element, which a resolution's value must fit.
    fn node(
        &mut self,
        path: String,
        element: Option<(ListKind, &str)>,
        [base, ours, theirs]: [Option<&Value>; 3],
    ) -> Option<Value> {
        if ours == theirs || ours == base {
            return theirs.cloned();
        }
        if theirs == base {
            return ours.cloned();
        }
        if let (None | Some(Value::Object(_)), Some(Value::Object(o)), Some(Value::Object(t))) =
            (base, ours, theirs)
        {
            let empty = Map::new();
            let b = base.and_then(Value::as_object).unwrap_or(&empty);
            return Some(self.object(&path, [b, o, t]));
        }
        if let Some(lists) = list_sides(base, ours, theirs) {
            return Some(self.list(path, &lists));
        }
        let choice = self.record(Conflict {
            path: path.clone(),
            kind: ConflictKind::Value,
            base: base.cloned(),
            ours: ours.cloned(),
            theirs: theirs.cloned(),
        });
        match choice {
            None | Some(Choice::Ours) => ours.cloned(),
            Some(Choice::Theirs) => theirs.cloned(),
            Some(Choice::Value(value)) => match element {
                Some((kind, key)) if element_kind(value, key) != Some(kind) => {
                    let reason = match kind {
                        ListKind::Keyed => format!("not an object with \"key\" {key:?}"),
                        ListKind::Set => format!("not the string {key:?}"),
                    };
                    self.reject(path, reason);
                    ours.cloned()
                }
                _ => Some(value.clone()),
            },
        }
    }

    fn object(&mut self, path: &str, sides: [&Map<String, Value>; 3]) -> Value {
        let keys: BTreeSet<&String> = sides.iter().flat_map(|side| side.keys()).collect();
        let mut merged = Map::new();
        for key in keys {
            let children = sides.map(|side| side.get(key));
            if let Some(value) = self.node(join(path, key), None, children) {
                merged.insert(key.clone(), value);
            }
        }
        Value::Object(merged)
    }

    fn list<'v>(&mut self, path: String, sides: &[ListView<'v>; 3]) -> Value {
        let [base, ours, theirs] = sides;
        // At least one side has elements, or the two would be equal.
        let kind = ours.kind.or(theirs.kind);
        let mut keys: Vec<&str> = Vec::new();
        for key in ours.keys().chain(theirs.keys()).chain(base.keys()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut merged: BTreeMap<&str, Value> = BTreeMap::new();
        let mut nested: Vec<(&str, Vec<Conflict>)> = Vec::new();
        for key in keys {
            let before = self.conflicts.len();
            let element = kind.map(|kind| (kind, key));
            let children = sides.each_ref().map(|side| side.get(key));
            if let Some(value) = self.node(join(&path, key), element, children) {
                merged.insert(key, value);
            }
            // Held back so they can follow the list's own conflict, in the merged order.
            nested.push((key, self.conflicts.split_off(before)));
        }
        let members: BTreeSet<&str> = merged.keys().copied().collect();
        let order = self.order(path, sides, &members);
        // Conflicts of elements that end up absent come last.
        nested.sort_by_key(|(key, _)| order.iter().position(|k| k == key).unwrap_or(usize::MAX));
        self.conflicts
            .extend(nested.into_iter().flat_map(|(_, c)| c));
        Value::Array(order.iter().filter_map(|k| merged.remove(k)).collect())
    }

    /// The order of the merged list's `members`.
    fn order<'v>(
        &mut self,
        path: String,
        sides: &[ListView<'v>; 3],
        members: &BTreeSet<&'v str>,
    ) -> Vec<&'v str> {
        let [_, ours, theirs] = sides;
        let common =
            |key: &&str| members.contains(key) && sides.iter().all(|s| s.get(key).is_some());
        let [b, o, t] = sides
            .each_ref()
            .map(|s| s.keys().filter(common).collect::<Vec<_>>());
        // Whoever kept base's relative order yields to the other's.
        if o == b {
            return place(theirs, ours, members);
        }
        if t == b || o == t {
            return place(ours, theirs, members);
        }
        // Each side shows its keys in its order.
        let [base, ours_keys, theirs_keys] = sides.each_ref().map(|s| Some(s.keys_value()));
        let choice = self.record(Conflict {
            path: path.clone(),
            kind: ConflictKind::Order,
            base,
            ours: ours_keys,
            theirs: theirs_keys,
        });
        match choice {
            None | Some(Choice::Ours) => place(ours, theirs, members),
            Some(Choice::Theirs) => place(theirs, ours, members),
            Some(Choice::Value(value)) => {
                let keys = value.as_array().map(|keys| keys.iter().map(Value::as_str));
                match keys.and_then(|keys| permutation(keys, members)) {
                    Some(order) => order,
                    None => {
                        let reason = "not an array of the merged list's keys, each once".into();
                        self.reject(path, reason);
                        place(ours, theirs, members)
                    }
                }
            }
        }
    }

    /// Records a conflict; returns its resolution, if any.
    fn record(&mut self, conflict: Conflict) -> Option<&'r Choice> {
        let choice = self.resolutions.and_then(|r| r.get(&conflict.path));
        self.conflicts.push(conflict);
        choice
    }

    /// Notes an invalid resolution; the first one is reported.
    fn reject(&mut self, path: String, reason: String) {
        self.invalid
            .get_or_insert(ResolveError::Invalid { path, reason });
    }
}

/// The three sides as lists when ours and theirs are lists and base is a list or absent, all of
/// one kind (empty lists fit any); an absent base is an empty list.
fn list_sides<'a>(
    base: Option<&'a Value>,
    ours: Option<&'a Value>,
    theirs: Option<&'a Value>,
) -> Option<[ListView<'a>; 3]> {
    let (o, t) = (as_list(ours?)?, as_list(theirs?)?);
    let b = match base {
        Some(base) => as_list(base)?,
        None => ListView::default(),
    };
    let mut kinds = [b.kind, o.kind, t.kind].into_iter().flatten();
    let first = kinds.next();
    kinds.all(|kind| Some(kind) == first).then_some([b, o, t])
}

/// `primary`'s order of the members, with the members only `secondary` has each placed right
/// after its nearest predecessor in `secondary` that is placed (or first). Every member is in
/// `primary` or `secondary`, so all are placed.
fn place<'v>(
    primary: &ListView<'v>,
    secondary: &ListView<'v>,
    members: &BTreeSet<&'v str>,
) -> Vec<&'v str> {
    let mut order: Vec<&str> = primary.keys().filter(|k| members.contains(k)).collect();
    let mut at = 0;
    for key in secondary.keys() {
        if let Some(i) = order.iter().position(|k| *k == key) {
            at = i + 1;
        } else if members.contains(key) {
            order.insert(at, key);
            at += 1;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{Index, select, subsequence};
    use serde_json::json;

    fn set(path: &str, value: Value) -> OverlayOp {
        let path = path.into();
        OverlayOp::Set { path, value }
    }

    fn remove(path: &str) -> OverlayOp {
        OverlayOp::Remove { path: path.into() }
    }

    fn order(path: &str, keys: &[&str]) -> OverlayOp {
        let (path, keys) = (path.into(), keys.iter().map(|k| k.to_string()).collect());
        OverlayOp::Order { path, keys }
    }

    fn edit(doc: &Value, ops: &[OverlayOp]) -> Value {
        apply(doc, &Overlay(ops.to_vec())).unwrap()
    }

    /// A small dog-tax service, shaped like real content.
    fn service() -> Value {
        json!({
            "title": {"de": "Hundesteuer anmelden"},
            "fee": {"amount": 120, "currency": "EUR"},
            "form": {
                "steps": [
                    {"key": "personal", "title": {"de": "Angaben zur Person"}, "fields": [
                        {"key": "name", "type": "string", "label": {"de": "Name"}},
                        {"key": "dog_count", "type": "integer", "label": {"de": "Anzahl Hunde"}}
                    ]},
                    {"key": "payment", "title": {"de": "Bezahlung"}, "fields": []},
                    {"key": "summary", "title": {"de": "Zusammenfassung"}}
                ],
                "schema": {"required": ["name", "dog_count"], "type": ["object"]}
            }
        })
    }

    const STEPS: &str = "/form/steps";
    const FIELDS: &str = "/form/steps/personal/fields";

    /// Base, ours and theirs.
    type Sides = (Value, Value, Value);

    /// The service as base, with ours and theirs made from it by these edits.
    fn fork(ours: &[OverlayOp], theirs: &[OverlayOp]) -> Sides {
        let base = service();
        let (ours, theirs) = (edit(&base, ours), edit(&base, theirs));
        (base, ours, theirs)
    }

    fn merge_of((base, ours, theirs): &Sides) -> Merge {
        merge3(base, ours, theirs)
    }

    fn settle(
        (base, ours, theirs): &Sides,
        choices: Vec<(&str, Choice)>,
    ) -> Result<Value, ResolveError> {
        let choices = choices.into_iter().map(|(p, c)| (p.to_owned(), c));
        resolve(base, ours, theirs, &choices.collect())
    }

    fn paths(merge: &Merge) -> Vec<&str> {
        merge.conflicts.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn field_added_upstream_while_label_and_fee_change_locally_all_survive() {
        let label = set(
            &format!("{FIELDS}/name/label/de"),
            json!("Vor- und Nachname"),
        );
        let fee = set("/fee/amount", json!(90));
        let email = set(
            &format!("{FIELDS}/email"),
            json!({"key": "email", "type": "string"}),
        );
        let upstream = [email];
        let sides = fork(&[label, fee], &upstream);
        let merge = merge_of(&sides);
        assert!(merge.conflicts.is_empty());
        assert_eq!(merge.merged, edit(&sides.1, &upstream));
        assert_eq!(
            list_keys(&merge.merged, FIELDS),
            ["name", "dog_count", "email"]
        );
    }

    #[test]
    fn same_label_changed_differently_is_one_conflict_with_all_three_values() {
        let path = &format!("{FIELDS}/dog_count/label/de");
        let sides = fork(
            &[set(path, json!("Anzahl der Hunde"))],
            &[set(path, json!("Hundeanzahl"))],
        );
        let merge = merge_of(&sides);
        let conflict = Conflict {
            path: path.clone(),
            kind: ConflictKind::Value,
            base: Some(json!("Anzahl Hunde")),
            ours: Some(json!("Anzahl der Hunde")),
            theirs: Some(json!("Hundeanzahl")),
        };
        assert_eq!(merge.conflicts, vec![conflict]);
        assert_eq!(merge.merged, sides.1);
        assert_eq!(
            settle(&sides, vec![(path, Choice::Theirs)]),
            Ok(sides.2.clone())
        );
        let own = settle(&sides, vec![(path, Choice::Value(json!("Hunde")))]).unwrap();
        assert_eq!(get(&own, path), Ok(Some(&json!("Hunde"))));
    }

    #[test]
    fn field_removed_locally_but_retyped_upstream_conflicts() {
        let field = &format!("{FIELDS}/dog_count");
        let sides = fork(
            &[remove(field)],
            &[set(&format!("{field}/type"), json!("number"))],
        );
        let merge = merge_of(&sides);
        assert_eq!(paths(&merge), [field]);
        assert_eq!(merge.conflicts[0].ours, None);
        assert_eq!(merge.merged, sides.1);
        // Taking upstream's field back puts it where upstream has it.
        assert_eq!(
            settle(&sides, vec![(field, Choice::Theirs)]),
            Ok(sides.2.clone())
        );
    }

    #[test]
    fn upstream_reorders_steps_while_tenant_inserts_a_step_both_kept() {
        let docs = set("/form/steps/documents", json!({"key": "documents"}));
        let moved = ["personal", "summary", "payment"];
        let inserted = order(STEPS, &["personal", "documents", "payment", "summary"]);
        let merge = merge_of(&fork(&[docs.clone(), inserted], &[order(STEPS, &moved)]));
        assert!(merge.conflicts.is_empty());
        let expected = ["personal", "documents", "summary", "payment"];
        assert_eq!(list_keys(&merge.merged, STEPS), expected);
        // The same move on both sides is no conflict either.
        let both = order(STEPS, &expected);
        let merge = merge_of(&fork(&[docs, both], &[order(STEPS, &moved)]));
        assert!(merge.conflicts.is_empty());
        assert_eq!(list_keys(&merge.merged, STEPS), expected);
    }

    #[test]
    fn both_reordering_steps_differently_is_an_order_conflict() {
        let ours = ["payment", "personal", "summary"];
        let theirs = ["personal", "summary", "payment"];
        let sides = fork(&[order(STEPS, &ours)], &[order(STEPS, &theirs)]);
        let merge = merge_of(&sides);
        let conflict = Conflict {
            path: STEPS.into(),
            kind: ConflictKind::Order,
            base: Some(json!(["personal", "payment", "summary"])),
            ours: Some(json!(ours)),
            theirs: Some(json!(theirs)),
        };
        assert_eq!(merge.conflicts, vec![conflict]);
        assert_eq!(merge.merged, sides.1);
        let pick = |keys: &[&str]| settle(&sides, vec![(STEPS, Choice::Value(json!(keys)))]);
        let wanted = ["summary", "personal", "payment"];
        assert_eq!(list_keys(&pick(&wanted).unwrap(), STEPS), wanted);
        let twice = pick(&["personal", "personal", "payment"]);
        assert!(matches!(twice, Err(ResolveError::Invalid { path, .. }) if path == STEPS));
    }

    #[test]
    fn required_set_merges_additions_and_removals_from_both_sides() {
        let email = set("/form/schema/required/email", json!("email"));
        let dog_count = remove("/form/schema/required/dog_count");
        let iban = set("/form/schema/required/iban", json!("iban"));
        let merge = merge_of(&fork(&[email], &[dog_count, iban]));
        assert!(merge.conflicts.is_empty());
        // The local addition follows its predecessor that is still there ("name").
        let required = list_keys(&merge.merged, "/form/schema/required");
        assert_eq!(required, ["name", "email", "iban"]);
    }

    #[test]
    fn translations_added_on_both_sides_merge_inside_the_new_object() {
        let ours = set("/fee/label", json!({"de": "Gebühr"}));
        let merge = merge_of(&fork(&[ours], &[set("/fee/label", json!({"en": "Fee"}))]));
        assert!(merge.conflicts.is_empty());
        assert_eq!(
            merge.merged["fee"]["label"],
            json!({"de": "Gebühr", "en": "Fee"})
        );
    }

    #[test]
    fn lists_of_different_kinds_and_atomic_arrays_conflict_as_a_whole() {
        let base = json!({"type": ["string"], "sizes": [1, 2]});
        let ours = json!({"type": [{"key": "string"}], "sizes": [1, 3]});
        let theirs = json!({"type": ["string", "null"], "sizes": [2]});
        assert_eq!(paths(&merge3(&base, &ours, &theirs)), ["/sizes", "/type"]);
    }

    #[test]
    fn pointers_escape_slash_and_tilde_in_keys() {
        assert_eq!(render_path(&["a/b", "~c", ""]), "/a~1b/~0c/");
        assert_eq!(
            parse_path("/a~1b/~0c/"),
            Ok(vec!["a/b".into(), "~c".into(), "".into()])
        );
        assert_eq!(parse_path(""), Ok(vec![]));
        assert_eq!(parse_path("a"), Err(PathError::MissingSlash));
        assert_eq!(parse_path("/~01"), Ok(vec!["~1".into()]));
        for bad in ["/~2", "/~", "/~~01"] {
            assert!(matches!(parse_path(bad), Err(PathError::BadEscape { .. })));
        }

        let base = json!({"a/b": {"items": [{"key": "x~y", "n": 1}]}});
        let target = json!({"a/b": {"items": [{"key": "x~y", "n": 2}]}});
        assert_eq!(
            diff(&base, &target).0,
            [set("/a~1b/items/x~0y/n", json!(2))]
        );
        assert_eq!(get(&target, "/a~1b/items/x~0y/n"), Ok(Some(&json!(2))));
    }

    #[test]
    fn diff_is_minimal_and_orders_only_when_needed() {
        let base = json!({"l": [{"key": "a"}, {"key": "b"}], "s": ["x", "y"], "n": 1});
        let target = json!({"l": [{"key": "b"}, {"key": "a"}], "s": ["x", "z"], "n": 1});
        let ops = diff(&base, &target).0;
        assert_eq!(
            ops,
            [
                order("/l", &["b", "a"]),
                remove("/s/y"),
                set("/s/z", json!("z"))
            ]
        );
        assert_eq!(apply(&base, &Overlay(ops)), Ok(target));
    }

    #[test]
    fn apply_names_the_path_and_the_problem() {
        let cases = [
            (set("/nope/x", json!(1)), ApplyProblem::MissingParent),
            (set("/fee/amount/x", json!(1)), ApplyProblem::NotAContainer),
            (
                set("/form/steps/x", json!({"key": "y"})),
                ApplyProblem::KeyMismatch,
            ),
            (set("/form/steps/x", json!("x")), ApplyProblem::KindMismatch),
            (
                set("/form/steps/summary/key", json!("z")),
                ApplyProblem::KeyField,
            ),
            (remove("/form/steps/summary/key"), ApplyProblem::KeyField),
            (remove("/fee/nope"), ApplyProblem::Missing),
            (remove(""), ApplyProblem::RemoveRoot),
            (order(STEPS, &["summary"]), ApplyProblem::BadPermutation),
            (order("/fee", &[]), ApplyProblem::NotAList),
            (
                remove("/form/schema/type/object/x"),
                ApplyProblem::NotAContainer,
            ),
            (
                remove("/~"),
                ApplyProblem::Path(PathError::BadEscape {
                    segment: "~".into(),
                }),
            ),
        ];
        for (op, problem) in cases {
            let path = op.path().to_owned();
            assert_eq!(
                apply(&service(), &Overlay(vec![op])),
                Err(ApplyError { path, problem })
            );
        }
        let atomic = apply(&json!({"a": [1, 2]}), &Overlay(vec![remove("/a/1")]));
        assert_eq!(atomic.unwrap_err().problem, ApplyProblem::NotAList);
    }

    #[test]
    fn resolve_reports_unknown_unresolved_and_invalid_resolutions() {
        let label = format!("{FIELDS}/name/label/de");
        let (label, payment) = (label.as_str(), "/form/steps/payment");
        let ours = [
            set(label, json!("A")),
            set("/form/steps/payment/title/de", json!("B")),
        ];
        let sides = fork(&ours, &[set(label, json!("C")), remove(payment)]);
        assert_eq!(paths(&merge_of(&sides)), [label, payment]);

        let unresolved = vec![label.to_owned(), payment.to_owned()];
        assert_eq!(
            settle(&sides, vec![]),
            Err(ResolveError::Unresolved { paths: unresolved })
        );
        let stale = vec![(STEPS, Choice::Ours), (payment, Choice::Ours)];
        let unknown = ResolveError::Unknown {
            paths: vec![STEPS.into()],
        };
        assert_eq!(settle(&sides, stale), Err(unknown));
        let other_key = Choice::Value(json!({"key": "x"}));
        let invalid = settle(&sides, vec![(label, Choice::Ours), (payment, other_key)]);
        assert!(matches!(invalid, Err(ResolveError::Invalid { path, .. }) if path == payment));
        let choices = vec![(label, Choice::Theirs), (payment, Choice::Ours)];
        let resolved = settle(&sides, choices).unwrap();
        assert_eq!(get(&resolved, label), Ok(Some(&json!("C"))));
        assert_eq!(
            get(&resolved, "/form/steps/payment/title/de"),
            Ok(Some(&json!("B")))
        );
    }

    #[test]
    fn overlay_serializes_as_tagged_ops() {
        let overlay = Overlay(vec![set("/a", json!(1)), remove("/b"), order("/c", &["x"])]);
        let text = serde_json::to_value(&overlay).unwrap();
        let expected = json!([
            {"op": "set", "path": "/a", "value": 1},
            {"op": "remove", "path": "/b"},
            {"op": "order", "path": "/c", "keys": ["x"]}
        ]);
        assert_eq!(text, expected);
        assert_eq!(serde_json::from_value::<Overlay>(text).unwrap(), overlay);
        let extra = json!([{"op": "remove", "path": "/b", "value": 1}]);
        assert!(serde_json::from_value::<Overlay>(extra).is_err());
    }

    // Property tests over random content-shaped documents and edits.

    const PROPS: &[&str] = &["title", "label", "fee", "a/b", "~t"];
    const KEYS: &[&str] = &["k1", "k2", "k3", "k/4", "k~5"];
    const WORDS: &[&str] = &["string", "null", "x", "y/z", "~w"];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0..4i64).prop_map(Value::from),
            select(WORDS).prop_map(Value::from),
        ]
    }

    /// A scalar or an atomic array of numbers.
    fn leaf() -> BoxedStrategy<Value> {
        let numbers = prop::collection::vec(0..3i64, 1..3).prop_map(Value::from);
        prop_oneof![3 => scalar(), 1 => numbers].boxed()
    }

    fn string_set() -> impl Strategy<Value = Value> {
        subsequence(WORDS, 0..=4)
            .prop_shuffle()
            .prop_map(Value::from)
    }

    fn keyed_list(depth: u32) -> BoxedStrategy<Value> {
        let elements = prop::collection::vec(map(depth), KEYS.len());
        (subsequence(KEYS, 0..=4).prop_shuffle(), elements)
            .prop_map(|(keys, elements)| {
                let with_keys = keys.into_iter().zip(elements).map(|(key, mut element)| {
                    element.insert("key".into(), key.into());
                    Value::Object(element)
                });
                Value::Array(with_keys.collect())
            })
            .boxed()
    }

    fn map(depth: u32) -> BoxedStrategy<Map<String, Value>> {
        let node = match depth {
            0 => leaf(),
            _ => prop_oneof![
                2 => leaf(),
                1 => string_set(),
                2 => keyed_list(depth - 1),
                1 => map(depth - 1).prop_map(Value::Object),
            ]
            .boxed(),
        };
        prop::collection::btree_map(select(PROPS), node, 1..4)
            .prop_map(|props| props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            .boxed()
    }

    fn doc() -> BoxedStrategy<Value> {
        map(2).prop_map(Value::Object).boxed()
    }

    /// What an edit does, where (small, so that both sides often pick the same node), and the
    /// randomness to pick a name or value with.
    type Seed = (u8, u8, Index, Value);

    fn seed() -> impl Strategy<Value = Seed> {
        let value = prop_oneof![3 => leaf(), 1 => map(0).prop_map(Value::Object)];
        (0..8u8, 0..6u8, any::<Index>(), value)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Role {
        Root,
        Property,
        Element,
    }

    type Node<'a> = (String, Role, &'a Value);

    /// Every node of the keyed view with its path and role, except the keys of elements.
    fn nodes(doc: &Value) -> Vec<Node<'_>> {
        fn walk<'a>(path: String, role: Role, node: &'a Value, out: &mut Vec<Node<'a>>) {
            out.push((path.clone(), role, node));
            if let Value::Object(props) = node {
                let props = props
                    .iter()
                    .filter(|(name, _)| role != Role::Element || *name != "key");
                for (name, child) in props {
                    walk(join(&path, name), Role::Property, child, out);
                }
            } else if let Some(list) = as_list(node) {
                for (key, child) in list.entries {
                    walk(join(&path, key), Role::Element, child, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(String::new(), Role::Root, doc, &mut out);
        out
    }

    /// A random edit of `doc` as the op that makes it; `None` when `doc` has no place for it.
    fn make_edit(doc: &Value, (kind, pick, extra, value): &Seed) -> Option<OverlayOp> {
        let all = nodes(doc);
        let choose = |wanted: &dyn Fn(Role, &Value) -> bool| {
            let found: Vec<_> = all.iter().filter(|(_, role, v)| wanted(*role, v)).collect();
            (!found.is_empty()).then(|| found[usize::from(*pick) % found.len()])
        };
        let fresh = |pool: &[&'static str], taken: &dyn Fn(&str) -> bool| {
            let free: Vec<_> = pool.iter().copied().filter(|k| !taken(k)).collect();
            (!free.is_empty()).then(|| free[extra.index(free.len())])
        };
        let is_list = |v: &Value| as_list(v).is_some();
        match kind {
            // Change a leaf (a scalar or an atomic array), also inside list elements.
            0 => {
                let (path, ..) =
                    choose(&|role, v| role == Role::Property && !v.is_object() && !is_list(v))?;
                Some(set(path, value.clone()))
            }
            1 => {
                let (path, _, object) = choose(&|_, v| v.is_object())?;
                let name = fresh(PROPS, &|name| object.get(name).is_some())?;
                Some(set(&join(path, name), value.clone()))
            }
            2 => Some(remove(&choose(&|role, _| role == Role::Property)?.0)),
            3 => {
                let (path, _, v) = choose(&|_, v| is_list(v))?;
                let list = as_list(v)?;
                let keyed = list
                    .kind
                    .map_or(extra.index(2) == 0, |k| k == ListKind::Keyed);
                let key = fresh(if keyed { KEYS } else { WORDS }, &|k| list.get(k).is_some())?;
                let element = keyed.then(|| json!({"key": key, "label": value}));
                let element = element.unwrap_or_else(|| json!(key));
                Some(set(&join(path, key), element))
            }
            4 => Some(remove(&choose(&|role, _| role == Role::Element)?.0)),
            // Reorder: three kinds of eight, so that both sides often reorder one list.
            _ => {
                let (path, _, v) = choose(&|_, v| as_list(v).is_some_and(|l| l.entries.len() > 1))?;
                let mut keys: Vec<String> = as_list(v)?.keys().map(str::to_owned).collect();
                let shift = 1 + extra.index(keys.len() - 1);
                keys.rotate_left(shift);
                Some(OverlayOp::Order {
                    path: path.clone(),
                    keys,
                })
            }
        }
    }

    fn edited(doc: &Value, seeds: &[Seed]) -> Value {
        seeds
            .iter()
            .fold(doc.clone(), |doc, seed| match make_edit(&doc, seed) {
                Some(op) => edit(&doc, &[op]),
                None => doc,
            })
    }

    /// Base, ours and theirs: mostly a few edits on each side, sometimes unrelated documents.
    fn sides() -> impl Strategy<Value = Sides> {
        let edits = || prop::collection::vec(seed(), 0..6);
        let related = (doc(), edits(), edits()).prop_map(|(base, o, t)| {
            let (ours, theirs) = (edited(&base, &o), edited(&base, &t));
            (base, ours, theirs)
        });
        prop_oneof![9 => related, 1 => (doc(), doc(), doc())]
    }

    fn restrict<'a>(order: &'a [String], to: &[String]) -> Vec<&'a String> {
        order.iter().filter(|k| to.contains(k)).collect()
    }

    fn list_keys(doc: &Value, path: &str) -> Vec<String> {
        let list = get(doc, path).unwrap().and_then(as_list);
        list.map(|l| l.keys().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Whether `merged` has everything `ours` has (both sides may have added to a new node).
    fn contains(merged: &Value, ours: &Value) -> bool {
        let within = |v: &Value, m: Option<&Value>| m.is_some_and(|m| contains(m, v));
        match (merged, ours) {
            (Value::Object(m), Value::Object(o)) => o.iter().all(|(k, v)| within(v, m.get(k))),
            _ => match (as_list(merged), as_list(ours)) {
                (Some(m), Some(o)) => o.entries.iter().all(|(k, v)| within(v, m.get(k))),
                _ => merged == ours,
            },
        }
    }

    /// Whether the merge still shows the local edit `op` (an op of base → ours), or a conflict
    /// at, above or below its path reports it.
    fn kept(op: &OverlayOp, base: &Value, theirs: &Value, merge: &Merge) -> bool {
        let path = parse_path(op.path()).unwrap();
        let related = |c: &Conflict| {
            let other = parse_path(&c.path).unwrap();
            other.starts_with(&path) || path.starts_with(&other)
        };
        if merge.conflicts.iter().any(related) {
            return true;
        }
        let merged = &merge.merged;
        let at = |doc| get(doc, op.path()).unwrap();
        match op {
            OverlayOp::Set { value, .. } => {
                at(merged) == Some(value)
                    || at(base).is_none() && at(merged).is_some_and(|m| contains(m, value))
            }
            OverlayOp::Remove { .. } => at(merged).is_none(),
            OverlayOp::Order { path, keys } => {
                let [merged, base, theirs] = [merged, base, theirs].map(|doc| list_keys(doc, path));
                let common =
                    |k: &&String| keys.contains(k) && base.contains(k) && theirs.contains(k);
                if !keys.iter().filter(common).eq(base.iter().filter(common)) {
                    // Ours reordered common elements: its relative order holds.
                    return restrict(&merged, keys) == restrict(keys, &merged);
                }
                // Ours only inserted: each element only it has follows its predecessor in ours.
                let own = |(_, k): &(usize, &String)| merged.contains(k) && !theirs.contains(k);
                keys.iter().enumerate().filter(own).all(|(i, key)| {
                    let before = keys[..i].iter().rev().find(|k| merged.contains(k));
                    let index = merged.iter().position(|k| k == key).unwrap();
                    before == index.checked_sub(1).map(|i| &merged[i])
                })
            }
        }
    }

    /// Edits that touch unrelated paths and do not both insert into one list; or, beyond what
    /// must commute, a reorder of a list and an edit inside (or a removal) of one of its elements.
    fn independent(base: &Value, a: &OverlayOp, b: &OverlayOp) -> bool {
        /// The list an op inserts a new element into, if it does.
        fn list_of<'a>(base: &Value, op: &'a OverlayOp) -> Option<&'a str> {
            let (path, new) = (op.path(), matches!(op, OverlayOp::Set { .. }));
            let parent = &path[..path.rfind('/')?];
            let new = new && get(base, path).unwrap().is_none();
            (new && get(base, parent).unwrap().is_some_and(Value::is_array)).then_some(parent)
        }
        let same_list = list_of(base, a).is_some_and(|list| list_of(base, b) == Some(list));
        let (pa, pb) = (parse_path(a.path()).unwrap(), parse_path(b.path()).unwrap());
        let reorder_around = |x: &OverlayOp, px: &[String], y: &OverlayOp, py: &[String]| {
            let below = py.len() > px.len() && py.starts_with(px);
            let inside = py.len() > px.len() + 1 || matches!(y, OverlayOp::Remove { .. });
            matches!(x, OverlayOp::Order { .. }) && below && inside
        };
        !pa.starts_with(&pb) && !pb.starts_with(&pa) && !same_list
            || reorder_around(a, &pa, b, &pb)
            || reorder_around(b, &pb, a, &pa)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn applying_a_diff_gives_its_target((base, ours, theirs) in sides()) {
            for (from, to) in [(&base, &ours), (&base, &theirs), (&ours, &theirs)] {
                prop_assert_eq!(&apply(from, &diff(from, to)).unwrap(), to);
            }
            prop_assert_eq!(diff(&ours, &ours), Overlay::default());
        }

        #[test]
        fn merging_with_an_unchanged_side_gives_the_other((base, other, _) in sides()) {
            let clean = Merge { merged: other.clone(), conflicts: vec![] };
            prop_assert_eq!(&merge3(&base, &base, &other), &clean);
            prop_assert_eq!(&merge3(&base, &other, &base), &clean);
            prop_assert_eq!(&merge3(&base, &other, &other), &clean);
        }

        #[test]
        fn non_overlapping_edits_commute((base, a, b) in (doc(), seed(), seed())) {
            let (a, b) = (make_edit(&base, &a), make_edit(&base, &b));
            let (Some(a), Some(b)) = (a, b) else { return Err(TestCaseError::reject("no edit")) };
            prop_assume!(independent(&base, &a, &b));
            let (a, b) = ([a], [b]);
            let (ours, theirs) = (edit(&base, &a), edit(&base, &b));
            let merge = merge3(&base, &ours, &theirs);
            prop_assert!(merge.conflicts.is_empty());
            prop_assert_eq!(&merge, &merge3(&base, &theirs, &ours));
            // A reorder goes first: it may name an element that the other edit removes.
            let both = match b[0] {
                OverlayOp::Order { .. } => edit(&theirs, &a),
                _ => edit(&ours, &b),
            };
            prop_assert_eq!(&merge.merged, &both);
        }

        #[test]
        fn a_merge_never_silently_drops_a_local_edit((base, ours, theirs) in sides()) {
            let merge = merge3(&base, &ours, &theirs);
            for op in diff(&base, &ours).0 {
                prop_assert!(kept(&op, &base, &theirs, &merge), "{:?} lost: {:#?}", op, merge);
            }
        }

        #[test]
        fn a_reorder_on_either_side_is_never_silently_dropped((base, ours, theirs) in sides()) {
            let merge = merge3(&base, &ours, &theirs);
            for (side, other) in [(&ours, &theirs), (&theirs, &ours)] {
                for op in diff(&base, side).0 {
                    let OverlayOp::Order { path, keys } = &op else { continue };
                    let [merged, base, other] =
                        [&merge.merged, &base, other].map(|doc| list_keys(doc, path));
                    let common =
                        |k: &&String| keys.contains(k) && base.contains(k) && other.contains(k);
                    let reordered = !keys.iter().filter(common).eq(base.iter().filter(common));
                    let shown = keys.iter().filter(common).eq(merged.iter().filter(common));
                    let at = parse_path(path).unwrap();
                    let above = |c: &Conflict| at.starts_with(&parse_path(&c.path).unwrap());
                    let above = merge.conflicts.iter().any(above);
                    prop_assert!(!reordered || shown || above, "{:?} lost: {:#?}", op, merge);
                }
            }
        }

        #[test]
        fn conflicts_are_symmetric((base, ours, theirs) in sides()) {
            let swapped = |c: Conflict| Conflict { ours: c.theirs, theirs: c.ours, ..c };
            let mut forward = merge3(&base, &ours, &theirs).conflicts;
            let mut backward: Vec<_> =
                merge3(&base, &theirs, &ours).conflicts.into_iter().map(swapped).collect();
            forward.sort_by(|a, b| a.path.cmp(&b.path));
            backward.sort_by(|a, b| a.path.cmp(&b.path));
            prop_assert_eq!(forward, backward);
        }

        #[test]
        fn resolving_keeps_the_chosen_side((base, ours, theirs) in sides(), skip: Index) {
            let merge = merge3(&base, &ours, &theirs);
            let all = |choice: &Choice| -> BTreeMap<String, Choice> {
                merge.conflicts.iter().map(|c| (c.path.clone(), choice.clone())).collect()
            };
            let local = resolve(&base, &ours, &theirs, &all(&Choice::Ours)).unwrap();
            prop_assert_eq!(&local, &merge.merged);
            let clean = Merge { merged: local, conflicts: vec![] };
            for op in diff(&base, &ours).0 {
                prop_assert!(kept(&op, &base, &theirs, &clean), "{:?} lost", op);
            }

            let upstream = resolve(&base, &ours, &theirs, &all(&Choice::Theirs)).unwrap();
            for conflict in &merge.conflicts {
                let there = get(&upstream, &conflict.path).unwrap();
                if conflict.kind == ConflictKind::Value {
                    prop_assert_eq!(there, conflict.theirs.as_ref());
                } else {
                    let keys = |doc| list_keys(doc, &conflict.path);
                    let [got, want] = [&upstream, &theirs].map(keys);
                    prop_assert_eq!(restrict(&got, &want), restrict(&want, &got));
                }
            }
            // With ours == base there is nothing to resolve and theirs comes through.
            let untouched = merge3(&base, &base, &theirs).conflicts;
            let upstream_only = untouched.into_iter().map(|c| (c.path, Choice::Theirs)).collect();
            prop_assert_eq!(resolve(&base, &base, &theirs, &upstream_only), Ok(theirs.clone()));

            let paths: Vec<String> = merge.conflicts.iter().map(|c| c.path.clone()).collect();
            let none = resolve(&base, &ours, &theirs, &BTreeMap::new());
            let all_unresolved = ResolveError::Unresolved { paths: paths.clone() };
            prop_assert_eq!(none.err(), (!paths.is_empty()).then_some(all_unresolved));
            if !paths.is_empty() {
                let missing = skip.get(&paths).clone();
                let mut partial = all(&Choice::Ours);
                partial.remove(&missing);
                let unresolved = ResolveError::Unresolved { paths: vec![missing] };
                prop_assert_eq!(resolve(&base, &ours, &theirs, &partial), Err(unresolved));
            }
        }
    }
}
