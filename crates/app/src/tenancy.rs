//! Tenants and their accepted domains.

use serde_json::json;
use signet_keys::{
    Algorithm, Canonicalization, DomainKind, DomainName, KeySpec, SigningConfig, Slots, TenantName,
};
use signet_store::{AcceptedDomain, Tenant};

use crate::{AppError, Clock, Dns, Result, Service, audit_view};

impl<D: Dns, C: Clock> Service<D, C> {
    /// Holds the installation to the key zone its names were made under. Every tenant's initial
    /// domain and every customer's CNAME target lies in the key zone, so serving another zone
    /// while domains exist would break every delegation already published: refused. Without
    /// domains the zone may change; the first call on a database that has no zone recorded yet
    /// (made before signet kept it) records the configured one.
    pub async fn check_key_zone(&self) -> Result<()> {
        let configured = self.settings.zone.name();
        let mut tx = self.store.begin_write().await?;
        let recorded = tx.key_zone().await?;
        if recorded.as_ref() == Some(configured) {
            return Ok(());
        }
        let domains = tx.domain_count().await?;
        if let Some(recorded) = &recorded
            && domains > 0
        {
            return Err(AppError::Refused(format!(
                "key_zone is {configured}, but this installation's {domains} accepted domains were set up under {recorded}: every customer's CNAMEs point into {recorded}, and serving {configured} instead would break all of them. Set key_zone = \"{recorded}\" again; a new key zone needs a new installation"
            )));
        }
        tx.set_key_zone(configured).await?;
        if let Some(recorded) = recorded {
            let detail = json!({ "from": recorded.as_str(), "to": configured.as_str() });
            self.record(&mut tx, "key_zone.change", None, detail)
                .await?;
        }
        self.commit(tx).await
    }

    /// Creates a tenant with its initial domain (signing, `Valid`, a key in `selector1`) and its
    /// routing domain (never signs).
    pub async fn add_tenant(&self, name: &TenantName) -> Result<SigningConfig> {
        let zone = &self.settings.zone;
        let initial = zone.initial_domain(name)?;
        let routing = zone.routing_domain(name)?;
        zone.check_fits(name, &initial)?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if tx.tenant(name).await?.is_some() {
            return Err(AppError::Refused(format!("tenant '{name}' already exists")));
        }
        tx.insert_tenant(name, now).await?;
        for (domain, kind) in [
            (&initial, DomainKind::Initial),
            (&routing, DomainKind::Routing),
        ] {
            let accepted = AcceptedDomain {
                name: domain.clone(),
                tenant: name.clone(),
                kind,
                created: now,
            };
            tx.insert_domain(&accepted).await?;
        }
        let key = self.make_key(KeySpec::Rsa(signet_keys::RsaBits::B2048))?;
        let mut config =
            self.blank_config(name, &initial, DomainKind::Initial, Algorithm::RsaSha256);
        config.enabled = true;
        config.slots = Slots::with_first_key(key.id.clone(), key.public, now);
        tx.save_config(&config, &[(key.id, key.sealed)]).await?;
        let detail = json!({ "initial_domain": initial.as_str(), "routing_domain": routing.as_str(), "config": audit_view(&config) });
        self.record(&mut tx, "tenant.add", Some(&initial), detail)
            .await?;
        self.commit(tx).await?;
        Ok(config)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.store.begin().await?.tenants().await?)
    }

    /// Removes a tenant that has no custom domains left, with its initial and routing domains.
    pub async fn remove_tenant(&self, name: &TenantName) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if tx.tenant(name).await?.is_none() {
            return Err(no_tenant(name));
        }
        let domains = tx.domains(Some(name)).await?;
        let custom: Vec<_> = domains
            .iter()
            .filter(|d| d.kind == DomainKind::Custom)
            .map(|d| d.name.as_str())
            .collect();
        if !custom.is_empty() {
            return Err(AppError::Refused(format!(
                "tenant '{name}' still has accepted domains: {}; remove them first (signet domain remove DOMAIN)",
                custom.join(", ")
            )));
        }
        let connectors = tx.connectors(Some(name)).await?;
        if !connectors.is_empty() {
            let names: Vec<&str> = connectors.iter().map(|c| c.name.as_str()).collect();
            return Err(AppError::Refused(format!(
                "tenant '{name}' still has connectors: {}; remove them first (signet connector remove {name} NAME)",
                names.join(", ")
            )));
        }
        let tokens: Vec<String> = tx
            .tokens()
            .await?
            .into_iter()
            .filter(|t| t.scope.tenant() == Some(name))
            .map(|t| t.name.to_string())
            .collect();
        if !tokens.is_empty() {
            return Err(AppError::Refused(format!(
                "tenant '{name}' still has API tokens: {}; remove them first (signet token remove NAME)",
                tokens.join(", ")
            )));
        }
        for domain in &domains {
            tx.delete_config(&domain.name).await?;
            tx.delete_domain(&domain.name).await?;
        }
        tx.delete_tenant(name).await?;
        self.record(
            &mut tx,
            "tenant.remove",
            None,
            json!({ "tenant": name.as_str() }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Accepts `domain` for `tenant` and creates its signing config: disabled, a 2048-bit RSA key
    /// in `selector1`, signing by default with the initial domain until enabled.
    pub async fn add_domain(
        &self,
        tenant: &TenantName,
        domain: &DomainName,
    ) -> Result<SigningConfig> {
        self.add_domain_telling(tenant, domain, true).await
    }

    /// [`Service::add_domain`]; a domain another tenant has is said to be taken, naming that
    /// tenant only when `reveal` (not to a tenant's own API token).
    pub(crate) async fn add_domain_telling(
        &self,
        tenant: &TenantName,
        domain: &DomainName,
        reveal: bool,
    ) -> Result<SigningConfig> {
        let zone = &self.settings.zone;
        if domain.is_within(zone.name()) {
            return Err(AppError::Refused(format!(
                "{domain} lies inside the key zone {}; signet manages the names there itself",
                zone.name()
            )));
        }
        zone.check_fits(tenant, domain)?;
        let now = self.clock.now();
        let mut tx = self.store.begin_write().await?;
        if tx.tenant(tenant).await?.is_none() {
            return Err(AppError::NotFound(format!(
                "tenant '{tenant}' does not exist; create it with `signet tenant add {tenant}`"
            )));
        }
        if let Some(existing) = tx.domain(domain).await? {
            return Err(AppError::Refused(if reveal || existing.tenant == *tenant {
                format!(
                    "{domain} is already an accepted domain of tenant '{}'",
                    existing.tenant
                )
            } else {
                format!("{domain} is already an accepted domain of another tenant")
            }));
        }
        if let Some(clash) = tx.domain_by_dashed(tenant, &domain.dashed()).await? {
            return Err(AppError::Refused(format!(
                "{domain} and {} would share the selector names selector1-{}: a tenant cannot accept both",
                clash.name,
                domain.dashed()
            )));
        }
        let accepted = AcceptedDomain {
            name: domain.clone(),
            tenant: tenant.clone(),
            kind: DomainKind::Custom,
            created: now,
        };
        tx.insert_domain(&accepted).await?;
        let key = self.make_key(KeySpec::Rsa(signet_keys::RsaBits::B2048))?;
        let mut config =
            self.blank_config(tenant, domain, DomainKind::Custom, Algorithm::RsaSha256);
        config.slots = Slots::with_first_key(key.id.clone(), key.public, now);
        tx.save_config(&config, &[(key.id, key.sealed)]).await?;
        self.record(
            &mut tx,
            "domain.add",
            Some(domain),
            json!({ "tenant": tenant.as_str(), "config": audit_view(&config) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(config)
    }

    pub async fn domains(&self, tenant: Option<&TenantName>) -> Result<Vec<AcceptedDomain>> {
        let mut tx = self.store.begin().await?;
        if let Some(tenant) = tenant
            && tx.tenant(tenant).await?.is_none()
        {
            return Err(no_tenant(tenant));
        }
        Ok(tx.domains(tenant).await?)
    }

    /// Removes a custom accepted domain with its signing config and keys.
    pub async fn remove_domain(&self, domain: &DomainName) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let accepted = tx
            .domain(domain)
            .await?
            .ok_or_else(|| not_accepted(domain))?;
        if accepted.kind != DomainKind::Custom {
            return Err(AppError::Refused(format!(
                "{domain} is the {} domain of tenant '{}'; it goes only with the tenant (signet tenant remove)",
                accepted.kind.to_string().to_lowercase(),
                accepted.tenant
            )));
        }
        tx.delete_config(domain).await?;
        tx.delete_domain(domain).await?;
        self.record(
            &mut tx,
            "domain.remove",
            Some(domain),
            json!({ "tenant": accepted.tenant.as_str() }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// A config with Exchange Online's defaults and no keys.
    pub(crate) fn blank_config(
        &self,
        tenant: &TenantName,
        domain: &DomainName,
        kind: DomainKind,
        algorithm: Algorithm,
    ) -> SigningConfig {
        let now = self.clock.now();
        SigningConfig {
            domain: domain.clone(),
            tenant: tenant.clone(),
            kind,
            enabled: false,
            algorithm,
            header_canonicalization: Canonicalization::Relaxed,
            body_canonicalization: Canonicalization::Relaxed,
            include_signature_creation_time: true,
            include_key_expiration: false,
            rotation_interval: None,
            slots: Slots::default(),
            last_rotation: None,
            cname_check: None,
            created: now,
            changed: now,
        }
    }
}

pub(crate) fn no_tenant(name: &TenantName) -> AppError {
    AppError::NotFound(format!("tenant '{name}' does not exist"))
}

pub(crate) fn not_accepted(domain: &DomainName) -> AppError {
    AppError::NotFound(format!(
        "{domain} is not an accepted domain; accept it first with `signet domain add TENANT {domain}`"
    ))
}
