//! Applications (DESIGN.md 6): citizens' drafts and submissions, reference numbers, routing to
//! departments as tasks, the workflow, the timeline, live status, GDPR export and erasure.

pub mod export;
pub mod graphql;
pub mod live;
pub mod rules;
pub mod service;
