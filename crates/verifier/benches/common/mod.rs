//! What the verification bench (`benches/verify.rs`) and its callgrind companion
//! (`examples/verify_cost.rs`) share: the messages, how they are signed, a key cache held in
//! memory, and the thread's CPU clock. Included by both with `#[path]`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use mail_auth::crypto::{Sha256, SigningKey};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mail_auth::headers::HeaderWriter;
use mail_auth::{DnsCache, NoCache, ResolverCache, TxtRecord};

/// A plain-text message of about `size` bytes.
pub fn message(size: usize) -> Vec<u8> {
    let mut text = String::from(
        "From: Joe SixPack <joe@example.com>\r\nTo: Suzie Q <suzie@example.net>\r\n\
         Subject: Benchmark\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         Message-ID: <bench@example.com>\r\n\r\n",
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again.  \r\n";
    while text.len() < size {
        text.push_str(line);
    }
    text.into_bytes()
}

/// `raw` with a relaxed/relaxed `DKIM-Signature` of `example.com`, `selector`, five fields.
pub fn sign(key: impl SigningKey<Hasher = Sha256>, selector: &str, raw: &[u8]) -> Vec<u8> {
    let signature = DkimSigner::from_key(key)
        .domain("example.com")
        .selector(selector)
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(raw)
        .expect("signing works");
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(raw);
    signed
}

/// A verifier answering DNS from `table` only, on a current-thread runtime (one thread, so the
/// thread's CPU time is all the work).
pub fn offline_verifier(
    table: signet_verifier::RecordTable,
) -> (tokio::runtime::Runtime, signet_verifier::Verifier) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers = signet_verifier::Resolution::Answers(std::sync::Arc::new(table));
    let config = signet_verifier::VerifierConfig::new("bench.test", answers);
    let verifier = runtime
        .block_on(signet_verifier::Verifier::new(config))
        .unwrap();
    (runtime, verifier)
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat is readable (Linux)");
    stat.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("schedstat starts with the thread's run time in nanoseconds")
}

/// Keys handed to mail-auth through its cache, so no DNS is involved.
#[derive(Default)]
pub struct MemoryKeys(pub Mutex<HashMap<Box<str>, TxtRecord>>);

impl ResolverCache<Box<str>, TxtRecord> for MemoryKeys {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: TxtRecord, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

impl DnsCache for MemoryKeys {
    type Txt = MemoryKeys;
    type Mx = NoCache;
    type Ipv4 = NoCache;
    type Ipv6 = NoCache;
    type Ptr = NoCache;

    fn txt(&self) -> Option<&MemoryKeys> {
        Some(self)
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
