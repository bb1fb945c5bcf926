//! Repeats one part of DKIM verification N times, for instruction counts under callgrind
//! (repeatable however busy the machine is, unlike the timings of `benches/verify.rs`):
//!
//! ```sh
//! cargo build --release --ignore-rust-version -p signet-verifier --example verify_cost
//! valgrind --tool=callgrind --toggle-collect='verify_cost::measured' \
//!     target/release/examples/verify_cost signet rsa2048 2048 1000
//! ```
//!
//! The message is built and signed as in `benches/verify.rs` (relaxed/relaxed, five signed
//! fields). `WHAT` is one of:
//!
//! * `signet`: `Verifier::verify_dkim`, the key in the resolver's cache;
//! * `bound`: OpenSSL's SHA-256 over the whole message plus one signature check;
//! * `mail-auth`: parse plus mail-auth's `verify_dkim` with the key handed over in memory;
//! * `parse`: `AuthenticatedMessage::parse` alone (includes the body hash);
//! * `aws-lc`: SHA-256 of the whole message (OpenSSL) and aws-lc-rs checking one signature over
//!   the digest as mail-auth calls it (`UnparsedPublicKey`: the key parsed on every call);
//! * `aws-lc-parsed`: the same with the key parsed once (`ParsedPublicKey`);
//! * `openssl-check`: the bound's signature check alone, without the hashing;
//!
//! `verify_cost compare WHAT ALGORITHM BYTES ROUNDS BLOCK` times `WHAT` against the bound in
//! alternating blocks instead (wall time, medians of the per-pair ratios).
//!
//! With `--toggle-collect`, callgrind counts only what runs inside `measured` (set-up, key
//! generation and signing excluded); divide by N. Outside valgrind it prints the thread CPU
//! time per iteration. Under valgrind the crypto takes other paths than on the bare CPU
//! (valgrind hides SHA-NI and AVX-512 from CPUID), so use the counts for the work around the
//! crypto and time the crypto itself.

use std::hint::black_box;

use mail_auth::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::DomainKey;
use mail_auth::dns::TxtRecordParser;
use mail_auth::{Parameters, TxtRecord};
use openssl::pkey::{PKey, Private};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use signet_verifier::{RecordTable, Verifier};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{MemoryKeys, message, offline_verifier, sign, thread_cpu_nanos};

/// Everything the measured loop needs, made beforehand.
struct Setup {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    authenticator: mail_auth::MessageAuthenticator,
    memory: MemoryKeys,
    signed: Vec<u8>,
    key: PKey<Private>,
    public_key: Vec<u8>,
    parsed_key: aws_lc_rs::signature::ParsedPublicKey,
    digest: [u8; 32],
    digest_signature: Vec<u8>,
    ed25519: bool,
}

fn setup(algorithm: &str, size: usize) -> Setup {
    let ed25519 = match algorithm {
        "rsa2048" => false,
        "ed25519" => true,
        other => panic!("unknown algorithm {other} (rsa2048 or ed25519)"),
    };
    let key = if ed25519 {
        PKey::generate_ed25519().unwrap()
    } else {
        PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
    };
    let pkcs8 = key.private_key_to_pkcs8().unwrap();
    let (selector, record, public_key) = if ed25519 {
        let public = key.raw_public_key().unwrap();
        let record = format!(
            "v=DKIM1; k=ed25519; p={}",
            openssl::base64::encode_block(&public)
        );
        ("ed", record, public)
    } else {
        let spki = key.public_key_to_der().unwrap();
        let pkcs1 = key.rsa().unwrap().public_key_to_der_pkcs1().unwrap();
        let record = format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&spki));
        ("rsa", record, pkcs1)
    };
    let raw = message(size);
    let signed = if ed25519 {
        sign(
            Ed25519Key::from_pkcs8_maybe_unchecked_der(&pkcs8).unwrap(),
            selector,
            &raw,
        )
    } else {
        sign(
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
                .unwrap(),
            selector,
            &raw,
        )
    };
    let name = format!("{selector}._domainkey.example.com");
    let mut table = RecordTable::default();
    table.insert_txt(&name, &record);
    let (runtime, verifier) = offline_verifier(table);
    let reports = runtime.block_on(verifier.verify_dkim(&signed, None));
    assert_eq!(
        reports[0].result,
        signet_verifier::AuthResult::Pass,
        "{reports:#?}"
    );
    let memory = MemoryKeys::default();
    memory.0.lock().unwrap().insert(
        format!("{name}.").into(),
        TxtRecord::from(DomainKey::parse_records(&[record.into_bytes()])),
    );
    let authenticator = mail_auth::MessageAuthenticator::new(
        hickory_resolver::config::ResolverConfig::from_name_servers(Vec::new()),
        hickory_resolver::config::ResolverOpts::default(),
    )
    .unwrap();
    let digest = openssl::sha::sha256(&signed);
    let digest_signature = if ed25519 {
        let mut signer = openssl::sign::Signer::new_without_digest(&key).unwrap();
        signer.sign_oneshot_to_vec(&digest).unwrap()
    } else {
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
        signer.update(&digest).unwrap();
        signer.sign_to_vec().unwrap()
    };
    let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = if ed25519 {
        &aws_lc_rs::signature::ED25519
    } else {
        &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
    };
    let parsed_key = aws_lc_rs::signature::ParsedPublicKey::new(algorithm, &public_key).unwrap();
    Setup {
        runtime,
        verifier,
        authenticator,
        memory,
        signed,
        key,
        public_key,
        parsed_key,
        digest,
        digest_signature,
        ed25519,
    }
}

/// The only function callgrind counts (with `--toggle-collect='verify_cost::measured'`).
#[inline(never)]
fn measured(what: &str, setup: &Setup, iterations: usize) -> usize {
    let mut passes = 0;
    for _ in 0..iterations {
        let pass = match what {
            "signet" => {
                let reports = setup
                    .runtime
                    .block_on(setup.verifier.verify_dkim(black_box(&setup.signed), None));
                reports[0].result == signet_verifier::AuthResult::Pass
            }
            "bound" => bound(setup),
            "mail-auth" => {
                let parsed =
                    mail_auth::AuthenticatedMessage::parse(black_box(&setup.signed)).unwrap();
                let outputs = setup.runtime.block_on(
                    setup
                        .authenticator
                        .verify_dkim(Parameters::new(&parsed).with_cache(&setup.memory)),
                );
                *outputs[0].result() == mail_auth::DkimResult::Pass
            }
            "parse" => mail_auth::AuthenticatedMessage::parse(black_box(&setup.signed)).is_some(),
            "aws-lc" => aws_lc(setup),
            "aws-lc-parsed" => {
                let digest = openssl::sha::sha256(black_box(&setup.signed));
                setup
                    .parsed_key
                    .verify_sig(&digest, &setup.digest_signature)
                    .is_ok()
            }
            "openssl-check" => openssl_check(setup, &setup.digest),
            other => panic!("unknown part {other}"),
        };
        passes += usize::from(pass);
    }
    passes
}

fn bound(setup: &Setup) -> bool {
    openssl_check(setup, &openssl::sha::sha256(black_box(&setup.signed)))
}

/// The bound's signature check alone, over a digest already made.
fn openssl_check(setup: &Setup, digest: &[u8; 32]) -> bool {
    if setup.ed25519 {
        let mut verifier = openssl::sign::Verifier::new_without_digest(&setup.key).unwrap();
        verifier
            .verify_oneshot(&setup.digest_signature, black_box(digest))
            .unwrap()
    } else {
        let mut verifier =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &setup.key)
                .unwrap();
        verifier.update(black_box(digest)).unwrap();
        verifier.verify(&setup.digest_signature).unwrap()
    }
}

/// aws-lc-rs as mail-auth calls it: a key from bytes on every call (`UnparsedPublicKey`).
fn aws_lc(setup: &Setup) -> bool {
    use aws_lc_rs::signature::{
        ED25519, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, UnparsedPublicKey,
    };
    let digest = openssl::sha::sha256(black_box(&setup.signed));
    if setup.ed25519 {
        UnparsedPublicKey::new(&ED25519, &setup.public_key)
            .verify(&digest, &setup.digest_signature)
            .is_ok()
    } else {
        UnparsedPublicKey::new(
            &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            &setup.public_key,
        )
        .verify(&digest, &setup.digest_signature)
        .is_ok()
    }
}

/// `WHAT` against the bound in alternating blocks of `block` iterations, `rounds` times, in
/// wall time: on a shared machine both sides of each pair see the same load, and the median of
/// the per-pair ratios leaves out the pairs a burst of load fell into.
fn compare(what: &str, setup: &Setup, rounds: usize, block: usize) {
    let time = |part: &str| {
        let start = std::time::Instant::now();
        assert_eq!(
            measured(part, setup, block),
            block,
            "every iteration passes"
        );
        #[allow(clippy::cast_precision_loss)] // a block's nanoseconds fit in f64
        let each = start.elapsed().as_nanos() as f64 / block as f64 / 1e3;
        each
    };
    let (mut ours, mut bounds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    time(what);
    time("bound");
    for _ in 0..rounds {
        let (a, b) = (time(what), time("bound"));
        ours.push(a);
        bounds.push(b);
        ratios.push(a / b);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "{what} {:.2} µs, bound {:.2} µs (medians of {rounds} blocks of {block}); {what} / bound: median {:.3}, quartiles {:.3}-{:.3}",
        median(&mut ours),
        median(&mut bounds),
        median(&mut ratios),
        ratios[rounds / 4],
        ratios[rounds * 3 / 4],
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, what, algorithm, size, rounds, block] = args.as_slice()
        && command == "compare"
    {
        let setup = setup(algorithm, size.parse().expect("BYTES is a number"));
        compare(
            what,
            &setup,
            rounds.parse().expect("ROUNDS is a number"),
            block.parse().expect("BLOCK is a number"),
        );
        return;
    }
    let [what, algorithm, size, iterations] = args.as_slice() else {
        eprintln!(
            "usage: verify_cost signet|bound|mail-auth|parse|aws-lc|aws-lc-parsed|openssl-check rsa2048|ed25519 BYTES N\n       \
             verify_cost compare WHAT rsa2048|ed25519 BYTES ROUNDS BLOCK"
        );
        std::process::exit(2);
    };
    let setup = setup(algorithm, size.parse().expect("BYTES is a number"));
    let iterations: usize = iterations.parse().expect("N is a number");
    let start = thread_cpu_nanos();
    let passes = measured(what, &setup, iterations);
    let spent = thread_cpu_nanos() - start;
    assert_eq!(passes, iterations, "every iteration passes");
    #[allow(clippy::cast_precision_loss)] // nanosecond counts of a short run fit in f64
    let each = spent as f64 / iterations as f64 / 1e3;
    println!("{what} {algorithm} {size}: {iterations} iterations, {each:.2} µs cpu each");
}
