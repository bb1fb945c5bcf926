//! The HTTP API over real HTTP against `signet serve` (curl as the client): a token made with the
//! CLI, the same config JSON as `signet dkim get --format json`, enabling refused with the CNAMEs
//! to publish until a real DNS server (Knot) serves them, a rotation, and the audit naming the
//! token; then an admin token that sets up a tenant, a domain and a connector through the API,
//! and `/metrics` (checked by `promtool`) counting a message relayed through `swaks`.

#![allow(clippy::too_many_lines)] // the scenario reads top to bottom, step by step

mod support;

use std::process::Command;

use serde_json::Value;
use support::{Knot, Signet, customer_zone, free_port};

const ZONE: &str = "dkim.example.net";

/// One request with curl: (status, JSON body; null when empty). `token` None sends no
/// Authorization header.
fn http(method: &str, url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let (status, body) = http_text(method, url, token, body);
    if body.is_empty() {
        return (status, Value::Null);
    }
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, json)
}

/// One request with curl: (status, body as text).
fn http_text(method: &str, url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "30", "-X", method])
        .args([
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
        ]);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if !body.is_empty() {
        curl.args(["--data-binary", body]);
    }
    let out = curl
        .arg(url)
        .output()
        .expect("curl is not installed: run .ci/setup (Debian package curl)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    assert!(!body.contains("PRIVATE KEY"), "{body}");
    (status.parse().unwrap(), body.to_string())
}

fn cname(n: u8) -> (String, String) {
    (
        format!("selector{n}._domainkey"),
        format!("selector{n}-contoso-com._domainkey.contoso.{ZONE}."),
    )
}

#[test]
fn the_api_enables_once_the_cnames_are_served_and_rotates() {
    let customer = Knot::start(&[("contoso.com", customer_zone("contoso.com", &[]))]);
    let signet = Signet::new();
    signet
        .run(&[
            "init",
            "--key-zone",
            ZONE,
            "--resolver",
            &customer.address(),
        ])
        .ok();
    signet.run(&["tenant", "add", "contoso"]).ok();
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    let made = signet.run(&["token", "add", "ops", "--tenant", "contoso"]);
    let token = made.ok().trim().to_string();
    assert_eq!(token.len(), 43, "32 bytes in base64url: {token}");
    assert!(
        made.stderr.contains("shown only this once"),
        "{}",
        made.stderr
    );
    let list = signet.run(&["token", "list"]).ok().to_string();
    assert!(
        list.contains("ops") && list.contains("tenant:contoso"),
        "{list}"
    );
    assert!(!list.contains(&token), "the token is never shown again");
    assert!(
        !std::fs::read(signet.data_dir().join("signet.db"))
            .unwrap()
            .windows(token.len())
            .any(|w| w == token.as_bytes())
    );

    let http_port = free_port();
    let listen = format!("127.0.0.1:{http_port}");
    let server = signet.serve_with(free_port(), ZONE, &["--http-listen", &listen]);
    support::wait_for(std::time::Duration::from_secs(10), "the ready line", || {
        server
            .log_text()
            .contains(&format!("http api up on {listen}"))
    });
    let base = format!("http://{listen}");
    let config = format!("{base}/api/v1/dkim/contoso.com");

    assert_eq!(http("GET", &format!("{base}/healthz"), None, "").0, 200);
    assert_eq!(http("GET", &format!("{base}/readyz"), None, "").0, 200);
    let (status, body) = http("GET", &config, None, "");
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &Value::from("unauthorized"))
    );
    let (status, shown) = http("GET", &config, Some(&token), "");
    assert_eq!(status, 200);
    let cli: Value = serde_json::from_str(
        signet
            .run(&["dkim", "get", "contoso.com", "--format", "json"])
            .ok(),
    )
    .unwrap();
    assert_eq!(shown, cli, "the API and the CLI show the same JSON");

    // Enabling while the customer's zone has no CNAMEs: 409 with what to publish.
    let (status, refused) = http("PATCH", &config, Some(&token), r#"{"Enabled": true}"#);
    assert_eq!(status, 409, "{refused}");
    let error = &refused["error"];
    assert_eq!(error["code"], "cname_missing");
    for (index, n) in [1u8, 2].iter().enumerate() {
        let (name, target) = cname(*n);
        assert_eq!(
            error["records"][index]["name"],
            format!("{name}.contoso.com")
        );
        assert_eq!(
            error["records"][index]["value"],
            target.trim_end_matches('.')
        );
        assert_eq!(error["found"][index]["found"], "no CNAME record found");
    }

    // The customer publishes them (the same port, so signet's resolver setting reaches them).
    let port = customer.port;
    drop(customer);
    let records: Vec<(String, String)> = [1, 2].into_iter().map(cname).collect();
    let mut rows: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|(name, target)| (name.as_str(), "CNAME", target.as_str()))
        .collect();
    rows.push(("@", "TXT", "\"v=spf1 ip4:192.0.2.1 -all\""));
    let _customer = Knot::start_on(
        port,
        &[("contoso.com", customer_zone("contoso.com", &rows))],
    );
    let (status, enabled) = http("PATCH", &config, Some(&token), r#"{"Enabled": true}"#);
    assert_eq!(status, 200, "{enabled}");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["status"], "Valid");

    let (status, rotated) = http("POST", &format!("{config}/rotate"), Some(&token), "");
    assert_eq!(status, 200, "{rotated}");
    assert!(
        rotated["rotate_on_date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{rotated}"
    );
    assert_eq!(rotated["selector_after_rotate_on_date"], "selector2");

    let audit: Value = serde_json::from_str(
        signet
            .run(&["audit", "--domain", "contoso.com", "--format", "json"])
            .ok(),
    )
    .unwrap();
    let last = audit.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["who"], &last["what"]),
        (&Value::from("token:ops"), &Value::from("dkim.rotate"))
    );

    // Verify resolves through [resolver] (Knot here), as `signet verify --json` does; analyze
    // needs no DNS. Any token may call them.
    let mail =
        "From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject: hi\r\n\r\nHello.\r\n";
    let verify = format!(
        "{base}/api/v1/verify?client_ip=192.0.2.1&helo=app.contoso.com&mail_from=joe@contoso.com"
    );
    let (status, report) = http("POST", &verify, Some(&token), mail);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["spf"]["result"], "pass", "{report}");
    let file = signet.dir.path().join("verify.eml");
    std::fs::write(&file, mail).unwrap();
    let cli = signet.run(&[
        "verify",
        "--json",
        "--client-ip",
        "192.0.2.1",
        "--helo",
        "app.contoso.com",
        "--mail-from",
        "joe@contoso.com",
        file.to_str().unwrap(),
    ]);
    let cli: Value = serde_json::from_str(&cli.stdout).unwrap();
    assert_eq!(report, cli, "the API and signet verify --json agree");
    let (status, bad) = http("POST", &format!("{verify}&client_ip=x"), Some(&token), mail);
    assert_eq!(status, 400, "{bad}");
    let analyzed = "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=contoso.com\r\n";
    let (status, analysis) = http(
        "POST",
        &format!("{base}/api/v1/analyze"),
        Some(&token),
        analyzed,
    );
    assert_eq!(status, 200, "{analysis}");
    std::fs::write(&file, analyzed).unwrap();
    let cli: Value = serde_json::from_str(
        signet
            .run(&["analyze", "--json", file.to_str().unwrap()])
            .ok(),
    )
    .unwrap();
    assert_eq!(analysis, cli, "the API and signet analyze --json agree");

    signet.run(&["token", "remove", "ops"]).ok();
    assert_eq!(
        http("GET", &config, Some(&token), "").0,
        401,
        "a removed token is refused"
    );
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn tokens_need_one_scope_and_an_existing_tenant() {
    let signet = Signet::new();
    signet.run(&["init", "--key-zone", ZONE]).ok();
    signet.run(&["tenant", "add", "contoso"]).ok();
    for args in [
        &["token", "add", "x"][..],
        &["token", "add", "x", "--admin", "--tenant", "contoso"],
        &["token", "add", "a b", "--admin"],
    ] {
        assert_eq!(signet.run(args).code, 2, "{args:?}");
    }
    signet
        .run(&["token", "add", "x", "--tenant", "nobody"])
        .refused("tenant 'nobody' does not exist");
    signet.run(&["token", "add", "x", "--admin"]).ok();
    signet
        .run(&["token", "add", "x", "--admin"])
        .refused("already exists");
    signet
        .run(&["token", "add", "ci", "--tenant", "contoso"])
        .ok();
    signet
        .run(&["tenant", "remove", "contoso"])
        .refused("still has API tokens: ci");
    let audit = signet.run(&["audit"]).ok().to_string();
    assert!(audit.contains("token.add"), "{audit}");
    signet.run(&["token", "remove", "ci"]).ok();
    signet
        .run(&["token", "remove", "ci"])
        .refused("no token is named 'ci'");
    signet.run(&["tenant", "remove", "contoso"]).ok();
}

/// The value of the sample `series` in exposition text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[test]
fn an_admin_token_sets_up_a_tenant_and_metrics_count_relayed_mail() {
    let signet = Signet::new();
    signet.run(&["init", "--key-zone", ZONE]).ok();
    let admin = signet
        .run(&["token", "add", "root", "--admin"])
        .ok()
        .trim()
        .to_string();
    let toml = signet.data_dir().join("signet.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("# metrics_token = ", "metrics_token = \"scrape-me\" # ")
        // Nothing listens there: relayed mail stays queued, deferred, for GET /queue.
        .replace(
            "# smart_host = \"mail.example.net:25\"",
            &format!("smart_host = \"127.0.0.1:{}\" #", free_port()),
        );
    std::fs::write(&toml, text).unwrap();

    let (http_port, relay_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{http_port}");
    let server = signet.serve_with(
        free_port(),
        ZONE,
        &[
            "--http-listen",
            &listen,
            "--relay-listen",
            &format!("127.0.0.1:{relay_port}"),
        ],
    );
    support::wait_for(std::time::Duration::from_secs(10), "the ready line", || {
        server
            .log_text()
            .contains(&format!("http api up on {listen}"))
    });
    let api = |path: &str| format!("http://{listen}/api/v1{path}");
    let admin = Some(admin.as_str());

    let (status, tenant) = http("POST", &api("/tenants"), admin, r#"{"name": "contoso"}"#);
    assert_eq!(status, 201, "{tenant}");
    assert_eq!(tenant["initial_domain"], format!("contoso.{ZONE}"));
    let body = r#"{"tenant": "contoso", "domain": "contoso.com"}"#;
    let (status, domain) = http("POST", &api("/domains"), admin, body);
    assert_eq!(status, 201, "{domain}");
    let (status, config) = http("GET", &api("/dkim/contoso.com"), admin, "");
    assert_eq!(
        (status, &config["status"]),
        (200, &Value::from("CnameMissing"))
    );
    let cli: Value =
        serde_json::from_str(signet.run(&["domain", "list", "--format", "json"]).ok()).unwrap();
    let (_, listed) = http("GET", &api("/domains"), admin, "");
    assert_eq!(listed, cli, "the API and the CLI list the same JSON");
    let body = r#"{"tenant": "contoso", "name": "lan", "from": ["127.0.0.1/32"]}"#;
    let (status, connector) = http("POST", &api("/connectors"), admin, body);
    assert_eq!(status, 201, "{connector}");
    let audit = signet.run(&["audit", "--format", "json"]).ok().to_string();
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let last = audit.as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["who"], &last["what"]),
        (&Value::from("token:root"), &Value::from("connector.add"))
    );

    let metrics = format!("http://{listen}/metrics");
    assert_eq!(http("GET", &metrics, None, "").0, 401);
    assert_eq!(
        http("GET", &metrics, admin, "").0,
        401,
        "not the metrics token"
    );
    let (status, before) = http_text("GET", &metrics, Some("scrape-me"), "");
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        sample(&before, "signet_relay_accepted_total"),
        Some(0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "signet_configs{status=\"CnameMissing\"}"),
        Some(1)
    );
    assert_eq!(sample(&before, "signet_configs{status=\"Valid\"}"), Some(1));
    assert_eq!(
        sample(
            &before,
            &format!(
                "signet_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1)
    );
    promtool_accepts(&before);

    // The running server's mail path sees the new connector within a second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let message = signet.dir.path().join("message.eml");
    std::fs::write(
        &message,
        "From: Joe <joe@contoso.com>\r\nTo: ann@example.org\r\nSubject: counted\r\n\r\nHello.\r\n",
    )
    .unwrap();
    let said = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{relay_port}")])
        .args([
            "--from",
            "joe@contoso.com",
            "--to",
            "ann@example.org",
            "--helo",
            "app.contoso.com",
            "--data",
        ])
        .arg(&message)
        .output()
        .expect("swaks is installed: run .ci/setup");
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("\n<-  250 "), "{said}");
    let (_, after) = http_text("GET", &metrics, Some("scrape-me"), "");
    assert_eq!(
        sample(&after, "signet_relay_accepted_total"),
        Some(1),
        "{after}"
    );
    assert_eq!(
        sample(&after, "signet_relay_signed_total"),
        Some(1),
        "{after}"
    );
    promtool_accepts(&after);

    // The message waits in the queue (the smart host does not answer): the API lists it
    // as `signet queue list --format json` does; another tenant's token does not see it.
    let (status, queue) = http("GET", &api("/queue"), admin, "");
    assert_eq!(status, 200, "{queue}");
    let cli: Value =
        serde_json::from_str(signet.run(&["queue", "list", "--format", "json"]).ok()).unwrap();
    let ids = |list: &Value| -> Vec<(Value, Value)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].clone(), e["tenant"].clone()))
            .collect()
    };
    assert_eq!(ids(&queue), ids(&cli), "{queue} {cli}");
    assert_eq!(queue[0]["tenant"], "contoso", "{queue}");
    assert_eq!(queue[0]["to"], "ann@example.org", "{queue}");
    http("POST", &api("/tenants"), admin, r#"{"name": "fabrikam"}"#);
    let other = signet
        .run(&["token", "add", "fab", "--tenant", "fabrikam"])
        .ok()
        .trim()
        .to_string();
    let (status, none) = http("GET", &api("/queue"), Some(&other), "");
    assert_eq!((status, none), (200, Value::Array(Vec::new())));
    assert_eq!(server.stop(), Some(0));
}

/// `promtool check metrics` (Debian package prometheus) reads the text from standard input.
fn promtool_accepts(text: &str) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed: run .ci/setup (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
