//! DKIM verification with cached keys: RSA-2048 and Ed25519, 2 KB and 100 KB messages,
//! through `Verifier::verify_dkim` (parse, body hash, header hash, signature check, signet's
//! policy and its one read of the key record), next to the raw bound measured in the same
//! process: OpenSSL hashing the same bytes once and checking one signature. Also the smallest
//! Ed25519 verification there is (one header, empty body, key already in memory, no DNS), a
//! floor for the Ed25519 rows: almost all of it is the signature check itself.
//!
//! `SIGNET_BENCH_BREAKDOWN=1` adds the parts: mail-auth alone, parsing alone, a cached resolver
//! lookup, OpenSSL's SHA-256 and signature check each alone, and aws-lc's check of the same
//! signature (key parsed on every call, as mail-auth does, and once). `SIGNET_BENCH_INTERLEAVED=1`
//! also prints signet / bound timed in alternating blocks (see `interleaved`).
//!
//! `SIGNET_BENCH_CPU_TIME=1` measures the bench thread's CPU time (`/proc/thread-self/schedstat`)
//! instead of wall time: on a machine shared with other builds, time spent waiting for a core
//! then stays out of the figures.
//!
//! The signed messages and their records are also written to `target/verifier-bench/` so
//! `benches/peers.sh` can time dkimpy and OpenDKIM on exactly the same input.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use mail_auth::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::{Canonicalization, DkimSigner, DomainKey};
use mail_auth::dns::TxtRecordParser;
use mail_auth::headers::HeaderWriter;
use mail_auth::{Parameters, TxtRecord};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Verifier as OpenSslVerifier;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use signet_verifier::RecordTable;

mod common;
use common::{MemoryKeys, message, offline_verifier, sign, thread_cpu_nanos};

fn pkcs8(key: &PKey<Private>) -> Vec<u8> {
    key.private_key_to_pkcs8().unwrap()
}

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/verifier-bench"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn benchmarks<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let ed = PKey::generate_ed25519().unwrap();
    let rsa_public = openssl::base64::encode_block(&rsa.public_key_to_der().unwrap());
    let ed_public = openssl::base64::encode_block(&ed.raw_public_key().unwrap());
    let records = format!(
        "rsa._domainkey.example.com v=DKIM1; k=rsa; p={rsa_public}\n\
         ed._domainkey.example.com v=DKIM1; k=ed25519; p={ed_public}\n"
    );
    let dir = output_dir();
    std::fs::write(dir.join("records.txt"), &records).unwrap();
    std::fs::write(dir.join("rsa.pem"), rsa.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut table = RecordTable::default();
    for line in records.lines() {
        let (name, value) = line.split_once(' ').unwrap();
        table.insert_txt(name, value);
    }
    let (runtime, verifier) = offline_verifier(table);

    minimal_ed25519(c, &runtime, &ed, &ed_public);

    for (size, label) in [(2 * 1024, "2KB"), (100 * 1024, "100KB")] {
        let raw = message(size);
        let rsa_key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(pkcs8(&rsa)),
        ))
        .unwrap();
        let ed_key = Ed25519Key::from_pkcs8_maybe_unchecked_der(&pkcs8(&ed)).unwrap();
        for (algorithm, signed) in [
            ("rsa2048", sign(rsa_key, "rsa", &raw)),
            ("ed25519", sign(ed_key, "ed", &raw)),
        ] {
            std::fs::write(dir.join(format!("{algorithm}-{label}.eml")), &signed).unwrap();
            // Warm the key cache, and make sure what is measured is a pass.
            let reports = runtime.block_on(verifier.verify_dkim(&signed, None));
            assert_eq!(
                reports[0].result,
                signet_verifier::AuthResult::Pass,
                "{reports:#?}"
            );
            // The bound: hash every byte once (the body and ~300 header bytes), check one
            // signature over a digest. No parsing, no canonicalization, no DNS.
            let data = signed.clone();
            let key = if algorithm == "rsa2048" { &rsa } else { &ed };
            let signature = raw_signature(key, &data);
            if std::env::var_os("SIGNET_BENCH_BREAKDOWN").is_some() {
                breakdown(
                    c,
                    &runtime,
                    &records,
                    &signed,
                    &format!("{algorithm} {label}"),
                );
                bare_checks(c, key, &data, &signature, &format!("{algorithm} {label}"));
            }
            c.bench_function(&format!("signet verify_dkim {algorithm} {label}"), |b| {
                b.iter(|| runtime.block_on(verifier.verify_dkim(black_box(&signed), None)));
            });
            c.bench_function(
                &format!("bound openssl hash+verify {algorithm} {label}"),
                |b| {
                    b.iter(|| raw_verify(key, black_box(&data), &signature));
                },
            );
            if std::env::var_os("SIGNET_BENCH_INTERLEAVED").is_some()
                && selected(&format!("signet verify_dkim {algorithm} {label}"))
            {
                interleaved(
                    &format!("{algorithm} {label}"),
                    || {
                        runtime.block_on(verifier.verify_dkim(black_box(&signed), None));
                    },
                    || {
                        raw_verify(key, black_box(&data), &signature);
                    },
                );
            }
        }
    }
}

/// Whether the bench's name filter (the first argument that is not a flag) selects `name`: a
/// plain substring test, enough for filters such as "rsa2048 2KB".
fn selected(name: &str) -> bool {
    std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .is_none_or(|filter| name.contains(&filter))
}

/// `SIGNET_BENCH_INTERLEAVED=1`: signet and the bound timed in alternating blocks of ~5 ms,
/// 200 pairs, wall time. Criterion measures one for seconds and then the other, so on a shared
/// machine a change of load between the two moves their ratio by more than the 20 % target;
/// here both sides of each pair see the same load, and the median of the per-pair ratios
/// leaves out the pairs a burst fell into.
fn interleaved(label: &str, mut ours: impl FnMut(), mut bound: impl FnMut()) {
    const PAIRS: usize = 200;
    let time = |f: &mut dyn FnMut(), n: usize| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed().as_secs_f64() / f64::from(u32::try_from(n).unwrap())
    };
    let once = time(&mut ours, 10);
    // Truncation is fine: a block size only needs to be roughly 5 ms.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let block = ((0.005 / once) as usize).clamp(1, 1000);
    let (mut signet, mut floor, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        let (a, b) = (time(&mut ours, block), time(&mut bound, block));
        signet.push(a);
        floor.push(b);
        ratios.push(a / b);
    }
    for values in [&mut signet, &mut floor, &mut ratios] {
        values.sort_by(f64::total_cmp);
    }
    println!(
        "interleaved {label}: signet / bound median {:.3} (quartiles {:.3}-{:.3}); \
         signet {:.2} µs, bound {:.2} µs (medians, wall time, {PAIRS} pairs of {block})",
        ratios[PAIRS / 2],
        ratios[PAIRS / 4],
        ratios[PAIRS * 3 / 4],
        signet[PAIRS / 2] * 1e6,
        floor[PAIRS / 2] * 1e6,
    );
}

/// Where the time goes: mail-auth alone (same loopback DNS, resolver cache on) and parsing.
fn breakdown<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    runtime: &tokio::runtime::Runtime,
    records: &str,
    signed: &[u8],
    label: &str,
) {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    let mut table = RecordTable::default();
    for line in records.lines() {
        let (name, value) = line.split_once(' ').unwrap();
        table.insert_txt(name, value);
    }
    let loopback = runtime
        .block_on(signet_verifier::LoopbackDns::start(Arc::new(table)))
        .unwrap();
    let mut server = NameServerConfig::udp_and_tcp(loopback.address().ip());
    for connection in &mut server.connections {
        connection.port = loopback.address().port();
    }
    let authenticator = runtime
        .block_on(async {
            mail_auth::MessageAuthenticator::new(
                ResolverConfig::from_name_servers(vec![server]),
                ResolverOpts::default(),
            )
        })
        .unwrap();
    c.bench_function(&format!("parse only {label}"), |b| {
        b.iter(|| mail_auth::AuthenticatedMessage::parse(black_box(signed)).is_some());
    });
    c.bench_function(&format!("mail-auth verify_dkim {label}"), |b| {
        b.iter(|| {
            let message = mail_auth::AuthenticatedMessage::parse(black_box(signed)).unwrap();
            runtime.block_on(authenticator.verify_dkim(&message)).len()
        });
    });
    c.bench_function(&format!("resolver cached TXT lookup {label}"), |b| {
        b.iter(|| {
            runtime
                .block_on(
                    authenticator
                        .resolver()
                        .txt_lookup("rsa._domainkey.example.com."),
                )
                .is_ok()
        });
    });
}

/// The bound's parts and aws-lc's check of the same signature: OpenSSL's SHA-256 of the whole
/// message, OpenSSL's check alone (key parsed once, as in the bound), aws-lc-rs's check as
/// mail-auth makes it (`UnparsedPublicKey`: the key is parsed from DER on every call), and
/// aws-lc-rs's check with a key parsed once (`ParsedPublicKey`, which mail-auth 0.15 does not
/// use), all over the same 32-byte digest.
fn bare_checks<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    key: &PKey<Private>,
    data: &[u8],
    signature: &[u8],
    label: &str,
) {
    use aws_lc_rs::signature::{
        ED25519, ParsedPublicKey, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        UnparsedPublicKey, VerificationAlgorithm,
    };
    let digest = openssl::sha::sha256(data);
    let ed25519 = key.id() == openssl::pkey::Id::ED25519;
    // What mail-auth hands aws-lc: the raw 32-byte Ed25519 key, or the RSAPublicKey (PKCS#1)
    // inside the record's SubjectPublicKeyInfo.
    let (algorithm, public): (&'static dyn VerificationAlgorithm, Vec<u8>) = if ed25519 {
        (&ED25519, key.raw_public_key().unwrap())
    } else {
        (
            &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            key.rsa().unwrap().public_key_to_der_pkcs1().unwrap(),
        )
    };
    let parsed = ParsedPublicKey::new(algorithm, &public).unwrap();
    assert!(
        UnparsedPublicKey::new(algorithm, &public)
            .verify(&digest, signature)
            .is_ok()
    );
    assert!(parsed.verify_sig(&digest, signature).is_ok());
    c.bench_function(&format!("openssl sha256 whole message {label}"), |b| {
        b.iter(|| openssl::sha::sha256(black_box(data)));
    });
    c.bench_function(&format!("openssl bare verify {label}"), |b| {
        b.iter(|| raw_check(key, black_box(&digest), signature));
    });
    c.bench_function(
        &format!("aws-lc bare verify, key from bytes {label}"),
        |b| {
            b.iter(|| {
                UnparsedPublicKey::new(algorithm, &public)
                    .verify(black_box(&digest), signature)
                    .is_ok()
            });
        },
    );
    c.bench_function(
        &format!("aws-lc bare verify, key parsed once {label}"),
        |b| {
            b.iter(|| parsed.verify_sig(black_box(&digest), signature).is_ok());
        },
    );
}

/// mail-auth verifying a one-header, empty-body Ed25519 message with the key handed over in
/// memory: parsing and hashing ~200 bytes plus one Ed25519 check. Minus the parse (measured
/// too), what is left is the signature check and two SHA-256 runs over a few hundred bytes.
fn minimal_ed25519<M: Measurement + 'static>(
    c: &mut Criterion<M>,
    runtime: &tokio::runtime::Runtime,
    ed: &PKey<Private>,
    ed_public: &str,
) {
    let raw = b"From: joe@example.com\r\n\r\n";
    let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(&pkcs8(ed)).unwrap();
    let signed = DkimSigner::from_key(key)
        .domain("example.com")
        .selector("ed")
        .headers(["From"])
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(raw)
        .expect("signing works");
    let mut message = signed.to_header().into_bytes();
    message.extend_from_slice(raw);
    let record = format!("v=DKIM1; k=ed25519; p={ed_public}").into_bytes();
    let keys = MemoryKeys::default();
    keys.0.lock().unwrap().insert(
        "ed._domainkey.example.com.".into(),
        TxtRecord::from(DomainKey::parse_records(&[record])),
    );
    // No resolver is ever asked: the key is in `keys`.
    let authenticator = mail_auth::MessageAuthenticator::new(
        hickory_resolver::config::ResolverConfig::from_name_servers(Vec::new()),
        hickory_resolver::config::ResolverOpts::default(),
    )
    .unwrap();
    let verify = || {
        let parsed = mail_auth::AuthenticatedMessage::parse(black_box(&message)).unwrap();
        let outputs =
            runtime.block_on(authenticator.verify_dkim(Parameters::new(&parsed).with_cache(&keys)));
        *outputs[0].result() == mail_auth::DkimResult::Pass
    };
    assert!(verify(), "the minimal message verifies");
    c.bench_function("parse only ed25519 minimal message", |b| {
        b.iter(|| mail_auth::AuthenticatedMessage::parse(black_box(&message)).is_some());
    });
    c.bench_function(
        "mail-auth verify_dkim ed25519 minimal message, key in memory",
        |b| {
            b.iter(verify);
        },
    );
}

fn raw_signature(key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let digest = openssl::sha::sha256(data);
    if key.id() == openssl::pkey::Id::ED25519 {
        let mut signer = openssl::sign::Signer::new_without_digest(key).unwrap();
        signer.sign_oneshot_to_vec(&digest).unwrap()
    } else {
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).unwrap();
        signer.update(&digest).unwrap();
        signer.sign_to_vec().unwrap()
    }
}

fn raw_verify(key: &PKey<Private>, data: &[u8], signature: &[u8]) -> bool {
    raw_check(key, &openssl::sha::sha256(data), signature)
}

/// OpenSSL's signature check over a digest already made.
fn raw_check(key: &PKey<Private>, digest: &[u8; 32], signature: &[u8]) -> bool {
    if key.id() == openssl::pkey::Id::ED25519 {
        let mut verifier = OpenSslVerifier::new_without_digest(key).unwrap();
        verifier.verify_oneshot(signature, digest).unwrap()
    } else {
        let mut verifier = OpenSslVerifier::new(MessageDigest::sha256(), key).unwrap();
        verifier.update(digest).unwrap();
        verifier.verify(signature).unwrap()
    }
}

fn configured<M: Measurement>(criterion: Criterion<M>) -> Criterion<M> {
    criterion
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3))
        .configure_from_args()
}

fn main() {
    if std::env::var_os("SIGNET_BENCH_CPU_TIME").is_some() {
        let mut criterion = configured(Criterion::default().with_measurement(ThreadCpuTime));
        benchmarks(&mut criterion);
        criterion.final_summary();
    } else {
        let mut criterion = configured(Criterion::default());
        benchmarks(&mut criterion);
        criterion.final_summary();
    }
}

/// CPU time of the calling thread, in nanoseconds. The benchmarks run on one thread (a
/// current-thread runtime), so this is all the work they do, without the time they wait.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    #[allow(clippy::cast_precision_loss)] // nanosecond counts of a bench run fit in f64
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self
    }
}

impl ValueFormatter for ThreadCpuTime {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        self.scale_for_machines(values)
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns cpu"
    }
}
