//! Cross-checks with independent implementations, run for real: messages signed by dkimpy,
//! OpenDKIM and Mail::DKIM verify in signet, and signet agrees with dkimpy, OpenDKIM and
//! Mail::DKIM on them and on tampered copies (header changed, body changed, second From).
//! The wrappers and the peers' known faults are in `tests/peers/` (its `README.md`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use signet_verifier::{AuthResult, Envelope, RecordTable, to_crlf};
use support::offline;

const MESSAGE: &str = "From: Joe SixPack <joe@example.com>\n\
To: Suzie Q <suzie@shopping.example.net>\n\
Subject: Is dinner ready?\n\
Date: Fri, 11 Jul 2003 21:00:37 -0700\n\
Message-ID: <20030712040037.46341.5F8J@example.com>\n\
\n\
Hi.\n\
\n\
We lost the game.  Are you hungry yet?\n\
\n\
Joe.\n";

fn peers() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers"))
}

struct Keys {
    dir: tempfile::TempDir,
    records: RecordTable,
}

impl Keys {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Rsa::generate(2048).unwrap();
    std::fs::write(
        dir.path().join("rsa.pem"),
        rsa.private_key_to_pem().unwrap(),
    )
    .unwrap();
    let rsa_public = openssl::base64::encode_block(&rsa.public_key_to_der().unwrap());
    let ed = PKey::generate_ed25519().unwrap();
    let seed = ed.raw_private_key().unwrap();
    std::fs::write(
        dir.path().join("ed.seed.b64"),
        openssl::base64::encode_block(&seed),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ed.pem"),
        ed.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let ed_public = openssl::base64::encode_block(&ed.raw_public_key().unwrap());
    let records = format!(
        "sel1._domainkey.example.com v=DKIM1; k=rsa; p={rsa_public}\n\
         sel2._domainkey.example.com v=DKIM1; k=ed25519; p={ed_public}\n"
    );
    std::fs::write(dir.path().join("records.txt"), &records).unwrap();
    std::fs::write(dir.path().join("plain.eml"), MESSAGE).unwrap();
    let mut table = RecordTable::default();
    for line in records.lines() {
        let (name, value) = line.split_once(' ').unwrap();
        table.insert_txt(name, value);
    }
    // OpenDKIM refuses keys in world-writable places unless told otherwise (/tmp is one).
    for (name, selector, key, algorithm) in [
        ("sign-rsa.conf", "sel1", "rsa.pem", "rsa-sha256"),
        ("sign-ed.conf", "sel2", "ed.pem", "ed25519-sha256"),
    ] {
        std::fs::write(
            dir.path().join(name),
            format!(
                "Mode s\nDomain example.com\nSelector {selector}\nKeyFile {}\n\
                 Canonicalization relaxed/relaxed\nSignatureAlgorithm {algorithm}\n\
                 Syslog no\nRequireSafeKeys no\n",
                dir.path().join(key).display()
            ),
        )
        .unwrap();
    }
    Keys {
        dir,
        records: table,
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (see .ci/setup): {e}"));
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn sign(keys: &Keys, signer: &str) -> Vec<u8> {
    let plain = keys.path("plain.eml");
    let plain = plain.to_str().unwrap();
    let (ok, text) = match signer {
        "dkimpy-rsa" => run(
            "dkimsign",
            &[
                "--hcanon",
                "relaxed",
                "--bcanon",
                "relaxed",
                "sel1",
                "example.com",
                keys.path("rsa.pem").to_str().unwrap(),
            ],
            Some(MESSAGE.as_bytes()),
        ),
        "dkimpy-ed25519" => run(
            "dkimsign",
            &[
                "--signalg",
                "ed25519-sha256",
                "--hcanon",
                "relaxed",
                "--bcanon",
                "relaxed",
                "sel2",
                "example.com",
                keys.path("ed.seed.b64").to_str().unwrap(),
            ],
            Some(MESSAGE.as_bytes()),
        ),
        "opendkim-rsa" | "opendkim-ed25519" => {
            let conf = if signer.ends_with("rsa") {
                "sign-rsa.conf"
            } else {
                "sign-ed.conf"
            };
            let script = peers().join("opendkim_sign.sh");
            run(
                "sh",
                &[
                    script.to_str().unwrap(),
                    keys.path(conf).to_str().unwrap(),
                    plain,
                ],
                None,
            )
        }
        "maildkim-rsa" => {
            let script = peers().join("maildkim_sign.sh");
            run(
                "sh",
                &[
                    script.to_str().unwrap(),
                    "sel1",
                    "example.com",
                    keys.path("rsa.pem").to_str().unwrap(),
                    plain,
                ],
                None,
            )
        }
        other => panic!("unknown signer {other}"),
    };
    assert!(ok, "{signer} failed to sign: {text}");
    assert!(text.contains("DKIM-Signature:"), "{signer}: {text}");
    to_crlf(text.as_bytes()).into_owned()
}

/// The message and its tampered copies.
fn variants(signed: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let text = String::from_utf8(signed.to_vec()).unwrap();
    vec![
        ("original", signed.to_vec()),
        (
            "header changed",
            text.replace("Subject: Is dinner ready?", "Subject: Is lunch ready?")
                .into_bytes(),
        ),
        (
            "body changed",
            text.replace("hungry", "thirsty").into_bytes(),
        ),
        (
            "second From added",
            format!("From: Mallory <boss@example.com>\r\n{text}").into_bytes(),
        ),
    ]
}

fn peer_verdict(peer: &str, keys: &Keys, message: &[u8]) -> (bool, String) {
    let records = keys.path("records.txt");
    let records = records.to_str().unwrap();
    match peer {
        "dkimpy" => run(
            "python3",
            &[peers().join("dkimpy_verify.py").to_str().unwrap(), records],
            Some(message),
        ),
        "maildkim" => run(
            "perl",
            &[
                peers().join("maildkim_verify.pl").to_str().unwrap(),
                records,
            ],
            Some(message),
        ),
        "opendkim" => {
            let file = keys.path("check.eml");
            std::fs::write(&file, message).unwrap();
            run(
                "sh",
                &[
                    peers().join("opendkim_verify.sh").to_str().unwrap(),
                    records,
                    file.to_str().unwrap(),
                ],
                None,
            )
        }
        other => panic!("unknown peer {other}"),
    }
}

/// Where a peer is known to pass a tampered copy: OpenDKIM 2.11 and Mail::DKIM 1.20230212 do
/// not object to a second `From` above a signature that covers `From` once (RFC 6376 section
/// 8.15); only dkimpy's signatures oversign `From`, and dkimpy's verifier refuses the
/// duplicate. signet reports `policy` for any message with two From fields.
fn known_peer_miss(signer: &str, variant: &str, peer: &str) -> bool {
    variant == "second From added"
        && matches!(peer, "opendkim" | "maildkim")
        && !signer.starts_with("dkimpy")
}

#[tokio::test]
async fn peers_signatures_verify_and_tampering_fails_everywhere() {
    let keys = keys();
    let verifier = offline(keys.records.clone()).await;
    let mut disagreements = Vec::new();
    for signer in [
        "dkimpy-rsa",
        "dkimpy-ed25519",
        "opendkim-rsa",
        "opendkim-ed25519",
        "maildkim-rsa",
    ] {
        let signed = sign(&keys, signer);
        for (variant, message) in variants(&signed) {
            let authentic = variant == "original";
            let report = verifier.verify(&message, &Envelope::default(), None).await;
            assert_eq!(
                report.dkim.len(),
                1,
                "{signer} {variant}: {:#?}",
                report.dkim
            );
            let ours = report.dkim[0].result == AuthResult::Pass;
            assert_eq!(
                ours, authentic,
                "signet on {signer} {variant}: {:#?}",
                report.dkim
            );
            assert_eq!(
                report.authentication_results.contains("dkim=pass"),
                authentic,
                "{}",
                report.authentication_results
            );
            // Mail::DKIM 1.20230212 on Debian has no Ed25519.
            let peers: &[&str] = if signer.ends_with("ed25519") {
                &["dkimpy", "opendkim"]
            } else {
                &["dkimpy", "opendkim", "maildkim"]
            };
            for peer in peers {
                let (passed, text) = peer_verdict(peer, &keys, &message);
                let expected = if known_peer_miss(signer, variant, peer) {
                    true
                } else {
                    ours
                };
                if passed != expected {
                    disagreements.push(format!(
                        "{signer} / {variant}: signet {}, {peer} {} ({})",
                        report.dkim[0].result,
                        if passed { "pass" } else { "fail" },
                        text.trim()
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn peer_wrappers_exist() {
    for script in [
        "dkimpy_verify.py",
        "maildkim_verify.pl",
        "opendkim_sign.sh",
        "opendkim_verify.sh",
        "maildkim_sign.sh",
    ] {
        assert!(Path::new(&peers().join(script)).exists(), "{script}");
    }
}

/// `l=`: dkimpy signs with a body length; content appended after it still passes in dkimpy
/// (as RFC 6376 allows) but never in signet, which reports `policy` for any `l=` signature
/// (mail-auth 0.15 refuses them at parse time; signet names the reason).
#[tokio::test]
async fn appended_content_under_l_never_passes() {
    let keys = keys();
    let verifier = offline(keys.records.clone()).await;
    let script = "import dkim, sys\n\
        message = open(sys.argv[1], 'rb').read()\n\
        key = open(sys.argv[2], 'rb').read()\n\
        header = dkim.sign(message, b'sel1', b'example.com', key, length=True,\n\
                           canonicalize=(b'relaxed', b'relaxed'))\n\
        sys.stdout.buffer.write(header + message)\n";
    let (ok, signed) = run(
        "python3",
        &[
            "-c",
            script,
            keys.path("plain.eml").to_str().unwrap(),
            keys.path("rsa.pem").to_str().unwrap(),
        ],
        None,
    );
    assert!(ok && signed.contains(" l="), "{signed}");
    let signed = to_crlf(signed.as_bytes()).into_owned();
    let report = verifier.verify(&signed, &Envelope::default(), None).await;
    assert_eq!(
        report.dkim[0].result,
        AuthResult::Policy,
        "{:#?}",
        report.dkim
    );
    assert!(report.dkim[0].body_length_limit.is_some());
    assert_eq!(report.dkim[0].domain, "example.com");

    let mut appended = signed.clone();
    appended.extend_from_slice(b"\r\nP.S. Wire the money to account 1234.\r\n");
    let (dkimpy_passed, _) = peer_verdict("dkimpy", &keys, &appended);
    assert!(
        dkimpy_passed,
        "dkimpy honours l= and passes appended content"
    );
    let report = verifier.verify(&appended, &Envelope::default(), None).await;
    assert_eq!(
        report.dkim[0].result,
        AuthResult::Policy,
        "{:#?}",
        report.dkim
    );
    assert!(
        report.dkim[0].reason.contains("l="),
        "{}",
        report.dkim[0].reason
    );
    assert!(report.authentication_results.contains("dkim=policy"));
}
