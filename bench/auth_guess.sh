#!/usr/bin/env bash
# AUTH brute force (issue 14): wrong guesses per second for one connector login from 16
# concurrent sessions on the submission port, then one try of the right password. Runs
# `signet serve` on a fresh installation with `plaintext_auth_on_loopback = true` (no TLS, so
# the figure is the server's, not the handshake's) and crates/smtp/examples/auth_guess.
#
# usage: [SIGNET=path/to/signet] [PROFILE=release] bash bench/auth_guess.sh [SECONDS] [SESSIONS]
#        (default: 60 s, 16 sessions; the debug build unless PROFILE=release)
set -euo pipefail

seconds=${1:-60}
sessions=${2:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
profile=${PROFILE:-debug}
flag=() && [[ $profile == release ]] && flag=(--release)
cargo build -q "${flag[@]}" --ignore-rust-version -p signet -p signet-smtp --bin signet \
  --example auth_guess --manifest-path "$root/Cargo.toml"
signet=${SIGNET:-$target/$profile/signet} # SIGNET=path: another build, for before/after runs
guess=$target/$profile/examples/auth_guess

work=$(mktemp -d /tmp/signet-auth-bench.XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

data=$work/data
"$signet" --data-dir "$data" init --key-zone dkim.example.net --resolver 127.0.0.1:9 >/dev/null
"$signet" --data-dir "$data" tenant add contoso >/dev/null
echo 'the right password' |
  "$signet" --data-dir "$data" connector add contoso app --login app@contoso.com --password-stdin >/dev/null
sed -i 's/^# plaintext_auth_on_loopback = false/plaintext_auth_on_loopback = true/' "$data/signet.toml"
"$signet" --data-dir "$data" serve --dns-listen 127.0.0.1:27201 --relay-listen 127.0.0.1:27202 \
  --submission-listen 127.0.0.1:27203 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/27203) 2>/dev/null && break
  sleep 0.1
done

echo "signet: $signet ($(nproc) cores, $(date -u +%FT%TZ))"
"$guess" 127.0.0.1:27203 --user app@contoso.com --sessions "$sessions" --seconds "$seconds" \
  --then 'the right password'
echo "log lines about AUTH: $(grep -c 'AUTH' "$work/serve.log" || true)"
grep -m3 'AUTH' "$work/serve.log" || true
