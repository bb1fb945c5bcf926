#!/usr/bin/env python3
"""Verify every DKIM signature of the message on stdin with dkimpy, resolving keys by asking
the DNS server at ADDR:PORT (signet's own server) through dnspython.

usage: dkimpy_verify_dns.py 127.0.0.1:5300 < message.eml
Prints "pass" or "fail" and exits 0 on pass, 1 on fail.
"""
import sys

import dkim
import dns.flags
import dns.message
import dns.query
import dns.rdatatype


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    port = int(port)

    def dnsfunc(name, timeout=5):
        query = dns.message.make_query(name.decode() if isinstance(name, bytes) else name, dns.rdatatype.TXT)
        response = dns.query.udp(query, host, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, host, port=port, timeout=timeout)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rdata in rrset:
                    return b"".join(rdata.strings)
        return None

    message = sys.stdin.buffer.read()
    verifier = dkim.DKIM(message)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        try:
            results.append(verifier.verify(idx=index, dnsfunc=dnsfunc))
        except Exception as error:  # a missing or broken key is a failed verification
            print(f"signature {index}: {error}", file=sys.stderr)
            results.append(False)
    ok = bool(results) and all(results)
    print("pass" if ok else "fail")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
