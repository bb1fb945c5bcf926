//! The schema, as numbered migrations applied in order inside one transaction each.

use sqlx::SqlitePool;

use crate::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('zone_serial', '1');

CREATE TABLE tenants (
    name    TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);

CREATE TABLE domains (
    name    TEXT PRIMARY KEY,
    tenant  TEXT NOT NULL REFERENCES tenants (name),
    kind    TEXT NOT NULL CHECK (kind IN ('Initial', 'Routing', 'Custom')),
    -- dots turned into dashes: two domains of one tenant may not share it (same selector names)
    dashed  TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (tenant, dashed)
);

CREATE TABLE configs (
    domain                          TEXT PRIMARY KEY REFERENCES domains (name),
    enabled                         BOOLEAN NOT NULL,
    algorithm                       TEXT NOT NULL,
    header_canonicalization         TEXT NOT NULL,
    body_canonicalization           TEXT NOT NULL,
    include_signature_creation_time BOOLEAN NOT NULL,
    include_key_expiration          BOOLEAN NOT NULL,
    rotation_interval               INTEGER,
    rotate_on                       INTEGER,
    selector_before                 TEXT,
    selector_after                  TEXT,
    checked_at                      INTEGER,
    check_selector1                 TEXT,
    check_selector2                 TEXT,
    created                         INTEGER NOT NULL,
    changed                         INTEGER NOT NULL
);

CREATE TABLE keys (
    id             TEXT PRIMARY KEY,
    domain         TEXT NOT NULL REFERENCES configs (domain),
    slot           TEXT NOT NULL CHECK (slot IN ('selector1', 'selector2')),
    spec           TEXT NOT NULL,
    public_key     BLOB NOT NULL,
    -- AES-256-GCM under the master key, bound to the key id; never plain
    sealed_private BLOB NOT NULL,
    created        INTEGER NOT NULL,
    state          TEXT NOT NULL,
    state_at       INTEGER,
    UNIQUE (domain, slot)
);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    domain TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_domain ON audit (domain);
",
    r"
-- How clients reach the relay: from networks, or with a login (submission).
CREATE TABLE connectors (
    tenant        TEXT NOT NULL REFERENCES tenants (name),
    name          TEXT NOT NULL,
    networks      TEXT,            -- CIDRs separated by spaces
    username      TEXT UNIQUE,
    password_hash TEXT,            -- argon2id, PHC string
    created       INTEGER NOT NULL,
    PRIMARY KEY (tenant, name),
    CHECK ((networks IS NULL) <> (username IS NULL))
);
",
    API_TOKENS,
];

/// The HTTP API's bearer tokens (issue 10). Its own step, so that other migrations merge beside
/// it: only the SHA-256 digest of a token is kept, never the token.
const API_TOKENS: &str = r"
CREATE TABLE api_tokens (
    name    TEXT PRIMARY KEY,
    tenant  TEXT REFERENCES tenants (name), -- NULL: an admin token
    digest  BLOB NOT NULL UNIQUE,           -- SHA-256 of the token text
    created INTEGER NOT NULL
);
-- the API lists configs page by page in this order
CREATE INDEX domains_by_tenant ON domains (tenant, name);
";

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(pool)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(pool)
        .await?;
    let current = usize::try_from(current.unwrap_or(0)).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this signet ({}); upgrade signet",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(i64::try_from(index + 1).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
