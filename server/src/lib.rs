//! Amtsplatz server library. Read in this order: [`settings`], [`startup`], [`schema`] and
//! [`routes`] (how the server is put together), [`http`] (how a request becomes a
//! [`context::RequestCtx`]), [`graphql`] (what every domain's GraphQL shares), [`content`] (the
//! service content model), then one folder per domain: [`tenancy`], [`auth`], [`audit`],
//! [`marketplace`], [`services`], [`applications`], [`attachments`] (with [`storage`]),
//! [`messaging`]; the pages in [`web`] sit on top of the GraphQL schema. Which layer may import which: README.md, "Code layout".

pub mod applications;
pub mod appointments;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod content;
pub mod context;
pub mod db;
pub mod error;
pub mod fitconnect;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod keyfile;
pub mod marketplace;
pub mod memo;
pub mod messaging;
pub mod metrics;
pub mod payments;
pub mod routes;
pub mod schema;
pub mod services;
pub mod settings;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tenancy;
pub mod web;
