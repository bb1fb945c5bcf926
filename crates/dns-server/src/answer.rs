//! Request bytes in, response messages out: the whole DNS logic, without sockets.

use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, HINFO, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use signet_zone::{Data, Lookup, Zone, split_txt};

/// The UDP payload signet offers with EDNS (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Without EDNS, UDP answers are at most 512 bytes (RFC 1035).
const PLAIN_UDP: usize = 512;
/// Bytes of records (uncompressed, an upper bound) per zone-transfer message: far below the
/// 65,535 a TCP length prefix can announce, whatever the size of the TXT values.
const AXFR_MESSAGE_BUDGET: usize = 16 * 1024;

/// How a request arrived, and what its sender may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// `may_transfer`: the peer is a configured secondary.
    Tcp {
        may_transfer: bool,
    },
}

/// Answers one request. Returns the messages to send (several for a zone transfer, none when the
/// bytes are not worth answering).
pub fn respond(zone: &Zone, request: &[u8], transport: Transport) -> Vec<Vec<u8>> {
    let Ok(request) = Message::from_vec(request) else {
        return form_error(request).into_iter().collect();
    };
    if request.metadata.message_type != MessageType::Query {
        return Vec::new();
    }
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    let limit = match (transport, &request.edns) {
        (Transport::Tcp { .. }, _) => usize::from(u16::MAX),
        (Transport::Udp, Some(edns)) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
        (Transport::Udp, None) => PLAIN_UDP,
    };
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        // RFC 6891 section 6.1.3: we speak EDNS version 0 only; say so (our OPT is version 0).
        response.add_queries(request.queries.iter().cloned());
        return finish(with_code(&mut response, ResponseCode::BADVERS), limit);
    }
    if request.metadata.op_code != OpCode::Query {
        return finish(with_code(&mut response, ResponseCode::NotImp), limit);
    }
    let [query] = request.queries.as_slice() else {
        return finish(with_code(&mut response, ResponseCode::FormErr), limit);
    };
    response.add_query(query.clone());
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        return finish(with_code(&mut response, ResponseCode::Refused), limit);
    }
    if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR) {
        return transfer(zone, response, query, transport);
    }
    answer(zone, &mut response, query);
    finish(&mut response, limit)
}

fn answer(zone: &Zone, response: &mut Message, query: &Query) {
    let name = query.name().to_ascii();
    let kind = match query.query_type() {
        RecordType::SOA => signet_zone::RecordType::Soa,
        RecordType::NS => signet_zone::RecordType::Ns,
        RecordType::A => signet_zone::RecordType::A,
        RecordType::TXT => signet_zone::RecordType::Txt,
        RecordType::ANY => signet_zone::RecordType::Any,
        _ => signet_zone::RecordType::Other,
    };
    match zone.lookup(&name, kind) {
        Lookup::NotInZone => {
            response.metadata.response_code = ResponseCode::Refused;
        }
        Lookup::NxDomain => {
            response.metadata.authoritative = true;
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(soa(zone, zone.settings().negative_ttl));
        }
        Lookup::NoData => {
            response.metadata.authoritative = true;
            response.add_authority(soa(zone, zone.settings().negative_ttl));
        }
        Lookup::Records(_) if kind == signet_zone::RecordType::Any => {
            // RFC 8482 section 4.2: one synthesized HINFO instead of every RRset, so ANY is no
            // amplifier; a resolver that wants a type asks for it.
            response.metadata.authoritative = true;
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                zone.settings().ttl,
                RData::HINFO(HINFO::new("RFC8482".to_string(), String::new())),
            ));
        }
        Lookup::Records(records) => {
            response.metadata.authoritative = true;
            let owner = query.name().clone();
            for data in records {
                response.add_answer(record(zone, owner.clone(), &data));
            }
            if kind == signet_zone::RecordType::Ns {
                for (ns, address) in zone.glue() {
                    if let Ok(name) = absolute(ns) {
                        response.add_additional(Record::from_rdata(
                            name,
                            zone.settings().ttl,
                            RData::A(A(address)),
                        ));
                    }
                }
            }
        }
    }
}

/// AXFR (and IXFR, answered in AXFR form as RFC 1995 allows): SOA, every record, SOA.
fn transfer(
    zone: &Zone,
    mut response: Message,
    query: &Query,
    transport: Transport,
) -> Vec<Vec<u8>> {
    let allowed = matches!(transport, Transport::Tcp { may_transfer: true });
    let apex = absolute(&zone.settings().origin).ok();
    if !allowed || apex.as_ref() != Some(&query.name().to_lowercase()) {
        response.metadata.response_code = ResponseCode::Refused;
        return finish(&mut response, usize::from(u16::MAX));
    }
    response.metadata.authoritative = true;
    let mut records = vec![soa(zone, zone.settings().ttl)];
    for (name, data) in zone.records() {
        if let Ok(owner) = absolute(name) {
            records.push(record(zone, owner, &data));
        }
    }
    records.push(soa(zone, zone.settings().ttl));
    transfer_messages(&response, records)
}

/// Packs `records` into as few messages as the byte budget allows (at least one per message).
fn transfer_messages(template: &Message, records: Vec<Record>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut batch: Vec<Record> = Vec::new();
    let mut batch_size: usize = 0;
    for record in records {
        let size = record.to_bytes().map_or(usize::MAX, |bytes| bytes.len());
        if !batch.is_empty() && batch_size.saturating_add(size) > AXFR_MESSAGE_BUDGET {
            messages.push(std::mem::take(&mut batch));
            batch_size = 0;
        }
        batch_size = batch_size.saturating_add(size);
        batch.push(record);
    }
    messages.push(batch);
    messages
        .into_iter()
        .filter_map(|batch| {
            let mut message = template.clone();
            message.add_answers(batch);
            message.to_vec().ok()
        })
        .collect()
}

fn record(zone: &Zone, owner: Name, data: &Data<'_>) -> Record {
    let ttl = zone.settings().ttl;
    match data {
        Data::Soa => soa(zone, ttl),
        Data::Ns(ns) => Record::from_rdata(
            owner,
            ttl,
            RData::NS(NS(absolute(ns).unwrap_or_else(|_| Name::root()))),
        ),
        Data::A(address) => Record::from_rdata(owner, ttl, RData::A(A(*address))),
        Data::Txt(value) => {
            Record::from_rdata(owner, ttl, RData::TXT(TXT::from_bytes(split_txt(value))))
        }
    }
}

fn soa(zone: &Zone, ttl: u32) -> Record {
    let s = zone.settings();
    let origin = absolute(&s.origin).unwrap_or_else(|_| Name::root());
    let mname = s
        .nameservers
        .first()
        .and_then(|ns| absolute(ns).ok())
        .unwrap_or_else(|| origin.clone());
    let rname = absolute(&s.hostmaster).unwrap_or_else(|_| origin.clone());
    let as_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let data = SOA::new(
        mname,
        rname,
        zone.serial(),
        as_i32(s.refresh),
        as_i32(s.retry),
        as_i32(s.expire),
        s.negative_ttl,
    );
    Record::from_rdata(origin, ttl, RData::SOA(data))
}

fn absolute(name: &str) -> Result<Name, hickory_proto::ProtoError> {
    let mut name = Name::from_str(name)?;
    name.set_fqdn(true);
    Ok(name)
}

fn with_code(response: &mut Message, code: ResponseCode) -> &mut Message {
    response.metadata.response_code = code;
    response
}

/// Encodes the response; over UDP, a response that does not fit is sent empty with TC set so
/// the client retries over TCP.
fn finish(response: &mut Message, limit: usize) -> Vec<Vec<u8>> {
    let Ok(bytes) = response.to_vec() else {
        response.answers.clear();
        response.authorities.clear();
        response.additionals.clear();
        response.metadata.response_code = ResponseCode::ServFail;
        return response.to_vec().into_iter().collect();
    };
    if bytes.len() <= limit {
        return vec![bytes];
    }
    response.answers.clear();
    response.authorities.clear();
    response.additionals.clear();
    response.metadata.truncation = true;
    response.to_vec().into_iter().collect()
}

/// A FORMERR for bytes that do not parse, when at least the header's id can be read.
fn form_error(request: &[u8]) -> Option<Vec<u8>> {
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None; // too short to answer, or itself a response: never answer those
    }
    let id = u16::from_be_bytes([request[0], request[1]]);
    let op_code = OpCode::from_u8((request[2] >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_zone::ZoneSettings;

    fn zone() -> Zone {
        let records = [
            (
                "selector1-contoso-com._domainkey.contoso.dkim.example.net".to_string(),
                format!("v=DKIM1; k=rsa; p={}", "A".repeat(392)),
            ),
            (
                "big._domainkey.contoso.dkim.example.net".to_string(),
                "x".repeat(1500),
            ),
        ];
        Zone::new(ZoneSettings::new("dkim.example.net"), 9, records).unwrap()
    }

    fn ask(name: &str, kind: RecordType, edns: bool) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 4242;
        message.add_query(Query::query(Name::from_str(name).unwrap(), kind));
        if edns {
            message.set_edns(Edns::new());
        }
        message.to_vec().unwrap()
    }

    fn reply(request: &[u8], transport: Transport) -> Message {
        let out = respond(&zone(), request, transport);
        assert_eq!(out.len(), 1);
        Message::from_vec(&out[0]).unwrap()
    }

    #[test]
    fn answers_carry_the_right_codes_and_sections() {
        let udp = Transport::Udp;
        let r = reply(
            &ask(
                "selector1-contoso-com._domainkey.contoso.dkim.example.net.",
                RecordType::TXT,
                true,
            ),
            udp,
        );
        assert_eq!(
            (
                r.metadata.response_code,
                r.metadata.authoritative,
                r.metadata.id
            ),
            (ResponseCode::NoError, true, 4242)
        );
        let RData::TXT(txt) = &r.answers[0].data else {
            panic!()
        };
        assert_eq!(txt.txt_data.len(), 2, "400 bytes become two strings");
        assert!(r.edns.is_some());

        let r = reply(&ask("nope.dkim.example.net.", RecordType::TXT, false), udp);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(r.authorities[0].data, RData::SOA(_)));
        assert!(r.edns.is_none());

        let r = reply(
            &ask(
                "selector1-contoso-com._domainkey.contoso.dkim.example.net.",
                RecordType::A,
                false,
            ),
            udp,
        );
        assert_eq!(
            (r.metadata.response_code, r.answers.len()),
            (ResponseCode::NoError, 0)
        );
        assert!(matches!(r.authorities[0].data, RData::SOA(_)));

        let r = reply(&ask("example.org.", RecordType::TXT, false), udp);
        assert_eq!(
            (r.metadata.response_code, r.metadata.authoritative),
            (ResponseCode::Refused, false)
        );

        let r = reply(&ask("dkim.example.net.", RecordType::NS, false), udp);
        assert!(matches!(r.answers[0].data, RData::NS(_)));
        assert!(matches!(r.additionals[0].data, RData::A(_)));
    }

    #[test]
    fn oversized_udp_answers_are_truncated_and_tcp_gets_them_whole() {
        let request = ask(
            "big._domainkey.contoso.dkim.example.net.",
            RecordType::TXT,
            false,
        );
        let r = reply(&request, Transport::Udp);
        assert!(r.metadata.truncation && r.answers.is_empty());
        let r = reply(
            &request,
            Transport::Tcp {
                may_transfer: false,
            },
        );
        assert!(!r.metadata.truncation && r.answers.len() == 1);
    }

    #[test]
    fn transfers_go_to_secondaries_only() {
        let request = ask("dkim.example.net.", RecordType::AXFR, false);
        let refused = reply(
            &request,
            Transport::Tcp {
                may_transfer: false,
            },
        );
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert_eq!(
            reply(&request, Transport::Udp).metadata.response_code,
            ResponseCode::Refused
        );
        let messages = respond(&zone(), &request, Transport::Tcp { may_transfer: true });
        let records: Vec<Record> = messages
            .iter()
            .flat_map(|m| Message::from_vec(m).unwrap().answers)
            .collect();
        assert!(matches!(records.first().unwrap().data, RData::SOA(_)));
        assert!(matches!(records.last().unwrap().data, RData::SOA(_)));
        assert_eq!(
            records.len(),
            2 + 1 + 1 + 2,
            "SOA, NS, glue A, two TXT, SOA"
        );
    }

    #[test]
    fn big_zones_transfer_in_messages_a_tcp_length_prefix_can_carry() {
        let records = (0..300).map(|i| {
            (
                format!("k{i}._domainkey.t.dkim.example.net"),
                "v".repeat(3000),
            )
        });
        let zone = Zone::new(ZoneSettings::new("dkim.example.net"), 1, records).unwrap();
        let request = ask("dkim.example.net.", RecordType::AXFR, false);
        let messages = respond(&zone, &request, Transport::Tcp { may_transfer: true });
        assert!(messages.len() > 1);
        assert!(
            messages.iter().all(|m| m.len() <= 20 * 1024),
            "within the budget"
        );
        let records: usize = messages
            .iter()
            .map(|m| Message::from_vec(m).unwrap().answers.len())
            .sum();
        assert_eq!(records, 300 + 4, "SOA, NS, glue A, 300 TXT, SOA");
    }

    #[test]
    fn an_edns_version_we_do_not_speak_gets_badvers_and_no_answer() {
        let mut message = Message::query();
        message.metadata.id = 4242;
        message.add_query(Query::query(
            Name::from_str("selector1-contoso-com._domainkey.contoso.dkim.example.net.").unwrap(),
            RecordType::TXT,
        ));
        let mut edns = Edns::new();
        edns.set_version(1);
        message.set_edns(edns);
        let request = message.to_vec().unwrap();
        for transport in [Transport::Udp, Transport::Tcp { may_transfer: true }] {
            let r = reply(&request, transport);
            assert_eq!(u16::from(r.metadata.response_code), 16, "BADVERS");
            assert!(r.answers.is_empty() && r.authorities.is_empty());
            assert_eq!(r.queries, message.queries);
            assert_eq!(r.edns.as_ref().map(Edns::version), Some(0));
        }
    }

    #[test]
    fn any_gets_one_hinfo_record_as_rfc_8482_allows() {
        for name in [
            "dkim.example.net.",
            "selector1-contoso-com._domainkey.contoso.dkim.example.net.",
        ] {
            let r = reply(&ask(name, RecordType::ANY, true), Transport::Udp);
            assert_eq!(r.metadata.response_code, ResponseCode::NoError);
            assert!(r.metadata.authoritative);
            let [record] = r.answers.as_slice() else {
                panic!("one record for ANY {name}: {:?}", r.answers)
            };
            let RData::HINFO(hinfo) = &record.data else {
                panic!("{record:?}")
            };
            assert_eq!((&hinfo.cpu[..], &hinfo.os[..]), (&b"RFC8482"[..], &b""[..]));
            assert!(r.additionals.is_empty());
        }
        // Names without records keep their usual answers.
        let r = reply(
            &ask("nope.dkim.example.net.", RecordType::ANY, false),
            Transport::Udp,
        );
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        let r = reply(
            &ask(
                "_domainkey.contoso.dkim.example.net.",
                RecordType::ANY,
                false,
            ),
            Transport::Udp,
        );
        assert_eq!(
            (r.metadata.response_code, r.answers.len()),
            (ResponseCode::NoError, 0)
        );
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        assert!(respond(&zone(), b"", Transport::Udp).is_empty());
        assert!(respond(&zone(), &[0u8; 5], Transport::Udp).is_empty());
        let mut bad = ask("dkim.example.net.", RecordType::SOA, false);
        bad.truncate(bad.len() - 3);
        let out = respond(&zone(), &bad, Transport::Udp);
        let r = Message::from_vec(&out[0]).unwrap();
        assert_eq!(
            (r.metadata.id, r.metadata.response_code),
            (4242, ResponseCode::FormErr)
        );
        // Huge counts in the header, nothing behind them.
        let mut huge = vec![
            0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        huge.extend_from_slice(&[0; 4]);
        let out = respond(&zone(), &huge, Transport::Udp);
        assert_eq!(
            Message::from_vec(&out[0]).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        // A response is never answered (no reflection loops).
        let mut response = ask("dkim.example.net.", RecordType::SOA, false);
        response[2] |= 0x80;
        assert!(respond(&zone(), &response, Transport::Udp).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use signet_zone::ZoneSettings;

    fn zone() -> Zone {
        Zone::new(
            ZoneSettings::new("dkim.example.net"),
            3,
            [(
                "a._domainkey.t.dkim.example.net".to_string(),
                "v=DKIM1; p=AA".to_string(),
            )],
        )
        .unwrap()
    }

    proptest! {
        /// Random bytes, and valid queries with random bytes flipped: never a panic, and every
        /// reply parses as a DNS message with the request's id.
        #[test]
        fn any_bytes_get_a_well_formed_reply_or_none(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for reply in respond(&zone(), &bytes, Transport::Udp) {
                let parsed = Message::from_vec(&reply);
                prop_assert!(parsed.is_ok());
                prop_assert_eq!(parsed.unwrap().metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
            }
        }

        #[test]
        fn mutated_queries_never_panic(position in 0usize..64, value in any::<u8>(), kind in 0u16..300) {
            let mut message = Message::query();
            message.add_query(Query::query(Name::from_str("a._domainkey.t.dkim.example.net.").unwrap(), RecordType::from(kind)));
            let mut bytes = message.to_vec().unwrap();
            let position = position % bytes.len();
            bytes[position] = value;
            for transport in [Transport::Udp, Transport::Tcp { may_transfer: true }] {
                for reply in respond(&zone(), &bytes, transport) {
                    prop_assert!(Message::from_vec(&reply).is_ok());
                }
            }
        }
    }
}
