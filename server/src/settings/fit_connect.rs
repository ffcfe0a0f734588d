//! FIT-Connect's settings: the routing and Submission APIs, the token endpoint, and how the
//! destination's answers are followed.

use serde::Deserialize;

use super::{ConfigError, bad, http_url};

/// FIT-Connect, the federal route of applications to back-office systems.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConnectSettings {
    /// `AMTSPLATZ_FIT_CONNECT__ROUTING_API`: the routing API's server URL (default: production;
    /// FITKO's test environment is `https://routing-api-testing.fit-connect.fitko.dev/v1/`).
    pub routing_api: String,
    /// `AMTSPLATZ_FIT_CONNECT__SUBMISSION_API`: the Submission API's server URL, ending in
    /// `/v1/` (FITKO's test environment: `https://submission-api-testing.fit-connect.fitko.dev/v1/`).
    /// Its origin is also the issuer of the events the API itself signs, with its keys at
    /// `/.well-known/jwks.json`.
    pub submission_api: String,
    /// `AMTSPLATZ_FIT_CONNECT__TOKEN_URL`: the OAuth 2 token endpoint senders authenticate at
    /// (client credentials; test environment: `https://auth-testing.fit-connect.fitko.dev/token`).
    pub token_url: String,
    /// `AMTSPLATZ_FIT_CONNECT__TIMEOUT_SECS`: longest wait for a FIT-Connect API.
    pub timeout_secs: u64,
    /// `AMTSPLATZ_FIT_CONNECT__EVENTS_POLL_SECS`: how often a submitted application's events are
    /// read until the destination accepts or rejects it.
    pub events_poll_secs: u64,
    /// `AMTSPLATZ_FIT_CONNECT__EVENTS_FOLLOW_DAYS`: how long a destination may take to answer
    /// before the hand-over is marked as unanswered.
    pub events_follow_days: u64,
}

impl Default for FitConnectSettings {
    fn default() -> Self {
        Self {
            routing_api: "https://routing-api-prod.fit-connect.fitko.net/v1/".into(),
            submission_api: "https://submission-api-prod.fit-connect.fitko.net/v1/".into(),
            token_url: "https://auth-prod.fit-connect.fitko.net/token".into(),
            timeout_secs: 10,
            events_poll_secs: 300,
            events_follow_days: 30,
        }
    }
}

impl FitConnectSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let f = self;
        for (url, key, env) in [
            (
                &f.routing_api,
                "fit_connect.routing_api",
                "AMTSPLATZ_FIT_CONNECT__ROUTING_API",
            ),
            (
                &f.submission_api,
                "fit_connect.submission_api",
                "AMTSPLATZ_FIT_CONNECT__SUBMISSION_API",
            ),
            (
                &f.token_url,
                "fit_connect.token_url",
                "AMTSPLATZ_FIT_CONNECT__TOKEN_URL",
            ),
        ] {
            if !http_url(url) {
                return Err(bad(key, env, "must be an http(s) URL"));
            }
        }
        if f.events_poll_secs == 0 || f.events_follow_days == 0 {
            return Err(bad(
                "fit_connect.events_poll_secs",
                "AMTSPLATZ_FIT_CONNECT__EVENTS_POLL_SECS",
                "must be at least 1 (and events_follow_days too)",
            ));
        }
        if f.timeout_secs == 0 {
            return Err(bad(
                "fit_connect.timeout_secs",
                "AMTSPLATZ_FIT_CONNECT__TIMEOUT_SECS",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
