//! Use-cases against a real SQLite store, with DNS and time faked.

#![allow(clippy::too_many_lines)] // scenarios read top to bottom, step by step

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use signet_keys::{KeyState, KeyZone, RotationPolicy, Slot, Span, Status, Timestamp};

use super::*;

/// Customer DNS as a table; `None` answers make lookups fail (a timeout).
#[derive(Default)]
struct FakeDns {
    cnames: Mutex<HashMap<String, String>>,
    txts: Mutex<HashMap<String, String>>,
    down: Mutex<bool>,
}

impl Dns for FakeDns {
    async fn cname(&self, name: &str) -> Result<Option<String>, LookupError> {
        if *self.down.lock().unwrap() {
            return Err(LookupError("timed out".into()));
        }
        Ok(self.cnames.lock().unwrap().get(name).cloned())
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        if *self.down.lock().unwrap() {
            return Err(LookupError("timed out".into()));
        }
        let target = self
            .cnames
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or(name.to_string());
        Ok(self
            .txts
            .lock()
            .unwrap()
            .get(&target)
            .cloned()
            .into_iter()
            .collect())
    }
}

struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.0.load(Ordering::SeqCst))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    service: Service<FakeDns, FakeClock>,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("signet.db")).await.unwrap();
        let settings = Settings {
            zone: KeyZone::new("dkim.example.net".parse().unwrap()),
            rotation: RotationPolicy {
                delay: Span::hours(96),
                retention: Span::days(7),
            },
            check_interval: Span::hours(1),
            rotation_interval: None,
        };
        let service = Service::new(
            store,
            MasterKey::generate().unwrap(),
            FakeDns::default(),
            FakeClock(AtomicI64::new(1_800_000_000)),
            settings,
            "test",
        );
        Fixture { _dir: dir, service }
    }

    fn advance(&self, span: Span) {
        self.service
            .clock
            .0
            .fetch_add(span.seconds(), Ordering::SeqCst);
    }

    fn publish_cnames(&self, domain: &str) {
        for n in [1, 2] {
            self.service.dns.cnames.lock().unwrap().insert(
                format!("selector{n}._domainkey.{domain}"),
                format!(
                    "selector{n}-{}._domainkey.contoso.dkim.example.net",
                    domain.replace('.', "-")
                ),
            );
        }
    }

    /// Makes signet's own records visible to the fake resolver, as its DNS server would.
    async fn serve_zone(&self) {
        let mut tx = self.service.store.begin().await.unwrap();
        let published = tx.published_keys().await.unwrap();
        let mut txts = self.service.dns.txts.lock().unwrap();
        txts.clear();
        for key in published {
            let name = self
                .service
                .settings
                .zone
                .record_name(&key.tenant, &key.domain, key.slot);
            txts.insert(name, key.public.record().to_string());
        }
    }

    async fn snapshot(&self) -> (Vec<String>, usize, u32) {
        let mut tx = self.service.store.begin().await.unwrap();
        let configs = tx
            .configs()
            .await
            .unwrap()
            .iter()
            .map(|c| format!("{c:?}"))
            .collect();
        (
            configs,
            tx.audit(None).await.unwrap().len(),
            tx.zone_serial().await.unwrap(),
        )
    }
}

fn d(name: &str) -> DomainName {
    name.parse().unwrap()
}

async fn contoso() -> Fixture {
    let f = Fixture::new().await;
    f.service
        .add_tenant(&"contoso".parse().unwrap())
        .await
        .unwrap();
    f.service
        .add_domain(&"contoso".parse().unwrap(), &d("contoso.com"))
        .await
        .unwrap();
    f
}

#[tokio::test]
async fn a_tenant_gets_a_signing_initial_domain_and_a_routing_domain() {
    let f = contoso().await;
    let initial = f
        .service
        .config(&d("contoso.dkim.example.net"))
        .await
        .unwrap();
    assert!(initial.enabled);
    assert_eq!(initial.status(), Status::Valid);
    let routing = f
        .service
        .config(&d("contoso.mail.dkim.example.net"))
        .await
        .unwrap_err();
    assert!(
        routing.to_string().contains("can never be DKIM-enabled"),
        "{routing}"
    );
    let custom = f.service.config(&d("contoso.com")).await.unwrap();
    assert!(!custom.enabled);
    assert_eq!(custom.status(), Status::CnameMissing);
    assert_eq!(
        custom.signing_mode(),
        signet_keys::SigningMode::Default {
            slot: Slot::Selector1
        }
    );
}

#[tokio::test]
async fn enabling_without_cnames_is_refused_and_changes_nothing() {
    let f = contoso().await;
    let before = f.snapshot().await;
    let err = f
        .service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, AppError::CnameMissing(_)));
    assert!(
        text.starts_with("CNAME record does not exist for this config."),
        "{text}"
    );
    assert!(text.contains(
        "Points to address or value: selector2-contoso-com._domainkey.contoso.dkim.example.net"
    ));
    assert!(text.contains("selector1._domainkey.contoso.com: no CNAME record found"));
    assert_eq!(f.snapshot().await, before);

    f.service.dns.cnames.lock().unwrap().insert(
        "selector1._domainkey.contoso.com".into(),
        "elsewhere.example.".into(),
    );
    let text = f
        .service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("points to elsewhere.example instead of selector1-contoso-com"),
        "{text}"
    );

    *f.service.dns.down.lock().unwrap() = true;
    let err = f
        .service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_temporary());
    assert_eq!(f.snapshot().await, before);
}

#[tokio::test]
async fn a_full_rotation_waits_for_the_date_and_for_visibility() {
    let f = contoso().await;
    f.publish_cnames("contoso.com");
    let enabled = f
        .service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(enabled.status(), Status::Valid);
    assert_eq!(enabled.summary(), "Signing DKIM signatures for this domain");
    // Signing opens selector1's key and keeps it (the key cache).
    assert_eq!(signed_with(&f).await, "selector1");

    let rotated = f
        .service
        .rotate(&d("contoso.com"), Some(signet_keys::RsaBits::B1024))
        .await
        .unwrap();
    let rotation = rotated.last_rotation.unwrap();
    assert_eq!(
        (rotation.before, rotation.after),
        (Slot::Selector1, Slot::Selector2)
    );
    assert_eq!(
        rotated
            .slots
            .get(Slot::Selector2)
            .unwrap()
            .public
            .spec
            .bits(),
        1024
    );
    assert_eq!(
        rotated
            .slots
            .get(Slot::Selector1)
            .unwrap()
            .public
            .spec
            .bits(),
        2048,
        "size applies to the new key only"
    );
    assert_eq!(
        rotated.summary(),
        "Rotating keys for this domain and signing DKIM signatures"
    );
    let again = f.service.rotate(&d("contoso.com"), None).await.unwrap_err();
    assert!(again.to_string().contains("already in progress"), "{again}");

    // Day 3: too early, even though the new key is visible.
    f.serve_zone().await;
    f.advance(Span::hours(72));
    f.service.tick().await.unwrap();
    assert_eq!(
        f.service
            .config(&d("contoso.com"))
            .await
            .unwrap()
            .slots
            .signing()
            .unwrap()
            .0,
        Slot::Selector1
    );

    // Day 5: due, but the customer's CNAME for selector2 has vanished: the old key keeps signing.
    f.service
        .dns
        .cnames
        .lock()
        .unwrap()
        .remove("selector2._domainkey.contoso.com");
    f.advance(Span::hours(48));
    let report = f.service.tick().await.unwrap();
    let config = f.service.config(&d("contoso.com")).await.unwrap();
    assert_eq!(config.slots.signing().unwrap().0, Slot::Selector1);
    assert_eq!(config.status(), Status::CnameMissing);
    assert!(
        report
            .events
            .iter()
            .any(|e| e.contains("not yet visible at selector2._domainkey.contoso.com")),
        "{report:?}"
    );

    // The CNAME is back: the switch happens at the next pass.
    f.publish_cnames("contoso.com");
    f.advance(Span::hours(1));
    let report = f.service.tick().await.unwrap();
    assert!(
        report
            .events
            .iter()
            .any(|e| e.contains("switched signing from selector1 to selector2")),
        "{report:?}"
    );
    let config = f.service.config(&d("contoso.com")).await.unwrap();
    assert_eq!(config.slots.signing().unwrap().0, Slot::Selector2);
    // Mail is signed with the new key at once: the cache holds keys by id, not by domain.
    assert_eq!(signed_with(&f).await, "selector2");
    let new_key = &config.slots.get(Slot::Selector2).unwrap();
    assert_eq!(
        f.service
            .signing_key(&new_key.id)
            .await
            .unwrap()
            .public_key()
            .unwrap(),
        new_key.public
    );
    assert!(matches!(
        config.slots.get(Slot::Selector1).unwrap().state,
        KeyState::Retiring { .. }
    ));
    let refused = f.service.rotate(&d("contoso.com"), None).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("still published for mail in flight"),
        "{refused}"
    );

    // A week later the old record is withdrawn.
    let serial = f.snapshot().await.2;
    f.advance(Span::days(7));
    f.service.tick().await.unwrap();
    let config = f.service.config(&d("contoso.com")).await.unwrap();
    assert!(config.slots.get(Slot::Selector1).is_none());
    assert_eq!(f.snapshot().await.2, serial + 1);
    assert_eq!(
        f.service
            .records(&d("contoso.com"))
            .await
            .unwrap()
            .txts
            .len(),
        1
    );
}

#[tokio::test]
async fn rotation_needs_an_enabled_config() {
    let f = contoso().await;
    let err = f.service.rotate(&d("contoso.com"), None).await.unwrap_err();
    assert!(err.to_string().contains("not enabled"), "{err}");
}

#[tokio::test]
async fn automatic_rotation_starts_after_the_interval() {
    let f = contoso().await;
    let initial = d("contoso.dkim.example.net");
    f.advance(Span::days(29));
    let mut tx = f.service.store.begin().await.unwrap();
    let mut config = tx.config(&initial).await.unwrap().unwrap();
    config.rotation_interval = Some(Span::days(30));
    tx.save_config(&config, &[]).await.unwrap();
    tx.commit().await.unwrap();
    f.service.tick().await.unwrap();
    assert!(
        f.service
            .config(&initial)
            .await
            .unwrap()
            .slots
            .awaiting()
            .is_none()
    );
    f.advance(Span::days(1));
    let report = f.service.tick().await.unwrap();
    assert!(
        report
            .events
            .iter()
            .any(|e| e.contains("automatic rotation started")),
        "{report:?}"
    );
    // The initial domain is served by signet itself: it switches when the date comes.
    f.advance(Span::hours(96));
    f.service.tick().await.unwrap();
    assert_eq!(
        f.service
            .config(&initial)
            .await
            .unwrap()
            .slots
            .signing()
            .unwrap()
            .0,
        Slot::Selector2
    );
}

#[tokio::test]
async fn domains_are_checked_against_the_tenant_and_the_zone() {
    let f = contoso().await;
    let tenant = "contoso".parse().unwrap();
    for (domain, why) in [
        ("contoso.com", "already an accepted domain"),
        ("x.dkim.example.net", "inside the key zone"),
        ("contoso-com.example", "would share the selector names"),
    ] {
        if domain == "contoso-com.example" {
            f.service
                .add_domain(&tenant, &d("contoso.com.example"))
                .await
                .unwrap();
        }
        let err = f
            .service
            .add_domain(&tenant, &d(domain))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{domain}: {err}");
    }
    let err = f
        .service
        .add_domain(&"nobody".parse().unwrap(), &d("n.example"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"));
    let err = f.service.remove_tenant(&tenant).await.unwrap_err();
    assert!(
        err.to_string().contains("still has accepted domains"),
        "{err}"
    );
}

#[tokio::test]
async fn keys_open_with_the_master_key_and_import_goes_through_rotation() {
    let f = contoso().await;
    let config = f.service.config(&d("contoso.com")).await.unwrap();
    let (_, key) = config.slots.signing().unwrap();
    let private = f.service.private_key(&key.id).await.unwrap();
    assert_eq!(private.public_key().unwrap(), key.public);

    f.publish_cnames("contoso.com");
    f.service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let pem = openssl::rsa::Rsa::generate(2048)
        .unwrap()
        .private_key_to_pem()
        .unwrap();
    let imported = f.service.import_key(&d("contoso.com"), &pem).await.unwrap();
    assert_eq!(imported.slots.awaiting().unwrap().0, Slot::Selector2);
    let err = f
        .service
        .import_key(&d("contoso.com"), b"garbage")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not PEM"));
}

#[tokio::test]
async fn the_zone_lists_every_published_key_and_moves_its_serial() {
    let f = contoso().await;
    let before = f.service.zone_contents().await.unwrap();
    let names: Vec<&str> = before
        .records
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "selector1-contoso-com._domainkey.contoso.dkim.example.net",
            "selector1-contoso-dkim-example-net._domainkey.contoso.dkim.example.net",
        ]
    );
    assert!(
        before
            .records
            .iter()
            .all(|(_, value)| value.starts_with("v=DKIM1; k=rsa; p="))
    );
    f.service.remove_config(&d("contoso.com")).await.unwrap();
    let after = f.service.zone_contents().await.unwrap();
    assert_eq!(after.records.len(), 1);
    assert!(after.serial > before.serial);
    assert_eq!(f.service.zone_serial().await.unwrap(), after.serial);
}

/// The selector a message from contoso.com to the outside is signed with now.
async fn signed_with(f: &Fixture) -> String {
    let message = b"From: joe@contoso.com\r\nTo: ann@example.org\r\n\r\nHello\r\n";
    match f
        .service
        .sign_message(
            message,
            &[d("example.org")],
            &SigningPolicy::default(),
            None,
        )
        .await
        .unwrap()
    {
        SignOutcome::Signed { selector, .. } => selector,
        SignOutcome::Unsigned(why) => panic!("not signed: {why}"),
    }
}

#[tokio::test]
async fn messages_are_signed_as_the_spec_says() {
    let f = contoso().await;
    let message = b"From: joe@contoso.com\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\nHello\r\n";
    let policy = SigningPolicy::default();
    let outside = [d("example.org")];
    // Not enabled yet: default signing with the initial domain.
    let SignOutcome::Signed {
        domain,
        selector,
        header,
    } = f
        .service
        .sign_message(message, &outside, &policy, None)
        .await
        .unwrap()
    else {
        panic!("not signed")
    };
    assert_eq!(
        (domain.as_str(), selector.as_str()),
        ("contoso.dkim.example.net", "selector1-contoso-com")
    );
    assert!(
        header.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
        "{header}"
    );
    // Enabled: the customer's own domain.
    f.publish_cnames("contoso.com");
    f.service
        .set(
            &d("contoso.com"),
            SetOptions {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let SignOutcome::Signed {
        domain, selector, ..
    } = f
        .service
        .sign_message(message, &outside, &policy, None)
        .await
        .unwrap()
    else {
        panic!("not signed")
    };
    assert_eq!(
        (domain.as_str(), selector.as_str()),
        ("contoso.com", "selector1")
    );
    // Internal mail is not signed; unknown authors are refused.
    let internal = f
        .service
        .sign_message(message, &[d("contoso.com")], &policy, None)
        .await
        .unwrap();
    assert!(matches!(internal, SignOutcome::Unsigned(_)));
    let stranger = b"From: eve@fabrikam.com\r\n\r\nx\r\n";
    let err = f
        .service
        .sign_message(stranger, &outside, &policy, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("fabrikam.com is not an accepted domain of any tenant"),
        "{err}"
    );
    // A client of another tenant cannot sign as contoso.
    let other: signet_keys::TenantName = "fabrikam".parse().unwrap();
    f.service.add_tenant(&other).await.unwrap();
    let err = f
        .service
        .sign_message(message, &outside, &policy, Some(&other))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not an accepted domain of tenant 'fabrikam'"),
        "{err}"
    );
}

#[tokio::test]
async fn connectors_map_clients_and_logins_to_one_tenant() {
    let f = contoso().await;
    let contoso: signet_keys::TenantName = "contoso".parse().unwrap();
    let fabrikam: signet_keys::TenantName = "fabrikam".parse().unwrap();
    f.service.add_tenant(&fabrikam).await.unwrap();
    let nets =
        |list: &[&str]| NewConnector::Networks(list.iter().map(|n| n.parse().unwrap()).collect());
    f.service
        .add_connector(&contoso, "office", nets(&["192.0.2.0/24"]))
        .await
        .unwrap();
    let login = |user: &str, password: &str| NewConnector::Login {
        username: user.into(),
        password: zeroize::Zeroizing::new(password.into()),
    };
    f.service
        .add_connector(
            &contoso,
            "app",
            login("app@contoso.com", "correct horse battery"),
        )
        .await
        .unwrap();

    assert_eq!(
        f.service
            .tenant_for_client("192.0.2.9".parse().unwrap())
            .await
            .unwrap(),
        Some(contoso.clone())
    );
    assert_eq!(
        f.service
            .tenant_for_client("198.51.100.1".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        f.service
            .authenticate("app@contoso.com", "correct horse battery")
            .await
            .unwrap(),
        Some(contoso.clone())
    );
    assert_eq!(
        f.service
            .authenticate("app@contoso.com", "wrong horse battery")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        f.service
            .authenticate("nobody", "correct horse battery")
            .await
            .unwrap(),
        None
    );

    for (tenant, name, new, why) in [
        (
            &fabrikam,
            "lan",
            nets(&["192.0.2.128/25"]),
            "overlaps 192.0.2.0/24 of tenant 'contoso'",
        ),
        (
            &fabrikam,
            "all",
            nets(&["0.0.0.0/0"]),
            "never an open relay",
        ),
        (
            &fabrikam,
            "app",
            login("app@contoso.com", "another long password"),
            "already taken",
        ),
        (
            &fabrikam,
            "short",
            login("f@fabrikam.com", "short"),
            "too short",
        ),
        (
            &contoso,
            "office",
            nets(&["203.0.113.0/24"]),
            "already has a connector named 'office'",
        ),
        (
            &contoso,
            "bad name",
            nets(&["203.0.113.0/24"]),
            "not a connector name",
        ),
    ] {
        let err = f
            .service
            .add_connector(tenant, name, new)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{name}: {err}");
    }
    // The stored hash is argon2id, and the audit log never holds it.
    let stored = f.service.connectors(Some(&contoso)).await.unwrap();
    assert!(stored.iter().any(|c| matches!(&c.kind, signet_store::ConnectorKind::Login { password_hash, .. } if password_hash.starts_with("$argon2id$"))));
    let audit = f.service.audit(None).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.contains("argon2") && !e.detail.contains("battery"))
    );

    f.service
        .remove_connector(&contoso, "office")
        .await
        .unwrap();
    assert_eq!(
        f.service
            .tenant_for_client("192.0.2.9".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    assert!(
        f.service
            .remove_connector(&contoso, "office")
            .await
            .unwrap_err()
            .to_string()
            .contains("no connector named")
    );
}

#[tokio::test]
async fn the_key_zone_cannot_change_under_existing_domains() {
    let f = Fixture::new().await;
    let with_zone = |zone: &str| {
        let mut settings = f.service.settings.clone();
        settings.zone = KeyZone::new(zone.parse().unwrap());
        Service::new(
            f.service.store.clone(),
            MasterKey::generate().unwrap(),
            FakeDns::default(),
            FakeClock(AtomicI64::new(1_800_000_000)),
            settings,
            "test",
        )
    };
    // A database without a recorded zone (made before signet kept it) takes the configured one.
    f.service.check_key_zone().await.unwrap();
    let recorded = || async {
        f.service
            .store
            .begin()
            .await
            .unwrap()
            .key_zone()
            .await
            .unwrap()
    };
    assert_eq!(recorded().await, Some(d("dkim.example.net")));
    // Without domains the zone may still change.
    with_zone("keys.example.org")
        .check_key_zone()
        .await
        .unwrap();
    assert_eq!(recorded().await, Some(d("keys.example.org")));
    f.service.check_key_zone().await.unwrap();
    assert_eq!(recorded().await, Some(d("dkim.example.net")));

    f.service
        .add_tenant(&"contoso".parse().unwrap())
        .await
        .unwrap();
    let before = f.snapshot().await;
    let refused = with_zone("keys.example.org")
        .check_key_zone()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("key_zone is keys.example.org")
            && refused.contains("2 accepted domains were set up under dkim.example.net")
            && refused.contains("break"),
        "{refused}"
    );
    assert_eq!(f.snapshot().await, before);
    assert_eq!(recorded().await, Some(d("dkim.example.net")));
    f.service.check_key_zone().await.unwrap();
}

#[tokio::test]
async fn a_pass_that_changes_nothing_writes_no_audit_entry() {
    let f = contoso().await;
    f.publish_cnames("contoso.com");
    let audit = || async { f.service.audit(None).await.unwrap().len() };
    f.service.tick().await.unwrap();
    let after_first_check = audit().await;
    for _ in 0..3 {
        f.advance(Span::hours(2));
        f.service.tick().await.unwrap();
    }
    assert_eq!(audit().await, after_first_check, "the same findings again");
    let checked = f.service.config(&d("contoso.com")).await.unwrap();
    assert_eq!(
        checked.cname_check.unwrap().at,
        f.service.clock.now(),
        "the time of the last check is still kept"
    );

    // A finding that changes is recorded, with this domain's events only.
    f.service
        .dns
        .cnames
        .lock()
        .unwrap()
        .remove("selector2._domainkey.contoso.com");
    f.advance(Span::hours(2));
    f.service.tick().await.unwrap();
    let entries = f.service.audit(None).await.unwrap();
    assert_eq!(entries.len(), after_first_check + 1);
    assert_eq!(entries.last().unwrap().action, "scheduler.tick");
}

#[tokio::test]
async fn tokens_are_shown_once_and_see_their_tenant_only() {
    use signet_keys::{TokenName, TokenScope};
    let f = contoso().await;
    let fabrikam: TenantName = "fabrikam".parse().unwrap();
    f.service.add_tenant(&fabrikam).await.unwrap();
    f.service
        .add_domain(&fabrikam, &d("fabrikam.com"))
        .await
        .unwrap();
    let name: TokenName = "ci".parse().unwrap();
    let contoso_scope = TokenScope::Tenant("contoso".parse().unwrap());
    let (token, secret) = f
        .service
        .add_token(&name, contoso_scope.clone())
        .await
        .unwrap();
    let refused = f.service.add_token(&name, TokenScope::Admin).await;
    assert!(matches!(refused, Err(AppError::Refused(_))));
    let missing = f
        .service
        .add_token(
            &"x".parse().unwrap(),
            TokenScope::Tenant("nobody".parse().unwrap()),
        )
        .await;
    assert!(matches!(missing, Err(AppError::NotFound(_))));

    assert_eq!(
        f.service.token_for(secret.expose()).await.unwrap(),
        Some(token)
    );
    assert_eq!(f.service.token_for("wrong").await.unwrap(), None);
    let audit = f.service.audit(None).await.unwrap();
    let added = audit.iter().find(|e| e.action == "token.add").unwrap();
    assert!(!added.detail.contains(secret.expose()));

    // Another tenant's domain is exactly as absent as one nobody accepted.
    let theirs = f
        .service
        .visible_domain(&contoso_scope, &d("fabrikam.com"))
        .await
        .unwrap_err();
    let nobody = f
        .service
        .visible_domain(&contoso_scope, &d("nobody.example"))
        .await
        .unwrap_err();
    assert!(matches!(theirs, AppError::NotFound(_)));
    assert_eq!(
        theirs.to_string().replace("fabrikam.com", "X"),
        nobody.to_string().replace("nobody.example", "X")
    );
    assert!(
        f.service
            .visible_domain(&TokenScope::Admin, &d("fabrikam.com"))
            .await
            .is_ok()
    );
    let page = f
        .service
        .visible_configs(&contoso_scope, None, 10)
        .await
        .unwrap();
    let names: Vec<String> = page.views.iter().map(|v| v.domain().to_string()).collect();
    assert_eq!(names, ["contoso.com", "contoso.dkim.example.net"]);
    let entries = f.service.visible_audit(&contoso_scope, None).await.unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| {
        e.domain
            .as_deref()
            .is_some_and(|d| d.starts_with("contoso."))
    }));

    // A tenant with tokens stays until they are removed.
    let kept = f.service.remove_tenant(&"contoso".parse().unwrap()).await;
    assert!(matches!(kept, Err(AppError::Refused(_))));
    f.service.remove_token(&name).await.unwrap();
    assert!(matches!(
        f.service.remove_token(&name).await,
        Err(AppError::NotFound(_))
    ));
    assert_eq!(f.service.token_for(secret.expose()).await.unwrap(), None);
}

/// Tenants, domains and connectors as a tenant token sees them: its own only; another tenant's
/// tenant is as absent as one that never existed; refusals do not name another tenant.
#[tokio::test]
async fn a_tenant_scope_sees_its_own_tenant_domains_and_connectors() {
    use signet_keys::TokenScope;
    let f = contoso().await;
    let contoso: TenantName = "contoso".parse().unwrap();
    let fabrikam: TenantName = "fabrikam".parse().unwrap();
    let nobody: TenantName = "nobody".parse().unwrap();
    f.service.add_tenant(&fabrikam).await.unwrap();
    f.service
        .add_domain(&fabrikam, &d("fabrikam.com"))
        .await
        .unwrap();
    let hq = NewConnector::Networks(vec!["198.51.100.0/24".parse().unwrap()]);
    f.service.add_connector(&fabrikam, "hq", hq).await.unwrap();
    let mine = TokenScope::Tenant(contoso.clone());
    assert!(!crate::manages_tenants(&mine));
    assert!(crate::manages_tenants(&TokenScope::Admin));

    let tenants = f.service.visible_tenants(&mine).await.unwrap();
    assert_eq!(
        tenants.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["contoso"]
    );
    assert_eq!(
        f.service
            .visible_tenants(&TokenScope::Admin)
            .await
            .unwrap()
            .len(),
        2
    );
    let theirs = f
        .service
        .visible_tenant(&mine, &fabrikam)
        .await
        .unwrap_err();
    let absent = f.service.visible_tenant(&mine, &nobody).await.unwrap_err();
    assert!(matches!(theirs, AppError::NotFound(_)));
    assert_eq!(
        theirs.to_string().replace("fabrikam", "X"),
        absent.to_string().replace("nobody", "X")
    );

    let domains = f.service.visible_domains(&mine, None).await.unwrap();
    assert!(domains.iter().all(|d| d.tenant == contoso), "{domains:?}");
    assert!(
        f.service
            .visible_domains(&mine, Some(&fabrikam))
            .await
            .is_err()
    );
    let all = f
        .service
        .visible_domains(&TokenScope::Admin, None)
        .await
        .unwrap();
    assert!(all.iter().any(|d| d.tenant == fabrikam));

    let taken = f
        .service
        .add_visible_domain(&mine, &contoso, &d("fabrikam.com"))
        .await
        .unwrap_err();
    assert!(!taken.to_string().contains("fabrikam'"), "{taken}");
    let hidden = f
        .service
        .add_visible_domain(&mine, &fabrikam, &d("fabrikam.org"))
        .await
        .unwrap_err();
    assert!(matches!(hidden, AppError::NotFound(_)));

    let overlap = NewConnector::Networks(vec!["198.51.100.0/25".parse().unwrap()]);
    let refused = f
        .service
        .add_visible_connector(&mine, &contoso, "lan", overlap.clone())
        .await
        .unwrap_err();
    assert!(!refused.to_string().contains("fabrikam"), "{refused}");
    let told = f
        .service
        .add_visible_connector(&TokenScope::Admin, &contoso, "lan", overlap)
        .await
        .unwrap_err();
    assert!(told.to_string().contains("fabrikam"), "{told}");
    assert!(
        f.service
            .visible_connectors(&mine, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.service
            .visible_connectors(&mine, Some(&fabrikam))
            .await
            .is_err()
    );
    assert_eq!(
        f.service
            .visible_connectors(&TokenScope::Admin, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn configs_are_counted_by_status() {
    let f = contoso().await;
    let counts = |c: Vec<(signet_keys::Status, u64)>| {
        c.into_iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(f.service.config_counts().await.unwrap()),
        ["NoDKIMKeys=0", "CnameMissing=1", "Valid=1"]
    );
    f.service.remove_config(&d("contoso.com")).await.unwrap();
    assert_eq!(
        counts(f.service.config_counts().await.unwrap()),
        ["NoDKIMKeys=1", "CnameMissing=0", "Valid=1"]
    );
}

#[tokio::test]
async fn configs_come_page_by_page() {
    let f = contoso().await;
    for name in ["a.example", "b.example"] {
        f.service
            .add_domain(&"contoso".parse().unwrap(), &d(name))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .service
            .configs_page(None, after.as_ref(), 2)
            .await
            .unwrap();
        assert!(page.views.len() <= 2);
        seen.extend(page.views.iter().map(|v| v.domain().to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let all: Vec<String> = f
        .service
        .configs(None)
        .await
        .unwrap()
        .iter()
        .map(|v| v.domain().to_string())
        .collect();
    assert_eq!(seen, all);
    assert_eq!(seen.len(), 4);
}
