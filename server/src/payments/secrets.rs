//! Tenants' webhook signing secrets, sealed at rest with ChaCha20-Poly1305.
//!
//! The key comes from a file outside the database (`payments.secrets_key_file`), so a database
//! dump alone reveals no secret. The tenant id is the associated data: a sealed secret copied
//! onto another tenant's row does not open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// From the key file's secret (any length ≥ 32 bytes; hashed to the 256-bit key).
    pub fn new(secret: &[u8]) -> Self {
        let key: [u8; 32] = Sha256::digest(secret).into();
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// `base64(nonce ‖ ciphertext)` of `secret`, bound to `tenant`.
    pub fn seal(&self, tenant: Uuid, secret: &SecretString) -> anyhow::Result<String> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: tenant.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a secret failed"))?;
        Ok(B64.encode([nonce.as_slice(), &sealed].concat()))
    }

    /// The secret sealed by [`Sealer::seal`] for `tenant`; an error when the key, the tenant or
    /// the bytes do not match.
    pub fn open(&self, tenant: Uuid, sealed: &str) -> anyhow::Result<SecretString> {
        let bytes = B64.decode(sealed)?;
        anyhow::ensure!(bytes.len() > 12, "sealed secret too short");
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into()?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: tenant.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("a sealed secret does not open with this key"))?;
        Ok(SecretString::from(String::from_utf8(plain)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_for_its_tenant_and_key() {
        let sealer = Sealer::new(b"0123456789abcdef0123456789abcdef");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = sealer
            .seal(a, &SecretString::from("whsec_abc".to_owned()))
            .expect("seal");
        assert!(!sealed.contains("whsec"));
        let opened = sealer.open(a, &sealed).expect("open");
        assert_eq!(opened.expose_secret(), "whsec_abc");
        assert!(sealer.open(b, &sealed).is_err(), "another tenant's row");
        let other = Sealer::new(b"another key, also 32 bytes long!");
        assert!(other.open(a, &sealed).is_err(), "another key");
        assert!(sealer.open(a, "AAAA").is_err());
    }
}
