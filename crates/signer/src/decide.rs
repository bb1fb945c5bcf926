//! Which mail is signed, and as whom (`docs/reference.md`, "Which mail is signed"). Pure:
//! configs in, a decision out.

use std::collections::HashMap;

use signet_keys::{
    Canonicalization, DomainKind, DomainName, KeyId, KeyZone, SigningConfig, SigningMode, Span,
    TenantName,
};

/// What the gateway knows of one tenant when a message arrives.
#[derive(Debug, Clone)]
pub struct TenantView {
    pub tenant: TenantName,
    pub initial_domain: DomainName,
    /// Every accepted domain, with its signing config if it has one.
    pub domains: HashMap<DomainName, Option<SigningConfig>>,
}

/// Installation-wide choices (`docs/reference.md`, "Which mail is signed", cases 3 and 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningPolicy {
    /// Refuse mail whose `From` domain the tenant has not accepted (case 3). Default on.
    pub refuse_unaccepted: bool,
    /// Leave mail unsigned when every recipient is in the tenant's accepted domains (case 4).
    pub skip_intra_organisation: bool,
    /// `x=` distance when a config asks for `IncludeKeyExpiration`.
    pub expiration: Span,
}

impl Default for SigningPolicy {
    fn default() -> Self {
        SigningPolicy {
            refuse_unaccepted: true,
            skip_intra_organisation: true,
            expiration: Span::days(7),
        }
    }
}

/// How to sign one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPlan {
    /// `d=`
    pub domain: DomainName,
    /// `s=`
    pub selector: String,
    pub key: KeyId,
    pub header_canonicalization: Canonicalization,
    pub body_canonicalization: Canonicalization,
    /// `x=` distance from `t=`, when the config includes key expiration.
    pub expiration: Option<Span>,
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Sign(SigningPlan),
    /// Passed on unsigned, for the given reason (intra-organisation mail).
    Unsigned(String),
    /// Refused (`550 5.7.1` at the relay), for the given reason.
    Refuse(String),
}

/// Decides for a message from `from` (the `From:` domain) to `recipients` (their domains).
pub fn decide(
    tenant: &TenantView,
    from: &DomainName,
    recipients: &[DomainName],
    policy: &SigningPolicy,
) -> Decision {
    let Some(entry) = tenant.domains.get(from) else {
        let reason = format!(
            "{from} is not an accepted domain of tenant '{}'",
            tenant.tenant
        );
        return if policy.refuse_unaccepted {
            Decision::Refuse(reason)
        } else {
            Decision::Unsigned(reason)
        };
    };
    if policy.skip_intra_organisation
        && !recipients.is_empty()
        && recipients.iter().all(|r| tenant.domains.contains_key(r))
    {
        return Decision::Unsigned("every recipient is inside the organisation".into());
    }
    // A domain without a config (its config was removed) signs with the tenant's default key.
    let config = entry
        .as_ref()
        .filter(|c| !c.slots.is_empty() && c.kind != DomainKind::Routing)
        .or_else(|| {
            tenant
                .domains
                .get(&tenant.initial_domain)
                .and_then(Option::as_ref)
        });
    let Some(config) = config else {
        return Decision::Unsigned(format!("tenant '{}' has no DKIM key", tenant.tenant));
    };
    let (domain, selector, slot) = match config.signing_mode() {
        SigningMode::Custom { slot } => (config.domain.clone(), slot.name().to_string(), slot),
        SigningMode::Default { slot } => (
            tenant.initial_domain.clone(),
            KeyZone::default_selector(&config.domain, slot),
            slot,
        ),
        SigningMode::Unsigned => {
            return Decision::Unsigned(format!("{} has no DKIM key", config.domain));
        }
    };
    let key = config
        .slots
        .get(slot)
        .map(|k| k.id.clone())
        .expect("the signing slot holds a key");
    Decision::Sign(SigningPlan {
        domain,
        selector,
        key,
        header_canonicalization: config.header_canonicalization,
        body_canonicalization: config.body_canonicalization,
        expiration: config.include_key_expiration.then_some(policy.expiration),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_keys::{
        Algorithm, CnameCheck, CnameFinding, KeySpec, PublicKey, RsaBits, Slots, Timestamp,
    };

    fn config(domain: &str, kind: DomainKind, enabled: bool, cnames: bool) -> SigningConfig {
        let at = Timestamp::from_unix(0);
        let public = PublicKey {
            spec: KeySpec::Rsa(RsaBits::B2048),
            bytes: vec![1],
        };
        SigningConfig {
            domain: domain.parse().unwrap(),
            tenant: "contoso".parse().unwrap(),
            kind,
            enabled,
            algorithm: Algorithm::RsaSha256,
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Simple,
            include_signature_creation_time: true,
            include_key_expiration: false,
            rotation_interval: None,
            slots: Slots::with_first_key(KeyId(format!("key-{domain}")), public, at),
            last_rotation: None,
            cname_check: cnames.then_some(CnameCheck {
                at,
                selector1: CnameFinding::Correct,
                selector2: CnameFinding::Correct,
            }),
            created: at,
            changed: at,
        }
    }

    fn tenant() -> TenantView {
        let initial: DomainName = "contoso.dkim.example.net".parse().unwrap();
        let mut domains = HashMap::new();
        domains.insert(
            initial.clone(),
            Some(config(
                "contoso.dkim.example.net",
                DomainKind::Initial,
                true,
                false,
            )),
        );
        domains.insert(
            "contoso.com".parse().unwrap(),
            Some(config("contoso.com", DomainKind::Custom, true, true)),
        );
        domains.insert(
            "sub.contoso.com".parse().unwrap(),
            Some(config("sub.contoso.com", DomainKind::Custom, false, true)),
        );
        domains.insert(
            "gone.contoso.com".parse().unwrap(),
            Some(config("gone.contoso.com", DomainKind::Custom, true, false)),
        );
        domains.insert("nokey.contoso.com".parse().unwrap(), None);
        TenantView {
            tenant: "contoso".parse().unwrap(),
            initial_domain: initial,
            domains,
        }
    }

    fn d(name: &str) -> DomainName {
        name.parse().unwrap()
    }

    fn plan(from: &str) -> (String, String, String) {
        match decide(
            &tenant(),
            &d(from),
            &[d("example.org")],
            &SigningPolicy::default(),
        ) {
            Decision::Sign(p) => (p.domain.to_string(), p.selector, p.key.0),
            other => panic!("{from}: {other:?}"),
        }
    }

    #[test]
    fn the_four_cases_of_the_spec() {
        // 1. Enabled and Valid: the customer's own domain.
        assert_eq!(
            plan("contoso.com"),
            (
                "contoso.com".into(),
                "selector1".into(),
                "key-contoso.com".into()
            )
        );
        // 2. Not enabled, or enabled with vanished CNAMEs: the same key through the initial domain.
        assert_eq!(
            plan("sub.contoso.com"),
            (
                "contoso.dkim.example.net".into(),
                "selector1-sub-contoso-com".into(),
                "key-sub.contoso.com".into()
            )
        );
        assert_eq!(plan("gone.contoso.com").1, "selector1-gone-contoso-com");
        // ...and an accepted domain without a config signs with the tenant's default key.
        assert_eq!(
            plan("nokey.contoso.com"),
            (
                "contoso.dkim.example.net".into(),
                "selector1-contoso-dkim-example-net".into(),
                "key-contoso.dkim.example.net".into()
            )
        );
        // 3. Not accepted: refused, or passed unsigned when so configured.
        let refused = decide(
            &tenant(),
            &d("fabrikam.com"),
            &[d("example.org")],
            &SigningPolicy::default(),
        );
        assert!(
            matches!(refused, Decision::Refuse(ref why) if why.contains("not an accepted domain")),
            "{refused:?}"
        );
        let lenient = SigningPolicy {
            refuse_unaccepted: false,
            ..SigningPolicy::default()
        };
        assert!(matches!(
            decide(&tenant(), &d("fabrikam.com"), &[d("example.org")], &lenient),
            Decision::Unsigned(_)
        ));
        // 4. Every recipient inside the organisation: not signed, unless configured otherwise.
        let internal = [d("contoso.com"), d("sub.contoso.com")];
        assert!(matches!(
            decide(
                &tenant(),
                &d("contoso.com"),
                &internal,
                &SigningPolicy::default()
            ),
            Decision::Unsigned(_)
        ));
        let always = SigningPolicy {
            skip_intra_organisation: false,
            ..SigningPolicy::default()
        };
        assert!(matches!(
            decide(&tenant(), &d("contoso.com"), &internal, &always),
            Decision::Sign(_)
        ));
        let mixed = [d("contoso.com"), d("example.org")];
        assert!(matches!(
            decide(
                &tenant(),
                &d("contoso.com"),
                &mixed,
                &SigningPolicy::default()
            ),
            Decision::Sign(_)
        ));
    }
}
