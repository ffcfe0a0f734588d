//! The object store as a folder, for backups (`server objects export|import <dir>`, used by
//! `deploy/backup/`): one file per object, named by its key. Through [`ObjectStore`], so local
//! files and S3 are copied the same way.

#![expect(clippy::print_stdout, reason = "the CLI reports what it copied")]

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::ObjectStore;
use crate::settings::Settings;

/// The file of `key` below `dir`; `None` for a key that is not a plain relative path.
fn file_of(dir: &Path, key: &str) -> Option<PathBuf> {
    let rel = Path::new(key);
    let plain = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| dir.join(rel))
}

/// Writes every object to `<dir>/<key>`; `dir` must not exist (a backup never mixes runs).
pub async fn export(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let (store, _) = super::from_settings(settings)?;
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let objects = store.list("").await.context("listing objects")?;
    let (mut n, mut bytes) = (0u64, 0u64);
    for obj in objects {
        let Some(path) = file_of(dir, &obj.key) else {
            anyhow::bail!("object key {:?} is not a plain path", obj.key);
        };
        // Deleted since it was listed (the sweeper, a citizen): nothing to keep.
        let Some(mut body) = store
            .get(&obj.key)
            .await
            .with_context(|| format!("reading {}", obj.key))?
        else {
            continue;
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.with_context(|| format!("reading {}", obj.key))?;
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        n += 1;
    }
    println!("exported {n} objects ({bytes} bytes) to {}", dir.display());
    Ok(())
}

/// Stores every file below `dir` under its relative path as key.
pub async fn import(settings: &Settings, dir: &Path) -> anyhow::Result<()> {
    let (store, _) = super::from_settings(settings)?;
    let mut pending = vec![dir.to_owned()];
    let mut n = 0u64;
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).with_context(|| format!("reading {}", folder.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let key = path
                .strip_prefix(dir)?
                .to_str()
                .context("an object file name is not UTF-8")?
                .to_owned();
            put_file(store.as_ref(), &key, &path).await?;
            n += 1;
        }
    }
    println!("imported {n} objects from {}", dir.display());
    Ok(())
}

async fn put_file(store: &dyn ObjectStore, key: &str, path: &Path) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().await?.len();
    store
        .put(key, file, size, "application/octet-stream")
        .await
        .with_context(|| format!("storing {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_keys_name_files() {
        let dir = Path::new("/backup");
        assert_eq!(file_of(dir, "t/o/x"), Some(PathBuf::from("/backup/t/o/x")));
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./a"] {
            assert_eq!(file_of(dir, bad), None, "{bad}");
        }
    }
}
