//! FIT-Connect, the federal infrastructure that carries applications to the responsible
//! authority's back-office system (Fachverfahren).
//!
//! - [`routing`]: finding the responsible destination by LeiKa key and the municipality's AGS
//!   (routing API 2.0.0).
//! - [`handover`]: which services hand their applications over, to which destination, as which
//!   API client; queued in the submission's transaction.
//! - [`sender`]: the outbox courier that hands an application over ([`client`]: Submission API;
//!   [`jwe`]: encryption to the destination's key; [`metadata`]: schema 1.0.0) and follows the
//!   destination's signed answer ([`events`]).
//! - [`graphql`]: the administrators' and staff's side of it.

pub mod client;
pub mod events;
pub mod graphql;
pub mod handover;
pub mod jwe;
pub mod metadata;
pub mod routing;
pub mod sender;
