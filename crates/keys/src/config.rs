//! Signing configs (what `Get-DkimSigningConfig` shows) and the names they publish.

use std::fmt;

use serde::Serialize;

use crate::Error;
use crate::name::{DomainName, TenantName};
use crate::rotation::Slots;
use crate::spec::{Algorithm, Canonicalization, Slot};
use crate::time::{Span, Timestamp};

/// The DNS zone signet serves, and the names it derives for tenants and domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyZone(DomainName);

impl KeyZone {
    pub fn new(zone: DomainName) -> KeyZone {
        KeyZone(zone)
    }

    pub fn name(&self) -> &DomainName {
        &self.0
    }

    /// `<tenant>.<key zone>`: the tenant's initial domain.
    pub fn initial_domain(&self, tenant: &TenantName) -> Result<DomainName, Error> {
        self.0.child(tenant.as_str())
    }

    /// `<tenant>.mail.<key zone>`: for routing only, never DKIM-enabled.
    pub fn routing_domain(&self, tenant: &TenantName) -> Result<DomainName, Error> {
        self.0.child("mail")?.child(tenant.as_str())
    }

    /// The selector under the initial domain that reaches `domain`'s key in `slot` directly:
    /// `selector1-contoso-com`.
    pub fn default_selector(domain: &DomainName, slot: Slot) -> String {
        format!("{}-{}", slot.name(), domain.dashed())
    }

    /// Where `domain`'s key in `slot` is published, and where the customer's CNAME points:
    /// `selector1-contoso-com._domainkey.contoso.<key zone>`.
    pub fn record_name(&self, tenant: &TenantName, domain: &DomainName, slot: Slot) -> String {
        format!(
            "{}._domainkey.{}.{}",
            Self::default_selector(domain, slot),
            tenant.as_str(),
            self.0.as_str()
        )
    }

    /// Refuses a domain whose delegation names would not fit in DNS.
    pub fn check_fits(&self, tenant: &TenantName, domain: &DomainName) -> Result<(), Error> {
        let label = Self::default_selector(domain, Slot::Selector1);
        if label.len() > 63 {
            return Err(Error::DomainName {
                name: domain.to_string(),
                why: format!(
                    "it is too long to delegate: the selector label '{label}' would have {} characters and DNS allows 63 (the domain may have at most 53)",
                    label.len()
                ),
            });
        }
        let name = self.record_name(tenant, domain, Slot::Selector1);
        if name.len() > 253 {
            return Err(Error::DomainName {
                name: domain.to_string(),
                why: format!(
                    "its key record name would have {} characters; DNS allows 253",
                    name.len()
                ),
            });
        }
        Ok(())
    }
}

/// The name the customer publishes a CNAME at: `selector1._domainkey.contoso.com`.
pub fn customer_selector_name(domain: &DomainName, slot: Slot) -> String {
    format!("{}._domainkey.{}", slot.name(), domain.as_str())
}

/// Which accepted domain of a tenant a config belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DomainKind {
    /// `<tenant>.<key zone>`: served by signet itself, always `Valid`.
    Initial,
    /// `<tenant>.mail.<key zone>`: routing only, never has a signing config.
    Routing,
    /// A customer domain that delegates with two CNAMEs.
    Custom,
}

impl fmt::Display for DomainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DomainKind::Initial => "Initial",
            DomainKind::Routing => "Routing",
            DomainKind::Custom => "Custom",
        })
    }
}

/// `Status` of a signing config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "NoDKIMKeys")]
    NoDkimKeys,
    CnameMissing,
    Valid,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::NoDkimKeys => "NoDKIMKeys",
            Status::CnameMissing => "CnameMissing",
            Status::Valid => "Valid",
        })
    }
}

/// What a lookup of one customer CNAME found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnameFinding {
    Correct,
    Missing,
    /// A CNAME exists but points at the given target instead of signet's.
    Elsewhere(String),
}

impl CnameFinding {
    /// Compares what DNS returned for the customer's selector name with the expected target.
    pub fn judge(found: Option<&str>, expected: &str) -> CnameFinding {
        match found.map(|f| f.trim_end_matches('.').to_ascii_lowercase()) {
            None => CnameFinding::Missing,
            Some(f) if f == expected => CnameFinding::Correct,
            Some(f) => CnameFinding::Elsewhere(f),
        }
    }

    /// A short text for one selector, e.g. `missing` or `points to x instead of y`.
    pub fn describe(&self, expected: &str) -> String {
        match self {
            CnameFinding::Correct => format!("points to {expected}"),
            CnameFinding::Missing => "no CNAME record found".into(),
            CnameFinding::Elsewhere(target) => format!("points to {target} instead of {expected}"),
        }
    }
}

/// The outcome of the last CNAME check of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnameCheck {
    pub at: Timestamp,
    pub selector1: CnameFinding,
    pub selector2: CnameFinding,
}

impl CnameCheck {
    pub fn finding(&self, slot: Slot) -> &CnameFinding {
        match slot {
            Slot::Selector1 => &self.selector1,
            Slot::Selector2 => &self.selector2,
        }
    }

    pub fn both_correct(&self) -> bool {
        self.selector1 == CnameFinding::Correct && self.selector2 == CnameFinding::Correct
    }
}

/// The most recent rotation, kept after it completes as Exchange Online does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationRecord {
    pub rotate_on: Timestamp,
    pub before: Slot,
    pub after: Slot,
}

/// How mail from a domain is signed right now (`docs/reference.md`, "Which mail is signed").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningMode {
    /// `d=<domain>; s=selectorN`: enabled and the CNAMEs are in place.
    Custom { slot: Slot },
    /// `d=<initial domain>; s=selectorN-<domain dashed>`: the same key, reached directly.
    Default { slot: Slot },
    /// No key.
    Unsigned,
}

/// The DKIM settings of one accepted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningConfig {
    pub domain: DomainName,
    pub tenant: TenantName,
    pub kind: DomainKind,
    pub enabled: bool,
    pub algorithm: Algorithm,
    pub header_canonicalization: Canonicalization,
    pub body_canonicalization: Canonicalization,
    pub include_signature_creation_time: bool,
    pub include_key_expiration: bool,
    /// Automatic rotation for this domain; `None` follows the installation's setting.
    pub rotation_interval: Option<Span>,
    pub slots: Slots,
    pub last_rotation: Option<RotationRecord>,
    pub cname_check: Option<CnameCheck>,
    pub created: Timestamp,
    pub changed: Timestamp,
}

impl SigningConfig {
    pub fn status(&self) -> Status {
        if self.slots.is_empty() {
            Status::NoDkimKeys
        } else if self.kind == DomainKind::Initial
            || self
                .cname_check
                .as_ref()
                .is_some_and(CnameCheck::both_correct)
        {
            Status::Valid
        } else {
            Status::CnameMissing
        }
    }

    pub fn signing_mode(&self) -> SigningMode {
        let Some((slot, _)) = self.slots.signing() else {
            return SigningMode::Unsigned;
        };
        if self.kind == DomainKind::Custom && self.enabled && self.status() == Status::Valid {
            SigningMode::Custom { slot }
        } else {
            SigningMode::Default { slot }
        }
    }

    /// The words the Defender portal shows for this config.
    pub fn summary(&self) -> &'static str {
        let signing_custom = self.enabled
            && match self.kind {
                DomainKind::Initial => !self.slots.is_empty(),
                _ => self.status() == Status::Valid,
            };
        if self.slots.is_empty() {
            "No DKIM keys saved for this domain"
        } else if signing_custom && self.slots.awaiting().is_some() {
            "Rotating keys for this domain and signing DKIM signatures"
        } else if signing_custom {
            "Signing DKIM signatures for this domain"
        } else {
            "Not signing DKIM signatures for the domain"
        }
    }

    /// Why the status is what it is, per selector when CNAMEs are involved.
    pub fn status_detail(&self, zone: &KeyZone) -> String {
        if self.kind == DomainKind::Initial {
            return "initial domain: served directly from the key zone".into();
        }
        let Some(check) = &self.cname_check else {
            return "CNAME records not checked yet".into();
        };
        Slot::BOTH
            .iter()
            .map(|slot| {
                let expected = zone.record_name(&self.tenant, &self.domain, *slot);
                format!(
                    "{}: {}",
                    customer_selector_name(&self.domain, *slot),
                    check.finding(*slot).describe(&expected)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::material::PublicKey;
    use crate::rotation::KeyId;
    use crate::spec::{KeySpec, RsaBits};

    fn zone() -> KeyZone {
        KeyZone::new("dkim.example.net".parse().unwrap())
    }

    fn tenant() -> TenantName {
        "contoso".parse().unwrap()
    }

    #[test]
    fn record_names_follow_the_exchange_pattern() {
        let domain: DomainName = "contoso.com".parse().unwrap();
        assert_eq!(
            zone().record_name(&tenant(), &domain, Slot::Selector1),
            "selector1-contoso-com._domainkey.contoso.dkim.example.net"
        );
        let initial = zone().initial_domain(&tenant()).unwrap();
        assert_eq!(initial.as_str(), "contoso.dkim.example.net");
        assert_eq!(
            zone().record_name(&tenant(), &initial, Slot::Selector2),
            "selector2-contoso-dkim-example-net._domainkey.contoso.dkim.example.net"
        );
        assert_eq!(
            zone().routing_domain(&tenant()).unwrap().as_str(),
            "contoso.mail.dkim.example.net"
        );
        assert_eq!(
            customer_selector_name(&domain, Slot::Selector2),
            "selector2._domainkey.contoso.com"
        );
    }

    #[test]
    fn domains_too_long_to_delegate_are_refused() {
        let ok: DomainName = format!("{}.com", "a".repeat(49)).parse().unwrap();
        assert!(zone().check_fits(&tenant(), &ok).is_ok());
        let long: DomainName = format!("{}.com", "a".repeat(50)).parse().unwrap();
        let err = zone().check_fits(&tenant(), &long).unwrap_err().to_string();
        assert!(err.contains("DNS allows 63"), "{err}");
    }

    #[test]
    fn cname_findings_compare_case_and_dot_insensitively() {
        let expected = "selector1-contoso-com._domainkey.contoso.dkim.example.net";
        assert_eq!(
            CnameFinding::judge(
                Some("SELECTOR1-contoso-com._domainkey.contoso.dkim.example.net."),
                expected
            ),
            CnameFinding::Correct
        );
        assert_eq!(CnameFinding::judge(None, expected), CnameFinding::Missing);
        assert_eq!(
            CnameFinding::judge(Some("other.example."), expected),
            CnameFinding::Elsewhere("other.example".into())
        );
    }

    fn config(kind: DomainKind, enabled: bool, check: Option<CnameCheck>) -> SigningConfig {
        let public = PublicKey {
            spec: KeySpec::Rsa(RsaBits::B2048),
            bytes: vec![1],
        };
        SigningConfig {
            domain: "contoso.com".parse().unwrap(),
            tenant: tenant(),
            kind,
            enabled,
            algorithm: Algorithm::RsaSha256,
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Relaxed,
            include_signature_creation_time: true,
            include_key_expiration: false,
            rotation_interval: None,
            slots: Slots::with_first_key(KeyId("a".into()), public, Timestamp::from_unix(0)),
            last_rotation: None,
            cname_check: check,
            created: Timestamp::from_unix(0),
            changed: Timestamp::from_unix(0),
        }
    }

    #[test]
    fn status_and_signing_mode_follow_the_cnames() {
        let at = Timestamp::from_unix(5);
        let good = CnameCheck {
            at,
            selector1: CnameFinding::Correct,
            selector2: CnameFinding::Correct,
        };
        let half = CnameCheck {
            selector2: CnameFinding::Missing,
            ..good.clone()
        };

        let c = config(DomainKind::Custom, true, Some(good.clone()));
        assert_eq!(
            (c.status(), c.signing_mode()),
            (
                Status::Valid,
                SigningMode::Custom {
                    slot: Slot::Selector1
                }
            )
        );
        assert_eq!(c.summary(), "Signing DKIM signatures for this domain");

        let c = config(DomainKind::Custom, true, Some(half));
        assert_eq!(
            (c.status(), c.signing_mode()),
            (
                Status::CnameMissing,
                SigningMode::Default {
                    slot: Slot::Selector1
                }
            )
        );
        assert!(
            c.status_detail(&zone())
                .contains("selector2._domainkey.contoso.com: no CNAME record found")
        );

        let c = config(DomainKind::Custom, false, Some(good));
        assert_eq!(
            c.signing_mode(),
            SigningMode::Default {
                slot: Slot::Selector1
            }
        );
        assert_eq!(c.summary(), "Not signing DKIM signatures for the domain");

        let c = config(DomainKind::Initial, true, None);
        assert_eq!(c.status(), Status::Valid);

        let mut c = config(DomainKind::Custom, true, None);
        c.slots = Slots::default();
        assert_eq!(
            (c.status(), c.signing_mode()),
            (Status::NoDkimKeys, SigningMode::Unsigned)
        );
        assert_eq!(c.summary(), "No DKIM keys saved for this domain");
    }
}
