//! Malformed input never panics, and every result says why: arbitrary bytes, and vector
//! messages with bytes flipped, cut or duplicated, through `verify` and `analyze`. (The
//! cargo-fuzz targets in `fuzz/` drive the same entry points for longer runs.)

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use signet_verifier::{AuthResult, Envelope, Report, Verifier, analyze, to_crlf};
use support::{offline, read, txt_table};

fn runtime() -> &'static (tokio::runtime::Runtime, Verifier) {
    static STATE: OnceLock<(tokio::runtime::Runtime, Verifier)> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let records = String::from_utf8(read("lieser-dkim_verifier/records.txt")).unwrap();
        let verifier = runtime.block_on(offline(txt_table(&records)));
        (runtime, verifier)
    })
}

fn verify(raw: &[u8]) -> Report {
    let (runtime, verifier) = runtime();
    let envelope = Envelope {
        client_ip: Some("192.0.2.1".parse().unwrap()),
        helo: Some("mail.example.com".into()),
        mail_from: Some("joe@example.com".into()),
    };
    runtime.block_on(verifier.verify(raw, &envelope, None))
}

fn check(report: &Report) {
    for signature in &report.dkim {
        assert!(!signature.reason.is_empty(), "{signature:#?}");
        assert!(
            signature.result != AuthResult::Pass || signature.algorithm != "rsa-sha1",
            "{signature:#?}"
        );
    }
    assert!(!report.dmarc.reason.is_empty() || report.dmarc.result == AuthResult::Pass);
    assert!(
        report
            .authentication_results
            .starts_with("Authentication-Results: ")
    );
}

fn seed() -> Vec<u8> {
    to_crlf(&read("lieser-dkim_verifier/rfc6376-A.2.eml")).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&verify(&data));
        let _ = analyze(&data).render();
    }

    #[test]
    fn mutated_signed_message(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                              cut in any::<prop::sample::Index>()) {
        let mut message = seed();
        for (at, byte) in flips {
            let at = at.index(message.len());
            message[at] = byte;
        }
        let report = verify(&message);
        check(&report);
        let _ = analyze(&message).render();
        let cut = cut.index(message.len());
        check(&verify(&message[..cut]));
        let _ = analyze(&message[..cut]).render();
    }
}

#[test]
fn the_unmutated_seed_passes() {
    // Guards the property tests above: the seed is a valid signed message.
    let report = verify(&seed());
    assert_eq!(report.dkim.len(), 1);
    assert_eq!(
        report.dkim[0].result,
        AuthResult::Pass,
        "{:#?}",
        report.dkim
    );
}

#[test]
fn a_message_that_does_not_parse_gets_reasons() {
    let report = verify(b"\x00\x01 not a message");
    check(&report);
    let report = verify(b"DKIM-Signature: v=1; a=rsa-sha256; d=\r\n\r\n");
    assert!(report.dkim.iter().all(|s| s.result != AuthResult::Pass));
    check(&report);
}
