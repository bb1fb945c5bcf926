//! Human and machine output: `Format-List`-style lists, tables, JSON.
//!
//! A config is turned into one ordered list of [`Property`] values; every format renders from
//! that list, so list, table and JSON can never disagree.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use signet_app::{DkimView, Records};
use signet_keys::{KeyZone, SigningConfig, SigningMode, Slot, Timestamp, record::txt_strings};

/// One named value, with its PascalCase (list) and snake_case (JSON) names.
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

/// A value as PowerShell prints it: `True`/`False`, empty for null.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `Format-List`: one `Name : value` line per property, names padded to the longest, records
/// separated by a blank line.
pub fn list(records: &[Vec<Property>]) -> String {
    let width = records
        .iter()
        .flatten()
        .map(|p| p.pascal.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for p in record {
            let line = format!("{:width$} : {}", p.pascal, plain(&p.value));
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

/// JSON with snake_case names: an object for one record, an array for several.
pub fn json(records: &[Vec<Property>], single: bool) -> String {
    let objects: Vec<Value> = records
        .iter()
        .map(|r| {
            Value::Object(
                r.iter()
                    .map(|p| (p.snake.to_string(), p.value.clone()))
                    .collect::<Map<_, _>>(),
            )
        })
        .collect();
    let value = match (single, objects.as_slice()) {
        (true, [one]) => one.clone(),
        _ => Value::Array(objects),
    };
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

/// A table of the named columns, widths fitted to the content.
pub fn table(records: &[Vec<Property>], columns: &[&str]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| {
                    r.iter()
                        .find(|p| p.pascal == *c)
                        .map(|p| plain(&p.value))
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    plain_table(columns, &rows)
}

/// Columns separated by two spaces, a dashed line under the header, as PowerShell tables.
pub fn plain_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            let _ = write!(text, "{sep}{cell:w$}");
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(ToString::to_string).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        out += &line(row.clone());
    }
    out
}

/// `signet records` as a table: what the customer publishes, then what signet serves.
pub fn records_table(records: &Records, zone: &KeyZone) -> String {
    let mut out = String::new();
    if records.cnames.is_empty() {
        let _ = writeln!(
            out,
            "{} is served directly from the key zone; the customer publishes nothing.\n",
            records.domain
        );
    } else {
        let _ = writeln!(
            out,
            "Publish in the DNS of {} (once; rotation needs no further change):",
            records.domain
        );
        let rows: Vec<Vec<String>> = records
            .cnames
            .iter()
            .map(|(name, target)| vec!["CNAME".into(), name.clone(), target.clone(), "3600".into()])
            .collect();
        out += &plain_table(&["Type", "Host", "Points to", "TTL"], &rows);
        out.push('\n');
    }
    let _ = writeln!(out, "Served by signet in {}:", zone.name());
    let rows: Vec<Vec<String>> = records
        .txts
        .iter()
        .map(|(name, value)| vec!["TXT".into(), name.clone(), value.clone()])
        .collect();
    out + &plain_table(&["Type", "Name", "Value"], &rows)
}

/// `signet records --format zone`: master-file lines, long TXT values split into strings.
pub fn records_zone(records: &Records, ttl: u32) -> String {
    let mut out = String::new();
    if !records.cnames.is_empty() {
        let _ = writeln!(out, "; publish in the zone of {}", records.domain);
        for (name, target) in &records.cnames {
            let _ = writeln!(out, "{name}. {ttl} IN CNAME {target}.");
        }
    }
    let _ = writeln!(out, "; served by signet in the key zone");
    for (name, value) in &records.txts {
        let strings: Vec<String> = txt_strings(value)
            .iter()
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
            .collect();
        let _ = writeln!(out, "{name}. {ttl} IN TXT ( {} )", strings.join(" "));
    }
    out
}

/// `signet records --format json`.
pub fn records_json(records: &Records, ttl: u32) -> String {
    let cnames: Vec<Value> = records
        .cnames
        .iter()
        .map(|(name, target)| serde_json::json!({ "type": "CNAME", "name": name, "value": target, "ttl": ttl }))
        .collect();
    let txts: Vec<Value> = records
        .txts
        .iter()
        .map(|(name, value)| serde_json::json!({ "type": "TXT", "name": name, "value": value, "ttl": ttl }))
        .collect();
    let value = serde_json::json!({ "domain": records.domain.as_str(), "customer": cnames, "key_zone": txts });
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_pad_names_like_format_list() {
        let records = vec![vec![
            property("Domain", "domain", "a.example"),
            property("Enabled", "enabled", true),
            property("RotateOnDate", "rotate_on_date", Value::Null),
        ]];
        assert_eq!(
            list(&records),
            "Domain       : a.example\nEnabled      : True\nRotateOnDate :\n"
        );
        assert_eq!(
            json(&records, true),
            "{\n  \"domain\": \"a.example\",\n  \"enabled\": true,\n  \"rotate_on_date\": null\n}\n"
        );
    }

    #[test]
    fn tables_fit_their_content() {
        let out = plain_table(&["A", "Long"], &[vec!["wide cell".into(), "x".into()]]);
        assert_eq!(out, "A          Long\n---------  ----\nwide cell  x\n");
    }
}
