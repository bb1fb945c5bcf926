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

/// An installation relaying to a fresh smtp-sink: (signet, sink, its dump dir, server, DNS
/// port, relay port).
fn relay() -> (
    Signet,
    SmtpSink,
    tempfile::TempDir,
    support::Server,
    u16,
    u16,
) {
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
    let (dns_port, relay_port) = (free_port(), free_port());
    let server = signet.serve_with(
        dns_port,
        "dkim.example.net",
        &["--relay-listen", &format!("127.0.0.1:{relay_port}")],
    );
    (signet, sink, sink_dir, server, dns_port, relay_port)
}

#[test]
fn relayed_mail_is_signed_delivered_and_verifies() {
    let (signet, _sink, sink_dir, server, dns_port, relay_port) = relay();
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
    assert_eq!(verify_through_dns(dns_port, &delivered), "pass", "{text}");
    let log = server.log_text();
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
    let (signet, _sink, sink_dir, _server, _dns_port, relay_port) = relay();
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
