//! The authheaders DMARC cases (`authheaders-dmarc/cases.yml`), judged by RFC 7489.
//!
//! authheaders 0.16 implements parts of DMARCbis (`np=`, `psd=`, the tree walk); where that
//! gives a different answer than RFC 7489, the RFC 7489 answer is expected here and the
//! difference is named.

mod support;

use signet_verifier::{AuthResult, Envelope, RecordTable, to_crlf};
use support::{offline, read};

/// The case's DNS, transcribed from `cases.yml` (`dns_txt`, `other_dns`).
fn dns() -> RecordTable {
    let key = String::from_utf8(read("authheaders-dmarc/test.txt")).unwrap();
    let key: String = key
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("")
        .replace('"', "");
    let mut table = RecordTable::default();
    table.insert_txt("test._domainkey.example.com", &key);
    for (name, value) in [
        (
            "_dmarc.example.com",
            "v=DMARC1; p=reject; rua=mailto:dmarc.reports@valimail.com,mailto:dmarc_agg@vali.email; ruf=mailto:dmarc.reports@valimail.com,mailto:dmarc_c0cb7153_afrf@vali.email",
        ),
        ("_dmarc.example.org", "v=DMARC1; p=none"),
        ("_dmarc.example.net", "v=DMARC1; p=none; sp=reject"),
        (
            "_dmarc.example.biz",
            "v=DMARC1; p=none; sp=quarantine; np=reject",
        ),
        (
            "_dmarc.nop.example.org",
            "v=DMARC1; sp=quarantine; np=reject",
        ),
        ("_dmarc.bad.example.com", "v=DMARC1; p=none; reject"),
        (
            "_dmarc.gov",
            "v=DMARC1; p=reject; sp=none; np=reject; rua=mailto:dotgov_dmarc@cisa.dhs.gov; psd=y",
        ),
    ] {
        table.insert_txt(name, value);
    }
    table.insert(
        "sub2.example.biz",
        signet_verifier::dns::Kind::A,
        Some(signet_verifier::dns::RecordData::A([192, 0, 2, 1].into())),
    );
    table
}

/// (case, message, DKIM pass expected, DMARC result, applied policy, note on differences)
type Case = (
    &'static str,
    &'static str,
    bool,
    AuthResult,
    Option<&'static str>,
    &'static str,
);

const CASES: &[Case] = &[
    (
        "dmarc_pass",
        "test.message_signed",
        true,
        AuthResult::Pass,
        Some("reject"),
        "",
    ),
    (
        "dmarc_comma",
        "testcomma.message",
        true,
        AuthResult::Pass,
        Some("reject"),
        "",
    ),
    (
        "dmarc_bad_record",
        "test.bad.message",
        false,
        AuthResult::Fail,
        Some("none"),
        "authheaders: permerror; RFC 7489 6.3 ignores the malformed `reject` tag, leaving p=none",
    ),
    (
        "dmarc_nofrom",
        "test.nofrom.message",
        false,
        AuthResult::PermError,
        None,
        "",
    ),
    (
        "multi_from",
        "test.message_multi",
        false,
        AuthResult::Fail,
        Some("reject"),
        "",
    ),
    (
        "multi_from2",
        "test.message_multi2",
        false,
        AuthResult::Fail,
        Some("reject"),
        "",
    ),
    (
        "org_domain_sp",
        "test.message_sub",
        false,
        AuthResult::Fail,
        Some("reject"),
        "",
    ),
    (
        "np_nxdomain",
        "test.message_np1",
        false,
        AuthResult::Fail,
        Some("quarantine"),
        "authheaders applies DMARCbis np=reject; RFC 7489 has no np=, so sp=quarantine",
    ),
    (
        "np_exists",
        "test.message_np2",
        false,
        AuthResult::Fail,
        Some("quarantine"),
        "",
    ),
    (
        "no_p_tag",
        "test_nop.message",
        false,
        AuthResult::None,
        None,
        "",
    ),
    (
        "psd_treewalk",
        "test.gov.message",
        false,
        AuthResult::None,
        None,
        "authheaders: fail via DMARCbis psd=y; under RFC 7489 with the PSL, gov is a public suffix and example.gov publishes nothing",
    ),
];

#[tokio::test]
async fn authheaders_dmarc_cases_by_rfc7489() {
    let verifier = offline(dns()).await;
    for (name, file, dkim_pass, result, policy, _note) in CASES {
        let raw = read(&format!("authheaders-dmarc/{file}"));
        let report = verifier
            .verify(&to_crlf(&raw), &Envelope::default(), None)
            .await;
        let passed = report.dkim.iter().any(|s| s.result == AuthResult::Pass);
        assert_eq!(passed, *dkim_pass, "{name}: {:#?}", report.dkim);
        assert_eq!(report.dmarc.result, *result, "{name}: {:#?}", report.dmarc);
        assert_eq!(
            report.dmarc.applied_policy.as_deref(),
            *policy,
            "{name}: {:#?}",
            report.dmarc
        );
    }
}
