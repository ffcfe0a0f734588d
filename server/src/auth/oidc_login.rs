//! The relying party's side of citizen sign-in, for the portal: the tenant's provider found by
//! OpenID Connect discovery (cached), the authorization URL with PKCE (S256), `state` and
//! `nonce`, and the code exchanged for an ID token whose signature, issuer, audience, expiry and
//! nonce `openidconnect` checks. The ID token is then what the citizen's requests carry, checked
//! again on each by [`super::oidc::OidcVerifier`] like any API client's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse as _,
};

use crate::error::{AppError, AppResult};
use crate::tenancy::types::OidcSettings;

/// A client made from discovery: authorization URL set, token URL maybe (providers publish it).
type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// How long a provider's discovery document is trusted.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// What the browser must bring back to finish a sign-in (kept in a cookie of the sign-in
/// path): the `state` to compare, the nonce the ID token must carry, the PKCE verifier.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// Where to send the browser, and what to keep until it comes back.
pub struct Started {
    pub authorize_url: String,
    pub pending: Pending,
}

pub struct OidcLogin {
    http: reqwest::Client,
    allow_http: bool,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin").finish_non_exhaustive()
    }
}

/// The provider could not be reached or answered nonsense: sign-in is not possible now.
fn provider_failed(what: &str, err: impl std::fmt::Display) -> AppError {
    tracing::warn!(error = %err, "{what}");
    AppError::internal(
        "identity provider",
        anyhow::anyhow!("{what}: the provider did not answer as expected"),
    )
}

/// A sign-in that cannot be completed by what the browser brought (wrong state, a code the
/// provider refuses, an ID token that fails a check): start again.
fn refused(why: impl std::fmt::Display) -> AppError {
    tracing::info!(auth.reject = %why, "citizen sign-in refused");
    AppError::Unauthenticated
}

impl OidcLogin {
    pub fn new(allow_http: bool) -> anyhow::Result<Self> {
        let http = super::oidc::provider_client()?;
        Ok(Self {
            http,
            allow_http,
            metadata: Mutex::new(HashMap::new()),
        })
    }

    /// The tenant's provider as it describes itself at
    /// `<issuer>/.well-known/openid-configuration`.
    async fn provider(&self, issuer: &str) -> AppResult<CoreProviderMetadata> {
        if let Ok(cache) = self.metadata.lock()
            && let Some((at, m)) = cache.get(issuer)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let url = reqwest::Url::parse(issuer).map_err(|e| provider_failed("issuer URL", e))?;
        if !super::oidc::fetchable(&url, self.allow_http) {
            return Err(provider_failed("issuer URL", "must use https"));
        }
        let issuer_url =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| provider_failed("issuer URL", e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer_url, &self.http)
            .await
            .map_err(|e| provider_failed("OpenID Connect discovery", e))?;
        if let Ok(mut cache) = self.metadata.lock() {
            cache.insert(issuer.to_owned(), (Instant::now(), metadata.clone()));
        }
        Ok(metadata)
    }

    /// Our client at the tenant's provider, sending the browser back to `redirect`.
    async fn client(&self, cfg: &OidcSettings, redirect: &str) -> AppResult<Client> {
        let metadata = self.provider(&cfg.issuer).await?;
        let redirect =
            RedirectUrl::new(redirect.to_owned()).map_err(|e| provider_failed("redirect", e))?;
        Ok(
            CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(cfg.client_id.clone()),
                None,
            )
            .set_redirect_uri(redirect),
        )
    }

    /// Starts a sign-in: the provider's authorization URL for `redirect` (our callback), asking
    /// for `openid profile email`, with a fresh state, nonce and PKCE challenge.
    pub async fn start(&self, cfg: &OidcSettings, redirect: &str) -> AppResult<Started> {
        let client = self.client(cfg, redirect).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            authorize_url: url.to_string(),
            pending: Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
            },
        })
    }

    /// Finishes a sign-in: `code` exchanged (with the PKCE verifier) for an ID token, which must
    /// verify and carry the pending nonce. Answers the raw ID token and when it expires.
    pub async fn finish(
        &self,
        cfg: &OidcSettings,
        redirect: &str,
        code: &str,
        pending: &Pending,
    ) -> AppResult<(String, chrono::DateTime<chrono::Utc>)> {
        let client = self.client(cfg, redirect).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| provider_failed("token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(refused)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| refused("the token response has no ID token"))?;
        // The asymmetric algorithms the API accepts as well (see `super::oidc`).
        let verifier = client.id_token_verifier().set_allowed_algs([
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha384,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
            CoreJwsSigningAlgorithm::EdDsa,
        ]);
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(refused)?;
        Ok((id_token.to_string(), claims.expiration()))
    }
}
