//! Client of the FIT-Connect Submission API (v1) for senders: OAuth 2 client credentials at the
//! token endpoint, the destination and its keys, creating a submission, uploading encrypted
//! attachments, submitting encrypted data and metadata, and reading a case's event log.
//!
//! Errors say whether retrying can help ([`CallError::permanent`]): unreachable, `5xx`, `429`
//! and a refused token (`401`, after which the cached token is dropped) can; any other `4xx`
//! (the API refuses what we sent, or the destination does not exist) cannot. Answers are read up
//! to [`MAX_BODY_BYTES`]. No redirects are followed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::jwe::Jwk;

/// Largest answer read (an event log of a busy case stays far below).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A failed call.
#[derive(Debug)]
pub struct CallError {
    pub message: String,
    /// Whether retrying cannot help.
    pub permanent: bool,
}

impl CallError {
    fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
}

type CallResult<T> = Result<T, CallError>;

/// A destination as the API describes it (the fields a sender uses).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub destination_id: Uuid,
    #[serde(default)]
    pub status: Option<String>,
    pub encryption_kid: String,
    #[serde(default)]
    pub services: Vec<DestinationService>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationService {
    pub identifier: String,
    #[serde(default)]
    pub submission_schemas: Vec<SubmissionSchema>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmissionSchema {
    pub schema_uri: String,
    #[serde(default)]
    pub mime_type: Option<String>,
}

/// The API's answer to creating a submission.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub submission_id: Uuid,
    pub case_id: Uuid,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventLog {
    #[serde(default)]
    event_log: Vec<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The Submission API client (one per server; reqwest pools connections).
#[derive(Debug)]
pub struct SubmissionClient {
    http: reqwest::Client,
    api: reqwest::Url,
    token_url: reqwest::Url,
    /// Access tokens per client id, until shortly before they expire.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl SubmissionClient {
    pub fn new(api: &str, token_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut api = reqwest::Url::parse(api)?;
        if !api.path().ends_with('/') {
            let path = format!("{}/", api.path());
            api.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            api,
            token_url: reqwest::Url::parse(token_url)?,
            tokens: Mutex::default(),
        })
    }

    /// The issuer of the events the API signs itself: its origin.
    pub fn issuer(&self) -> String {
        self.api.origin().ascii_serialization()
    }

    /// An access token of client `client_id` (cached until a minute before it expires).
    pub async fn token(&self, client_id: &str, secret: &SecretString) -> CallResult<String> {
        if let Some((token, until)) = self.lock_tokens()?.get(client_id)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| CallError::retry(format!("token endpoint unreachable: {e}")))?;
        let answer: TokenAnswer = read_json(resp, "token endpoint").await?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(300).saturating_sub(60));
        self.lock_tokens()?.insert(
            client_id.to_owned(),
            (answer.access_token.clone(), Instant::now() + lifetime),
        );
        Ok(answer.access_token)
    }

    /// Forgets client `client_id`'s token (the API refused it).
    pub fn forget_token(&self, client_id: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(client_id);
        }
    }

    fn lock_tokens(
        &self,
    ) -> CallResult<std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>>> {
        self.tokens
            .lock()
            .map_err(|_| CallError::retry("token cache poisoned"))
    }

    fn url(&self, path: &str) -> CallResult<reqwest::Url> {
        self.api
            .join(path)
            .map_err(|e| CallError::retry(format!("Submission API URL: {e}")))
    }

    pub async fn destination(&self, token: &str, id: Uuid) -> CallResult<Destination> {
        let resp = self
            .http
            .get(self.url(&format!("destinations/{id}"))?)
            .bearer_auth(token)
            .send()
            .await
            .map_err(unreachable)?;
        read_json(resp, "reading the destination").await
    }

    /// The destination's key `kid`: its encryption key, or the signature key of its answers.
    pub async fn destination_key(
        &self,
        token: &str,
        destination: Uuid,
        kid: &str,
    ) -> CallResult<Jwk> {
        let resp = self
            .http
            .get(self.url(&format!(
                "destinations/{destination}/keys/{}",
                path_segment(kid)
            ))?)
            .bearer_auth(token)
            .send()
            .await
            .map_err(unreachable)?;
        read_json(resp, "reading the destination's key").await
    }

    /// The API's own signature keys (`/.well-known/jwks.json` at its origin).
    pub async fn api_keys(&self) -> CallResult<Vec<Jwk>> {
        let resp = self
            .http
            .get(self.url("/.well-known/jwks.json")?)
            .send()
            .await
            .map_err(unreachable)?;
        let jwks: Jwks = read_json(resp, "reading the Submission API's keys").await?;
        Ok(jwks.keys)
    }

    /// Announces a submission with its attachments' ids.
    pub async fn create_submission(
        &self,
        token: &str,
        destination: Uuid,
        service_name: &str,
        service_identifier: &str,
        attachments: &[Uuid],
    ) -> CallResult<Created> {
        let resp = self
            .http
            .post(self.url("submissions")?)
            .bearer_auth(token)
            .json(&json!({
                "destinationId": destination,
                "announcedAttachments": attachments,
                "serviceType": { "name": service_name, "identifier": service_identifier },
            }))
            .send()
            .await
            .map_err(unreachable)?;
        read_json(resp, "creating the submission").await
    }

    /// Uploads one encrypted attachment (JWE compact serialization).
    pub async fn upload_attachment(
        &self,
        token: &str,
        submission: Uuid,
        attachment: Uuid,
        jwe: String,
    ) -> CallResult<()> {
        let resp = self
            .http
            .put(self.url(&format!(
                "submissions/{submission}/attachments/{attachment}"
            ))?)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/jose")
            .body(jwe)
            .send()
            .await
            .map_err(unreachable)?;
        expect_success(resp, "uploading an attachment").await
    }

    /// Submits the encrypted metadata and data. `Ok(false)`: it was submitted before (a retry
    /// after an answer that did not arrive).
    pub async fn submit(
        &self,
        token: &str,
        submission: Uuid,
        encrypted_metadata: &str,
        encrypted_data: &str,
    ) -> CallResult<bool> {
        let resp = self
            .http
            .put(self.url(&format!("submissions/{submission}"))?)
            .bearer_auth(token)
            .json(&json!({
                "encryptedMetadata": encrypted_metadata,
                "encryptedData": encrypted_data,
            }))
            .send()
            .await
            .map_err(unreachable)?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Ok(false);
        }
        expect_success(resp, "submitting").await.map(|()| true)
    }

    /// The case's event log: security event tokens (signed JWTs), oldest first.
    pub async fn events(&self, token: &str, case: Uuid) -> CallResult<Vec<String>> {
        let resp = self
            .http
            .get(self.url(&format!("cases/{case}/events"))?)
            .query(&[("limit", "500"), ("offset", "0")])
            .bearer_auth(token)
            .send()
            .await
            .map_err(unreachable)?;
        let log: EventLog = read_json(resp, "reading the event log").await?;
        Ok(log.event_log)
    }
}

fn unreachable(e: reqwest::Error) -> CallError {
    CallError::retry(format!("Submission API unreachable: {e}"))
}

/// A key id as one path segment (ids are opaque strings).
fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn read_body(mut resp: reqwest::Response, what: &str) -> CallResult<(u16, Vec<u8>)> {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CallError::retry(format!("{what}: reading the answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(CallError::retry(format!(
                "{what}: answer over {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The error for a non-success status: the problem's title and detail (RFC 7807) if any.
fn status_error(what: &str, status: u16, body: &[u8]) -> CallError {
    let problem: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = ["title", "detail"]
        .iter()
        .filter_map(|k| problem.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(": ");
    let text: String = text.chars().take(300).collect();
    CallError {
        message: format!("{what}: HTTP {status} {text}")
            .trim_end()
            .to_owned(),
        permanent: (400..500).contains(&status) && !matches!(status, 401 | 408 | 429),
    }
}

async fn read_json<T: DeserializeOwned>(resp: reqwest::Response, what: &str) -> CallResult<T> {
    let (status, body) = read_body(resp, what).await?;
    if !(200..300).contains(&status) {
        return Err(status_error(what, status, &body));
    }
    serde_json::from_slice(&body).map_err(|e| CallError {
        message: format!("{what}: an answer not of the documented shape: {e}"),
        permanent: false,
    })
}

async fn expect_success(resp: reqwest::Response, what: &str) -> CallResult<()> {
    let (status, body) = read_body(resp, what).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(status_error(what, status, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_that_retrying_cannot_change_are_permanent() {
        for (status, permanent) in [
            (400, true),
            (403, true),
            (404, true),
            (422, true),
            (401, false),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
        ] {
            assert_eq!(
                status_error("x", status, b"").permanent,
                permanent,
                "{status}"
            );
        }
        let e = status_error(
            "creating the submission",
            422,
            br#"{"title":"Unprocessable","detail":"unknown service"}"#,
        );
        assert_eq!(
            e.message,
            "creating the submission: HTTP 422 Unprocessable: unknown service"
        );
    }
}
