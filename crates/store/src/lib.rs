//! signet's persistence. All SQL lives here.
//!
//! The store keeps tenants, accepted domains, signing configs with their slots, sealed private
//! keys, the audit log, and the key zone's serial. Use-cases open a [`Tx`], read and write
//! through it, and commit once, so a failed command leaves nothing half-written. The zone serial
//! is bumped inside [`Tx::save_config`] and [`Tx::delete_config`] whenever the set of published
//! keys changes, so no caller can forget it.
//!
//! SQLite is the embedded default. Timestamps are Unix seconds; enums are stored as their
//! stable text spellings.

mod codec;
mod schema;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use signet_keys::{
    CnameCheck, DomainKind, DomainName, IpNetwork, KeyId, PublicKey, SigningConfig, Slot, SlotKey,
    Slots, TenantName, Timestamp, TokenDigest, TokenName, TokenScope,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, Sqlite, SqlitePool};

use codec::{decode_check, decode_spec, decode_state, encode_check, encode_spec, encode_state};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database at {0}; run `signet init` first")]
    Missing(String),
    #[error("a database already exists at {0}")]
    Exists(String),
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    /// A row that the schema allows but the domain model refuses: the database was edited by hand
    /// or by a newer signet.
    #[error("the database is inconsistent: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An accepted domain of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedDomain {
    pub name: DomainName,
    pub tenant: TenantName,
    pub kind: DomainKind,
    pub created: Timestamp,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: TenantName,
    pub created: Timestamp,
}

/// One change, as the audit log keeps it. `detail` never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub domain: Option<String>,
    pub detail: String,
}

/// How clients of a tenant reach the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorKind {
    /// Relay from these client networks.
    Networks(Vec<IpNetwork>),
    /// Submission with SMTP AUTH; the password is stored only as an argon2id hash.
    Login {
        username: String,
        password_hash: String,
    },
}

/// A named connector of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub tenant: TenantName,
    pub name: String,
    pub kind: ConnectorKind,
    pub created: Timestamp,
}

/// An HTTP API token: its name, what it may see, and the digest of its text (never the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: TokenName,
    pub scope: TokenScope,
    pub digest: TokenDigest,
    pub created: Timestamp,
}

/// A published key, as the key zone needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub tenant: TenantName,
    pub domain: DomainName,
    pub slot: Slot,
    pub public: PublicKey,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Creates a new database file, readable by its owner only (mode 0600: it holds password
    /// hashes; SQLite gives its `-wal` and `-shm` files the same mode). Refuses to touch an
    /// existing one.
    pub async fn create(path: &Path) -> Result<Store> {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(path.display().to_string()));
            }
            Err(source) => {
                return Err(StoreError::Create {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        let made = async {
            let store = Self::connect(path, false).await?;
            schema::migrate(&store.pool).await?;
            Ok(store)
        };
        let result = made.await;
        if result.is_err() {
            // The empty file is ours: leave nothing half-made.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Opens an existing database and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let store = Self::connect(path, false).await?;
        schema::migrate(&store.pool).await?;
        Ok(store)
    }

    async fn connect(path: &Path, create: bool) -> Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    /// Starts a transaction for reading. Dropping it without [`Tx::commit`] rolls everything
    /// back.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.pool.begin().await?,
        })
    }

    /// Starts a transaction that will write: it takes SQLite's write lock at once (`BEGIN
    /// IMMEDIATE`), waiting up to the busy timeout for another writer. A deferred transaction
    /// that reads first and writes later cannot wait: in WAL mode, if anyone committed after its
    /// read began (the scheduler in a running `serve`), its first write fails at once with
    /// "database is locked".
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(Tx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A unit of work.
#[derive(Debug)]
pub struct Tx {
    tx: sqlx::Transaction<'static, Sqlite>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }

    // ---- tenants ----

    pub async fn insert_tenant(&mut self, name: &TenantName, now: Timestamp) -> Result<()> {
        sqlx::query("INSERT INTO tenants (name, created) VALUES ($1, $2)")
            .bind(name.as_str())
            .bind(now.unix())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn tenant(&mut self, name: &TenantName) -> Result<Option<Tenant>> {
        let row = sqlx::query("SELECT name, created FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| tenant_from_row(&r)).transpose()
    }

    pub async fn tenants(&mut self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT name, created FROM tenants ORDER BY name")
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    pub async fn delete_tenant(&mut self, name: &TenantName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- accepted domains ----

    pub async fn insert_domain(&mut self, domain: &AcceptedDomain) -> Result<()> {
        sqlx::query(
            "INSERT INTO domains (name, tenant, kind, dashed, created) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(domain.name.as_str())
        .bind(domain.tenant.as_str())
        .bind(domain.kind.to_string())
        .bind(domain.name.dashed())
        .bind(domain.created.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn domain(&mut self, name: &DomainName) -> Result<Option<AcceptedDomain>> {
        let row = sqlx::query("SELECT name, tenant, kind, created FROM domains WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|r| domain_from_row(&r)).transpose()
    }

    /// An accepted domain of `tenant` whose dashed form equals `dashed` (they would share
    /// selector names).
    pub async fn domain_by_dashed(
        &mut self,
        tenant: &TenantName,
        dashed: &str,
    ) -> Result<Option<AcceptedDomain>> {
        let row = sqlx::query(
            "SELECT name, tenant, kind, created FROM domains WHERE tenant = $1 AND dashed = $2",
        )
        .bind(tenant.as_str())
        .bind(dashed)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| domain_from_row(&r)).transpose()
    }

    /// Accepted domains, of one tenant or of all, ordered by tenant then name.
    pub async fn domains(&mut self, tenant: Option<&TenantName>) -> Result<Vec<AcceptedDomain>> {
        let rows = sqlx::query(
            "SELECT name, tenant, kind, created FROM domains
             WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant, name",
        )
        .bind(tenant.map(TenantName::as_str))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(domain_from_row).collect()
    }

    /// At most `limit` initial and custom domains (those that can have a signing config), of one
    /// tenant or of all, ordered by tenant then name, starting after `after` (a page's last).
    pub async fn signing_domains(
        &mut self,
        tenant: Option<&TenantName>,
        after: Option<(&TenantName, &DomainName)>,
        limit: u32,
    ) -> Result<Vec<AcceptedDomain>> {
        let rows = sqlx::query(
            "SELECT name, tenant, kind, created FROM domains
             WHERE kind <> 'Routing' AND ($1 IS NULL OR tenant = $1)
               AND ($2 IS NULL OR (tenant, name) > ($2, $3))
             ORDER BY tenant, name LIMIT $4",
        )
        .bind(tenant.map(TenantName::as_str))
        .bind(after.map(|(t, _)| t.as_str()))
        .bind(after.map(|(_, d)| d.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(domain_from_row).collect()
    }

    pub async fn delete_domain(&mut self, name: &DomainName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM domains WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- signing configs and keys ----

    pub async fn config(&mut self, domain: &DomainName) -> Result<Option<SigningConfig>> {
        let row = sqlx::query(CONFIG_SELECT_ONE)
            .bind(domain.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
        match row {
            Some(row) => Ok(Some(self.config_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// All configs, ordered by tenant then domain.
    pub async fn configs(&mut self) -> Result<Vec<SigningConfig>> {
        let rows = sqlx::query(CONFIG_SELECT_ALL)
            .fetch_all(&mut *self.tx)
            .await?;
        let mut configs = Vec::with_capacity(rows.len());
        for row in &rows {
            configs.push(self.config_from_row(row).await?);
        }
        Ok(configs)
    }

    /// Writes `config` and its slots. Keys new to the database need their sealed private half
    /// in `new_keys`; keys no longer in a slot are deleted with their private half. Bumps the
    /// zone serial if the set of published keys changed.
    pub async fn save_config(
        &mut self,
        config: &SigningConfig,
        new_keys: &[(KeyId, Vec<u8>)],
    ) -> Result<()> {
        self.upsert_config_row(config).await?;
        let before = self.key_ids(&config.domain).await?;
        let after: Vec<&KeyId> = config.slots.iter().map(|(_, k)| &k.id).collect();
        let mut published_changed = false;
        for id in &before {
            if !after.contains(&id) {
                sqlx::query("DELETE FROM keys WHERE id = $1")
                    .bind(&id.0)
                    .execute(&mut *self.tx)
                    .await?;
                published_changed = true;
            }
        }
        for (slot, key) in config.slots.iter() {
            if before.contains(&key.id) {
                self.update_key_state(slot, key).await?;
            } else {
                let sealed = new_keys
                    .iter()
                    .find(|(id, _)| *id == key.id)
                    .map(|(_, sealed)| sealed)
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "new key {} has no sealed private half",
                            key.id
                        ))
                    })?;
                self.insert_key(&config.domain, slot, key, sealed).await?;
                published_changed = true;
            }
        }
        if published_changed {
            self.bump_serial().await?;
        }
        Ok(())
    }

    /// Deletes a config with its keys; the zone serial moves on if it had any.
    pub async fn delete_config(&mut self, domain: &DomainName) -> Result<bool> {
        let keys = sqlx::query("DELETE FROM keys WHERE domain = $1")
            .bind(domain.as_str())
            .execute(&mut *self.tx)
            .await?;
        let done = sqlx::query("DELETE FROM configs WHERE domain = $1")
            .bind(domain.as_str())
            .execute(&mut *self.tx)
            .await?;
        if keys.rows_affected() > 0 {
            self.bump_serial().await?;
        }
        Ok(done.rows_affected() > 0)
    }

    /// The sealed private half of a key.
    pub async fn sealed_key(&mut self, id: &KeyId) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT sealed_private FROM keys WHERE id = $1")
            .bind(&id.0)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    /// Every published key of every domain, for the key zone.
    pub async fn published_keys(&mut self) -> Result<Vec<PublishedKey>> {
        let rows = sqlx::query(
            "SELECT d.tenant, k.domain, k.slot, k.spec, k.public_key
             FROM keys k JOIN domains d ON d.name = k.domain ORDER BY k.domain, k.slot",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PublishedKey {
                    tenant: parse(&r.get::<String, _>(0))?,
                    domain: parse(&r.get::<String, _>(1))?,
                    slot: parse(&r.get::<String, _>(2))?,
                    public: PublicKey {
                        spec: decode_spec(&r.get::<String, _>(3))?,
                        bytes: r.get(4),
                    },
                })
            })
            .collect()
    }

    // ---- connectors ----

    pub async fn insert_connector(&mut self, connector: &Connector) -> Result<()> {
        let (networks, username, hash) = match &connector.kind {
            ConnectorKind::Networks(networks) => {
                let text = networks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                (Some(text), None, None)
            }
            ConnectorKind::Login {
                username,
                password_hash,
            } => (None, Some(username.as_str()), Some(password_hash.as_str())),
        };
        sqlx::query(
            "INSERT INTO connectors (tenant, name, networks, username, password_hash, created)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(connector.tenant.as_str())
        .bind(&connector.name)
        .bind(networks)
        .bind(username)
        .bind(hash)
        .bind(connector.created.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Connectors of one tenant or of all, ordered by tenant then name.
    pub async fn connectors(&mut self, tenant: Option<&TenantName>) -> Result<Vec<Connector>> {
        let rows = sqlx::query(
            "SELECT tenant, name, networks, username, password_hash, created FROM connectors
             WHERE $1 IS NULL OR tenant = $1 ORDER BY tenant, name",
        )
        .bind(tenant.map(TenantName::as_str))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(connector_from_row).collect()
    }

    pub async fn delete_connector(&mut self, tenant: &TenantName, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM connectors WHERE tenant = $1 AND name = $2")
            .bind(tenant.as_str())
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- API tokens ----

    pub async fn insert_token(&mut self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (name, tenant, digest, created) VALUES ($1, $2, $3, $4)",
        )
        .bind(token.name.as_str())
        .bind(token.scope.tenant().map(TenantName::as_str))
        .bind(&token.digest.as_bytes()[..])
        .bind(token.created.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Every token, ordered by name.
    pub async fn tokens(&mut self) -> Result<Vec<ApiToken>> {
        let rows =
            sqlx::query("SELECT name, tenant, digest, created FROM api_tokens ORDER BY name")
                .fetch_all(&mut *self.tx)
                .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn delete_token(&mut self, name: &TokenName) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- zone serial and audit ----

    /// The key zone's SOA serial; moves on with every change to the published keys.
    pub async fn zone_serial(&mut self) -> Result<u32> {
        let value: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'zone_serial'")
            .fetch_one(&mut *self.tx)
            .await?;
        value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("zone serial '{value}'")))
    }

    /// The key zone this installation's names were made under: recorded by `signet init`, or by
    /// the first open of a database made before it was kept. `None` until then.
    pub async fn key_zone(&mut self) -> Result<Option<DomainName>> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_zone'")
                .fetch_optional(&mut *self.tx)
                .await?;
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("key zone '{v}'")))
            })
            .transpose()
    }

    pub async fn set_key_zone(&mut self, zone: &DomainName) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('key_zone', $1)")
            .bind(zone.as_str())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// How many accepted domains there are, of every tenant.
    pub async fn domain_count(&mut self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn bump_serial(&mut self) -> Result<()> {
        // RFC 1982 serial arithmetic: wrap past u32::MAX, skipping 0.
        let next = match self.zone_serial().await? {
            u32::MAX => 1,
            n => n + 1,
        };
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'zone_serial'")
            .bind(next.to_string())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn append_audit(&mut self, entry: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit (at, actor, action, domain, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(entry.at.unix())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(entry.domain.as_deref())
        .bind(&entry.detail)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The audit log, oldest first, optionally for one domain.
    pub async fn audit(&mut self, domain: Option<&DomainName>) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, domain, detail FROM audit
             WHERE $1 IS NULL OR domain = $1 ORDER BY id",
        )
        .bind(domain.map(DomainName::as_str))
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                at: Timestamp::from_unix(r.get(0)),
                actor: r.get(1),
                action: r.get(2),
                domain: r.get(3),
                detail: r.get(4),
            })
            .collect())
    }

    // ---- private helpers ----

    async fn upsert_config_row(&mut self, c: &SigningConfig) -> Result<()> {
        let rotation = c.last_rotation.as_ref();
        let check = c.cname_check.as_ref();
        sqlx::query(
            "INSERT INTO configs (domain, enabled, algorithm, header_canonicalization,
                body_canonicalization, include_signature_creation_time, include_key_expiration,
                rotation_interval, rotate_on, selector_before, selector_after,
                checked_at, check_selector1, check_selector2, created, changed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (domain) DO UPDATE SET
                enabled = excluded.enabled, algorithm = excluded.algorithm,
                header_canonicalization = excluded.header_canonicalization,
                body_canonicalization = excluded.body_canonicalization,
                include_signature_creation_time = excluded.include_signature_creation_time,
                include_key_expiration = excluded.include_key_expiration,
                rotation_interval = excluded.rotation_interval, rotate_on = excluded.rotate_on,
                selector_before = excluded.selector_before, selector_after = excluded.selector_after,
                checked_at = excluded.checked_at, check_selector1 = excluded.check_selector1,
                check_selector2 = excluded.check_selector2, changed = excluded.changed",
        )
        .bind(c.domain.as_str())
        .bind(c.enabled)
        .bind(c.algorithm.to_string())
        .bind(c.header_canonicalization.to_string())
        .bind(c.body_canonicalization.to_string())
        .bind(c.include_signature_creation_time)
        .bind(c.include_key_expiration)
        .bind(c.rotation_interval.map(signet_keys::Span::seconds))
        .bind(rotation.map(|r| r.rotate_on.unix()))
        .bind(rotation.map(|r| r.before.name()))
        .bind(rotation.map(|r| r.after.name()))
        .bind(check.map(|c| c.at.unix()))
        .bind(check.map(|c| encode_check(&c.selector1)))
        .bind(check.map(|c| encode_check(&c.selector2)))
        .bind(c.created.unix())
        .bind(c.changed.unix())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn key_ids(&mut self, domain: &DomainName) -> Result<Vec<KeyId>> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM keys WHERE domain = $1")
            .bind(domain.as_str())
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(ids.into_iter().map(KeyId).collect())
    }

    async fn insert_key(
        &mut self,
        domain: &DomainName,
        slot: Slot,
        key: &SlotKey,
        sealed: &[u8],
    ) -> Result<()> {
        let (state, state_at) = encode_state(key.state);
        sqlx::query(
            "INSERT INTO keys (id, domain, slot, spec, public_key, sealed_private, created, state, state_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id.0)
        .bind(domain.as_str())
        .bind(slot.name())
        .bind(encode_spec(key.public.spec))
        .bind(&key.public.bytes)
        .bind(sealed)
        .bind(key.created.unix())
        .bind(state)
        .bind(state_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn update_key_state(&mut self, slot: Slot, key: &SlotKey) -> Result<()> {
        let (state, state_at) = encode_state(key.state);
        sqlx::query("UPDATE keys SET slot = $1, state = $2, state_at = $3 WHERE id = $4")
            .bind(slot.name())
            .bind(state)
            .bind(state_at)
            .bind(&key.id.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn slots(&mut self, domain: &str) -> Result<Slots> {
        let rows = sqlx::query(
            "SELECT id, slot, spec, public_key, created, state, state_at FROM keys WHERE domain = $1",
        )
        .bind(domain)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut parts: [Option<SlotKey>; 2] = [None, None];
        for r in &rows {
            let slot: Slot = parse(&r.get::<String, _>(1))?;
            let key = SlotKey {
                id: KeyId(r.get(0)),
                public: PublicKey {
                    spec: decode_spec(&r.get::<String, _>(2))?,
                    bytes: r.get(3),
                },
                created: Timestamp::from_unix(r.get(4)),
                state: decode_state(&r.get::<String, _>(5), r.get(6))?,
            };
            parts[usize::from(slot.number() - 1)] = Some(key);
        }
        let [one, two] = parts;
        Slots::from_parts(one, two).map_err(|why| StoreError::Corrupt(format!("{domain}: {why}")))
    }

    async fn config_from_row(&mut self, r: &sqlx::sqlite::SqliteRow) -> Result<SigningConfig> {
        let domain: String = r.get("domain");
        let slots = self.slots(&domain).await?;
        let rotation = match r.get::<Option<i64>, _>("rotate_on") {
            Some(on) => Some(signet_keys::RotationRecord {
                rotate_on: Timestamp::from_unix(on),
                before: parse(&r.get::<String, _>("selector_before"))?,
                after: parse(&r.get::<String, _>("selector_after"))?,
            }),
            None => None,
        };
        let cname_check = r.get::<Option<i64>, _>("checked_at").map(|at| CnameCheck {
            at: Timestamp::from_unix(at),
            selector1: decode_check(&r.get::<String, _>("check_selector1")),
            selector2: decode_check(&r.get::<String, _>("check_selector2")),
        });
        Ok(SigningConfig {
            domain: parse(&domain)?,
            tenant: parse(&r.get::<String, _>("tenant"))?,
            kind: codec::decode_kind(&r.get::<String, _>("kind"))?,
            enabled: r.get("enabled"),
            algorithm: parse(&r.get::<String, _>("algorithm"))?,
            header_canonicalization: parse(&r.get::<String, _>("header_canonicalization"))?,
            body_canonicalization: parse(&r.get::<String, _>("body_canonicalization"))?,
            include_signature_creation_time: r.get("include_signature_creation_time"),
            include_key_expiration: r.get("include_key_expiration"),
            rotation_interval: r
                .get::<Option<i64>, _>("rotation_interval")
                .map(signet_keys::Span::seconds_from),
            slots,
            last_rotation: rotation,
            cname_check,
            created: Timestamp::from_unix(r.get("created")),
            changed: Timestamp::from_unix(r.get("changed")),
        })
    }
}

/// The config SELECT with a tail (`concat!` needs literals, hence a macro).
macro_rules! config_select {
    ($tail:literal) => {
        concat!(
            "SELECT c.domain, d.tenant, d.kind, c.enabled, c.algorithm,
                c.header_canonicalization, c.body_canonicalization,
                c.include_signature_creation_time, c.include_key_expiration, c.rotation_interval,
                c.rotate_on, c.selector_before, c.selector_after, c.checked_at, c.check_selector1,
                c.check_selector2, c.created, c.changed
             FROM configs c JOIN domains d ON d.name = c.domain ",
            $tail
        )
    };
}

const CONFIG_SELECT_ONE: &str = config_select!("WHERE c.domain = $1");
const CONFIG_SELECT_ALL: &str = config_select!("ORDER BY d.tenant, c.domain");

fn parse<T: FromStr>(text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("'{text}': {e}")))
}

fn tenant_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        name: parse(&r.get::<String, _>(0))?,
        created: Timestamp::from_unix(r.get(1)),
    })
}

fn connector_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Connector> {
    let networks: Option<String> = r.get(2);
    let username: Option<String> = r.get(3);
    let kind = match (networks, username) {
        (Some(networks), None) => ConnectorKind::Networks(
            networks
                .split_whitespace()
                .map(parse)
                .collect::<Result<Vec<IpNetwork>>>()?,
        ),
        (None, Some(username)) => ConnectorKind::Login {
            username,
            password_hash: r.get(4),
        },
        _ => {
            return Err(StoreError::Corrupt(
                "a connector is neither networks nor login".into(),
            ));
        }
    };
    Ok(Connector {
        tenant: parse(&r.get::<String, _>(0))?,
        name: r.get(1),
        kind,
        created: Timestamp::from_unix(r.get(5)),
    })
}

fn token_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<ApiToken> {
    let name: String = r.get(0);
    let scope = match r.get::<Option<String>, _>(1) {
        None => TokenScope::Admin,
        Some(tenant) => TokenScope::Tenant(parse(&tenant)?),
    };
    let digest = TokenDigest::from_bytes(&r.get::<Vec<u8>, _>(2))
        .ok_or_else(|| StoreError::Corrupt(format!("token '{name}': a digest is 32 bytes")))?;
    Ok(ApiToken {
        name: parse(&name)?,
        scope,
        digest,
        created: Timestamp::from_unix(r.get(3)),
    })
}

fn domain_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<AcceptedDomain> {
    Ok(AcceptedDomain {
        name: parse(&r.get::<String, _>(0))?,
        tenant: parse(&r.get::<String, _>(1))?,
        kind: codec::decode_kind(&r.get::<String, _>(2))?,
        created: Timestamp::from_unix(r.get(3)),
    })
}

#[cfg(test)]
mod tests;
