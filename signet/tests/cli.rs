//! The key service as an administrator uses it: the `signet` binary in a fresh directory, with a
//! real DNS server (Knot) on loopback serving the customers' zones.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Knot, Signet, customer_zone};

const ZONE: &str = "dkim.example.net";

fn target(slot: u8, domain: &str) -> String {
    format!(
        "selector{slot}-{}._domainkey.contoso.{ZONE}.",
        domain.replace('.', "-")
    )
}

/// contoso.com: both CNAMEs right; fabrikam.com: selector2 missing; tailspin.com: selector1
/// points elsewhere.
fn customer_dns() -> Knot {
    Knot::start(&[
        (
            "contoso.com",
            customer_zone(
                "contoso.com",
                &[
                    ("selector1._domainkey", "CNAME", &target(1, "contoso.com")),
                    ("selector2._domainkey", "CNAME", &target(2, "contoso.com")),
                ],
            ),
        ),
        (
            "fabrikam.com",
            customer_zone(
                "fabrikam.com",
                &[("selector1._domainkey", "CNAME", &target(1, "fabrikam.com"))],
            ),
        ),
        (
            "tailspin.com",
            customer_zone(
                "tailspin.com",
                &[
                    (
                        "selector1._domainkey",
                        "CNAME",
                        "selector1._domainkey.old-provider.example.",
                    ),
                    ("selector2._domainkey", "CNAME", &target(2, "tailspin.com")),
                ],
            ),
        ),
    ])
}

fn installation(resolver: &str) -> Signet {
    let signet = Signet::new();
    signet
        .run(&["init", "--key-zone", ZONE, "--resolver", resolver])
        .ok();
    signet.run(&["tenant", "add", "contoso"]).ok();
    for domain in ["contoso.com", "fabrikam.com", "tailspin.com"] {
        signet.run(&["domain", "add", "contoso", domain]).ok();
    }
    signet
}

/// Everything a user can see of the store, to prove a refused command changed nothing.
fn state(signet: &Signet) -> String {
    [
        "dkim get --format json",
        "audit --format json",
        "tenant list",
        "domain list",
    ]
    .iter()
    .map(|args| {
        signet
            .run(&args.split(' ').collect::<Vec<_>>())
            .ok()
            .to_string()
    })
    .collect()
}

fn value<'a>(list: &'a str, name: &str) -> &'a str {
    list.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.trim_start().strip_prefix(':'))
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{list}"))
        .trim()
}

#[test]
#[allow(clippy::too_many_lines)] // the whole quick start, in the order a user follows it
fn the_quick_start_works_end_to_end() {
    let dns = customer_dns();
    let signet = installation(&dns.address());

    // Records to publish, in all three formats.
    let table = signet.run(&["records", "contoso.com"]).ok().to_string();
    assert!(
        table.contains(&format!(
            "CNAME  selector1._domainkey.contoso.com  {}",
            target(1, "contoso.com").trim_end_matches('.')
        )),
        "{table}"
    );
    let zone = signet
        .run(&["records", "contoso.com", "--format", "zone"])
        .ok()
        .to_string();
    assert!(
        zone.contains(&format!(
            "selector2._domainkey.contoso.com. 3600 IN CNAME {}",
            target(2, "contoso.com")
        )),
        "{zone}"
    );
    let json: serde_json::Value = serde_json::from_str(
        signet
            .run(&["records", "contoso.com", "--format", "json"])
            .ok(),
    )
    .unwrap();
    assert_eq!(json["customer"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["key_zone"][0]["name"],
        format!("selector1-contoso-com._domainkey.contoso.{ZONE}")
    );

    // Before enabling: default signing with the initial domain.
    let list = signet.run(&["dkim", "get", "contoso.com"]).ok().to_string();
    assert_eq!(value(&list, "Status"), "CnameMissing");
    assert_eq!(value(&list, "Enabled"), "False");
    assert_eq!(value(&list, "SigningDomain"), "contoso.dkim.example.net");
    assert_eq!(value(&list, "SigningSelector"), "selector1-contoso-com");
    assert_eq!(
        value(&list, "Summary"),
        "Not signing DKIM signatures for the domain"
    );
    assert!(
        list.starts_with("Domain                       : contoso.com\n"),
        "{list}"
    );

    // Enable: the CNAMEs are checked live against Knot.
    let list = signet
        .run(&["dkim", "set", "contoso.com", "--enabled", "true"])
        .ok()
        .to_string();
    assert_eq!(value(&list, "Status"), "Valid");
    assert_eq!(value(&list, "SigningDomain"), "contoso.com");
    assert_eq!(value(&list, "SigningSelector"), "selector1");
    assert_eq!(
        value(&list, "Summary"),
        "Signing DKIM signatures for this domain"
    );
    assert!(!value(&list, "LastChecked").is_empty());

    // Table and JSON of all configs.
    let table = signet
        .run(&["dkim", "get", "--format", "table"])
        .ok()
        .to_string();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("Domain") && header.contains("Status"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("contoso.com ") && l.contains("True") && l.contains("Valid")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("contoso.dkim.example.net ") && l.contains("Valid")),
        "{table}"
    );
    assert!(
        !table.contains("contoso.mail."),
        "the routing domain has no config: {table}"
    );
    let all: serde_json::Value =
        serde_json::from_str(signet.run(&["dkim", "get", "--format", "json"]).ok()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let one: serde_json::Value = serde_json::from_str(
        signet
            .run(&["dkim", "get", "contoso.com", "--format", "json"])
            .ok(),
    )
    .unwrap();
    assert_eq!(one["status"], "Valid");
    assert_eq!(one["enabled"], true);
    assert_eq!(one["selector1_key_size"], 2048);
    assert_eq!(one["algorithm"], "RsaSHA256");
    assert_eq!(
        one["selector1_cname"],
        target(1, "contoso.com").trim_end_matches('.')
    );
    assert!(
        one["selector1_public_key"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p=MIIB")
    );

    // Rotate with a new size for the new key only; a second rotation is refused.
    let list = signet
        .run(&["dkim", "rotate", "contoso.com", "--key-size", "1024"])
        .ok()
        .to_string();
    assert_eq!(value(&list, "Selector1KeySize"), "2048");
    assert_eq!(value(&list, "Selector2KeySize"), "1024");
    assert_eq!(value(&list, "SelectorBeforeRotateOnDate"), "selector1");
    assert_eq!(value(&list, "SelectorAfterRotateOnDate"), "selector2");
    assert_eq!(
        value(&list, "Summary"),
        "Rotating keys for this domain and signing DKIM signatures"
    );
    assert!(!value(&list, "RotateOnDate").is_empty());
    let before = state(&signet);
    signet
        .run(&["dkim", "rotate", "contoso.com"])
        .refused("a rotation is already in progress");
    assert_eq!(state(&signet), before);
    let records = signet
        .run(&["records", "contoso.com", "--format", "json"])
        .ok()
        .to_string();
    let records: serde_json::Value = serde_json::from_str(&records).unwrap();
    assert_eq!(
        records["key_zone"].as_array().unwrap().len(),
        2,
        "the new key is published at once"
    );

    // Settings.
    let list = signet
        .run(&[
            "dkim",
            "set",
            "contoso.com",
            "--header-canonicalization",
            "simple",
        ])
        .ok()
        .to_string();
    assert_eq!(value(&list, "HeaderCanonicalization"), "Simple");
    assert_eq!(value(&list, "BodyCanonicalization"), "Relaxed");
    let list = signet
        .run(&["dkim", "set", "contoso.com", "--rotation-interval", "90d"])
        .ok()
        .to_string();
    assert_eq!(value(&list, "RotationInterval"), "90d");
    signet
        .run(&["dkim", "set", "contoso.com", "--rotation-interval", "1d"])
        .refused("the minimum is 5d");
    let list = signet
        .run(&["dkim", "set", "contoso.com", "--rotation-interval", "off"])
        .ok()
        .to_string();
    assert_eq!(value(&list, "RotationInterval"), "");

    // Remove: the config goes, the domain stays accepted with no keys.
    signet.run(&["dkim", "remove", "contoso.com"]).ok();
    let list = signet.run(&["dkim", "get", "contoso.com"]).ok().to_string();
    assert_eq!(value(&list, "Status"), "NoDKIMKeys");
    assert_eq!(
        value(&list, "Summary"),
        "No DKIM keys saved for this domain"
    );
    signet
        .run(&["dkim", "export-public", "contoso.com"])
        .refused("no DKIM signing config");
    let list = signet
        .run(&[
            "dkim",
            "new",
            "contoso.com",
            "--algorithm",
            "ed25519-sha256",
        ])
        .ok()
        .to_string();
    assert_eq!(value(&list, "Algorithm"), "Ed25519SHA256");
    assert!(
        signet
            .run(&["dkim", "export-public", "contoso.com"])
            .ok()
            .starts_with("v=DKIM1; k=ed25519; p=")
    );

    // Every change is in the audit log, with who did it.
    let audit = signet
        .run(&["audit", "--domain", "contoso.com"])
        .ok()
        .to_string();
    for action in [
        "domain.add",
        "dkim.set",
        "dkim.rotate",
        "dkim.remove",
        "dkim.new",
    ] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
    assert!(audit.contains("cli:"), "{audit}");
}

#[test]
fn enabling_refuses_with_the_records_to_publish_and_changes_nothing() {
    let dns = customer_dns();
    let signet = installation(&dns.address());
    let before = state(&signet);

    let missing = signet.run(&["dkim", "set", "fabrikam.com", "--enabled", "true"]);
    let text = missing.refused("CNAME record does not exist for this config. Please publish the following two CNAME records first.");
    assert!(text.contains("Domain Name : fabrikam.com"), "{text}");
    assert!(text.contains("Host Name : selector1._domainkey\nPoints to address or value: selector1-fabrikam-com._domainkey.contoso.dkim.example.net"), "{text}");
    assert!(text.contains("Host Name : selector2._domainkey\nPoints to address or value: selector2-fabrikam-com._domainkey.contoso.dkim.example.net"), "{text}");
    assert!(
        text.contains("sync can take from a few minutes to several days"),
        "{text}"
    );
    assert!(
        text.contains("selector1._domainkey.fabrikam.com: points to selector1-fabrikam-com"),
        "{text}"
    );
    assert!(
        text.contains("selector2._domainkey.fabrikam.com: no CNAME record found"),
        "{text}"
    );

    let elsewhere = signet.run(&["dkim", "set", "tailspin.com", "--enabled", "true"]);
    let text = elsewhere.refused("CNAME record does not exist");
    assert!(
        text.contains("selector1._domainkey.tailspin.com: points to selector1._domainkey.old-provider.example instead of selector1-tailspin-com._domainkey.contoso.dkim.example.net"),
        "{text}"
    );
    assert_eq!(state(&signet), before);

    // Creating with --enabled true checks the same way.
    signet.run(&["dkim", "remove", "fabrikam.com"]).ok();
    let before = state(&signet);
    signet
        .run(&["dkim", "new", "fabrikam.com", "--enabled", "true"])
        .refused("CNAME record does not exist");
    assert_eq!(state(&signet), before);
}

#[test]
fn a_dns_timeout_is_a_temporary_error() {
    // Nothing listens on this port: every lookup times out.
    let port = support::free_port();
    let signet = installation(&format!("127.0.0.1:{port}"));
    std::fs::write(
        signet.data_dir().join("signet.toml"),
        std::fs::read_to_string(signet.data_dir().join("signet.toml"))
            .unwrap()
            .replace("timeout = \"5s\"", "timeout = \"1s\""),
    )
    .unwrap();
    let before = state(&signet);
    let run = signet.run(&["dkim", "set", "contoso.com", "--enabled", "true"]);
    run.refused("DNS lookup failed");
    assert_eq!(run.code, 75, "EX_TEMPFAIL");
    assert_eq!(state(&signet), before);
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let signet = installation("127.0.0.1:9");
    let before = state(&signet);
    std::fs::write(
        signet.dir.path().join("corrupt.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let corrupt = signet.dir.path().join("corrupt.pem").display().to_string();
    for (args, why) in [
        (
            vec!["dkim", "get", "nosuch.example"],
            "nosuch.example is not an accepted domain",
        ),
        (
            vec!["domain", "add", "contoso", "bad..example"],
            "'bad..example' is not a valid domain name: it has an empty label",
        ),
        (
            vec!["domain", "add", "contoso", "bad-.example"],
            "starts or ends with '-'",
        ),
        (
            vec!["domain", "add", "nobody", "x.example"],
            "tenant 'nobody' does not exist",
        ),
        (
            vec!["dkim", "rotate", "contoso.com", "--key-size", "4096"],
            "key size '4096' is not supported: use 1024 or 2048",
        ),
        (
            vec!["dkim", "new", "contoso.com", "--algorithm", "rsa-sha1"],
            "RFC 8301",
        ),
        (
            vec!["dkim", "import", "contoso.com", "--key", &corrupt],
            "not a readable PEM private key",
        ),
        (
            vec!["dkim", "import", "contoso.com", "--key", "/nonexistent.pem"],
            "cannot read /nonexistent.pem",
        ),
        (
            vec![
                "dkim",
                "set",
                "contoso.mail.dkim.example.net",
                "--enabled",
                "true",
            ],
            "can never be DKIM-enabled",
        ),
        (
            vec!["dkim", "new", "contoso.mail.dkim.example.net"],
            "can never be DKIM-enabled",
        ),
        (
            vec!["dkim", "new", "contoso.com"],
            "already has a DKIM signing config",
        ),
        (
            vec!["dkim", "remove", "contoso.dkim.example.net"],
            "cannot be removed",
        ),
        (vec!["dkim", "rotate", "contoso.com"], "not enabled"),
        (vec!["tenant", "add", "contoso"], "already exists"),
        (
            vec!["tenant", "remove", "contoso"],
            "still has accepted domains",
        ),
        (
            vec!["domain", "add", "contoso", "foo.dkim.example.net"],
            "inside the key zone",
        ),
    ] {
        let run = signet.run(&args);
        assert_ne!(run.code, 0, "{args:?} succeeded");
        let mut lines = run.stderr.lines();
        let first = lines.next().unwrap_or_default();
        assert!(
            first.contains(why),
            "{args:?}: expected {why:?} in the first line of {:?}",
            run.stderr
        );
        assert!(
            lines.all(|l| l.is_empty() || l == "For more information, try '--help'."),
            "{args:?}: one line, and clap's pointer to --help for what it parsed: {:?}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?} printed {:?}", run.stdout);
    }
    assert_eq!(state(&signet), before);
}

#[test]
fn a_missing_installation_or_master_key_is_explained() {
    let signet = Signet::new();
    signet
        .run(&["tenant", "list"])
        .refused("no signet installation in");
    signet
        .run(&["tenant", "list"])
        .refused("run `signet init --key-zone ZONE` first");

    let signet = installation("127.0.0.1:9");
    let before = state(&signet);
    let key = signet.data_dir().join("master.key");
    let text = std::fs::read_to_string(&key).unwrap();

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    signet
        .run(&["tenant", "list"])
        .refused("readable by other users");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    std::fs::write(&key, "not a key").unwrap();
    signet
        .run(&["domain", "add", "contoso", "new.example"])
        .refused("master key");
    std::fs::remove_file(&key).unwrap();
    signet
        .run(&["domain", "add", "contoso", "new.example"])
        .refused("cannot read the master key");

    std::fs::write(&key, &text).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(state(&signet), before);

    signet
        .run(&["init", "--key-zone", ZONE])
        .refused("already exists");
    let fresh = Signet::new();
    fresh
        .run(&["init", "--key-zone", "not a zone"])
        .refused("not a valid domain name");
    assert!(
        !fresh.data_dir().exists(),
        "a refused init leaves nothing behind"
    );
}

#[test]
fn connectors_are_added_listed_and_removed_without_showing_secrets() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet.run(&["tenant", "add", "fabrikam"]).ok();
    signet
        .run(&[
            "connector",
            "add",
            "contoso",
            "office",
            "--from",
            "192.0.2.0/24",
            "2001:db8::/48",
        ])
        .ok();
    signet
        .run_with_stdin(
            &[
                "connector",
                "add",
                "contoso",
                "app",
                "--login",
                "app@contoso.com",
                "--password-stdin",
            ],
            b"correct horse battery\n",
        )
        .ok();
    signet
        .run(&["connector", "add", "fabrikam", "lan", "--from", "192.0.2.7"])
        .refused("overlaps 192.0.2.0/24 of tenant 'contoso'");
    signet
        .run(&["connector", "add", "fabrikam", "all", "--from", "0.0.0.0/0"])
        .refused("never an open relay");
    let bad = signet.run(&[
        "connector",
        "add",
        "fabrikam",
        "x",
        "--from",
        "not-a-network",
    ]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("is not a network"), "{}", bad.stderr);

    let list = signet.run(&["connector", "list"]).ok().to_string();
    assert!(
        list.contains("office") && list.contains("192.0.2.0/24 2001:db8::/48"),
        "{list}"
    );
    assert!(list.contains("login app@contoso.com"), "{list}");
    let json = signet.run(&["connector", "list", "--format", "json"]);
    let audit = signet.run(&["audit", "--format", "json"]);
    let everything = format!("{list}{}{}", json.ok(), audit.ok());
    assert!(
        !everything.contains("battery") && !everything.contains("argon2"),
        "no password or hash is ever shown"
    );

    signet
        .run(&["tenant", "remove", "contoso"])
        .refused("still has");
    signet
        .run(&["connector", "remove", "contoso", "office"])
        .ok();
    signet
        .run(&["connector", "remove", "contoso", "office"])
        .refused("no connector named 'office'");
}

/// `signet ARGS` with a deadline (`timeout`), for `serve` runs that must stop by themselves.
fn run_briefly(signet: &Signet, args: &[&str]) -> support::Run {
    let output = std::process::Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_signet"))
        .arg("--data-dir")
        .arg(signet.data_dir())
        .args(args)
        .env_remove("SIGNET_MASTER_KEY")
        .output()
        .unwrap();
    support::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `serve` on free ports, with `extra` arguments overriding them.
fn serve_briefly(signet: &Signet, extra: &[&str]) -> support::Run {
    let mut args = vec!["serve".to_string()];
    for flag in ["--dns-listen", "--relay-listen", "--submission-listen"] {
        if !extra.contains(&flag) {
            args.push(flag.into());
            args.push(format!("127.0.0.1:{}", support::free_port()));
        }
    }
    args.extend(extra.iter().map(ToString::to_string));
    run_briefly(signet, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn command_line_mistakes_get_the_whole_message_and_exit_2() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    for (args, expected) in [
        (
            vec!["init"],
            &[
                "error: the following required arguments were not provided:",
                "--key-zone <KEY_ZONE>",
                "Usage: signet init",
            ][..],
        ),
        (
            vec!["dkim", "set", "contoso.com", "--enabled", "maybe"],
            &[
                "invalid value 'maybe' for '--enabled <ENABLED>'",
                "[possible values: true, false]",
            ],
        ),
        (
            vec!["records", "contoso.com", "--format", "yaml"],
            &["[possible values: table, zone, json]"],
        ),
        (
            vec!["dkim", "get", "--format", "yaml"],
            &["[possible values: list, table, json]"],
        ),
        (
            vec!["domian", "list"],
            &[
                "unrecognized subcommand 'domian'",
                "a similar subcommand exists: 'domain'",
            ],
        ),
        (
            vec![],
            &[
                "requires a subcommand",
                "[subcommands: init, tenant, domain",
                "Usage: signet [OPTIONS] <COMMAND>",
            ],
        ),
        (
            vec!["tenant"],
            &["Usage: signet tenant [OPTIONS] <COMMAND>", "add", "remove"],
        ),
    ] {
        let run = signet.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
        for text in expected {
            assert!(
                run.stderr.contains(text),
                "{args:?}: expected {text:?} in:\n{}",
                run.stderr
            );
        }
    }

    // `signet` alone: the whole help, as a mistake.
    let bare = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&bare.stderr);
    assert_eq!(bare.status.code(), Some(2), "{help}");
    for text in [
        "Usage: signet [OPTIONS] <COMMAND>",
        "Commands:",
        "  tenant ",
    ] {
        assert!(help.contains(text), "expected {text:?} in:\n{help}");
    }

    // Asked-for help and the version go to stdout, with 0.
    let help = signet.run(&["tenant", "--help"]);
    assert!(help.ok().contains("Usage: signet tenant"), "{help:?}");
    assert!(signet.run(&["--version"]).ok().starts_with("signet "));
    let serve = signet.run(&["serve", "--help"]).ok().to_string();
    for part in [
        "key-zone DNS",
        "relay",
        "submission",
        "delivery",
        "scheduler",
    ] {
        assert!(serve.contains(part), "serve --help names {part}:\n{serve}");
    }

    // A domain too long to delegate is an invalid name like any other: 2.
    let long = format!("{}.example", "a".repeat(50));
    for name in [long.as_str(), "bad..example"] {
        let run = signet.run(&["domain", "add", "contoso", name]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("is not a valid domain name"), "{run:?}");
    }
}

#[test]
fn configuration_mistakes_are_shown_with_their_line_and_key() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let path = signet.data_dir().join("signet.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let line_of = |text: &str| {
        good.lines()
            .position(|l| l.starts_with(text))
            .map(|i| i + 1)
            .unwrap()
    };
    let file = path.display().to_string();
    for (from, to, first_line, underline) in [
        (
            "delay = \"96h\"",
            "delay = \"an hour\"",
            format!(
                "error: {file}, line {}, column 9: [rotation] delay: 'an hour' is not a duration",
                line_of("delay =")
            ),
            "delay = \"an hour\"          # from rotate to the earliest switch-over (RotateOnDate)\n   |         ^^^^^^^^^\n",
        ),
        (
            "ttl = 3600",
            "ttl = \"an hour\"",
            format!(
                "error: {file}, line {}, column 7: [dns] ttl: invalid type: string \"an hour\", expected u32",
                line_of("ttl =")
            ),
            "ttl = \"an hour\"\n   |       ^^^^^^^^^\n",
        ),
        (
            "retention = ",
            "retension = ",
            format!(
                "error: {file}, line {}, column 1: [rotation] retension: unknown field `retension`",
                line_of("retention =")
            ),
            "retension = \"7d\"",
        ),
    ] {
        std::fs::write(&path, good.replace(from, to)).unwrap();
        let run = signet.run(&["tenant", "list"]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.starts_with(&first_line),
            "expected {first_line:?} first in:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains(underline), "{}", run.stderr);
    }
    std::fs::write(&path, good).unwrap();
    signet.run(&["tenant", "list"]).ok();
}

#[test]
fn a_changed_key_zone_is_refused_while_domains_exist() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let before = state(&signet);
    let path = signet.data_dir().join("signet.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        good.replace(
            &format!("key_zone = \"{ZONE}\""),
            "key_zone = \"keys.example.org\"",
        ),
    )
    .unwrap();
    let why = format!(
        "key_zone is keys.example.org, but this installation's 2 accepted domains were set up under {ZONE}"
    );
    for args in [
        &["tenant", "list"][..],
        &["records", "contoso.dkim.example.net"],
        &["tick"],
        &["zone", "export"],
    ] {
        let refused = signet.run(args).refused(&why).to_string();
        assert!(
            refused.contains(&format!("Set key_zone = \"{ZONE}\" again")),
            "{refused}"
        );
        assert!(refused.contains("signet.toml"), "{refused}");
    }
    let serve = serve_briefly(&signet, &[]);
    assert_ne!(serve.code, 0, "{serve:?}");
    assert!(serve.stderr.contains(&why), "{}", serve.stderr);
    std::fs::write(&path, good).unwrap();
    assert_eq!(state(&signet), before, "nothing changed meanwhile");

    // Before any tenant exists the zone may still change.
    let fresh = Signet::new();
    fresh.run(&["init", "--key-zone", ZONE]).ok();
    let path = fresh.data_dir().join("signet.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            &format!("key_zone = \"{ZONE}\""),
            "key_zone = \"keys.example.org\"",
        ),
    )
    .unwrap();
    let added = fresh.run(&["tenant", "add", "contoso"]).ok().to_string();
    assert!(added.contains("contoso.keys.example.org"), "{added}");
}

#[test]
fn the_installation_is_private_and_checked_at_start() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let data = signet.data_dir();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let database = data.join("signet.db");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&database), 0o600, "database");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master key");
    let before = state(&signet);

    let wal = data.join("signet.db-wal");
    let spool = data.join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (path, open, what, fix) in [
        (&database, 0o644, "the database", "600"),
        (&data, 0o755, "the data directory", "700"),
        (&wal, 0o644, "the database journal", "600"),
        (&spool, 0o750, "the spool", "700"),
    ] {
        if !path.exists() {
            std::fs::write(path, b"").unwrap();
        }
        let private = mode(path);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(open)).unwrap();
        let why = format!(
            "{what} {} is readable by other users (mode {open:o}); run `chmod {fix} {}`",
            path.display(),
            path.display()
        );
        signet.run(&["tenant", "list"]).refused(&why);
        signet.run(&["queue", "list"]).refused(&why);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)).unwrap();
        if path == &wal {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(state(&signet), before);
}

#[test]
fn the_audit_log_names_the_login_of_the_uid() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let login = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap()
        .stdout;
    let login = String::from_utf8(login).unwrap().trim().to_string();
    for (tenant, user) in [("fabrikam", None), ("tailspin", Some("mallory"))] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_signet"));
        command
            .arg("--data-dir")
            .arg(signet.data_dir())
            .args(["tenant", "add", tenant])
            .env_remove("LOGNAME")
            .env_remove("SIGNET_MASTER_KEY");
        match user {
            Some(user) => command.env("USER", user),
            None => command.env_remove("USER"),
        };
        assert!(command.status().unwrap().success());
    }
    let audit: serde_json::Value =
        serde_json::from_str(signet.run(&["audit", "--format", "json"]).ok()).unwrap();
    let who: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["who"].as_str().unwrap())
        .collect();
    assert_eq!(who.len(), 3, "{who:?}");
    for actor in who {
        assert_eq!(actor, format!("cli:{login}"));
    }
}

#[test]
fn a_listener_that_cannot_start_is_named_once() {
    let signet = Signet::with_tenant("127.0.0.1:9");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns_address = udp.local_addr().unwrap().to_string();
    for (flag, address, what) in [
        ("--relay-listen", &address, "relay listener"),
        ("--submission-listen", &address, "submission listener"),
        ("--dns-listen", &dns_address, "key-zone DNS server"),
    ] {
        let run = serve_briefly(&signet, &[flag, address]);
        assert_ne!(run.code, 0, "{run:?}");
        let last = run.stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            format!("error: {what} {address}: address already in use"),
            "{}",
            run.stderr
        );
        assert_eq!(
            run.stderr.to_lowercase().matches("already in use").count(),
            1,
            "{}",
            run.stderr
        );
    }
}
