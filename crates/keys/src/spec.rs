//! The small vocabularies of a signing config: slots, algorithms, key sizes, canonicalizations.
//!
//! Each has two spellings: the operator's (`rsa-sha256`, `relaxed`, as on the command line) and
//! Exchange Online's (`RsaSHA256`, `Relaxed`, as in list and JSON output). Both parse.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// One of the two selectors every domain delegates to signet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Slot {
    #[serde(rename = "selector1")]
    Selector1,
    #[serde(rename = "selector2")]
    Selector2,
}

impl Slot {
    pub const BOTH: [Slot; 2] = [Slot::Selector1, Slot::Selector2];

    #[must_use]
    pub fn other(self) -> Slot {
        match self {
            Slot::Selector1 => Slot::Selector2,
            Slot::Selector2 => Slot::Selector1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::Selector1 => "selector1",
            Slot::Selector2 => "selector2",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Slot::Selector1 => 1,
            Slot::Selector2 => 2,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Slot {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "selector1" => Ok(Slot::Selector1),
            "selector2" => Ok(Slot::Selector2),
            _ => Err(Error::Unsupported(format!(
                "'{text}' is not a slot: use selector1 or selector2"
            ))),
        }
    }
}

/// The signing algorithm of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    #[serde(rename = "RsaSHA256")]
    RsaSha256,
    #[serde(rename = "Ed25519SHA256")]
    Ed25519Sha256,
}

impl Algorithm {
    /// The `a=` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RsaSha256 => "RsaSHA256",
            Algorithm::Ed25519Sha256 => "Ed25519SHA256",
        })
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "rsa-sha256" | "rsasha256" | "rsa" => Ok(Algorithm::RsaSha256),
            "ed25519-sha256" | "ed25519sha256" | "ed25519" => Ok(Algorithm::Ed25519Sha256),
            "rsa-sha1" | "rsasha1" => Err(Error::Unsupported(
                "rsa-sha1 is not supported: RFC 8301 forbids signing with it; use rsa-sha256"
                    .into(),
            )),
            _ => Err(Error::Unsupported(format!(
                "'{text}' is not a supported algorithm: use rsa-sha256 or ed25519-sha256"
            ))),
        }
    }
}

/// The kind and size of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    /// RSA with the given modulus size in bits.
    Rsa(RsaBits),
    Ed25519,
}

impl KeySpec {
    pub fn algorithm(self) -> Algorithm {
        match self {
            KeySpec::Rsa(_) => Algorithm::RsaSha256,
            KeySpec::Ed25519 => Algorithm::Ed25519Sha256,
        }
    }

    /// Key size in bits as `Get-DkimSigningConfig` shows it (256 for Ed25519).
    pub fn bits(self) -> u32 {
        match self {
            KeySpec::Rsa(bits) => bits.bits(),
            KeySpec::Ed25519 => 256,
        }
    }

    /// The spec for a new key of `algorithm`, with `size` for RSA (default 2048).
    pub fn new(algorithm: Algorithm, size: Option<RsaBits>) -> Result<KeySpec, Error> {
        match (algorithm, size) {
            (Algorithm::RsaSha256, size) => Ok(KeySpec::Rsa(size.unwrap_or_default())),
            (Algorithm::Ed25519Sha256, None) => Ok(KeySpec::Ed25519),
            (Algorithm::Ed25519Sha256, Some(_)) => Err(Error::Unsupported(
                "--key-size applies to RSA keys only; Ed25519 keys are always 256 bits".into(),
            )),
        }
    }
}

/// The RSA key sizes signet generates. Imported keys may be larger (up to 4096).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RsaBits(u32);

impl RsaBits {
    pub const B1024: RsaBits = RsaBits(1024);
    pub const B2048: RsaBits = RsaBits(2048);

    /// Sizes of keys brought in by `dkim import`: 1024 to 4096 bits.
    pub fn imported(bits: u32) -> Result<RsaBits, Error> {
        match bits {
            0..1024 => Err(Error::Key(format!(
                "the RSA key has {bits} bits; RFC 8301 requires at least 1024 (2048 recommended)"
            ))),
            1024..=4096 => Ok(RsaBits(bits)),
            _ => Err(Error::Key(format!(
                "the RSA key has {bits} bits; signet accepts at most 4096 (DNS TXT size)"
            ))),
        }
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl Default for RsaBits {
    fn default() -> Self {
        RsaBits::B2048
    }
}

impl FromStr for RsaBits {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.trim() {
            "1024" => Ok(RsaBits::B1024),
            "2048" => Ok(RsaBits::B2048),
            _ => Err(Error::Unsupported(format!(
                "key size '{text}' is not supported: use 1024 or 2048"
            ))),
        }
    }
}

/// Header or body canonicalization (RFC 6376 section 3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Canonicalization {
    #[default]
    Relaxed,
    Simple,
}

impl Canonicalization {
    /// The spelling inside `c=`.
    pub fn tag(self) -> &'static str {
        match self {
            Canonicalization::Relaxed => "relaxed",
            Canonicalization::Simple => "simple",
        }
    }
}

impl fmt::Display for Canonicalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Canonicalization::Relaxed => "Relaxed",
            Canonicalization::Simple => "Simple",
        })
    }
}

impl FromStr for Canonicalization {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "relaxed" => Ok(Canonicalization::Relaxed),
            "simple" => Ok(Canonicalization::Simple),
            _ => Err(Error::Unsupported(format!(
                "'{text}' is not a canonicalization: use relaxed or simple"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        assert_eq!(
            "rsa-sha256".parse::<Algorithm>().unwrap(),
            Algorithm::RsaSha256
        );
        assert_eq!(
            "RsaSHA256".parse::<Algorithm>().unwrap(),
            Algorithm::RsaSha256
        );
        assert_eq!(
            "ed25519-sha256".parse::<Algorithm>().unwrap(),
            Algorithm::Ed25519Sha256
        );
        assert_eq!(
            "Simple".parse::<Canonicalization>().unwrap(),
            Canonicalization::Simple
        );
        assert!(
            "rsa-sha1"
                .parse::<Algorithm>()
                .unwrap_err()
                .to_string()
                .contains("RFC 8301")
        );
    }

    #[test]
    fn only_offered_key_sizes_parse() {
        assert_eq!("1024".parse::<RsaBits>().unwrap(), RsaBits::B1024);
        assert_eq!("2048".parse::<RsaBits>().unwrap(), RsaBits::B2048);
        for bad in ["512", "4096", "big", ""] {
            let err = bad.parse::<RsaBits>().unwrap_err().to_string();
            assert!(err.contains("use 1024 or 2048"), "{bad}: {err}");
        }
        assert!(
            RsaBits::imported(512)
                .unwrap_err()
                .to_string()
                .contains("at least 1024")
        );
        assert!(KeySpec::new(Algorithm::Ed25519Sha256, Some(RsaBits::B1024)).is_err());
    }

    #[test]
    fn slots_alternate() {
        assert_eq!(Slot::Selector1.other(), Slot::Selector2);
        assert_eq!(Slot::Selector2.other().other(), Slot::Selector2);
    }
}
