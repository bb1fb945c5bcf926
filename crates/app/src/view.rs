//! What administrators see of configs, records and the audit log, as data: the ordered
//! [`Property`] list of a signing config (each with its PascalCase list name and snake_case JSON
//! name, `docs/reference.md`, "Signing configs") and the JSON of records and audit entries. The
//! CLI's list, table and JSON and the HTTP API's bodies all render from here, so they cannot
//! disagree.

use serde_json::{Map, Value, json};
use signet_keys::{KeyZone, SigningConfig, SigningMode, Slot, Timestamp};
use signet_store::{AcceptedDomain, AuditEntry, Connector, ConnectorKind, Tenant};

use crate::{DkimView, Records};

/// One named value, with its PascalCase (list) and snake_case (JSON) names.
#[derive(Debug, Clone)]
pub struct Property {
    pub pascal: &'static str,
    pub snake: &'static str,
    pub value: Value,
}

fn property(pascal: &'static str, snake: &'static str, value: impl Into<Value>) -> Property {
    Property {
        pascal,
        snake,
        value: value.into(),
    }
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.rfc3339()))
}

/// The properties of `Get-DkimSigningConfig`, in its order, then signet's own.
pub fn config_properties(view: &DkimView, zone: &KeyZone) -> Vec<Property> {
    match view {
        DkimView::Configured(config) => configured(config, zone),
        DkimView::Unconfigured(domain) => vec![
            property("Domain", "domain", domain.name.as_str()),
            property("Tenant", "tenant", domain.tenant.as_str()),
            property("Enabled", "enabled", false),
            property("Status", "status", "NoDKIMKeys"),
            property("Summary", "summary", "No DKIM keys saved for this domain"),
        ],
    }
}

#[allow(clippy::too_many_lines)] // a table of properties, in Exchange Online's order
fn configured(c: &SigningConfig, zone: &KeyZone) -> Vec<Property> {
    let slot_key = |slot: Slot| c.slots.get(slot);
    let cname = |slot: Slot| zone.record_name(&c.tenant, &c.domain, slot);
    let size = |slot: Slot| slot_key(slot).map_or(0, |k| k.public.spec.bits());
    let public = |slot: Slot| {
        slot_key(slot).map_or(Value::Null, |k| {
            Value::String(k.public.record().to_string())
        })
    };
    let rotation = c.last_rotation.as_ref();
    let (signing_domain, signing_selector) = match c.signing_mode() {
        SigningMode::Custom { slot } => (Value::from(c.domain.as_str()), Value::from(slot.name())),
        SigningMode::Default { slot } => {
            let initial = zone
                .initial_domain(&c.tenant)
                .map(|d| d.to_string())
                .unwrap_or_default();
            (
                Value::from(initial),
                Value::from(KeyZone::default_selector(&c.domain, slot)),
            )
        }
        SigningMode::Unsigned => (Value::Null, Value::Null),
    };
    vec![
        property("Domain", "domain", c.domain.as_str()),
        property("Tenant", "tenant", c.tenant.as_str()),
        property("Enabled", "enabled", c.enabled),
        property("Status", "status", c.status().to_string()),
        property("Selector1CNAME", "selector1_cname", cname(Slot::Selector1)),
        property("Selector2CNAME", "selector2_cname", cname(Slot::Selector2)),
        property(
            "Selector1KeySize",
            "selector1_key_size",
            size(Slot::Selector1),
        ),
        property(
            "Selector2KeySize",
            "selector2_key_size",
            size(Slot::Selector2),
        ),
        property(
            "Selector1PublicKey",
            "selector1_public_key",
            public(Slot::Selector1),
        ),
        property(
            "Selector2PublicKey",
            "selector2_public_key",
            public(Slot::Selector2),
        ),
        property("Algorithm", "algorithm", c.algorithm.to_string()),
        property(
            "HeaderCanonicalization",
            "header_canonicalization",
            c.header_canonicalization.to_string(),
        ),
        property(
            "BodyCanonicalization",
            "body_canonicalization",
            c.body_canonicalization.to_string(),
        ),
        property(
            "IncludeSignatureCreationTime",
            "include_signature_creation_time",
            c.include_signature_creation_time,
        ),
        property(
            "IncludeKeyExpiration",
            "include_key_expiration",
            c.include_key_expiration,
        ),
        property(
            "KeyCreationTime",
            "key_creation_time",
            time(c.slots.signing().map(|(_, k)| k.created)),
        ),
        property(
            "RotateOnDate",
            "rotate_on_date",
            time(rotation.map(|r| r.rotate_on)),
        ),
        property(
            "SelectorBeforeRotateOnDate",
            "selector_before_rotate_on_date",
            rotation.map_or(Value::Null, |r| r.before.name().into()),
        ),
        property(
            "SelectorAfterRotateOnDate",
            "selector_after_rotate_on_date",
            rotation.map_or(Value::Null, |r| r.after.name().into()),
        ),
        property(
            "LastChecked",
            "last_checked",
            time(c.cname_check.as_ref().map(|k| k.at)),
        ),
        property("WhenCreated", "when_created", time(Some(c.created))),
        property("WhenChanged", "when_changed", time(Some(c.changed))),
        property(
            "RotationInterval",
            "rotation_interval",
            c.rotation_interval
                .map_or(Value::Null, |span| Value::String(span.to_string())),
        ),
        property("StatusDetail", "status_detail", c.status_detail(zone)),
        property("SigningDomain", "signing_domain", signing_domain),
        property("SigningSelector", "signing_selector", signing_selector),
        property("Summary", "summary", c.summary()),
    ]
}

/// `signet tenant list`, one row: `Name`, `InitialDomain`, `WhenCreated`.
pub fn tenant_properties(tenant: &Tenant, zone: &KeyZone) -> Vec<Property> {
    let initial = zone
        .initial_domain(&tenant.name)
        .map(|d| d.to_string())
        .unwrap_or_default();
    vec![
        property("Name", "name", tenant.name.as_str()),
        property("InitialDomain", "initial_domain", initial),
        property("WhenCreated", "when_created", tenant.created.rfc3339()),
    ]
}

/// `signet domain list`, one row: `Name`, `Tenant`, `Kind`, `WhenCreated`.
pub fn domain_properties(domain: &AcceptedDomain) -> Vec<Property> {
    vec![
        property("Name", "name", domain.name.as_str()),
        property("Tenant", "tenant", domain.tenant.as_str()),
        property("Kind", "kind", domain.kind.to_string()),
        property("WhenCreated", "when_created", domain.created.rfc3339()),
    ]
}

/// `signet connector list`, one row: `Tenant`, `Name`, `Kind` (`relay` or `submission`),
/// `Clients` (the networks, or `login USER`), `WhenCreated`. Never the password hash.
pub fn connector_properties(connector: &Connector) -> Vec<Property> {
    let (kind, clients) = match &connector.kind {
        ConnectorKind::Networks(networks) => (
            "relay",
            networks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ConnectorKind::Login { username, .. } => ("submission", format!("login {username}")),
    };
    vec![
        property("Tenant", "tenant", connector.tenant.as_str()),
        property("Name", "name", connector.name.as_str()),
        property("Kind", "kind", kind),
        property("Clients", "clients", clients),
        property("WhenCreated", "when_created", connector.created.rfc3339()),
    ]
}

/// Properties (a config's, or a row of a list) as one JSON object with the snake_case names, in
/// their order.
pub fn config_json(properties: &[Property]) -> Value {
    Value::Object(
        properties
            .iter()
            .map(|p| (p.snake.to_string(), p.value.clone()))
            .collect::<Map<_, _>>(),
    )
}

/// `signet records --format json`: `domain`, then `customer` (the CNAMEs) and `key_zone` (the
/// TXT records), each an array of `{type, name, value, ttl}`.
pub fn records_json(records: &Records, ttl: u32) -> Value {
    let cnames: Vec<Value> = records
        .cnames
        .iter()
        .map(|(name, target)| json!({ "type": "CNAME", "name": name, "value": target, "ttl": ttl }))
        .collect();
    let txts: Vec<Value> = records
        .txts
        .iter()
        .map(|(name, value)| json!({ "type": "TXT", "name": name, "value": value, "ttl": ttl }))
        .collect();
    json!({ "domain": records.domain.as_str(), "customer": cnames, "key_zone": txts })
}

/// `signet audit --format json`, one entry: `when`, `who`, `what`, `domain` (empty when none)
/// and `detail` (the object recorded).
pub fn audit_json(entry: &AuditEntry) -> Value {
    let detail = serde_json::from_str::<Value>(&entry.detail)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::String(entry.detail.clone()));
    json!({
        "when": entry.at.rfc3339(),
        "who": entry.actor,
        "what": entry.action,
        "domain": entry.domain.clone().unwrap_or_default(),
        "detail": detail,
    })
}
