//! HTTP API tokens and what a token may see. `signet token add` makes a token, shown once;
//! the store keeps only its digest. A tenant token sees its own tenant's domains, configs and
//! audit entries, and nothing else: another tenant's domain is reported exactly as an absent one,
//! so a token cannot even learn which domains other tenants have.

use serde_json::json;
use signet_keys::{DomainName, TenantName, TokenDigest, TokenName, TokenScope, TokenSecret};
use signet_store::{AcceptedDomain, ApiToken, AuditEntry, Connector, Tenant};

use crate::connectors::NewConnector;
use crate::lifecycle::{ConfigPage, PageKey, refuse_routing};
use crate::tenancy::{no_tenant, not_accepted};
use crate::{AppError, Clock, Dns, Result, Service};

/// Whether `scope` may make and remove tenants: an admin token only. To a tenant token these
/// calls do not exist at all (the API answers as to an unknown endpoint).
pub fn manages_tenants(scope: &TokenScope) -> bool {
    scope.tenant().is_none()
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// Makes a token for `scope`; the returned secret is the only copy of its text.
    pub async fn add_token(
        &self,
        name: &TokenName,
        scope: TokenScope,
    ) -> Result<(ApiToken, TokenSecret)> {
        let (secret, digest) = TokenSecret::generate();
        let token = ApiToken {
            name: name.clone(),
            scope,
            digest,
            created: self.clock.now(),
        };
        let mut tx = self.store.begin_write().await?;
        if let Some(tenant) = token.scope.tenant()
            && tx.tenant(tenant).await?.is_none()
        {
            return Err(AppError::NotFound(format!(
                "tenant '{tenant}' does not exist"
            )));
        }
        if tx.tokens().await?.iter().any(|t| t.name == *name) {
            return Err(AppError::Refused(format!(
                "a token named '{name}' already exists; remove it first (signet token remove {name})"
            )));
        }
        tx.insert_token(&token).await?;
        self.record(
            &mut tx,
            "token.add",
            None,
            json!({ "name": name.as_str(), "scope": token.scope.to_string() }),
        )
        .await?;
        self.commit(tx).await?;
        Ok((token, secret))
    }

    /// Every token (names, scopes, dates; the digests are not for display).
    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        Ok(self.store.begin().await?.tokens().await?)
    }

    /// Removes a token; requests carrying it are refused from then on.
    pub async fn remove_token(&self, name: &TokenName) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if !tx.delete_token(name).await? {
            return Err(AppError::NotFound(format!("no token is named '{name}'")));
        }
        self.record(
            &mut tx,
            "token.remove",
            None,
            json!({ "name": name.as_str() }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The token whose text was presented, if any. Every stored digest is compared, each in
    /// constant time, and the loop does not stop at a match: the time taken depends on how many
    /// tokens exist, not on which one (if any) matched.
    pub async fn token_for(&self, presented: &str) -> Result<Option<ApiToken>> {
        let digest = TokenDigest::of(presented);
        let mut found = None;
        for token in self.store.begin().await?.tokens().await? {
            if token.digest.matches(&digest) {
                found = Some(token);
            }
        }
        Ok(found)
    }

    /// The accepted domain `domain` as `scope` sees it: another tenant's is not found, with the
    /// very error an absent domain gives. Routing domains are refused as everywhere.
    pub async fn visible_domain(
        &self,
        scope: &TokenScope,
        domain: &DomainName,
    ) -> Result<AcceptedDomain> {
        let accepted = self
            .store
            .begin()
            .await?
            .domain(domain)
            .await?
            .filter(|d| scope.sees(&d.tenant))
            .ok_or_else(|| not_accepted(domain))?;
        refuse_routing(&accepted)?;
        Ok(accepted)
    }

    /// The tenants `scope` may see: every one for an admin, its own for a tenant token.
    pub async fn visible_tenants(&self, scope: &TokenScope) -> Result<Vec<Tenant>> {
        let tenants = self.tenants().await?;
        Ok(tenants
            .into_iter()
            .filter(|t| scope.sees(&t.name))
            .collect())
    }

    /// The tenant `name` as `scope` sees it: another tenant is not found, with the very error
    /// an absent one gives.
    pub async fn visible_tenant(&self, scope: &TokenScope, name: &TenantName) -> Result<Tenant> {
        self.store
            .begin()
            .await?
            .tenant(name)
            .await?
            .filter(|t| scope.sees(&t.name))
            .ok_or_else(|| no_tenant(name))
    }

    /// The accepted domains `scope` may see, of one tenant or all, as `signet domain list`.
    pub async fn visible_domains(
        &self,
        scope: &TokenScope,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<AcceptedDomain>> {
        if let Some(tenant) = tenant {
            self.visible_tenant(scope, tenant).await?;
        }
        self.domains(tenant.or(scope.tenant())).await
    }

    /// The connectors `scope` may see, of one tenant or all, as `signet connector list`.
    pub async fn visible_connectors(
        &self,
        scope: &TokenScope,
        tenant: Option<&TenantName>,
    ) -> Result<Vec<Connector>> {
        if let Some(tenant) = tenant {
            self.visible_tenant(scope, tenant).await?;
        }
        self.connectors(tenant.or(scope.tenant())).await
    }

    /// [`Service::add_domain`] for `scope`: only to a tenant it sees, and a domain another
    /// tenant has is not said to be whose to a tenant token.
    pub async fn add_visible_domain(
        &self,
        scope: &TokenScope,
        tenant: &TenantName,
        domain: &DomainName,
    ) -> Result<signet_keys::SigningConfig> {
        self.visible_tenant(scope, tenant).await?;
        self.add_domain_telling(tenant, domain, manages_tenants(scope))
            .await
    }

    /// [`Service::add_connector`] for `scope`: only to a tenant it sees, and a refusal because
    /// of another tenant's networks does not name that tenant or its connector to a tenant
    /// token.
    pub async fn add_visible_connector(
        &self,
        scope: &TokenScope,
        tenant: &TenantName,
        name: &str,
        new: NewConnector,
    ) -> Result<Connector> {
        self.visible_tenant(scope, tenant).await?;
        self.add_connector_telling(tenant, name, new, manages_tenants(scope))
            .await
    }

    /// A page of the configs `scope` may see.
    pub async fn visible_configs(
        &self,
        scope: &TokenScope,
        after: Option<&PageKey>,
        limit: u32,
    ) -> Result<ConfigPage> {
        self.configs_page(scope.tenant(), after, limit).await
    }

    /// The audit log as `scope` sees it, oldest first: a tenant sees the entries of its own
    /// domains only (not tokens, connectors or other tenants).
    pub async fn visible_audit(
        &self,
        scope: &TokenScope,
        domain: Option<&DomainName>,
    ) -> Result<Vec<AuditEntry>> {
        if let Some(domain) = domain {
            self.visible_domain(scope, domain).await?;
        }
        let mut tx = self.store.begin().await?;
        let entries = tx.audit(domain).await?;
        let Some(tenant) = scope.tenant() else {
            return Ok(entries);
        };
        let own: std::collections::HashSet<String> = tx
            .domains(Some(tenant))
            .await?
            .into_iter()
            .map(|d| d.name.to_string())
            .collect();
        Ok(entries
            .into_iter()
            .filter(|e| e.domain.as_ref().is_some_and(|d| own.contains(d)))
            .collect())
    }
}
