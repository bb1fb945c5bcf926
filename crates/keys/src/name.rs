//! Domain and tenant names, parsed once at the boundary.
//!
//! A [`DomainName`] is always in its canonical DNS form: lower case, ASCII (IDNs as punycode
//! A-labels), no trailing dot, every label 1–63 letters, digits or hyphens, at most 253 bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A fully qualified domain name in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with its dots turned into dashes, as used in selector names
    /// (`contoso.com` -> `contoso-com`).
    pub fn dashed(&self) -> String {
        self.0.replace('.', "-")
    }

    /// True when `self` is `other` or lies below it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(&other.0)
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }

    /// `label.self`. The label must be a valid DNS label.
    pub fn child(&self, label: &str) -> Result<DomainName, Error> {
        format!("{label}.{}", self.0).parse()
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl FromStr for DomainName {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::DomainName {
            name: text.to_string(),
            why: why.to_string(),
        };
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(bad("it contains white space"));
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(trimmed)
                .map_err(|_| bad("it is not a valid internationalised name"))?
        };
        if ascii.len() > 253 {
            return Err(bad("it is longer than 253 characters"));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        for label in &labels {
            check_label(label).map_err(|why| bad(&why))?;
        }
        if labels.len() < 2 {
            return Err(bad(
                "it has a single label; a domain needs at least two, like example.com",
            ));
        }
        if labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad(
                "its last label is numeric, so it looks like an IP address",
            ));
        }
        Ok(DomainName(ascii))
    }
}

/// Checks one DNS hostname label (letters, digits, hyphens; 1–63; no hyphen at either end).
pub(crate) fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > 63 {
        return Err(format!("label '{label}' is longer than 63 characters"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "label '{label}' contains '{c}'; only letters, digits and '-' are allowed"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label '{label}' starts or ends with '-'"));
    }
    Ok(())
}

impl TryFrom<String> for DomainName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> Self {
        value.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's short name: one DNS label, which becomes `<tenant>.<key zone>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

/// Labels a tenant may not take, because the key zone uses them itself.
const RESERVED_TENANT_NAMES: [&str; 2] = ["mail", "_domainkey"];

impl TenantName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantName {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let name = text.to_ascii_lowercase();
        let bad = |why: String| Error::TenantName {
            name: text.to_string(),
            why,
        };
        check_label(&name).map_err(|why| bad(why.replace("label", "name")))?;
        if RESERVED_TENANT_NAMES.contains(&name.as_str()) {
            return Err(bad("it is reserved for the key zone's own use".into()));
        }
        Ok(TenantName(name))
    }
}

impl TryFrom<String> for TenantName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_canonicalised() {
        for (input, canonical) in [
            ("Contoso.COM", "contoso.com"),
            ("contoso.com.", "contoso.com"),
            ("mail.sub.contoso.co.uk", "mail.sub.contoso.co.uk"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.example", "a-b.example"),
        ] {
            assert_eq!(
                input.parse::<DomainName>().unwrap().as_str(),
                canonical,
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_domains_say_why() {
        for (input, why) in [
            ("", "empty"),
            ("com", "single label"),
            ("contoso..com", "empty label"),
            (".contoso.com", "empty label"),
            ("contoso.com..", "empty label"),
            ("-contoso.com", "starts or ends with '-'"),
            ("con_toso.com", "contains '_'"),
            ("contoso.com/x", "contains '/'"),
            ("contoso com", "white space"),
            ("192.168.1.1", "numeric"),
            (&format!("{}.com", "a".repeat(64)), "longer than 63"),
            (
                &format!("{}.com", vec!["a".repeat(60); 5].join(".")),
                "longer than 253",
            ),
        ] {
            let err = input.parse::<DomainName>().unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn within_respects_label_boundaries() {
        let zone: DomainName = "dkim.example.net".parse().unwrap();
        for (name, inside) in [
            ("dkim.example.net", true),
            ("contoso.dkim.example.net", true),
            ("notdkim.example.net", false),
            ("example.net", false),
        ] {
            assert_eq!(
                name.parse::<DomainName>().unwrap().is_within(&zone),
                inside,
                "{name}"
            );
        }
    }

    #[test]
    fn tenant_names_are_single_labels() {
        assert_eq!("Contoso".parse::<TenantName>().unwrap().as_str(), "contoso");
        for bad in ["", "a.b", "mail", "-x", "x y"] {
            assert!(bad.parse::<TenantName>().is_err(), "{bad}");
        }
    }
}
