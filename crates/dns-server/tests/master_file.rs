//! `Zone::to_master_file` (the text behind `signet zone export`) round trips: parsed back by an
//! independent master-file parser (hickory-proto's), it holds exactly the records the server
//! sends in a zone transfer.

use std::collections::BTreeSet;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use proptest::prelude::*;
use signet_dns_server::answer::{Transport, respond};
use signet_zone::{Zone, ZoneSettings};

/// Every record as (owner, TTL, type, data in presentation form).
type RecordSetText = BTreeSet<(String, u32, String, String)>;

fn from_master_file(zone: &Zone) -> RecordSetText {
    let text = zone.to_master_file();
    let (origin, sets) = Parser::new(text.as_str(), None, None)
        .parse()
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(origin.to_ascii(), format!("{}.", zone.settings().origin));
    sets.values()
        .flat_map(|set| set.records_without_rrsigs())
        .map(|r| {
            (
                r.name.to_ascii(),
                r.ttl,
                r.record_type().to_string(),
                r.data.to_string(),
            )
        })
        .collect()
}

fn from_transfer(zone: &Zone) -> RecordSetText {
    let mut request = Message::query();
    let origin: Name = format!("{}.", zone.settings().origin).parse().unwrap();
    request.add_query(Query::query(origin, RecordType::AXFR));
    let messages = respond(
        zone,
        &request.to_vec().unwrap(),
        Transport::Tcp { may_transfer: true },
    );
    messages
        .iter()
        .flat_map(|bytes| Message::from_vec(bytes).unwrap().answers)
        .map(|r| {
            (
                r.name.to_ascii(),
                r.ttl,
                r.record_type().to_string(),
                r.data.to_string(),
            )
        })
        .collect() // the closing SOA repeats the first one: the set keeps one
}

fn zone(values: &[String]) -> Zone {
    let records = values.iter().enumerate().map(|(i, value)| {
        (
            format!("selector{i}-contoso-com._domainkey.contoso.dkim.example.net"),
            value.clone(),
        )
    });
    let mut settings = ZoneSettings::new("dkim.example.net");
    settings.ttl = 600;
    settings.negative_ttl = 60;
    Zone::new(settings, 2_026_112_301, records).unwrap()
}

#[test]
fn the_export_holds_what_the_server_transfers() {
    let values = [
        format!("v=DKIM1; k=rsa; p={}", "A".repeat(392)), // a 2048-bit key: two strings
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".to_string(),
        "x".repeat(255),
        "y".repeat(256),
        "z".repeat(1000),
        r#"quotes " and backslashes \ survive"#.to_string(),
    ];
    let zone = zone(&values);
    let exported = from_master_file(&zone);
    assert_eq!(exported, from_transfer(&zone));
    // SOA, NS, the name server's A, and one TXT per value.
    assert_eq!(exported.len(), 3 + values.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_printable_values_round_trip(values in proptest::collection::vec("[ -~]{1,700}", 1..4)) {
        let zone = zone(&values);
        prop_assert_eq!(from_master_file(&zone), from_transfer(&zone));
    }
}
