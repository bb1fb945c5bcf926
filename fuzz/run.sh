#!/usr/bin/env bash
# Runs one fuzz target for a while: bash fuzz/run.sh TARGET [SECONDS]
# Targets: see [[bin]] in fuzz/Cargo.toml (dns_query, smtp_session, smtp_address,
# smtp_data_reader, verifier_*).
#
# This is `cargo fuzz run`, spelled out: cargo-fuzz cannot pass --ignore-rust-version, which the
# verifier's dependency mail-parser 1.0 needs (it declares rustc 1.98). Needs a nightly
# toolchain (rustup toolchain install nightly); finds crashes under fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh TARGET [SECONDS]}
seconds=${2:-60}
triple=$(rustc -vV | awk '/^host/ {print $2}')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions"
export ASAN_OPTIONS=detect_odr_violation=0
cargo +nightly build --quiet --release --ignore-rust-version --target "$triple" --bin "$target"
mkdir -p "corpus/$target" "artifacts/$target"
"target/$triple/release/$target" -max_total_time="$seconds" -artifact_prefix="artifacts/$target/" "corpus/$target"
