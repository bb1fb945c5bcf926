#!/usr/bin/env python3
"""Verify every DKIM signature of a message (stdin) with dkimpy, DNS from a records file.

usage: dkimpy_verify.py RECORDS [--arc] < message
RECORDS: one `name value` per line (a TXT value), or signet's `name TXT value`.
Prints `sig N: d=D s=S a=A -> pass|fail`; exit 0 when there is a signature and all pass.
With --arc, validates the ARC chain instead: prints `cv=...`, exit 0 when cv=pass.
"""
import sys

import dkim


def load(path):
    records = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            name, value = line.split(None, 1)
            if value.startswith('TXT '):
                value = value[4:]
            records[name.rstrip('.').lower()] = value.encode()
    return records


def main():
    records = load(sys.argv[1])
    message = sys.stdin.buffer.read()
    dnsfunc = lambda name, timeout=5: records.get(name.decode().rstrip('.').lower())
    if '--arc' in sys.argv[2:]:
        cv, results, comment = dkim.arc_verify(message, dnsfunc=dnsfunc)
        print(f'cv={cv.decode()} ({comment})')
        for result in results:
            print(result)
        sys.exit(0 if cv == b'pass' else 1)
    verifier = dkim.DKIM(message, minkey=1024)
    count = sum(1 for h in verifier.headers if h[0].lower() == b'dkim-signature')
    ok = count > 0
    for index in range(count):
        try:
            passed = verifier.verify(idx=index, dnsfunc=dnsfunc)
        except Exception as error:  # dkimpy raises on malformed input
            passed = False
            print(f'sig {index}: error {error}', file=sys.stderr)
        tags = dict(verifier.signature_fields) if verifier.signature_fields else {}
        d = tags.get(b'd', b'?').decode()
        s = tags.get(b's', b'?').decode()
        a = tags.get(b'a', b'?').decode()
        print(f'sig {index}: d={d} s={s} a={a} -> {"pass" if passed else "fail"}')
        ok = ok and passed
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
