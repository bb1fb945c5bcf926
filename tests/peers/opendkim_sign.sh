#!/bin/sh
# Sign a message with OpenDKIM's test mode and print the signed message with CRLF line ends.
# usage: opendkim_sign.sh CONF MESSAGE   (CONF: Mode s, Domain, Selector, KeyFile, ...)
set -eu
conf=$1
message=$2
header=$(opendkim -x "$conf" -t "$message" 2>&1 | sed -n '/^DKIM-Signature:/,$p')
[ -n "$header" ] || { echo "opendkim produced no signature" >&2; exit 1; }
{ printf '%s\n' "$header"; cat "$message"; } | sed 's/\r$//; s/$/\r/'
