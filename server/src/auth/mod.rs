//! Authentication: staff passwords (Argon2id), our ES256 access tokens with rotating refresh
//! tokens, citizens' OIDC ID tokens, login rate limits.

pub mod assurance;
pub mod break_glass;
pub mod graphql;
pub mod oidc;
pub mod oidc_login;
pub mod password;
pub mod rate_limit;
pub mod revocation;
pub mod service;
pub mod sessions;
pub mod tokens;
