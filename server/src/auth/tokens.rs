//! Our access tokens: ES256 JWTs with `iss`, `aud`, `sub`, `exp`, `nbf` (all required on verify),
//! plus the tenant and roles. Only ES256 is accepted, so `alg=none` and HMAC tokens fail.
//! Refresh tokens are opaque (`<scope>.<id>.<secret>`), stored as SHA-256 of the secret.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::Role;
use crate::error::{AppError, AppResult};
use crate::settings::AuthSettings;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// Staff user or platform admin ID.
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// `staff` or `platform`.
    pub kind: String,
    /// The tenant a staff token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The session (refresh-token family) the token was issued in; checked on every request
    /// ([`super::sessions`]), so logout and revocation end the token at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The signing key pair and what verifiers need.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub kid: String,
    /// Public key as a JWK, served at `/.well-known/jwks.json`.
    pub public_jwk: serde_json::Value,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
    /// HMAC keyed with a hash of the signing key, for [`JwtKeys::derive_key`]: every replica
    /// shares the signing key, so keys derived from it agree across replicas.
    derive: hmac::Hmac<Sha256>,
    /// Tokens this key already verified, by their SHA-256 (see [`JwtKeys::verify`]).
    verified: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

/// Bound on remembered verified tokens; past it the memory starts over.
const MAX_VERIFIED: usize = 10_000;

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Loads the PKCS#8 PEM key at `path`, generating (and saving, mode 0600) one if it is missing.
    pub fn load_or_generate(path: &Path, auth: &AuthSettings) -> anyhow::Result<Self> {
        let pem = if path.exists() {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading signing key {}", path.display()))?
        } else {
            let key = generate_p256()?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            // Replicas starting at once on a shared folder all end up with the one key stored.
            crate::keyfile::create_private_once(path, &pem)
                .with_context(|| format!("creating signing key {}", path.display()))?
        };
        let secret = p256::SecretKey::from_pkcs8_pem(&pem).map_err(|e| {
            anyhow::anyhow!(
                "signing key {} is not a P-256 PKCS#8 PEM key: {e}",
                path.display()
            )
        })?;
        Self::from_secret(&secret, auth)
    }

    fn from_secret(secret: &p256::SecretKey, auth: &AuthSettings) -> anyhow::Result<Self> {
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).context("loading the ES256 signing key")?;
        let point = p256::EncodedPoint::from(secret.public_key());
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            anyhow::bail!("public key has no affine coordinates");
        };
        let (x, y) = (B64.encode(x), B64.encode(y));
        let decoding =
            DecodingKey::from_ec_components(&x, &y).context("loading the ES256 public key")?;
        let kid = B64.encode(Sha256::digest(format!("{x}.{y}")))[..16].to_owned();
        let public_jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": kid,
        });
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&auth.issuer]);
        validation.set_audience(&[&auth.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self {
            encoding,
            decoding,
            kid,
            public_jwk,
            validation,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            ttl_secs: i64::try_from(auth.access_token_ttl_secs).unwrap_or(900),
            derive: <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&Sha256::digest(
                secret.to_bytes(),
            ))
            .map_err(|_| anyhow::anyhow!("deriving keys from the signing key"))?,
            verified: Mutex::default(),
        })
    }

    /// A 32-byte key for `purpose` (e.g. signing booking challenges), derived from the signing
    /// key with HMAC-SHA256 so no two purposes share a key and none reveals the signing key.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = self.derive.clone();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs an access token; returns it with its expiry.
    pub fn issue(
        &self,
        kind: &str,
        subject: String,
        tenant: Option<String>,
        roles: Vec<Role>,
        session: uuid::Uuid,
    ) -> AppResult<(String, chrono::DateTime<chrono::Utc>)> {
        let now = chrono::Utc::now();
        let exp = now + chrono::Duration::seconds(self.ttl_secs);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject,
            exp: exp.timestamp(),
            nbf: now.timestamp(),
            iat: now.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_owned(),
            tenant,
            roles,
            sid: Some(session.to_string()),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AppError::internal("signing an access token", e))?;
        Ok((token, exp))
    }

    /// Verifies signature, algorithm, `iss`, `aud`, `exp`, `nbf`; every failure is `UNAUTHENTICATED`.
    ///
    /// A staff member sends the same token with every request for its lifetime, and checking its
    /// ES256 signature costs more than the rest of a typical request (about 0.5 ms). So a token
    /// that passed is remembered by its SHA-256 (the same bytes under the same key verify the
    /// same way) and answers from memory while `nbf <= now < exp`, stricter than the full check's
    /// leeway; outside that window it takes the full check again. Revocation is not this
    /// function's: the session check runs on every request.
    pub fn verify(&self, token: &str) -> AppResult<AccessClaims> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Ok(verified) = self.verified.lock()
            && let Some(claims) = verified.get(&digest)
            && claims.nbf <= now
            && now < claims.exp
        {
            return Ok(claims.clone());
        }
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(auth.reject = %e, "access token rejected");
                AppError::Unauthenticated
            })?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(digest, claims.clone());
        }
        Ok(claims)
    }
}

fn generate_p256() -> anyhow::Result<p256::SecretKey> {
    // A random 32-byte scalar is a valid key except with negligible probability; retry then.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    anyhow::bail!("could not generate a P-256 key")
}

/// Reads the unverified `iss` of a JWT, only to choose which verifier to use.
pub fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// A new random secret for a refresh token (256 bits, base64url).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// Hex SHA-256 of a refresh token secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time string comparison (for hashes of secrets).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(&generate_p256().expect("key"), &AuthSettings::default())
            .expect("keys")
    }

    #[test]
    fn a_token_round_trips_and_others_keys_fail() {
        let k = keys();
        let (token, _) = k
            .issue(
                "staff",
                "u1".into(),
                Some("t1".into()),
                vec![Role::TenantAdmin],
                uuid::Uuid::nil(),
            )
            .expect("issue");
        let claims = k.verify(&token).expect("verify");
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.roles, vec![Role::TenantAdmin]);
        assert_eq!(peek_issuer(&token).as_deref(), Some("amtsplatz"));
        assert!(
            keys().verify(&token).is_err(),
            "a token signed by another key must fail"
        );
    }

    #[test]
    fn a_remembered_token_answers_only_while_it_is_valid_and_only_for_its_own_bytes() {
        let k = keys();
        let (token, _) = k
            .issue("staff", "u1".into(), None, vec![], uuid::Uuid::nil())
            .expect("issue");
        assert_eq!(k.verify(&token).expect("verify").sub, "u1");
        assert_eq!(k.verified.lock().unwrap().len(), 1, "remembered");
        assert_eq!(k.verify(&token).expect("from memory").sub, "u1");

        // Another token's bytes never hit: one changed signature character fails.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(k.verify(std::str::from_utf8(&forged).unwrap()).is_err());

        // Once its time is up, memory does not answer: the full check (with a forged
        // signature here, so it must fail) decides.
        let digest: [u8; 32] = Sha256::digest(forged.as_slice()).into();
        let mut expired = k.verify(&token).unwrap();
        expired.exp = chrono::Utc::now().timestamp() - 1;
        k.verified.lock().unwrap().insert(digest, expired.clone());
        assert!(k.verify(std::str::from_utf8(&forged).unwrap()).is_err());
        // Nor before `nbf`.
        expired.exp = chrono::Utc::now().timestamp() + 600;
        expired.nbf = chrono::Utc::now().timestamp() + 300;
        k.verified.lock().unwrap().insert(digest, expired);
        assert!(k.verify(std::str::from_utf8(&forged).unwrap()).is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
