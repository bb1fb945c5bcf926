#!/bin/sh
# Verify a message with OpenDKIM's test mode, DNS from a records file (`name value` lines).
# Prints OpenDKIM's verdict line; exit 0 only when it says "succeeded".
set -eu
records=$1
message=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'Mode v\nSyslog no\nTestDNSData file:%s\n' "$records" > "$work/verify.conf"
out=$(opendkim -x "$work/verify.conf" -t "$message" 2>&1 || true)
printf '%s\n' "$out"
printf '%s\n' "$out" | grep -q "succeeded"
