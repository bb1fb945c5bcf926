#!/usr/bin/env bash
# Key zone DNS benchmark: signet's server and Knot serving the same 10,000-domain zone, measured
# with dnsperf in one run. Needs: dnsperf knot (Debian). Results go to stdout; copy them into
# BENCHMARKS.md with the machine and date. signet runs without response rate limiting, like the
# Knot here (dnsperf asks from one address); RRL=N in the environment turns it on at N responses
# a second per prefix (RRL=1000000000 measures the limiter's cost without limiting anything).
#
#   bash bench/dns.sh [DOMAINS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
domains=${1:-10000}
seconds=${2:-20}
clients=${CLIENTS:-20}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --quiet --release --ignore-rust-version -p signet-dns-server --example synthetic
signet_port=15301
knot_port=15302

target/release/examples/synthetic "$domains" "$signet_port" "$work/dkim.example.net.zone" "$work/queries" 2>/dev/null &
cat > "$work/knot.conf" <<KNOT
server:
  listen: 127.0.0.1@$knot_port
  rundir: $work
  user: root:root
database:
  storage: $work/db
template:
  - id: default
    storage: $work
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: dkim.example.net
KNOT
for _ in $(seq 100); do [ -s "$work/dkim.example.net.zone" ] && break; sleep 0.1; done
knotd -c "$work/knot.conf" 2>/dev/null &
for port in $signet_port $knot_port; do
  for _ in $(seq 100); do
    dig @127.0.0.1 -p $port +short +time=1 +tries=1 SOA dkim.example.net | grep -q . && break
    sleep 0.2
  done
done

run() { # name port
  # Latency percentiles: dnsperf -v prints one line per query with its latency in seconds.
  dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$seconds" -c "$clients" -T 2 -q 200 -v > "$work/$1.out"
  local qps p50 p99 avg lost
  qps=$(awk '/Queries per second/ {print $4}' "$work/$1.out")
  avg=$(awk '/Average Latency/ {print $4}' "$work/$1.out")
  lost=$(awk '/Queries lost/ {print $3}' "$work/$1.out")
  read -r p50 p99 < <(awk '$1 ~ /^>/ {print $NF}' "$work/$1.out" | sort -g | awk '{a[NR]=$1} END {printf "%.6f %.6f\n", a[int(NR*0.5)], a[int(NR*0.99)]}')
  printf '%-7s qps %10s   avg %ss   p50 %ss   p99 %ss   lost %s\n' "$1" "$qps" "$avg" "$p50" "$p99" "$lost"
  echo "$1 $qps $p99" >> "$work/summary"
}

echo "zone: $domains domains ($(grep -c ' TXT ' "$work/dkim.example.net.zone") TXT records), $seconds s per server, $clients clients, dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null)"
run signet $signet_port
run knot $knot_port
awk '{q[$1]=$2; p[$1]=$3} END {printf "ratio signet/knot: qps %.2f, p99 %.2f\n", q["signet"]/q["knot"], p["signet"]/p["knot"]}' "$work/summary"
