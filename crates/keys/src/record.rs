//! The DKIM public-key record (RFC 6376 section 3.6.1): `v=DKIM1; k=rsa; p=...`.
//!
//! signet renders exactly one form; the parser accepts what other tools publish (any tag order
//! after `v=`, folding white space, unknown tags), so that records found in DNS can be compared.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::Error;

/// The key type tag `k=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn tag(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// A DKIM key record. `public_key` is the DER SubjectPublicKeyInfo for RSA and the raw 32 bytes
/// for Ed25519 (RFC 8463); it is empty for a revoked key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimRecord {
    pub key_type: KeyType,
    pub public_key: Vec<u8>,
}

impl DkimRecord {
    pub fn is_revoked(&self) -> bool {
        self.public_key.is_empty()
    }
}

impl fmt::Display for DkimRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v=DKIM1; k={}; p={}",
            self.key_type.tag(),
            STANDARD.encode(&self.public_key)
        )
    }
}

impl FromStr for DkimRecord {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Record(why);
        let mut key_type = KeyType::Rsa;
        let mut public_key = None;
        for (index, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (tag, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("'{part}' is not a tag=value pair")))?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            match tag.trim() {
                "v" if index != 0 => return Err(bad("v= must be the first tag".into())),
                "v" if value != "DKIM1" => return Err(bad(format!("unknown version v={value}"))),
                "k" => {
                    key_type = match value.as_str() {
                        "rsa" => KeyType::Rsa,
                        "ed25519" => KeyType::Ed25519,
                        other => return Err(bad(format!("unknown key type k={other}"))),
                    }
                }
                "p" => {
                    let bytes = STANDARD
                        .decode(value.as_bytes())
                        .map_err(|e| bad(format!("p= is not valid base64: {e}")))?;
                    public_key = Some(bytes);
                }
                _ => {}
            }
        }
        let public_key = public_key.ok_or_else(|| bad("the record has no p= tag".into()))?;
        Ok(DkimRecord {
            key_type,
            public_key,
        })
    }
}

/// Splits a TXT value into the character-strings DNS carries (at most 255 bytes each).
pub fn txt_strings(value: &str) -> Vec<&[u8]> {
    value.as_bytes().chunks(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_the_canonical_form() {
        let record = DkimRecord {
            key_type: KeyType::Ed25519,
            public_key: vec![0; 32],
        };
        assert_eq!(
            record.to_string(),
            "v=DKIM1; k=ed25519; p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        );
    }

    #[test]
    fn parses_what_others_publish() {
        let r: DkimRecord = "v=DKIM1;  h=sha256 ; k=rsa; t=s; p=AQID\r\n BAU=;"
            .parse()
            .unwrap();
        assert_eq!(
            r,
            DkimRecord {
                key_type: KeyType::Rsa,
                public_key: vec![1, 2, 3, 4, 5]
            }
        );
        let r: DkimRecord = "p=".parse().unwrap();
        assert!(r.is_revoked());
    }

    #[test]
    fn malformed_records_say_why() {
        for (text, why) in [
            ("v=DKIM2; p=AA==", "unknown version"),
            ("k=rsa; v=DKIM1; p=AA==", "first tag"),
            ("v=DKIM1; k=dsa; p=AA==", "unknown key type"),
            ("v=DKIM1; k=rsa", "no p= tag"),
            ("v=DKIM1; p=!!", "not valid base64"),
            ("v=DKIM1; garbage", "not a tag=value"),
        ] {
            let err = text.parse::<DkimRecord>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn long_values_split_at_255_bytes() {
        let value = "x".repeat(600);
        let parts = txt_strings(&value);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(parts.concat(), value.as_bytes());
    }

    proptest! {
        #[test]
        fn render_parse_round_trip(ed in any::<bool>(), key in proptest::collection::vec(any::<u8>(), 0..600)) {
            let record = DkimRecord { key_type: if ed { KeyType::Ed25519 } else { KeyType::Rsa }, public_key: key };
            prop_assert_eq!(record.to_string().parse::<DkimRecord>().unwrap(), record);
        }

        #[test]
        fn parser_never_panics(text in ".{0,200}") {
            let _ = text.parse::<DkimRecord>();
        }
    }
}
