//! A case's events, as the Submission API's event log holds them: security event tokens (SET,
//! RFC 8417) signed with PS512. Events of the API itself (`submit-submission`, …) are signed
//! with the API's keys and name its origin as issuer; the destination's answers
//! (`accept-submission`, `reject-submission`) are signed with the destination's signature key
//! and name the destination as issuer. An event counts only when its signature checks out with
//! the key its issuer may use, and it is about this submission and case; any other is ignored
//! (and logged), so nobody but the destination can accept or reject a submission.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::jwe::Jwk;

pub const SUBMIT: &str = "https://schema.fitko.de/fit-connect/events/submit-submission";
pub const ACCEPT: &str = "https://schema.fitko.de/fit-connect/events/accept-submission";
pub const REJECT: &str = "https://schema.fitko.de/fit-connect/events/reject-submission";

/// What a verified event says.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The destination accepted the submission; the authentication tags it names for what it
    /// received (`{data, metadata, attachments: {id: tag}}`).
    Accepted { authentication_tags: Option<Value> },
    /// The destination rejected it, with its problems.
    Rejected { problems: Value },
    /// Any other event (submitted, forwarded, …).
    Other(String),
}

#[derive(Debug, Deserialize)]
struct Payload {
    iss: String,
    sub: String,
    txn: String,
    events: serde_json::Map<String, Value>,
}

/// Who signed an event, read before the signature is checked (to pick the key).
#[derive(Debug, PartialEq, Eq)]
pub enum Signer {
    /// The destination, with the key id it used.
    Destination(String),
    /// The Submission API, with the key id it used.
    Api(String),
}

/// Reads the header and issuer of `token` to pick the key: `destination` or the API's
/// `api_issuer`. Anything else (another algorithm, issuer or token type) is an error.
pub fn signer(token: &str, destination: Uuid, api_issuer: &str) -> anyhow::Result<Signer> {
    let header = jsonwebtoken::decode_header(token)?;
    anyhow::ensure!(
        header.alg == Algorithm::PS512,
        "not PS512 but {:?}",
        header.alg
    );
    anyhow::ensure!(
        header.typ.as_deref() == Some("secevent+jwt"),
        "not a security event token ({:?})",
        header.typ
    );
    let kid = header.kid.ok_or_else(|| anyhow::anyhow!("no key id"))?;
    let payload = jsonwebtoken::dangerous::insecure_decode::<Payload>(token)?.claims;
    if payload.iss == destination.to_string() {
        Ok(Signer::Destination(kid))
    } else if payload.iss == api_issuer {
        Ok(Signer::Api(kid))
    } else {
        anyhow::bail!(
            "issued by {}, neither the destination nor the API",
            payload.iss
        )
    }
}

/// Checks `token`'s signature with `key` (which must be an RSA key meant for verifying) and
/// that it is about `submission` in `case`; returns what it says.
pub fn verify(token: &str, key: &Jwk, submission: Uuid, case: Uuid) -> anyhow::Result<Verdict> {
    anyhow::ensure!(key.kty == "RSA", "the signature key is not an RSA key");
    anyhow::ensure!(
        key.alg.as_deref().is_none_or(|a| a == "PS512"),
        "the signature key is for {:?}",
        key.alg
    );
    anyhow::ensure!(
        key.key_ops.is_empty() || key.key_ops.iter().any(|op| op == "verify"),
        "the key is not for verifying"
    );
    let decoding = DecodingKey::from_rsa_components(&key.n, &key.e)?;
    let mut validation = Validation::new(Algorithm::PS512);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = ["iat", "iss", "sub"].map(String::from).into();
    let payload: Payload = jsonwebtoken::decode(token, &decoding, &validation)?.claims;
    anyhow::ensure!(
        payload.sub == format!("submission:{submission}"),
        "about {}, not this submission",
        payload.sub
    );
    anyhow::ensure!(
        payload.txn == format!("case:{case}"),
        "in {}, not this case",
        payload.txn
    );
    let (uri, body) = payload
        .events
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    Ok(match uri.as_str() {
        ACCEPT => Verdict::Accepted {
            authentication_tags: body.get("authenticationTags").cloned(),
        },
        REJECT => Verdict::Rejected {
            problems: body
                .get("problems")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
        },
        _ => Verdict::Other(uri),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    use serde_json::json;

    const API: &str = "https://submission-api-testing.fit-connect.fitko.dev";

    fn key() -> &'static rsa::RsaPrivateKey {
        static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            rsa::RsaPrivateKey::new(&mut aes_gcm::aead::OsRng, 2048).expect("an RSA key")
        })
    }

    fn jwk() -> Jwk {
        Jwk {
            kty: "RSA".into(),
            kid: "sig".into(),
            alg: Some("PS512".into()),
            key_ops: vec!["verify".into()],
            n: B64.encode(key().n().to_bytes_be()),
            e: B64.encode(key().e().to_bytes_be()),
        }
    }

    fn sign(iss: &str, sub: Uuid, case: Uuid, event: &str, body: Value) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::PS512);
        header.typ = Some("secevent+jwt".into());
        header.kid = Some("sig".into());
        let claims = json!({
            "iss": iss, "iat": 1_764_800_000, "jti": Uuid::new_v4(),
            "sub": format!("submission:{sub}"), "txn": format!("case:{case}"),
            "events": { event: body },
        });
        let pem = key().to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).expect("PEM");
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("key");
        jsonwebtoken::encode(&header, &claims, &encoding).expect("signed")
    }

    #[test]
    fn the_destinations_answers_verify_and_say_what_they_mean() {
        let (dest, sub, case) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let tags = json!({ "data": "a", "metadata": "b", "attachments": {} });
        let accept = sign(
            &dest.to_string(),
            sub,
            case,
            ACCEPT,
            json!({ "problems": [], "authenticationTags": tags }),
        );
        assert_eq!(
            signer(&accept, dest, API).unwrap(),
            Signer::Destination("sig".into())
        );
        assert_eq!(
            verify(&accept, &jwk(), sub, case).unwrap(),
            Verdict::Accepted {
                authentication_tags: Some(tags)
            }
        );
        let reject = sign(
            &dest.to_string(),
            sub,
            case,
            REJECT,
            json!({ "problems": [{ "title": "x" }] }),
        );
        assert_eq!(
            verify(&reject, &jwk(), sub, case).unwrap(),
            Verdict::Rejected {
                problems: json!([{ "title": "x" }])
            }
        );
        let submitted = sign(API, sub, case, SUBMIT, json!({}));
        assert_eq!(
            signer(&submitted, dest, API).unwrap(),
            Signer::Api("sig".into())
        );
        // About another submission or case, or from a stranger: refused.
        assert!(verify(&accept, &jwk(), Uuid::new_v4(), case).is_err());
        assert!(verify(&accept, &jwk(), sub, Uuid::new_v4()).is_err());
        let stranger = sign("https://evil.example", sub, case, ACCEPT, json!({}));
        assert!(signer(&stranger, dest, API).is_err());
        // A key not meant for verifying is not used.
        let mut wrap = jwk();
        wrap.key_ops = vec!["wrapKey".into()];
        assert!(verify(&accept, &wrap, sub, case).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// One changed character anywhere in a signed event and it no longer verifies.
        #[test]
        fn a_changed_event_never_verifies(at in 0usize..600, with in proptest::sample::select(vec!['A', 'b', '-', '_', '0', '.'])) {
            let (dest, sub, case) = (Uuid::nil(), Uuid::from_u128(1), Uuid::from_u128(2));
            let token = sign(&dest.to_string(), sub, case, ACCEPT, json!({}));
            let at = at % token.len();
            let mut chars: Vec<char> = token.chars().collect();
            proptest::prop_assume!(chars[at] != with);
            chars[at] = with;
            let changed: String = chars.into_iter().collect();
            proptest::prop_assert!(verify(&changed, &jwk(), sub, case).is_err());
        }

        /// Arbitrary text is refused, never a panic.
        #[test]
        fn arbitrary_text_is_refused(text in "\\PC{0,300}") {
            proptest::prop_assert!(signer(&text, Uuid::nil(), API).is_err());
            proptest::prop_assert!(verify(&text, &jwk(), Uuid::nil(), Uuid::nil()).is_err());
        }
    }
}
