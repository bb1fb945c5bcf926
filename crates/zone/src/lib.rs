//! The key zone as data: what signet answers for, independent of any wire format or socket.
//!
//! A [`Zone`] is built from the installation's settings, the store's serial and the TXT records
//! of every published key, and answers [`Zone::lookup`] the way an authoritative server must:
//! records, NODATA (the name exists, the type does not), NXDOMAIN, or not ours at all (REFUSED).
//! Empty non-terminals (`_domainkey.contoso.<zone>`) exist. Names are compared in lower case,
//! without the trailing dot.
//!
//! ```
//! use signet_zone::{Lookup, RecordType, Zone, ZoneSettings};
//! let settings = ZoneSettings::new("dkim.example.net");
//! let zone = Zone::new(settings, 7, [("selector1-a-com._domainkey.t.dkim.example.net".to_string(), "v=DKIM1; p=".to_string())]).unwrap();
//! assert!(matches!(zone.lookup("SELECTOR1-a-com._domainkey.t.dkim.example.net.", RecordType::Txt), Lookup::Records(_)));
//! assert_eq!(zone.lookup("_domainkey.t.dkim.example.net", RecordType::Txt), Lookup::NoData);
//! assert_eq!(zone.lookup("x.dkim.example.net", RecordType::Txt), Lookup::NxDomain);
//! assert_eq!(zone.lookup("example.org", RecordType::Txt), Lookup::NotInZone);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Why a zone cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("{name} is not inside the zone {origin}")]
    OutsideZone { name: String, origin: String },
    #[error("the TXT record at {0} is empty")]
    EmptyValue(String),
}

/// SOA and NS parameters of the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSettings {
    /// The zone's name, e.g. `dkim.example.net`.
    pub origin: String,
    /// NS names. Those inside the zone get an A record from `ns_address`.
    pub nameservers: Vec<String>,
    /// The address of in-zone name servers (glue).
    pub ns_address: Ipv4Addr,
    /// SOA RNAME, as a domain name (`hostmaster.dkim.example.net`).
    pub hostmaster: String,
    /// TTL of every record.
    pub ttl: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// SOA MINIMUM: how long resolvers may cache NXDOMAIN and NODATA.
    pub negative_ttl: u32,
}

impl ZoneSettings {
    /// Defaults for `origin`: `ns1.<origin>` at 127.0.0.1, TTL 3600, negative TTL 300.
    pub fn new(origin: &str) -> ZoneSettings {
        let origin = normalise(origin);
        ZoneSettings {
            nameservers: vec![format!("ns1.{origin}")],
            ns_address: Ipv4Addr::LOCALHOST,
            hostmaster: format!("hostmaster.{origin}"),
            ttl: 3600,
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            negative_ttl: 300,
            origin,
        }
    }
}

/// Record types the zone knows about (anything else is NODATA at an existing name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Soa,
    Ns,
    A,
    Txt,
    Any,
    Other,
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data<'a> {
    Soa,
    Ns(&'a str),
    A(Ipv4Addr),
    Txt(&'a str),
}

/// The answer to a question about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The records of the asked type at the name (never empty).
    Records(Vec<Data<'a>>),
    /// The name exists but has no record of that type.
    NoData,
    /// The name does not exist in the zone.
    NxDomain,
    /// The name is outside the zone: REFUSED.
    NotInZone,
}

/// An immutable snapshot of the key zone at one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    settings: ZoneSettings,
    serial: u32,
    txt: BTreeMap<String, Vec<String>>,
    glue: BTreeMap<String, Ipv4Addr>,
    /// Every name that exists, including empty non-terminals.
    names: BTreeSet<String>,
}

impl Zone {
    /// Builds the zone. `records` are (absolute owner name, TXT value) pairs.
    pub fn new(
        settings: ZoneSettings,
        serial: u32,
        records: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Zone, ZoneError> {
        let mut zone = Zone {
            serial,
            txt: BTreeMap::new(),
            glue: BTreeMap::new(),
            names: BTreeSet::new(),
            settings,
        };
        zone.names.insert(zone.settings.origin.clone());
        for ns in zone.settings.nameservers.clone() {
            let ns = normalise(&ns);
            if zone.inside(&ns) {
                zone.add_name(&ns);
                zone.glue.insert(ns, zone.settings.ns_address);
            }
        }
        for (name, value) in records {
            let name = normalise(&name);
            if !zone.inside(&name) {
                return Err(ZoneError::OutsideZone {
                    name,
                    origin: zone.settings.origin.clone(),
                });
            }
            if value.is_empty() {
                return Err(ZoneError::EmptyValue(name));
            }
            zone.add_name(&name);
            zone.txt.entry(name).or_default().push(value);
        }
        Ok(zone)
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn settings(&self) -> &ZoneSettings {
        &self.settings
    }

    /// How many TXT records the zone holds.
    pub fn len(&self) -> usize {
        self.txt.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.txt.is_empty()
    }

    fn inside(&self, name: &str) -> bool {
        let origin = &self.settings.origin;
        name == origin
            || (name.len() > origin.len()
                && name.ends_with(origin.as_str())
                && name.as_bytes()[name.len() - origin.len() - 1] == b'.')
    }

    /// Adds `name` and every ancestor up to the origin (empty non-terminals exist).
    fn add_name(&mut self, name: &str) {
        let mut current = name;
        while current.len() > self.settings.origin.len() {
            if !self.names.insert(current.to_string()) {
                return;
            }
            match current.split_once('.') {
                Some((_, parent)) => current = parent,
                None => return,
            }
        }
    }

    /// Answers a question about `name` (any case, trailing dot or not).
    pub fn lookup(&self, name: &str, kind: RecordType) -> Lookup<'_> {
        let name = normalise(name);
        if !self.inside(&name) {
            return Lookup::NotInZone;
        }
        if !self.names.contains(&name) {
            return Lookup::NxDomain;
        }
        let apex = name == self.settings.origin;
        let mut records = Vec::new();
        if apex && matches!(kind, RecordType::Soa | RecordType::Any) {
            records.push(Data::Soa);
        }
        if apex && matches!(kind, RecordType::Ns | RecordType::Any) {
            records.extend(
                self.settings
                    .nameservers
                    .iter()
                    .map(|ns| Data::Ns(ns.as_str())),
            );
        }
        if matches!(kind, RecordType::A | RecordType::Any)
            && let Some(address) = self.glue.get(&name)
        {
            records.push(Data::A(*address));
        }
        if matches!(kind, RecordType::Txt | RecordType::Any)
            && let Some(values) = self.txt.get(&name)
        {
            records.extend(values.iter().map(|v| Data::Txt(v.as_str())));
        }
        if records.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Records(records)
        }
    }

    /// The glue addresses of in-zone name servers.
    pub fn glue(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.glue
            .iter()
            .map(|(name, address)| (name.as_str(), *address))
    }

    /// Every record except the SOA, in a stable order, for a zone transfer.
    pub fn records(&self) -> impl Iterator<Item = (&str, Data<'_>)> {
        let origin = self.settings.origin.as_str();
        let ns = self
            .settings
            .nameservers
            .iter()
            .map(move |ns| (origin, Data::Ns(ns.as_str())));
        let glue = self
            .glue
            .iter()
            .map(|(name, address)| (name.as_str(), Data::A(*address)));
        let txt = self.txt.iter().flat_map(|(name, values)| {
            values
                .iter()
                .map(move |v| (name.as_str(), Data::Txt(v.as_str())))
        });
        ns.chain(glue).chain(txt)
    }

    /// The zone in RFC 1035 master-file form, TXT values split into 255-byte strings.
    pub fn to_master_file(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "; signet key zone {origin}, serial {serial}\n$ORIGIN {origin}.\n$TTL {ttl}\n\
             @ IN SOA {mname}. {rname}. ( {serial} {refresh} {retry} {expire} {negative} )\n",
            origin = s.origin,
            serial = self.serial,
            ttl = s.ttl,
            mname = s
                .nameservers
                .first()
                .map_or(s.origin.as_str(), String::as_str),
            rname = s.hostmaster,
            refresh = s.refresh,
            retry = s.retry,
            expire = s.expire,
            negative = s.negative_ttl,
        );
        for (name, data) in self.records() {
            let owner = format!("{name}.");
            let _ = match data {
                Data::Ns(ns) => writeln!(out, "{owner} IN NS {}.", normalise(ns)),
                Data::A(address) => writeln!(out, "{owner} IN A {address}"),
                // One line, no parentheses: every server reads it, and so do parsers (hickory's)
                // that do not accept quoted strings inside a parenthesised list.
                Data::Txt(value) => writeln!(out, "{owner} IN TXT {}", quoted_strings(value)),
                Data::Soa => Ok(()),
            };
        }
        out
    }
}

/// A TXT value as master-file character-strings of at most 255 bytes, quotes and backslashes
/// escaped.
pub fn quoted_strings(value: &str) -> String {
    split_txt(value)
        .iter()
        .map(|chunk| {
            let text = String::from_utf8_lossy(chunk)
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            format!("\"{text}\"")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a TXT value into the character-strings DNS carries (at most 255 bytes each).
pub fn split_txt(value: &str) -> Vec<&[u8]> {
    value.as_bytes().chunks(255).collect()
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        let records = [
            (
                "selector1-contoso-com._domainkey.contoso.dkim.example.net",
                "v=DKIM1; k=rsa; p=AAAA",
            ),
            (
                "selector2-contoso-com._domainkey.contoso.dkim.example.net",
                &"x".repeat(600),
            ),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()));
        Zone::new(ZoneSettings::new("dkim.example.net."), 42, records).unwrap()
    }

    #[test]
    fn lookups_answer_as_an_authoritative_server() {
        let z = zone();
        let key = "selector1-contoso-com._domainkey.contoso.dkim.example.net";
        assert_eq!(
            z.lookup(key, RecordType::Txt),
            Lookup::Records(vec![Data::Txt("v=DKIM1; k=rsa; p=AAAA")])
        );
        assert_eq!(
            z.lookup(&key.to_uppercase(), RecordType::Txt),
            Lookup::Records(vec![Data::Txt("v=DKIM1; k=rsa; p=AAAA")])
        );
        assert_eq!(z.lookup(key, RecordType::A), Lookup::NoData);
        assert_eq!(
            z.lookup("_domainkey.contoso.dkim.example.net", RecordType::Txt),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup("contoso.dkim.example.net", RecordType::Txt),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup("nope.dkim.example.net", RecordType::Txt),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(
                "a.selector1-contoso-com._domainkey.contoso.dkim.example.net",
                RecordType::Txt
            ),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup("dkim.example.net", RecordType::Soa),
            Lookup::Records(vec![Data::Soa])
        );
        assert_eq!(
            z.lookup("dkim.example.net", RecordType::Ns),
            Lookup::Records(vec![Data::Ns("ns1.dkim.example.net")])
        );
        assert_eq!(
            z.lookup("ns1.dkim.example.net", RecordType::A),
            Lookup::Records(vec![Data::A(Ipv4Addr::LOCALHOST)])
        );
        assert_eq!(
            z.lookup("dkim.example.net", RecordType::Txt),
            Lookup::NoData
        );
        assert_eq!(z.lookup("example.net", RecordType::Soa), Lookup::NotInZone);
        assert_eq!(
            z.lookup("xdkim.example.net", RecordType::Soa),
            Lookup::NotInZone
        );
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn names_outside_the_zone_or_empty_values_are_refused() {
        let outside = Zone::new(
            ZoneSettings::new("dkim.example.net"),
            1,
            [("a.example.org".to_string(), "v".to_string())],
        );
        assert_eq!(
            outside.unwrap_err().to_string(),
            "a.example.org is not inside the zone dkim.example.net"
        );
        let empty = Zone::new(
            ZoneSettings::new("dkim.example.net"),
            1,
            [("a.dkim.example.net".to_string(), String::new())],
        );
        assert!(matches!(empty, Err(ZoneError::EmptyValue(_))));
    }

    #[test]
    fn the_master_file_splits_long_values() {
        let text = zone().to_master_file();
        assert!(text.contains("@ IN SOA ns1.dkim.example.net. hostmaster.dkim.example.net. ( 42 3600 600 1209600 300 )"), "{text}");
        assert!(
            text.contains("dkim.example.net. IN NS ns1.dkim.example.net."),
            "{text}"
        );
        assert!(
            text.contains("ns1.dkim.example.net. IN A 127.0.0.1"),
            "{text}"
        );
        let long = text.lines().find(|l| l.starts_with("selector2")).unwrap();
        assert_eq!(long.matches('"').count(), 6, "three strings: {long}");
        assert!(long.contains(&format!(
            "\"{}\" \"{}\" \"{}\"",
            "x".repeat(255),
            "x".repeat(255),
            "x".repeat(90)
        )));
    }

    #[test]
    fn quotes_are_escaped() {
        assert_eq!(quoted_strings(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    proptest::proptest! {
        #[test]
        fn splitting_round_trips(value in "[ -~]{1,1000}") {
            let joined: Vec<u8> = split_txt(&value).concat();
            proptest::prop_assert_eq!(joined, value.as_bytes());
            proptest::prop_assert!(split_txt(&value).iter().all(|c| c.len() <= 255 && !c.is_empty()));
        }
    }
}
