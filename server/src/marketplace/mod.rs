//! The marketplace: service templates with immutable, semver-checked versions, browsing and
//! full-text search, adoption (which tenants use which version), and the FIM import.

pub mod fim;
pub mod graphql;
pub mod pages;
pub mod seed;
pub mod service;
