//! Signing outbound mail: [`decide`] picks `d=` and `s=` for a message (`docs/reference.md`,
//! "Which mail is signed"), and [`sign`] produces its `DKIM-Signature` header.
//!
//! Canonicalization and the signature header come from `mail-auth`; the private-key operation
//! is signet's own ([`signet_keys::PrivateKey::sign`]: OpenSSL for RSA, aws-lc for Ed25519),
//! plugged into mail-auth's `SigningKey` trait, so 1024-bit RSA keys sign on the same
//! constant-time path as 2048-bit ones. `benches/sign.rs` times it against the raw crypto.
//!
//! Signed headers are RFC 6376 section 5.4.1's recommendations *that the message has*, plus one
//! more `From` than it has (over-signing), so a `From` added later breaks the signature while
//! other headers added in transit (a list's `List-Id`) do not. mail-auth always writes `t=`, so
//! `IncludeSignatureCreationTime = false` is not honoured yet; `l=` is never written.

mod decide;

use mail_auth::crypto::{Algorithm, Sha256, SigningKey};
use mail_auth::dkim::{Canonicalization as MailAuthCanonicalization, DkimSigner};
use mail_auth::headers::{HeaderWriter, Writable};
use signet_keys::{Canonicalization, DomainName, KeySpec, PrivateKey};

pub use decide::{Decision, SigningPlan, SigningPolicy, TenantView, decide};

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The message itself is unusable: no header section, no or several `From`.
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("signing failed: {0}")]
    Crypto(String),
}

/// Headers signed when present (RFC 6376 section 5.4.1).
const RECOMMENDED: [&str; 15] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
];

/// Also signed when present: the remaining content headers and the `List-*` family.
const ALSO_SIGNED: [&str; 9] = [
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// Signs `message` as `plan` says with `key`; returns the `DKIM-Signature` header, CRLF
/// terminated, to put in front of the message.
pub fn sign(message: &[u8], plan: &SigningPlan, key: &PrivateKey) -> Result<String, SignError> {
    let headers = headers_to_sign(message)?;
    let mut signer = DkimSigner::from_key(Key(key))
        .domain(plan.domain.as_str())
        .selector(plan.selector.as_str())
        .headers(headers)
        .header_canonicalization(convert(plan.header_canonicalization))
        .body_canonicalization(convert(plan.body_canonicalization));
    if let Some(expiration) = plan.expiration {
        signer = signer.expiration(std::time::Duration::from_secs(
            u64::try_from(expiration.seconds()).unwrap_or(0),
        ));
    }
    let signature = signer
        .sign(message)
        .map_err(|e| SignError::Crypto(e.to_string()))?;
    Ok(signature.to_header())
}

fn convert(c: Canonicalization) -> MailAuthCanonicalization {
    match c {
        Canonicalization::Relaxed => MailAuthCanonicalization::Relaxed,
        Canonicalization::Simple => MailAuthCanonicalization::Simple,
    }
}

/// The `h=` list for this message: the signed headers it has, and `From` once more.
fn headers_to_sign(message: &[u8]) -> Result<Vec<&'static str>, SignError> {
    let names = header_names(message)?;
    let from_count = names
        .iter()
        .filter(|n| n.eq_ignore_ascii_case("From"))
        .count();
    match from_count {
        0 => return Err(SignError::Malformed("it has no From header".into())),
        1 => {}
        n => {
            return Err(SignError::Malformed(format!(
                "it has {n} From headers; RFC 5322 allows one"
            )));
        }
    }
    let mut list: Vec<&'static str> = RECOMMENDED
        .iter()
        .chain(ALSO_SIGNED.iter())
        .copied()
        .filter(|wanted| names.iter().any(|n| n.eq_ignore_ascii_case(wanted)))
        .collect();
    // mail-auth signs every instance of a listed header and a listed header it does not find
    // as empty: a second "From" entry is exactly the over-signing RFC 6376 section 8.15 asks for.
    list.push("From");
    Ok(list)
}

/// The field names of the header section (up to the first empty line).
fn header_names(message: &[u8]) -> Result<Vec<String>, SignError> {
    let mut names = Vec::new();
    for line in message.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(names);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue; // folded continuation
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(SignError::Malformed("a header line has no colon".into()));
        };
        names.push(String::from_utf8_lossy(&line[..colon]).trim().to_string());
    }
    Ok(names) // a message may end after its headers (RFC 5322: the body is optional)
}

/// The domain of the message's author (the `From:` address): what the signing decision is
/// about (`docs/reference.md`, "Which mail is signed").
pub fn author_domain(message: &[u8]) -> Result<DomainName, SignError> {
    let headers = mail_parser::MessageParser::new()
        .parse_headers(message)
        .ok_or_else(|| SignError::Malformed("it has no header section".into()))?;
    let from = headers
        .from()
        .ok_or_else(|| SignError::Malformed("it has no From header".into()))?;
    let mut domains = from.mailboxes().filter_map(|m| m.address()).map(|address| {
        let domain = address
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .unwrap_or_default();
        domain.parse::<DomainName>().map_err(|_| {
            SignError::Malformed(format!("the From address '{address}' has no valid domain"))
        })
    });
    let first = domains
        .next()
        .ok_or_else(|| SignError::Malformed("its From header has no address".into()))??;
    for other in domains {
        if other? != first {
            return Err(SignError::Malformed(
                "its From header names addresses in several domains".into(),
            ));
        }
    }
    Ok(first)
}

/// signet's private key as mail-auth's signing key.
struct Key<'a>(&'a PrivateKey);

impl SigningKey for Key<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        self.0.sign(&data).map_err(|e| {
            mail_auth::Error::Crypto(mail_auth::crypto::CryptoError::Library(e.to_string()))
        })
    }

    fn algorithm(&self) -> Algorithm {
        match self.0.spec() {
            KeySpec::Rsa(_) => Algorithm::RsaSha256,
            KeySpec::Ed25519 => Algorithm::Ed25519Sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_keys::{KeyId, RsaBits, Span};

    const MESSAGE: &[u8] = b"From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject: hello\r\n\
        Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@contoso.com>\r\nX-Mailer: test\r\n\r\nHi Ann.\r\n";

    fn plan() -> SigningPlan {
        SigningPlan {
            domain: "contoso.com".parse().unwrap(),
            selector: "selector1".into(),
            key: KeyId("k".into()),
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Relaxed,
            expiration: None,
        }
    }

    fn tag<'a>(header: &'a str, name: &str) -> &'a str {
        let unfolded = header.trim_start_matches("DKIM-Signature:");
        unfolded
            .split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {name}= in {header}"))
    }

    #[test]
    fn signatures_carry_the_tags_the_spec_fixes() {
        let key = PrivateKey::generate(KeySpec::Rsa(RsaBits::B1024)).unwrap();
        let header = sign(MESSAGE, &plan(), &key).unwrap();
        let flat: String = header.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(tag(&flat, "a"), "rsa-sha256");
        assert_eq!(tag(&flat, "c"), "relaxed/relaxed");
        assert_eq!(tag(&flat, "d"), "contoso.com");
        assert_eq!(tag(&flat, "s"), "selector1");
        assert!(tag(&flat, "t").parse::<u64>().is_ok());
        let h: String = tag(&flat, "h").split_whitespace().collect();
        let mut signed: Vec<String> = h
            .to_ascii_lowercase()
            .split(':')
            .map(String::from)
            .collect();
        signed.sort();
        assert_eq!(
            signed,
            ["date", "from", "from", "message-id", "subject", "to"],
            "X-Mailer is not signed; From is over-signed"
        );
        assert!(!flat.contains(" l="), "never l=");
        assert!(!flat.contains(" x="), "x= only when asked");
        assert!(header.ends_with("\r\n"));

        let expiring = SigningPlan {
            expiration: Some(Span::days(7)),
            ..plan()
        };
        let header = sign(
            MESSAGE,
            &expiring,
            &PrivateKey::generate(KeySpec::Ed25519).unwrap(),
        )
        .unwrap();
        let flat: String = header.split_whitespace().collect::<Vec<_>>().join(" ");
        let t: u64 = tag(&flat, "t").parse().unwrap();
        let x: u64 = tag(&flat, "x").parse().unwrap();
        assert_eq!(x - t, 7 * 86_400);
        assert_eq!(tag(&flat, "a"), "ed25519-sha256");
    }

    #[test]
    fn the_author_domain_comes_from_the_from_address() {
        assert_eq!(author_domain(MESSAGE).unwrap().as_str(), "contoso.com");
        let quoted = b"From: \"Smith, Joe\" <Joe.Smith@Sub.Contoso.COM>\r\n\r\nx\r\n";
        assert_eq!(author_domain(quoted).unwrap().as_str(), "sub.contoso.com");
        for (message, why) in [
            (&b"To: a@b.example\r\n\r\nx\r\n"[..], "no From"),
            (
                b"From: a@b.example, c@d.example\r\n\r\nx\r\n",
                "several domains",
            ),
            (b"From: nobody\r\n\r\nx\r\n", "From"),
        ] {
            let err = author_domain(message).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let key = PrivateKey::generate(KeySpec::Ed25519).unwrap();
        for (message, why) in [
            (&b"To: a@b.example\r\n\r\nbody\r\n"[..], "no From"),
            (
                b"From: a@b.example\r\nFrom: c@d.example\r\n\r\nx\r\n",
                "2 From headers",
            ),
            (
                b"From: a@b.example\r\nno colon here\r\n\r\nx\r\n",
                "no colon",
            ),
        ] {
            let err = sign(message, &plan(), &key).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
