//! ARC sealing (RFC 8617 section 5.1): a forwarder adds `ARC-Authentication-Results`,
//! `ARC-Message-Signature` and `ARC-Seal` with one of its domains' keys.
//!
//! The signing is mail-auth's `ArcSealer`; the `ARC-Authentication-Results` it records are
//! mail-auth's rendering of the DKIM and ARC results of this hop and of signet's SPF result.

use mail_auth::arc::ArcSealer;
use mail_auth::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::headers::HeaderWriter;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, SpfOutput, SpfResult};
use openssl::pkey::{Id, PKey};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{AuthResult, Envelope, Error, Verifier, spf, unix_now};

/// Header fields the `ARC-Message-Signature` covers (when present).
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "DKIM-Signature",
];

/// A key a domain seals with: RSA (PKCS#1 or PKCS#8 PEM) or Ed25519 (PKCS#8 PEM).
pub struct SealingKey {
    pub domain: String,
    pub selector: String,
    key: Key,
}

/// PKCS#8 DER; mail-auth's key types are neither `Clone` nor borrowable by its sealer, so each
/// seal builds its own from these bytes (the PEM parsing is done once, here).
enum Key {
    Rsa(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SealingKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    pub fn from_pem(
        domain: impl Into<String>,
        selector: impl Into<String>,
        pem: &[u8],
    ) -> Result<SealingKey, Error> {
        let bad = |why: &str| Error::SealingKey(why.to_string());
        let key = PKey::private_key_from_pem(pem).map_err(|_| bad("not a PEM private key"))?;
        let pkcs8 = key
            .private_key_to_pkcs8()
            .map_err(|_| bad("cannot encode the key as PKCS#8"))?;
        let key = match key.id() {
            Id::RSA => Key::Rsa(pkcs8),
            Id::ED25519 => Key::Ed25519(pkcs8),
            _ => return Err(bad("only RSA and Ed25519 keys can seal")),
        };
        // Fail now, not at the first message, if mail-auth cannot use the key.
        match &key {
            Key::Rsa(der) => rsa_key(der).map(drop),
            Key::Ed25519(der) => Ed25519Key::from_pkcs8_maybe_unchecked_der(der).map(drop),
        }
        .map_err(|e| bad(&e.to_string()))?;
        Ok(SealingKey {
            domain: domain.into(),
            selector: selector.into(),
            key,
        })
    }
}

impl Verifier {
    /// Verifies `raw` and returns the three ARC header fields to put on top of it (CRLF line
    /// ends, ready to prepend). Fails when the existing chain has `cv=fail` (RFC 8617 5.1.2).
    pub async fn seal(
        &self,
        raw: &[u8],
        envelope: &Envelope,
        key: &SealingKey,
    ) -> Result<String, Error> {
        let authenticator = &self.authenticator.0;
        let message = AuthenticatedMessage::parse(raw)
            .ok_or(Error::Seal("the message cannot be parsed".into()))?;
        let dkim = authenticator.verify_dkim(&message).await;
        let arc = authenticator.verify_arc(&message).await;
        let from = message.first_from_address().to_string();
        let mut results =
            AuthenticationResults::new(&self.config.authserv_id).with_dkim_results(&dkim, &from);
        let helo = envelope.helo.as_deref().unwrap_or_default();
        if let (Some(ip), Some(sender)) = (envelope.client_ip, envelope.mail_from.as_deref()) {
            // signet's own evaluation, recorded through mail-auth's writer so the header this
            // hop seals agrees with the verdict `verify` gives.
            let host = &self.config.authserv_id;
            let spf = spf::verify(authenticator.resolver(), envelope, host, unix_now()).await;
            let output = SpfOutput::new(spf.domain).with_result(spf_result(spf.result));
            let parameters = SpfParameters::mail_from(ip, helo, host, sender);
            results = results.with_spf_result(&output, &parameters);
        }
        if let Some(ip) = envelope.client_ip {
            results = results.with_arc_result(&arc, ip);
        }
        if !arc.can_be_sealed() {
            return Err(Error::Seal("the ARC chain already failed (cv=fail)".into()));
        }
        let set = match &key.key {
            Key::Rsa(der) => rsa_key(der).and_then(|k| sealed(k, key, &message, &results, &arc)),
            Key::Ed25519(der) => Ed25519Key::from_pkcs8_maybe_unchecked_der(der)
                .and_then(|k| sealed(k, key, &message, &results, &arc)),
        }
        .map_err(|e| Error::Seal(e.to_string()))?;
        Ok(set)
    }
}

fn spf_result(result: AuthResult) -> SpfResult {
    match result {
        AuthResult::Pass => SpfResult::Pass,
        AuthResult::Fail => SpfResult::Fail,
        AuthResult::SoftFail => SpfResult::SoftFail,
        AuthResult::Neutral | AuthResult::Policy => SpfResult::Neutral,
        AuthResult::TempError => SpfResult::TempError,
        AuthResult::PermError => SpfResult::PermError,
        AuthResult::None => SpfResult::None,
    }
}

fn rsa_key(der: &[u8]) -> mail_auth::Result<RsaKey<Sha256>> {
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
}

fn sealed<T: SigningKey<Hasher = Sha256>>(
    signing_key: T,
    key: &SealingKey,
    message: &AuthenticatedMessage<'_>,
    results: &AuthenticationResults<'_>,
    arc: &mail_auth::ArcOutput<'_>,
) -> mail_auth::Result<String> {
    let present: Vec<&str> = SIGNED_HEADERS
        .iter()
        .copied()
        .filter(|name| {
            message
                .headers()
                .iter()
                .any(|(have, _)| have.eq_ignore_ascii_case(name.as_bytes()))
        })
        .collect();
    let set = ArcSealer::from_key(signing_key)
        .domain(key.domain.clone())
        .selector(key.selector.clone())
        .headers(present)
        .seal(message, results, arc)?;
    Ok(set.to_header())
}
