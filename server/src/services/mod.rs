//! A tenant's services: forks of marketplace templates with a local overlay, revisions, and the
//! three-way merge that brings upstream updates in.
//!
//! - [`revisions`]: fork, customize, roll back. [`updates`]: upstream updates (merge preview and
//!   apply). [`status`]: go live, retire. [`proposals`]: local changes proposed back upstream.
//! - [`service`]: what they share (reads, the lineage row). [`changes`]: typed edits.
//!   [`merge`]: the keyed three-way merge.

pub mod changes;
pub mod graphql;
pub mod merge;
pub mod proposals;
pub mod revisions;
pub mod seed;
pub mod service;
pub mod status;
pub mod updates;
