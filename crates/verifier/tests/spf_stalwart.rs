//! mail-auth's own SPF scenarios (`stalwart-mail-auth/spf/*.yml`, 13 files): macros, `ptr`,
//! `exp`, `redirect`, `include` and lookup limits, which the RFC 7208 public suite does not
//! exercise. Each file's records become a records table the loopback responder serves, as
//! mail-auth's test driver (`spf/verify.rs`, `spf_verify`) builds its mock caches:
//! `mx: NAME IP, IP` is one MX host `mx.IP.POSITION` per address, `ptr: IP NAME, NAME` are the
//! PTR records of that address.
//!
//! The expectations are mail-auth's: its `helo_and_mail_from` check (a HELO `fail` decides),
//! and its evaluator. Where signet differs (it reports the MAIL FROM identity, RFC 7208
//! section 2.4, and follows the RFC where mail-auth does not) the scenario is listed with the
//! reason, and the list is asserted exactly.

mod support;

use std::fmt::Write as _;
use std::net::IpAddr;

use signet_verifier::{AuthResult, Envelope, RecordTable};
use support::{offline, vectors};

struct Case {
    file: String,
    scenario: String,
    number: usize,
    helo: String,
    sender: String,
    ip: IpAddr,
    expected: AuthResult,
    explanation: String,
}

/// Differences from mail-auth's expectations, by `file / scenario #n`. Apart from the identity
/// rule, each is a place where mail-auth 0.15.1 contradicts RFC 7208 (and, where it has one,
/// the RFC 7208 public suite, named in brackets).
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "all.yml / All test #1",
        "`-all ip:10.0.0.1`: a syntax error anywhere is a permerror (4.6) [detect-errors-anywhere]; mail-auth stops at -all: fail",
    ),
    (
        "basic.yml / DNS Lookup Limits #1",
        "ten a: mechanisms naming nothing: the third void lookup is a permerror (4.6.4); mail-auth: softfail",
    ),
    (
        "basic.yml / HELO identity #1",
        "HELO fails, MAIL FROM passes: signet reports MAIL FROM (2.4), mail-auth stops at the HELO fail",
    ),
    (
        "exists.yml / Exists #2",
        "exists: on a name with only AAAA records does not match (5.7: A only) [exists-ip6only]",
    ),
    (
        "identities.yml / HELO and MAIL FROM identities #4",
        "HELO fails, MAIL FROM passes: signet reports MAIL FROM (2.4), mail-auth stops at the HELO fail",
    ),
    (
        "ip.yml / IPv6 match #4",
        "ip6:::ffff:10.1.2.3 does not match the IPv4 client 10.1.2.3 (5: IPv4-mapped means IPv4) [cidr6-ip4]",
    ),
    (
        "macro.yml / Macro expansion 2 #2",
        "exists: on an AAAA-only name for an IPv6 client does not match (5.7: A only) [exists-ip6only]",
    ),
];

fn result_word(word: &str) -> AuthResult {
    match word {
        "pass" => AuthResult::Pass,
        "fail" => AuthResult::Fail,
        "softfail" => AuthResult::SoftFail,
        "neutral" => AuthResult::Neutral,
        "temperror" => AuthResult::TempError,
        "permerror" => AuthResult::PermError,
        "none" => AuthResult::None,
        other => panic!("unknown result {other}"),
    }
}

fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::new();
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0x0f, byte >> 4);
            }
            name + "ip6.arpa"
        }
    }
}

/// The mock records of mail-auth's driver: adding a record replaces what that name (or, for
/// PTR, that address) had, and each test sees the records added before it.
#[derive(Default)]
struct Records {
    entries: Vec<(String, String)>,
}

impl Records {
    fn set(&mut self, key: String, lines: String) {
        self.entries.retain(|(have, _)| *have != key);
        self.entries.push((key, lines));
    }

    fn table(&self) -> String {
        self.entries
            .iter()
            .map(|(_, lines)| lines.as_str())
            .collect()
    }
}

/// mail-auth's mock resolver fails every lookup of a name containing `_dns_error.`.
fn failing_names(text: &str) -> String {
    let mut lines = String::new();
    let names = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == '=')
        .filter(|word| word.contains("_dns_error."));
    for name in names {
        for kind in ["TXT", "A", "AAAA", "MX", "PTR"] {
            let _ = writeln!(lines, "{name} {kind} TIMEOUT");
        }
    }
    lines
}

/// One `---` section's tests, each with the records table it sees.
fn scenario(file: &str, text: &str) -> Vec<(String, Case)> {
    let mut records = Records::default();
    records.set("_dns_error".into(), failing_names(text));
    let mut cases = Vec::new();
    let mut name = String::new();
    let (mut helo, mut sender, mut ip) = (String::new(), String::new(), None);
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix('-').map_or(line, str::trim);
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let record = || value.split_once(' ').map(|(n, v)| (n.trim(), v.trim()));
        let mut lines = String::new();
        match key {
            "name" => name = value.to_string(),
            "spf" | "exp" => {
                let (owner, text) = record().unwrap();
                let _ = writeln!(lines, "{owner} TXT {text}");
                records.set(format!("txt {owner}"), lines);
            }
            "a" | "aaaa" => {
                let (owner, addresses) = record().unwrap();
                let kind = key.to_uppercase();
                for address in addresses.split(',') {
                    let _ = writeln!(lines, "{owner} {kind} {}", address.trim());
                }
                records.set(format!("{kind} {owner}"), lines);
            }
            "ptr" => {
                let (address, names) = record().unwrap();
                let reverse = reverse_name(address.parse().unwrap());
                for target in names.split(',') {
                    let _ = writeln!(lines, "{reverse} PTR {}", target.trim());
                }
                records.set(format!("ptr {reverse}"), lines);
            }
            "mx" => {
                let (owner, addresses) = record().unwrap();
                for (position, address) in addresses.split(',').enumerate() {
                    let address: IpAddr = address.trim().parse().unwrap();
                    let host = format!("mx.{address}.{position}");
                    let kind = if address.is_ipv4() { "A" } else { "AAAA" };
                    let _ = writeln!(lines, "{owner} MX {} {host}", position + 1);
                    let _ = writeln!(lines, "{host} {kind} {address}");
                }
                records.set(format!("mx {owner}"), lines);
            }
            "domain" => helo = value.to_string(),
            "sender" => sender = value.to_string(),
            "ip" => ip = Some(value.parse().unwrap()),
            "expect" => {
                let (word, explanation) = value.split_once(' ').unwrap_or((value, ""));
                let case = Case {
                    file: file.to_string(),
                    scenario: name.clone(),
                    number: cases.len() + 1,
                    helo: helo.clone(),
                    sender: sender.clone(),
                    ip: ip.expect("ip: comes before expect:"),
                    expected: result_word(word),
                    explanation: explanation.trim().to_string(),
                };
                cases.push((records.table(), case));
            }
            _ => {}
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_auth_spf_scenarios() {
    let directory = vectors().join("stalwart-mail-auth/spf");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        13,
        "13 scenario files in {}",
        directory.display()
    );
    let (mut run, mut differences) = (0, Vec::new());
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for section in text.split("---\n") {
            for (lines, case) in scenario(&file, section) {
                let table = RecordTable::parse(&lines).unwrap_or_else(|e| panic!("{e}\n{lines}"));
                let verifier = offline(table).await;
                let envelope = Envelope {
                    client_ip: Some(case.ip),
                    helo: Some(case.helo.clone()),
                    mail_from: Some(case.sender.clone()),
                };
                let report = verifier
                    .verify(b"From: a@example.org\r\n\r\nx\r\n", &envelope, None)
                    .await;
                run += 1;
                let explained = case.explanation.is_empty()
                    || report
                        .spf
                        .reason
                        .ends_with(&format!(": {}", case.explanation));
                if report.spf.result != case.expected || !explained {
                    let label = format!("{} / {} #{}", case.file, case.scenario, case.number);
                    eprintln!(
                        "{label}: expected {:?} {:?}, got {} ({})",
                        case.expected, case.explanation, report.spf.result, report.spf.reason
                    );
                    differences.push(label);
                }
            }
        }
    }
    assert!(run >= 160, "only {run} scenarios ran");
    let mut known: Vec<&str> = KNOWN_DIFFERENCES.iter().map(|(name, _)| *name).collect();
    known.sort_unstable();
    differences.sort();
    assert_eq!(
        differences, known,
        "differences from mail-auth's expectations changed"
    );
    eprintln!(
        "mail-auth SPF scenarios: {} of {run} as expected",
        run - differences.len()
    );
}
