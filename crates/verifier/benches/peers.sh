#!/bin/sh
# Times dkimpy and OpenDKIM on the messages `cargo bench -p signet-verifier --bench verify`
# wrote to target/verifier-bench/, and prints OpenSSL's raw rates, for BENCHMARKS.md.
#   usage: crates/verifier/benches/peers.sh [DIR]
set -eu
dir=${1:-target/verifier-bench}
runs=${RUNS:-40}
for m in rsa2048-2KB ed25519-2KB rsa2048-100KB ed25519-100KB; do
  python3 - "$dir/records.txt" "$dir/$m.eml" <<'PY'
import sys, timeit
import dkim
records = {}
for line in open(sys.argv[1]):
    name, value = line.strip().split(None, 1)
    records[name.lower()] = value.encode()
message = open(sys.argv[2], 'rb').read()
lookup = lambda name, timeout=5: records.get(name.decode().rstrip('.').lower())
assert dkim.verify(message, dnsfunc=lookup), 'dkimpy does not pass the message'
n = 200
seconds = timeit.timeit(lambda: dkim.verify(message, dnsfunc=lookup), number=n)
print(f"dkimpy   {sys.argv[2].rsplit('/', 1)[-1]:<20} {seconds / n * 1e6:9.0f} us/message")
PY
done

# OpenDKIM has only the one-shot test mode (-t): time many runs of each signed message and of
# the same message unsigned, and take the difference as the verification cost.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'Mode v\nSyslog no\nTestDNSData file:%s\n' "$(realpath "$dir/records.txt")" > "$work/verify.conf"
elapsed() { start=$(date +%s%N); i=0; while [ $i -lt "$runs" ]; do opendkim -x "$work/verify.conf" -t "$1" >/dev/null 2>&1; i=$((i + 1)); done; echo $(( ($(date +%s%N) - start) / runs / 1000 )); }
for m in rsa2048-2KB ed25519-2KB rsa2048-100KB ed25519-100KB; do
  opendkim -x "$work/verify.conf" -t "$dir/$m.eml" 2>&1 | grep -q succeeded || { echo "opendkim does not pass $m"; exit 1; }
  sed '1,/^[^ \t]/{/^DKIM-Signature:/d;/^[ \t]/d}' "$dir/$m.eml" > "$work/unsigned.eml"
  signed=$(elapsed "$dir/$m.eml"); unsigned=$(elapsed "$work/unsigned.eml")
  printf 'opendkim %-20s %9d us/message (process %d us, unsigned run %d us)\n' "$m.eml" $((signed - unsigned)) "$signed" "$unsigned"
done

openssl version
openssl speed -seconds 2 rsa2048 ed25519 2>/dev/null | grep -E '^(rsa 2048|[ ]*253 bits ed25519|sign)'
openssl speed -seconds 2 -bytes 2048 sha256 2>/dev/null | tail -1
openssl speed -seconds 2 -bytes 102400 sha256 2>/dev/null | tail -1
