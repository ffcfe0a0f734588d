//! FIT-Connect, the federal infrastructure that carries applications to the responsible
//! authority's back-office system (Fachverfahren).
//!
//! So far: [`routing`], finding the responsible authority's destination by LeiKa key and the
//! municipality's AGS through the routing API (OpenAPI 2.0.0), and [`graphql`], which offers
//! that to tenant administrators; [`metadata`], the submission metadata (schema 1.0.0). The
//! sender itself (submission API, JWE encryption, events) is not built yet.

pub mod graphql;
pub mod metadata;
pub mod routing;
