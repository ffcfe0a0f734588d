//! Applications (DESIGN.md 6): citizens' drafts and submissions, reference numbers, routing to
//! departments as tasks, the workflow, the timeline, live status, GDPR export and erasure.

pub mod access;
pub mod drafts;
pub mod export;
pub mod gdpr;
pub mod graphql;
pub mod http;
pub mod live;
pub mod mine;
pub mod pinned;
pub mod queries;
pub mod rules;
pub mod service;
pub mod submit;
pub mod timeline;
pub mod workflow;
