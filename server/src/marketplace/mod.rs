//! The marketplace: service templates with immutable, semver-checked versions, browsing and
//! full-text search, and adoption (which tenants use which version).

pub mod graphql;
pub mod pages;
pub mod seed;
pub mod service;
