use signet_keys::{
    Algorithm, Canonicalization, CnameCheck, CnameFinding, DomainKind, KeyId, KeySpec, KeyState,
    PublicKey, RotationPolicy, RotationRecord, RsaBits, SigningConfig, Slot, Slots, Span,
    Timestamp,
};

use super::*;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix(seconds)
}

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(&dir.path().join("signet.db")).await.unwrap();
    (dir, store)
}

fn public(n: u8) -> PublicKey {
    PublicKey {
        spec: KeySpec::Rsa(RsaBits::B2048),
        bytes: vec![n; 4],
    }
}

fn config(domain: &str) -> SigningConfig {
    SigningConfig {
        domain: domain.parse().unwrap(),
        tenant: "contoso".parse().unwrap(),
        kind: DomainKind::Custom,
        enabled: false,
        algorithm: Algorithm::RsaSha256,
        header_canonicalization: Canonicalization::Relaxed,
        body_canonicalization: Canonicalization::Simple,
        include_signature_creation_time: true,
        include_key_expiration: false,
        rotation_interval: Some(Span::days(30)),
        slots: Slots::with_first_key(KeyId("k1".into()), public(1), t(10)),
        last_rotation: None,
        cname_check: None,
        created: t(10),
        changed: t(10),
    }
}

async fn with_domain(store: &Store, domain: &str) {
    let mut tx = store.begin().await.unwrap();
    let tenant: TenantName = "contoso".parse().unwrap();
    if tx.tenant(&tenant).await.unwrap().is_none() {
        tx.insert_tenant(&tenant, t(0)).await.unwrap();
    }
    let accepted = AcceptedDomain {
        name: domain.parse().unwrap(),
        tenant,
        kind: DomainKind::Custom,
        created: t(1),
    };
    tx.insert_domain(&accepted).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn configs_round_trip_with_their_slots() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    let mut c = config("contoso.com");
    let mut tx = store.begin().await.unwrap();
    tx.save_config(&c, &[(KeyId("k1".into()), vec![9, 9])])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (slots, _) = c
        .slots
        .begin_rotation(KeyId("k2".into()), public(2), t(20), Span::hours(96))
        .unwrap();
    c.slots = slots;
    c.last_rotation = Some(RotationRecord {
        rotate_on: t(20 + 96 * 3600),
        before: Slot::Selector1,
        after: Slot::Selector2,
    });
    c.cname_check = Some(CnameCheck {
        at: t(30),
        selector1: CnameFinding::Correct,
        selector2: CnameFinding::Elsewhere("x.example".into()),
    });
    c.enabled = true;
    let mut tx = store.begin().await.unwrap();
    tx.save_config(&c, &[(KeyId("k2".into()), vec![7])])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let loaded = tx
        .config(&"contoso.com".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, c);
    assert_eq!(tx.configs().await.unwrap(), vec![c]);
    assert_eq!(
        tx.sealed_key(&KeyId("k2".into())).await.unwrap(),
        Some(vec![7])
    );
}

#[tokio::test]
async fn the_serial_moves_only_when_published_keys_change() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    let serial =
        |store: Store| async move { store.begin().await.unwrap().zone_serial().await.unwrap() };
    assert_eq!(serial(store.clone()).await, 1);

    let mut c = config("contoso.com");
    let mut tx = store.begin().await.unwrap();
    tx.save_config(&c, &[(KeyId("k1".into()), vec![1])])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(serial(store.clone()).await, 2);

    c.enabled = true;
    let mut tx = store.begin().await.unwrap();
    tx.save_config(&c, &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        serial(store.clone()).await,
        2,
        "a setting change publishes nothing new"
    );

    // Rotate, switch, retire: the retired key's row and sealed half are gone.
    let policy = RotationPolicy {
        delay: Span::seconds_from(10),
        retention: Span::seconds_from(10),
    };
    let (slots, _) = c
        .slots
        .begin_rotation(KeyId("k2".into()), public(2), t(20), policy.delay)
        .unwrap();
    let (slots, _) = slots.advance(&policy, t(30), true);
    let (slots, _) = slots.advance(&policy, t(40), true);
    assert_eq!(slots.iter().count(), 1);
    c.slots = slots;
    let mut tx = store.begin().await.unwrap();
    tx.save_config(&c, &[(KeyId("k2".into()), vec![2])])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.zone_serial().await.unwrap(), 3);
    assert_eq!(tx.sealed_key(&KeyId("k1".into())).await.unwrap(), None);
    let published = tx.published_keys().await.unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(
        (published[0].slot, &published[0].public),
        (Slot::Selector2, &public(2))
    );
    let loaded = tx
        .config(&"contoso.com".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        loaded.slots.get(Slot::Selector2).unwrap().state,
        KeyState::Signing
    );

    assert!(
        tx.delete_config(&"contoso.com".parse().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(tx.zone_serial().await.unwrap(), 4);
    assert!(tx.published_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_uncommitted_transaction_leaves_nothing() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    {
        let mut tx = store.begin().await.unwrap();
        tx.save_config(&config("contoso.com"), &[(KeyId("k1".into()), vec![1])])
            .await
            .unwrap();
        // dropped without commit
    }
    let mut tx = store.begin().await.unwrap();
    assert!(tx.configs().await.unwrap().is_empty());
    assert_eq!(tx.zone_serial().await.unwrap(), 1);
}

#[tokio::test]
async fn a_new_key_without_its_sealed_half_is_refused() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    let mut tx = store.begin().await.unwrap();
    let err = tx
        .save_config(&config("contoso.com"), &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no sealed private half"), "{err}");
}

#[tokio::test]
async fn domains_sharing_a_dashed_form_are_found() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "foo-bar.example").await;
    let mut tx = store.begin().await.unwrap();
    let tenant: TenantName = "contoso".parse().unwrap();
    let clash = tx
        .domain_by_dashed(&tenant, "foo-bar-example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(clash.name.as_str(), "foo-bar.example");
    assert_eq!(tx.domains(Some(&tenant)).await.unwrap().len(), 1);
    assert_eq!(tx.domains(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn audit_entries_are_kept_in_order_and_filtered() {
    let (_dir, store) = fresh().await;
    let mut tx = store.begin().await.unwrap();
    for (i, domain) in [Some("a.example"), None, Some("b.example")]
        .into_iter()
        .enumerate()
    {
        tx.append_audit(&AuditEntry {
            at: t(i64::try_from(i).unwrap()),
            actor: "alice".into(),
            action: format!("act{i}"),
            domain: domain.map(String::from),
            detail: "{}".into(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.audit(None).await.unwrap().len(), 3);
    let only_b = tx.audit(Some(&"b.example".parse().unwrap())).await.unwrap();
    assert_eq!(
        only_b.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["act2"]
    );
}

#[tokio::test]
async fn open_and_create_refuse_the_wrong_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signet.db");
    assert!(matches!(
        Store::open(&path).await,
        Err(StoreError::Missing(_))
    ));
    Store::create(&path).await.unwrap().close().await;
    assert!(matches!(
        Store::create(&path).await,
        Err(StoreError::Exists(_))
    ));
    Store::open(&path).await.unwrap();
}

#[tokio::test]
async fn the_database_and_its_journal_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    for file in ["signet.db", "signet.db-wal", "signet.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[tokio::test]
async fn the_key_zone_is_kept_and_domains_counted() {
    let (_dir, store) = fresh().await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.key_zone().await.unwrap(), None, "until recorded");
    let zone: DomainName = "dkim.example.net".parse().unwrap();
    tx.set_key_zone(&zone).await.unwrap();
    assert_eq!(tx.domain_count().await.unwrap(), 0);
    tx.commit().await.unwrap();
    with_domain(&store, "contoso.com").await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.key_zone().await.unwrap(), Some(zone));
    let other: DomainName = "keys.example.org".parse().unwrap();
    tx.set_key_zone(&other).await.unwrap();
    assert_eq!(tx.key_zone().await.unwrap(), Some(other));
    assert_eq!(tx.domain_count().await.unwrap(), 1);
}

#[tokio::test]
async fn connectors_round_trip_and_usernames_are_unique() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    let tenant: TenantName = "contoso".parse().unwrap();
    let relay = Connector {
        tenant: tenant.clone(),
        name: "office".into(),
        kind: ConnectorKind::Networks(vec![
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]),
        created: t(5),
    };
    let login = Connector {
        tenant: tenant.clone(),
        name: "app".into(),
        kind: ConnectorKind::Login {
            username: "app@contoso.com".into(),
            password_hash: "$argon2id$x".into(),
        },
        created: t(6),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_connector(&relay).await.unwrap();
    tx.insert_connector(&login).await.unwrap();
    assert_eq!(
        tx.connectors(Some(&tenant)).await.unwrap(),
        vec![login.clone(), relay.clone()]
    );
    let twin = Connector {
        name: "app2".into(),
        ..login
    };
    assert!(
        tx.insert_connector(&twin).await.is_err(),
        "a username belongs to one connector"
    );
    assert!(tx.delete_connector(&tenant, "office").await.unwrap());
    assert!(!tx.delete_connector(&tenant, "office").await.unwrap());
}

#[tokio::test]
async fn tokens_keep_only_a_digest() {
    let (_dir, store) = fresh().await;
    with_domain(&store, "contoso.com").await;
    let (_secret, digest) = signet_keys::TokenSecret::generate();
    let token = ApiToken {
        name: "ci".parse().unwrap(),
        scope: TokenScope::Tenant("contoso".parse().unwrap()),
        digest,
        created: t(5),
    };
    let admin = ApiToken {
        name: "admin".parse().unwrap(),
        scope: TokenScope::Admin,
        digest: TokenDigest::of("another"),
        created: t(6),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_token(&token).await.unwrap();
    tx.insert_token(&admin).await.unwrap();
    assert!(tx.insert_token(&admin).await.is_err(), "names are unique");
    assert_eq!(
        tx.tokens().await.unwrap(),
        vec![admin.clone(), token.clone()]
    );
    assert!(tx.delete_token(&admin.name).await.unwrap());
    assert!(!tx.delete_token(&admin.name).await.unwrap());
    assert_eq!(tx.tokens().await.unwrap(), vec![token]);
}

#[tokio::test]
async fn signing_domains_come_page_by_page() {
    let (_dir, store) = fresh().await;
    for d in ["a.example", "b.example", "c.example"] {
        with_domain(&store, d).await;
    }
    let mut tx = store.begin().await.unwrap();
    let contoso: TenantName = "contoso".parse().unwrap();
    let names = |page: Vec<AcceptedDomain>| {
        page.into_iter()
            .map(|d| d.name.to_string())
            .collect::<Vec<_>>()
    };
    let first = tx.signing_domains(None, None, 2).await.unwrap();
    assert_eq!(names(first.clone()), ["a.example", "b.example"]);
    let last = first.last().unwrap();
    let second = tx
        .signing_domains(Some(&contoso), Some((&last.tenant, &last.name)), 2)
        .await
        .unwrap();
    assert_eq!(names(second), ["c.example"]);
    let other: TenantName = "fabrikam".parse().unwrap();
    assert!(
        tx.signing_domains(Some(&other), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
