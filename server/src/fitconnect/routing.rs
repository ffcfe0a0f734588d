//! Client of the FIT-Connect routing API 2.0.0 (`GET /routes?leikaKey=…&ags=…`): which
//! destination (Zustellpunkt) is responsible for a service (LeiKa key) in an area (AGS).
//!
//! Inputs are parsed first ([`LeikaKey`]; the tenant's AGS is already an [`Ags`]), so the API
//! sees only well-formed queries. Its answers map to our errors: `400` (the API refuses the
//! query) is `VALIDATION_FAILED` on `leikaKey` with the API's explanation, `429` is
//! `RATE_LIMITED` with its `RateLimit-Reset`, anything else unexpected (unreachable, `5xx`, a
//! body not of the documented shape or over [`MAX_BODY_BYTES`]) is an internal error with the
//! cause logged. The destination's signature (`destinationSignature`, a JWS by the FIT-Connect
//! portal) is passed on as it came; checking it is the sender's job.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::tenancy::types::Ags;

/// Largest routing answer read (500 routes with their texts stay far below).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Routes asked for in one call (the API's default; its maximum is 500).
pub const PAGE: u32 = 100;

/// A Leistungsschlüssel (formerly LeiKa key): `99` and 12 more digits, as the API requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeikaKey(String);

impl LeikaKey {
    pub fn parse(field: &str, raw: &str) -> AppResult<Self> {
        let s = raw.trim();
        if s.len() == 14 && s.starts_with("99") && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AppError::invalid(
                field,
                "must be a Leistungsschlüssel: 14 digits starting with 99",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One routing result: a destination and the authority behind it (the fields we use of the
/// API's `route`; the others are ignored).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub destination_id: uuid::Uuid,
    pub destination_signature: String,
    #[serde(default)]
    pub destination_name: Option<String>,
    #[serde(default)]
    pub destination_short_name: Option<String>,
    #[serde(default)]
    pub origin: Option<String>,
}

/// The API's `route-result`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteResult {
    pub count: u32,
    pub offset: u32,
    pub total_count: u32,
    pub routes: Vec<Route>,
}

/// RFC 7807 problem, as the API answers errors.
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// The routing API client (one per server; reqwest pools connections).
#[derive(Debug)]
pub struct RoutingClient {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl RoutingClient {
    /// `base` is the API's server URL, e.g. `https://routing-api-prod.fit-connect.fitko.net/v1/`.
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut base = reqwest::Url::parse(base)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base })
    }

    /// The destinations responsible for `leika` in the municipality `ags` (first [`PAGE`]).
    #[tracing::instrument(skip(self), fields(fit_connect.leika = leika.as_str(), fit_connect.ags = %ags))]
    pub async fn routes(&self, leika: &LeikaKey, ags: &Ags) -> AppResult<RouteResult> {
        let url = self
            .base
            .join("routes")
            .map_err(|e| AppError::internal("FIT-Connect routing URL", e))?;
        let mut resp = self
            .http
            .get(url)
            .query(&[
                ("leikaKey", leika.as_str()),
                ("ags", ags.as_ref()),
                ("offset", "0"),
                ("limit", &PAGE.to_string()),
            ])
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AppError::internal("calling the FIT-Connect routing API", e))?;
        let status = resp.status();
        let reset = resp
            .headers()
            .get("RateLimit-Reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| AppError::internal("reading the FIT-Connect routing answer", e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(AppError::internal(
                    "reading the FIT-Connect routing answer",
                    anyhow::anyhow!("over {MAX_BODY_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        match status.as_u16() {
            200 => serde_json::from_slice::<RouteResult>(&body)
                .map_err(|e| AppError::internal("reading the FIT-Connect routing answer", e)),
            400 => {
                let p: Problem = serde_json::from_slice(&body).unwrap_or_default();
                let why = p
                    .detail
                    .or(p.title)
                    .unwrap_or_else(|| "refused by the FIT-Connect routing API".to_owned());
                Err(AppError::invalid("leikaKey", truncate(&why, 300)))
            }
            429 => Err(AppError::RateLimited {
                retry_after_secs: reset.unwrap_or(60).clamp(1, 3600),
            }),
            other => Err(AppError::internal(
                "calling the FIT-Connect routing API",
                anyhow::anyhow!("HTTP {other}"),
            )),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leika_keys_are_fourteen_digits_starting_with_99() {
        assert!(LeikaKey::parse("k", "99123456760610").is_ok());
        assert!(LeikaKey::parse("k", " 99015003001000 ").is_ok());
        for bad in [
            "",
            "9912345676061",
            "991234567606100",
            "88123456760610",
            "99abc456760610",
        ] {
            assert!(
                matches!(LeikaKey::parse("k", bad), Err(AppError::Validation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_documented_route_result_parses() {
        let body = serde_json::json!({
            "count": 1, "offset": 0, "totalCount": 1,
            "routes": [{
                "destinationId": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "destinationSignature": "a.b.c",
                "destinationName": "Stadtverwaltung Musterstadt - Dezernat II - Einwohner:innenmeldeamt",
                "destinationShortName": "Einwohner:innenmeldeamt Musterstadt",
                "contactPersons": [{ "name": "Dr. Erika Muster" }],
                "origin": "PVOG"
            }]
        });
        let r: RouteResult = serde_json::from_value(body).unwrap();
        assert_eq!(r.routes[0].origin.as_deref(), Some("PVOG"));
    }
}
