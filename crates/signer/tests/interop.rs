//! Signatures made by signet verify as `pass` in three independent implementations — dkimpy,
//! OpenDKIM and Mail::DKIM — for every key kind and canonicalization, and tampered copies fail.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use signet_keys::{Canonicalization, KeyId, KeySpec, PrivateKey, RsaBits};
use signet_signer::{SigningPlan, sign};

/// Folded headers, odd spacing in relaxed-only places, 8-bit UTF-8, trailing empty lines.
const MESSAGE: &str = "From: Joe Example <joe@example.com>\r\n\
To: Ann <ann@example.org>,\r\n Bob <bob@example.org>\r\n\
Subject: Quarterly report\r\n\
Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <20261122100000.1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Hello Ann,  \r\n\
\r\n\
the report is attached. Grüße, Joe\r\n\
\r\n\
\r\n";

fn peers() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers"))
}

fn run(command: &mut Command, stdin: &[u8]) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} cannot run ({e}): run .ci/setup"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn dkimpy(records: &Path, message: &[u8]) -> bool {
    run(
        Command::new("python3")
            .arg(peers().join("dkimpy_verify.py"))
            .arg(records),
        message,
    )
    .0
}

fn mail_dkim(records: &Path, message: &[u8]) -> bool {
    run(
        Command::new("perl")
            .arg(peers().join("maildkim_verify.pl"))
            .arg(records),
        message,
    )
    .0
}

fn opendkim(dir: &Path, records: &Path, message: &[u8]) -> bool {
    let conf = dir.join("verify.conf");
    std::fs::write(
        &conf,
        format!(
            "Mode v\nSyslog no\nTestDNSData file:{}\n",
            records.display()
        ),
    )
    .unwrap();
    let file = dir.join("message.eml");
    std::fs::write(&file, message).unwrap();
    let binary = ["/usr/sbin/opendkim", "/usr/bin/opendkim"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("opendkim is installed: run .ci/setup");
    let out = Command::new(binary)
        .arg("-x")
        .arg(&conf)
        .arg("-t")
        .arg(&file)
        .output()
        .unwrap();
    // opendkim -t exits 0 either way; its verdict is in the text.
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.contains("verification") && text.contains("succeeded")
}

struct Case {
    spec: KeySpec,
    header: Canonicalization,
    body: Canonicalization,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for spec in [
        KeySpec::Rsa(RsaBits::B1024),
        KeySpec::Rsa(RsaBits::B2048),
        KeySpec::Ed25519,
    ] {
        for header in [Canonicalization::Relaxed, Canonicalization::Simple] {
            for body in [Canonicalization::Relaxed, Canonicalization::Simple] {
                cases.push(Case { spec, header, body });
            }
        }
    }
    cases
}

#[test]
fn signatures_pass_in_dkimpy_opendkim_and_mail_dkim() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let key = PrivateKey::generate(case.spec).unwrap();
        let records = dir.path().join("records.txt");
        std::fs::write(
            &records,
            format!(
                "sel._domainkey.example.com {}\n",
                key.public_key().unwrap().record()
            ),
        )
        .unwrap();
        let plan = SigningPlan {
            domain: "example.com".parse().unwrap(),
            selector: "sel".into(),
            key: KeyId("k".into()),
            header_canonicalization: case.header,
            body_canonicalization: case.body,
            expiration: None,
        };
        let signed = sign(MESSAGE.as_bytes(), &plan, &key).unwrap() + MESSAGE;
        let what = format!("{:?} {}/{}", case.spec, case.header.tag(), case.body.tag());

        assert!(
            dkimpy(&records, signed.as_bytes()),
            "dkimpy: {what}\n{signed}"
        );
        // OpenDKIM 2.11's Ed25519 with simple header canonicalization is broken (`tests/peers/README.md`).
        let opendkim_reliable =
            !(case.spec == KeySpec::Ed25519 && case.header == Canonicalization::Simple);
        if opendkim_reliable {
            assert!(
                opendkim(dir.path(), &records, signed.as_bytes()),
                "OpenDKIM: {what}\n{signed}"
            );
        }
        // Mail::DKIM 1.20230212 on Debian has no Ed25519.
        if case.spec != KeySpec::Ed25519 {
            assert!(
                mail_dkim(&records, signed.as_bytes()),
                "Mail::DKIM: {what}\n{signed}"
            );
        }

        for (tamper, copy) in [
            (
                "body changed",
                signed.replace("report is attached", "report is missing"),
            ),
            (
                "subject changed",
                signed.replace("Subject: Quarterly report", "Subject: Quarterly rep0rt"),
            ),
            (
                "second From added",
                format!("From: Mallory <ceo@example.com>\r\n{signed}"),
            ),
        ] {
            assert!(
                !dkimpy(&records, copy.as_bytes()),
                "dkimpy passed a copy with {tamper}: {what}"
            );
            if opendkim_reliable {
                assert!(
                    !opendkim(dir.path(), &records, copy.as_bytes()),
                    "OpenDKIM passed a copy with {tamper}: {what}"
                );
            }
            if case.spec != KeySpec::Ed25519 {
                assert!(
                    !mail_dkim(&records, copy.as_bytes()),
                    "Mail::DKIM passed a copy with {tamper}: {what}"
                );
            }
        }
    }
}
