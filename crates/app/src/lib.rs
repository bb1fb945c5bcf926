//! signet's use-cases: what an administrator does (`signet tenant add`, `signet dkim rotate`,
//! …) and what the scheduler does (`tick`), over the store, with DNS and time injected.
//!
//! Every use-case runs in one store transaction and appends one audit entry, so a refused
//! command changes nothing. DNS lookups happen outside transactions; the scheduler re-reads a
//! config before applying what it observed.
//!
//! ```text
//! let service = Service::new(store, master_key, resolver, SystemClock, settings, "cli:alice");
//! service.add_tenant(&"contoso".parse()?).await?;
//! service.add_domain(&"contoso".parse()?, &"contoso.com".parse()?).await?;
//! service.set(&"contoso.com".parse()?, SetOptions { enabled: Some(true), ..Default::default() }).await?;
//! ```

mod connectors;
mod directory;
mod lifecycle;
mod scheduler;
mod signing;
mod tenancy;
mod tokens;
pub mod view;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use signet_keys::{
    DomainName, KeyId, KeySpec, KeyZone, MasterKey, PrivateKey, PublicKey, RotationPolicy,
    SigningConfig, Span, TenantName, Timestamp,
};
use signet_store::{AcceptedDomain, Store, StoreError, Tx};

pub use connectors::{
    Login, MINIMUM_PASSWORD, NewConnector, check_name as check_connector_name, check_password,
    describe as describe_connector,
};
pub use lifecycle::{
    ConfigPage, DkimView, MissingCnames, NewOptions, PageKey, Records, SelectorFinding, SetOptions,
    ZoneContents,
};
pub use scheduler::TickReport;
pub use signet_signer::SigningPolicy;
pub use signet_store::{ApiToken, AuditEntry};
pub use signing::SignOutcome;
pub use tokens::manages_tenants;

/// Where time comes from. Tests use a fake; nothing in signet sleeps until a deadline.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp::from_unix(seconds)
    }
}

/// A DNS lookup that could not give an answer (timeout, SERVFAIL, no server): temporary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// The lookups the key service needs, as verifiers on the internet would make them.
pub trait Dns: Send + Sync {
    /// The CNAME target at `name`, or `None` when there is no CNAME (NXDOMAIN or NODATA).
    fn cname(&self, name: &str)
    -> impl Future<Output = Result<Option<String>, LookupError>> + Send;
    /// The TXT values at `name` (each record's strings joined), following CNAMEs; empty when
    /// there are none.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, LookupError>> + Send;
}

/// Installation settings the use-cases need.
#[derive(Debug, Clone)]
pub struct Settings {
    pub zone: KeyZone,
    pub rotation: RotationPolicy,
    /// How often the scheduler re-checks each domain's CNAMEs.
    pub check_interval: Span,
    /// Automatic rotation for every domain without its own interval; `None` is off.
    pub rotation_interval: Option<Span>,
}

/// Why a use-case did not happen. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is not allowed in the current state, or its input is wrong.
    #[error("{0}")]
    Refused(String),
    /// Enabling was refused because the customer's CNAMEs are not in place.
    #[error("{0}")]
    CnameMissing(Box<MissingCnames>),
    /// DNS could not answer now; trying again later may work.
    #[error("DNS lookup failed")]
    Temporary(#[from] LookupError),
    #[error(transparent)]
    Keys(#[from] signet_keys::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    /// True for failures that may go away by themselves (DNS); false for refusals.
    pub fn is_temporary(&self) -> bool {
        matches!(self, AppError::Temporary(_))
    }
}

impl From<signet_keys::RotationRefused> for AppError {
    fn from(refused: signet_keys::RotationRefused) -> Self {
        AppError::Refused(refused.to_string())
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The use-cases, over one store.
#[derive(Debug)]
pub struct Service<D, C> {
    store: Store,
    master: Arc<MasterKey>,
    dns: D,
    clock: C,
    settings: Settings,
    actor: String,
    keys: Arc<KeyCache>,
    directory: Arc<directory::Directory>,
}

/// Private keys opened so far, by key id. A key id names one key for ever (a rotation makes a
/// new id), so an entry never goes stale: the cache needs no invalidation, and a rotated key is
/// picked up the first time a signing plan names it. Withdrawn keys simply stop being asked for.
#[derive(Default)]
struct KeyCache(std::sync::Mutex<HashMap<KeyId, Arc<PrivateKey>>>);

/// Enough for every key of a large installation; past it the cache starts over.
const KEY_CACHE_LIMIT: usize = 100_000;

impl KeyCache {
    fn get(&self, id: &KeyId) -> Option<Arc<PrivateKey>> {
        self.lock().get(id).cloned()
    }

    fn put(&self, id: KeyId, key: Arc<PrivateKey>) {
        let mut keys = self.lock();
        if keys.len() >= KEY_CACHE_LIMIT {
            keys.clear();
        }
        keys.insert(id, key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Arc<PrivateKey>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache({} keys)", self.lock().len())
    }
}

impl<D: Dns, C: Clock> Service<D, C> {
    /// `actor` names who acts, for the audit log (`cli:alice`, `scheduler`, `api:token-3`).
    pub fn new(
        store: Store,
        master: MasterKey,
        dns: D,
        clock: C,
        settings: Settings,
        actor: impl Into<String>,
    ) -> Self {
        Service {
            store,
            master: Arc::new(master),
            dns,
            clock,
            settings,
            actor: actor.into(),
            keys: Arc::default(),
            directory: Arc::default(),
        }
    }

    /// The same service acting for someone else in the audit log (the HTTP API's
    /// `token:NAME`). It shares the store, the key cache and the mail path's cache, so a change
    /// made through it is seen by the gateway at once.
    #[must_use]
    pub fn acting_as(&self, actor: impl Into<String>) -> Self
    where
        D: Clone,
        C: Clone,
    {
        Service {
            store: self.store.clone(),
            master: Arc::clone(&self.master),
            dns: self.dns.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            actor: actor.into(),
            keys: Arc::clone(&self.keys),
            directory: Arc::clone(&self.directory),
        }
    }

    /// Who acts, as the audit log names it.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Commits a use-case's transaction; what the mail path had cached is read afresh.
    async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.directory.clear();
        Ok(())
    }

    /// The accepted domain `name`, from the mail path's cache (see `directory`).
    pub(crate) async fn cached_domain(&self, name: &DomainName) -> Result<Option<AcceptedDomain>> {
        match self.directory.domain(name) {
            directory::Cached::Hit(value) => Ok(value),
            directory::Cached::Miss(generation) => {
                let value = self.store.begin().await?.domain(name).await?;
                self.directory.keep_domain(generation, name, value.clone());
                Ok(value)
            }
        }
    }

    /// The signing config of `name`, from the mail path's cache.
    pub(crate) async fn cached_config(&self, name: &DomainName) -> Result<Option<SigningConfig>> {
        match self.directory.config(name) {
            directory::Cached::Hit(value) => Ok(value),
            directory::Cached::Miss(generation) => {
                let value = self.store.begin().await?.config(name).await?;
                self.directory.keep_config(generation, name, value.clone());
                Ok(value)
            }
        }
    }

    /// Every connector, from the mail path's cache.
    pub(crate) async fn cached_connectors(&self) -> Result<Arc<Vec<signet_store::Connector>>> {
        match self.directory.connectors() {
            directory::Cached::Hit(value) => Ok(value),
            directory::Cached::Miss(generation) => {
                let value = Arc::new(self.store.begin().await?.connectors(None).await?);
                self.directory
                    .keep_connectors(generation, Arc::clone(&value));
                Ok(value)
            }
        }
    }

    /// Whether `tenant` has accepted `domain` (the relay's check of a sender's domain).
    pub async fn accepts(&self, tenant: &TenantName, domain: &DomainName) -> Result<bool> {
        Ok(self
            .cached_domain(domain)
            .await?
            .is_some_and(|d| d.tenant == *tenant))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The time by this service's clock (the web page's sessions expire by it).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The audit log, oldest first.
    pub async fn audit(&self, domain: Option<&DomainName>) -> Result<Vec<AuditEntry>> {
        Ok(self.store.begin().await?.audit(domain).await?)
    }

    /// Makes a new key: generated here, sealed at once; the private half exists in memory only.
    fn make_key(&self, spec: KeySpec) -> Result<NewKey> {
        self.seal_key(&PrivateKey::generate(spec)?)
    }

    fn seal_key(&self, key: &PrivateKey) -> Result<NewKey> {
        let id = KeyId::random();
        let sealed = self.master.seal(&key.pkcs8_der()?, id.0.as_bytes())?;
        Ok(NewKey {
            id,
            public: key.public_key()?,
            sealed,
        })
    }

    /// A stored private key, opened once and then kept (see [`KeyCache`]).
    pub(crate) async fn signing_key(&self, id: &KeyId) -> Result<Arc<PrivateKey>> {
        if let Some(key) = self.keys.get(id) {
            return Ok(key);
        }
        let key = Arc::new(self.private_key(id).await?);
        self.keys.put(id.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// Opens a stored private key (for signing and for checks that the master key fits).
    pub async fn private_key(&self, id: &KeyId) -> Result<PrivateKey> {
        let sealed = self
            .store
            .begin()
            .await?
            .sealed_key(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("key {id} is not stored")))?;
        let der = self.master.open(&sealed, id.0.as_bytes())?;
        Ok(PrivateKey::from_pkcs8_der(der.expose())?)
    }

    async fn record(
        &self,
        tx: &mut Tx,
        action: &str,
        domain: Option<&DomainName>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let entry = AuditEntry {
            at: self.clock.now(),
            actor: self.actor.clone(),
            action: action.to_string(),
            domain: domain.map(ToString::to_string),
            detail: detail.to_string(),
        };
        Ok(tx.append_audit(&entry).await?)
    }
}

/// A freshly made key, sealed, not yet stored.
struct NewKey {
    id: KeyId,
    public: PublicKey,
    sealed: Vec<u8>,
}

/// What the audit log keeps of a config: settings and key ids, never key material.
fn audit_view(config: &SigningConfig) -> serde_json::Value {
    let keys: Vec<_> = config
        .slots
        .iter()
        .map(|(slot, key)| {
            serde_json::json!({
                "slot": slot.name(),
                "id": key.id.0,
                "bits": key.public.spec.bits(),
                "state": format!("{:?}", key.state),
            })
        })
        .collect();
    serde_json::json!({
        "enabled": config.enabled,
        "status": config.status().to_string(),
        "algorithm": config.algorithm.to_string(),
        "header_canonicalization": config.header_canonicalization.to_string(),
        "body_canonicalization": config.body_canonicalization.to_string(),
        "keys": keys,
    })
}

#[cfg(test)]
mod tests;
