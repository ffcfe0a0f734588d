//! Tenancy: tenants, departments, staff users, roles, memberships, declarative onboarding.

pub mod cache;
pub mod department_pages;
pub mod graphql;
pub mod loader;
pub mod onboarding;
pub mod service;
pub mod types;
