//! Citizen sign-in: ID tokens from the tenant's OIDC provider (e.g. BundID / Servicekonto via
//! Keycloak), verified against the provider's JWKS. Keys are cached; an unknown `kid` triggers
//! one refetch (key rotation), at most once per cooldown (`auth.jwks_refetch_cooldown_secs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::tenancy::types::OidcSettings;

const CACHE_TTL: Duration = Duration::from_secs(600);
/// Asymmetric algorithms only: an HMAC "signature" with the public key as secret is the classic attack.
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The claims we read from an ID token.
/// At most this many keys are tried for a token without `kid` (a provider publishes a few).
const MAX_KEYS_TRIED: usize = 8;

/// Whether `jwk` is a signing key of the family `alg` belongs to (and of `alg` itself, if the
/// key names one).
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, PublicKeyUse};
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{alg:?}")
    {
        return false;
    }
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(_) => {
            matches!(alg, Algorithm::ES256 | Algorithm::ES384)
        }
        AlgorithmParameters::OctetKeyPair(_) => alg == Algorithm::EdDSA,
        // Symmetric keys never verify an ID token here (see ALLOWED), nor do kinds unknown yet.
        _ => false,
    }
}

/// The claims of `token` as verified by the first fitting key of `set` that accepts it.
fn verify_with_any(
    token: &str,
    set: &JwkSet,
    alg: Algorithm,
    validation: &Validation,
) -> Option<IdClaims> {
    set.keys
        .iter()
        .filter(|jwk| fits(jwk, alg))
        .take(MAX_KEYS_TRIED)
        .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
        .find_map(|key| jsonwebtoken::decode::<IdClaims>(token, &key, validation).ok())
        .map(|data| data.claims)
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Every other claim: the broker-specific ones (assurance level, bPK2, postbox handle) are
    /// read from here by [`super::assurance::BrokerClaims::read`].
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

struct Cached {
    set: JwkSet,
    fetched_at: Instant,
}

pub struct OidcVerifier {
    http: reqwest::Client,
    allow_http: bool,
    refetch_cooldown: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

/// The HTTP client for an identity provider: short timeouts, and no redirects — requests go
/// where the configuration says, never where a response points (SSRF).
pub(super) fn provider_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Whether `url` may be fetched: https, or plain http to loopback where tests allow it.
pub(super) fn fetchable(url: &reqwest::Url, allow_http: bool) -> bool {
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    url.scheme() == "https" || (allow_http && loopback)
}

fn cache_poisoned() -> AppError {
    AppError::internal("JWKS cache", anyhow::anyhow!("lock poisoned"))
}

fn reject(why: impl std::fmt::Display) -> AppError {
    tracing::debug!(auth.reject = %why, "ID token rejected");
    AppError::Unauthenticated
}

impl OidcVerifier {
    pub fn new(allow_http: bool, refetch_cooldown: Duration) -> anyhow::Result<Self> {
        let http = provider_client()?;
        Ok(Self {
            http,
            allow_http,
            refetch_cooldown,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies an ID token for the tenant's provider: signature by a JWKS key, `iss`, `aud`
    /// (the client ID; a string or an array naming it), `exp`, `nbf` when present, `sub`.
    pub async fn verify(&self, token: &str, cfg: &OidcSettings) -> AppResult<IdClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(reject)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(reject(format!("algorithm {:?} not allowed", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let Some(kid) = header.kid.as_deref() else {
            // No `kid` (allowed by the spec; some providers omit it): the keys of the set that
            // fit the algorithm are tried. A signer not among them refetches the set once, as
            // an unknown `kid` does.
            let set = self.cached_set(&cfg.jwks_url, false).await?;
            if let Some(claims) = verify_with_any(token, &set, header.alg, &validation) {
                return Ok(claims);
            }
            let set = self.cached_set(&cfg.jwks_url, true).await?;
            return verify_with_any(token, &set, header.alg, &validation)
                .ok_or_else(|| reject("no key of the set verifies the token"));
        };
        let jwk = match self.cached_set(&cfg.jwks_url, false).await?.find(kid) {
            Some(jwk) => jwk.clone(),
            None => self
                .cached_set(&cfg.jwks_url, true)
                .await?
                .find(kid)
                .cloned()
                .ok_or_else(|| reject("unknown kid"))?,
        };
        if !fits(&jwk, header.alg) {
            return Err(reject("algorithm does not match the key"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(reject)?;
        let data = jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(reject)?;
        Ok(data.claims)
    }

    /// The provider's key set from the cache; with `refresh`, refetches first (rate-limited).
    async fn cached_set(&self, url: &str, refresh: bool) -> AppResult<JwkSet> {
        {
            // A cached set answers while it is fresh; a refetch for an unknown signer waits out
            // the cooldown, so a flood of tokens with made-up kids cannot hammer the provider.
            let cache = self.cache.lock().map_err(|_| cache_poisoned())?;
            if let Some(c) = cache.get(url) {
                let max_age = if refresh {
                    self.refetch_cooldown
                } else {
                    CACHE_TTL
                };
                if c.fetched_at.elapsed() < max_age {
                    return Ok(c.set.clone());
                }
            }
        }
        let set = self.fetch(url).await?;
        let mut cache = self.cache.lock().map_err(|_| cache_poisoned())?;
        cache.insert(
            url.to_owned(),
            Cached {
                set: set.clone(),
                fetched_at: Instant::now(),
            },
        );
        Ok(set)
    }

    async fn fetch(&self, url: &str) -> AppResult<JwkSet> {
        let parsed = reqwest::Url::parse(url).map_err(|_| reject("JWKS URL invalid"))?;
        if !fetchable(&parsed, self.allow_http) {
            return Err(reject("JWKS URL must use https"));
        }
        let resp = self.http.get(parsed).send().await.map_err(|e| {
            tracing::warn!(oidc.jwks_url = url, error = %e, "fetching JWKS failed");
            AppError::Unauthenticated
        })?;
        if !resp.status().is_success() {
            tracing::warn!(oidc.jwks_url = url, status = %resp.status(), "JWKS endpoint answered an error");
            return Err(AppError::Unauthenticated);
        }
        resp.json::<JwkSet>().await.map_err(|e| {
            tracing::warn!(oidc.jwks_url = url, error = %e, "JWKS is not a valid key set");
            AppError::Unauthenticated
        })
    }
}
