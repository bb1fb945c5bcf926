//! Private keys, their public halves, and sealing at rest.
//!
//! Key generation, parsing and sealing go through OpenSSL (the `openssl` crate): it is
//! maintained, constant-time for private-key operations (RSA blinding, constant-time bignum
//! arithmetic), and — unlike `ring` and `aws-lc-rs` — still handles the 1024-bit RSA keys that
//! signet offers for compatibility. Private keys leave this module only as PKCS#8 DER inside a
//! [`Secret`], which zeroes itself on drop and never prints.
//!
//! The one exception is the Ed25519 signature itself: it is made by `aws-lc-rs` (already linked
//! for mail-auth), whose constant-time Ed25519 signs about four times faster than OpenSSL 3.0's
//! (11 µs against 49 µs on the build machine, `crates/signer/benches/sign.rs`). The aws-lc key is
//! built once, from OpenSSL's seed, and must derive the same public key.

use std::fmt;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use zeroize::Zeroizing;

use crate::Error;
use crate::record::{DkimRecord, KeyType};
use crate::spec::{KeySpec, RsaBits};

/// Bytes that must never be shown: zeroed on drop, `Debug` prints `[redacted]`.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A DKIM private key.
pub struct PrivateKey {
    spec: KeySpec,
    pkey: PKey<Private>,
    operation: Operation,
}

/// What makes the signatures, prepared once per key rather than once per signature.
enum Operation {
    /// OpenSSL's RSASSA-PKCS1-v1_5 over `pkey`.
    Rsa,
    /// The same key as `pkey`, held by aws-lc, whose Ed25519 is the faster one.
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a new key from the operating system's random source.
    pub fn generate(spec: KeySpec) -> Result<PrivateKey, Error> {
        let pkey = match spec {
            KeySpec::Rsa(bits) => Rsa::generate(bits.bits()).and_then(PKey::from_rsa),
            KeySpec::Ed25519 => PKey::generate_ed25519(),
        }
        .map_err(|e| Error::Key(format!("key generation failed: {e}")))?;
        Self::with_operation(spec, pkey)
    }

    /// Reads a PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE
    /// KEY`), RSA or Ed25519. Encrypted keys and anything else are refused.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, Error> {
        let text = String::from_utf8_lossy(pem);
        if text.contains("ENCRYPTED") {
            return Err(Error::Key(
                "the key file is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"
                    .into(),
            ));
        }
        if !text.contains("-----BEGIN") {
            return Err(Error::Key(
                "the key file is not PEM (no -----BEGIN line)".into(),
            ));
        }
        let pkey = PKey::private_key_from_pem(pem)
            .map_err(|_| Error::Key("the key file is not a readable PEM private key".into()))?;
        Self::from_pkey(pkey)
    }

    /// Reads an unencrypted PKCS#8 DER private key, as [`PrivateKey::pkcs8_der`] writes it.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, Error> {
        let pkey = PKey::private_key_from_pkcs8(der)
            .map_err(|_| Error::Key("stored key is not valid PKCS#8".into()))?;
        Self::from_pkey(pkey)
    }

    fn from_pkey(pkey: PKey<Private>) -> Result<PrivateKey, Error> {
        let spec = match pkey.id() {
            Id::RSA => {
                let rsa = pkey
                    .rsa()
                    .map_err(|e| Error::Key(format!("unreadable RSA key: {e}")))?;
                if !rsa.check_key().unwrap_or(false) {
                    return Err(Error::Key(
                        "the RSA key is inconsistent (check failed)".into(),
                    ));
                }
                KeySpec::Rsa(RsaBits::imported(pkey.bits())?)
            }
            Id::ED25519 => KeySpec::Ed25519,
            other => {
                return Err(Error::Key(format!(
                    "unsupported key type {other:?}: DKIM keys are RSA or Ed25519"
                )));
            }
        };
        Self::with_operation(spec, pkey)
    }

    fn with_operation(spec: KeySpec, pkey: PKey<Private>) -> Result<PrivateKey, Error> {
        let operation = match spec {
            KeySpec::Rsa(_) => Operation::Rsa,
            KeySpec::Ed25519 => {
                let unreadable = |e: openssl::error::ErrorStack| {
                    Error::Key(format!("unreadable Ed25519 key: {e}"))
                };
                let seed = Zeroizing::new(pkey.raw_private_key().map_err(unreadable)?);
                let public = pkey.raw_public_key().map_err(unreadable)?;
                let pair = Ed25519KeyPair::from_seed_and_public_key(&seed, &public)
                    .map_err(|e| Error::Key(format!("unusable Ed25519 key: {e}")))?;
                Operation::Ed25519(pair)
            }
        };
        Ok(PrivateKey {
            spec,
            pkey,
            operation,
        })
    }

    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The private key as unencrypted PKCS#8 DER, for sealing or for a signer.
    pub fn pkcs8_der(&self) -> Result<Secret, Error> {
        self.pkey
            .private_key_to_pkcs8()
            .map(|der| Secret(Zeroizing::new(der)))
            .map_err(|e| Error::Key(format!("cannot encode the key: {e}")))
    }

    /// The DKIM signature of `data` (the canonicalized headers): RSASSA-PKCS1-v1_5 over SHA-256
    /// for RSA (RFC 6376 `rsa-sha256`); Ed25519 over the SHA-256 digest of `data` for Ed25519
    /// (RFC 8463 `ed25519-sha256`).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.operation {
            Operation::Rsa => {
                let failed =
                    |e: openssl::error::ErrorStack| Error::Key(format!("signing failed: {e}"));
                let mut signer =
                    Signer::new(MessageDigest::sha256(), &self.pkey).map_err(failed)?;
                signer.update(data).map_err(failed)?;
                signer.sign_to_vec().map_err(failed)
            }
            Operation::Ed25519(pair) => {
                let digest = openssl::sha::sha256(data);
                let signature = pair
                    .try_sign(&digest)
                    .map_err(|e| Error::Key(format!("signing failed: {e}")))?;
                Ok(signature.as_ref().to_vec())
            }
        }
    }

    pub fn public_key(&self) -> Result<PublicKey, Error> {
        let bytes = match self.spec {
            KeySpec::Rsa(_) => self.pkey.public_key_to_der(),
            KeySpec::Ed25519 => self.pkey.raw_public_key(),
        }
        .map_err(|e| Error::Key(format!("cannot derive the public key: {e}")))?;
        Ok(PublicKey {
            spec: self.spec,
            bytes,
        })
    }
}

/// The public half of a key: DER SubjectPublicKeyInfo for RSA, 32 raw bytes for Ed25519.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub spec: KeySpec,
    pub bytes: Vec<u8>,
}

impl PublicKey {
    /// The TXT record value that publishes this key.
    pub fn record(&self) -> DkimRecord {
        let key_type = match self.spec {
            KeySpec::Rsa(_) => KeyType::Rsa,
            KeySpec::Ed25519 => KeyType::Ed25519,
        };
        DkimRecord {
            key_type,
            public_key: self.bytes.clone(),
        }
    }
}

/// The installation's master key: AES-256-GCM, kept apart from the database.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// First byte of every sealed blob, so the format can change without guessing.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl MasterKey {
    pub fn generate() -> Result<MasterKey, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(key.as_mut())
            .map_err(|e| Error::Seal(format!("no randomness: {e}")))?;
        Ok(MasterKey(key))
    }

    /// The master key file's text: base64 of 32 bytes.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    pub fn from_text(text: &str) -> Result<MasterKey, Error> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| Error::Seal("the master key is not base64".into()))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::Seal(format!(
                "the master key has {} bytes; it must have 32",
                bytes.len()
            ))
        })?;
        Ok(MasterKey(Zeroizing::new(key)))
    }

    /// Encrypts and authenticates `secret`, binding it to `context` (e.g. the key's id) so a
    /// sealed blob cannot be moved to another row unnoticed.
    pub fn seal(&self, secret: &Secret, context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)
            .map_err(|e| Error::Seal(format!("no randomness: {e}")))?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.as_ref(),
            Some(&nonce),
            context,
            secret.expose(),
            &mut tag,
        )
        .map_err(|e| Error::Seal(format!("sealing failed: {e}")))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len() + TAG_LEN);
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Secret, Error> {
        let wrong = || {
            Error::Seal(
                "a stored key cannot be opened: the master key does not match the database".into(),
            )
        };
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION {
            return Err(Error::Seal(
                "a stored key is not in signet's sealed format".into(),
            ));
        }
        let (nonce, rest) = sealed[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.as_ref(),
            Some(nonce),
            context,
            ciphertext,
            tag,
        )
        .map(|plain| Secret(Zeroizing::new(plain)))
        .map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::sign::Verifier;

    #[test]
    fn generated_keys_have_the_requested_shape() {
        for (spec, der_len) in [
            (KeySpec::Rsa(RsaBits::B1024), 162),
            (KeySpec::Rsa(RsaBits::B2048), 294),
            (KeySpec::Ed25519, 32),
        ] {
            let key = PrivateKey::generate(spec).unwrap();
            assert_eq!(key.spec(), spec);
            assert_eq!(key.public_key().unwrap().bytes.len(), der_len, "{spec:?}");
            let again = PrivateKey::from_pkcs8_der(key.pkcs8_der().unwrap().expose()).unwrap();
            assert_eq!(again.public_key().unwrap(), key.public_key().unwrap());
        }
    }

    #[test]
    fn pem_import_reads_pkcs1_and_pkcs8() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        let pkcs8 = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let a = PrivateKey::from_pem(&pkcs1).unwrap();
        let b = PrivateKey::from_pem(&pkcs8).unwrap();
        assert_eq!(a.public_key().unwrap(), b.public_key().unwrap());
        let ed = PKey::generate_ed25519()
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert_eq!(PrivateKey::from_pem(&ed).unwrap().spec(), KeySpec::Ed25519);
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let small = Rsa::generate(512).unwrap().private_key_to_pem().unwrap();
        let ec = PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
        for (pem, why) in [
            (small, "at least 1024".as_bytes()),
            (ec, b"unsupported key type"),
            (b"hello".to_vec(), b"not PEM"),
            (
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
                b"not a readable",
            ),
            (
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----".to_vec(),
                b"encrypted",
            ),
        ] {
            let err = PrivateKey::from_pem(&pem).unwrap_err().to_string();
            assert!(err.contains(std::str::from_utf8(why).unwrap()), "{err}");
        }
    }

    #[test]
    fn sealing_round_trips_and_binds_context() {
        let master = MasterKey::generate().unwrap();
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let der = key.pkcs8_der().unwrap();
        let sealed = master.seal(&der, b"key-1").unwrap();
        assert!(
            !sealed
                .windows(16)
                .any(|w| der.expose().windows(16).any(|d| d == w))
        );
        assert_eq!(
            master.open(&sealed, b"key-1").unwrap().expose(),
            der.expose()
        );
        assert!(master.open(&sealed, b"key-2").is_err());
        let other = MasterKey::generate().unwrap();
        assert!(
            other
                .open(&sealed, b"key-1")
                .unwrap_err()
                .to_string()
                .contains("does not match")
        );
        let text = master.to_text();
        let back = MasterKey::from_text(&text).unwrap();
        assert_eq!(back.open(&sealed, b"key-1").unwrap().expose(), der.expose());
        assert!(
            MasterKey::from_text("c2hvcnQ=")
                .unwrap_err()
                .to_string()
                .contains("32")
        );
    }

    #[test]
    fn signatures_verify_with_the_public_half() {
        for spec in [
            KeySpec::Rsa(RsaBits::B1024),
            KeySpec::Rsa(RsaBits::B2048),
            KeySpec::Ed25519,
        ] {
            let key = PrivateKey::generate(spec).unwrap();
            let signature = key.sign(b"canonical headers").unwrap();
            let public = PKey::public_key_from_der(&key.pkey.public_key_to_der().unwrap()).unwrap();
            let ok = match spec {
                KeySpec::Rsa(bits) => {
                    assert_eq!(signature.len() * 8, bits.bits() as usize);
                    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
                    v.update(b"canonical headers").unwrap();
                    v.verify(&signature).unwrap()
                }
                KeySpec::Ed25519 => {
                    let mut v = Verifier::new_without_digest(&public).unwrap();
                    v.verify_oneshot(&signature, &openssl::sha::sha256(b"canonical headers"))
                        .unwrap()
                }
            };
            assert!(ok, "{spec:?}");
        }
    }

    #[test]
    fn ed25519_signatures_are_the_ones_openssl_makes() {
        // Ed25519 is deterministic: aws-lc, which signs, and OpenSSL, which holds the key,
        // must produce the same bytes, for generated keys and for keys read back.
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        let again = PrivateKey::from_pkcs8_der(key.pkcs8_der().unwrap().expose()).unwrap();
        let digest = openssl::sha::sha256(b"canonical headers");
        let mut openssl_signer = Signer::new_without_digest(&key.pkey).unwrap();
        let expected = openssl_signer.sign_oneshot_to_vec(&digest).unwrap();
        assert_eq!(key.sign(b"canonical headers").unwrap(), expected);
        assert_eq!(again.sign(b"canonical headers").unwrap(), expected);
    }

    #[test]
    fn secrets_never_print() {
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        assert_eq!(
            format!("{:?}", key.pkcs8_der().unwrap()),
            "Secret([redacted])"
        );
        assert!(!format!("{key:?}").contains("pkey"));
        assert_eq!(
            format!("{:?}", MasterKey::generate().unwrap()),
            "MasterKey([redacted])"
        );
    }
}
