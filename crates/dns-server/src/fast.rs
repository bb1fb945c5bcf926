//! The fast path for the queries that make up almost all of the key zone's traffic: one
//! question, class IN, type TXT, with or without a plain EDNS OPT record. The answer bytes of
//! every name are prepared once per zone change; answering copies the question and appends
//! them. Anything else — and anything this parser is unsure about — goes to the general path
//! ([`crate::answer::respond`]), which gives the same answers through hickory-proto.

use std::collections::{HashMap, HashSet};

use signet_zone::{Zone, split_txt};

use crate::answer::EDNS_PAYLOAD;

const TYPE_TXT: u16 = 16;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const HEADER: usize = 12;
const PLAIN_UDP: usize = 512;

/// A zone's answers in wire form.
#[derive(Debug, Default)]
pub struct FastIndex {
    /// Lower-case wire name -> (record count, answer records with the name compressed to the
    /// question).
    txt: HashMap<Vec<u8>, (u16, Vec<u8>)>,
    /// Every existing name (for NODATA versus NXDOMAIN).
    names: HashSet<Vec<u8>>,
    /// The apex in wire form, and the SOA record for negative answers.
    apex: Vec<u8>,
    soa: Vec<u8>,
}

impl FastIndex {
    pub fn new(zone: &Zone) -> FastIndex {
        let ttl = zone.settings().ttl;
        let mut txt: HashMap<Vec<u8>, (u16, Vec<u8>)> = HashMap::new();
        let mut names = HashSet::new();
        for (name, data) in zone.records() {
            let wire = wire_name(name);
            names.insert(wire.clone());
            if let signet_zone::Data::Txt(value) = data {
                let entry = txt.entry(wire).or_default();
                entry.0 += 1;
                entry.1.extend_from_slice(&[0xC0, 0x0C]);
                entry.1.extend_from_slice(&TYPE_TXT.to_be_bytes());
                entry.1.extend_from_slice(&CLASS_IN.to_be_bytes());
                entry.1.extend_from_slice(&ttl.to_be_bytes());
                let strings = split_txt(value);
                let rdlen: usize = strings.iter().map(|s| s.len() + 1).sum();
                entry
                    .1
                    .extend_from_slice(&u16::try_from(rdlen).unwrap_or(u16::MAX).to_be_bytes());
                for s in strings {
                    entry.1.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
                    entry.1.extend_from_slice(s);
                }
            }
        }
        // Empty non-terminals exist too.
        for name in names.clone() {
            let mut rest = &name[..];
            while let Some(&len) = rest.first() {
                if len == 0 {
                    break;
                }
                rest = &rest[usize::from(len) + 1..];
                names.insert(rest.to_vec());
            }
        }
        let apex = wire_name(&zone.settings().origin);
        let soa = soa_record(zone, &apex);
        FastIndex {
            txt,
            names,
            apex,
            soa,
        }
    }

    /// The reply to `request` over UDP, or `None` when the general path must answer.
    pub fn respond_udp(&self, request: &[u8]) -> Option<Vec<u8>> {
        let query = parse(request)?;
        let name = &query.lower_name[..query.name_len];
        let limit = query
            .edns_payload
            .map_or(PLAIN_UDP, |p| usize::from(p.clamp(512, EDNS_PAYLOAD)));
        let (rcode, answers, records, authority) = match self.txt.get(name) {
            Some((count, records)) => (0u8, *count, &records[..], false),
            None if !self.inside(name) => return None,
            None if self.names.contains(name) => (0, 0, &[][..], true),
            None => (3, 0, &[][..], true),
        };
        let question_end = HEADER + query.name_len + 4;
        let mut reply = Vec::with_capacity(question_end + records.len() + self.soa.len() + 11);
        reply.extend_from_slice(&request[..2]);
        // QR, opcode 0, AA, RD as asked; CD as asked; RCODE.
        reply.push(0x84 | (request[2] & 0x01));
        reply.push((request[3] & 0x10) | rcode);
        reply.extend_from_slice(&1u16.to_be_bytes());
        reply.extend_from_slice(&answers.to_be_bytes());
        reply.extend_from_slice(&u16::from(authority).to_be_bytes());
        reply.extend_from_slice(&u16::from(query.edns_payload.is_some()).to_be_bytes());
        reply.extend_from_slice(&request[HEADER..question_end]);
        reply.extend_from_slice(records);
        if authority {
            reply.extend_from_slice(&self.soa);
        }
        if query.edns_payload.is_some() {
            // OPT: root name, type 41, our payload, no extended rcode/flags, no options.
            reply.push(0);
            reply.extend_from_slice(&TYPE_OPT.to_be_bytes());
            reply.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
            reply.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        (reply.len() <= limit).then_some(reply)
    }

    fn inside(&self, name: &[u8]) -> bool {
        if !name.ends_with(&self.apex) {
            return false;
        }
        // On a label boundary: walk the labels of `name` until the suffix starts.
        let start = name.len() - self.apex.len();
        let mut at = 0;
        while at < start {
            at += usize::from(name[at]) + 1;
        }
        at == start
    }
}

struct FastQuery {
    /// The question name, lower-cased, in wire form (with its terminating zero).
    lower_name: [u8; 256],
    name_len: usize,
    /// The client's EDNS UDP payload size, when it sent a plain OPT record.
    edns_payload: Option<u16>,
}

/// Accepts only the plainest form of a query; `None` sends it to the general path.
fn parse(request: &[u8]) -> Option<FastQuery> {
    if request.len() < HEADER + 5 {
        return None;
    }
    let flags = request[2];
    let counts = |i: usize| u16::from_be_bytes([request[4 + 2 * i], request[5 + 2 * i]]);
    // QR = 0, opcode = 0, TC = 0; exactly one question; nothing but an optional OPT after it.
    if flags & 0xfa != 0 || counts(0) != 1 || counts(1) != 0 || counts(2) != 0 || counts(3) > 1 {
        return None;
    }
    let mut query = FastQuery {
        lower_name: [0; 256],
        name_len: 0,
        edns_payload: None,
    };
    let mut at = HEADER;
    loop {
        let len = usize::from(*request.get(at)?);
        if len > 63 || query.name_len + len + 1 > 255 {
            return None; // compression pointers and overlong names: general path
        }
        let label = request.get(at..=at + len)?;
        for (i, byte) in label.iter().enumerate() {
            query.lower_name[query.name_len + i] = if i == 0 {
                *byte
            } else {
                byte.to_ascii_lowercase()
            };
        }
        query.name_len += len + 1;
        at += len + 1;
        if len == 0 {
            break;
        }
    }
    let tail = request.get(at..at + 4)?;
    if u16::from_be_bytes([tail[0], tail[1]]) != TYPE_TXT
        || u16::from_be_bytes([tail[2], tail[3]]) != CLASS_IN
    {
        return None;
    }
    at += 4;
    if counts(3) == 1 {
        // OPT: root owner, type 41, payload, extended rcode 0 and version 0, any flags, options.
        let opt = request.get(at..at + 11)?;
        if opt[0] != 0
            || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT
            || opt[5] != 0
            || opt[6] != 0
        {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        if at + 11 + rdlen != request.len() {
            return None;
        }
        query.edns_payload = Some(u16::from_be_bytes([opt[3], opt[4]]));
    } else if at != request.len() {
        return None;
    }
    Some(query)
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        wire.push(u8::try_from(label.len()).unwrap_or(63));
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    wire
}

/// The SOA record as the authority section of a negative answer (TTL: the negative TTL).
fn soa_record(zone: &Zone, apex: &[u8]) -> Vec<u8> {
    let s = zone.settings();
    let mname = wire_name(
        s.nameservers
            .first()
            .map_or(s.origin.as_str(), String::as_str),
    );
    let rname = wire_name(&s.hostmaster);
    let mut rdata = Vec::new();
    rdata.extend_from_slice(&mname);
    rdata.extend_from_slice(&rname);
    for value in [zone.serial(), s.refresh, s.retry, s.expire, s.negative_ttl] {
        rdata.extend_from_slice(&value.to_be_bytes());
    }
    let mut record = apex.to_vec();
    record.extend_from_slice(&6u16.to_be_bytes());
    record.extend_from_slice(&CLASS_IN.to_be_bytes());
    record.extend_from_slice(&s.negative_ttl.to_be_bytes());
    record.extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(u16::MAX).to_be_bytes());
    record.extend_from_slice(&rdata);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{Transport, respond};
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;
    use signet_zone::ZoneSettings;
    use std::str::FromStr;

    fn zone() -> Zone {
        let records = [
            (
                "selector1-a-com._domainkey.t.dkim.example.net".to_string(),
                format!("v=DKIM1; k=rsa; p={}", "Q".repeat(392)),
            ),
            (
                "selector2-a-com._domainkey.t.dkim.example.net".to_string(),
                "v=DKIM1; k=ed25519; p=AAAA".to_string(),
            ),
            (
                "big._domainkey.t.dkim.example.net".to_string(),
                "x".repeat(700),
            ),
        ];
        Zone::new(ZoneSettings::new("dkim.example.net"), 5, records).unwrap()
    }

    fn query(name: &str, kind: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 777;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_str(name).unwrap(), kind));
        if let Some(payload) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(payload);
            message.set_edns(opt);
        }
        message.to_vec().unwrap()
    }

    /// The fast path, where it answers, says exactly what the general path says.
    fn same_as_general(request: &[u8]) {
        let zone = zone();
        let fast = FastIndex::new(&zone).respond_udp(request);
        let general = respond(&zone, request, Transport::Udp);
        if let Some(fast) = fast {
            let fast = Message::from_vec(&fast).expect("the fast reply parses");
            let general = Message::from_vec(&general[0]).unwrap();
            assert_eq!(fast.metadata, general.metadata);
            assert_eq!(fast.queries, general.queries);
            assert_eq!(fast.answers, general.answers);
            assert_eq!(fast.authorities, general.authorities);
            assert_eq!(
                fast.edns.map(|e| e.max_payload()),
                general.edns.map(|e| e.max_payload())
            );
        }
    }

    #[test]
    fn the_fast_path_answers_common_queries_like_the_general_path() {
        let index = FastIndex::new(&zone());
        for (name, edns, fast) in [
            (
                "selector1-a-com._domainkey.t.dkim.example.net.",
                Some(1232),
                true,
            ),
            (
                "SELECTOR1-A-COM._domainkey.t.dkim.example.net.",
                Some(4096),
                true,
            ),
            ("selector2-a-com._domainkey.t.dkim.example.net.", None, true),
            ("missing._domainkey.t.dkim.example.net.", Some(1232), true),
            ("_domainkey.t.dkim.example.net.", None, true),
            ("big._domainkey.t.dkim.example.net.", None, false),
            (
                "selector1-a-com._domainkey.t.dkim.example.org.",
                None,
                false,
            ),
            ("xdkim.example.net.", None, false),
        ] {
            let request = query(name, RecordType::TXT, edns);
            assert_eq!(index.respond_udp(&request).is_some(), fast, "{name}");
            same_as_general(&request);
        }
        assert!(
            index
                .respond_udp(&query("dkim.example.net.", RecordType::SOA, None))
                .is_none()
        );
    }

    #[test]
    fn edns_versions_above_zero_leave_the_fast_path_and_get_badvers() {
        let mut message = Message::from_vec(&query(
            "selector1-a-com._domainkey.t.dkim.example.net.",
            RecordType::TXT,
            Some(1232),
        ))
        .unwrap();
        let mut edns = Edns::new();
        edns.set_max_payload(1232).set_version(1);
        message.set_edns(edns);
        let request = message.to_vec().unwrap();
        assert!(FastIndex::new(&zone()).respond_udp(&request).is_none());
        let replies = crate::prepare(zone()).respond_udp(&request);
        let reply = Message::from_vec(&replies[0]).unwrap();
        assert_eq!(u16::from(reply.metadata.response_code), 16, "BADVERS");
        assert!(reply.answers.is_empty());
        assert_eq!(reply.edns.map(|e| e.version()), Some(0));
    }

    proptest! {
        #[test]
        fn fast_and_general_agree_on_mutated_queries(position in 0usize..80, value in any::<u8>()) {
            let mut request = query("selector1-a-com._domainkey.t.dkim.example.net.", RecordType::TXT, Some(1232));
            let position = position % request.len();
            request[position] = value;
            same_as_general(&request);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = FastIndex::new(&zone()).respond_udp(&bytes);
        }
    }
}
