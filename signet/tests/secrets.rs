//! Private keys never appear in output, logs or the database in plain form.

#![allow(clippy::format_collect)] // hex dumps in a test: clarity over allocation

mod support;

use openssl::bn::BigNumRef;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use signet_keys::{KeyId, MasterKey, PrivateKey};
use support::Signet;

/// Every secret number of an RSA key, as the byte strings a leak could show.
fn secret_numbers(rsa: &Rsa<openssl::pkey::Private>) -> Vec<Vec<u8>> {
    let numbers: [&BigNumRef; 5] = [
        rsa.d(),
        rsa.p().unwrap(),
        rsa.q().unwrap(),
        rsa.dmp1().unwrap(),
        rsa.iqmp().unwrap(),
    ];
    numbers.iter().map(|n| n.to_vec()).collect()
}

/// Fails if any 16-byte window of a secret occurs in `haystack` raw, in hex or in base64
/// (at any of the three base64 alignments).
fn assert_absent(secrets: &[Vec<u8>], haystack: &[u8], what: &str) {
    use base64::Engine;
    let text = String::from_utf8_lossy(haystack).to_ascii_lowercase();
    for secret in secrets {
        for window in secret.windows(16).step_by(8) {
            assert!(
                !haystack.windows(16).any(|w| w == window),
                "{what} holds a private key in plain form"
            );
            let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(&hex), "{what} holds a private key in hex");
        }
        for shift in 0..3 {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&secret[shift..]);
            let probe = &encoded[4..28];
            assert!(
                !String::from_utf8_lossy(haystack).contains(probe),
                "{what} holds a private key in base64"
            );
        }
    }
}

fn database_bytes(signet: &Signet) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(signet.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("signet.db")
        {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

fn everything_printed(signet: &Signet, domain: &str) -> Vec<u8> {
    let mut printed = Vec::new();
    for args in [
        vec!["dkim", "get", domain],
        vec!["dkim", "get", "--format", "json"],
        vec!["dkim", "get", "--format", "table"],
        vec!["records", domain, "--format", "zone"],
        vec!["records", domain, "--format", "json"],
        vec!["dkim", "export-public", domain],
        vec!["audit", "--format", "json"],
        vec!["tick"],
    ] {
        let run = signet.run(&args);
        printed.extend(run.stdout.bytes());
        printed.extend(run.stderr.bytes());
    }
    printed
}

#[test]
fn an_imported_key_is_sealed_and_never_printed() {
    let rsa = Rsa::generate(2048).unwrap();
    let secrets = secret_numbers(&rsa);
    let pem = PKey::from_rsa(rsa)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();

    let signet = Signet::new();
    let mut printed = Vec::new();
    for args in [
        vec![
            "init",
            "--key-zone",
            "dkim.example.net",
            "--resolver",
            "127.0.0.1:9",
        ],
        vec!["tenant", "add", "contoso"],
        vec!["domain", "add", "contoso", "contoso.com"],
        vec!["dkim", "remove", "contoso.com"],
    ] {
        printed.extend(signet.run(&args).ok().bytes());
    }
    let import = signet.run_with_stdin(&["dkim", "import", "contoso.com", "--key", "-"], &pem);
    printed.extend(import.ok().bytes());
    printed.extend(everything_printed(&signet, "contoso.com"));

    assert_absent(&secrets, &printed, "the command output");
    assert_absent(&secrets, &database_bytes(&signet), "the database");
    // The PEM itself, line by line.
    let pem_text = String::from_utf8(pem).unwrap();
    let printed_text = String::from_utf8_lossy(&printed);
    for line in pem_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!printed_text.contains(line), "a PEM line was printed");
    }
}

#[test]
fn generated_keys_are_sealed_and_never_printed() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let printed = everything_printed(&signet, "contoso.com");

    // Open the stored keys the way signet does, to know what must not leak.
    let master = MasterKey::from_text(
        &std::fs::read_to_string(signet.data_dir().join("master.key")).unwrap(),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sealed_keys = runtime.block_on(async {
        let store = signet_store::Store::open(&signet.data_dir().join("signet.db"))
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        let mut keys = Vec::new();
        for config in tx.configs().await.unwrap() {
            for (_, key) in config.slots.iter() {
                keys.push((
                    key.id.clone(),
                    tx.sealed_key(&key.id).await.unwrap().unwrap(),
                ));
            }
        }
        keys
    });
    assert_eq!(
        sealed_keys.len(),
        2,
        "the initial domain's key and contoso.com's"
    );
    for (id, sealed) in sealed_keys {
        let KeyId(context) = &id;
        let der = master.open(&sealed, context.as_bytes()).unwrap();
        let private = PrivateKey::from_pkcs8_der(der.expose()).unwrap();
        assert_eq!(private.spec().bits(), 2048);
        let rsa = PKey::private_key_from_pkcs8(der.expose())
            .unwrap()
            .rsa()
            .unwrap();
        let secrets = secret_numbers(&rsa);
        assert_absent(&secrets, &printed, "the command output");
        assert_absent(&secrets, &database_bytes(&signet), "the database");
    }
}

#[test]
#[should_panic(expected = "holds a private key in hex")]
fn the_leak_check_catches_a_hex_dump() {
    let rsa = Rsa::generate(1024).unwrap();
    let secrets = secret_numbers(&rsa);
    let dump: String = secrets[0].iter().map(|b| format!("{b:02X}")).collect();
    assert_absent(&secrets, format!("log: d={dump}").as_bytes(), "a log line");
}
