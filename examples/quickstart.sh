#!/usr/bin/env bash
# The README's quick start, run whole on one machine over loopback, printing each step.
#
# What stands in for the internet here:
#   - Knot DNS, authoritative for the customer's zone contoso.com, where the customer has
#     published the two CNAMEs that signet's `records` command prints;
#   - Unbound, a recursive resolver that knows contoso.com (Knot) and the key zone
#     dkim.example.net (signet's own DNS server): signet's `[resolver] nameservers` points at
#     it, so signet sees the customer's CNAMEs and its own keys through them, as a verifier
#     on the internet would;
#   - Postfix's smtp-sink as the smart host, writing every message it receives to a file;
#   - dkimpy, verifying the delivered messages with keys found through the same resolver.
#
# Needs: signet (on the PATH, or SIGNET=/path/to/signet), knotd, unbound, dig, swaks,
# smtp-sink, python3 with dkimpy and dnspython (`bash .ci/setup` installs them all).
# In the transcript, `signet` stands for `signet --data-dir $WORK/signet-data`.
# Exits 0 only if every step worked. Everything lives in a temporary directory, removed at exit
# (KEEP=1 keeps it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
SIGNET=${SIGNET:-signet}
command -v "$SIGNET" >/dev/null || {
  echo "quickstart: no signet binary: put it on the PATH (cargo install --path signet) or set SIGNET=" >&2
  exit 2
}
for tool in knotd unbound dig swaks smtp-sink python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "quickstart: $tool is not installed (bash .ci/setup installs it)" >&2
    exit 2
  }
done
export PATH="$PATH:/usr/sbin"

work=$(mktemp -d)
chmod o+x "$work"
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "quickstart: FAILED (exit $status); logs:" >&2
    for log in "$work"/*.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  if [ -n "${KEEP:-}" ]; then echo "quickstart: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# Prints a command as a user would type it, then runs it.
show() { printf '$ %s\n' "$*"; "$@"; }
free_port() {
  python3 -c 'import socket
while True:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); port = u.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", port)); break
    except OSError:
        pass
print(port)'
}
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "quickstart: timed out after ${seconds}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}
# answers PORT ARGS...: the server on PORT gives an answer (dig prints its errors as ";;" lines).
answers() { dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 "${@:2}" | grep -qv '^;'; }

zone=dkim.example.net
knot_port=$(free_port)
unbound_port=$(free_port)
dns_port=$(free_port)
relay_port=$(free_port)
submission_port=$(free_port)
sink_port=$(free_port)
http_port=$(free_port)
data="$work/signet-data"
signet() { "$SIGNET" --data-dir "$data" "$@"; }

step "The customer's DNS: contoso.com with the two CNAMEs (Knot on 127.0.0.1:$knot_port)"
mkdir -p "$work/knot"
cat >"$work/knot/contoso.com.zone" <<EOF
\$ORIGIN contoso.com.
\$TTL 60
@ SOA ns.contoso.com. hostmaster.contoso.com. 1 3600 600 86400 60
@ NS ns.contoso.com.
ns A 127.0.0.1
selector1._domainkey CNAME selector1-contoso-com._domainkey.contoso.$zone.
selector2._domainkey CNAME selector2-contoso-com._domainkey.contoso.$zone.
EOF
cat >"$work/knot/knot.conf" <<EOF
server:
  listen: 127.0.0.1@$knot_port
  rundir: $work/knot
  user: root:root
database:
  storage: $work/knot/db
template:
  - id: default
    storage: $work/knot
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: contoso.com
EOF
knotd -c "$work/knot/knot.conf" >"$work/knotd.log" 2>&1 &
pids+=($!)
wait_for 10 "Knot to serve contoso.com" answers "$knot_port" SOA contoso.com
show dig @127.0.0.1 -p "$knot_port" +short CNAME selector1._domainkey.contoso.com

step "A recursive resolver that knows contoso.com and the key zone (Unbound on 127.0.0.1:$unbound_port)"
cat >"$work/unbound.conf" <<EOF
server:
  interface: 127.0.0.1
  port: $unbound_port
  do-not-query-localhost: no
  username: ""
  chroot: ""
  directory: "$work"
  pidfile: "$work/unbound.pid"
  use-syslog: no
  logfile: ""
  module-config: "iterator"
  cache-max-ttl: 1
  cache-max-negative-ttl: 1
  access-control: 127.0.0.0/8 allow
  qname-minimisation: no
  do-ip6: no
  harden-referral-path: no
stub-zone:
  name: "contoso.com"
  stub-addr: 127.0.0.1@$knot_port
stub-zone:
  name: "$zone"
  stub-addr: 127.0.0.1@$dns_port
EOF
unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
pids+=($!)
wait_for 10 "Unbound to answer" answers "$unbound_port" SOA contoso.com

step "The smart host: Postfix's smtp-sink on 127.0.0.1:$sink_port, one file per message"
mkdir -p "$work/delivered"
smtp-sink -u "$(id -un)" -d "$work/delivered/%M." "127.0.0.1:$sink_port" 10 >"$work/smtp-sink.log" 2>&1 &
pids+=($!)
wait_for 10 "smtp-sink to listen" python3 -c "import socket; socket.create_connection(('127.0.0.1', $sink_port))"

step "Set up signet: a key zone, a tenant, a customer domain"
show signet init --key-zone "$zone" --resolver "127.0.0.1:$unbound_port"
# A rotation in seconds instead of days, and the sink as the next hop.
sed -i \
  -e 's/^delay = "96h"/delay = "5s"/' \
  -e 's/^check_interval = "1h"/check_interval = "2s"/' \
  -e "s/^# smart_host = \"mail.example.net:25\"/smart_host = \"127.0.0.1:$sink_port\"/" \
  -e 's/^# hostname = "signet.example.net"/hostname = "signet.test"/' \
  "$data/signet.toml"
grep -E '^(delay|check_interval|smart_host|hostname) ' "$data/signet.toml"
show signet tenant add contoso
show signet domain add contoso contoso.com
show signet records contoso.com
show signet dkim get contoso.com --format table

step "Enable DKIM for contoso.com: signet finds the customer's CNAMEs through the resolver"
show signet dkim set contoso.com --enabled true
signet dkim get contoso.com --format json >"$work/config.json"
python3 - "$work/config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config = config[0] if isinstance(config, list) else config
assert config["enabled"] and config["status"] == "Valid", config
print(f'status {config["status"]}, signing as d={config["signing_domain"]} s={config["signing_selector"]}')
EOF

step "Who may send: a relay connector for loopback, and a submission login"
show signet connector add contoso lan --from 127.0.0.1/32
printf '$ echo ... | signet connector add contoso app --login app@contoso.com --password-stdin\n'
echo 'a long passphrase' | signet connector add contoso app --login app@contoso.com --password-stdin

step "Run it: key zone DNS on $dns_port, relay on $relay_port, submission on $submission_port"
printf '$ signet serve --dns-listen 127.0.0.1:%s --relay-listen 127.0.0.1:%s --submission-listen 127.0.0.1:%s --http-listen 127.0.0.1:%s &\n' \
  "$dns_port" "$relay_port" "$submission_port" "$http_port"
# The binary itself in the background (not the `signet` function: that would run in a subshell
# whose pid is not the server's).
"$SIGNET" --data-dir "$data" serve --dns-listen "127.0.0.1:$dns_port" --relay-listen "127.0.0.1:$relay_port" \
  --submission-listen "127.0.0.1:$submission_port" --http-listen "127.0.0.1:$http_port" >"$work/signet.log" 2>&1 &
pids+=($!)
wait_for 20 "signet's DNS server" answers "$dns_port" SOA "$zone"
wait_for 20 "signet's listeners" grep -q 'ready:' "$work/signet.log"
show dig @127.0.0.1 -p "$unbound_port" +short TXT selector1._domainkey.contoso.com

message() { # FROM TO SUBJECT
  printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@contoso.com>\r\n\r\nHello from the quick start.\r\n' \
    "$1" "$2" "$3" "$(date -R)" "$RANDOM$RANDOM"
}
delivered_at_least() { [ "$(find "$work/delivered" -type f | wc -l)" -ge "$1" ]; }
# verify_delivered N SELECTOR: the Nth delivered message verifies in dkimpy as d=contoso.com s=SELECTOR.
verify_delivered() {
  local want=$1 selector=$2
  wait_for 20 "message $want at the sink" delivered_at_least "$want"
  sleep 0.5 # smtp-sink writes while the data arrives
  local file
  file=$(ls -tr "$work"/delivered/* | sed -n "${want}p")
  grep -o "s=$selector;" "$file" >/dev/null || {
    echo "quickstart: $file is not signed with s=$selector" >&2
    grep -A3 '^DKIM-Signature' "$file" >&2
    return 1
  }
  # smtp-sink writes LF line ends; DKIM is defined over CRLF.
  printf '$ dkimpy verifies %s (d=contoso.com; s=%s): ' "$(basename "$file")" "$selector"
  sed 's/\r$//; s/$/\r/' "$file" | python3 "$root/tests/peers/dkimpy_verify_dns.py" "127.0.0.1:$unbound_port"
}

step "Send through the relay (from a connector network) and through submission (STARTTLS + AUTH)"
message joe@contoso.com ann@example.org "via the relay" >"$work/relay.eml"
show swaks --silent 2 --server "127.0.0.1:$relay_port" --from joe@contoso.com --to ann@example.org \
  --data "@$work/relay.eml"
verify_delivered 1 selector1
message app@contoso.com ann@example.org "via submission" >"$work/submission.eml"
show swaks --silent 2 --server "127.0.0.1:$submission_port" --tls --auth PLAIN \
  --auth-user app@contoso.com --auth-password 'a long passphrase' \
  --from app@contoso.com --to ann@example.org --data "@$work/submission.eml"
verify_delivered 2 selector1

step "Rotate: a new key in selector2 takes over once its date has passed and it is seen in DNS"
show signet dkim rotate contoso.com
signing_selector() {
  signet dkim get contoso.com --format json |
    python3 -c 'import json, sys; c = json.load(sys.stdin); c = c[0] if isinstance(c, list) else c; print(c["signing_selector"])'
}
printf 'waiting for the switch-over'
deadline=$((SECONDS + 60))
until [ "$(signing_selector)" = selector2 ]; do
  ((SECONDS < deadline)) || { echo; echo "quickstart: no switch-over within 60 s" >&2; exit 1; }
  printf '.'
  sleep 1
done
echo
show signet dkim get contoso.com --format table
sleep 1.2 # the gateway reads configs through a cache at most a second old
message joe@contoso.com ann@example.org "after the rotation" >"$work/rotated.eml"
show swaks --silent 2 --server "127.0.0.1:$relay_port" --from joe@contoso.com --to ann@example.org \
  --data "@$work/rotated.eml"
verify_delivered 3 selector2

step "Who changed what (the detail column cut short here)"
printf '$ signet audit\n'
signet audit | cut -c1-100

echo
echo "quickstart: all steps passed"
