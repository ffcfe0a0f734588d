//! [`S3`]: AWS S3 or any S3-compatible server (MinIO, Ceph, Garage, …) through rust-s3.
//! Presigned URLs are S3's own (SigV4 query signatures); a presigned PUT signs `Content-Type`
//! and `Content-Length`, so S3 itself refuses another type or size.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};
use secrecy::ExposeSecret as _;

use super::{ByteStream, DownloadAs, ObjectMeta, ObjectStore};
use crate::settings::S3Settings;

#[derive(Clone)]
pub struct S3 {
    bucket: Box<Bucket>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("bucket", &self.bucket.name())
            .finish()
    }
}

impl S3 {
    pub fn new(s: &S3Settings) -> anyhow::Result<Self> {
        let region = match &s.endpoint {
            Some(endpoint) => Region::Custom {
                region: s.region.clone(),
                endpoint: endpoint.trim_end_matches('/').to_owned(),
            },
            None => s
                .region
                .parse()
                .with_context(|| format!("unknown S3 region {:?}", s.region))?,
        };
        let credentials = Credentials::new(
            s.access_key.as_ref().map(|k| k.expose_secret()),
            s.secret_key.as_ref().map(|k| k.expose_secret()),
            None,
            None,
            None,
        )
        .context("S3 credentials")?;
        let mut bucket = Bucket::new(&s.bucket, region, credentials).context("S3 bucket")?;
        if s.path_style {
            bucket = bucket.with_path_style();
        }
        Ok(Self { bucket })
    }
}

fn not_found(e: &S3Error) -> bool {
    matches!(e, S3Error::HttpFailWithBody(404, _))
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

fn ttl_secs(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(1, 7 * 24 * 3600)
}

#[async_trait::async_trait]
impl ObjectStore for S3 {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put(
        &self,
        key: &str,
        mut file: tokio::fs::File,
        _size: u64,
        content_type: &str,
    ) -> anyhow::Result<()> {
        // Streams in parts (multipart upload for large files); aborts the upload on error.
        self.bucket
            .put_object_stream_with_content_type(&mut file, key, content_type)
            .await
            .with_context(|| format!("S3 PUT {key}"))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<ByteStream>> {
        match self.bucket.get_object_stream(key).await {
            Ok(stream) => Ok(Some(Box::pin(
                stream.bytes.map(|r| r.map_err(std::io::Error::other)),
            ))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("S3 GET {key}")),
        }
    }

    async fn head(&self, key: &str) -> anyhow::Result<Option<ObjectMeta>> {
        match self.bucket.head_object(key).await {
            Ok((head, 200)) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: head
                    .content_length
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                modified: head
                    .last_modified
                    .as_deref()
                    .and_then(|s| DateTime::parse_from_rfc2822(s).ok())
                    .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            })),
            Ok((_, 404)) => Ok(None),
            Ok((_, status)) => anyhow::bail!("S3 HEAD {key}: status {status}"),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("S3 HEAD {key}")),
        }
    }

    async fn relocate(&self, from: &str, to: &str) -> anyhow::Result<()> {
        self.bucket
            .copy_object_internal(from, to)
            .await
            .with_context(|| format!("S3 COPY {from} to {to}"))?;
        self.delete(from).await
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("S3 DELETE {key}")),
        }
    }

    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectMeta>> {
        let pages = self
            .bucket
            .list(prefix.to_owned(), None)
            .await
            .context("S3 LIST")?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.contents)
            .map(|o| ObjectMeta {
                modified: parse_time(&o.last_modified),
                key: o.key,
                size: o.size,
            })
            .collect())
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        download: &DownloadAs,
    ) -> anyhow::Result<String> {
        let queries = HashMap::from([
            (
                "response-content-disposition".to_owned(),
                download.disposition.clone(),
            ),
            (
                "response-content-type".to_owned(),
                download.content_type.clone(),
            ),
        ]);
        self.bucket
            .presign_get(key, ttl_secs(ttl), Some(queries))
            .await
            .context("presigning S3 GET")
    }

    async fn presign_put(
        &self,
        key: &str,
        ttl: Duration,
        size: u64,
        content_type: &str,
    ) -> anyhow::Result<String> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type.parse()?);
        headers.insert(http::header::CONTENT_LENGTH, size.into());
        self.bucket
            .presign_put(key, ttl_secs(ttl), Some(headers), None)
            .await
            .context("presigning S3 PUT")
    }
}
