//! Attachments: files citizens add to drafts and applications, kept in object storage
//! ([`crate::storage`]). Inline uploads (GraphQL multipart) for small files, presigned uploads
//! for large ones, type by magic bytes against the service's allow-list, size and count limits,
//! SHA-256, an optional virus scan, short-lived download URLs for those who may see the file,
//! and a sweeper that keeps storage and database in step.

pub mod download;
pub mod graphql;
pub mod handover;
pub mod http;
pub mod scan;
pub mod service;
pub mod sweeper;
pub mod upload;
