//! The router driven without sockets (`oneshot`), over a real SQLite store with DNS and time
//! faked. Every response of the suite goes through [`Fixture::call`], which fails the test if a
//! body holds private key material.

#![allow(clippy::too_many_lines)] // scenarios read top to bottom

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use signet_app::{Clock, Dns, LookupError, Service, Settings};
use signet_keys::{KeyZone, MasterKey, RotationPolicy, Span, Timestamp, TokenScope};
use tower::ServiceExt as _;

use super::*;

/// Customer DNS as a table, shared by the clones the API makes per request.
#[derive(Clone, Default)]
struct FakeDns {
    cnames: Arc<Mutex<HashMap<String, String>>>,
    down: Arc<Mutex<bool>>,
}

impl Dns for FakeDns {
    async fn cname(&self, name: &str) -> Result<Option<String>, LookupError> {
        if *self.down.lock().unwrap() {
            return Err(LookupError("timed out".into()));
        }
        Ok(self.cnames.lock().unwrap().get(name).cloned())
    }

    async fn txt(&self, _name: &str) -> Result<Vec<String>, LookupError> {
        Ok(Vec::new())
    }
}

#[derive(Clone)]
struct FakeClock(Arc<AtomicI64>);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.0.load(Ordering::SeqCst))
    }
}

type TestService = Service<FakeDns, FakeClock>;

struct Fixture {
    _dir: tempfile::TempDir,
    service: Arc<TestService>,
    dns: FakeDns,
    /// The fake clock's seconds, to move time on.
    clock: Arc<AtomicI64>,
    router: axum::Router,
    admin: String,
    contoso: String,
    /// Every private key seen so far (sealed and open, base64): none may appear in a body.
    secrets: Mutex<std::collections::BTreeSet<String>>,
    /// Other text no body may hold (a connector's password).
    forbidden: Mutex<Vec<String>>,
}

/// A request's answer: status, `Retry-After`, JSON body.
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Fixture {
    /// Tenants contoso (contoso.com) and fabrikam (fabrikam.com); an admin token and a token
    /// of tenant contoso.
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = signet_store::Store::create(&dir.path().join("signet.db"))
            .await
            .unwrap();
        let settings = Settings {
            zone: KeyZone::new("dkim.example.net".parse().unwrap()),
            rotation: RotationPolicy {
                delay: Span::hours(96),
                retention: Span::days(7),
            },
            check_interval: Span::hours(1),
            rotation_interval: None,
        };
        let dns = FakeDns::default();
        let clock = Arc::new(AtomicI64::new(1_800_000_000));
        let service = Arc::new(Service::new(
            store,
            MasterKey::generate().unwrap(),
            dns.clone(),
            FakeClock(Arc::clone(&clock)),
            settings,
            "cli:test",
        ));
        for (tenant, domain) in [("contoso", "contoso.com"), ("fabrikam", "fabrikam.com")] {
            let tenant = tenant.parse().unwrap();
            service.add_tenant(&tenant).await.unwrap();
            service
                .add_domain(&tenant, &domain.parse().unwrap())
                .await
                .unwrap();
        }
        let (_, admin) = service
            .add_token(&"root".parse().unwrap(), TokenScope::Admin)
            .await
            .unwrap();
        let (_, contoso) = service
            .add_token(
                &"contoso-ci".parse().unwrap(),
                TokenScope::Tenant("contoso".parse().unwrap()),
            )
            .await
            .unwrap();
        let router = router(ApiState::new(Arc::clone(&service), 3600));
        Fixture {
            _dir: dir,
            service,
            dns,
            clock,
            router,
            admin: admin.expose().to_string(),
            contoso: contoso.expose().to_string(),
            secrets: Mutex::default(),
            forbidden: Mutex::default(),
        }
    }

    fn publish_cnames(&self, domain: &str, tenant: &str) {
        for n in [1, 2] {
            self.dns.cnames.lock().unwrap().insert(
                format!("selector{n}._domainkey.{domain}"),
                format!(
                    "selector{n}-{}._domainkey.{tenant}.dkim.example.net",
                    domain.replace('.', "-")
                ),
            );
        }
    }

    /// One request; `token` None sends no Authorization header. An empty body (204) is null.
    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: &str) -> Answer {
        let (status, headers, text) = self.send(method, uri, token, body).await;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {text}"))
        };
        Answer {
            status,
            retry_after: headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string()),
            body,
        }
    }

    /// One request, the body as text; every body is scanned for key material.
    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        self.send_with(method, uri, &headers, body).await
    }

    /// One request with the given headers, the body as text; every body is scanned.
    async fn send_with(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        self.assert_no_key_material(&text).await;
        (status, headers, text)
    }

    /// No private key, sealed or open, in any form the store or the keys could give it.
    async fn assert_no_key_material(&self, text: &str) {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        // Keys rotated in since the last call join the list (unless the store is closed).
        if let Ok(mut tx) = self.service.store().begin().await {
            for config in tx.configs().await.unwrap() {
                for (_, key) in config.slots.iter() {
                    let sealed = tx.sealed_key(&key.id).await.unwrap().unwrap();
                    let der = self.service.private_key(&key.id).await.unwrap();
                    let mut secrets = self.secrets.lock().unwrap();
                    secrets.insert(STANDARD.encode(&sealed));
                    secrets.insert(STANDARD.encode(der.pkcs8_der().unwrap().expose()));
                }
            }
        }
        for secret in self.secrets.lock().unwrap().iter() {
            // A 40-character run is far too long to occur by chance. The start of a PKCS#8 key
            // is its (shared) structure, so runs from the middle and the end (the key's own
            // bytes) too; an Ed25519 key is only 64 characters long.
            let middle = secret.len() / 2;
            let end = secret.len() - 40;
            for run in [
                &secret[..40],
                &secret[middle.min(end)..][..40],
                &secret[end..],
            ] {
                assert!(!text.contains(run), "key material in {text}");
            }
        }
        assert!(!self.secrets.lock().unwrap().is_empty());
        for word in self.forbidden.lock().unwrap().iter() {
            assert!(!text.contains(word.as_str()), "a secret in {text}");
        }
    }
}

fn message(answer: &Answer) -> &str {
    answer.body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn health_needs_no_token_and_readiness_follows_the_store() {
    let f = Fixture::new().await;
    let health = f.call("GET", "/healthz", None, "").await;
    assert_eq!(
        (health.status, &health.body),
        (StatusCode::OK, &json!({"status": "ok"}))
    );
    assert_eq!(
        f.call("GET", "/readyz", None, "").await.status,
        StatusCode::OK
    );
    f.service.store().close().await;
    let down = f.call("GET", "/readyz", None, "").await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["error"]["code"], "not_ready");
}

/// Every endpoint with a token refuses no token, a wrong token, and hides another tenant's
/// domain exactly as an absent one.
#[tokio::test]
async fn every_endpoint_refuses_strangers_and_hides_other_tenants() {
    let f = Fixture::new().await;
    let endpoints = [
        ("GET", "/api/v1/dkim/{d}", ""),
        ("PATCH", "/api/v1/dkim/{d}", r#"{"Enabled": false}"#),
        ("POST", "/api/v1/dkim/{d}/rotate", ""),
        ("GET", "/api/v1/records/{d}", ""),
        ("GET", "/api/v1/audit?domain={d}", ""),
        ("POST", "/api/v1/dkim/{d}", ""),
        ("DELETE", "/api/v1/dkim/{d}", ""),
        ("DELETE", "/api/v1/domains/{d}", ""),
    ];
    for (method, path, body) in endpoints {
        let uri = path.replace("{d}", "fabrikam.com");
        for token in [None, Some("not-a-token")] {
            let answer = f.call(method, &uri, token, body).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert_eq!(answer.body["error"]["code"], "unauthorized");
        }
        let theirs = f.call(method, &uri, Some(&f.contoso), body).await;
        let absent = f
            .call(
                method,
                &path.replace("{d}", "nobody.example"),
                Some(&f.contoso),
                body,
            )
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(
            message(&theirs).replace("fabrikam.com", "D"),
            message(&absent).replace("nobody.example", "D"),
            "{method} {uri}: another tenant's domain must look absent"
        );
        let bad = f
            .call(
                method,
                &path.replace("{d}", "not_a..domain"),
                Some(&f.admin),
                body,
            )
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{method} {path}");
        assert!(message(&bad).starts_with("domain: "), "{}", message(&bad));
    }
    for (method, uri) in [
        ("GET", "/api/v1/dkim"),
        ("GET", "/api/v1/tenants"),
        ("POST", "/api/v1/tenants"),
        ("DELETE", "/api/v1/tenants/contoso"),
        ("GET", "/api/v1/domains"),
        ("GET", "/api/v1/connectors"),
        ("POST", "/api/v1/connectors"),
        ("DELETE", "/api/v1/connectors/contoso/office"),
    ] {
        for token in [None, Some("not-a-token")] {
            let answer = f.call(method, uri, token, "").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
    }
    let unknown = f.call("GET", "/api/v1/nothing", Some(&f.admin), "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let put = f
        .call("PUT", "/api/v1/dkim/contoso.com", Some(&f.admin), "")
        .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn get_shows_the_cli_json_and_lists_page_by_page() {
    let f = Fixture::new().await;
    let one = f
        .call("GET", "/api/v1/dkim/contoso.com", Some(&f.contoso), "")
        .await;
    assert_eq!(one.status, StatusCode::OK);
    let view = signet_app::DkimView::Configured(
        f.service
            .config(&"contoso.com".parse().unwrap())
            .await
            .unwrap(),
    );
    let cli = signet_app::view::config_json(&signet_app::view::config_properties(
        &view,
        &f.service.settings().zone,
    ));
    assert_eq!(
        one.body, cli,
        "the same JSON as signet dkim get --format json"
    );
    assert_eq!(one.body["status"], "CnameMissing");
    assert!(
        one.body["selector1_public_key"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p=")
    );

    // The admin sees both tenants' four configs, two at a time.
    let mut seen = Vec::new();
    let mut uri = "/api/v1/dkim?limit=2".to_string();
    loop {
        let page = f.call("GET", &uri, Some(&f.admin), "").await;
        assert_eq!(page.status, StatusCode::OK);
        let configs = page.body["configs"].as_array().unwrap();
        assert!(configs.len() <= 2);
        seen.extend(
            configs
                .iter()
                .map(|c| c["domain"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/dkim?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "contoso.com",
            "contoso.dkim.example.net",
            "fabrikam.com",
            "fabrikam.dkim.example.net"
        ]
    );
    let own = f.call("GET", "/api/v1/dkim", Some(&f.contoso), "").await;
    let domains: Vec<&str> = own.body["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["contoso.com", "contoso.dkim.example.net"]);
    assert_eq!(own.body["next_cursor"], Value::Null);

    for (query, field) in [
        ("limit=0", "limit: "),
        ("limit=x", "limit: "),
        ("cursor=@@", "cursor: "),
    ] {
        let bad = f
            .call("GET", &format!("/api/v1/dkim?{query}"), Some(&f.admin), "")
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(message(&bad).starts_with(field), "{}", message(&bad));
    }
}

#[tokio::test]
async fn enabling_waits_for_the_cnames_and_is_audited_as_the_token() {
    let f = Fixture::new().await;
    let uri = "/api/v1/dkim/contoso.com";
    let refused = f
        .call("PATCH", uri, Some(&f.contoso), r#"{"Enabled": true}"#)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error"]["code"], "cname_missing");
    assert!(message(&refused).starts_with("CNAME record does not exist for this config."));
    assert_eq!(
        refused.body["error"]["records"][1],
        json!({
            "type": "CNAME",
            "name": "selector2._domainkey.contoso.com",
            "value": "selector2-contoso-com._domainkey.contoso.dkim.example.net"
        })
    );
    assert_eq!(
        refused.body["error"]["found"][0]["found"],
        "no CNAME record found"
    );

    *f.dns.down.lock().unwrap() = true;
    let later = f
        .call("PATCH", uri, Some(&f.contoso), r#"{"Enabled": true}"#)
        .await;
    assert_eq!(later.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(later.retry_after.as_deref(), Some("30"));
    *f.dns.down.lock().unwrap() = false;

    f.publish_cnames("contoso.com", "contoso");
    let body =
        r#"{"Enabled": true, "header_canonicalization": "Simple", "IncludeKeyExpiration": true}"#;
    let enabled = f.call("PATCH", uri, Some(&f.contoso), body).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["enabled"], true);
    assert_eq!(enabled.body["status"], "Valid");
    assert_eq!(enabled.body["header_canonicalization"], "Simple");
    assert_eq!(enabled.body["include_key_expiration"], true);

    for (body, field) in [
        (r#"{"Enabled": "yes"}"#, "Enabled: "),
        (r#"{"BodyCanonicalization": 3}"#, "BodyCanonicalization: "),
        (r#"{"Status": "Valid"}"#, "Status: "),
        ("{}", "body: "),
        ("not json", "body: "),
    ] {
        let bad = f.call("PATCH", uri, Some(&f.contoso), body).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&bad).starts_with(field), "{}", message(&bad));
    }
    let huge = format!(r#"{{"Enabled": true, "x": "{}"}}"#, "a".repeat(BODY_LIMIT));
    let too_large = f.call("PATCH", uri, Some(&f.contoso), &huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    let audit = f
        .call(
            "GET",
            "/api/v1/audit?domain=contoso.com",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK);
    let last = audit.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["who"], "token:contoso-ci");
    assert_eq!(last["what"], "dkim.set");
    assert_eq!(last["detail"]["after"]["enabled"], true);
    let bad = f
        .call("GET", "/api/v1/audit?domain=..", Some(&f.contoso), "")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Without a domain, a tenant sees its own domains' entries only; the admin sees all.
    let own = f.call("GET", "/api/v1/audit", Some(&f.contoso), "").await;
    assert!(
        own.body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| { e["domain"].as_str().unwrap().starts_with("contoso.") })
    );
    let all = f.call("GET", "/api/v1/audit", Some(&f.admin), "").await;
    assert!(
        all.body
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "token.add")
    );
}

#[tokio::test]
async fn rotation_answers_with_the_rotate_on_date() {
    let f = Fixture::new().await;
    let uri = "/api/v1/dkim/contoso.com/rotate";
    let disabled = f.call("POST", uri, Some(&f.contoso), "").await;
    assert_eq!(
        disabled.status,
        StatusCode::CONFLICT,
        "only an enabled config rotates"
    );
    f.publish_cnames("contoso.com", "contoso");
    f.call(
        "PATCH",
        "/api/v1/dkim/contoso.com",
        Some(&f.contoso),
        r#"{"enabled": true}"#,
    )
    .await;

    let bad = f
        .call("POST", uri, Some(&f.contoso), r#"{"KeySize": 512}"#)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(message(&bad).starts_with("KeySize: "), "{}", message(&bad));

    let rotated = f
        .call("POST", uri, Some(&f.contoso), r#"{"KeySize": 1024}"#)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    // 1_800_000_000 + 96 h
    assert_eq!(rotated.body["rotate_on_date"], "2027-01-19T08:00:00Z");
    assert_eq!(rotated.body["selector2_key_size"], 1024);
    assert_eq!(rotated.body["selector_after_rotate_on_date"], "selector2");

    let again = f.call("POST", uri, Some(&f.contoso), "").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"]["code"], "refused");
    assert!(
        message(&again).contains("already in progress"),
        "{}",
        message(&again)
    );
}

#[tokio::test]
async fn records_are_the_cli_json() {
    let f = Fixture::new().await;
    let answer = f
        .call("GET", "/api/v1/records/contoso.com", Some(&f.contoso), "")
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let records = f
        .service
        .records(&"contoso.com".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(answer.body, signet_app::view::records_json(&records, 3600));
    assert_eq!(
        answer.body["customer"][0]["name"],
        "selector1._domainkey.contoso.com"
    );
    assert_eq!(answer.body["key_zone"].as_array().unwrap().len(), 1);
}

/// The message an absent object gives, with its name replaced by `X`, equals the one another
/// tenant's object gives: a tenant token learns nothing from trying.
async fn assert_hidden(
    f: &Fixture,
    method: &str,
    (theirs, absent): (&str, &str),
    (their_name, absent_name): (&str, &str),
    body: (&str, &str),
) {
    let a = f.call(method, theirs, Some(&f.contoso), body.0).await;
    let b = f.call(method, absent, Some(&f.contoso), body.1).await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "{method} {theirs}: {}",
        a.body
    );
    assert_eq!(
        b.status,
        StatusCode::NOT_FOUND,
        "{method} {absent}: {}",
        b.body
    );
    assert_eq!(
        message(&a).replace(their_name, "X"),
        message(&b).replace(absent_name, "X"),
        "{method} {theirs}"
    );
}

fn names(answer: &Answer, key: &str) -> Vec<String> {
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row[key].as_str().unwrap().to_string())
        .collect()
}

async fn last_audit(f: &Fixture) -> Value {
    let all = f.call("GET", "/api/v1/audit", Some(&f.admin), "").await;
    all.body.as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn tenants_are_the_admins_and_a_tenant_token_sees_its_own() {
    let f = Fixture::new().await;
    let all = f.call("GET", "/api/v1/tenants", Some(&f.admin), "").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(names(&all, "name"), ["contoso", "fabrikam"]);
    let own = f.call("GET", "/api/v1/tenants", Some(&f.contoso), "").await;
    assert_eq!(names(&own, "name"), ["contoso"]);
    assert_eq!(own.body[0]["initial_domain"], "contoso.dkim.example.net");

    let made = f
        .call(
            "POST",
            "/api/v1/tenants",
            Some(&f.admin),
            r#"{"name": "northwind"}"#,
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["name"], "northwind");
    assert_eq!(made.body["initial_domain"], "northwind.dkim.example.net");
    assert_eq!(last_audit(&f).await["who"], "token:root");
    assert_eq!(last_audit(&f).await["what"], "tenant.add");
    let again = f
        .call(
            "POST",
            "/api/v1/tenants",
            Some(&f.admin),
            r#"{"name": "northwind"}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    for (body, field) in [
        (r#"{"name": "North Wind"}"#, "name: "),
        (r#"{"name": 3}"#, "name: "),
        ("{}", "name: is missing"),
        (r#"{"name": "x", "plan": "gold"}"#, "plan: "),
        ("[]", "body: "),
    ] {
        let bad = f
            .call("POST", "/api/v1/tenants", Some(&f.admin), body)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&bad).starts_with(field), "{}", message(&bad));
    }

    // To a tenant token, making and removing tenants is not there at all.
    let unknown = f.call("GET", "/api/v1/nothing", Some(&f.contoso), "").await;
    for (method, uri, body) in [
        ("POST", "/api/v1/tenants", r#"{"name": "mine"}"#),
        ("DELETE", "/api/v1/tenants/fabrikam", ""),
        ("DELETE", "/api/v1/tenants/contoso", ""),
        ("DELETE", "/api/v1/tenants/nobody", ""),
    ] {
        let refused = f.call(method, uri, Some(&f.contoso), body).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(refused.body, unknown.body, "{method} {uri}");
    }
    assert_eq!(f.service.tenants().await.unwrap().len(), 3);

    let held = f
        .call("DELETE", "/api/v1/tenants/contoso", Some(&f.admin), "")
        .await;
    assert_eq!(held.status, StatusCode::CONFLICT, "contoso has contoso.com");
    let bad = f
        .call("DELETE", "/api/v1/tenants/No%20Such", Some(&f.admin), "")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(message(&bad).starts_with("tenant: "), "{}", message(&bad));
    let removed = f
        .call("DELETE", "/api/v1/tenants/northwind", Some(&f.admin), "")
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    assert_eq!(last_audit(&f).await["what"], "tenant.remove");
    assert_eq!(last_audit(&f).await["who"], "token:root");
    let gone = f
        .call("DELETE", "/api/v1/tenants/northwind", Some(&f.admin), "")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn domains_are_added_and_removed_within_the_tokens_tenant() {
    let f = Fixture::new().await;
    let body = r#"{"tenant": "contoso", "domain": "contoso.org"}"#;
    let added = f
        .call("POST", "/api/v1/domains", Some(&f.contoso), body)
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(
        added.body,
        json!({"name": "contoso.org", "tenant": "contoso", "kind": "Custom",
               "when_created": "2027-01-15T08:00:00Z"})
    );
    let audit = last_audit(&f).await;
    assert_eq!(
        (&audit["who"], &audit["what"]),
        (&json!("token:contoso-ci"), &json!("domain.add"))
    );
    let config = f
        .call("GET", "/api/v1/dkim/contoso.org", Some(&f.contoso), "")
        .await;
    assert_eq!(config.body["status"], "CnameMissing");

    let own = f.call("GET", "/api/v1/domains", Some(&f.contoso), "").await;
    assert_eq!(
        names(&own, "name"),
        [
            "contoso.com",
            "contoso.dkim.example.net",
            "contoso.mail.dkim.example.net",
            "contoso.org"
        ]
    );
    assert!(names(&own, "tenant").iter().all(|t| t == "contoso"));
    let all = f.call("GET", "/api/v1/domains", Some(&f.admin), "").await;
    assert!(names(&all, "name").contains(&"fabrikam.com".to_string()));
    let theirs = f
        .call("GET", "/api/v1/domains?tenant=fabrikam", Some(&f.admin), "")
        .await;
    assert!(names(&theirs, "tenant").iter().all(|t| t == "fabrikam"));

    assert_hidden(
        &f,
        "GET",
        (
            "/api/v1/domains?tenant=fabrikam",
            "/api/v1/domains?tenant=nobody",
        ),
        ("fabrikam", "nobody"),
        ("", ""),
    )
    .await;
    assert_hidden(
        &f,
        "POST",
        ("/api/v1/domains", "/api/v1/domains"),
        ("fabrikam", "nobody"),
        (
            r#"{"tenant": "fabrikam", "domain": "fabrikam.org"}"#,
            r#"{"tenant": "nobody", "domain": "fabrikam.org"}"#,
        ),
    )
    .await;
    // Another tenant's domain is taken, without saying whose.
    let taken = f
        .call(
            "POST",
            "/api/v1/domains",
            Some(&f.contoso),
            r#"{"tenant": "contoso", "domain": "fabrikam.com"}"#,
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(
        !message(&taken).contains("fabrikam'"),
        "{}",
        message(&taken)
    );

    for (body, field) in [
        (r#"{"tenant": "contoso"}"#, "domain: is missing"),
        (r#"{"domain": "contoso.net"}"#, "tenant: is missing"),
        (
            r#"{"tenant": "contoso", "domain": "not_a..domain"}"#,
            "domain: ",
        ),
        (
            r#"{"tenant": "Con Toso", "domain": "contoso.net"}"#,
            "tenant: ",
        ),
        (
            r#"{"tenant": "contoso", "domain": "contoso.net", "x": 1}"#,
            "x: ",
        ),
    ] {
        let bad = f
            .call("POST", "/api/v1/domains", Some(&f.contoso), body)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&bad).starts_with(field), "{}", message(&bad));
    }

    let initial = f
        .call(
            "DELETE",
            "/api/v1/domains/contoso.dkim.example.net",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(initial.status, StatusCode::CONFLICT);
    let removed = f
        .call(
            "DELETE",
            "/api/v1/domains/contoso.org",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(last_audit(&f).await["what"], "domain.remove");
    let gone = f
        .call("GET", "/api/v1/dkim/contoso.org", Some(&f.contoso), "")
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn configs_are_made_and_removed_like_dkim_new_and_remove() {
    let f = Fixture::new().await;
    let uri = "/api/v1/dkim/contoso.com";
    let exists = f.call("POST", uri, Some(&f.contoso), "").await;
    assert_eq!(exists.status, StatusCode::CONFLICT);
    let removed = f.call("DELETE", uri, Some(&f.contoso), "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let audit = last_audit(&f).await;
    assert_eq!(
        (&audit["who"], &audit["what"]),
        (&json!("token:contoso-ci"), &json!("dkim.remove"))
    );
    let none = f.call("GET", uri, Some(&f.contoso), "").await;
    assert_eq!(none.body["status"], "NoDKIMKeys");

    for (body, field) in [
        (r#"{"KeySize": 512}"#, "KeySize: "),
        (r#"{"key_size": "big"}"#, "key_size: "),
        (r#"{"Algorithm": "rsa-sha1"}"#, "Algorithm: "),
        (
            r#"{"HeaderCanonicalization": "loose"}"#,
            "HeaderCanonicalization: ",
        ),
        (r#"{"Enabled": 1}"#, "Enabled: "),
        (r#"{"Status": "Valid"}"#, "Status: "),
        ("nope", "body: "),
    ] {
        let bad = f.call("POST", uri, Some(&f.contoso), body).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(message(&bad).starts_with(field), "{}", message(&bad));
    }
    let waiting = f
        .call("POST", uri, Some(&f.contoso), r#"{"Enabled": true}"#)
        .await;
    assert_eq!(waiting.status, StatusCode::CONFLICT);
    assert_eq!(waiting.body["error"]["code"], "cname_missing");

    let body = r#"{"KeySize": 1024, "Algorithm": "RsaSHA256", "header_canonicalization": "Simple", "BodyCanonicalization": "Simple"}"#;
    let made = f.call("POST", uri, Some(&f.contoso), body).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["selector1_key_size"], 1024);
    assert_eq!(made.body["algorithm"], "RsaSHA256");
    assert_eq!(made.body["header_canonicalization"], "Simple");
    assert_eq!(made.body["body_canonicalization"], "Simple");
    assert_eq!(made.body["enabled"], false);
    assert_eq!(last_audit(&f).await["what"], "dkim.new");

    f.call("DELETE", uri, Some(&f.contoso), "").await;
    f.publish_cnames("contoso.com", "contoso");
    let enabled = f
        .call(
            "POST",
            uri,
            Some(&f.contoso),
            r#"{"enabled": true, "algorithm": "ed25519"}"#,
        )
        .await;
    assert_eq!(enabled.status, StatusCode::CREATED, "{}", enabled.body);
    assert_eq!(
        (&enabled.body["enabled"], &enabled.body["status"]),
        (&json!(true), &json!("Valid"))
    );
    assert_eq!(enabled.body["algorithm"], "Ed25519SHA256");

    let initial = f
        .call(
            "DELETE",
            "/api/v1/dkim/contoso.dkim.example.net",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(initial.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn connectors_are_scoped_and_never_show_a_password() {
    let f = Fixture::new().await;
    let password = "correct horse battery staple";
    f.forbidden.lock().unwrap().push(password.to_string());
    let relay = f
        .call(
            "POST",
            "/api/v1/connectors",
            Some(&f.contoso),
            r#"{"tenant": "contoso", "name": "office", "from": ["192.0.2.0/24", "2001:db8::/32"]}"#,
        )
        .await;
    assert_eq!(relay.status, StatusCode::CREATED, "{}", relay.body);
    assert_eq!(relay.body["kind"], "relay");
    assert_eq!(relay.body["clients"], "192.0.2.0/24 2001:db8::/32");
    let audit = last_audit(&f).await;
    assert_eq!(
        (&audit["who"], &audit["what"]),
        (&json!("token:contoso-ci"), &json!("connector.add"))
    );

    let body = format!(
        r#"{{"tenant": "contoso", "name": "submit", "login": "alice", "password": "{password}"}}"#
    );
    let login = f
        .call("POST", "/api/v1/connectors", Some(&f.contoso), &body)
        .await;
    assert_eq!(login.status, StatusCode::CREATED, "{}", login.body);
    assert_eq!(login.body["clients"], "login alice");
    assert_eq!(
        f.service.authenticate("alice", password).await.unwrap(),
        Some("contoso".parse().unwrap()),
        "the password given is the one kept"
    );
    let listed = f
        .call("GET", "/api/v1/connectors", Some(&f.contoso), "")
        .await;
    assert_eq!(names(&listed, "name"), ["office", "submit"]);
    let text = listed.body.to_string();
    assert!(!text.contains("argon2"), "{text}");
    f.call("GET", "/api/v1/audit", Some(&f.admin), "").await; // scanned for the password

    // Another tenant's networks: refused, without naming that tenant to a tenant token.
    f.service
        .add_connector(
            &"fabrikam".parse().unwrap(),
            "hq",
            signet_app::NewConnector::Networks(vec!["198.51.100.0/24".parse().unwrap()]),
        )
        .await
        .unwrap();
    let overlap = f
        .call(
            "POST",
            "/api/v1/connectors",
            Some(&f.contoso),
            r#"{"tenant": "contoso", "name": "x", "from": ["198.51.100.0/25"]}"#,
        )
        .await;
    assert_eq!(overlap.status, StatusCode::CONFLICT);
    assert!(
        !message(&overlap).contains("fabrikam"),
        "{}",
        message(&overlap)
    );
    assert!(!message(&overlap).contains("hq"), "{}", message(&overlap));
    let told = f
        .call(
            "POST",
            "/api/v1/connectors",
            Some(&f.admin),
            r#"{"tenant": "contoso", "name": "x", "from": ["198.51.100.0/25"]}"#,
        )
        .await;
    assert!(message(&told).contains("fabrikam"), "{}", message(&told));

    let mine = f
        .call("GET", "/api/v1/connectors", Some(&f.contoso), "")
        .await;
    assert!(names(&mine, "tenant").iter().all(|t| t == "contoso"));
    let all = f
        .call("GET", "/api/v1/connectors", Some(&f.admin), "")
        .await;
    assert_eq!(names(&all, "name").len(), 3);
    assert_hidden(
        &f,
        "GET",
        (
            "/api/v1/connectors?tenant=fabrikam",
            "/api/v1/connectors?tenant=nobody",
        ),
        ("fabrikam", "nobody"),
        ("", ""),
    )
    .await;
    assert_hidden(
        &f,
        "POST",
        ("/api/v1/connectors", "/api/v1/connectors"),
        ("fabrikam", "nobody"),
        (
            r#"{"tenant": "fabrikam", "name": "y", "from": ["203.0.113.0/24"]}"#,
            r#"{"tenant": "nobody", "name": "y", "from": ["203.0.113.0/24"]}"#,
        ),
    )
    .await;
    assert_hidden(
        &f,
        "DELETE",
        (
            "/api/v1/connectors/fabrikam/hq",
            "/api/v1/connectors/nobody/hq",
        ),
        ("fabrikam", "nobody"),
        ("", ""),
    )
    .await;
    assert_eq!(f.service.connectors(None).await.unwrap().len(), 3);

    for (body, field) in [
        (r#"{"tenant": "contoso", "name": "z"}"#, "from: is missing"),
        (
            r#"{"tenant": "contoso", "name": "z", "from": []}"#,
            "from: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "from": ["10.0.0.0/33"]}"#,
            "from: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "from": "10.0.0.0/8"}"#,
            "from: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "a b", "from": ["10.0.0.0/8"]}"#,
            "name: ",
        ),
        (
            r#"{"tenant": "contoso", "from": ["10.0.0.0/8"]}"#,
            "name: is missing",
        ),
        (
            r#"{"name": "z", "from": ["10.0.0.0/8"]}"#,
            "tenant: is missing",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "login": "bob"}"#,
            "password: is missing",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "login": "bob", "password": "short"}"#,
            "password: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "login": "bob", "password": 12345678901234}"#,
            "password: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "from": ["10.0.0.0/8"], "login": "bob"}"#,
            "from: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "from": ["10.0.0.0/8"], "password": "x"}"#,
            "password: ",
        ),
        (
            r#"{"tenant": "contoso", "name": "z", "port": 25}"#,
            "port: ",
        ),
    ] {
        let bad = f
            .call("POST", "/api/v1/connectors", Some(&f.contoso), body)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            message(&bad).starts_with(field),
            "{body}: {}",
            message(&bad)
        );
    }

    let removed = f
        .call(
            "DELETE",
            "/api/v1/connectors/contoso/office",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(last_audit(&f).await["what"], "connector.remove");
    let gone = f
        .call(
            "DELETE",
            "/api/v1/connectors/contoso/office",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[derive(Debug)]
struct FakeRelay(u64);

impl RelayCounters for FakeRelay {
    fn samples(&self) -> Vec<CounterSample> {
        vec![CounterSample {
            name: "accepted",
            help: "Messages spooled and answered 250.",
            value: self.0,
        }]
    }
}

#[tokio::test]
async fn metrics_are_open_unless_a_token_is_set() {
    let mut f = Fixture::new().await;
    let state = ApiState::new(Arc::clone(&f.service), 3600).with_relay(Arc::new(FakeRelay(3)));
    f.router = router(state.clone());
    let (status, headers, text) = f.send("GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        text.contains("# TYPE signet_relay_accepted_total counter\n"),
        "{text}"
    );
    assert!(text.contains("signet_relay_accepted_total 3\n"), "{text}");
    // contoso.com and fabrikam.com wait for their CNAMEs; the initial domains sign.
    assert!(
        text.contains("signet_configs{status=\"CnameMissing\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("signet_configs{status=\"Valid\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("signet_configs{status=\"NoDKIMKeys\"} 0\n"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "signet_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));

    f.router = router(state.with_metrics_token("scrape-me"));
    for token in [None, Some("wrong"), Some(f.admin.as_str())] {
        let refused = f.call("GET", "/metrics", token, "").await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(refused.body["error"]["code"], "unauthorized");
    }
    let (status, _, text) = f.send("GET", "/metrics", Some("scrape-me"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("signet_relay_accepted_total 3\n"));
}

#[derive(Debug)]
struct FakeQueue(Vec<QueueEntry>);

impl QueueView for FakeQueue {
    fn entries(&self) -> Result<Vec<QueueEntry>, String> {
        Ok(self.0.clone())
    }
}

fn queued(id: &str, tenant: &str) -> QueueEntry {
    QueueEntry {
        id: id.into(),
        tenant: tenant.into(),
        from: format!("joe@{tenant}.com"),
        to: "ann@example.org bob@example.org".into(),
        attempts: 2,
        next_attempt: "2027-01-15T08:00:00Z".into(),
    }
}

#[tokio::test]
async fn the_queue_is_the_cli_json_and_a_tenant_sees_its_own() {
    let mut f = Fixture::new().await;
    let without = f.call("GET", "/api/v1/queue", Some(&f.admin), "").await;
    assert_eq!(without.status, StatusCode::NOT_FOUND, "no queue handle");
    let queue = FakeQueue(vec![
        queued("40.1", "contoso"),
        queued("40.2", "fabrikam"),
        queued("40.3", "contoso"),
    ]);
    f.router = router(ApiState::new(Arc::clone(&f.service), 3600).with_queue(Arc::new(queue)));
    let stranger = f.call("GET", "/api/v1/queue", None, "").await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let all = f.call("GET", "/api/v1/queue", Some(&f.admin), "").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(names(&all, "id"), ["40.1", "40.2", "40.3"]);
    assert_eq!(
        all.body[0],
        json!({
            "id": "40.1", "tenant": "contoso", "from": "joe@contoso.com",
            "to": "ann@example.org bob@example.org", "attempts": 2,
            "next_attempt": "2027-01-15T08:00:00Z",
        })
    );
    let own = f.call("GET", "/api/v1/queue", Some(&f.contoso), "").await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(names(&own, "id"), ["40.1", "40.3"]);
    assert_eq!(names(&own, "tenant"), ["contoso", "contoso"]);
}

/// A verifier answering from `records` (`name TYPE value` lines) on loopback.
async fn verifier(records: &str) -> Arc<Verifier> {
    let table = signet_verifier::RecordTable::parse(records).unwrap();
    let mut config = signet_verifier::VerifierConfig::new(
        "mx.example.net",
        signet_verifier::Resolution::Answers(Arc::new(table)),
    );
    config.timeout = std::time::Duration::from_secs(1);
    Arc::new(Verifier::new(config).await.unwrap())
}

const MESSAGE: &str = "From: joe@contoso.com\r\nTo: ann@example.org\r\nSubject: hi\r\n\
    Message-ID: <1@contoso.com>\r\nDate: Fri, 4 Dec 2026 10:00:00 +0000\r\n\r\nHello.\r\n";

#[tokio::test]
async fn verify_answers_the_cli_report_and_503_when_dns_times_out() {
    let mut f = Fixture::new().await;
    let uri = "/api/v1/verify?client_ip=192.0.2.1&helo=mail.contoso.com&mail_from=joe@contoso.com";
    let without = f.call("POST", uri, Some(&f.admin), MESSAGE).await;
    assert_eq!(without.status, StatusCode::NOT_FOUND, "no verifier handle");
    f.router = router(
        ApiState::new(Arc::clone(&f.service), 3600).with_verifier(
            verifier(
                "contoso.com TXT v=spf1 ip4:192.0.2.1 -all\n\
                 _dmarc.contoso.com TXT v=DMARC1; p=reject\n",
            )
            .await,
        ),
    );
    for token in [&f.admin, &f.contoso] {
        let ok = f.call("POST", uri, Some(token), MESSAGE).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        assert_eq!(ok.body["spf"]["result"], "pass", "{}", ok.body);
        assert_eq!(ok.body["authserv_id"], "mx.example.net");
        assert!(
            ok.body["authentication_results"]
                .as_str()
                .unwrap()
                .contains("spf=pass"),
            "{}",
            ok.body
        );
    }
    let refused = f
        .call(
            "POST",
            "/api/v1/verify?client_ip=203.0.113.9&mail_from=joe@contoso.com",
            Some(&f.contoso),
            MESSAGE,
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::OK,
        "a failing message is a report"
    );
    assert_eq!(refused.body["spf"]["result"], "fail");
    assert_eq!(refused.body["verdict"], "fail");

    let stranger = f.call("POST", uri, None, MESSAGE).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let empty = f.call("POST", uri, Some(&f.admin), "").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(message(&empty).starts_with("body: "), "{}", message(&empty));
    let bad_ip = f
        .call(
            "POST",
            "/api/v1/verify?client_ip=300.1.2.3",
            Some(&f.admin),
            MESSAGE,
        )
        .await;
    assert_eq!(bad_ip.status, StatusCode::BAD_REQUEST);
    assert!(
        message(&bad_ip).starts_with("client_ip: "),
        "{}",
        message(&bad_ip)
    );
    let unknown = f
        .call(
            "POST",
            "/api/v1/verify?clientip=1.2.3.4",
            Some(&f.admin),
            MESSAGE,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        message(&unknown).starts_with("clientip: "),
        "{}",
        message(&unknown)
    );
    let huge = format!("{MESSAGE}{}", "a".repeat(BODY_LIMIT));
    let too_large = f.call("POST", uri, Some(&f.admin), &huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);

    f.router = router(
        ApiState::new(Arc::clone(&f.service), 3600)
            .with_verifier(verifier("contoso.com TXT TIMEOUT\n").await),
    );
    let later = f.call("POST", uri, Some(&f.admin), MESSAGE).await;
    assert_eq!(
        later.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        later.body
    );
    assert_eq!(later.body["error"]["code"], "dns_unavailable");
    assert_eq!(later.body["error"]["report"]["verdict"], "temperror");
    assert!(later.retry_after.is_some());
}

#[tokio::test]
async fn analyze_explains_the_headers_without_dns() {
    let f = Fixture::new().await;
    let headers = "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=contoso.com;\r\n \
        dkim=pass header.d=contoso.com\r\nFrom: joe@contoso.com\r\n";
    for token in [&f.admin, &f.contoso] {
        let ok = f
            .call("POST", "/api/v1/analyze", Some(token), headers)
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
        let first = &ok.body["headers"][0];
        assert_eq!(first["name"], "Authentication-Results", "{}", ok.body);
        assert!(ok.body["hops"].is_array());
        assert_eq!(
            ok.body,
            serde_json::to_value(signet_verifier::analyze(headers.as_bytes())).unwrap(),
            "what signet analyze --json prints"
        );
    }
    let stranger = f.call("POST", "/api/v1/analyze", None, headers).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    let empty = f
        .call("POST", "/api/v1/analyze", Some(&f.admin), "\r\n")
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(message(&empty).starts_with("body: "), "{}", message(&empty));
    let huge = format!("{headers}\r\n{}", "a".repeat(BODY_LIMIT));
    let too_large = f
        .call("POST", "/api/v1/analyze", Some(&f.admin), &huge)
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
}

mod web;
