//! The repository stands alone: no tracked file refers to the directory that exists only beside
//! the original checkout, nor cites the outside specification instead of `docs/reference.md`.
//! A fresh clone has nothing beside it, so such a reference would be a test, script or doc that
//! cannot work there. `.ci/run` makes the first check too, before building anything.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The patterns, built from pieces so that this file does not match them itself.
const OUTSIDE: [&str; 2] = [concat!("../", "shared"), concat!("/work/", "shared")];
const SPEC_WORD: &str = concat!("SP", "EC");

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every file git tracks, with its contents (files deleted in the working tree are skipped).
fn tracked_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git ls-files failed (this test needs a git checkout): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .filter_map(|name| {
            let name = String::from_utf8(name.to_vec()).expect("a UTF-8 file name");
            match std::fs::read(root.join(&name)) {
                Ok(bytes) => Some((name, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => panic!("cannot read {name}: {e}"),
            }
        })
        .collect()
}

/// `(line number, line)` of each line of `bytes` that `matches`.
fn lines_where(bytes: &[u8], matches: impl Fn(&str) -> bool) -> Vec<(usize, String)> {
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .filter(|(_, line)| matches(line))
        .map(|(index, line)| (index + 1, line.trim().to_string()))
        .collect()
}

/// `word` as a whole word (not inside an identifier such as `KeySpec` or `SPECIAL`).
fn has_word(line: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn offenders(matches: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for (name, bytes) in tracked_files(&root()) {
        for (number, line) in lines_where(&bytes, &matches) {
            found.push(format!("{name}:{number}: {line}"));
        }
    }
    found
}

#[test]
fn nothing_refers_to_files_beside_the_repository() {
    let found = offenders(|line| OUTSIDE.iter().any(|pattern| line.contains(pattern)));
    assert!(
        found.is_empty(),
        "these lines refer to {} or {}, outside the repository (use tests/vectors/ or docs/):\n{}",
        OUTSIDE[0],
        OUTSIDE[1],
        found.join("\n")
    );
}

#[test]
fn nothing_cites_the_outside_specification() {
    let found = offenders(|line| has_word(line, SPEC_WORD));
    assert!(
        found.is_empty(),
        "these lines cite {SPEC_WORD}, a document not in the repository (cite docs/reference.md):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_can_fail() {
    let probe = format!("see {}/vectors and {SPEC_WORD} section 4", OUTSIDE[0]);
    assert_eq!(
        lines_where(probe.as_bytes(), |l| l.contains(OUTSIDE[0])).len(),
        1
    );
    assert!(has_word(&probe, SPEC_WORD));
    assert!(has_word(&format!("({SPEC_WORD} §4)"), SPEC_WORD));
    assert!(!has_word(&format!("KEY{SPEC_WORD}"), SPEC_WORD));
    assert!(!has_word(&format!("{SPEC_WORD}IAL"), SPEC_WORD));
}
