#!/usr/bin/env bash
# End-to-end relay throughput, side by side in one run: signet, Postfix + OpenDKIM (milter on a
# unix socket, its fastest setup) and Postfix alone (unsigned), each relaying the same load from
# Postfix's smtp-source (20 sessions) into the same smtp-sink, RSA-2048, fsync on (signet's
# spool and Postfix's queue both sync before 250). Then smtp_load (crates/smtp/examples) sends
# the same messages once more to time end of DATA -> 250 per message (p50/p99).
#
# usage: [SIGNET=path/to/signet] bash bench/relay.sh [MESSAGES] [SIZES...]
#        (default: 4000 messages, 2048 and 102400 bytes)
# Needs: postfix, opendkim (Debian packages; .ci/setup installs them), a release build.
set -euo pipefail

messages=${1:-4000}
shift || true
if (($#)); then sizes=("$@"); else sizes=(2048 102400); fi
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sink_port=27101 signet_port=27102 postfix_port=27103 dns_port=27104 submission_port=27105

cargo build -q --release --ignore-rust-version -p signet -p signet-smtp --bin signet --example smtp_load \
  --manifest-path "$root/Cargo.toml"
signet=${SIGNET:-$target/release/signet} # SIGNET=path: another build, for before/after runs
load=$target/release/examples/smtp_load

work=$(mktemp -d /tmp/signet-relay-bench.XXXXXX)
chmod 755 "$work" # Postfix's own processes must reach their queue and data directories
pids=()
cleanup() {
  postfix -c "$work/postfix" stop >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$inbox"
}
trap cleanup EXIT

# The next hop: smtp-sink, writing each message to a file in memory (/dev/shm) so that what
# arrived can be counted; emptied between runs.
inbox=$(mktemp -d /dev/shm/signet-relay-bench.XXXXXX)
smtp-sink -u root -d "$inbox/%M." "127.0.0.1:$sink_port" 1000 >/dev/null 2>&1 &
pids+=($!)
delivered() { find "$inbox" -type f | wc -l; }

# signet, relaying for contoso.com from loopback, signing with its 2048-bit default key, logging
# one line per message and per delivery as it does by default (Postfix logs too).
data=$work/signet
"$signet" --data-dir "$data" init --key-zone dkim.example.net --resolver 127.0.0.1:9 >/dev/null
"$signet" --data-dir "$data" tenant add contoso >/dev/null
"$signet" --data-dir "$data" domain add contoso contoso.com >/dev/null
"$signet" --data-dir "$data" connector add contoso lan --from 127.0.0.1/32 >/dev/null
sed -i "s|# smart_host = \"mail.example.net:25\"|smart_host = \"127.0.0.1:$sink_port\"\nhostname = \"signet.bench\"|" \
  "$data/signet.toml"
"$signet" --data-dir "$data" serve --dns-listen "127.0.0.1:$dns_port" \
  --relay-listen "127.0.0.1:$signet_port" --submission-listen "127.0.0.1:$submission_port" \
  --http-listen off 2>"$work/signet.log" &
pids+=($!)

# OpenDKIM as a milter on a unix socket, with its own 2048-bit key.
mkdir -p "$work/opendkim"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/opendkim/key.pem" 2>/dev/null
cat >"$work/opendkim/opendkim.conf" <<EOF
Syslog no
Mode s
Domain contoso.com
Selector bench
KeyFile $work/opendkim/key.pem
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
Socket local:$work/opendkim/opendkim.sock
UMask 000
RequireSafeKeys no
Background no
UserID root
EOF
opendkim -x "$work/opendkim/opendkim.conf" -f >"$work/opendkim/log" 2>&1 &
pids+=($!)

# A private Postfix instance: smtpd on $postfix_port, the milter, relayhost = the sink.
pf=$work/postfix
mkdir -p "$pf" "$work/pf-queue" "$work/pf-data"
chown postfix "$work/pf-data"
awk '/^[a-z0-9]/ && NF >= 8 { $5 = "n" } { print }' /etc/postfix/master.cf |
  sed "s/^smtp inet /$postfix_port inet /" >"$pf/master.cf"
cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $work/pf-queue
data_directory = $work/pf-data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink_port
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_milters = unix:$work/opendkim/opendkim.sock
milter_default_action = tempfail
maillog_file_prefixes = /tmp
maillog_file = $work/postfix.log
default_process_limit = 100
smtpd_client_connection_count_limit = 0
default_destination_concurrency_limit = 20
EOF
postfix -c "$pf" start >/dev/null || { cat "$work/postfix.log" >&2; exit 1; }

for port in $signet_port $postfix_port; do
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

# Before the first measured run of a system: 500 messages, not measured, so that each starts warm
# (signet's key cache and worker threads, Postfix's smtpd processes, the queue directories).
warm_up() {
  local before
  find "$inbox" -type f -delete
  before=$(delivered)
  smtp-source -s 20 -m 500 -l 2048 -M load.example -f joe@contoso.com -t ann@example.org \
    "127.0.0.1:$1"
  while (($(delivered) < before + 500)); do sleep 0.05; done
}

# One system, one size: smtp-source's accept rate, the rate until the sink had everything, and
# smtp_load's latencies.
run() {
  local name=$1 port=$2 size=$3 before start accepted drained
  find "$inbox" -type f -delete
  before=$(delivered)
  start=$(now)
  smtp-source -s 20 -m "$messages" -l "$size" -M load.example -f joe@contoso.com \
    -t ann@example.org "127.0.0.1:$port"
  accepted=$(now)
  while (($(delivered) < before + messages)); do sleep 0.05; done
  drained=$(now)
  find "$inbox" -type f -delete
  before=$(delivered)
  local latency
  latency=$("$load" "127.0.0.1:$port" --sessions 20 --messages "$((messages / 2))" --size "$size")
  while (($(delivered) < before + messages / 2)); do sleep 0.05; done
  printf '| %s | %s | %s | %s | %s |\n' "$name" "$size" "$(rate "$messages" "$start" "$accepted")" \
    "$(rate "$messages" "$start" "$drained")" \
    "$(sed 's/.*eod_to_250_ms //' <<<"$latency")"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $messages messages per run, 20 sessions"
echo
echo "| system | size | accepted/s (smtp-source) | delivered/s (at the sink) | end of DATA -> 250 (smtp_load) |"
echo "|---|---|---|---|---|"
warm_up $signet_port
warm_up $postfix_port
for size in "${sizes[@]}"; do
  run signet $signet_port "$size"
  run "Postfix + OpenDKIM" $postfix_port "$size"
done
# Postfix alone, unsigned, for reference.
postconf -c "$pf" -e 'smtpd_milters =' && postfix -c "$pf" reload >/dev/null 2>&1 && sleep 1
warm_up $postfix_port
for size in "${sizes[@]}"; do
  run "Postfix alone (unsigned)" $postfix_port "$size"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
