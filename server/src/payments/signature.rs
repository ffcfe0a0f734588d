//! Stripe's webhook signature: header `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, where
//! each `v1` is HMAC-SHA256 over `"<t>.<raw body>"` with the endpoint's signing secret. While a
//! secret is being rolled Stripe signs with the old and the new one, so any matching `v1`
//! passes. Checked on the raw bytes before anything is parsed.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    #[error("webhook timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

/// Checks `header` over `body` with `secret` at `now` (unix seconds), allowing `tolerance`
/// seconds of age (and of clock skew into the future).
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => timestamp = value.parse::<i64>().ok(),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() || signatures.len() > 8 {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    // Each candidate is decoded and compared in constant time (`verify_slice`-style).
    let matches = signatures.iter().any(|sig| {
        decode_hex(sig).is_some_and(|bytes| {
            bytes.len() == expected.len()
                && bytes
                    .iter()
                    .zip(expected.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `body` at `t` (tests, benchmarks, the fake provider).
pub fn sign(body: &[u8], secret: &[u8], t: i64) -> String {
    format!("t={t},v1={}", hex_hmac(body, secret, t))
}

fn hex_hmac(body: &[u8], secret: &[u8], t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn accepts_any_matching_v1_and_rejects_the_rest() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(body, SECRET, 1_000);
        assert_eq!(verify(&good, body, SECRET, 1_100, 300), Ok(()));
        // Rotation: the old secret's signature first, the new one second.
        let old = sign(body, b"whsec_old", 1_000);
        let both = format!("{old},v1={}", hex_hmac(body, SECRET, 1_000));
        assert_eq!(verify(&both, body, SECRET, 1_000, 300), Ok(()));
        assert_eq!(
            verify(&old, body, SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&good, body, SECRET, 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&good, body, SECRET, 699, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&good, b"{\"id\":\"evt_2\"}", SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("v1=abcd", body, SECRET, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("t=1000", body, SECRET, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = good.replace("t=1000", "t=1001");
        assert_eq!(
            verify(&moved, body, SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        /// Any header and body: never a panic; a signature of other bytes never passes.
        #[test]
        fn arbitrary_headers_never_pass(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(verify(&header, &body, SECRET, 1_000, 300).is_err()
                || header.contains(&hex_hmac(&body, SECRET, 1_000)[..8]));
        }

        /// A flipped byte of the body always fails.
        #[test]
        fn tampered_bodies_fail(body in proptest::collection::vec(any::<u8>(), 1..200), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let header = sign(&body, SECRET, 1_000);
            let mut tampered = body.clone();
            let i = at.index(tampered.len());
            tampered[i] ^= flip;
            prop_assert_eq!(verify(&header, &tampered, SECRET, 1_000, 300), Err(SignatureError::Mismatch));
            prop_assert_eq!(verify(&header, &body, SECRET, 1_000, 300), Ok(()));
        }
    }
}
