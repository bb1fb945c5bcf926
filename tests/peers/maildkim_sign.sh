#!/bin/sh
# Sign a message with Mail::DKIM (dkimproxy-sign), relaxed/relaxed rsa-sha256, and print the
# signed message with CRLF line ends.  usage: maildkim_sign.sh SELECTOR DOMAIN KEY MESSAGE
set -eu
header=$(dkimproxy-sign --type dkim --algorithm rsa-sha256 --method relaxed/relaxed \
    --selector "$1" --domain "$2" --key "$3" < "$4")
{ printf '%s\n' "$header"; cat "$4"; } | sed 's/\r$//; s/$/\r/'
