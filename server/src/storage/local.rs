//! [`LocalFs`]: objects as files under one folder (`<dir>/<tenant>/<owner>/<uuid>`). Presigned
//! URLs point at this server (`/storage/<key>?…&sig=`), carry an expiry and are signed with
//! HMAC-SHA256 under a key kept in the data folder, so any replica sharing the folder and key
//! serves them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::AsyncWriteExt as _;

use super::{ByteStream, DownloadAs, ObjectMeta, ObjectStore};

/// Where uploads are written before they are complete (never listed, never served).
const INCOMING: &str = ".incoming";

#[derive(Clone)]
pub struct LocalFs {
    dir: PathBuf,
    /// HMAC-SHA256 keyed with the URL signing key; cloned per signature.
    mac: Hmac<Sha256>,
    /// Absolute base of presigned URLs; without it they are paths (`/storage/…`) that the API
    /// completes with the origin the client called.
    public_url: Option<String>,
}

impl std::fmt::Debug for LocalFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFs").field("dir", &self.dir).finish()
    }
}

/// Reads the URL signing key, or creates one (32 random bytes, base64) readable by the owner only.
pub fn load_or_generate_secret(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(hex) => {
            let hex = hex.trim();
            anyhow::ensure!(hex.len() >= 32, "{what} {} is too short", path.display());
            Ok(hex.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let secret = crate::auth::tokens::random_secret();
            let stored = crate::keyfile::create_private_once(path, &secret)
                .with_context(|| format!("writing {what} {}", path.display()))?;
            Ok(stored.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("reading {what} {}", path.display())),
    }
}

/// A presigned request as the server checked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    pub key: String,
    /// For uploads: the exact size and type the URL allows.
    pub size: Option<u64>,
    pub content_type: String,
    /// For downloads: the `Content-Disposition` to answer with.
    pub disposition: Option<String>,
}

/// Why a presigned request is refused (HTTP 403 with this text; 400 for a malformed one).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the link is malformed")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

#[derive(serde::Deserialize)]
struct Query {
    exp: i64,
    ct: String,
    size: Option<u64>,
    cd: Option<String>,
    sig: String,
}

impl LocalFs {
    pub fn new(dir: PathBuf, secret: Vec<u8>, public_url: Option<String>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join(INCOMING))
            .with_context(|| format!("creating storage folder {}", dir.display()))?;
        let mac = Hmac::<Sha256>::new_from_slice(&secret)
            .map_err(|_| anyhow::anyhow!("the storage URL signing key is unusable"))?;
        Ok(Self {
            dir,
            mac,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        })
    }

    /// The file of a key; `None` unless the key has exactly the server's shape (no traversal).
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        super::key_tenant(key)?;
        Some(self.dir.join(key))
    }

    fn sign(&self, method: &str, key: &str, exp: i64, extra: &[&str]) -> String {
        let mut mac = self.mac.clone();
        mac.update(method.as_bytes());
        for part in [key, &exp.to_string()]
            .into_iter()
            .chain(extra.iter().copied())
        {
            mac.update(b"\n");
            mac.update(part.as_bytes());
        }
        hex(&mac.finalize().into_bytes())
    }

    fn url(&self, key: &str, query: &[(&str, String)]) -> String {
        let query = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "{}/storage/{key}?{query}",
            self.public_url.as_deref().unwrap_or_default()
        )
    }

    /// Checks a presigned request to `/storage/<key>`: the signature over method, key, expiry
    /// and bound values, then the expiry.
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        query: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedRequest, Refusal> {
        self.path_of(key).ok_or(Refusal::Malformed)?;
        let q: Query = serde_urlencoded::from_str(query).map_err(|_| Refusal::Malformed)?;
        let expected = match method {
            "PUT" => {
                let size = q.size.ok_or(Refusal::Malformed)?;
                self.sign("PUT", key, q.exp, &[&size.to_string(), &q.ct])
            }
            "GET" | "HEAD" => {
                let cd = q.cd.as_deref().ok_or(Refusal::Malformed)?;
                self.sign("GET", key, q.exp, &[&q.ct, cd])
            }
            _ => return Err(Refusal::Malformed),
        };
        if !crate::auth::tokens::constant_time_eq(&expected, &q.sig) {
            return Err(Refusal::BadSignature);
        }
        if now.timestamp() > q.exp {
            return Err(Refusal::Expired);
        }
        Ok(SignedRequest {
            key: key.to_owned(),
            size: q.size,
            content_type: q.ct,
            disposition: q.cd,
        })
    }

    /// Writes an upload that arrives as a stream to `key`, refusing more or fewer than `size`
    /// bytes. The body goes to a temporary file first and is renamed into place when complete, so
    /// a broken upload leaves nothing behind and readers never see half a file.
    pub async fn receive<S, E>(&self, key: &str, size: u64, mut body: S) -> Result<(), Receive>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let target = self
            .path_of(key)
            .ok_or(Receive::Refused(Refusal::Malformed))?;
        let tmp = self
            .dir
            .join(INCOMING)
            .join(uuid::Uuid::new_v4().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(Receive::io)?;
            let mut written: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| Receive::Broken)?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(Receive::TooLarge { limit: size });
                }
                file.write_all(&chunk).await.map_err(Receive::io)?;
            }
            if written != size {
                return Err(Receive::WrongSize {
                    expected: size,
                    got: written,
                });
            }
            file.sync_all().await.map_err(Receive::io)?;
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(Receive::io)?;
            }
            tokio::fs::rename(&tmp, &target).await.map_err(Receive::io)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Why an upload to a presigned URL failed.
#[derive(Debug, thiserror::Error)]
pub enum Receive {
    #[error("{0}")]
    Refused(Refusal),
    #[error("the body is larger than the {limit} bytes this link allows")]
    TooLarge { limit: u64 },
    #[error("the body has {got} bytes; this link is for exactly {expected}")]
    WrongSize { expected: u64, got: u64 },
    #[error("the upload broke off")]
    Broken,
    #[error("storage failed")]
    Io(#[source] std::io::Error),
}

impl Receive {
    fn io(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn meta_of(key: String, m: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        modified: m
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now()),
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalFs {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn put(
        &self,
        key: &str,
        file: tokio::fs::File,
        size: u64,
        _content_type: &str,
    ) -> anyhow::Result<()> {
        let stream = tokio_util::io::ReaderStream::new(file);
        self.receive(key, size, stream)
            .await
            .map_err(|e| anyhow::anyhow!("storing {key}: {e}"))
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<ByteStream>> {
        let path = self.path_of(key).context("not a key of this server")?;
        match tokio::fs::File::open(&path).await {
            Ok(f) => Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                f,
                64 * 1024,
            )))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
        }
    }

    async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectMeta>> {
        let path = self.path_of(key).context("not a key of this server")?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(meta_of(key.to_owned(), &m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    async fn relocate(&self, from: &str, to: &str) -> anyhow::Result<()> {
        let source = self.path_of(from).context("not a key of this server")?;
        let target = self.path_of(to).context("not a key of this server")?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&source, &target)
            .await
            .with_context(|| format!("moving {from} to {to}"))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path_of(key).context("not a key of this server")?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                // An owner's folder goes with its last file (fails harmlessly if not empty).
                if let Some(parent) = path.parent() {
                    let _ = tokio::fs::remove_dir(parent).await;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
        }
    }

    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectMeta>> {
        let dir = self.dir.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for tenant in read_dir(&dir)? {
                let Some(t) = name_of(&tenant) else { continue };
                if t == INCOMING {
                    continue;
                }
                for owner in read_dir(&tenant)? {
                    let Some(o) = name_of(&owner) else { continue };
                    for file in read_dir(&owner)? {
                        let Some(f) = name_of(&file) else { continue };
                        let key = format!("{t}/{o}/{f}");
                        if key.starts_with(&prefix)
                            && let Ok(m) = std::fs::metadata(&file)
                            && m.is_file()
                        {
                            out.push(meta_of(key, &m));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await?
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        download: &DownloadAs,
    ) -> anyhow::Result<String> {
        let exp = expiry(ttl);
        let sig = self.sign(
            "GET",
            key,
            exp,
            &[&download.content_type, &download.disposition],
        );
        Ok(self.url(
            key,
            &[
                ("exp", exp.to_string()),
                ("ct", download.content_type.clone()),
                ("cd", download.disposition.clone()),
                ("sig", sig),
            ],
        ))
    }

    async fn presign_put(
        &self,
        key: &str,
        ttl: Duration,
        size: u64,
        content_type: &str,
    ) -> anyhow::Result<String> {
        let exp = expiry(ttl);
        let sig = self.sign("PUT", key, exp, &[&size.to_string(), content_type]);
        Ok(self.url(
            key,
            &[
                ("exp", exp.to_string()),
                ("size", size.to_string()),
                ("ct", content_type.to_owned()),
                ("sig", sig),
            ],
        ))
    }
}

fn expiry(ttl: Duration) -> i64 {
    Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

/// The entries of a folder; nothing for a missing folder or a file.
fn read_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("listing {}", dir.display())),
    }
}

fn name_of(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn store() -> (tempfile::TempDir, LocalFs) {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = LocalFs::new(
            dir.path().to_owned(),
            b"0123456789abcdef0123456789abcdef".to_vec(),
            None,
        )
        .expect("store");
        (dir, fs)
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.strip_prefix("/storage/").expect("path");
        let (key, query) = rest.split_once('?').expect("query");
        (key.to_owned(), query.to_owned())
    }

    #[tokio::test]
    async fn a_presigned_put_binds_size_and_type() {
        let (_d, fs) = store();
        let key = super::super::object_key(uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let url = fs
            .presign_put(&key, Duration::from_secs(60), 10, "application/pdf")
            .await
            .expect("url");
        let (k, q) = split(&url);
        let ok = fs.verify("PUT", &k, &q, Utc::now()).expect("valid");
        assert_eq!(ok.size, Some(10));
        assert_eq!(ok.content_type, "application/pdf");
        let tampered = q.replace("size=10", "size=11");
        assert_eq!(
            fs.verify("PUT", &k, &tampered, Utc::now()),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            fs.verify("GET", &k, &q, Utc::now()),
            Err(Refusal::Malformed)
        );
        let later = Utc::now() + chrono::Duration::seconds(120);
        assert_eq!(fs.verify("PUT", &k, &q, later), Err(Refusal::Expired));
        assert_eq!(
            fs.verify("PUT", "../../etc/passwd", &q, Utc::now()),
            Err(Refusal::Malformed)
        );
    }
}
