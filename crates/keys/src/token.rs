//! API tokens: 32 random bytes, shown once as base64url (no padding), of which only the
//! SHA-256 digest is kept. A presented token is digested and compared with the stored digests
//! in constant time, so neither the token nor its digest can be learnt from response times.
//!
//! ```
//! use signet_keys::token::{TokenDigest, TokenSecret};
//! let (secret, digest) = TokenSecret::generate();
//! assert!(digest.matches(&TokenDigest::of(secret.expose())));
//! assert!(!digest.matches(&TokenDigest::of("guess")));
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::{Error, TenantName};

/// How many random bytes a token has (256 bits: not guessable, so a fast digest suffices).
const TOKEN_BYTES: usize = 32;

/// A token's name, as `signet token add NAME` gives it: letters, digits, `-`, `_`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenName(String);

impl TokenName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TokenName {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok {
            Ok(TokenName(text.to_string()))
        } else {
            Err(Error::Unsupported(format!(
                "'{text}' is not a token name: use 1 to 64 letters, digits, '-', '_', '.'"
            )))
        }
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a token may see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything.
    Admin,
    /// One tenant's domains, configs and audit entries; anything else is as if absent.
    Tenant(TenantName),
}

impl TokenScope {
    /// Whether objects of `tenant` are visible under this scope.
    pub fn sees(&self, tenant: &TenantName) -> bool {
        match self {
            TokenScope::Admin => true,
            TokenScope::Tenant(own) => own == tenant,
        }
    }

    /// The tenant this scope is limited to, if any.
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            TokenScope::Admin => None,
            TokenScope::Tenant(tenant) => Some(tenant),
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenScope::Admin => f.write_str("admin"),
            TokenScope::Tenant(tenant) => write!(f, "tenant:{tenant}"),
        }
    }
}

/// The token text, shown once to whoever made it; wiped from memory when dropped.
pub struct TokenSecret(Zeroizing<String>);

impl TokenSecret {
    /// A new random token and its digest.
    pub fn generate() -> (TokenSecret, TokenDigest) {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        openssl::rand::rand_bytes(&mut bytes[..]).expect("the OS random source is available");
        let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..]));
        let digest = TokenDigest::of(&text);
        (TokenSecret(text), digest)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret([redacted])")
    }
}

/// The SHA-256 digest of a token's text: what the store keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of a presented token (any text; a wrong one simply matches nothing).
    pub fn of(text: &str) -> TokenDigest {
        TokenDigest(openssl::sha::sha256(text.as_bytes()))
    }

    /// A stored digest; `None` when it is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<TokenDigest> {
        bytes.try_into().ok().map(TokenDigest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time (`subtle`): every byte is looked at whatever the first
    /// difference, so the time taken says nothing about how much of a digest was right.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_32_random_bytes_in_base64url() {
        let (one, digest) = TokenSecret::generate();
        let (two, _) = TokenSecret::generate();
        assert_eq!(one.expose().len(), 43, "32 bytes, unpadded");
        assert_ne!(one.expose(), two.expose());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(one.expose()).unwrap().len(),
            TOKEN_BYTES
        );
        assert!(digest.matches(&TokenDigest::of(one.expose())));
        assert!(!digest.matches(&TokenDigest::of(two.expose())));
        assert_eq!(
            format!("{one:?} {digest:?}"),
            "TokenSecret([redacted]) TokenDigest([redacted])"
        );
    }

    #[test]
    fn names_and_scopes() {
        assert!("ci-bot_1.x".parse::<TokenName>().is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(bad.parse::<TokenName>().is_err(), "{bad}");
        }
        let contoso: TenantName = "contoso".parse().unwrap();
        let fabrikam: TenantName = "fabrikam".parse().unwrap();
        assert!(TokenScope::Admin.sees(&contoso));
        assert!(TokenScope::Tenant(contoso.clone()).sees(&contoso));
        assert!(!TokenScope::Tenant(contoso.clone()).sees(&fabrikam));
        assert_eq!(TokenScope::Tenant(contoso).to_string(), "tenant:contoso");
    }
}
