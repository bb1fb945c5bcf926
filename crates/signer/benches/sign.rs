//! DKIM signing alone: RSA-2048 and Ed25519, 2 KB and 100 KB messages, through
//! `signet_signer::sign` end to end (choosing `h=`, relaxed/relaxed canonicalization, body hash,
//! header hash, the private-key operation and writing the header), next to the raw bound
//! measured in the same process: OpenSSL hashing the message bytes once with SHA-256 and making
//! one signature over the digest.
//!
//! Keys are generated once. The plan is the gateway's default one (relaxed/relaxed, no `x=`);
//! `sign` over-signs `From` as it does for every message.
//!
//! `SIGNET_BENCH_BREAKDOWN=1` also times the parts: the private-key operation alone, and
//! mail-auth's canonicalization and hashing with a key that does no cryptography.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mail_auth::crypto::{Algorithm, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::dkim::{Canonicalization as MailAuthCanonicalization, DkimSigner};
use mail_auth::headers::{HeaderWriter, Writable};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private};
use rustix::time::{ClockId, clock_gettime};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use signet_keys::{Canonicalization, KeyId, KeySpec, PrivateKey, RsaBits};
use signet_signer::{SigningPlan, sign};

/// The header section of an ordinary outbound reply from a mail client, as the gateway
/// receives it (no `Received:` yet, no signature).
const HEADERS: &str = "Return-Path: <joe.example@contoso.com>\r\n\
From: Joe Example <joe.example@contoso.com>\r\n\
To: Ann Other <ann.other@example.org>,\r\n Bob Someone <bob@example.net>\r\n\
Cc: Sales Team <sales@contoso.com>\r\n\
Reply-To: Joe Example <joe.example@contoso.com>\r\n\
Subject: Re: Quarterly figures and the plan for the December release\r\n\
Date: Tue, 01 Dec 2026 09:14:27 +0100\r\n\
Message-ID: <20261201091427.4f2a9c1e@mail.contoso.com>\r\n\
In-Reply-To: <CAF3b2x1mQ@mail.example.org>\r\n\
References: <CAE9a0c7Lw@mail.example.org>\r\n <CAF3b2x1mQ@mail.example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
Content-Transfer-Encoding: 8bit\r\n\
User-Agent: Mozilla Thunderbird\r\n\
Content-Language: en-GB\r\n\
X-Originating-IP: [192.0.2.17]\r\n\
\r\n";

/// Body paragraphs, reused in turn: ordinary prose, a quoted reply, a signature block; some
/// lines carry trailing spaces (format=flowed), which relaxed body canonicalization rewrites.
const PARAGRAPHS: [&str; 4] = [
    "Hi Ann, \r\n\r\nthanks for the figures. I went through them this morning and the totals \r\n\
     match what finance sent last week, except for the line on travel, which looks like it \r\n\
     still includes the October conference. Could you check with Bob before Friday?\r\n\r\n",
    "> On 30 Nov 2026, at 17:02, Ann Other wrote:\r\n> \r\n> Here are the numbers for the \r\n\
     > quarter. The release plan is in the second tab; we still need a date for the\r\n\
     > freeze and someone to own the migration notes.\r\n\r\n",
    "For the release I would freeze on the 10th and ship on the 17th, with the notes \r\n\
     written by whoever merges the last schema change. Grüße from the Berlin office, \r\n\
     where it is already snowing.\r\n\r\n",
    "Best regards,\r\nJoe\r\n\r\n-- \r\nJoe Example | Contoso Ltd. | +44 20 7946 0000\r\n\r\n",
];

/// A message of about `size` bytes: `HEADERS` and as many paragraphs as fit.
fn message(size: usize) -> Vec<u8> {
    let mut text = String::from(HEADERS);
    for paragraph in PARAGRAPHS.iter().cycle() {
        if text.len() + paragraph.len() > size {
            break;
        }
        text.push_str(paragraph);
    }
    text.into_bytes()
}

/// The plan the gateway makes for a domain with the default signing config.
fn plan() -> SigningPlan {
    SigningPlan {
        domain: "contoso.com".parse().unwrap(),
        selector: "selector1".into(),
        key: KeyId("bench".into()),
        header_canonicalization: Canonicalization::Relaxed,
        body_canonicalization: Canonicalization::Relaxed,
        expiration: None,
    }
}

fn benchmarks(c: &mut Criterion) {
    let plan = plan();
    let keys = [
        (
            "rsa2048",
            PrivateKey::generate(KeySpec::Rsa(RsaBits::B2048)).unwrap(),
        ),
        ("ed25519", PrivateKey::generate(KeySpec::Ed25519).unwrap()),
    ];
    let breakdown = std::env::var_os("SIGNET_BENCH_BREAKDOWN").is_some();
    for (size, label) in [(2 * 1024, "2KB"), (100 * 1024, "100KB")] {
        let raw = message(size);
        for (algorithm, key) in &keys {
            let header = sign(&raw, &plan, key).unwrap();
            assert!(header.starts_with("DKIM-Signature:"), "{header}");
            timed(c, &format!("signet sign {algorithm} {label}"), || {
                sign(black_box(&raw), &plan, key).unwrap()
            });
            // The bound: hash every byte once, make one signature over the digest. No parsing,
            // no canonicalization, no header to write.
            let pkey = PKey::private_key_from_pkcs8(key.pkcs8_der().unwrap().expose()).unwrap();
            timed(
                c,
                &format!("bound openssl sha256+sign {algorithm} {label}"),
                || raw_sign(&pkey, black_box(&raw)),
            );
            if breakdown {
                parts(c, key, &raw, &header, &format!("{algorithm} {label}"));
            }
        }
    }
}

/// Benchmarks `routine` twice: by the wall clock (criterion's default), and by the CPU time of
/// this thread (`[cpu]`), which is what `openssl speed` reports and what "per core" means on a
/// machine shared with other work.
fn timed<R>(c: &mut Criterion, name: &str, mut routine: impl FnMut() -> R) {
    c.bench_function(name, |b| b.iter(&mut routine));
    c.bench_function(&format!("{name} [cpu]"), |b| {
        b.iter_custom(|iterations| {
            let start = thread_cpu_time();
            for _ in 0..iterations {
                black_box(routine());
            }
            thread_cpu_time().saturating_sub(start)
        });
    });
}

fn thread_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap(),
        u32::try_from(now.tv_nsec).unwrap(),
    )
}

/// Where the time goes: the key operation alone over input the size of the canonical headers
/// (signet's OpenSSL path, and aws-lc through mail-auth's keys for comparison), and mail-auth's
/// canonicalization and hashing with a key that signs nothing.
fn parts(c: &mut Criterion, key: &PrivateKey, raw: &[u8], header: &str, label: &str) {
    let canonical_headers = vec![b'a'; HEADERS.len() + header.len()];
    timed(c, &format!("PrivateKey::sign alone {label}"), || {
        key.sign(black_box(&canonical_headers)).unwrap()
    });
    let der = key.pkcs8_der().unwrap();
    // Not part of signing, but the gateway does it for every message (`Service::private_key`).
    timed(c, &format!("PrivateKey::from_pkcs8_der {label}"), || {
        PrivateKey::from_pkcs8_der(black_box(der.expose())).unwrap()
    });
    match key.spec() {
        KeySpec::Rsa(_) => {
            let aws = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                PrivatePkcs8KeyDer::from(der.expose()),
            ))
            .unwrap();
            timed(c, &format!("aws-lc sign alone {label}"), || {
                aws.sign(black_box(&canonical_headers[..])).unwrap()
            });
        }
        KeySpec::Ed25519 => {
            let aws = Ed25519Key::from_pkcs8_maybe_unchecked_der(der.expose()).unwrap();
            timed(c, &format!("aws-lc sign alone {label}"), || {
                aws.sign(black_box(&canonical_headers[..])).unwrap()
            });
        }
    }
    let signer = DkimSigner::from_key(NoCrypto(key.spec()))
        .domain("contoso.com")
        .selector("selector1")
        .headers([
            "From",
            "Reply-To",
            "Subject",
            "Date",
            "To",
            "Cc",
            "In-Reply-To",
            "References",
            "Message-ID",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
            "From",
        ])
        .header_canonicalization(MailAuthCanonicalization::Relaxed)
        .body_canonicalization(MailAuthCanonicalization::Relaxed);
    timed(
        c,
        &format!("mail-auth canonicalize+hash, no crypto {label}"),
        || signer.sign(black_box(raw)).unwrap().to_header(),
    );
}

/// A signing key that collects its input as signet's adapter does and returns a fixed
/// "signature" of the right length, so only mail-auth's own work is timed.
struct NoCrypto(KeySpec);

impl SigningKey for NoCrypto {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        black_box(&data);
        Ok(vec![
            0;
            if self.algorithm() == Algorithm::RsaSha256 {
                256
            } else {
                64
            }
        ])
    }

    fn algorithm(&self) -> Algorithm {
        match self.0 {
            KeySpec::Rsa(_) => Algorithm::RsaSha256,
            KeySpec::Ed25519 => Algorithm::Ed25519Sha256,
        }
    }
}

/// SHA-256 of `data`, then one RSASSA-PKCS1-v1_5 (resp. Ed25519) signature over the digest.
fn raw_sign(key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let digest = openssl::sha::sha256(data);
    if key.id() == Id::ED25519 {
        let mut signer = openssl::sign::Signer::new_without_digest(key).unwrap();
        signer.sign_oneshot_to_vec(&digest).unwrap()
    } else {
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
        signer.update(&digest).unwrap();
        signer.sign_to_vec().unwrap()
    }
}

criterion_group! {
    name = signing;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = benchmarks
}
criterion_main!(signing);
