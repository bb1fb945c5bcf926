//! ARC (RFC 8617): chain validation on public vectors, and a trusted sealer overriding a DMARC
//! failure, with the seal made by an independent implementation (dkimpy's `arcsign`).

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use openssl::rsa::Rsa;
use signet_verifier::{
    AuthResult, Envelope, RecordTable, Resolution, Verifier, VerifierConfig, to_crlf,
};
use support::{offline, read, txt_table};

#[tokio::test]
async fn stalwart_arc_chains_validate() {
    for (file, hops) in [("001.txt", 1), ("002.txt", 2)] {
        let text = String::from_utf8(read(&format!("stalwart-mail-auth/arc/{file}"))).unwrap();
        let (records, message) = text.split_once("\n\n").unwrap();
        let verifier = offline(txt_table(records)).await;
        let report = verifier
            .verify(&to_crlf(message.as_bytes()), &Envelope::default(), None)
            .await;
        assert_eq!(
            report.arc.result,
            AuthResult::Pass,
            "{file}: {:#?}",
            report.arc
        );
        assert_eq!(report.arc.chain.len(), hops, "{file}");
        assert!(report.authentication_results.contains("arc=pass"));
        // Breaking the body breaks the newest AMS, so the chain fails.
        let broken = message.replacen("\n\n", "\n\nAppended line.\n", 1);
        let report = verifier
            .verify(&to_crlf(broken.as_bytes()), &Envelope::default(), None)
            .await;
        assert_eq!(
            report.arc.result,
            AuthResult::Fail,
            "{file}: {:#?}",
            report.arc
        );
    }
}

const FORWARDED: &str = "Authentication-Results: lists.example.org; dkim=pass header.d=example.com; dmarc=pass header.from=example.com\n\
From: Joe <joe@example.com>\n\
To: list@lists.example.org\n\
Subject: via the list\n\
Date: Tue, 14 Nov 2023 22:13:20 +0000\n\
Message-ID: <arc-test@example.com>\n\
\n\
The list rewrote nothing, but the original signature did not survive.\n";

#[tokio::test]
async fn a_trusted_sealer_overrides_a_dmarc_failure() {
    let dir = tempfile::tempdir().unwrap();
    let key = Rsa::generate(2048).unwrap();
    let key_file = dir.path().join("lists.pem");
    std::fs::write(&key_file, key.private_key_to_pem().unwrap()).unwrap();
    let public = openssl::base64::encode_block(&key.public_key_to_der().unwrap());
    let output = Command::new("arcsign")
        .args([
            "sel1",
            "lists.example.org",
            key_file.to_str().unwrap(),
            "lists.example.org",
        ])
        .stdin({
            let path = dir.path().join("in.eml");
            std::fs::write(&path, FORWARDED).unwrap();
            std::fs::File::open(path).unwrap()
        })
        .output()
        .expect("dkimpy's arcsign runs (pip install dkimpy)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sealed = to_crlf(&output.stdout).into_owned();
    assert!(String::from_utf8_lossy(&sealed).contains("ARC-Seal:"));

    let mut table = RecordTable::default();
    table.insert_txt(
        "sel1._domainkey.lists.example.org",
        &format!("v=DKIM1; k=rsa; p={public}"),
    );
    table.insert_txt("_dmarc.example.com", "v=DMARC1; p=reject");
    let table = Arc::new(table);
    for trusted in [false, true] {
        let mut config = VerifierConfig::new("mx.test", Resolution::Answers(table.clone()));
        config.timeout = Duration::from_millis(300);
        if trusted {
            config.trusted_arc_sealers = vec!["lists.example.org".into()];
        }
        let verifier = Verifier::new(config).await.unwrap();
        let report = verifier.verify(&sealed, &Envelope::default(), None).await;
        assert_eq!(report.arc.result, AuthResult::Pass, "{:#?}", report.arc);
        assert_eq!(report.dmarc.result, AuthResult::Fail);
        if trusted {
            assert_eq!(
                report.arc.trusted_sealer.as_deref(),
                Some("lists.example.org")
            );
            assert_eq!(report.dmarc.disposition.as_deref(), Some("none"));
            assert_eq!(
                report.dmarc.arc_override.as_deref(),
                Some("lists.example.org")
            );
            assert!(
                report
                    .authentication_results
                    .contains("arc override by trusted sealer lists.example.org")
            );
        } else {
            assert_eq!(report.arc.trusted_sealer, None);
            assert_eq!(report.dmarc.disposition.as_deref(), Some("reject"));
        }
    }
}

/// RFC 8463 A.3 with its records, plus a sealer key for `forward.example.net`.
fn sealing_fixture(record: &str) -> (Vec<u8>, RecordTable, String) {
    let text = String::from_utf8(read("rfc-examples/rfc8463-appendix-A.txt")).unwrap();
    let section = |heading: &str| {
        let body = &text[text.find(heading).unwrap()..];
        let body = &body[body.find('\n').unwrap() + 1..];
        body[..body.find("\n== ").unwrap()].trim_end().to_string()
    };
    let records = section("== A.2");
    let records = format!("{records}\narc1._domainkey.forward.example.net {record}\n");
    let message = to_crlf(format!("{}\n", section("== A.3")).as_bytes()).into_owned();
    (message, txt_table(&records), records)
}

#[tokio::test]
async fn signet_seals_and_dkimpy_validates_the_chain() {
    use signet_verifier::SealingKey;
    let rsa = Rsa::generate(2048).unwrap();
    let pem = rsa.private_key_to_pem().unwrap();
    let public = openssl::base64::encode_block(&rsa.public_key_to_der().unwrap());
    let ed = openssl::pkey::PKey::generate_ed25519().unwrap();
    let ed_pem = ed.private_key_to_pem_pkcs8().unwrap();
    let ed_public = openssl::base64::encode_block(&ed.raw_public_key().unwrap());
    for (pem, record, peer) in [
        (pem, format!("v=DKIM1; k=rsa; p={public}"), true),
        (ed_pem, format!("v=DKIM1; k=ed25519; p={ed_public}"), false),
    ] {
        let (message, table, records) = sealing_fixture(&record);
        let key = SealingKey::from_pem("forward.example.net", "arc1", &pem).unwrap();
        let envelope = Envelope {
            client_ip: Some("192.0.2.1".parse().unwrap()),
            ..Envelope::default()
        };
        let verifier = offline(table).await;
        let headers = verifier.seal(&message, &envelope, &key).await.unwrap();
        assert!(headers.contains("ARC-Seal: i=1;"), "{headers}");
        assert!(headers.contains("cv=none"), "{headers}");
        let mut sealed = headers.into_bytes();
        sealed.extend_from_slice(&message);
        let report = verifier.verify(&sealed, &Envelope::default(), None).await;
        assert_eq!(report.arc.result, AuthResult::Pass, "{:#?}", report.arc);
        assert_eq!(report.arc.chain[0].sealer, "forward.example.net");
        if peer {
            let dir = tempfile::tempdir().unwrap();
            let records_file = dir.path().join("records.txt");
            std::fs::write(&records_file, records).unwrap();
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/peers/dkimpy_verify.py"
            );
            let mut child = Command::new("python3")
                .args([script, records_file.to_str().unwrap(), "--arc"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&sealed).unwrap();
            }
            let output = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && text.starts_with("cv=pass"),
                "dkimpy: {text}"
            );
        }
    }
}
