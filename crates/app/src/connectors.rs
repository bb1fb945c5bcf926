//! Connectors: how a tenant's servers reach the relay — from client networks, or with a login.
//! Passwords are kept only as argon2id hashes; no command ever prints one.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde_json::json;
use signet_keys::{IpNetwork, TenantName};
use signet_store::{Connector, ConnectorKind};

use crate::{AppError, Clock, Dns, Result, Service};

/// What `signet connector add` asks for.
#[derive(Debug, Clone)]
pub enum NewConnector {
    Networks(Vec<IpNetwork>),
    Login {
        username: String,
        password: zeroize::Zeroizing<String>,
    },
}

/// The shortest password accepted for a submission login.
pub const MINIMUM_PASSWORD: usize = 12;

impl<D: Dns, C: Clock> Service<D, C> {
    /// Adds a connector. Networks may not be "everyone" nor overlap another tenant's networks
    /// (a client must map to one tenant); usernames are unique across tenants.
    pub async fn add_connector(
        &self,
        tenant: &TenantName,
        name: &str,
        new: NewConnector,
    ) -> Result<Connector> {
        self.add_connector_telling(tenant, name, new, true).await
    }

    /// [`Service::add_connector`]; a clash with another tenant's networks names that tenant
    /// and connector only when `reveal` (not to a tenant's own API token).
    pub(crate) async fn add_connector_telling(
        &self,
        tenant: &TenantName,
        name: &str,
        new: NewConnector,
        reveal: bool,
    ) -> Result<Connector> {
        check_name(name)?;
        let kind = match new {
            NewConnector::Networks(networks) => {
                if networks.is_empty() {
                    return Err(AppError::Refused(
                        "give at least one network with --from".into(),
                    ));
                }
                if let Some(everyone) = networks.iter().find(|n| n.prefix() == 0) {
                    return Err(AppError::Refused(format!(
                        "{everyone} would let anyone relay: signet is never an open relay"
                    )));
                }
                ConnectorKind::Networks(networks)
            }
            NewConnector::Login { username, password } => {
                if username.is_empty()
                    || username
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(AppError::Refused(format!(
                        "'{username}' is not a usable login name"
                    )));
                }
                if password.chars().count() < MINIMUM_PASSWORD {
                    return Err(AppError::Refused(format!(
                        "the password is too short: use at least {MINIMUM_PASSWORD} characters"
                    )));
                }
                let password_hash = hash_password(&password)
                    .map_err(|e| AppError::Refused(format!("cannot hash the password: {e}")))?;
                ConnectorKind::Login {
                    username,
                    password_hash,
                }
            }
        };
        let connector = Connector {
            tenant: tenant.clone(),
            name: name.to_string(),
            kind,
            created: self.clock.now(),
        };
        let mut tx = self.store.begin_write().await?;
        if tx.tenant(tenant).await?.is_none() {
            return Err(crate::tenancy::no_tenant(tenant));
        }
        for existing in tx.connectors(None).await? {
            if existing.tenant == *tenant && existing.name == name {
                return Err(AppError::Refused(format!(
                    "tenant '{tenant}' already has a connector named '{name}'"
                )));
            }
            clash(&existing, &connector, reveal)?;
        }
        tx.insert_connector(&connector).await?;
        self.record(
            &mut tx,
            "connector.add",
            None,
            json!({ "tenant": tenant.as_str(), "connector": describe(&connector) }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(connector)
    }

    pub async fn connectors(&self, tenant: Option<&TenantName>) -> Result<Vec<Connector>> {
        Ok(self.store.begin().await?.connectors(tenant).await?)
    }

    pub async fn remove_connector(&self, tenant: &TenantName, name: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if !tx.delete_connector(tenant, name).await? {
            return Err(AppError::NotFound(format!(
                "tenant '{tenant}' has no connector named '{name}'"
            )));
        }
        self.record(
            &mut tx,
            "connector.remove",
            None,
            json!({ "tenant": tenant.as_str(), "name": name }),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The tenant whose relay connector covers `client`, if any.
    pub async fn tenant_for_client(&self, client: IpAddr) -> Result<Option<TenantName>> {
        let connectors = self.cached_connectors().await?;
        Ok(connectors.iter().find_map(|c| match &c.kind {
            ConnectorKind::Networks(networks) if networks.iter().any(|n| n.contains(client)) => {
                Some(c.tenant.clone())
            }
            _ => None,
        }))
    }

    /// The tenant of a submission login, if the password is right. Every failure looks the same.
    /// The password check is CPU-heavy (argon2id): an async caller that must not stall its
    /// runtime uses [`Service::login`] and runs [`check_password`] on a blocking thread.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<TenantName>> {
        let login = self.login(username).await?;
        Ok(check_password(login.as_ref(), password))
    }

    /// The submission login named `username`, if there is one; check its password with
    /// [`check_password`].
    pub async fn login(&self, username: &str) -> Result<Option<Login>> {
        let connectors = self.cached_connectors().await?;
        Ok(connectors.iter().find_map(|c| match &c.kind {
            ConnectorKind::Login {
                username: u,
                password_hash,
            } if u == username => Some(Login {
                tenant: c.tenant.clone(),
                password_hash: password_hash.clone(),
            }),
            _ => None,
        }))
    }
}

/// A submission login as stored: its tenant and its argon2id hash. `Debug` hides the hash.
#[derive(Clone)]
pub struct Login {
    tenant: TenantName,
    password_hash: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// The login's tenant when `password` is right. Without a login a decoy hash is checked, so an
/// unknown user name takes as long to refuse as a wrong password (no user enumeration by time).
pub fn check_password(login: Option<&Login>, password: &str) -> Option<TenantName> {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash_password("signet decoy password").unwrap_or_default());
    let hash = login.map_or(decoy.as_str(), |l| l.password_hash.as_str());
    let verified = PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    match login {
        Some(login) if verified => Some(login.tenant.clone()),
        _ => None,
    }
}

/// An argon2id hash (PHC string) of `password` with a fresh salt.
fn hash_password(password: &str) -> std::result::Result<String, password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Refuses a connector name other than letters, digits, '-', '_', '.' (at most 64).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::Refused(format!(
            "'{name}' is not a connector name: use letters, digits, '-', '_', '.'"
        )))
    }
}

/// Refuses a connector that would make a client or a login ambiguous; names the other tenant's
/// connector only when `reveal`.
fn clash(existing: &Connector, new: &Connector, reveal: bool) -> Result<()> {
    match (&existing.kind, &new.kind) {
        (ConnectorKind::Networks(old), ConnectorKind::Networks(wanted))
            if existing.tenant != new.tenant =>
        {
            for a in wanted {
                if let Some(b) = old.iter().find(|b| a.overlaps(**b)) {
                    return Err(AppError::Refused(if reveal {
                        format!(
                            "{a} overlaps {b} of tenant '{}' (connector '{}'): a client must belong to one tenant",
                            existing.tenant, existing.name
                        )
                    } else {
                        format!(
                            "{a} overlaps another tenant's network: a client must belong to one tenant"
                        )
                    }));
                }
            }
            Ok(())
        }
        (
            ConnectorKind::Login { username: old, .. },
            ConnectorKind::Login {
                username: wanted, ..
            },
        ) if old == wanted => Err(AppError::Refused(format!(
            "the login '{wanted}' is already taken"
        ))),
        _ => Ok(()),
    }
}

/// A connector for the audit log and listings: never the password hash.
pub fn describe(connector: &Connector) -> serde_json::Value {
    match &connector.kind {
        ConnectorKind::Networks(networks) => {
            json!({ "name": connector.name, "kind": "relay", "networks": networks.iter().map(ToString::to_string).collect::<Vec<_>>() })
        }
        ConnectorKind::Login { username, .. } => {
            json!({ "name": connector.name, "kind": "submission", "login": username })
        }
    }
}
