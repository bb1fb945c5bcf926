//! The public half of the RFC 7208 test suite (`spf/rfc7208-public.yml`, 118 tests), each
//! scenario's zone served by the loopback responder.
//!
//! The YAML is read by Python's PyYAML (`.ci/setup` installs it) and handed over as JSON, so
//! the suite needs no YAML crate. Zone rules follow the suite's drivers (pyspf `testspf.py`):
//! `SPF` records double as TXT unless the name lists TXT itself (`TXT: NONE` means none), and
//! `TIMEOUT` makes every query of a type the name has no records for time out.

mod support;

use std::fmt::Write as _;
use std::process::Command;

use serde_json::Value;
use signet_verifier::{AuthResult, Envelope, RecordTable};
use support::{offline, vectors};

fn suite() -> Vec<Value> {
    let path = vectors().join("spf/rfc7208-public.yml");
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python3 with PyYAML is needed to read the SPF suite: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A TXT value as quoted strings (so multi-string and empty records survive).
fn quoted(value: &Value) -> String {
    let strings: Vec<String> = match value {
        Value::Array(parts) => parts.iter().map(text).collect(),
        other => vec![text(other)],
    };
    strings
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn zone(zonedata: &serde_json::Map<String, Value>) -> RecordTable {
    let mut lines = String::new();
    for (name, entries) in zonedata {
        let entries = entries.as_array().cloned().unwrap_or_default();
        let has = |kind: &str| {
            entries
                .iter()
                .any(|e| e.as_object().is_some_and(|o| o.contains_key(kind)))
        };
        let explicit_txt = has("TXT");
        let mut present = Vec::new();
        let mut timeout = false;
        for entry in &entries {
            let Some(record) = entry.as_object() else {
                timeout |= entry.as_str() == Some("TIMEOUT");
                continue;
            };
            for (kind, value) in record {
                let line = match kind.as_str() {
                    "TXT" if value.as_str() == Some("NONE") => None,
                    "TXT" => Some(("TXT", quoted(value))),
                    "SPF" if !explicit_txt && value.as_str() != Some("NONE") => {
                        Some(("TXT", quoted(value)))
                    }
                    "A" | "AAAA" | "PTR" | "CNAME" => Some((kind.as_str(), text(value))),
                    "MX" => {
                        let parts = value.as_array().cloned().unwrap_or_default();
                        Some((
                            "MX",
                            format!(
                                "{} {}",
                                parts.first().map(text).unwrap_or_default(),
                                parts.get(1).map(text).unwrap_or_default()
                            ),
                        ))
                    }
                    _ => None,
                };
                if let Some((kind, value)) = line {
                    present.push(kind);
                    if kind == "TXT" || !value.trim().is_empty() {
                        let _ = writeln!(lines, "{name} {kind} {value}");
                    }
                }
            }
        }
        if timeout {
            for kind in ["TXT", "A", "AAAA", "MX", "PTR", "CNAME"] {
                if !present.contains(&kind) {
                    let _ = writeln!(lines, "{name} {kind} TIMEOUT");
                }
            }
        }
    }
    RecordTable::parse(&lines).unwrap_or_else(|e| panic!("{e}\n{lines}"))
}

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

/// Tests expected to fail, each with the reason. The test fails if this list is not exactly the
/// set of failures, so a regression (or a fix) shows up as a change to make here. Empty since
/// signet evaluates SPF itself (`spf_eval`).
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_public_suite() {
    let mut run = 0;
    let mut failures = Vec::new();
    for scenario in suite() {
        let description = text(&scenario["description"]);
        let zonedata = scenario["zonedata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let verifier = offline(zone(&zonedata)).await;
        for (name, test) in scenario["tests"].as_object().unwrap() {
            let expected: Vec<AuthResult> = match &test["result"] {
                Value::Array(words) => words.iter().map(|w| result_word(&text(w))).collect(),
                word => vec![result_word(&text(word))],
            };
            let mail_from = text(&test["mailfrom"]);
            let helo = text(&test["helo"]);
            // check_host() on MAIL FROM, or on postmaster@HELO for a null sender (RFC 7208 2.4).
            let sender = if mail_from.is_empty() {
                format!("postmaster@{helo}")
            } else if mail_from.contains('@') {
                mail_from.clone()
            } else {
                format!("postmaster@{mail_from}")
            };
            let envelope = Envelope {
                client_ip: Some(text(&test["host"]).parse().unwrap()),
                helo: Some(helo),
                mail_from: Some(sender),
            };
            let report = verifier
                .verify(b"From: a@example.org\r\n\r\nx\r\n", &envelope, None)
                .await;
            run += 1;
            if !expected.contains(&report.spf.result) {
                failures.push(name.clone());
                eprintln!(
                    "{description} / {name}: expected {expected:?}, got {} ({})",
                    report.spf.result, report.spf.reason
                );
            }
        }
    }
    assert_eq!(run, 118, "the public suite has 118 tests");
    let mut known: Vec<&str> = KNOWN_FAILURES.iter().map(|(name, _)| *name).collect();
    known.sort_unstable();
    failures.sort();
    assert_eq!(failures, known, "failures differ from the known list");
    eprintln!(
        "RFC 7208 public suite: {} of {run} pass",
        run - failures.len()
    );
}
