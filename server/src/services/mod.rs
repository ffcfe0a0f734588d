//! A tenant's services: forks of marketplace templates with a local overlay, revisions, and the
//! three-way merge that brings upstream updates in.

pub mod changes;
pub mod graphql;
pub mod merge;
pub mod seed;
pub mod service;
