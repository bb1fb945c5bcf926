//! The published record equals what an independent tool (the `openssl` command) derives from
//! the same private key, for every key form `signet dkim import` accepts.

mod support;

use std::process::Command;

use support::Signet;

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command is installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `p=` as openssl derives it: base64 of the DER SubjectPublicKeyInfo for RSA, of the raw
/// 32-byte key (the SPKI's last 32 bytes) for Ed25519.
fn expected_p(key_file: &str, ed25519: bool) -> String {
    use base64::Engine;
    let spki = openssl(&["pkey", "-in", key_file, "-pubout", "-outform", "DER"]);
    let bytes = if ed25519 {
        &spki[spki.len() - 32..]
    } else {
        &spki[..]
    };
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn published_records_match_openssl() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let dir = signet.dir.path();
    let cases = [
        (
            "rsa-pkcs8.example",
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            false,
            "rsa",
        ),
        (
            "rsa-pkcs1.example",
            vec!["genrsa", "-traditional", "1024"],
            false,
            "rsa",
        ),
        (
            "ed.example",
            vec!["genpkey", "-algorithm", "ED25519"],
            true,
            "ed25519",
        ),
    ];
    for (domain, generate, ed25519, k) in cases {
        let key_file = dir.join(format!("{domain}.pem")).display().to_string();
        std::fs::write(&key_file, openssl(&generate)).unwrap();
        signet.run(&["domain", "add", "contoso", domain]).ok();
        signet.run(&["dkim", "remove", domain]).ok();
        signet
            .run(&["dkim", "import", domain, "--key", &key_file])
            .ok();
        let record = signet
            .run(&["dkim", "export-public", domain])
            .ok()
            .trim()
            .to_string();
        assert_eq!(
            record,
            format!("v=DKIM1; k={k}; p={}", expected_p(&key_file, ed25519)),
            "{domain}"
        );
    }
    // A generated key: its published record matches the key signet holds (checked through
    // `records`, which shows the same text the DNS server will serve).
    let records = signet
        .run(&["records", "rsa-pkcs8.example", "--format", "json"])
        .ok()
        .to_string();
    let json: serde_json::Value = serde_json::from_str(&records).unwrap();
    assert_eq!(
        json["key_zone"][0]["value"].as_str().unwrap(),
        signet
            .run(&["dkim", "export-public", "rsa-pkcs8.example"])
            .ok()
            .trim()
    );
}
