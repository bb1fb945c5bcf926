//! The web admin page in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver by `chromedriver`, against `signet serve` on loopback, with the customer's zone
//! served by Knot. The browser signs in with a tenant token, is refused enabling while the
//! CNAMEs are missing (the page shows the records), enables once Knot serves them, rotates the
//! key and reads the new `RotateOnDate` in the domain's pane, analyzes a pasted header and signs
//! out; a raw request with the session cookie but no CSRF token is refused with 403.
//!
//! Screenshots of the DKIM tab and of the domain's pane are written to a temporary directory,
//! and to `docs/screenshots/` when `SIGNET_UPDATE_SCREENSHOTS=1` (the README shows those).
//!
//! The WebDriver client is a few lines over `TcpStream` and `serde_json`: HTTP/1.1 with
//! `Connection: close`, one request per connection. chromedriver is started once for this
//! binary (it holds one test) and stopped by its PID on drop.

#![allow(clippy::too_many_lines)] // the scenario reads top to bottom

mod support;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Knot, Signet, customer_zone, free_port, wait_for};

const ZONE: &str = "dkim.example.net";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP/1.1 request over a fresh connection (`Connection: close`): (status, headers, body).
/// The body is read by its `Content-Length` (or chunks), not to the end of the stream: a server
/// need not close first.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(2)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let mut more = |raw: &mut Vec<u8>| {
        let n = stream.read(&mut buffer).unwrap();
        raw.extend_from_slice(&buffer[..n]);
        n > 0
    };
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        assert!(
            more(&mut raw),
            "no HTTP head in {:?}",
            String::from_utf8_lossy(&raw)
        );
    };
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let start = split + 4;
    let body = if let Some(length) = header("content-length") {
        let length: usize = length.parse().unwrap();
        while raw.len() < start + length {
            assert!(more(&mut raw), "the body ended early");
        }
        raw[start..start + length].to_vec()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while !raw[start..].ends_with(b"0\r\n\r\n") {
            assert!(more(&mut raw), "the chunks ended early");
        }
        unchunk(&raw[start..])
    } else {
        while more(&mut raw) {}
        raw[start..].to_vec()
    };
    (status, headers, String::from_utf8(body).unwrap())
}

/// A chunked body, joined.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&raw[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// chromedriver on a free loopback port; killed (by PID) on drop.
struct Driver {
    port: u16,
    child: Child,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "chromium is not installed: run .ci/setup (Debian packages chromium chromium-driver)"
        );
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { port, child };
        wait_for(Duration::from_secs(30), "chromedriver to answer", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok_and(|_| {
                http(port, "GET", "/status", &[], "")
                    .2
                    .contains("\"ready\":true")
            })
        });
        driver
    }

    /// A WebDriver command; panics on a WebDriver error. Returns `value`.
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        let text = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, _, answer) = http(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json; charset=utf-8")],
            &text,
        );
        let answer: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}"));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    /// A new headless Chromium.
    fn browser(&self) -> Browser<'_> {
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--window-size=1280,900", "--disable-dev-shm-usage"],
                },
                "goog:loggingPrefs": {"browser": "ALL"},
            }}
        });
        let value = self.command("POST", "/session", &capabilities);
        Browser {
            driver: self,
            id: value["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("no browser session: {value}"))
                .to_string(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed on drop.
struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        self.driver
            .command(method, &format!("/session/{}{path}", self.id), body)
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", &json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            &json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), &json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            &json!({ "text": text }),
        );
    }

    /// Runs `script` in the page (`arguments[0]` is `arg`) and returns its value.
    fn run(&self, script: &str, arg: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": [arg] }),
        )
    }

    /// The text of the first element matching `css`; null when there is none.
    fn text(&self, css: &str) -> Value {
        self.run(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            css,
        )
    }

    /// Whether an element matching `css` exists and is not hidden (nor inside a hidden one).
    fn visible(&self, css: &str) -> bool {
        self.run(
            "const e = document.querySelector(arguments[0]); \
             return !!e && e.getClientRects().length > 0;",
            css,
        ) == Value::Bool(true)
    }

    /// Waits (30 s at most) until `css`'s text contains `wanted`; returns the text.
    fn wait_text(&self, css: &str, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text(css);
            if let Some(text) = text.as_str()
                && text.contains(wanted)
            {
                return text.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{css} never held {wanted:?}; it holds {text}; the page: {}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_visible(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.visible(css) {
            assert!(
                Instant::now() < deadline,
                "{css} never showed; the page: {}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn checked(&self, css: &str) -> bool {
        self.run("return document.querySelector(arguments[0]).checked;", css) == Value::Bool(true)
    }

    /// A PNG of the viewport, saved as `name` in `dir` (and in `docs/screenshots/` when
    /// `SIGNET_UPDATE_SCREENSHOTS=1`).
    fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let encoded = self.command("GET", "/screenshot", &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        let path = dir.join(name);
        std::fs::write(&path, &png).unwrap();
        if std::env::var("SIGNET_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(name), &png).unwrap();
        }
        path
    }

    /// The browser's cookie `name`, as WebDriver sees it (HttpOnly ones included).
    fn cookie(&self, name: &str) -> Option<Value> {
        let cookies = self.command("GET", "/cookie", &Value::Null);
        cookies
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    /// Nothing in the page is wider than the window (no sideways scrolling); else names the
    /// elements whose content spills over.
    fn assert_fits(&self, what: &str) {
        let fits = self.run(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            "",
        );
        assert_eq!(
            fits,
            json!(true),
            "{what} is wider than a phone's screen; spilling over: {}",
            self.run(
                "return [...document.querySelectorAll('body *')]\
                   .filter(e => e.scrollWidth > e.clientWidth + 1 \
                                && getComputedStyle(e).overflowX === 'visible')\
                   .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' \
                             + e.scrollWidth + '>' + e.clientWidth).slice(0, 12).join(', ');",
                ""
            )
        );
    }

    /// The browser console's messages so far.
    fn console(&self) -> Vec<String> {
        self.command("POST", "/se/log", &json!({"type": "browser"}))
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = http(
            self.driver.port,
            "DELETE",
            &format!("/session/{}", self.id),
            &[],
            "",
        );
    }
}

fn cname(n: u8) -> (String, String) {
    (
        format!("selector{n}._domainkey"),
        format!("selector{n}-contoso-com._domainkey.contoso.{ZONE}."),
    )
}

/// A request to signet's HTTP listener with a bearer token: (status, JSON).
fn api(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, _, text) = http(
        port,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn the_page_signs_in_enables_rotates_analyzes_and_signs_out_in_chromium() {
    let customer = Knot::start(&[("contoso.com", customer_zone("contoso.com", &[]))]);
    let signet = Signet::with_tenant(&customer.address());
    signet
        .run(&["domain", "add", "contoso", "contoso.com"])
        .ok();
    signet.run(&["tenant", "add", "fabrikam"]).ok();
    signet
        .run(&["domain", "add", "fabrikam", "fabrikam.com"])
        .ok();
    let made = signet.run(&["token", "add", "web", "--tenant", "contoso"]);
    let token = made.ok().trim().to_string();

    let http_port = free_port();
    let listen = format!("127.0.0.1:{http_port}");
    let server = signet.serve_with(free_port(), ZONE, &["--http-listen", &listen]);
    wait_for(Duration::from_secs(10), "the http ready line", || {
        server
            .log_text()
            .contains(&format!("http api up on {listen}"))
    });
    let base = format!("http://{listen}");
    let shots = tempfile::tempdir().unwrap();

    let driver = Driver::start();
    let browser = driver.browser();

    // Sign in with the token.
    browser.go(&format!("{base}/"));
    browser.wait_visible("#token");
    assert!(!browser.visible("#app"), "nothing but the sign-in form yet");
    browser.type_into("#token", "not-a-token");
    browser.click("#sign-in-form button[type=submit]");
    browser.wait_text("#sign-in-error", "Not signed in: the token is not known");
    assert!(browser.cookie("signet_session").is_none());
    browser.type_into("#token", &token);
    browser.click("#sign-in-form button[type=submit]");
    browser.wait_visible("#domains tbody tr[data-domain='contoso.com']");
    browser.wait_text("#who-name", "web (tenant:contoso)");
    browser.wait_visible("#domains tbody tr[data-domain='contoso.dkim.example.net']");
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('#domains tbody tr').length;",
            ""
        ),
        json!(2),
        "a tenant's session lists its own domains only, not fabrikam.com"
    );
    let cookie = browser.cookie("signet_session").expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert_eq!(cookie["path"], "/", "{cookie}");
    assert_eq!(cookie["secure"], false, "plain HTTP: {cookie}");
    assert_eq!(
        browser.run("return document.cookie;", ""),
        json!(""),
        "scripts cannot read the session cookie"
    );
    let page_source = browser.run("return document.documentElement.outerHTML;", "");
    assert!(
        !page_source.as_str().unwrap().contains(&token),
        "the token is not kept in the page"
    );

    // Enabling while the customer's zone lacks the CNAMEs: refused, the records shown.
    let toggle = "#domains input[data-domain='contoso.com']";
    browser.click(toggle);
    let problem = browser.wait_text("#problem", "selector2._domainkey.contoso.com");
    assert!(problem.contains("CNAME record does not exist"), "{problem}");
    assert!(
        problem.contains(cname(1).1.trim_end_matches('.')),
        "the target to publish: {problem}"
    );
    assert!(problem.contains("no CNAME record found"), "{problem}");
    assert!(!browser.checked(toggle), "the toggle stays off");

    // The customer publishes them (on the same port, so signet's resolver reaches them).
    let port = customer.port;
    drop(customer);
    let records: Vec<(String, String)> = [1, 2].into_iter().map(cname).collect();
    let rows: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|(name, target)| (name.as_str(), "CNAME", target.as_str()))
        .collect();
    let _customer = Knot::start_on(
        port,
        &[("contoso.com", customer_zone("contoso.com", &rows))],
    );
    browser.click(toggle);
    browser.wait_text("#domains tr[data-domain='contoso.com'] td.status", "Valid");
    assert!(browser.checked(toggle));
    assert!(!browser.visible("#problem"));
    browser.wait_text("#status", "Signing enabled for contoso.com.");
    browser.screenshot(shots.path(), "dkim-tab.png");

    // The domain's pane: CNAMEs, what the check found; rotate after confirming.
    browser.click("#domains button.open[data-domain='contoso.com']");
    browser.wait_text("#pane-title", "contoso.com");
    browser.wait_visible("#pane");
    let cnames = browser.text("#pane-cnames").as_str().unwrap().to_string();
    for (name, target) in &records {
        assert!(cnames.contains(&format!("{name}.contoso.com")), "{cnames}");
        assert!(cnames.contains(target.trim_end_matches('.')), "{cnames}");
    }
    let found = browser.text("#pane-found").as_str().unwrap().to_string();
    assert!(
        found.contains("selector1._domainkey.contoso.com"),
        "{found}"
    );
    browser.wait_text("#pane-rotate-on-date", "no rotation under way");
    browser.wait_text("#pane-algorithm", "RsaSHA256");
    browser.click("#rotate");
    browser.wait_visible("#rotate-dialog");
    browser.click("#rotate-cancel");
    assert!(!browser.visible("#rotate-dialog"));
    browser.wait_text("#pane-rotate-on-date", "no rotation under way");
    browser.click("#rotate");
    browser.wait_visible("#rotate-dialog");
    browser.click("#rotate-confirm");
    browser.wait_text("#pane-rotate-on-date", "UTC");
    let (status, config) = api(http_port, "GET", "/api/v1/dkim/contoso.com", &token, "");
    assert_eq!(status, 200, "{config}");
    let rotate_on = config["rotate_on_date"].as_str().expect("a RotateOnDate");
    let shown = rotate_on.replace('T', " ").replace('Z', " UTC");
    let pane_date = browser.wait_text("#pane-rotate-on-date", &shown);
    assert!(pane_date.contains("selector2 after"), "{pane_date}");
    browser.wait_text("#status", &format!("signs from {rotate_on}"));
    let audit = browser.wait_text("#pane-audit", "dkim.rotate");
    assert!(audit.contains("token:web"), "audited as the token: {audit}");
    browser.run(
        "document.querySelector(arguments[0]).scrollIntoView();",
        "#pane",
    );
    browser.screenshot(shots.path(), "domain-pane.png");

    // With the session cookie but without the CSRF token, a change is refused.
    let session = browser.cookie("signet_session").unwrap();
    let cookie_header = format!("signet_session={}", session["value"].as_str().unwrap());
    let (status, _, body) = http(
        http_port,
        "PATCH",
        "/api/v1/dkim/contoso.com",
        &[
            ("Cookie", &cookie_header),
            ("Content-Type", "application/json"),
        ],
        r#"{"Enabled": false}"#,
    );
    assert_eq!(status, 403, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "forbidden", "{body}");
    let (status, _, body) = http(
        http_port,
        "POST",
        "/api/v1/dkim/contoso.com/rotate",
        &[("Cookie", &cookie_header), ("X-CSRF-Token", "guessed")],
        "",
    );
    assert_eq!(status, 403, "{body}");
    let (_, config) = api(http_port, "GET", "/api/v1/dkim/contoso.com", &token, "");
    assert_eq!(config["enabled"], true, "nothing changed");
    assert_eq!(config["rotate_on_date"], rotate_on, "nothing changed");

    // The header analyzer: what POST /api/v1/analyze explains, shown.
    let pasted = format!(
        "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=contoso.com; \
         dkim=pass header.d=contoso.com header.s=selector1\n\
         DKIM-Signature: v=1; a=rsa-sha256; d=contoso.com; s=selector1; h=from:to:subject; \
         bh={}; b={}\n\
         Received: from app.contoso.com by mx.example.org; Fri, 4 Dec 2026 10:00:00 +0000\n",
        "A".repeat(44),
        "Qm9keQ".repeat(56)
    );
    let pasted = pasted.as_str();
    let (status, analysis) = api(http_port, "POST", "/api/v1/analyze", &token, pasted);
    assert_eq!(status, 200, "{analysis}");
    browser.click("#tab-analyze");
    browser.wait_visible("#analyze-input");
    browser.type_into("#analyze-input", pasted);
    browser.click("#analyze-submit");
    let summary = analysis["headers"][0]["summary"].as_str().unwrap();
    let explained = browser.wait_text("#analysis", summary);
    assert!(explained.contains("Authentication-Results"), "{explained}");
    let meaning = analysis["headers"][0]["items"][0]["meaning"]
        .as_str()
        .unwrap();
    assert!(explained.contains(meaning), "{meaning} in {explained}");

    // The queue tab answers (the relay is on, its queue empty).
    browser.click("#tab-queue");
    browser.wait_text("#queue-note", "The queue is empty.");

    // Keyboard: the tabs follow the arrow keys.
    browser.run(
        "document.querySelector(arguments[0]).focus();",
        "#tab-queue",
    );
    let focused = browser.find("#tab-queue");
    browser.command(
        "POST",
        &format!("/element/{focused}/value"),
        &json!({"text": "\u{E014}"}), // ArrowRight: wraps to the first tab
    );
    assert_eq!(
        browser.run("return document.activeElement.id;", ""),
        json!("tab-dkim")
    );
    assert!(browser.visible("#panel-dkim"));

    // On a phone's width nothing is wider than the screen (tables scroll or stack).
    browser.command(
        "POST",
        "/window/rect",
        &json!({"width": 390, "height": 844}),
    );
    browser.click("#tab-dkim");
    browser.click("#domains button.open[data-domain='contoso.com']");
    browser.wait_visible("#pane");
    browser.assert_fits("the DKIM tab and the pane");
    browser.click("#tab-analyze");
    browser.wait_visible("#analysis");
    browser.assert_fits("the header analyzer");
    browser.command(
        "POST",
        "/window/rect",
        &json!({"width": 1280, "height": 900}),
    );

    // Sign out: the session is gone, its cookie refused.
    browser.click("#sign-out");
    browser.wait_visible("#token");
    browser.wait_text("#status", "Signed out.");
    assert!(
        browser.cookie("signet_session").is_none(),
        "the cookie is cleared"
    );
    let (status, _, _) = http(
        http_port,
        "GET",
        "/api/v1/dkim",
        &[("Cookie", &cookie_header)],
        "",
    );
    assert_eq!(status, 401, "a signed-out session is refused");

    let console = browser.console();
    assert!(
        !console
            .iter()
            .any(|m| m.contains("Content Security Policy")),
        "the page keeps to its own policy: {console:?}"
    );
    assert!(
        !console.iter().any(|m| m.contains("Uncaught")),
        "no script error: {console:?}"
    );
    drop(browser);
    drop(driver);
    assert_eq!(server.stop(), Some(0));
}
