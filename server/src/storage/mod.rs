//! Object storage for attachments: the [`ObjectStore`] trait and its two backends, [`LocalFs`]
//! (the embedded default: files under the data folder, presigned URLs served and checked by this
//! server) and [`S3`] (AWS S3 or any S3-compatible server, through rust-s3).
//!
//! Keys are made by the server only ([`object_key`]); nothing a client sends becomes part of a
//! path. Bodies move as streams, never as whole buffers: a 100 MB upload costs a few chunks of
//! memory.

pub mod backup;
pub mod local;
mod s3;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use uuid::Uuid;

pub use local::{LocalFs, SignedRequest};
pub use s3::S3;

use crate::settings::Settings;

/// A body read from storage, chunk by chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What storage knows about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// How a presigned download presents the file to the browser.
#[derive(Clone, Debug)]
pub struct DownloadAs {
    /// `Content-Disposition` value (already sanitized, see [`content_disposition`]).
    pub disposition: String,
    pub content_type: String,
}

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// `local` or `s3`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// Stores `size` bytes read from `file` (positioned at its start) under `key`.
    async fn put(
        &self,
        key: &str,
        file: tokio::fs::File,
        size: u64,
        content_type: &str,
    ) -> anyhow::Result<()>;
    /// The object's bytes; `None` if there is no such object.
    async fn get(&self, key: &str) -> anyhow::Result<Option<ByteStream>>;
    async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectMeta>>;
    /// Moves an object to a new key (the old key's presigned URLs then write nowhere that
    /// matters).
    async fn relocate(&self, from: &str, to: &str) -> anyhow::Result<()>;
    /// Removes the object; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Every object whose key starts with `prefix` (the sweeper's view of storage).
    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectMeta>>;
    /// A URL that lets its holder download the object until `ttl` has passed.
    async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        download: &DownloadAs,
    ) -> anyhow::Result<String>;
    /// A URL that lets its holder PUT exactly `size` bytes of `content_type` to `key` until `ttl`
    /// has passed (both are part of the signature: another size or type is refused).
    async fn presign_put(
        &self,
        key: &str,
        ttl: Duration,
        size: u64,
        content_type: &str,
    ) -> anyhow::Result<String>;
}

/// The configured backend, and the local one's concrete type when it is the one (the HTTP layer
/// serves its presigned URLs).
pub type Configured = (Arc<dyn ObjectStore>, Option<Arc<LocalFs>>);

pub fn from_settings(settings: &Settings) -> anyhow::Result<Configured> {
    let storage = &settings.storage;
    Ok(match &storage.s3 {
        Some(s3) => (Arc::new(S3::new(s3)?), None),
        None => {
            let dir = storage
                .local_dir
                .clone()
                .unwrap_or_else(|| settings.data_dir.join("objects"));
            let secret = local::load_or_generate_secret(
                &local_secret_path(settings),
                "storage URL signing key",
            )?;
            let local = Arc::new(LocalFs::new(dir, secret, storage.public_url.clone())?);
            (local.clone(), Some(local))
        }
    })
}

fn local_secret_path(settings: &Settings) -> PathBuf {
    settings
        .storage
        .url_signing_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("storage-url.key"))
}

/// `<tenant>/<owner>/<uuid>`: the owner is the draft or application the file was added to.
pub fn object_key(tenant: Uuid, owner: Uuid) -> String {
    format!("{tenant}/{owner}/{}", Uuid::new_v4())
}

/// The tenant of a key this server made; `None` for anything else (never touched by the sweeper).
pub fn key_tenant(key: &str) -> Option<Uuid> {
    let mut parts = key.split('/');
    let (t, o, f) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || Uuid::parse_str(o).is_err() || Uuid::parse_str(f).is_err() {
        return None;
    }
    Uuid::parse_str(t).ok()
}

/// A filename a client sent, made harmless for display and `Content-Disposition`: no folders,
/// no control characters, no quotes or backslashes, at most 120 characters, never empty.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '"' | '\\' | '/' | ';' | '\u{202e}' | '\u{202d}')
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let mut out: String = cleaned.chars().take(120).collect();
    if out.is_empty() {
        out.push_str("datei");
    }
    out
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266 / 5987): old
/// clients get an ASCII fallback, new ones the real name; nothing can break out of the header.
pub fn content_disposition(filename: &str) -> String {
    let name = sanitize_filename(filename);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn traversal_and_control_characters_are_removed() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_filename("a\r\nb\"c;.pdf"), "abc.pdf");
        assert_eq!(sanitize_filename(".."), "datei");
        assert_eq!(sanitize_filename(""), "datei");
        assert_eq!(
            sanitize_filename("Übersicht März.pdf"),
            "Übersicht März.pdf"
        );
    }

    #[test]
    fn keys_of_this_server_are_recognised() {
        let (t, o) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(key_tenant(&object_key(t, o)), Some(t));
        assert_eq!(key_tenant("backups/db.dump"), None);
        assert_eq!(key_tenant(&format!("{t}/{o}/x/y")), None);
    }

    proptest! {
        #[test]
        fn any_filename_gives_a_safe_header(name in any::<String>()) {
            let d = content_disposition(&name);
            prop_assert!(d.chars().all(|c| c.is_ascii() && !c.is_ascii_control()));
            prop_assert_eq!(d.matches('"').count(), 2);
            let s = sanitize_filename(&name);
            prop_assert!(!s.contains('/') && !s.contains('\\') && !s.is_empty());
            prop_assert!(!s.starts_with('.'));
        }
    }
}
