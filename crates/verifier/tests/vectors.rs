//! The public vectors in `tests/vectors/`, checked as their provenance (`SOURCES.md`) says.

mod support;

use std::fmt::Write as _;

use signet_verifier::{AuthResult, Envelope, RecordTable, to_crlf};
use support::{offline, read, txt_table};

fn results(report: &signet_verifier::Report) -> Vec<AuthResult> {
    report.dkim.iter().map(|s| s.result).collect()
}

/// RFC 8463 Appendix A: the A.3 message with the A.2 records.
fn rfc8463() -> (RecordTable, Vec<u8>) {
    let text = String::from_utf8(read("rfc-examples/rfc8463-appendix-A.txt")).unwrap();
    let records = section(&text, "== A.2");
    let message = section(&text, "== A.3");
    (
        txt_table(&records),
        to_crlf(message.as_bytes()).into_owned(),
    )
}

fn section(text: &str, heading: &str) -> String {
    let start = text.find(heading).expect("section present");
    let body = &text[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("\n== ").unwrap_or(body.len());
    body[..end].trim_end().to_string() + "\n"
}

#[tokio::test]
async fn rfc8463_appendix_a_both_signatures_pass() {
    let (records, message) = rfc8463();
    let verifier = offline(records).await;
    let report = verifier.verify(&message, &Envelope::default(), None).await;
    assert_eq!(
        results(&report),
        [AuthResult::Pass, AuthResult::Pass],
        "{report:#?}"
    );
    assert_eq!(report.dkim[0].algorithm, "ed25519-sha256");
    assert_eq!(report.dkim[1].key_bits, Some(1024));
    // One byte of the body changed: both fail on the body hash.
    let tampered = String::from_utf8(message.clone())
        .unwrap()
        .replace("hungry", "Hungry");
    let report = verifier
        .verify(tampered.as_bytes(), &Envelope::default(), None)
        .await;
    assert_eq!(results(&report), [AuthResult::Fail, AuthResult::Fail]);
    assert!(
        report.dkim[0].reason.contains("body hash"),
        "{}",
        report.dkim[0].reason
    );
}

#[tokio::test]
async fn a_verifier_reports_the_same_the_second_time() {
    // The second verification takes the keys from the verifier's memo of the resolver's
    // answers (dkim::KeyMemo): the reports must not tell the two apart.
    let (records, message) = rfc8463();
    let verifier = offline(records).await;
    let first = verifier.verify(&message, &Envelope::default(), None).await;
    let second = verifier.verify(&message, &Envelope::default(), None).await;
    assert_eq!(first.dkim, second.dkim);
    assert_eq!(results(&second), [AuthResult::Pass, AuthResult::Pass]);
    assert_eq!(second.dkim[1].key_type.as_deref(), Some("rsa"));
    assert_eq!(second.dkim[0].key_type.as_deref(), Some("ed25519"));
}

#[tokio::test]
async fn stalwart_dkim_messages_verify() {
    // Each file: TXT records, a blank line, the message. All six are valid signatures.
    for index in 1..=6 {
        let text =
            String::from_utf8(read(&format!("stalwart-mail-auth/dkim/00{index}.txt"))).unwrap();
        let (records, message) = text.split_once("\n\n").unwrap();
        let verifier = offline(txt_table(records)).await;
        // 005 expired in 2022 (x=1667930064): verified as of its signing time, as mail-auth's
        // own test does with a fixed clock.
        let at = (index == 5).then_some(1_667_843_664);
        let report = verifier
            .verify(&to_crlf(message.as_bytes()), &Envelope::default(), at)
            .await;
        assert!(!report.dkim.is_empty(), "00{index}: no signatures");
        for signature in &report.dkim {
            let expected = if signature.algorithm == "rsa-sha1" {
                AuthResult::Policy
            } else {
                AuthResult::Pass
            };
            assert_eq!(signature.result, expected, "00{index}.txt: {signature:#?}");
        }
    }
}

#[tokio::test]
async fn dkimpy_messages_verify() {
    // dkimpy's own signed test messages and the records its tests publish for them.
    let test_key = String::from_utf8(read("dkimpy/test.txt")).unwrap();
    let ed_key = String::from_utf8(read("dkimpy/ed25519test.dns")).unwrap();
    let mut table = RecordTable::default();
    table.insert_txt("test._domainkey.football.example.com", test_key.trim());
    table.insert_txt(
        "brisbane._domainkey.football.example.com",
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    );
    table.insert_txt("sed._domainkey.test.ex", ed_key.trim());
    let verifier = offline(table).await;
    for (file, expected) in [
        ("dkimpy/rfc6376.signed.msg", AuthResult::Pass),
        ("dkimpy/rfc6376.signed.rsa.msg", AuthResult::Pass),
        // x= without t= and a b= copied from another signature: dkimpy says False too.
        ("dkimpy/rfc6376.signed.no_t.msg", AuthResult::Fail),
        // Does not verify against ed25519test.dns in dkimpy either (False).
        ("dkimpy/ed25519test2.msg", AuthResult::Fail),
    ] {
        let report = verifier
            .verify(&to_crlf(&read(file)), &Envelope::default(), None)
            .await;
        assert!(!report.dkim.is_empty(), "{file}: no signature");
        for signature in &report.dkim {
            assert_eq!(signature.result, expected, "{file}: {signature:#?}");
        }
    }
}

/// dkimpy's per-signature verdicts from `baseline-dkimpy.tsv`: `(index, passed)`.
fn baseline_verdicts(text: &str) -> Vec<(String, Vec<bool>)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (file, verdicts) = line.split_once('\t').unwrap();
            let passed = verdicts
                .split(';')
                .filter(|v| v.contains("->"))
                .map(|v| v.trim().ends_with("-> pass"))
                .collect();
            (file.trim_start_matches("./").to_string(), passed)
        })
        .collect()
}

/// Where signet deliberately differs from dkimpy 1.1.8 on the lieser messages, and why.
/// No RFC 8301 case arises here: every lieser signature is rsa-sha256 with 1024+ bits or
/// ed25519-sha256.
const LIESER_DIFFERENCES: &[(&str, &str)] = &[(
    "dkim/flags_s-auid_is_subdomain_of_sdid.eml",
    "the key has t=s and i= is a subdomain of d=: RFC 6376 section 3.6.1 says the i= domain \
     MUST NOT be a subdomain of d= (dkimpy ignores t=s); signet: permerror",
)];

#[tokio::test]
async fn lieser_messages_agree_with_dkimpy_except_rfc8301() {
    let records = String::from_utf8(read("lieser-dkim_verifier/records.txt")).unwrap();
    let baseline = String::from_utf8(read("lieser-dkim_verifier/baseline-dkimpy.tsv")).unwrap();
    let verifier = offline(txt_table(&records)).await;
    let mut differences = Vec::new();
    let cases = baseline_verdicts(&baseline);
    assert!(cases.len() >= 50, "baseline has {} rows", cases.len());
    for (file, expected) in &cases {
        let raw = read(&format!("lieser-dkim_verifier/{file}"));
        let report = verifier
            .verify(&to_crlf(&raw), &Envelope::default(), None)
            .await;
        let ours: Vec<bool> = report
            .dkim
            .iter()
            .map(|s| s.result == AuthResult::Pass)
            .collect();
        if &ours != expected {
            let detail: Vec<String> = report
                .dkim
                .iter()
                .map(|s| format!("{} {} ({})", s.algorithm, s.result, s.reason))
                .collect();
            differences.push(format!(
                "{file}: dkimpy {expected:?}, signet {}",
                detail.join("; ")
            ));
        }
    }
    for line in &differences {
        eprintln!("{line}");
    }
    let unexplained: Vec<&String> = differences
        .iter()
        .filter(|d| {
            !LIESER_DIFFERENCES
                .iter()
                .any(|(file, _)| d.starts_with(&format!("{file}:")))
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "unexplained differences: {unexplained:#?}"
    );
    assert_eq!(
        differences.len(),
        LIESER_DIFFERENCES.len(),
        "an expected difference went away"
    );
}

/// FAKE_DNS.dat as a records table: `~~timeout~~` times out, `~~SERVFAIL~~` fails,
/// `NXDOMAIN` is simply left out.
fn fake_dns() -> RecordTable {
    let text = String::from_utf8(read("mail-dkim/FAKE_DNS.dat")).unwrap();
    let mut table = String::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, value) = line.split_once(char::is_whitespace).unwrap();
        let value = value.trim();
        let value = match value {
            "NXDOMAIN" => continue,
            v if v.contains("SERVFAIL") => "SERVFAIL",
            v if v.starts_with("~~") => "TIMEOUT",
            v => v,
        };
        let _ = writeln!(table, "{name} TXT {value}");
    }
    RecordTable::parse(&table).unwrap()
}

#[tokio::test]
async fn mail_dkim_corpus_never_passes_legacy_or_weak_signatures() {
    let expected = String::from_utf8(read("mail-dkim/expected.tsv")).unwrap();
    let verifier = offline(fake_dns()).await;
    let mut checked = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let columns: Vec<&str> = line.split('\t').collect();
        let (file, flags) = (columns[0], columns[3]);
        let raw = read(&format!("mail-dkim/corpus/{file}"));
        let report = verifier
            .verify(&to_crlf(&raw), &Envelope::default(), None)
            .await;
        let results = results(&report);
        checked += 1;
        // The badkey*_ed25519 bodies were also edited after signing, so a body hash mismatch
        // is found before the key; any non-pass result is right.
        if file.starts_with("badkey") {
            assert!(
                !results.contains(&AuthResult::Pass),
                "{file}: {:#?}",
                report.dkim
            );
        }
        if flags.starts_with("no DKIM-Signature") {
            assert!(
                results.is_empty(),
                "{file}: DomainKeys only, got {results:?}"
            );
        } else if flags != "evaluate" {
            assert!(
                !results.contains(&AuthResult::Pass),
                "{file} ({flags}): {:#?}",
                report.dkim
            );
        }
        let want = match file {
            "goodkey_ed25519.txt" => Some(AuthResult::Pass),
            "badkey2_ed25519.txt" | "badkey3_ed25519.txt" => Some(AuthResult::Fail),
            // rsa-sha1 is refused before the key is needed, so the DNS failure does not matter.
            "badkey_14.txt" | "badkey_15.txt" => Some(AuthResult::Policy),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(results, [want], "{file}: {:#?}", report.dkim);
        }
    }
    assert_eq!(checked, 73, "every row of expected.tsv");
    // Robustness over the whole corpus, listed or not: no panic, and a pass only for a
    // modern signature (v=1, rsa-sha256 with 1024+ bits, or ed25519-sha256).
    let mut files = 0;
    for entry in std::fs::read_dir(support::vectors().join("mail-dkim/corpus")).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let report = verifier
            .verify(&to_crlf(&raw), &Envelope::default(), None)
            .await;
        for signature in report.dkim.iter().filter(|s| s.result == AuthResult::Pass) {
            let modern = signature.algorithm == "ed25519-sha256"
                || (signature.algorithm == "rsa-sha256" && signature.key_bits >= Some(1024));
            assert!(modern, "{signature:#?}");
        }
        files += 1;
    }
    assert_eq!(files, 79);
}

/// Relaxed header canonicalization (RFC 6376 section 3.4.2), written out independently.
fn relaxed(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    let collapsed = unfolded
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>();
    format!(
        "{}:{}\r\n",
        name.trim().to_ascii_lowercase(),
        collapsed.join(" ")
    )
}

#[test]
fn rfc8463_signatures_are_reproduced_byte_for_byte() {
    use openssl::pkey::{Id, PKey};
    use openssl::sign::Signer;
    let text = String::from_utf8(read("rfc-examples/rfc8463-appendix-A.txt")).unwrap();
    let seed_line = text
        .lines()
        .find(|l| l.starts_with("Ed25519 private key"))
        .unwrap();
    let seed = openssl::base64::decode_block(seed_line.rsplit(' ').next().unwrap()).unwrap();
    let pem_start = text.find("-----BEGIN RSA PRIVATE KEY-----").unwrap();
    let pem_end = text.find("-----END RSA PRIVATE KEY-----").unwrap() + 29;
    let rsa = PKey::from_rsa(
        openssl::rsa::Rsa::private_key_from_pem(&text.as_bytes()[pem_start..pem_end]).unwrap(),
    )
    .unwrap();
    let ed = PKey::private_key_from_raw_bytes(&seed, Id::ED25519).unwrap();
    let (_, message) = rfc8463();
    let message = String::from_utf8(message).unwrap();
    let head = &message[..message.find("\r\n\r\n").unwrap() + 2];
    // Unfolded fields: (name, raw value including folding).
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            fields.last_mut().unwrap().1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            fields.push((name.to_string(), value.to_string()));
        }
    }
    let signed = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "from",
        "subject",
        "date",
    ];
    for (index, key) in [(0, &ed), (1, &rsa)] {
        let (_, signature_value) = fields
            .iter()
            .filter(|(n, _)| n == "DKIM-Signature")
            .nth(index)
            .unwrap();
        let b_at = signature_value.find(" b=").unwrap() + 3;
        let expected: String = signature_value[b_at..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut data = String::new();
        let mut used = vec![false; fields.len()];
        for name in signed {
            if let Some(i) = (0..fields.len())
                .rev()
                .find(|&i| !used[i] && fields[i].0.eq_ignore_ascii_case(name))
            {
                used[i] = true;
                data.push_str(&relaxed(&fields[i].0, &fields[i].1));
            }
        }
        let own = relaxed(
            "DKIM-Signature",
            &format!("{}\r\n", &signature_value[..b_at]),
        );
        data.push_str(own.trim_end_matches("\r\n"));
        let produced = if index == 0 {
            let digest = openssl::sha::sha256(data.as_bytes());
            Signer::new_without_digest(key)
                .unwrap()
                .sign_oneshot_to_vec(&digest)
                .unwrap()
        } else {
            let mut signer = Signer::new(openssl::hash::MessageDigest::sha256(), key).unwrap();
            signer.update(data.as_bytes()).unwrap();
            signer.sign_to_vec().unwrap()
        };
        assert_eq!(
            openssl::base64::encode_block(&produced),
            expected,
            "signature {index}"
        );
    }
}

#[tokio::test]
async fn an_unsigned_message_reports_none_everywhere() {
    let verifier = offline(RecordTable::default()).await;
    let report = verifier
        .verify(
            b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
            &Envelope::default(),
            None,
        )
        .await;
    assert!(report.dkim.is_empty());
    assert_eq!(report.spf.result, AuthResult::None);
    assert_eq!(report.dmarc.result, AuthResult::None);
    assert_eq!(report.arc.result, AuthResult::None);
    assert_eq!(report.verdict, signet_verifier::Verdict::Fail);
    let header = &report.authentication_results;
    for part in [
        "dkim=none",
        "spf=none",
        "dmarc=none",
        "arc=none",
        "header.from=example.org",
    ] {
        assert!(header.contains(part), "{header}");
    }
}
