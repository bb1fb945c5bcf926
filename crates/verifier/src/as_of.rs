//! Verifying a signature as of an earlier time (`signet verify --at`).
//!
//! mail-auth checks `x=` against the system clock and offers no way to pass a time in, so a
//! signature that has expired since could not be checked at all. For that case only, this
//! module verifies the signature itself (RFC 6376 sections 3.4, 3.7 and 5.4 with OpenSSL): the
//! body hash, the header hash over the `h=` fields, and the RSA or Ed25519 signature.

use mail_auth::crypto::Algorithm;
use mail_auth::dkim::{Canonicalization, Signature};
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::{AuthenticatedMessage, MessageAuthenticator};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

/// `Ok` when the signature verifies, ignoring `x=`; otherwise why not.
pub(crate) async fn verify(
    authenticator: &MessageAuthenticator,
    message: &AuthenticatedMessage<'_>,
    signature: &Signature,
) -> Result<(), String> {
    let headers = message.headers();
    let (name, value) = headers
        .iter()
        .find(|(name, value)| {
            name.eq_ignore_ascii_case(b"DKIM-Signature") && signature_bytes(value) == signature.b
        })
        .ok_or("the signature header could not be found again")?;
    let body = canonical_body(message.raw_body(), signature.cb);
    let body = match usize::try_from(signature.l) {
        Ok(limit) if limit > 0 && limit < body.len() => &body[..limit],
        _ => &body[..],
    };
    if openssl::sha::sha256(body).as_slice() != signature.bh.as_slice() {
        return Err("body hash mismatch: the body was changed after signing".into());
    }
    let mut data = Vec::new();
    let mut used = vec![false; headers.len()];
    for wanted in &signature.h {
        let found = (0..headers.len())
            .rev()
            .find(|&i| !used[i] && headers[i].0.eq_ignore_ascii_case(wanted.as_bytes()));
        if let Some(index) = found {
            used[index] = true;
            canonical_header(&mut data, headers[index].0, headers[index].1, signature.ch);
        }
    }
    let mut own = Vec::new();
    canonical_header(&mut own, name, &without_b(value), signature.ch);
    if own.ends_with(b"\r\n") {
        own.truncate(own.len() - 2);
    }
    data.extend_from_slice(&own);
    let key = public_key(authenticator, signature).await?;
    let verified = match signature.a {
        Algorithm::Ed25519Sha256 => {
            let digest = openssl::sha::sha256(&data);
            Verifier::new_without_digest(&key)
                .and_then(|mut v| v.verify_oneshot(&signature.b, &digest))
        }
        Algorithm::RsaSha256 => Verifier::new(MessageDigest::sha256(), &key).and_then(|mut v| {
            v.update(&data)?;
            v.verify(&signature.b)
        }),
        _ => return Err("unsupported algorithm".into()),
    };
    match verified {
        Ok(true) => Ok(()),
        _ => Err("signature did not verify: a signed header field was changed, or the published key does not match".into()),
    }
}

fn signature_bytes(value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    text.split(';')
        .filter_map(|tag| tag.split_once('='))
        .find(|(name, _)| name.trim() == "b")
        .and_then(|(_, b)| {
            let compact: String = b.chars().filter(|c| !c.is_whitespace()).collect();
            openssl::base64::decode_block(&compact).ok()
        })
        .unwrap_or_default()
}

/// The header value with the `b=` tag's value (and its surrounding whitespace) removed.
fn without_b(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut start = 0;
    for part in value.split(|&c| c == b';') {
        let end = start + part.len();
        let name_end = part.iter().position(|&c| c == b'=');
        let is_b = name_end.is_some_and(|at| part[..at].trim_ascii() == b"b");
        if is_b {
            let at = name_end.unwrap_or(0);
            out.extend_from_slice(&part[..=at]);
            // Keep a folding line end at the very end of the header, if the b= tag was last.
            if part.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        } else {
            out.extend_from_slice(part);
        }
        if end < value.len() {
            out.push(b';');
        }
        start = end + 1;
    }
    out
}

fn canonical_header(
    out: &mut Vec<u8>,
    name: &[u8],
    value: &[u8],
    canonicalization: Canonicalization,
) {
    match canonicalization {
        Canonicalization::Simple => {
            out.extend_from_slice(name);
            out.push(b':');
            out.extend_from_slice(value);
        }
        Canonicalization::Relaxed => {
            out.extend(name.trim_ascii().iter().map(u8::to_ascii_lowercase));
            out.push(b':');
            let mut pending_space = false;
            let mut started = false;
            for &byte in value {
                match byte {
                    b'\r' | b'\n' => {}
                    b' ' | b'\t' => pending_space = started,
                    other => {
                        if pending_space {
                            out.push(b' ');
                        }
                        out.push(other);
                        pending_space = false;
                        started = true;
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn canonical_body(body: &[u8], canonicalization: Canonicalization) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        lines.push(match canonicalization {
            Canonicalization::Simple => line.to_vec(),
            Canonicalization::Relaxed => relaxed_line(line),
        });
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    if lines.is_empty() {
        return match canonicalization {
            Canonicalization::Simple => b"\r\n".to_vec(),
            Canonicalization::Relaxed => Vec::new(),
        };
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    for line in lines {
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn relaxed_line(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut pending_space = false;
    for &byte in line {
        if byte == b' ' || byte == b'\t' {
            pending_space = true;
        } else {
            if pending_space {
                out.push(b' ');
            }
            out.push(byte);
            pending_space = false;
        }
    }
    out
}

async fn public_key(
    authenticator: &MessageAuthenticator,
    signature: &Signature,
) -> Result<PKey<Public>, String> {
    let name = format!("{}._domainkey.{}.", signature.s, signature.d);
    let lookup = authenticator
        .resolver()
        .txt_lookup(name.clone())
        .await
        .map_err(|e| format!("key lookup at {name} failed: {e}"))?;
    let text: String = lookup
        .answers()
        .iter()
        .find_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .ok_or_else(|| format!("key not found at {name}"))?;
    let tag = |wanted: &str| {
        text.split(';')
            .filter_map(|t| t.split_once('='))
            .find(|(k, _)| k.trim() == wanted)
            .map(|(_, v)| v.chars().filter(|c| !c.is_whitespace()).collect::<String>())
    };
    let encoded = tag("p")
        .filter(|p| !p.is_empty())
        .ok_or("key revoked (empty p=)")?;
    let bytes = openssl::base64::decode_block(&encoded).map_err(|_| "key is not base64")?;
    let key = if tag("k").is_some_and(|k| k.eq_ignore_ascii_case("ed25519")) {
        PKey::public_key_from_raw_bytes(&bytes, Id::ED25519)
    } else {
        PKey::public_key_from_der(&bytes).or_else(|_| {
            openssl::rsa::Rsa::public_key_from_der_pkcs1(&bytes).and_then(PKey::from_rsa)
        })
    };
    key.map_err(|_| format!("the key at {name} is malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_value_is_emptied_and_bh_kept() {
        assert_eq!(
            without_b(b" v=1; bh=abc;\r\n b=xy\r\n z;\r\n"),
            b" v=1; bh=abc;\r\n b=;\r\n"
        );
        assert_eq!(without_b(b" a=1; b=xyz\r\n"), b" a=1; b=\r\n");
    }

    #[test]
    fn bodies_canonicalize() {
        assert_eq!(
            canonical_body(b"a  b \r\n\r\n", Canonicalization::Relaxed),
            b"a b\r\n"
        );
        assert_eq!(canonical_body(b"", Canonicalization::Simple), b"\r\n");
        assert_eq!(
            canonical_body(b"x \r\n\r\n", Canonicalization::Simple),
            b"x \r\n"
        );
    }
}
