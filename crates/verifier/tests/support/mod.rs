//! Shared helpers for the verifier's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use signet_verifier::{RecordTable, Resolution, Verifier, VerifierConfig};

/// The public test vectors, in the repository's `tests/vectors/` (provenance and licences in its
/// `SOURCES.md`).
pub fn vectors() -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors"));
    assert!(
        path.join("SOURCES.md").exists(),
        "the test vectors are missing: expected them at {}",
        path.display()
    );
    path
}

pub fn read(relative: &str) -> Vec<u8> {
    let path = vectors().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `name value` lines (TXT only, as in the vectors' records files) as a table.
pub fn txt_table(text: &str) -> RecordTable {
    let mut table = RecordTable::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        table.insert_txt(name, value.trim());
    }
    table
}

pub async fn offline(table: RecordTable) -> Verifier {
    let mut config = VerifierConfig::new("mx.signet.test", Resolution::Answers(Arc::new(table)));
    config.timeout = Duration::from_millis(300);
    Verifier::new(config)
        .await
        .unwrap_or_else(|e| panic!("the verifier does not start: {e}"))
}
