//! The signing relay over loopback with real peers: swaks submits, signet signs and spools,
//! Postfix's smtp-sink receives, and dkimpy verifies the delivered copy against signet's own
//! DNS server. Clients without a connector, and senders from domains the tenant has not
//! accepted, are refused at RCPT.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Signet, free_port, wait_for};

/// Postfix's smtp-sink on 127.0.0.1, dumping each message into `dir`.
struct SmtpSink {
    port: u16,
    child: Child,
}

impl SmtpSink {
    fn start(dir: &Path) -> SmtpSink {
        let port = free_port();
        let child = Command::new("smtp-sink")
            .args(["-u", "root", "-d"])
            .arg(format!("{}/%M.", dir.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("10")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink is installed: run .ci/setup (Debian package postfix)");
        wait_for(Duration::from_secs(5), "smtp-sink to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        SmtpSink { port, child }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swaks(port: u16, from: &str, to: &str, body_file: &Path) -> String {
    swaks_with(port, from, to, body_file, &[])
}

fn swaks_with(port: u16, from: &str, to: &str, body_file: &Path, extra: &[&str]) -> String {
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--from",
            from,
            "--to",
            to,
            "--helo",
            "app.contoso.com",
            "--data",
        ])
        .arg(body_file)
        .args(extra)
        .output()
        .expect("swaks is installed: run .ci/setup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dumped(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn verify_through_dns(port: u16, message: &[u8]) -> String {
    // smtp-sink writes LF line ends; DKIM is defined over CRLF.
    let text = String::from_utf8_lossy(message)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/peers/dkimpy_verify_dns.py"
        ))
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout)
        .trim()
        .to_string()
}

/// An installation relaying to a fresh smtp-sink, with `signet serve` running.
struct Gateway {
    signet: Signet,
    sink_dir: tempfile::TempDir,
    server: support::Server,
    dns_port: u16,
    relay_port: u16,
    submission_port: u16,
    _sink: SmtpSink,
}

fn relay() -> Gateway {
    let sink_dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(sink_dir.path());
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let toml = signet.data_dir().join("signet.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "# smart_host = \"mail.example.net:25\"",
        &format!(
            "smart_host = \"127.0.0.1:{}\"\nhostname = \"signet.test\"",
            sink.port
        ),
    );
    std::fs::write(&toml, text).unwrap();
    let (dns_port, relay_port, submission_port) = (free_port(), free_port(), free_port());
    let server = signet.serve_with(
        dns_port,
        "dkim.example.net",
        &[
            "--relay-listen",
            &format!("127.0.0.1:{relay_port}"),
            "--submission-listen",
            &format!("127.0.0.1:{submission_port}"),
        ],
    );
    for port in [relay_port, submission_port] {
        wait_for(Duration::from_secs(10), "the SMTP listeners", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }
    Gateway {
        signet,
        sink_dir,
        server,
        dns_port,
        relay_port,
        submission_port,
        _sink: sink,
    }
}

#[test]
fn relayed_mail_is_signed_delivered_and_verifies() {
    let relay = relay();
    let (signet, sink_dir, relay_port) = (&relay.signet, &relay.sink_dir, relay.relay_port);
    let message = signet.dir.path().join("message.eml");
    std::fs::write(&message, "From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject: quarterly\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <q1@contoso.com>\r\n\r\nThe report.\r\n").unwrap();

    // No connector yet: refused at RCPT, nothing delivered.
    let refused = swaks(relay_port, "joe@contoso.com", "ann@example.org", &message);
    assert!(refused.contains("550 5.7.1 Relaying denied"), "{refused}");

    signet
        .run(&[
            "connector",
            "add",
            "contoso",
            "loopback",
            "--from",
            "127.0.0.1/32",
        ])
        .ok();
    let stranger = swaks(relay_port, "eve@fabrikam.com", "ann@example.org", &message);
    assert!(
        stranger.contains("550 5.7.1 Sender domain fabrikam.com is not accepted"),
        "{stranger}"
    );

    let accepted = swaks(relay_port, "joe@contoso.com", "ann@example.org", &message);
    assert!(accepted.contains("250 "), "{accepted}");
    wait_for(Duration::from_secs(10), "the message at the sink", || {
        dumped(sink_dir.path()).len() == 1
    });
    let delivered = dumped(sink_dir.path()).remove(0);
    let text = String::from_utf8_lossy(&delivered);
    assert!(
        text.contains("d=contoso.dkim.example.net;") && text.contains("s=selector1-contoso-com;"),
        "{text}"
    );
    assert!(
        text.contains("by signet.test (signet) with ESMTP"),
        "{text}"
    );
    assert_eq!(
        verify_through_dns(relay.dns_port, &delivered),
        "pass",
        "{text}"
    );
    let log = relay.server.log_text();
    assert!(
        log.contains("accepted, d=contoso.dkim.example.net s=selector1-contoso-com"),
        "{log}"
    );
    assert!(
        signet.run(&["queue", "list"]).ok().lines().count() <= 2,
        "the queue is empty again"
    );
}

#[test]
fn smuggled_messages_never_reach_the_next_hop() {
    use std::io::{BufRead, BufReader, Write};
    let relay = relay();
    let (signet, sink_dir, relay_port) = (&relay.signet, &relay.sink_dir, relay.relay_port);
    signet
        .run(&[
            "connector",
            "add",
            "contoso",
            "loopback",
            "--from",
            "127.0.0.1/32",
        ])
        .ok();
    // The 2023 SMTP smuggling end-of-data variants, each hiding a second message.
    let variants: [&[u8]; 6] = [
        b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r",
    ];
    for variant in variants {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", relay_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut reply = || {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                all.push_str(&line);
                if line.len() < 4 || line.as_bytes()[3] != b'-' {
                    return all;
                }
            }
        };
        reply();
        stream.write_all(b"EHLO app.contoso.com\r\nMAIL FROM:<joe@contoso.com>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\n").unwrap();
        for _ in 0..4 {
            reply();
        }
        let mut data = b"From: joe@contoso.com\r\nSubject: first\r\n\r\nhello".to_vec();
        data.extend_from_slice(variant);
        data.extend_from_slice(b"MAIL FROM:<joe@contoso.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: ceo@contoso.com\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\n");
        stream.write_all(&data).unwrap();
        let verdict = reply();
        assert!(verdict.starts_with("554 5.6.0"), "{variant:?}: {verdict}");
        stream.write_all(b"QUIT\r\n").unwrap();
    }
    // Nothing was accepted, so nothing may arrive; give the worker time to prove it.
    std::thread::sleep(Duration::from_secs(2));
    let delivered = dumped(sink_dir.path());
    assert!(
        delivered.is_empty(),
        "{} message(s) reached the sink",
        delivered.len()
    );
    assert!(signet.run(&["queue", "list"]).ok().lines().count() <= 2);
}

/// One SMTP exchange by hand: each command's reply (multi-line replies joined).
fn converse(port: u16, commands: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    let mut replies = vec![reply()];
    for command in commands {
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .unwrap();
        replies.push(reply());
    }
    replies
}

#[test]
fn submission_needs_tls_and_a_login_then_signs() {
    let relay = relay();
    let (signet, port) = (&relay.signet, relay.submission_port);
    signet
        .run_with_stdin(
            &[
                "connector",
                "add",
                "contoso",
                "app",
                "--login",
                "app@contoso.com",
                "--password-stdin",
            ],
            b"correct horse battery staple\n",
        )
        .ok();
    let message = signet.dir.path().join("message.eml");
    std::fs::write(&message, "From: App <app@contoso.com>\r\nTo: ann@example.org\r\nSubject: invoice\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <s1@contoso.com>\r\n\r\nYour invoice.\r\n").unwrap();

    // Before STARTTLS, AUTH is neither offered nor taken, and nobody relays.
    // ("app@contoso.com\0app@contoso.com\0correct horse battery staple", base64.)
    let plain = "AGFwcEBjb250b3NvLmNvbQBjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl";
    let replies = converse(
        port,
        &[
            "EHLO app.contoso.com",
            &format!("AUTH PLAIN {plain}"),
            "MAIL FROM:<app@contoso.com>",
            "RCPT TO:<ann@example.org>",
        ],
    );
    assert!(
        replies[1].contains("STARTTLS") && !replies[1].contains("AUTH"),
        "{replies:?}"
    );
    assert!(replies[2].starts_with("538 5.7.11"), "{replies:?}");
    assert!(replies[3].starts_with("530 5.7.0"), "{replies:?}");
    assert!(
        replies[4].starts_with("503") || replies[4].starts_with("550"),
        "{replies:?}"
    );

    let login = |mechanism: &str, password: &str| {
        swaks_with(
            port,
            "app@contoso.com",
            "ann@example.org",
            &message,
            &[
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                "app@contoso.com",
                "--auth-password",
                password,
            ],
        )
    };
    let wrong = login("PLAIN", "correct horse battery stapler");
    assert!(wrong.contains("535 5.7.8"), "{wrong}");
    let nobody = swaks_with(
        port,
        "app@contoso.com",
        "ann@example.org",
        &message,
        &["--tls"],
    );
    assert!(
        nobody.contains("530 5.7.0 Authentication required"),
        "{nobody}"
    );
    assert!(dumped(relay.sink_dir.path()).is_empty());

    for mechanism in ["PLAIN", "LOGIN"] {
        let accepted = login(mechanism, "correct horse battery staple");
        assert!(accepted.contains("235 2.7.0"), "{accepted}");
        assert!(accepted.contains("<~  250 2.0.0 Ok: queued"), "{accepted}");
    }
    wait_for(Duration::from_secs(10), "both messages at the sink", || {
        dumped(relay.sink_dir.path()).len() == 2
    });
    for delivered in dumped(relay.sink_dir.path()) {
        let text = String::from_utf8_lossy(&delivered);
        assert!(text.contains("d=contoso.dkim.example.net;"), "{text}");
        assert_eq!(
            verify_through_dns(relay.dns_port, &delivered),
            "pass",
            "{text}"
        );
    }
    let log = relay.server.log_text();
    assert!(log.contains("submission: login refused"), "{log}");
    assert!(
        !log.contains("correct horse"),
        "no password in the log: {log}"
    );
}
