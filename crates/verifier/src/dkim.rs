//! DKIM: mail-auth's verdict per signature, then signet's policy on top of it (RFC 8301,
//! `l=`, duplicate `From`, `--at`), each result with a reason an administrator can act on.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mail_auth::crypto::{Algorithm, CryptoError};
use mail_auth::dkim::{Canonicalization, DkimError, DomainKey, Signature};
use mail_auth::dns::TxtRecordParser;
use mail_auth::hickory_resolver::proto::rr::{Name, RData};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsCache, DnsError, Error, MessageAuthenticator, NoCache,
    Parameters, ResolverCache, TxtRecord,
};

use crate::as_of;
use crate::report::{AuthResult, DkimReport};

/// RFC 8301 section 3.2: verifiers must not accept RSA keys under this size.
const MINIMUM_RSA_BITS: u32 = 1024;

pub(crate) async fn verify(
    authenticator: &MessageAuthenticator,
    memo: &KeyMemo,
    message: &AuthenticatedMessage<'_>,
    now: u64,
    explicit_time: bool,
) -> Vec<DkimReport> {
    let mut reports = Vec::with_capacity(message.dkim_signatures().len());
    reports.extend(
        message
            .errors()
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case(b"DKIM-Signature"))
            .map(|header| malformed(header.value, &header.header)),
    );
    let from_headers = message
        .headers()
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"From"))
        .count();
    // Only an l= signature needs the canonical body length; skip the pass otherwise.
    let any_limit = message.dkim_signatures().iter().any(|h| h.header.l > 0);
    let body_length = if any_limit {
        canonical_body_lengths(message.raw_body())
    } else {
        (0, 0)
    };
    let keys = read_keys(authenticator, memo, message).await;
    let outputs = authenticator
        .verify_dkim(Parameters::new(message).with_cache(&keys))
        .await;
    for output in outputs {
        let Some(signature) = output.signature() else {
            continue; // Malformed headers, reported above from the raw text.
        };
        let key = keys.info(signature);
        let (mut result, mut reason) = classify(output.result(), signature);
        if explicit_time && expired_now_but_not_then(output.result(), signature, now) {
            (result, reason) = match as_of::verify(authenticator, message, signature).await {
                Ok(()) => (
                    AuthResult::Pass,
                    format!(
                        "signature verified as of the given time (it expires at x={})",
                        signature.x
                    ),
                ),
                Err(why) => (AuthResult::Fail, why),
            };
        }
        let policy = Policy {
            key_bits: key.bits,
            from_headers,
            body_length: match signature.cb {
                Canonicalization::Simple => body_length.0,
                Canonicalization::Relaxed => body_length.1,
            },
            now,
            explicit_time,
        };
        if let Some((overridden, why)) = policy.apply(signature, result) {
            result = overridden;
            reason = why;
        }
        reports.push(DkimReport {
            domain: signature.d.clone(),
            selector: signature.s.clone(),
            algorithm: algorithm_name(signature.a).to_string(),
            result,
            reason,
            key_type: key.kind.map(Cow::into_owned),
            key_bits: key.bits,
            header_canonicalization: canonicalization_name(signature.ch).to_string(),
            body_canonicalization: canonicalization_name(signature.cb).to_string(),
            signed_headers: signature.h.clone(),
            identity: (!signature.i.is_empty()).then(|| signature.i.clone()),
            body_length_limit: (signature.l > 0).then_some(signature.l),
            signed_at: (signature.t > 0).then_some(signature.t),
            expires_at: (signature.x > 0).then_some(signature.x),
            signature_prefix: signature_prefix(&signature.b),
        });
    }
    reports
}

/// The first 8 base64 characters of `b=`: those of its first 6 bytes, so only they are encoded
/// (the whole signature is 256 bytes or more for RSA), here rather than through OpenSSL's
/// encoder and its buffers, once per signature.
fn signature_prefix(signature: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut prefix = String::with_capacity(8);
    for chunk in signature[..signature.len().min(6)].chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                prefix.push(char::from(ALPHABET[(group >> (18 - 6 * i)) as usize & 63]));
            } else {
                prefix.push('=');
            }
        }
    }
    prefix
}

/// mail-auth judged `x=` by the system clock; as of `now` the signature was still valid.
fn expired_now_but_not_then(result: &DkimResult, signature: &Signature, now: u64) -> bool {
    matches!(
        result,
        DkimResult::Neutral(Error::Dkim(DkimError::SignatureExpired))
    ) && signature.x > signature.t
        && now <= signature.x
}

/// signet's rules applied after the cryptographic verdict.
struct Policy {
    key_bits: Option<u32>,
    from_headers: usize,
    body_length: u64,
    now: u64,
    explicit_time: bool,
}

impl Policy {
    fn apply(&self, signature: &Signature, result: AuthResult) -> Option<(AuthResult, String)> {
        // Format and algorithm refusals stand whatever DNS says: no retry can make them pass.
        if signature.v != 1 {
            // RFC 6376 section 3.5: v=1 is required; signatures without it are pre-RFC drafts.
            return Some((
                AuthResult::Neutral,
                "malformed signature: v= is missing or not 1 (a pre-RFC 6376 draft signature)"
                    .into(),
            ));
        }
        if signature.a == Algorithm::RsaSha1 {
            return Some((
                AuthResult::Policy,
                "rsa-sha1 signatures are not accepted (RFC 8301)".into(),
            ));
        }
        if result == AuthResult::TempError {
            return None; // Unknown yet: a retry may succeed; policy speaks after that.
        }
        if let (Algorithm::RsaSha256, Some(bits)) = (signature.a, self.key_bits)
            && bits < MINIMUM_RSA_BITS
        {
            return Some((
                AuthResult::Policy,
                format!("RSA key of {bits} bits is under the 1024-bit minimum (RFC 8301)"),
            ));
        }
        if self.explicit_time
            && signature.x > 0
            && self.now > signature.x
            && result == AuthResult::Pass
        {
            return Some((
                AuthResult::Neutral,
                format!(
                    "signature expired: x={} is before the verification time",
                    signature.x
                ),
            ));
        }
        if result != AuthResult::Pass {
            return None;
        }
        // mail-auth 0.15 refuses l= signatures when parsing (see `malformed`); this stays so
        // that a version accepting them still cannot vouch for an unsigned tail.
        if signature.l > 0 && signature.l < self.body_length {
            return Some((
                AuthResult::Policy,
                format!(
                    "l={} signs only the first {} of {} body bytes; the rest is unsigned and may have been appended",
                    signature.l, signature.l, self.body_length
                ),
            ));
        }
        if self.from_headers > 1 {
            return Some((
                AuthResult::Policy,
                format!(
                    "the message has {} From header fields (RFC 5322 allows one); a signature cannot vouch for the one shown",
                    self.from_headers
                ),
            ));
        }
        None
    }
}

fn classify(result: &DkimResult, signature: &Signature) -> (AuthResult, String) {
    // Only the reasons about the key name it; a pass (the common case) formats nothing more.
    let key_name = || format!("{}._domainkey.{}", signature.s, signature.d);
    match result {
        DkimResult::Pass => {
            let note = if signature.l > 0 {
                " (l= present, covering the whole body)"
            } else {
                ""
            };
            (AuthResult::Pass, format!("signature verified{note}"))
        }
        DkimResult::Neutral(error) => match error {
            Error::Dkim(DkimError::BodyHashMismatch) => (
                AuthResult::Fail,
                "body hash mismatch: the body was changed after signing".into(),
            ),
            Error::Dkim(DkimError::SignatureExpired) => (
                AuthResult::Neutral,
                format!("signature expired (x={})", signature.x),
            ),
            other => (AuthResult::Neutral, describe(other, &key_name())),
        },
        DkimResult::Fail(error) => match error {
            Error::Crypto(CryptoError::FailedVerification | CryptoError::Library(_)) => (
                AuthResult::Fail,
                "signature did not verify: a signed header field was changed, or the published key does not match".into(),
            ),
            Error::Dkim(DkimError::AuidMismatch) => (
                AuthResult::PermError,
                "i= is not within d=, or the key's t=s flag forbids a subdomain i=".into(),
            ),
            other => (AuthResult::Fail, describe(other, &key_name())),
        },
        DkimResult::PermError(error) => (AuthResult::PermError, describe(error, &key_name())),
        DkimResult::TempError(error) => (AuthResult::TempError, describe(error, &key_name())),
        DkimResult::None => (AuthResult::None, "no signature".into()),
    }
}

fn describe(error: &Error, key_name: &str) -> String {
    match error {
        Error::Dns(DnsError::RecordNotFound(code)) => {
            format!("key not found: no TXT record at {key_name} ({code})")
        }
        Error::Dns(DnsError::InvalidRecordType) => {
            format!("key not found: the TXT record at {key_name} is not a DKIM key")
        }
        Error::Dns(DnsError::Resolver(detail)) => {
            format!("DNS lookup of {key_name} failed ({detail}); try again later")
        }
        Error::Dkim(DkimError::PublicKeyRevoked) => {
            format!("key revoked: {key_name} publishes an empty p=")
        }
        Error::Dkim(DkimError::UnsupportedKeyType) => {
            format!("the key at {key_name} has an unsupported type")
        }
        Error::Dkim(DkimError::UnsupportedAlgorithm) => "unsupported signing algorithm".into(),
        Error::Dkim(DkimError::UnsupportedVersion) => "unsupported DKIM version".into(),
        Error::Dkim(DkimError::UnsupportedCanonicalization) => {
            "unsupported canonicalization".into()
        }
        Error::Crypto(CryptoError::IncompatibleAlgorithms) => {
            format!("the key at {key_name} does not match the signature's algorithm")
        }
        Error::Crypto(CryptoError::MalformedPublicKey) | Error::Base64 | Error::Parse => {
            format!("the key record at {key_name} is malformed")
        }
        Error::MissingParameters => "a required tag is missing".into(),
        other => other.to_string(),
    }
}

/// A `DKIM-Signature` mail-auth could not parse: reported with whatever tags can be read.
fn malformed(value: &[u8], error: &Error) -> DkimReport {
    let text = String::from_utf8_lossy(value);
    let tag = |name: &str| {
        text.split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| key.trim() == name)
            .map(|(_, value)| value.split_whitespace().collect::<String>())
            .unwrap_or_default()
    };
    let reason = match error {
        Error::Dkim(DkimError::UnsupportedVersion) => "malformed signature: v= is missing or not 1",
        Error::Dkim(DkimError::UnsupportedAlgorithm) => {
            "malformed signature: unsupported algorithm in a="
        }
        Error::Dkim(DkimError::UnsupportedCanonicalization) => {
            "malformed signature: unsupported canonicalization in c="
        }
        Error::MissingParameters => "malformed signature: a required tag is missing",
        Error::Base64 => "malformed signature: b= or bh= is not valid base64",
        Error::Dkim(DkimError::BodyLengthTag) => {
            "the signature has l= (a body length limit): content after the signed length could \
             have been appended, so signet does not accept it"
        }
        _ => "malformed signature: it could not be parsed",
    };
    // An l= signature is well-formed but unacceptable: policy, in RFC 8601's words.
    let result = if matches!(error, Error::Dkim(DkimError::BodyLengthTag)) {
        AuthResult::Policy
    } else {
        AuthResult::Neutral
    };
    DkimReport {
        domain: tag("d"),
        selector: tag("s"),
        algorithm: tag("a"),
        result,
        reason: format!("{reason} ({error})"),
        key_type: None,
        key_bits: None,
        header_canonicalization: String::new(),
        body_canonicalization: String::new(),
        signed_headers: tag("h")
            .split(':')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect(),
        identity: None,
        body_length_limit: tag("l").parse().ok(),
        signed_at: None,
        expires_at: None,
        signature_prefix: tag("b").chars().take(8).collect(),
    }
}

#[derive(Debug, Clone, Default)]
struct KeyInfo {
    /// `k=` as published: "rsa" (also when absent) and "ed25519" need no allocation.
    kind: Option<Cow<'static, str>>,
    bits: Option<u32>,
}

/// The name mail-auth looks a signature's key up at (and keys its cache by).
fn key_name(signature: &Signature) -> String {
    let mut name = String::with_capacity(signature.s.len() + signature.d.len() + 13);
    name.push_str(&signature.s);
    name.push_str("._domainkey.");
    name.push_str(&signature.d);
    name.push('.');
    name.make_ascii_lowercase();
    name
}

/// Whether `name` (from [`key_name`]) is the key name of `signature`, without formatting it.
fn is_key_name(name: &str, signature: &Signature) -> bool {
    const LABEL: &[u8] = b"._domainkey.";
    let (name, selector, domain) = (
        name.as_bytes(),
        signature.s.as_bytes(),
        signature.d.as_bytes(),
    );
    name.len() == selector.len() + LABEL.len() + domain.len() + 1
        && name[..selector.len()].eq_ignore_ascii_case(selector)
        && name[selector.len()..].starts_with(LABEL)
        && name[selector.len() + LABEL.len()..name.len() - 1].eq_ignore_ascii_case(domain)
        && name.ends_with(b".")
}

/// The keys of one verification. signet reads each signature's key record once, measures the
/// key from exactly those bytes (the RFC 8301 size rule and the report), and hands mail-auth
/// the key parsed from the same answer through its cache seam. mail-auth keeps its parsed key
/// private, so without this the record was read twice, and the two reads could in principle
/// see different records. A message has a signature or two: lists, not hash maps.
#[derive(Default)]
struct Keys {
    answers: KeyAnswers,
    info: Vec<(String, KeyInfo)>,
}

impl Keys {
    fn info(&self, signature: &Signature) -> KeyInfo {
        self.info
            .iter()
            .find(|(name, _)| is_key_name(name, signature))
            .map(|(_, info)| info.clone())
            .unwrap_or_default()
    }

    fn has_info(&self, name: &str) -> bool {
        self.info.iter().any(|(have, _)| have == name)
    }
}

/// mail-auth's TXT cache for one verification: what signet read, plus whatever mail-auth looks
/// up itself (names signet's read could not answer). Dropped with the verification, so nothing
/// outlives the answers the resolver gave for this message.
#[derive(Default)]
struct KeyAnswers(Mutex<Vec<(Box<str>, TxtRecord)>>);

impl ResolverCache<Box<str>, TxtRecord> for KeyAnswers {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        lock(&self.0)
            .iter()
            .find(|(have, _)| have.borrow() == name)
            .map(|(_, record)| record.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut answers = lock(&self.0);
        let index = answers.iter().position(|(have, _)| have.borrow() == name)?;
        Some(answers.swap_remove(index).1)
    }

    fn insert(&self, key: Box<str>, value: TxtRecord, _valid_until: std::time::Instant) {
        let mut answers = lock(&self.0);
        match answers.iter_mut().find(|(have, _)| *have == key) {
            Some((_, record)) => *record = value,
            None => answers.push((key, value)),
        }
    }
}

impl DnsCache for Keys {
    type Txt = KeyAnswers;
    type Mx = NoCache;
    type Ipv4 = NoCache;
    type Ipv6 = NoCache;
    type Ptr = NoCache;

    fn txt(&self) -> Option<&KeyAnswers> {
        Some(&self.answers)
    }
    fn mx(&self) -> Option<&NoCache> {
        None
    }
    fn ipv4(&self) -> Option<&NoCache> {
        None
    }
    fn ipv6(&self) -> Option<&NoCache> {
        None
    }
    fn ptr(&self) -> Option<&NoCache> {
        None
    }
}

/// What a verifier keeps between verifications, shared by all of them: parsed keys by the
/// exact bytes of the records they came from, and each key name's last answer for as long as
/// the resolver would itself answer from its cache.
///
/// * `parsed` is keyed by value, not by time: a selector that starts publishing a different
///   record is parsed afresh at once, so a weak key can never be judged by an old key's size.
/// * `answers` saves asking the resolver again (its cache costs about as much as the rest of
///   signet's work on a message): a name's answer is reused until the instant the resolver gave
///   with it (`Lookup::valid_until`, the answer's TTL as its cache counts it) less a second,
///   so never past the moment the resolver would stop serving that answer and ask again. A
///   changed record is therefore seen no later than before, when the answer's TTL runs out
///   (the resolver's cache, when full, may also drop an answer early; this memo only empties
///   when it reaches `MEMO_LIMIT` names). Only answers are kept; failures and missing names
///   always go to the resolver. The record, the key mail-auth checks with and the size signet
///   judges always come from the one answer. Nothing about a message or a verdict is kept.
#[derive(Default)]
pub(crate) struct KeyMemo {
    parsed: Mutex<HashMap<Records, (TxtRecord, KeyInfo)>>,
    answers: Mutex<HashMap<Box<str>, Answer>>,
}

/// A key name's last answer, and until when it may be reused.
struct Answer {
    until: Instant,
    record: TxtRecord,
    info: KeyInfo,
}

/// The TXT records at a key name, each with its character-strings joined.
type Records = Vec<Vec<u8>>;

/// Enough for every selector a busy receiver sees in a while; past it the memo starts over
/// rather than grow without bound on a stream of distinct (possibly hostile) records.
const MEMO_LIMIT: usize = 4096;

/// How much earlier than the resolver an answer stops being reused. The resolver's cache
/// hands out `valid_until` rounded up to the next whole second of remaining TTL (it counts
/// elapsed time in whole seconds), so a second less is never later than its own expiry.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

impl KeyMemo {
    fn parsed(&self, records: Records) -> (TxtRecord, KeyInfo) {
        if let Some(hit) = lock(&self.parsed).get(&records) {
            return hit.clone();
        }
        let parsed = (
            TxtRecord::from(DomainKey::parse_records(&records)),
            key_info(&records),
        );
        let mut memo = lock(&self.parsed);
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(records, parsed.clone());
        parsed
    }

    /// The answer the resolver last gave for `name`, if it is still current at `now`.
    fn answer(&self, name: &str, now: Instant) -> Option<(TxtRecord, KeyInfo)> {
        let answers = lock(&self.answers);
        let answer = answers.get(name).filter(|answer| now < answer.until)?;
        Some((answer.record.clone(), answer.info.clone()))
    }

    /// Keeps the resolver's answer for `name`, valid (as the resolver said) until `valid_until`.
    fn remember(&self, name: &str, valid_until: Instant, record: &TxtRecord, info: &KeyInfo) {
        let Some(until) = valid_until.checked_sub(ANSWER_MARGIN) else {
            return;
        };
        let mut answers = lock(&self.answers);
        if answers.len() >= MEMO_LIMIT && !answers.contains_key(name) {
            answers.clear();
        }
        answers.insert(
            name.into(),
            Answer {
                until,
                record: record.clone(),
                info: info.clone(),
            },
        );
    }

    /// The resolver gave no answer for `name` this time: nothing old stands in for it.
    fn forget(&self, name: &str) {
        lock(&self.answers).remove(name);
    }
}

impl std::fmt::Debug for KeyMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMemo")
            .field("records", &lock(&self.parsed).len())
            .field("answers", &lock(&self.answers).len())
            .finish()
    }
}

/// A poisoned lock only means another verification panicked mid-insert; the map is still a
/// valid cache.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One TXT read per distinct key name (or the resolver's answer of a previous message while it
/// is current, see [`KeyMemo`]). A name that does not exist is left to mail-auth (its own
/// lookup reports it with the response code); a failed lookup is recorded as mail-auth would
/// record it, so a timeout is waited for once, not twice.
async fn read_keys(
    authenticator: &MessageAuthenticator,
    memo: &KeyMemo,
    message: &AuthenticatedMessage<'_>,
) -> Keys {
    let signatures = message.dkim_signatures().len();
    let mut keys = Keys {
        answers: KeyAnswers(Mutex::new(Vec::with_capacity(signatures))),
        info: Vec::with_capacity(signatures),
    };
    for header in message.dkim_signatures() {
        let name = key_name(&header.header);
        if keys.has_info(&name) {
            continue;
        }
        if let Some((record, info)) = memo.answer(&name, Instant::now()) {
            keys.info.push((name.clone(), info));
            lock(&keys.answers.0).push((name.into_boxed_str(), record));
            continue;
        }
        let Ok(query) = Name::from_str_relaxed(name.as_str()) else {
            continue;
        };
        let record = match authenticator.resolver().txt_lookup(query).await {
            Ok(lookup) => {
                let records = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::TXT(txt) => Some(txt.txt_data.concat()),
                        _ => None,
                    })
                    .collect();
                let (record, info) = memo.parsed(records);
                memo.remember(&name, lookup.valid_until(), &record, &info);
                keys.info.push((name.clone(), info));
                record
            }
            Err(error) if error.is_no_records_found() => {
                memo.forget(&name);
                continue;
            }
            Err(error) => {
                memo.forget(&name);
                TxtRecord::Error(Error::Dns(DnsError::Resolver(error.to_string())))
            }
        };
        lock(&keys.answers.0).push((name.into_boxed_str(), record));
    }
    keys
}

/// The published key's type and size, for the report and the RFC 8301 size rule.
fn key_info(records: &[Vec<u8>]) -> KeyInfo {
    for text in records {
        let text = String::from_utf8_lossy(text);
        let tags: Vec<(&str, String)> = text
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.trim(), v.split_whitespace().collect()))
            .collect();
        let Some((_, public_key)) = tags.iter().find(|(k, _)| *k == "p") else {
            continue;
        };
        let kind: Cow<'static, str> = match tags.iter().find(|(k, _)| *k == "k") {
            None => "rsa".into(),
            Some((_, v)) if v.eq_ignore_ascii_case("rsa") => "rsa".into(),
            Some((_, v)) if v.eq_ignore_ascii_case("ed25519") => "ed25519".into(),
            Some((_, v)) => v.to_ascii_lowercase().into(),
        };
        let bits = match kind.as_ref() {
            "ed25519" => Some(256),
            "rsa" => rsa_bits(public_key),
            _ => None,
        };
        return KeyInfo {
            kind: Some(kind),
            bits,
        };
    }
    KeyInfo::default()
}

fn rsa_bits(base64: &str) -> Option<u32> {
    let der = openssl::base64::decode_block(base64).ok()?;
    modulus_bits(&der)
}

/// The RSA modulus size from a SubjectPublicKeyInfo or a bare RSAPublicKey (PKCS#1), read
/// with a few lines of DER rather than OpenSSL 3's decoders, which cost ~100 µs per call and
/// would dominate a verification.
fn modulus_bits(der: &[u8]) -> Option<u32> {
    let (tag, body, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, first, rest) = der_element(body)?;
    let modulus = match first_tag {
        0x02 => first, // RSAPublicKey: SEQUENCE { modulus INTEGER, exponent INTEGER }
        0x30 => {
            // SubjectPublicKeyInfo: SEQUENCE { algorithm, subjectPublicKey BIT STRING }
            let (bits_tag, bits, _) = der_element(rest)?;
            if bits_tag != 0x03 || bits.first() != Some(&0) {
                return None;
            }
            let (_, inner, _) = der_element(&bits[1..])?;
            let (integer_tag, modulus, _) = der_element(inner)?;
            if integer_tag != 0x02 {
                return None;
            }
            modulus
        }
        _ => return None,
    };
    let significant = modulus.iter().position(|&b| b != 0)?;
    let leading = modulus[significant].leading_zeros();
    u32::try_from((modulus.len() - significant) * 8)
        .ok()?
        .checked_sub(leading)
}

/// One DER element: (tag, contents, the bytes after it).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| (tag, &rest[..length], &rest[length..]))
}

/// Lengths of the body after simple and relaxed canonicalization (RFC 6376 section 3.4), to
/// tell whether an `l=` count covers all of it.
fn canonical_body_lengths(body: &[u8]) -> (u64, u64) {
    let lines: Vec<&[u8]> = split_lines(body);
    let simple = canonical_length(lines.iter().map(|line| line.len()));
    let relaxed = canonical_length(lines.iter().map(|line| relaxed_line_length(line)));
    (simple, relaxed)
}

/// Sum of line lengths plus CRLFs, with trailing empty lines dropped; an empty body is one
/// CRLF for simple, nothing for relaxed (the difference does not matter for an `l=` check).
fn canonical_length(lengths: impl Iterator<Item = usize>) -> u64 {
    let lengths: Vec<usize> = lengths.collect();
    let kept = lengths
        .iter()
        .rposition(|&n| n > 0)
        .map_or(0, |last| last + 1);
    lengths[..kept].iter().map(|n| *n as u64 + 2).sum()
}

fn split_lines(body: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = body;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        lines.push(line.strip_suffix(b"\r").unwrap_or(line));
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

fn relaxed_line_length(line: &[u8]) -> usize {
    let mut length = 0;
    let mut pending_space = false;
    for &byte in line {
        if byte == b' ' || byte == b'\t' {
            pending_space = true;
        } else {
            length += usize::from(pending_space) + 1;
            pending_space = false;
        }
    }
    length
}

pub(crate) fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
        Algorithm::MlDsa44 => "mldsa44",
    }
}

fn canonicalization_name(canonicalization: Canonicalization) -> &'static str {
    match canonicalization {
        Canonicalization::Relaxed => "relaxed",
        Canonicalization::Simple => "simple",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_sizes_are_read_from_both_key_encodings() {
        for bits in [512, 1024, 2048, 4096] {
            let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
            let spki = rsa.public_key_to_der().unwrap();
            let pkcs1 = rsa.public_key_to_der_pkcs1().unwrap();
            assert_eq!(modulus_bits(&spki), Some(bits), "SPKI {bits}");
            assert_eq!(modulus_bits(&pkcs1), Some(bits), "PKCS#1 {bits}");
        }
        assert_eq!(modulus_bits(b"\x30\x03\x02\x01"), None);
        assert_eq!(modulus_bits(b""), None);
    }

    fn rsa_record(bits: u32) -> Vec<u8> {
        let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
        let public = openssl::base64::encode_block(&rsa.public_key_to_der().unwrap());
        format!("v=DKIM1; k=rsa; p={public}").into_bytes()
    }

    #[test]
    fn the_signature_prefix_is_that_of_the_whole_encoding() {
        let signature: Vec<u8> = (0..=255).collect();
        for length in [0, 1, 5, 6, 7, 256] {
            let whole: String = openssl::base64::encode_block(&signature[..length])
                .chars()
                .take(8)
                .collect();
            assert_eq!(
                signature_prefix(&signature[..length]),
                whole,
                "{length} bytes"
            );
        }
    }

    #[test]
    fn key_info_reads_the_first_record_with_a_key() {
        let info = key_info(&[b"not a key".to_vec(), rsa_record(1024)]);
        assert_eq!((info.kind.as_deref(), info.bits), (Some("rsa"), Some(1024)));
        let info = key_info(&[
            b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".to_vec(),
        ]);
        assert_eq!(
            (info.kind.as_deref(), info.bits),
            (Some("ed25519"), Some(256))
        );
        let info = key_info(&[b"v=DKIM1; k=rsa; p=".to_vec()]);
        assert_eq!((info.kind.as_deref(), info.bits), (Some("rsa"), None));
        assert_eq!(key_info(&[]).kind, None);
    }

    #[test]
    fn the_memo_is_keyed_by_the_record_not_by_time() {
        let memo = KeyMemo::default();
        let weak = vec![rsa_record(512)];
        let strong = vec![rsa_record(2048)];
        assert_eq!(memo.parsed(weak.clone()).1.bits, Some(512));
        // The selector now publishes another record: it is measured at once.
        assert_eq!(memo.parsed(strong.clone()).1.bits, Some(2048));
        assert_eq!(memo.parsed(weak).1.bits, Some(512));
        assert_eq!(lock(&memo.parsed).len(), 2);
        // A hit hands out the same parsed key, not a new parse.
        let (TxtRecord::DomainKey(first), _) = memo.parsed(strong.clone()) else {
            panic!("expected a key");
        };
        let (TxtRecord::DomainKey(second), _) = memo.parsed(strong) else {
            panic!("expected a key");
        };
        assert!(std::sync::Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn the_memo_never_grows_past_its_limit() {
        let memo = KeyMemo::default();
        for i in 0..=MEMO_LIMIT {
            memo.parsed(vec![format!("v=DKIM1; p=not-base64-{i}").into_bytes()]);
        }
        assert!(lock(&memo.parsed).len() <= MEMO_LIMIT);
    }

    #[test]
    fn an_answer_is_reused_only_while_the_resolver_would_serve_it() {
        let memo = KeyMemo::default();
        let name = "rsa._domainkey.example.com.";
        let start = Instant::now();
        let valid_until = start + Duration::from_mins(5);
        assert!(
            memo.answer(name, start).is_none(),
            "nothing before a lookup"
        );
        let (record, info) = memo.parsed(vec![rsa_record(1024)]);
        memo.remember(name, valid_until, &record, &info);
        let (TxtRecord::DomainKey(_), KeyInfo { bits, .. }) = memo.answer(name, start).unwrap()
        else {
            panic!("expected the key");
        };
        assert_eq!(bits, Some(1024));
        assert!(
            memo.answer("other._domainkey.example.com.", start)
                .is_none()
        );
        // A second before the resolver's own expiry (its valid_until may be up to a second
        // late), the answer is no longer used: the next message asks the resolver.
        assert_eq!(ANSWER_MARGIN, Duration::from_secs(1));
        let last = start + Duration::from_secs(299); // valid_until less ANSWER_MARGIN
        assert!(
            memo.answer(name, start + Duration::from_millis(298_999))
                .is_some()
        );
        assert!(memo.answer(name, last).is_none());
        assert!(memo.answer(name, valid_until).is_none());
        // A new answer (say a weaker key, published once the old TTL ran out) replaces it.
        let (weak, weak_info) = memo.parsed(vec![rsa_record(512)]);
        memo.remember(
            name,
            valid_until + Duration::from_mins(5),
            &weak,
            &weak_info,
        );
        assert_eq!(memo.answer(name, valid_until).unwrap().1.bits, Some(512));
        // A failed or empty lookup leaves nothing behind.
        memo.forget(name);
        assert!(memo.answer(name, valid_until).is_none());
    }

    #[test]
    fn an_answer_with_no_ttl_left_is_not_kept() {
        let memo = KeyMemo::default();
        let (record, info) = memo.parsed(vec![rsa_record(1024)]);
        let now = Instant::now();
        memo.remember("a._domainkey.example.com.", now, &record, &info);
        assert!(memo.answer("a._domainkey.example.com.", now).is_none());
    }

    #[test]
    fn remembered_answers_never_grow_past_the_limit() {
        let memo = KeyMemo::default();
        let (record, info) = memo.parsed(vec![b"v=DKIM1; p=".to_vec()]);
        let until = Instant::now() + Duration::from_mins(5);
        for i in 0..=MEMO_LIMIT {
            memo.remember(
                &format!("s{i}._domainkey.example.com."),
                until,
                &record,
                &info,
            );
        }
        assert!(lock(&memo.answers).len() <= MEMO_LIMIT);
    }

    #[test]
    fn key_names_match_their_signatures_in_any_case() {
        let signature = Signature {
            s: "Sel".into(),
            d: "Example.COM".into(),
            ..Signature::default()
        };
        let name = key_name(&signature);
        assert_eq!(name, "sel._domainkey.example.com.");
        assert!(is_key_name(&name, &signature));
        for other in [
            "sel._domainkey.example.co.",
            "sel._domainkey.example.com",
            "se._domainkey.example.com.",
            "sel.domainkey.example.comm.",
            "",
        ] {
            assert!(!is_key_name(other, &signature), "{other}");
        }
    }

    #[test]
    fn body_lengths_follow_both_canonicalizations() {
        assert_eq!(canonical_body_lengths(b"Hi  there \r\n\r\n\r\n"), (12, 10));
        assert_eq!(canonical_body_lengths(b""), (0, 0));
        assert_eq!(canonical_body_lengths(b"a\nb"), (6, 6));
    }
}
