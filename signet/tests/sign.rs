//! `signet sign`: a message signed with a key signet holds verifies in dkimpy against the
//! records signet publishes, for default signing and for an enabled domain.

mod support;

use std::fmt::Write as _;
use std::io::Write;
use std::process::{Command, Stdio};

use support::Signet;

const MESSAGE: &[u8] = b"From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject: hello\r\n\
Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@contoso.com>\r\n\r\nHi Ann.\r\n";

/// The key zone's TXT records, as `name TXT value` lines for the verifiers' offline DNS.
fn records_file(signet: &Signet, domains: &[&str]) -> std::path::PathBuf {
    let mut lines = String::new();
    for domain in domains {
        let json: serde_json::Value =
            serde_json::from_str(signet.run(&["records", domain, "--format", "json"]).ok())
                .unwrap();
        for record in json["key_zone"].as_array().unwrap() {
            let _ = writeln!(
                lines,
                "{} TXT {}",
                record["name"].as_str().unwrap(),
                record["value"].as_str().unwrap()
            );
        }
    }
    let path = signet.dir.path().join("records.txt");
    std::fs::write(&path, lines).unwrap();
    path
}

fn dkimpy(records: &std::path::Path, message: &[u8]) -> bool {
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/peers/dkimpy_verify.py"
        ))
        .arg(records)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap().status.success()
}

#[test]
fn signed_messages_verify_against_the_published_records() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();

    let signed = signet.run_with_stdin(&["sign", "--rcpt", "ann@example.org"], MESSAGE);
    let signed = signed.ok().to_string();
    assert!(signed.contains("d=contoso.dkim.example.net;"), "{signed}");
    assert!(signed.contains("s=selector1-contoso-com;"), "{signed}");
    assert!(signed.ends_with("Hi Ann.\r\n"));
    let records = records_file(&signet, &["contoso.com", "contoso.dkim.example.net"]);
    assert!(
        dkimpy(&records, signed.as_bytes()),
        "dkimpy failed:\n{signed}"
    );
    assert!(!dkimpy(
        &records,
        signed.replace("Hi Ann.", "Hi Bob.").as_bytes()
    ));

    // Ed25519 after re-creating the config.
    signet.run(&["dkim", "remove", "contoso.com"]).ok();
    signet
        .run(&[
            "dkim",
            "new",
            "contoso.com",
            "--algorithm",
            "ed25519-sha256",
        ])
        .ok();
    let signed = signet.run_with_stdin(&["sign"], MESSAGE).ok().to_string();
    assert!(signed.contains("a=ed25519-sha256;"), "{signed}");
    let records = records_file(&signet, &["contoso.com"]);
    assert!(
        dkimpy(&records, signed.as_bytes()),
        "dkimpy failed:\n{signed}"
    );

    // Mail inside the organisation is not signed; strangers are refused.
    signet
        .run_with_stdin(&["sign", "--rcpt", "bob@contoso.com"], MESSAGE)
        .refused("not signed: every recipient is inside the organisation");
    signet
        .run_with_stdin(&["sign"], b"From: eve@fabrikam.com\r\n\r\nx\r\n")
        .refused("fabrikam.com is not an accepted domain");
    signet
        .run_with_stdin(&["sign"], b"Subject: no author\r\n\r\nx\r\n")
        .refused("no From header");
}

/// `dkim set --include-key-expiration true` puts `x=` a week after `t=` in the signatures, and
/// they still verify; `false` takes it out again.
#[test]
fn key_expiration_is_written_when_asked() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let tag = |header: &str, name: &str| -> Option<i64> {
        let flat = header.replace("\r\n\t", " ").replace("\r\n ", " ");
        let line = flat
            .lines()
            .find(|l| l.starts_with("DKIM-Signature:"))?
            .to_string();
        line.split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix(name).and_then(|v| v.parse().ok()))
    };
    let signed = signet.run_with_stdin(&["sign"], MESSAGE).ok().to_string();
    assert_eq!(tag(&signed, "x="), None, "off by default: {signed}");

    signet
        .run(&[
            "dkim",
            "set",
            "contoso.com",
            "--include-key-expiration",
            "true",
        ])
        .ok();
    let get = signet.run(&["dkim", "get", "contoso.com"]).ok().to_string();
    assert!(
        get.lines()
            .any(|l| l.starts_with("IncludeKeyExpiration") && l.ends_with("True")),
        "{get}"
    );
    let signed = signet.run_with_stdin(&["sign"], MESSAGE).ok().to_string();
    let (t, x) = (tag(&signed, "t=").unwrap(), tag(&signed, "x=").unwrap());
    assert_eq!(x - t, 7 * 24 * 3600, "{signed}");
    let records = records_file(&signet, &["contoso.com", "contoso.dkim.example.net"]);
    assert!(
        dkimpy(&records, signed.as_bytes()),
        "dkimpy failed:\n{signed}"
    );

    signet
        .run(&[
            "dkim",
            "set",
            "contoso.com",
            "--include-key-expiration",
            "false",
        ])
        .ok();
    let signed = signet.run_with_stdin(&["sign"], MESSAGE).ok().to_string();
    assert_eq!(tag(&signed, "x="), None, "{signed}");
}

/// A message with what canonicalization acts on: a folded header, runs of spaces, trailing
/// whitespace, empty lines at the end of the body.
const VARIED: &str = "From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject:  hello\r\n\tthere  \r\n\
Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <2@contoso.com>\r\n\r\nHi  Ann. \r\n\r\n  indented\r\n\r\n\r\n";

/// `signet verify` with the records file, offline: its report.
fn signet_verify(signet: &Signet, records: &std::path::Path, message: &[u8]) -> (i32, String) {
    let path = signet.dir.path().join("signed.eml");
    std::fs::write(&path, message).unwrap();
    let run = signet.run(&[
        "verify",
        path.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    (run.code, run.stdout)
}

/// A file saved with LF line ends is signed as SMTP would carry it (CRLF) and printed back
/// with LF; a CRLF file stays CRLF. Every canonicalization, both line ends: dkimpy (which reads
/// LF and CRLF files alike) and `signet verify` accept the signature.
#[test]
fn every_canonicalization_signs_lf_and_crlf_files_that_verify() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let records = records_file(&signet, &["contoso.com", "contoso.dkim.example.net"]);
    let crlf = VARIED.to_string();
    let lf = VARIED.replace("\r\n", "\n");
    let mut folded_bh_seen = false;
    for header in ["simple", "relaxed"] {
        for body in ["simple", "relaxed"] {
            signet
                .run(&[
                    "dkim",
                    "set",
                    "contoso.com",
                    "--header-canonicalization",
                    header,
                    "--body-canonicalization",
                    body,
                ])
                .ok();
            for (input, endings) in [(&lf, "LF"), (&crlf, "CRLF")] {
                let what = format!("c={header}/{body}, {endings} in");
                let signed = signet
                    .run_with_stdin(&["sign", "--rcpt", "ann@example.org"], input.as_bytes())
                    .ok()
                    .to_string();
                assert!(
                    signed.contains(&format!("c={header}/{body};")),
                    "{what}: {signed}"
                );
                assert!(
                    signed.ends_with(input.as_str()),
                    "{what}: the message as it came"
                );
                let (head, _) = signed.split_once("From: Joe").unwrap();
                if endings == "LF" {
                    assert!(!signed.contains('\r'), "{what}: LF out: {signed:?}");
                } else {
                    assert_eq!(
                        head.matches('\n').count(),
                        head.matches("\r\n").count(),
                        "{what}: CRLF out: {head:?}"
                    );
                }
                assert!(
                    dkimpy(&records, signed.as_bytes()),
                    "dkimpy: {what}\n{signed}"
                );
                let (code, report) = signet_verify(&signet, &records, signed.as_bytes());
                assert_eq!(code, 0, "signet verify: {what}\n{report}");
                assert!(report.contains("result: pass"), "{what}: {report}");
                assert!(
                    report.contains("DMARC: none - no DMARC record at _dmarc.contoso.com\n"),
                    "the place looked at is named once: {report}"
                );
                // `analyze` shows bh= as verifiers read it, without the folding whitespace.
                let raw_bh = signed
                    .split("bh=")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap();
                folded_bh_seen |= raw_bh.contains('\n');
                let body_hash: String = raw_bh.split_whitespace().collect();
                let path = signet.dir.path().join("signed.eml");
                let analysis = signet.run(&["analyze", path.to_str().unwrap()]);
                assert!(
                    analysis.ok().contains(&format!("    bh={body_hash}  -- ")),
                    "{what}: {}",
                    analysis.stdout
                );
            }
        }
    }
    assert!(
        folded_bh_seen,
        "some signature folds its bh= over two lines"
    );
}
