//! `signet verify` and `signet analyze` as a user runs them: files, stdin, `--records`,
//! `--json`, `--at`, and the exit status (0 pass, 1 fail, 75 temporary error).

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The public test vectors in the repository's `tests/vectors/` (provenance in `SOURCES.md`).
fn vectors() -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors"));
    assert!(
        path.join("SOURCES.md").exists(),
        "the test vectors are missing: expected them at {}",
        path.display()
    );
    path
}

/// The RFC 8463 A.3 message and its A.2 records (in `name TXT value` form), written to `dir`.
fn rfc8463(dir: &Path) -> (PathBuf, PathBuf) {
    let text =
        std::fs::read_to_string(vectors().join("rfc-examples/rfc8463-appendix-A.txt")).unwrap();
    let section = |heading: &str| {
        let body = &text[text.find(heading).unwrap()..];
        let body = &body[body.find('\n').unwrap() + 1..];
        body[..body.find("\n== ").unwrap()].trim_end().to_string()
    };
    let mut records = String::new();
    for line in section("== A.2").lines() {
        let (name, value) = line.split_once(char::is_whitespace).unwrap();
        let _ = writeln!(records, "{name} TXT {}", value.trim());
    }
    records.push_str("_dmarc.football.example.com TXT v=DMARC1; p=reject\n");
    records.push_str("football.example.com TXT v=spf1 ip4:192.0.2.0/24 -all\n");
    let message = dir.join("message.eml");
    let records_file = dir.join("records.txt");
    std::fs::write(&message, section("== A.3") + "\n").unwrap();
    std::fs::write(&records_file, records).unwrap();
    (message, records_file)
}

fn signet(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
        .arg("--data-dir")
        .arg(dir.join("no-installation"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_report_has_every_method_and_exit_zero_on_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (message, records) = rfc8463(dir.path());
    let output = signet(
        dir.path(),
        &[
            "verify",
            path(&message),
            "--records",
            path(&records),
            "--json",
            "--client-ip",
            "192.0.2.5",
            "--helo",
            "mail.football.example.com",
            "--mail-from",
            "joe@football.example.com",
            "--authserv-id",
            "mx.test",
        ],
        None,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let dkim = json["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 2);
    for signature in dkim {
        for key in ["domain", "selector", "algorithm", "result", "reason"] {
            assert!(signature.get(key).is_some(), "dkim entry lacks {key}");
        }
        assert_eq!(signature["result"], "pass");
    }
    for method in ["spf", "dmarc", "arc"] {
        assert!(json[method]["result"].is_string(), "{method}");
        assert!(json[method]["reason"].is_string(), "{method}");
    }
    assert_eq!(json["spf"]["result"], "pass");
    assert_eq!(json["dmarc"]["result"], "pass");
    assert_eq!(json["arc"]["result"], "none");
    let header = json["authentication_results"].as_str().unwrap();
    assert!(
        header.starts_with("Authentication-Results: mx.test;"),
        "{header}"
    );
    assert!(header.contains("dmarc=pass"), "{header}");
}

#[test]
fn human_report_from_stdin_and_exit_one_on_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (message, records) = rfc8463(dir.path());
    let raw = std::fs::read_to_string(&message).unwrap();
    let output = signet(
        dir.path(),
        &["verify", "-", "--records", path(&records)],
        Some(raw.as_bytes()),
    );
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "d=football.example.com s=brisbane a=ed25519-sha256",
        "rsa 1024-bit key",
        "Authentication-Results:",
        "DMARC: pass",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let tampered = raw.replace("hungry", "thirsty");
    let output = signet(
        dir.path(),
        &["verify", "-", "--records", path(&records)],
        Some(tampered.as_bytes()),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("body hash mismatch"));
}

#[test]
fn a_timeout_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    let (message, _) = rfc8463(dir.path());
    let records = dir.path().join("slow.txt");
    std::fs::write(
        &records,
        "brisbane._domainkey.football.example.com TXT TIMEOUT\ntest._domainkey.football.example.com TXT TIMEOUT\n",
    )
    .unwrap();
    let output = signet(
        dir.path(),
        &[
            "verify",
            path(&message),
            "--records",
            path(&records),
            "--timeout",
            "1",
        ],
        None,
    );
    assert_eq!(
        output.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("dkim=temperror"));
}

#[test]
fn at_verifies_an_expired_signature_as_of_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(vectors().join("stalwart-mail-auth/dkim/005.txt")).unwrap();
    let (records, message) = text.split_once("\n\n").unwrap();
    let mut table = String::new();
    for line in records.lines() {
        let (name, value) = line.split_once(' ').unwrap();
        let _ = writeln!(table, "{name} TXT {value}");
    }
    std::fs::write(dir.path().join("records.txt"), table).unwrap();
    std::fs::write(dir.path().join("message.eml"), message).unwrap();
    let message = dir.path().join("message.eml");
    let records = dir.path().join("records.txt");
    let base = [
        "verify",
        path(&message),
        "--records",
        path(&records),
        "--json",
    ];
    let now = signet(dir.path(), &base, None);
    let json: serde_json::Value = serde_json::from_slice(&now.stdout).unwrap();
    assert_eq!(json["dkim"][0]["result"], "neutral", "{json}");
    assert_eq!(now.status.code(), Some(1));
    let mut then = base.to_vec();
    then.extend(["--at", "2022-11-07T17:54:24Z"]);
    let then = signet(dir.path(), &then, None);
    let json: serde_json::Value = serde_json::from_slice(&then.stdout).unwrap();
    assert_eq!(json["dkim"][0]["result"], "pass", "{json}");
    assert_eq!(then.status.code(), Some(0));
}

#[test]
fn analyze_explains_headers_without_dns() {
    let dir = tempfile::tempdir().unwrap();
    let file = vectors().join("lieser-dkim_verifier/arh/rfc6376-A.2-arh-valid.eml");
    let output = signet(dir.path(), &["analyze", path(&file)], None);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "Authentication-Results: results recorded by example.net",
        "DKIM signature by d=example.com with selector s=brisbane",
        "bh=",
        "hash of the canonicalized body",
        "Relay hops",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let output = signet(
        dir.path(),
        &["analyze", "-", "--json"],
        Some(&std::fs::read(&file).unwrap()),
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["hops"].as_array().unwrap().len(), 1);
}
