#!/usr/bin/env python3
"""Verify every DKIM signature of the message on stdin with dkimpy, taking key records from a
file of `name value` lines instead of DNS (dkimpy's own `dnsfunc` hook).

usage: dkimpy_verify.py RECORDS < message.eml   -> prints pass/fail, exit 0 only if all pass
"""
import sys

import dkim


def main():
    records = {}
    with open(sys.argv[1]) as f:
        for line in f:
            name, _, value = line.strip().partition(" ")
            if name:
                records[name.rstrip(".").lower()] = value.encode()

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip(".").lower())

    message = sys.stdin.buffer.read()
    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    ok = count > 0 and all(verifier.verify(idx=i, dnsfunc=dnsfunc) for i in range(count))
    print("pass" if ok else "fail")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
