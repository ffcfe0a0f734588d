//! JWE compact serialization (RFC 7516 §7.1) as FIT-Connect requires it: the content key
//! wrapped with RSA-OAEP-256 to the destination's public key, the content encrypted with
//! A256GCM. The primitives are RustCrypto's (`rsa`, `aes-gcm`); this module only lays out the
//! five parts and the additional authenticated data (the protected header as sent), checked
//! against RFC 7516's worked example A.1 in the tests.

use aes_gcm::aead::{AeadCore as _, AeadInPlace as _, KeyInit as _, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey, traits::PublicKeyParts as _};
use serde::Deserialize;
use serde_json::json;

/// The key algorithm FIT-Connect prescribes.
pub const ALG: &str = "RSA-OAEP-256";
/// The content encryption FIT-Connect prescribes.
pub const ENC: &str = "A256GCM";
/// Smallest destination key FIT-Connect accepts.
pub const MIN_KEY_BITS: usize = 4096;

/// An encrypted object: the compact serialization and its authentication tag (base64url), which
/// the destination names in its `accept-submission` event for each object it received.
#[derive(Clone, Debug)]
pub struct Encrypted {
    pub compact: String,
    pub tag: String,
}

/// Encrypts `plaintext` of media type `cty` to `key` (named `kid`).
pub fn encrypt(
    plaintext: &[u8],
    key: &RsaPublicKey,
    kid: &str,
    cty: &str,
) -> anyhow::Result<Encrypted> {
    let header = json!({ "alg": ALG, "enc": ENC, "kid": kid, "cty": cty });
    let header_b64 = B64.encode(serde_json::to_vec(&header)?);
    let cek = Aes256Gcm::generate_key(&mut OsRng);
    let wrapped = key
        .encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), &cek[..])
        .map_err(|e| anyhow::anyhow!("wrapping the content key: {e}"))?;
    let iv = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut ciphertext = plaintext.to_vec();
    let tag = Aes256Gcm::new(&cek)
        .encrypt_in_place_detached(&iv, header_b64.as_bytes(), &mut ciphertext)
        .map_err(|_| anyhow::anyhow!("encrypting the content failed"))?;
    let tag = B64.encode(tag);
    Ok(Encrypted {
        compact: format!(
            "{header_b64}.{}.{}.{}.{tag}",
            B64.encode(wrapped),
            B64.encode(iv),
            B64.encode(&ciphertext)
        ),
        tag,
    })
}

/// The header fields a receiver checks.
#[derive(Debug, Deserialize)]
pub struct Header {
    pub alg: String,
    pub enc: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub cty: Option<String>,
}

/// Decrypts a compact JWE made with RSA-OAEP-256 and A256GCM (what a destination does; the
/// tests' FIT-Connect fake uses it). Returns the header and the plaintext.
pub fn decrypt(compact: &str, key: &RsaPrivateKey) -> anyhow::Result<(Header, Vec<u8>)> {
    decrypt_with(compact, key, ALG, Oaep::new::<sha2::Sha256>())
}

fn decrypt_with(
    compact: &str,
    key: &RsaPrivateKey,
    alg: &str,
    padding: Oaep,
) -> anyhow::Result<(Header, Vec<u8>)> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [header_b64, wrapped, iv, ciphertext, tag] = parts[..] else {
        anyhow::bail!("a compact JWE has five parts, this one {}", parts.len());
    };
    let header: Header = serde_json::from_slice(&B64.decode(header_b64)?)?;
    anyhow::ensure!(
        header.alg == alg && header.enc == ENC,
        "unexpected algorithms {}/{}",
        header.alg,
        header.enc
    );
    let cek: [u8; 32] = key
        .decrypt(padding, &B64.decode(wrapped)?)
        .map_err(|e| anyhow::anyhow!("unwrapping the content key: {e}"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the content key is not 256 bits"))?;
    let iv: [u8; 12] = B64
        .decode(iv)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the IV is not 96 bits"))?;
    let tag: [u8; 16] = B64
        .decode(tag)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("the tag is not 128 bits"))?;
    let mut plaintext = B64.decode(ciphertext)?;
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(cek))
        .decrypt_in_place_detached(
            &Nonce::from(iv),
            header_b64.as_bytes(),
            &mut plaintext,
            &Tag::from(tag),
        )
        .map_err(|_| anyhow::anyhow!("the content does not authenticate"))?;
    Ok((header, plaintext))
}

/// An RSA public key as FIT-Connect publishes it (JWK, RFC 7517): a destination's encryption
/// key, or a signature key (the destination's, the Submission API's).
#[derive(Clone, Debug, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub kid: String,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub key_ops: Vec<String>,
    pub n: String,
    pub e: String,
}

impl Jwk {
    /// The RSA public key, if the JWK is one FIT-Connect allows for encryption: RSA, meant for
    /// `wrapKey` with RSA-OAEP-256, at least [`MIN_KEY_BITS`].
    pub fn encryption_key(&self) -> anyhow::Result<RsaPublicKey> {
        anyhow::ensure!(
            self.kty == "RSA",
            "the key is not an RSA key ({})",
            self.kty
        );
        anyhow::ensure!(
            self.alg.as_deref() == Some(ALG),
            "the key is not for {ALG} ({:?})",
            self.alg
        );
        anyhow::ensure!(
            self.key_ops.iter().any(|op| op == "wrapKey"),
            "the key is not for wrapKey ({:?})",
            self.key_ops
        );
        let key = RsaPublicKey::new(
            BigUint::from_bytes_be(&B64.decode(&self.n)?),
            BigUint::from_bytes_be(&B64.decode(&self.e)?),
        )?;
        anyhow::ensure!(
            key.n().bits() >= MIN_KEY_BITS,
            "the key has {} bits, FIT-Connect requires at least {MIN_KEY_BITS}",
            key.n().bits()
        );
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7516, Appendix A.1: "The true sign of intelligence is not knowledge but
    /// imagination." encrypted with RSA-OAEP (SHA-1) and A256GCM.
    const A1_COMPACT: &str = concat!(
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.",
        "OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe",
        "ipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDb",
        "Sv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaV",
        "mqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je8",
        "1860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi",
        "6UklfCpIMfIjf7iGdXKHzg.",
        "48V1_ALb6US04U3b.",
        "5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji",
        "SdiwkIr3ajwQzaBtQD_A.",
        "XFBoMYUZodetZdvTiFvSkQ",
    );
    const A1_N: &str = concat!(
        "oahUIoWw0K0usKNuOR6H4wkf4oBUXHTxRvgb48E-BVvxkeDNjbC4he8rUW",
        "cJoZmds2h7M70imEVhRU5djINXtqllXI4DFqcI1DgjT9LewND8MW2Krf3S",
        "psk_ZkoFnilakGygTwpZ3uesH-PFABNIUYpOiN15dsQRkgr0vEhxN92i2a",
        "sbOenSZeyaxziK72UwxrrKoExv6kc5twXTq4h-QChLOln0_mtUZwfsRaMS",
        "tPs6mS6XrgxnxbWhojf663tuEQueGC-FCMfra36C9knDFGzKsNa7LZK2dj",
        "YgyD3JR_MB_4NUJW_TqOQtwHYbxevoJArm-L5StowjzGy-_bq6Gw",
    );
    const A1_D: &str = concat!(
        "kLdtIj6GbDks_ApCSTYQtelcNttlKiOyPzMrXHeI-yk1F7-kpDxY4-WY5N",
        "WV5KntaEeXS1j82E375xxhWMHXyvjYecPT9fpwR_M9gV8n9Hrh2anTpTD9",
        "3Dt62ypW3yDsJzBnTnrYu1iwWRgBKrEYY46qAZIrA2xAwnm2X7uGR1hghk",
        "qDp0Vqj3kbSCz1XyfCs6_LehBwtxHIyh8Ripy40p24moOAbgxVw3rxT_vl",
        "t3UVe4WO3JkJOzlpUf-KTVI2Ptgm-dARxTEtE-id-4OJr0h-K-VFs3VSnd",
        "VTIznSxfyrj8ILL6MG_Uv8YAu7VILSB3lOW085-4qE3DzgrTjgyQ",
    );
    const A1_P: &str = concat!(
        "1r52Xk46c-LsfB5P442p7atdPUrxQSy4mti_tZI3Mgf2EuFVbUoDBvaRQ-",
        "SWxkbkmoEzL7JXroSBjSrK3YIQgYdMgyAEPTPjXv_hI2_1eTSPVZfzL0lf",
        "fNn03IXqWF5MDFuoUYE0hzb2vhrlN_rKrbfDIwUbTrjjgieRbwC6Cl0",
    );
    const A1_Q: &str = concat!(
        "wLb35x7hmQWZsWJmB_vle87ihgZ19S8lBEROLIsZG4ayZVe9Hi9gDVCOBm",
        "UDdaDYVTSNx_8Fyw1YYa9XGrGnDew00J28cRUoeBB_jKI1oma0Orv1T9aX",
        "IWxKwd4gvxFImOWr3QRL9KEBRzk2RatUBnmDZJTIAfwTs0g68UZHvtc",
    );

    fn uint(b64: &str) -> BigUint {
        BigUint::from_bytes_be(&B64.decode(b64).expect("base64url"))
    }

    fn a1_key() -> RsaPrivateKey {
        RsaPrivateKey::from_components(
            uint(A1_N),
            uint("AQAB"),
            uint(A1_D),
            vec![uint(A1_P), uint(A1_Q)],
        )
        .expect("the RFC's key")
    }

    #[test]
    fn the_worked_example_of_rfc_7516_decrypts() {
        let (header, plaintext) =
            decrypt_with(A1_COMPACT, &a1_key(), "RSA-OAEP", Oaep::new::<sha1::Sha1>())
                .expect("decrypts");
        assert_eq!(header.enc, "A256GCM");
        assert_eq!(
            plaintext,
            b"The true sign of intelligence is not knowledge but imagination."
        );
        // One flipped bit of the header (part of the authenticated data) and it does not.
        let same_meaning = B64.encode(br#"{"alg":"RSA-OAEP", "enc":"A256GCM"}"#);
        let tampered = A1_COMPACT.replacen(
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ",
            &same_meaning,
            1,
        );
        let refused = decrypt_with(&tampered, &a1_key(), "RSA-OAEP", Oaep::new::<sha1::Sha1>());
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("does not authenticate")
        );
    }

    #[test]
    fn what_we_encrypt_decrypts_with_the_private_key_only() {
        let key = a1_key();
        let sealed = encrypt(
            b"{\"name\":\"Erika\"}",
            &key.to_public_key(),
            "k1",
            "application/json",
        )
        .expect("encrypts");
        let (header, plaintext) = decrypt(&sealed.compact, &key).expect("decrypts");
        assert_eq!(plaintext, b"{\"name\":\"Erika\"}");
        assert_eq!((header.alg.as_str(), header.enc.as_str()), (ALG, ENC));
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.cty.as_deref(), Some("application/json"));
        assert_eq!(sealed.compact.rsplit('.').next(), Some(sealed.tag.as_str()));
        // A changed ciphertext does not authenticate.
        let mut parts: Vec<String> = sealed.compact.split('.').map(str::to_owned).collect();
        parts[3] = B64.encode(b"{\"name\":\"Mallory\"}");
        assert!(decrypt(&parts.join("."), &key).is_err());
    }

    #[test]
    fn only_keys_fit_connect_allows_are_taken() {
        let n = A1_N.to_owned();
        let jwk = |kty: &str, alg: Option<&str>, ops: &[&str]| Jwk {
            kty: kty.into(),
            kid: "k".into(),
            alg: alg.map(Into::into),
            key_ops: ops.iter().map(|s| (*s).to_owned()).collect(),
            n: n.clone(),
            e: "AQAB".into(),
        };
        let too_small = jwk("RSA", Some(ALG), &["wrapKey"])
            .encryption_key()
            .unwrap_err();
        assert!(too_small.to_string().contains("2048 bits"), "{too_small}");
        assert!(jwk("EC", Some(ALG), &["wrapKey"]).encryption_key().is_err());
        assert!(
            jwk("RSA", Some("RSA-OAEP"), &["wrapKey"])
                .encryption_key()
                .is_err()
        );
        assert!(jwk("RSA", Some(ALG), &["verify"]).encryption_key().is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Arbitrary input (five parts or not) is refused, never a panic.
        #[test]
        fn arbitrary_input_is_refused(parts in proptest::collection::vec("[A-Za-z0-9_-]{0,40}", 0..7)) {
            let key = tests_key();
            proptest::prop_assert!(decrypt(&parts.join("."), key).is_err());
        }

        /// One changed character anywhere in what we encrypt and it does not decrypt.
        #[test]
        fn a_changed_jwe_never_decrypts(at in 0usize..2000, with in proptest::sample::select(vec!['A', 'b', '-', '_', '0'])) {
            let key = tests_key();
            let sealed = encrypt(b"{\"a\":1}", &key.to_public_key(), "k", "application/json").unwrap();
            let mut chars: Vec<char> = sealed.compact.chars().collect();
            let at = at % chars.len();
            proptest::prop_assume!(chars[at] != with && chars[at] != '.');
            chars[at] = with;
            let changed: String = chars.into_iter().collect();
            proptest::prop_assert!(decrypt(&changed, key).is_err());
        }
    }

    fn tests_key() -> &'static RsaPrivateKey {
        static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).expect("an RSA key"))
    }
}
