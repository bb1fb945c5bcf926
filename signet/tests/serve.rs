//! `signet serve` over loopback: its key zone answers real `dig` queries, changes made with the
//! CLI are served within a second, a full rotation runs over real DNS (Knot for the customer's
//! zone, Unbound as the recursive resolver verifiers would use), and dkimpy finds the keys.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Knot, Signet, Unbound, customer_zone, dig, free_port, txt_values, wait_for};

const ZONE: &str = "dkim.example.net";

fn with_settings(signet: &Signet, replacements: &[(&str, &str)]) {
    let path = signet.data_dir().join("signet.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{from} not in signet.toml");
        text = text.replace(from, to);
    }
    std::fs::write(path, text).unwrap();
}

fn header_status(answer: &str) -> &str {
    answer
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("none")
}

#[test]
fn the_key_zone_answers_like_an_authoritative_server() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let port = free_port();
    let server = signet.serve(port, ZONE);

    let soa = dig(port, &["SOA", ZONE]);
    assert_eq!(header_status(&soa), "NOERROR", "{soa}");
    assert!(soa.contains(" aa"), "authoritative answer: {soa}");
    assert!(!dig(port, &["+short", "NS", ZONE]).trim().is_empty());

    // A 2048-bit key's TXT, reassembled from its 255-byte strings, over UDP and TCP.
    let name = format!("selector1-contoso-com._domainkey.contoso.{ZONE}");
    let exported = signet
        .run(&["dkim", "export-public", "contoso.com"])
        .ok()
        .trim()
        .to_string();
    for transport in ["+notcp", "+tcp"] {
        let short = dig(port, &[transport, "+short", "TXT", &name]);
        assert_eq!(
            txt_values(&short),
            std::slice::from_ref(&exported),
            "{transport}: {short}"
        );
        assert!(
            short.matches('"').count() >= 4,
            "split into several strings: {short}"
        );
    }

    let nx = dig(
        port,
        &[
            "TXT",
            &format!("selector9-nothing._domainkey.contoso.{ZONE}"),
        ],
    );
    assert_eq!(header_status(&nx), "NXDOMAIN", "{nx}");
    assert!(
        nx.contains("AUTHORITY SECTION") && nx.contains("SOA"),
        "NXDOMAIN carries the SOA: {nx}"
    );
    let nodata = dig(port, &["A", &name]);
    assert_eq!(header_status(&nodata), "NOERROR", "{nodata}");
    assert!(!nodata.contains("ANSWER SECTION"), "NODATA: {nodata}");
    let refused = dig(port, &["TXT", "example.org"]);
    assert_eq!(header_status(&refused), "REFUSED", "{refused}");

    // A change made with the CLI is served within a second, with a new serial.
    let serial = |port| {
        dig(port, &["+short", "SOA", ZONE])
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .to_string()
    };
    let before = serial(port);
    signet.run(&["dkim", "remove", "contoso.com"]).ok();
    wait_for(Duration::from_secs(5), "the removal to be served", || {
        header_status(&dig(port, &["TXT", &name])) == "NXDOMAIN"
    });
    assert_ne!(serial(port), before);

    // `zone export` prints what is served, in master-file form.
    let export = signet.run(&["zone", "export"]).ok().to_string();
    assert!(
        export.contains(&format!(
            "selector1-contoso-dkim-example-net._domainkey.contoso.{ZONE}."
        )),
        "{export}"
    );
    assert!(export.contains("SOA"), "{export}");
    assert!(
        !export.contains("selector1-contoso-com"),
        "withdrawn records are gone: {export}"
    );

    assert_eq!(server.stop(), Some(0), "SIGTERM stops cleanly");
}

#[test]
fn a_rotation_switches_only_when_due_and_visible_over_real_dns() {
    let signet = Signet::new();
    let signet_port = free_port();
    let customer = Knot::start(&[(
        "contoso.com",
        customer_zone(
            "contoso.com",
            &[
                (
                    "selector1._domainkey",
                    "CNAME",
                    &format!("selector1-contoso-com._domainkey.contoso.{ZONE}."),
                ),
                (
                    "selector2._domainkey",
                    "CNAME",
                    &format!("selector2-contoso-com._domainkey.contoso.{ZONE}."),
                ),
            ],
        ),
    )]);
    let resolver = Unbound::start(&[("contoso.com", customer.port), (ZONE, signet_port)]);
    signet
        .run(&[
            "init",
            "--key-zone",
            ZONE,
            "--resolver",
            &resolver.address(),
        ])
        .ok();
    with_settings(
        &signet,
        &[
            ("delay = \"96h\"", "delay = \"10s\""),
            ("retention = \"7d\"", "retention = \"3s\""),
            ("check_interval = \"1h\"", "check_interval = \"1s\""),
            ("ttl = 3600", "ttl = 1"),
        ],
    );
    signet.run(&["tenant", "add", "contoso"]).ok();
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let server = signet.serve(signet_port, ZONE);
    signet
        .run(&["dkim", "set", "contoso.com", "--enabled", "true"])
        .ok();

    let signing = |signet: &Signet| {
        let json: serde_json::Value = serde_json::from_str(
            signet
                .run(&["dkim", "get", "contoso.com", "--format", "json"])
                .ok(),
        )
        .unwrap();
        json["signing_selector"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(signing(&signet), "selector1");
    signet.run(&["dkim", "rotate", "contoso.com"]).ok();
    let new_key = signet
        .run(&["records", "contoso.com", "--format", "json"])
        .ok()
        .to_string();
    let new_key: serde_json::Value = serde_json::from_str(&new_key).unwrap();
    let new_value = new_key["key_zone"][1]["value"]
        .as_str()
        .unwrap()
        .to_string();

    // The new TXT is served at once, and verifiers reach it through the customer's CNAME.
    wait_for(Duration::from_secs(8), "the new key to be served", || {
        txt_values(&dig(
            resolver.port,
            &["+short", "TXT", "selector2._domainkey.contoso.com"],
        ))
        .contains(&new_value)
    });
    // ...but selector1 keeps signing until RotateOnDate (10 s after the rotation: room for a
    // loaded machine to see the new key served first).
    assert_eq!(signing(&signet), "selector1");
    wait_for(Duration::from_secs(30), "the switch to selector2", || {
        signing(&signet) == "selector2"
    });

    // After the retention period the old record is withdrawn.
    let old = format!("selector1-contoso-com._domainkey.contoso.{ZONE}");
    wait_for(
        Duration::from_secs(15),
        "the old key to be withdrawn",
        || header_status(&dig(signet_port, &["TXT", &old])) == "NXDOMAIN",
    );
    let log = server.log_text();
    assert!(
        log.contains("switched signing from selector1 to selector2"),
        "{log}"
    );
    assert!(log.contains("retired the old key in selector1"), "{log}");
}

#[test]
fn without_the_cname_at_switch_time_the_old_key_keeps_signing() {
    let signet = Signet::new();
    let signet_port = free_port();
    let target = |n: u8| format!("selector{n}-contoso-com._domainkey.contoso.{ZONE}.");
    // selector2's CNAME is missing from the customer's zone.
    let customer = Knot::start(&[(
        "contoso.com",
        customer_zone(
            "contoso.com",
            &[("selector1._domainkey", "CNAME", &target(1))],
        ),
    )]);
    let resolver = Unbound::start(&[("contoso.com", customer.port), (ZONE, signet_port)]);
    signet
        .run(&[
            "init",
            "--key-zone",
            ZONE,
            "--resolver",
            &resolver.address(),
        ])
        .ok();
    with_settings(
        &signet,
        &[
            ("delay = \"96h\"", "delay = \"1s\""),
            ("check_interval = \"1h\"", "check_interval = \"1s\""),
        ],
    );
    signet.run(&["tenant", "add", "contoso"]).ok();
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    // Enable while both CNAMEs existed (simulated by a second Knot), then lose selector2.
    {
        let full = Knot::start(&[(
            "contoso.com",
            customer_zone(
                "contoso.com",
                &[
                    ("selector1._domainkey", "CNAME", &target(1)),
                    ("selector2._domainkey", "CNAME", &target(2)),
                ],
            ),
        )]);
        with_settings(&signet, &[(&resolver.address(), &full.address())]);
        signet
            .run(&["dkim", "set", "contoso.com", "--enabled", "true"])
            .ok();
        with_settings(&signet, &[(&full.address(), &resolver.address())]);
    }
    signet.run(&["dkim", "rotate", "contoso.com"]).ok();
    let server = signet.serve(signet_port, ZONE);
    wait_for(Duration::from_secs(10), "the scheduler to notice", || {
        server
            .log_text()
            .contains("not yet visible at selector2._domainkey.contoso.com")
    });
    let list = signet.run(&["dkim", "get", "contoso.com"]).ok().to_string();
    assert!(
        list.contains("SigningSelector              : selector1-contoso-com")
            || list.contains("SigningSelector              : selector1"),
        "{list}"
    );
    assert!(
        list.contains("Status                       : CnameMissing"),
        "{list}"
    );
    assert!(
        list.contains("selector2._domainkey.contoso.com: no CNAME record found"),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_str(
        signet
            .run(&["dkim", "get", "contoso.com", "--format", "json"])
            .ok(),
    )
    .unwrap();
    assert_eq!(json["selector_after_rotate_on_date"], "selector2");
    assert!(
        json["signing_selector"]
            .as_str()
            .unwrap()
            .starts_with("selector1"),
        "{json}"
    );
}

#[test]
fn dkimpy_verifies_with_keys_from_signets_dns() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    // signet holds this key (imported); dkimpy signs with the same key and must find its public
    // half in signet's zone.
    let key = signet.dir.path().join("key.pem");
    let pem = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .unwrap()
        .stdout;
    std::fs::write(&key, pem).unwrap();
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    signet.run(&["dkim", "remove", "contoso.com"]).ok();
    signet
        .run(&[
            "dkim",
            "import",
            "contoso.com",
            "--key",
            key.to_str().unwrap(),
        ])
        .ok();
    let port = free_port();
    let _server = signet.serve(port, ZONE);

    let message = b"From: joe@contoso.com\r\nTo: ann@example.org\r\nSubject: hello\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@contoso.com>\r\n\r\nHi Ann.\r\n";
    let sign = |selector: &str, domain: &str| {
        let mut child = Command::new("dkimsign")
            .args([
                "--hcanon",
                "relaxed",
                "--bcanon",
                "relaxed",
                selector,
                domain,
                key.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dkimsign (dkimpy) is installed: run .ci/setup");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), message).unwrap();
        child.wait_with_output().unwrap().stdout
    };
    let verify = |signed: &[u8]| {
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/peers/dkimpy_verify_dns.py"
            ))
            .arg(format!("127.0.0.1:{port}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), signed).unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout)
            .trim()
            .to_string()
    };
    // Default signing: d=<initial domain>, s=selector1-contoso-com, reached directly in the zone.
    let signed = sign("selector1-contoso-com", &format!("contoso.{ZONE}"));
    assert_eq!(verify(&signed), "pass");
    // Tampered: the body changed.
    let tampered = String::from_utf8_lossy(&signed).replace("Hi Ann.", "Hi Bob.");
    assert_eq!(verify(tampered.as_bytes()), "fail");
    // A selector signet does not serve.
    assert_eq!(
        verify(&sign("selector2-contoso-com", &format!("contoso.{ZONE}"))),
        "fail"
    );
}

#[test]
fn a_real_secondary_carries_the_zone_by_axfr_and_notify() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let (signet_port, knot_port) = (free_port(), free_port());
    with_settings(
        &signet,
        &[(
            "# secondaries = [\"192.0.2.53:53\"]",
            &format!("secondaries = [\"127.0.0.1:{knot_port}\"]"),
        )],
    );
    let _server = signet.serve(signet_port, ZONE);
    // Knot would pick its own port; make it use the one signet notifies.
    let secondary = support::Knot::start_secondary_on(ZONE, signet_port, knot_port);

    let soa = |port| dig(port, &["+short", "SOA", ZONE]);
    assert_eq!(
        soa(knot_port),
        soa(signet_port),
        "the secondary has the primary's serial"
    );
    let initial = format!("selector1-contoso-dkim-example-net._domainkey.contoso.{ZONE}");
    let exported = signet
        .run(&["dkim", "export-public", &format!("contoso.{ZONE}")])
        .ok()
        .trim()
        .to_string();
    assert_eq!(
        txt_values(&dig(knot_port, &["+short", "TXT", &initial])),
        [exported]
    );

    // A rotation bumps the serial; NOTIFY brings it to the secondary without waiting for refresh.
    signet
        .run(&["dkim", "rotate", &format!("contoso.{ZONE}")])
        .ok();
    let rotated = format!("selector2-contoso-dkim-example-net._domainkey.contoso.{ZONE}");
    wait_for(
        Duration::from_secs(10),
        "the secondary to serve the new key",
        || !txt_values(&dig(knot_port, &["+short", "TXT", &rotated])).is_empty(),
    );
    assert_eq!(soa(knot_port), soa(signet_port));
    drop(secondary);
}

#[test]
fn zone_transfers_are_refused_to_strangers_and_garbage_never_stalls_the_server() {
    use std::net::UdpSocket;
    let signet = Signet::with_tenant("127.0.0.1:9");
    with_settings(
        &signet,
        &[(
            "# secondaries = [\"192.0.2.53:53\"]",
            "secondaries = [\"127.0.0.2:53\"]",
        )],
    );
    let port = free_port();
    let _server = signet.serve(port, ZONE);
    let axfr = dig(port, &["AXFR", ZONE]);
    assert!(
        axfr.contains("Transfer failed") || axfr.contains("REFUSED"),
        "{axfr}"
    );

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 11],
        vec![0xff; 12],
        vec![0xab; 4000],
    ];
    garbage.push(
        [
            0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ]
        .to_vec(),
    );
    let mut seed = 0x2545_f491_u32;
    for len in 1..200 {
        garbage.push(
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
    for packet in &garbage {
        socket.send_to(packet, ("127.0.0.1", port)).unwrap();
    }
    // Garbage over TCP too: a length prefix promising more than is sent, then a hang-up.
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    }
    // A valid query is still answered. The garbage's FORMERR answers count against the UDP
    // rate limit (20 a second per /24), so one query in the same second may be dropped or
    // truncated: wait past it. (dig +short prints its own errors, ";; …", to stdout.)
    let answered = |out: &str| out.lines().any(|l| !l.is_empty() && !l.starts_with(";;"));
    let mut soa = String::new();
    wait_for(
        Duration::from_secs(10),
        "a valid query to be answered",
        || {
            soa = dig(port, &["+short", "+tries=1", "+time=1", "SOA", ZONE]);
            answered(&soa)
        },
    );
    let tcp = dig(port, &["+tcp", "+short", "SOA", ZONE]);
    assert_eq!(tcp, soa);
}
