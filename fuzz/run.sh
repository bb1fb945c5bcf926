#!/usr/bin/env bash
# Runs the fuzz targets for a while: bash fuzz/run.sh TARGET|all [SECONDS]
# Targets: see [[bin]] in fuzz/Cargo.toml (dns_query, smtp_session, smtp_address, smtp_data_reader,
# verifier_*);
# `all` runs each in turn for SECONDS (default 60). Exits non-zero on the first crash, which
# libFuzzer writes under fuzz/artifacts/TARGET; the corpus grows under fuzz/corpus/TARGET.
#
# This is `cargo fuzz run`, spelled out: cargo-fuzz cannot pass --ignore-rust-version, which the
# verifier's dependency mail-parser 1.0 needs (it declares rustc 1.98). The sanitizer flags are
# unstable compiler flags: RUSTC_BOOTSTRAP=1 lets the ordinary stable toolchain take them, so no
# nightly toolchain is needed (the AddressSanitizer runtime ships with stable's rust-std).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh TARGET|all [SECONDS]}
seconds=${2:-60}
triple=$(rustc -vV | awk '/^host/ {print $2}')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions"
export ASAN_OPTIONS=detect_odr_violation=0
export RUSTC_BOOTSTRAP=1
if [ "$target" = all ]; then
  targets=$(awk -F'"' '/^name = / && $2 != "signet-fuzz" {print $2}' Cargo.toml)
  cargo build --quiet --release --ignore-rust-version --target "$triple" --bins
else
  targets=$target
  cargo build --quiet --release --ignore-rust-version --target "$triple" --bin "$target"
fi
for t in $targets; do
  echo "== $t: ${seconds}s"
  mkdir -p "corpus/$t" "artifacts/$t"
  status=0
  "target/$triple/release/$t" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" >"artifacts/$t/last-run.log" 2>&1 || status=$?
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' "artifacts/$t/last-run.log" || true
  ((status == 0)) || { echo "$t: crashed (exit $status); see fuzz/artifacts/$t" >&2; exit 1; }
done
echo "fuzz: no crash in $(echo $targets | wc -w) targets, ${seconds}s each"
