//! Keys from paths. One FIM element can occur at several places (an address group in two
//! steps, a field in two groups), so an element's key is made from its path of FIM ids: the
//! shortest tail of the path that no other element of the same namespace ends with
//! (`f60000227`, or `g00001914_f60000227` where that field occurs twice). Keys stay the same as
//! long as the structure around an element does, whatever its labels say.

use sha2::{Digest, Sha256};

/// Keys for `paths` (each a list of FIM ids from a scope's root to the element), in order.
pub fn keys_for(paths: &[Vec<String>]) -> Vec<String> {
    let mut keys: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let n = (1..=path.len())
                .find(|&n| {
                    let tail = &path[path.len() - n..];
                    !paths
                        .iter()
                        .enumerate()
                        .any(|(j, other)| j != i && other.ends_with(tail))
                })
                .unwrap_or(path.len());
            key_of(&path[path.len() - n..], path)
        })
        .collect();
    // The same path twice (an element repeated in one structure): number the later ones.
    let mut seen = std::collections::BTreeSet::new();
    for key in &mut keys {
        if !seen.insert(key.clone()) {
            let base = key.clone();
            let mut n = 2;
            while !seen.insert(format!("{}_{n}", trim(&base, 55))) {
                n += 1;
            }
            *key = format!("{}_{n}", trim(&base, 55));
        }
    }
    keys
}

fn key_of(tail: &[String], path: &[String]) -> String {
    let key = tail.iter().map(|s| slug(s)).collect::<Vec<_>>().join("_");
    if key.len() <= 63 {
        return key;
    }
    // Too deep for a key: the element's own id and a digest of the whole path.
    let digest = Sha256::digest(path.join("/").as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let last = path.last().map(|s| slug(s)).unwrap_or_default();
    format!("{}_{hex}", trim(&last, 50))
}

fn trim(s: &str, max: usize) -> &str {
    // Slugs are ASCII, so any byte index is a boundary.
    &s[..s.len().min(max)]
}

/// An id as a key segment: lowercase ASCII letters, digits and `_`, starting with a letter.
pub fn slug(id: &str) -> String {
    let mut out: String = id
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert(0, 'x');
    }
    out.truncate(40);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn keys_are_the_shortest_unique_tail_of_the_path() {
        let keys = keys_for(&[
            p(&["G1", "F1"]),
            p(&["G2", "F1"]),
            p(&["G2", "F2"]),
            p(&["G3", "G4", "F3"]),
            p(&["G2", "F2"]),
        ]);
        assert_eq!(keys, ["g1_f1", "g2_f1", "g2_f2", "f3", "g2_f2_2"]);
    }

    #[test]
    fn deep_paths_still_give_valid_keys() {
        let deep: Vec<String> = (0..20).map(|i| format!("G0000{i:04}")).collect();
        let mut other = deep.clone();
        other[0] = "G9".into();
        let keys = keys_for(&[deep, other]);
        for k in &keys {
            assert!(crate::content::Key::parse(k).is_ok(), "{k}");
        }
        assert_ne!(keys[0], keys[1]);
        assert_eq!(slug("1-a"), "x1_a");
    }
}
