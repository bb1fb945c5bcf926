//! The DKIM lifecycle: `New-`, `Get-`, `Set-`, `Rotate-` and `Remove-DkimSigningConfig`, plus
//! key import, public export and the records a customer publishes.

use std::fmt;

use serde_json::json;
use signet_keys::{
    Algorithm, Canonicalization, CnameCheck, CnameFinding, DomainKind, DomainName, KeySpec,
    MINIMUM_ROTATION_INTERVAL, PrivateKey, RotationRecord, RsaBits, SigningConfig, Slot, Slots,
    Span, Status, TenantName, customer_selector_name,
};
use signet_store::{AcceptedDomain, Tx};

use crate::tenancy::not_accepted;
use crate::{AppError, Clock, Dns, NewKey, Result, Service, audit_view};

/// Options of `signet dkim new`.
#[derive(Debug, Clone, Default)]
pub struct NewOptions {
    pub algorithm: Algorithm,
    pub key_size: Option<RsaBits>,
    pub enabled: bool,
    pub header_canonicalization: Canonicalization,
    pub body_canonicalization: Canonicalization,
}

/// Options of `signet dkim set`; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    pub enabled: Option<bool>,
    pub header_canonicalization: Option<Canonicalization>,
    pub body_canonicalization: Option<Canonicalization>,
    /// Write `x=` (signature expiration, `t=` + 7 days) in this domain's signatures.
    pub include_key_expiration: Option<bool>,
    /// Automatic rotation for this domain: `Some(None)` turns it off (the installation's
    /// `[rotation] interval` applies then).
    pub rotation_interval: Option<Option<Span>>,
}

/// One row of `signet dkim get`: a config, or an accepted domain that has none.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built a few at a time, for output only
pub enum DkimView {
    Configured(SigningConfig),
    Unconfigured(AcceptedDomain),
}

/// Enabling refused because the customer's CNAMEs are not in place: the records to publish and
/// what the lookup found for each selector. Its text is the message the CLI prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingCnames {
    pub domain: DomainName,
    pub selectors: Vec<SelectorFinding>,
}

/// One selector of a [`MissingCnames`]: the customer's name, the target it must point to, and
/// what DNS had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorFinding {
    pub slot: Slot,
    /// `selectorN._domainkey.<domain>`
    pub name: String,
    /// The CNAME's target in the key zone.
    pub target: String,
    pub found: CnameFinding,
}

impl SelectorFinding {
    /// "no CNAME record found", "points to …", "points to X instead of Y".
    pub fn describe(&self) -> String {
        self.found.describe(&self.target)
    }
}

impl fmt::Display for MissingCnames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CNAME record does not exist for this config. Please publish the following two CNAME records first.\nDomain Name : {}",
            self.domain
        )?;
        for s in &self.selectors {
            write!(
                f,
                "\nHost Name : {}._domainkey\nPoints to address or value: {}",
                s.slot.name(),
                s.target
            )?;
        }
        f.write_str("\nIf you have already published the CNAME records, sync can take from a few minutes to several days depending on your DNS.")?;
        let found: Vec<String> = self
            .selectors
            .iter()
            .map(|s| format!("{}: {}", s.name, s.describe()))
            .collect();
        write!(f, "\nFound: {}", found.join("; "))
    }
}

/// Where a page of configs ends: the next page starts after this tenant and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub tenant: TenantName,
    pub domain: DomainName,
}

/// One page of `Get-DkimSigningConfig`, with where the next starts (`None`: this is the last).
#[derive(Debug, Clone)]
pub struct ConfigPage {
    pub views: Vec<DkimView>,
    pub next: Option<PageKey>,
}

impl DkimView {
    pub fn tenant(&self) -> &TenantName {
        match self {
            DkimView::Configured(config) => &config.tenant,
            DkimView::Unconfigured(domain) => &domain.tenant,
        }
    }

    pub fn domain(&self) -> &DomainName {
        match self {
            DkimView::Configured(config) => &config.domain,
            DkimView::Unconfigured(domain) => &domain.name,
        }
    }

    fn page_key(&self) -> PageKey {
        PageKey {
            tenant: self.tenant().clone(),
            domain: self.domain().clone(),
        }
    }
}

/// What must be published for a domain: the customer's CNAMEs and signet's own TXT records.
#[derive(Debug, Clone)]
pub struct Records {
    pub domain: DomainName,
    /// (name at the customer, target in the key zone); empty for the initial domain.
    pub cnames: Vec<(String, String)>,
    /// (name in the key zone, `v=DKIM1; …`), one per published key.
    pub txts: Vec<(String, String)>,
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// Creates a signing config with a new key in `selector1` (the domain must be accepted and
    /// have none). With `enabled`, the CNAMEs are checked first.
    pub async fn new_config(
        &self,
        domain: &DomainName,
        options: NewOptions,
    ) -> Result<SigningConfig> {
        let spec = KeySpec::new(options.algorithm, options.key_size)?;
        let accepted = self.accepted_custom_or_initial(domain).await?;
        let mut config =
            self.blank_config(&accepted.tenant, domain, accepted.kind, options.algorithm);
        config.header_canonicalization = options.header_canonicalization;
        config.body_canonicalization = options.body_canonicalization;
        if options.enabled {
            config.cname_check = Some(self.require_cnames(&config).await?);
            config.enabled = true;
        }
        let key = self.make_key(spec)?;
        config.slots = Slots::with_first_key(key.id.clone(), key.public.clone(), self.clock.now());
        let mut tx = self.store.begin_write().await?;
        if tx.config(domain).await?.is_some() {
            return Err(AppError::Refused(format!(
                "{domain} already has a DKIM signing config; use `signet dkim rotate {domain}` for a new key, or `signet dkim remove {domain}` first"
            )));
        }
        tx.save_config(&config, &[(key.id, key.sealed)]).await?;
        self.record(
            &mut tx,
            "dkim.new",
            Some(domain),
            json!({ "after": audit_view(&config) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(config)
    }

    /// Configs of one domain or all, with accepted domains that have none (shown as
    /// `NoDKIMKeys`, as the portal does). Routing domains never appear.
    pub async fn configs(&self, domain: Option<&DomainName>) -> Result<Vec<DkimView>> {
        let mut tx = self.store.begin().await?;
        if let Some(domain) = domain {
            let accepted = tx
                .domain(domain)
                .await?
                .ok_or_else(|| not_accepted(domain))?;
            refuse_routing(&accepted)?;
            return Ok(vec![match tx.config(domain).await? {
                Some(config) => DkimView::Configured(config),
                None => DkimView::Unconfigured(accepted),
            }]);
        }
        let mut configs = tx.configs().await?.into_iter().peekable();
        let mut views = Vec::new();
        for accepted in tx.domains(None).await? {
            if accepted.kind == DomainKind::Routing {
                continue;
            }
            match configs.next_if(|c| c.domain == accepted.name) {
                Some(config) => views.push(DkimView::Configured(config)),
                None => views.push(DkimView::Unconfigured(accepted)),
            }
        }
        Ok(views)
    }

    /// How many configs are in each `Status` (every status, zero included), as `signet dkim
    /// get` would show them: accepted domains without a config count as `NoDKIMKeys`.
    pub async fn config_counts(&self) -> Result<Vec<(Status, u64)>> {
        let mut counts = [
            (Status::NoDkimKeys, 0),
            (Status::CnameMissing, 0),
            (Status::Valid, 0),
        ];
        for view in self.configs(None).await? {
            let status = match &view {
                DkimView::Configured(config) => config.status(),
                DkimView::Unconfigured(_) => Status::NoDkimKeys,
            };
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == status) {
                *n += 1;
            }
        }
        Ok(counts.to_vec())
    }

    /// At most `limit` configs (with accepted domains that have none, as [`Self::configs`]),
    /// of one tenant or all, in the order of [`Self::configs`], starting after `after`.
    pub async fn configs_page(
        &self,
        tenant: Option<&TenantName>,
        after: Option<&PageKey>,
        limit: u32,
    ) -> Result<ConfigPage> {
        let mut tx = self.store.begin().await?;
        let domains = tx
            .signing_domains(
                tenant,
                after.map(|k| (&k.tenant, &k.domain)),
                limit.saturating_add(1),
            )
            .await?;
        let mut views = Vec::with_capacity(domains.len());
        let mut next = None;
        for (index, accepted) in domains.into_iter().enumerate() {
            if index == usize::try_from(limit).unwrap_or(usize::MAX) {
                // One more than asked for exists: the page is full and another follows.
                next = views.last().map(|view: &DkimView| view.page_key());
                break;
            }
            views.push(match tx.config(&accepted.name).await? {
                Some(config) => DkimView::Configured(config),
                None => DkimView::Unconfigured(accepted),
            });
        }
        Ok(ConfigPage { views, next })
    }

    /// One domain's config, or a clear error.
    pub async fn config(&self, domain: &DomainName) -> Result<SigningConfig> {
        let mut tx = self.store.begin().await?;
        self.existing_config(&mut tx, domain).await
    }

    /// Changes settings. Enabling checks the CNAMEs live and refuses, changing nothing, when
    /// they are not in place.
    pub async fn set(&self, domain: &DomainName, options: SetOptions) -> Result<SigningConfig> {
        let current = self.config(domain).await?;
        let check = match options.enabled {
            Some(true) if current.kind == DomainKind::Custom => {
                Some(self.require_cnames(&current).await?)
            }
            _ => None,
        };
        let mut tx = self.store.begin_write().await?;
        let before = self.existing_config(&mut tx, domain).await?;
        let mut after = before.clone();
        if let Some(enabled) = options.enabled {
            after.enabled = enabled;
        }
        if check.is_some() {
            after.cname_check = check;
        }
        if let Some(c) = options.header_canonicalization {
            after.header_canonicalization = c;
        }
        if let Some(c) = options.body_canonicalization {
            after.body_canonicalization = c;
        }
        if let Some(include) = options.include_key_expiration {
            after.include_key_expiration = include;
        }
        if let Some(interval) = options.rotation_interval {
            if let Some(span) = interval
                && span < MINIMUM_ROTATION_INTERVAL
            {
                return Err(AppError::Refused(format!(
                    "a rotation interval of {span} is too short; the minimum is {MINIMUM_ROTATION_INTERVAL}"
                )));
            }
            after.rotation_interval = interval;
        }
        after.changed = self.clock.now();
        tx.save_config(&after, &[]).await?;
        self.record(
            &mut tx,
            "dkim.set",
            Some(domain),
            json!({ "before": audit_view(&before), "after": audit_view(&after) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    /// Starts a rotation: a new key in the other slot, published at once, signing from
    /// `RotateOnDate` once verifiers can see it. `key_size` applies to the new key only.
    pub async fn rotate(
        &self,
        domain: &DomainName,
        key_size: Option<RsaBits>,
    ) -> Result<SigningConfig> {
        let current = self.config(domain).await?;
        let spec = match (current.algorithm, key_size) {
            (Algorithm::RsaSha256, None) => current
                .slots
                .signing()
                .map_or(KeySpec::Rsa(RsaBits::B2048), |(_, k)| k.public.spec),
            (algorithm, size) => KeySpec::new(algorithm, size)?,
        };
        let key = self.make_key(spec)?;
        self.rotate_to(domain, key, "dkim.rotate", true).await
    }

    /// Brings in an existing private key (migration from OpenDKIM). A domain without a config
    /// gets one with this key in `selector1`; otherwise the key enters by rotation, so it signs
    /// only once verifiers can see it.
    pub async fn import_key(&self, domain: &DomainName, pem: &[u8]) -> Result<SigningConfig> {
        let private = PrivateKey::from_pem(pem)?;
        let key = self.seal_key(&private)?;
        let mut tx = self.store.begin_write().await?;
        if tx.config(domain).await?.is_some() {
            drop(tx);
            return self.rotate_to(domain, key, "dkim.import", false).await;
        }
        drop(tx);
        let accepted = self.accepted_custom_or_initial(domain).await?;
        let mut config = self.blank_config(
            &accepted.tenant,
            domain,
            accepted.kind,
            private.spec().algorithm(),
        );
        config.enabled = accepted.kind == DomainKind::Initial;
        config.slots = Slots::with_first_key(key.id.clone(), key.public.clone(), self.clock.now());
        let mut tx = self.store.begin_write().await?;
        if tx.config(domain).await?.is_some() {
            return Err(AppError::Refused(format!(
                "{domain} got a signing config meanwhile; import again"
            )));
        }
        tx.save_config(&config, &[(key.id, key.sealed)]).await?;
        self.record(
            &mut tx,
            "dkim.import",
            Some(domain),
            json!({ "after": audit_view(&config) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(config)
    }

    async fn rotate_to(
        &self,
        domain: &DomainName,
        key: NewKey,
        action: &str,
        require_enabled: bool,
    ) -> Result<SigningConfig> {
        let mut tx = self.store.begin_write().await?;
        let before = self.existing_config(&mut tx, domain).await?;
        if require_enabled && !before.enabled {
            return Err(AppError::Refused(format!(
                "DKIM signing is not enabled for {domain}; keys can be rotated only for an enabled config (signet dkim set {domain} --enabled true)"
            )));
        }
        if before.status() == Status::NoDkimKeys {
            return Err(AppError::Refused(format!(
                "{domain} has no DKIM key to rotate from"
            )));
        }
        if key.public.spec.algorithm() != before.algorithm {
            return Err(AppError::Refused(format!(
                "{domain} signs with {}; a {} key cannot take over (remove the config and create it anew to change algorithm)",
                before.algorithm,
                key.public.spec.algorithm()
            )));
        }
        let now = self.clock.now();
        let (slots, next) = before.slots.begin_rotation(
            key.id.clone(),
            key.public.clone(),
            now,
            self.settings.rotation.delay,
        )?;
        let mut after = before.clone();
        after.slots = slots;
        after.last_rotation = Some(RotationRecord {
            rotate_on: now.plus(self.settings.rotation.delay),
            before: next.other(),
            after: next,
        });
        after.changed = now;
        tx.save_config(&after, &[(key.id, key.sealed)]).await?;
        self.record(
            &mut tx,
            action,
            Some(domain),
            json!({ "before": audit_view(&before), "after": audit_view(&after) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(after)
    }

    /// Deletes a config and withdraws its records. The initial domain's config stays.
    pub async fn remove_config(&self, domain: &DomainName) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let before = self.existing_config(&mut tx, domain).await?;
        if before.kind == DomainKind::Initial {
            return Err(AppError::Refused(format!(
                "{domain} is the initial domain of tenant '{}'; its signing config cannot be removed",
                before.tenant
            )));
        }
        tx.delete_config(domain).await?;
        self.record(
            &mut tx,
            "dkim.remove",
            Some(domain),
            json!({ "before": audit_view(&before) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The public record of the key that signs now: `v=DKIM1; k=…; p=…`.
    pub async fn export_public(&self, domain: &DomainName) -> Result<String> {
        let config = self.config(domain).await?;
        let (_, key) = config
            .slots
            .signing()
            .ok_or_else(|| AppError::NotFound(format!("{domain} has no DKIM key")))?;
        Ok(key.public.record().to_string())
    }

    /// The CNAMEs the customer publishes and the TXT records signet serves for `domain`.
    pub async fn records(&self, domain: &DomainName) -> Result<Records> {
        let config = self.config(domain).await?;
        let zone = &self.settings.zone;
        let cnames = match config.kind {
            DomainKind::Custom => Slot::BOTH
                .iter()
                .map(|slot| {
                    (
                        customer_selector_name(domain, *slot),
                        zone.record_name(&config.tenant, domain, *slot),
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let txts = config
            .slots
            .iter()
            .map(|(slot, key)| {
                (
                    zone.record_name(&config.tenant, domain, slot),
                    key.public.record().to_string(),
                )
            })
            .collect();
        Ok(Records {
            domain: domain.clone(),
            cnames,
            txts,
        })
    }

    /// Looks up both CNAMEs now. Lookup failures are temporary errors, not findings.
    pub async fn check_cnames(&self, config: &SigningConfig) -> Result<CnameCheck> {
        let zone = &self.settings.zone;
        let mut findings = Vec::with_capacity(2);
        for slot in Slot::BOTH {
            let name = customer_selector_name(&config.domain, slot);
            let found = self.dns.cname(&name).await?;
            let expected = zone.record_name(&config.tenant, &config.domain, slot);
            findings.push(CnameFinding::judge(found.as_deref(), &expected));
        }
        let selector2 = findings.pop().unwrap_or(CnameFinding::Missing);
        let selector1 = findings.pop().unwrap_or(CnameFinding::Missing);
        Ok(CnameCheck {
            at: self.clock.now(),
            selector1,
            selector2,
        })
    }

    /// Checks the CNAMEs and refuses with the records to publish unless both are right.
    async fn require_cnames(&self, config: &SigningConfig) -> Result<CnameCheck> {
        let check = self.check_cnames(config).await?;
        if check.both_correct() {
            return Ok(check);
        }
        let zone = &self.settings.zone;
        let selectors = Slot::BOTH
            .iter()
            .map(|slot| SelectorFinding {
                slot: *slot,
                name: customer_selector_name(&config.domain, *slot),
                target: zone.record_name(&config.tenant, &config.domain, *slot),
                found: check.finding(*slot).clone(),
            })
            .collect();
        Err(AppError::CnameMissing(Box::new(MissingCnames {
            domain: config.domain.clone(),
            selectors,
        })))
    }

    async fn existing_config(&self, tx: &mut Tx, domain: &DomainName) -> Result<SigningConfig> {
        if let Some(config) = tx.config(domain).await? {
            return Ok(config);
        }
        let accepted = tx
            .domain(domain)
            .await?
            .ok_or_else(|| not_accepted(domain))?;
        refuse_routing(&accepted)?;
        Err(AppError::NotFound(format!(
            "{domain} has no DKIM signing config; create one with `signet dkim new {domain}`"
        )))
    }

    async fn accepted_custom_or_initial(&self, domain: &DomainName) -> Result<AcceptedDomain> {
        let accepted = self
            .store
            .begin()
            .await?
            .domain(domain)
            .await?
            .ok_or_else(|| not_accepted(domain))?;
        refuse_routing(&accepted)?;
        Ok(accepted)
    }
}

pub(crate) fn refuse_routing(accepted: &AcceptedDomain) -> Result<()> {
    if accepted.kind == DomainKind::Routing {
        return Err(AppError::Refused(format!(
            "{} is the routing domain of tenant '{}'; it exists for routing only and can never be DKIM-enabled",
            accepted.name, accepted.tenant
        )));
    }
    Ok(())
}

/// Everything the key zone publishes, at one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneContents {
    pub serial: u32,
    /// (owner name, TXT value), ordered by owner.
    pub records: Vec<(String, String)>,
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// The key zone's serial alone: cheap, for noticing changes.
    pub async fn zone_serial(&self) -> Result<u32> {
        Ok(self.store.begin().await?.zone_serial().await?)
    }

    /// Every published key as a TXT record, read in one transaction with its serial.
    pub async fn zone_contents(&self) -> Result<ZoneContents> {
        let mut tx = self.store.begin().await?;
        let serial = tx.zone_serial().await?;
        let zone = &self.settings.zone;
        let mut records: Vec<(String, String)> = tx
            .published_keys()
            .await?
            .into_iter()
            .map(|k| {
                (
                    zone.record_name(&k.tenant, &k.domain, k.slot),
                    k.public.record().to_string(),
                )
            })
            .collect();
        records.sort();
        Ok(ZoneContents { serial, records })
    }
}
