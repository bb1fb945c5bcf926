//! The server in-process over loopback, asked by real `dig` (Debian `dnsutils`) and transferred
//! by a real secondary (Knot, Debian `knot`). Every server listens on a fresh high port.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use signet_dns_server::{DnsConfig, DnsServer, Limits, ZoneHandle};
use signet_zone::{Zone, ZoneSettings};

const ORIGIN: &str = "dkim.example.net";
const KEY_NAME: &str = "selector1-contoso-com._domainkey.contoso.dkim.example.net";

/// A DKIM record for a fresh 2048-bit RSA key (392 base64 characters of key).
fn rsa_2048_record() -> String {
    let key = openssl::rsa::Rsa::generate(2048).unwrap();
    let der = openssl::pkey::PKey::from_rsa(key)
        .unwrap()
        .public_key_to_der()
        .unwrap();
    format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

fn zone(serial: u32, records: &[(&str, &str)]) -> Zone {
    let records = records
        .iter()
        .map(|(name, value)| ((*name).to_string(), (*value).to_string()));
    Zone::new(ZoneSettings::new(ORIGIN), serial, records).unwrap()
}

/// The server running on its own tokio runtime; stopped on drop.
struct Running {
    port: u16,
    handle: ZoneHandle,
    stop: tokio::sync::watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Running {
    fn start(zone: Zone, secondaries: Vec<SocketAddr>) -> Running {
        Running::with_limits(zone, secondaries, Limits::default())
    }

    fn with_limits(zone: Zone, secondaries: Vec<SocketAddr>, limits: Limits) -> Running {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let port = free_port();
        let config = DnsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            secondaries,
            limits,
        };
        let server = runtime.block_on(DnsServer::bind(&config)).unwrap();
        let handle = ZoneHandle::new(zone);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        runtime.spawn(server.run(handle.clone(), stopped));
        Running {
            port,
            handle,
            stop,
            runtime: Some(runtime),
        }
    }

    fn dig(&self, args: &[&str]) -> String {
        dig(self.port, args)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `dig @127.0.0.1 -p PORT +time=2 +tries=2 ARGS…`, returning stdout.
fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("dig is not installed: run .ci/setup (Debian package dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status word of dig's `->>HEADER<<-` line.
fn status(answer: &str) -> &str {
    answer
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("(no answer)")
}

/// The flags of dig's `;; flags:` line.
fn flags(answer: &str) -> Vec<&str> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .and_then(|l| l.split(';').next())
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default()
}

/// The character-strings of each TXT record in `dig +short` output, joined into one value.
fn txt_values(short: &str) -> Vec<String> {
    short
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| l.split('"').skip(1).step_by(2).collect())
        .collect()
}

fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up after {limit:?} waiting for {what}");
}

#[test]
fn dig_gets_authoritative_answers_over_udp_and_tcp() {
    let key = rsa_2048_record();
    let server = Running::start(zone(7, &[(KEY_NAME, &key)]), vec![]);

    let soa = server.dig(&["SOA", ORIGIN]);
    assert_eq!(status(&soa), "NOERROR", "{soa}");
    assert!(flags(&soa).contains(&"aa"), "{soa}");
    assert_eq!(
        server.dig(&["+short", "SOA", ORIGIN]).trim(),
        "ns1.dkim.example.net. hostmaster.dkim.example.net. 7 3600 600 1209600 300"
    );
    assert_eq!(
        server.dig(&["+short", "NS", ORIGIN]).trim(),
        "ns1.dkim.example.net."
    );
    assert_eq!(
        server.dig(&["+short", "A", "ns1.dkim.example.net"]).trim(),
        "127.0.0.1"
    );

    for transport in ["+notcp", "+tcp"] {
        let short = server.dig(&[transport, "+short", "TXT", KEY_NAME]);
        assert_eq!(
            txt_values(&short),
            std::slice::from_ref(&key),
            "{transport}: {short}"
        );
        let strings = short.matches("\" \"").count() + 1;
        assert_eq!(strings, 2, "a 2048-bit key takes two character-strings");
        // Case does not matter, and the answer repeats the name as asked.
        let upper = server.dig(&[transport, "TXT", &KEY_NAME.to_uppercase()]);
        assert_eq!(status(&upper), "NOERROR", "{upper}");
    }
}

#[test]
fn dig_sees_nxdomain_nodata_and_refused() {
    let server = Running::start(zone(3, &[(KEY_NAME, "v=DKIM1; k=rsa; p=AAAA")]), vec![]);
    for transport in ["+notcp", "+tcp"] {
        let nx = server.dig(&[
            transport,
            "TXT",
            "selector9._domainkey.contoso.dkim.example.net",
        ]);
        assert_eq!(status(&nx), "NXDOMAIN", "{nx}");
        assert!(flags(&nx).contains(&"aa"), "{nx}");
        assert!(
            nx.contains(";; AUTHORITY SECTION:\ndkim.example.net.\t300\tIN\tSOA"),
            "the SOA, with the negative TTL, in authority: {nx}"
        );

        let nodata = server.dig(&[transport, "A", KEY_NAME]);
        assert_eq!(status(&nodata), "NOERROR", "{nodata}");
        assert!(nodata.contains("ANSWER: 0,"), "{nodata}");
        assert!(nodata.contains("IN\tSOA"), "{nodata}");

        let empty_non_terminal =
            server.dig(&[transport, "TXT", "_domainkey.contoso.dkim.example.net"]);
        assert_eq!(
            status(&empty_non_terminal),
            "NOERROR",
            "{empty_non_terminal}"
        );

        let refused = server.dig(&[transport, "TXT", "example.org"]);
        assert_eq!(status(&refused), "REFUSED", "{refused}");
        let parent = server.dig(&[transport, "SOA", "example.net"]);
        assert_eq!(status(&parent), "REFUSED", "{parent}");
    }
}

#[test]
fn edns_is_echoed_and_big_udp_answers_are_truncated() {
    let big = format!("v=DKIM1; k=rsa; p={}", "B".repeat(1400));
    let server = Running::start(zone(5, &[(KEY_NAME, &big)]), vec![]);

    let with_edns = server.dig(&["+bufsize=1232", "TXT", "nope.dkim.example.net"]);
    assert!(
        with_edns.contains("; EDNS: version: 0, flags:; udp: 1232"),
        "{with_edns}"
    );
    let without = server.dig(&["+noedns", "SOA", ORIGIN]);
    assert!(!without.contains("EDNS"), "{without}");

    // 1,400+ bytes fit in neither 512 (no EDNS) nor 1232 (EDNS): TC set, no records.
    for size in ["+noedns", "+bufsize=1232"] {
        let truncated = server.dig(&["+notcp", "+ignore", size, "TXT", KEY_NAME]);
        assert!(flags(&truncated).contains(&"tc"), "{size}: {truncated}");
        assert!(truncated.contains("ANSWER: 0,"), "{size}: {truncated}");
    }
    // dig, like a resolver, retries over TCP and gets the whole record.
    let retried = server.dig(&["+notcp", "+short", "TXT", KEY_NAME]);
    assert_eq!(txt_values(&retried), std::slice::from_ref(&big));
    // A client offering a bigger buffer over UDP still gets at most 1232 bytes: truncated.
    let greedy = server.dig(&["+notcp", "+ignore", "+bufsize=4096", "TXT", KEY_NAME]);
    assert!(flags(&greedy).contains(&"tc"), "{greedy}");
}

#[test]
fn malformed_packets_neither_crash_nor_stall_the_server() {
    let server = Running::start(zone(1, &[(KEY_NAME, "v=DKIM1; p=AAAA")]), vec![]);
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 11],
        vec![0xff; 12],
        vec![0xab; 4000],
        // A header claiming 65,535 records in every section, and nothing after it.
        vec![
            0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        // A question whose name is a compression pointer to itself.
        vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 16, 0, 1],
        // A label length running past the end.
        vec![0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', b'b'],
    ];
    let mut seed = 0x2545_f491_u32;
    for len in 1..300 {
        packets.push(
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed.to_le_bytes()[0]
                })
                .collect(),
        );
    }
    // From another /24 than dig's 127.0.0.1: the FORMERRs count against the sender's response
    // rate, and the checks below must not wait for its bucket to refill.
    let socket = UdpSocket::bind("127.0.1.1:0").unwrap();
    for packet in &packets {
        socket.send_to(packet, ("127.0.0.1", server.port)).unwrap();
    }
    // Over TCP: a length prefix promising more than is sent, then a hang-up; a connection that
    // says nothing and stays open; and garbage framed correctly.
    {
        use std::io::Write;
        let mut short = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        short.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
        let _silent = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        for packet in packets.iter().take(20) {
            let mut framed = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            let length = u16::try_from(packet.len()).unwrap();
            framed.write_all(&length.to_be_bytes()).unwrap();
            framed.write_all(packet).unwrap();
        }
        let udp = server.dig(&["+short", "SOA", ORIGIN]);
        assert!(udp.contains(" 1 3600 "), "UDP still answers: {udp}");
        let tcp = server.dig(&["+tcp", "+short", "SOA", ORIGIN]);
        assert_eq!(
            tcp, udp,
            "TCP still answers while a silent client is connected"
        );
    }
}

#[test]
fn zone_transfers_go_to_configured_secondaries_only() {
    let secondary: SocketAddr = "127.0.0.2:53".parse().unwrap();
    let server = Running::start(zone(11, &[(KEY_NAME, &rsa_2048_record())]), vec![secondary]);
    let stranger = server.dig(&["AXFR", ORIGIN]);
    assert!(stranger.contains("Transfer failed"), "{stranger}");
    assert_eq!(records_of_type(&stranger, "SOA"), 0, "{stranger}");
    let udp = server.dig(&["+notcp", "AXFR", ORIGIN]);
    assert_eq!(
        records_of_type(&udp, "SOA"),
        0,
        "no transfer over UDP: {udp}"
    );

    let allowed = server.dig(&["-b", "127.0.0.2", "AXFR", ORIGIN]);
    assert_eq!(records_of_type(&allowed, "SOA"), 2, "{allowed}");
    assert_eq!(records_of_type(&allowed, "NS"), 1, "{allowed}");
    assert_eq!(records_of_type(&allowed, "A"), 1, "{allowed}");
    assert_eq!(records_of_type(&allowed, "TXT"), 1, "{allowed}");
}

/// How many records of `kind` a dig listing holds (owner, TTL, class, type, data).
fn records_of_type(listing: &str, kind: &str) -> usize {
    listing
        .lines()
        .filter(|l| !l.starts_with(';') && l.split_whitespace().nth(3) == Some(kind))
        .count()
}

/// Knot DNS on 127.0.0.1, in a temporary directory; killed on drop.
struct Knot {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Knot {
    /// Knot as a secondary of `zone`, transferring from 127.0.0.1@`primary` and accepting
    /// NOTIFY from 127.0.0.1.
    fn secondary(zone: &str, primary: u16, port: u16) -> Knot {
        let peers = format!(
            "remote:\n  - id: primary\n    address: 127.0.0.1@{primary}\n\
             acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        );
        let zones =
            format!("  - domain: {zone}\n    master: primary\n    acl: notify_from_primary\n");
        Knot::spawn(tempfile::tempdir().unwrap(), port, &peers, &zones)
    }

    /// Knot as the primary of `zone`, loaded from `master_file`.
    fn primary(zone: &str, master_file: &str) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("{zone}.zone")), master_file).unwrap();
        let zones = format!("  - domain: {zone}\n    zonefile-load: whole\n");
        Knot::spawn(dir, free_port(), "", &zones)
    }

    fn spawn(dir: tempfile::TempDir, port: u16, peers: &str, zones: &str) -> Knot {
        let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("knotd is not installed: run .ci/setup (Debian package knot)");
        let root = dir.path().display();
        let mut conf = String::new();
        let _ = write!(
            conf,
            "server:\n  listen: 127.0.0.1@{port}\n  rundir: {root}\n  user: root:root\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n  storage: {root}/db\n{peers}\
             template:\n  - id: default\n    storage: {root}\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n{zones}"
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("knotd starts");
        Knot { port, child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn knot_carries_the_zone_by_axfr_and_follows_notify() {
    let knot_port = free_port();
    let first_key = rsa_2048_record();
    let server = Running::start(
        zone(100, &[(KEY_NAME, &first_key)]),
        vec![SocketAddr::from(([127, 0, 0, 1], knot_port))],
    );
    let knot = Knot::secondary(ORIGIN, server.port, knot_port);
    let soa_at_knot = || dig(knot.port, &["+short", "SOA", ORIGIN]);

    // Knot asks for the SOA and transfers the zone as soon as it starts.
    wait_for(Duration::from_secs(20), "Knot's first transfer", || {
        soa_at_knot().contains(" 100 ")
    });
    assert_eq!(
        txt_values(&dig(knot.port, &["+short", "TXT", KEY_NAME])),
        std::slice::from_ref(&first_key),
        "{}",
        knot.log()
    );

    // A new key under a new name, a bumped serial: Knot hears of it by NOTIFY only (its refresh
    // timer is an hour away).
    let second_name = "selector2-contoso-com._domainkey.contoso.dkim.example.net";
    let second_key = rsa_2048_record();
    server.handle.replace(zone(
        101,
        &[(KEY_NAME, &first_key), (second_name, &second_key)],
    ));
    wait_for(Duration::from_secs(20), "Knot to follow the NOTIFY", || {
        soa_at_knot().contains(" 101 ")
    });
    assert_eq!(
        txt_values(&dig(knot.port, &["+short", "TXT", second_name])),
        [second_key],
        "{}",
        knot.log()
    );
    assert_eq!(soa_at_knot(), server.dig(&["+short", "SOA", ORIGIN]));
    assert!(
        knot.log().contains("notify, incoming") && knot.log().contains("serial 101"),
        "Knot logged the NOTIFY: {}",
        knot.log()
    );
}

#[test]
fn knot_serving_the_exported_master_file_answers_like_signet() {
    let key = rsa_2048_record();
    let tricky = r#"v=DKIM1; k=ed25519; n=quotes " and backslashes \ too; p=AAAA"#;
    let other = "selector2-contoso-com._domainkey.contoso.dkim.example.net";
    let zone = zone(2_026_112_301, &[(KEY_NAME, &key), (other, tricky)]);
    let master_file = zone.to_master_file();
    let knot = Knot::primary(ORIGIN, &master_file);
    let signet = Running::start(zone, vec![]);
    wait_for(Duration::from_secs(20), "Knot to load the zone", || {
        !dig(knot.port, &["+short", "SOA", ORIGIN]).trim().is_empty()
    });
    for question in [
        ["SOA", ORIGIN],
        ["NS", ORIGIN],
        ["A", "ns1.dkim.example.net"],
        ["TXT", KEY_NAME],
        ["TXT", other],
    ] {
        let at_knot = dig(knot.port, &["+short", "+tcp", question[0], question[1]]);
        assert!(!at_knot.trim().is_empty(), "{question:?}: {}", knot.log());
        assert_eq!(
            at_knot,
            signet.dig(&["+short", "+tcp", question[0], question[1]]),
            "{question:?}\n{master_file}"
        );
    }
    assert_eq!(
        txt_values(&dig(knot.port, &["+short", "TXT", KEY_NAME])),
        std::slice::from_ref(&key)
    );
    let nx = ["TXT", "selector9._domainkey.contoso.dkim.example.net"];
    assert_eq!(status(&dig(knot.port, &nx)), "NXDOMAIN");
    assert_eq!(status(&signet.dig(&nx)), "NXDOMAIN");
}

#[test]
fn an_edns_version_above_zero_gets_badvers() {
    let server = Running::start(zone(4, &[(KEY_NAME, "v=DKIM1; p=AAAA")]), vec![]);
    for transport in ["+notcp", "+tcp"] {
        // +noednsneg: dig would otherwise retry with version 0 and show that answer.
        let answer = server.dig(&[transport, "+edns=1", "+noednsneg", "TXT", KEY_NAME]);
        assert_eq!(status(&answer), "BADVERS", "{transport}: {answer}");
        assert!(answer.contains("; EDNS: version: 0,"), "{answer}");
        assert!(answer.contains("ANSWER: 0,"), "{answer}");
    }
    // Version 0, through the prepared fast path, is answered as ever.
    let answer = server.dig(&["+edns=0", "TXT", KEY_NAME]);
    assert_eq!(status(&answer), "NOERROR", "{answer}");
}

#[test]
fn any_is_answered_with_one_hinfo_record() {
    let server = Running::start(zone(4, &[(KEY_NAME, &rsa_2048_record())]), vec![]);
    for name in [ORIGIN, KEY_NAME] {
        let short = server.dig(&["+short", "ANY", name]);
        assert_eq!(short.trim(), "\"RFC8482\" \"\"", "ANY {name}");
    }
}

/// One UDP query for `name` (TXT), with a fixed id.
fn txt_query(name: &str, id: u16) -> Vec<u8> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(name.parse::<Name>().unwrap(), RecordType::TXT));
    message.to_vec().unwrap()
}

/// The replies that arrive on `socket` until it has been quiet for half a second.
fn replies(socket: &UdpSocket) -> Vec<hickory_proto::op::Message> {
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0u8; 4096];
    let mut replies = Vec::new();
    while let Ok(len) = socket.recv(&mut buffer) {
        replies.push(hickory_proto::op::Message::from_vec(&buffer[..len]).unwrap());
    }
    replies
}

#[test]
fn a_flood_from_one_prefix_is_rate_limited_and_other_sources_are_not() {
    let key = rsa_2048_record();
    let server = Running::start(zone(6, &[(KEY_NAME, &key)]), vec![]);
    // 127.0.1.0/24 floods (as a forged source would); 127.0.2.0/24 asks normally.
    let flood = UdpSocket::bind("127.0.1.2:0").unwrap();
    flood.connect(("127.0.0.1", server.port)).unwrap();
    for id in 0..200 {
        flood.send(&txt_query(KEY_NAME, id)).unwrap();
    }
    let replies = replies(&flood);
    let full = replies.iter().filter(|r| !r.metadata.truncation).count();
    let slipped: Vec<_> = replies.iter().filter(|r| r.metadata.truncation).collect();
    // 20 a second with a burst of 20; the flood takes far less than a second to send.
    assert!((20..=60).contains(&full), "{full} full answers");
    assert!(
        replies.len() < 160,
        "most of the rest dropped: {} replies",
        replies.len()
    );
    assert!(
        slipped.len() >= 40,
        "every 2nd limited one slips: {}",
        slipped.len()
    );
    for reply in &slipped {
        assert!(reply.answers.is_empty() && reply.additionals.is_empty());
        assert_eq!(reply.queries.len(), 1, "the question is kept");
    }
    // Another source is answered in full meanwhile, and the flooding prefix over TCP too.
    let other = dig(server.port, &["-b", "127.0.2.3", "+short", "TXT", KEY_NAME]);
    assert_eq!(txt_values(&other), std::slice::from_ref(&key));
    let retried = dig(
        server.port,
        &["-b", "127.0.1.2", "+tcp", "+short", "TXT", KEY_NAME],
    );
    assert_eq!(txt_values(&retried), std::slice::from_ref(&key));
}

/// Server-side TCP connections on `port` still held open (established, or closed by the client
/// but not yet by the server), from the kernel's table.
fn held_connections(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1].ends_with(&local) && matches!(fields[3], "01" | "08")
        })
        .count()
}

/// A TCP connection from `source` (any port) to the server; with a small receive buffer unless
/// `reads`, so that answers not read pile up in the server's send buffer.
fn connect_from(source: [u8; 4], port: u16, reads: bool) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if !reads {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket
        .connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)).into(),
            Duration::from_secs(5),
        )
        .expect("the server accepts the connection or refuses it, at once");
    socket.into()
}

/// One query over a fresh TCP connection, answered within `limit` or panicking.
fn tcp_ask(port: u16, request: &[u8], limit: Duration) -> hickory_proto::op::Message {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    ask_over(&mut stream, request, limit).expect("a TCP answer in time")
}

/// One query over `stream`: the answer, or the error that ended the connection.
fn ask_over(
    stream: &mut std::net::TcpStream,
    request: &[u8],
    limit: Duration,
) -> std::io::Result<hickory_proto::op::Message> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(limit))?;
    let mut framed = u16::try_from(request.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut reply)?;
    Ok(hickory_proto::op::Message::from_vec(&reply).unwrap())
}

#[test]
fn tcp_connections_beyond_the_caps_are_closed_at_once() {
    let limits = Limits {
        tcp_timeout: Duration::from_mins(1),
        tcp_connections: 6,
        tcp_connections_per_address: 4,
        ..Limits::default()
    };
    let server = Running::with_limits(zone(2, &[(KEY_NAME, "v=DKIM1; p=AAAA")]), vec![], limits);
    let query = txt_query(KEY_NAME, 7);
    // Closed rather than kept waiting: the answer is an end of stream or a reset, long before
    // the 60 s deadline could close it.
    let refused = |source: [u8; 4]| {
        let mut stream = connect_from(source, server.port, true);
        match ask_over(&mut stream, &query, Duration::from_secs(10)) {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ),
                "{source:?}: {e}"
            ),
            Ok(reply) => panic!("{source:?} was served beyond the cap: {reply:?}"),
        }
    };
    // Connections are admitted in the order they are accepted, which is the order of connecting.
    let mut held: Vec<_> = (0..4)
        .map(|_| connect_from([127, 0, 0, 20], server.port, true))
        .collect();
    refused([127, 0, 0, 20]);
    for source in [[127, 0, 0, 21], [127, 0, 0, 22]] {
        let mut stream = connect_from(source, server.port, true);
        let reply = ask_over(&mut stream, &query, Duration::from_secs(10)).expect("served");
        assert_eq!(reply.answers.len(), 1);
        held.push(stream);
    }
    refused([127, 0, 0, 23]); // the seventh
    // A place given back is a place taken again.
    held.remove(0);
    wait_for(Duration::from_secs(10), "a freed place", || {
        let mut stream = connect_from([127, 0, 0, 20], server.port, true);
        ask_over(&mut stream, &query, Duration::from_secs(10)).is_ok()
    });
}

#[test]
fn soak_clients_that_never_read_are_cut_off_and_others_stay_served() {
    use std::io::{Read, Write};
    let big_name = "big._domainkey.contoso.dkim.example.net";
    let big = format!("v=DKIM1; k=rsa; p={}", "C".repeat(16_000));
    let limits = Limits {
        tcp_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let server = Running::with_limits(
        zone(8, &[(KEY_NAME, "v=DKIM1; p=AAAA"), (big_name, &big)]),
        vec![],
        limits,
    );
    // 1,000 connections from 25 addresses: half pipeline 200 queries for a 16 KB answer and
    // never read (3 MB of answers: more than loopback's socket buffers hold, so the server's
    // writes stall), half connect and say nothing. Beyond 16 per address they are refused.
    let mut pipelined = Vec::new();
    for _ in 0..200 {
        let query = txt_query(big_name, 1);
        pipelined.extend_from_slice(&u16::try_from(query.len()).unwrap().to_be_bytes());
        pipelined.extend_from_slice(&query);
    }
    let attackers: Vec<std::net::TcpStream> = (0..1000u16)
        .map(|i| {
            let reads = i % 2 == 1;
            let mut stream = connect_from(
                [127, 0, 0, 10 + u8::try_from(i % 25).unwrap()],
                server.port,
                reads,
            );
            if !reads {
                stream
                    .set_write_timeout(Some(Duration::from_secs(1)))
                    .unwrap();
                let _ = stream.write_all(&pipelined); // refused ones may be closed already
            }
            stream
        })
        .collect();
    assert!(
        held_connections(server.port) > 0,
        "some attackers got in (else nothing is tested)"
    );

    // Meanwhile a normal client is answered within a second, over UDP and TCP, for longer than
    // the deadline.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(("127.0.0.1", server.port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let mut id = 0;
    while Instant::now() < until {
        id += 1;
        client.send(&txt_query(KEY_NAME, id)).unwrap();
        let mut buffer = [0u8; 4096];
        let len = client.recv(&mut buffer).expect("a UDP answer within 1 s");
        let reply = hickory_proto::op::Message::from_vec(&buffer[..len]).unwrap();
        assert_eq!((reply.metadata.id, reply.answers.len()), (id, 1));
        let reply = tcp_ask(
            server.port,
            &txt_query(KEY_NAME, id),
            Duration::from_secs(1),
        );
        assert_eq!(reply.answers.len(), 1);
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every attacking connection is closed by the server: none is held on its side, and each
    // attacker reads what was sent before the close, then the end.
    wait_for(
        Duration::from_secs(30),
        "the server to close every attacking connection",
        || held_connections(server.port) == 0,
    );
    for mut stream in attackers {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut sink = [0u8; 16384];
        loop {
            match stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the server left an attacking connection open: {e}"),
            }
        }
    }
}
