//! Human and machine output: `Format-List`-style lists, tables, JSON.
//!
//! A config is turned into one ordered list of [`Property`] values; every format renders from
//! that list, so list, table and JSON can never disagree.

use std::fmt::Write as _;

use serde_json::Value;
use signet_app::Records;
pub use signet_app::view::{Property, config_properties};
use signet_app::view::{config_json, records_json as records_value};
use signet_keys::{KeyZone, record::txt_strings};

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
    let objects: Vec<Value> = records.iter().map(|r| config_json(r)).collect();
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
    serde_json::to_string_pretty(&records_value(records, ttl)).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(pascal: &'static str, snake: &'static str, value: impl Into<Value>) -> Property {
        Property {
            pascal,
            snake,
            value: value.into(),
        }
    }

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
