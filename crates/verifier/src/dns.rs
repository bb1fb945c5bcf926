//! Where the verifier's DNS answers come from.
//!
//! mail-auth resolves through a hickory resolver, so the seam sits one level lower than a Rust
//! call: a [`DnsAnswers`] source (a [`RecordTable`] read from a `--records` file, or a test's own
//! table) is served by a [`LoopbackDns`] responder on 127.0.0.1, and the verifier's resolver asks
//! it exactly as it would ask the internet. Timeouts, NXDOMAIN versus NODATA, CNAME chains and
//! TCP fallback for large answers therefore take the same code path as in production.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::Error;

/// The record types a records table can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Txt,
    A,
    Aaaa,
    Mx,
    Ptr,
    Cname,
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        match text.to_ascii_uppercase().as_str() {
            "TXT" => Some(Kind::Txt),
            "A" => Some(Kind::A),
            "AAAA" => Some(Kind::Aaaa),
            "MX" => Some(Kind::Mx),
            "PTR" => Some(Kind::Ptr),
            "CNAME" => Some(Kind::Cname),
            _ => None,
        }
    }

    fn of(record_type: RecordType) -> Option<Kind> {
        match record_type {
            RecordType::TXT => Some(Kind::Txt),
            RecordType::A => Some(Kind::A),
            RecordType::AAAA => Some(Kind::Aaaa),
            RecordType::MX => Some(Kind::Mx),
            RecordType::PTR => Some(Kind::Ptr),
            RecordType::CNAME => Some(Kind::Cname),
            _ => None,
        }
    }
}

/// One record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    /// The character strings of one TXT record (each at most 255 bytes).
    Txt(Vec<Vec<u8>>),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx {
        preference: u16,
        exchange: String,
    },
    Ptr(String),
    Cname(String),
}

/// What a name server says about one (name, type) question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Records(Vec<RecordData>),
    /// The name has no records of this type, but exists.
    NoData,
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
    /// The server never answers.
    Timeout,
    /// The server answers SERVFAIL.
    ServerFailure,
}

/// A source of DNS answers: the seam tests and `--records` files plug into.
pub trait DnsAnswers: Send + Sync + fmt::Debug + 'static {
    fn answer(&self, name: &str, kind: Kind) -> Answer;
}

/// A DNS table read from text: one `name TYPE value` per line, `#` comments.
///
/// TXT values are taken verbatim (split into 255-byte strings when served) unless written as
/// quoted strings (`"part one" "part two"`); MX values are `PREFERENCE EXCHANGE`; the value
/// `TIMEOUT` makes that lookup time out, `SERVFAIL` makes every lookup of the name fail. Names
/// not listed answer NXDOMAIN.
#[derive(Debug, Clone, Default)]
pub struct RecordTable {
    names: HashMap<String, Vec<(Kind, Option<RecordData>)>>,
    failures: Vec<String>,
}

impl RecordTable {
    pub fn parse(text: &str) -> Result<RecordTable, Error> {
        let mut table = RecordTable::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::Records {
                line: index + 1,
                reason: why.to_string(),
            };
            let (name, rest) = split_word(line).ok_or_else(|| bad("expected `name TYPE value`"))?;
            let (kind, value) = split_word(rest).ok_or_else(|| bad("expected a TYPE"))?;
            let kind = Kind::parse(kind)
                .ok_or_else(|| bad("TYPE must be one of TXT, A, AAAA, MX, PTR, CNAME"))?;
            let value = value.trim_end_matches(['\r', '\n']);
            match value.trim() {
                "TIMEOUT" => table.insert(name, kind, None),
                "SERVFAIL" => table.failures.push(normalize(name)),
                _ => {
                    let data = parse_data(kind, value).map_err(|why| bad(&why))?;
                    table.insert(name, kind, Some(data));
                }
            }
        }
        Ok(table)
    }

    /// Adds one record; `None` data makes lookups of that type at `name` time out.
    pub fn insert(&mut self, name: &str, kind: Kind, data: Option<RecordData>) {
        self.names
            .entry(normalize(name))
            .or_default()
            .push((kind, data));
    }

    /// Adds a TXT record, splitting it into 255-byte strings.
    pub fn insert_txt(&mut self, name: &str, value: &str) {
        self.insert(name, Kind::Txt, Some(RecordData::Txt(split_txt(value))));
    }
}

impl DnsAnswers for RecordTable {
    fn answer(&self, name: &str, kind: Kind) -> Answer {
        let name = normalize(name);
        if self.failures.contains(&name) {
            return Answer::ServerFailure;
        }
        let Some(entries) = self.names.get(&name) else {
            return Answer::NoSuchName;
        };
        let wanted = |k: Kind| entries.iter().filter(move |(have, _)| *have == k);
        let exact: Vec<_> = wanted(kind).collect();
        let matching = if exact.is_empty() && kind != Kind::Cname {
            wanted(Kind::Cname).collect()
        } else {
            exact
        };
        if matching.is_empty() {
            return Answer::NoData;
        }
        let mut records = Vec::new();
        for (_, data) in matching {
            match data {
                Some(data) => records.push(data.clone()),
                None => return Answer::Timeout,
            }
        }
        Answer::Records(records)
    }
}

fn split_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    let end = text.find([' ', '\t'])?;
    Some((&text[..end], text[end..].trim_start()))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_data(kind: Kind, value: &str) -> Result<RecordData, String> {
    let trimmed = value.trim();
    match kind {
        Kind::Txt => Ok(RecordData::Txt(parse_txt(value))),
        Kind::A => trimmed
            .parse()
            .map(RecordData::A)
            .map_err(|_| format!("`{trimmed}` is not an IPv4 address")),
        Kind::Aaaa => trimmed
            .parse()
            .map(RecordData::Aaaa)
            .map_err(|_| format!("`{trimmed}` is not an IPv6 address")),
        Kind::Mx => {
            // `10 .` (or a bare `0`) is a null MX (RFC 7505).
            let (preference, exchange) = split_word(trimmed).unwrap_or((trimmed, "."));
            let preference = preference
                .parse()
                .map_err(|_| format!("`{preference}` is not an MX preference"))?;
            Ok(RecordData::Mx {
                preference,
                exchange: exchange.trim().to_string(),
            })
        }
        Kind::Ptr => Ok(RecordData::Ptr(trimmed.to_string())),
        Kind::Cname => Ok(RecordData::Cname(trimmed.to_string())),
    }
}

/// `"a" "b"` becomes two strings; anything else is one value, split every 255 bytes.
fn parse_txt(value: &str) -> Vec<Vec<u8>> {
    let trimmed = value.trim();
    if trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"') {
        let mut strings = Vec::new();
        let mut current = Vec::new();
        let mut inside = false;
        let mut bytes = trimmed.bytes();
        while let Some(byte) = bytes.next() {
            match (inside, byte) {
                (false, b'"') => inside = true,
                (true, b'"') => {
                    strings.push(std::mem::take(&mut current));
                    inside = false;
                }
                (true, b'\\') => current.extend(bytes.next()),
                (true, other) => current.push(other),
                (false, _) => {}
            }
        }
        return strings;
    }
    split_txt(value)
}

fn split_txt(value: &str) -> Vec<Vec<u8>> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return vec![Vec::new()];
    }
    bytes.chunks(255).map(<[u8]>::to_vec).collect()
}

/// A DNS responder on 127.0.0.1 (UDP and TCP, same port) serving a [`DnsAnswers`] source.
/// The server stops when this value is dropped.
#[derive(Debug)]
pub struct LoopbackDns {
    address: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl LoopbackDns {
    pub async fn start(answers: Arc<dyn DnsAnswers>) -> io::Result<LoopbackDns> {
        let (udp, tcp, address) = bind_pair().await?;
        let udp_task = tokio::spawn(serve_udp(udp, Arc::clone(&answers)));
        let tcp_task = tokio::spawn(serve_tcp(tcp, answers));
        Ok(LoopbackDns {
            address,
            tasks: vec![udp_task, tcp_task],
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for LoopbackDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same loopback port. The port the system picks for
/// UDP may be taken for TCP (by another process, on a busy test machine), so a few ports are
/// tried before giving up.
async fn bind_pair() -> io::Result<(UdpSocket, TcpListener, SocketAddr)> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let address = udp.local_addr()?;
        match TcpListener::bind(address).await {
            Ok(tcp) => return Ok((udp, tcp, address)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && attempts < 16 => {
                attempts += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn serve_udp(socket: UdpSocket, answers: Arc<dyn DnsAnswers>) {
    let mut buffer = vec![0u8; 65_535];
    loop {
        let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        if let Some(reply) = respond(&buffer[..length], answers.as_ref(), true) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, answers: Arc<dyn DnsAnswers>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(stream, Arc::clone(&answers)));
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, answers: Arc<dyn DnsAnswers>) {
    loop {
        let Ok(length) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0u8; usize::from(length)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        // A timed-out lookup keeps the connection silent, as a dead server would.
        let Some(reply) = respond(&request, answers.as_ref(), false) else {
            continue;
        };
        let Ok(reply_length) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(reply_length).await.is_err() || stream.write_all(&reply).await.is_err()
        {
            return;
        }
    }
}

/// The wire reply to one query, or `None` to stay silent (a timeout).
fn respond(request: &[u8], answers: &dyn DnsAnswers, udp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(request).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    let limit = match &request.edns {
        Some(edns) => {
            let mut edns_reply = Edns::new();
            edns_reply.set_max_payload(4096);
            reply.set_edns(edns_reply);
            usize::from(edns.max_payload().clamp(512, 4096))
        }
        None => 512,
    };
    let Some(query) = request.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    reply.add_query(query.clone());
    if !fill(&mut reply, query, answers) {
        return None;
    }
    let wire = reply.to_vec().ok()?;
    if udp && wire.len() > limit {
        let mut truncated = Message::response(request.metadata.id, request.metadata.op_code);
        truncated.metadata = reply.metadata;
        truncated.metadata.truncation = true;
        truncated.add_query(query.clone());
        return truncated.to_vec().ok();
    }
    Some(wire)
}

/// Puts the answer to `query` into `reply`, following CNAMEs; `false` means stay silent.
fn fill(reply: &mut Message, query: &Query, answers: &dyn DnsAnswers) -> bool {
    let Some(kind) = Kind::of(query.query_type()) else {
        return true; // Types a table cannot hold (SPF, NS, ...) exist but are empty: NODATA.
    };
    let mut name = query.name().clone();
    // A chain longer than this is a loop in the table; answer what we have.
    for _ in 0..8 {
        match answers.answer(&raw_name(&name), kind) {
            Answer::Timeout => return false,
            Answer::NoSuchName => {
                reply.metadata.response_code = ResponseCode::NXDomain;
                return true;
            }
            Answer::NoData => return true,
            Answer::ServerFailure => {
                reply.metadata.response_code = ResponseCode::ServFail;
                return true;
            }
            Answer::Records(records) => {
                let mut next = None;
                for data in records {
                    let Some(rdata) = to_rdata(&data) else {
                        continue;
                    };
                    if let (RData::CNAME(target), true) = (&rdata, kind != Kind::Cname) {
                        next = Some(target.0.clone());
                    }
                    reply.add_answer(Record::from_rdata(name.clone(), 300, rdata));
                }
                match next {
                    Some(target) => name = target,
                    None => return true,
                }
            }
        }
    }
    true
}

/// A name as its labels' bytes joined by dots, without the escapes of [`Name::to_ascii`]: SPF
/// names may hold any visible character (`foo:bar/baz.example.com`), and tables list them as is.
pub(crate) fn raw_name(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .collect();
    labels.join(".")
}

fn to_rdata(data: &RecordData) -> Option<RData> {
    let name = |text: &str| match text.trim_end_matches('.') {
        "" => Some(Name::root()),
        relative => {
            let mut name = Name::from_labels(relative.split('.').map(str::as_bytes)).ok()?;
            name.set_fqdn(true);
            Some(name)
        }
    };
    Some(match data {
        RecordData::Txt(strings) => {
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect()))
        }
        RecordData::A(address) => RData::A(A(*address)),
        RecordData::Aaaa(address) => RData::AAAA(AAAA(*address)),
        RecordData::Mx {
            preference,
            exchange,
        } => RData::MX(MX::new(*preference, name(exchange)?)),
        RecordData::Ptr(target) => RData::PTR(PTR(name(target)?)),
        RecordData::Cname(target) => RData::CNAME(CNAME(name(target)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines_parse_into_answers() {
        let table = RecordTable::parse(
            "# comment\n\
             sel._domainkey.example.com TXT v=DKIM1; k=ed25519; p=abc\n\
             example.com MX 10 mail.example.com\n\
             mail.example.com A 192.0.2.1\n\
             slow.example.com TXT TIMEOUT\n\
             two.example.com TXT \"v=spf1 \" \"-all\"\n\
             alias.example.com CNAME mail.example.com\n",
        )
        .unwrap();
        assert_eq!(
            table.answer("SEL._domainkey.example.com.", Kind::Txt),
            Answer::Records(vec![RecordData::Txt(vec![
                b"v=DKIM1; k=ed25519; p=abc".to_vec()
            ])])
        );
        assert_eq!(table.answer("example.com", Kind::Txt), Answer::NoData);
        assert_eq!(table.answer("nowhere.test", Kind::A), Answer::NoSuchName);
        assert_eq!(table.answer("slow.example.com", Kind::Txt), Answer::Timeout);
        assert_eq!(
            table.answer("two.example.com", Kind::Txt),
            Answer::Records(vec![RecordData::Txt(vec![
                b"v=spf1 ".to_vec(),
                b"-all".to_vec()
            ])])
        );
        assert_eq!(
            table.answer("alias.example.com", Kind::A),
            Answer::Records(vec![RecordData::Cname("mail.example.com".into())])
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        let error = RecordTable::parse("a.test TXT x\nb.test SRV 1 2 3\n").unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(RecordTable::parse("a.test A not-an-ip\n").is_err());
    }

    #[test]
    fn long_txt_values_are_split_into_strings() {
        let value = "p=".to_string() + &"A".repeat(400);
        let mut table = RecordTable::default();
        table.insert_txt("k.test", &value);
        let Answer::Records(records) = table.answer("k.test", Kind::Txt) else {
            panic!("expected records");
        };
        let RecordData::Txt(strings) = &records[0] else {
            panic!("expected TXT");
        };
        assert_eq!(strings.len(), 2);
        assert_eq!(strings.concat(), value.as_bytes());
    }
}
