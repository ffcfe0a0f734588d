//! Key files that replicas share (signing key, payment secrets key, storage URL key): created
//! once, whole, readable by the owner only.

use std::path::Path;

/// Creates the key file `path` with `content` (readable by the owner only) unless it exists, and
/// returns what the file holds. Replicas that start at once on a shared folder may all generate
/// a key: the file appears whole or not at all (written aside, then hard-linked into place,
/// which fails when it exists), and every one of them uses the one that won.
pub fn create_private_once(path: &Path, content: &str) -> std::io::Result<String> {
    let aside = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    write_private(&aside, content)?;
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(content.to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_creating_a_key_file_at_once_all_use_the_one_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.key");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || create_private_once(&path, &format!("key-{i}")).unwrap())
            })
            .collect();
        let keys: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "one key for all: {keys:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), keys[0]);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no files left aside");
    }
}
