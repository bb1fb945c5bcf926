//! The web page and its sessions through the router: sign-in, the cookie's flags, CSRF on every
//! change, sign-out, expiry, and a tenant's session seeing its tenant only.

use super::*;

/// A signed-in session: the `Cookie` header to send and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Fixture {
    /// Signs in with `token`; asserts success.
    async fn sign_in(&self, token: &str) -> Session {
        let body = json!({ "token": token }).to_string();
        let (status, headers, text) = self
            .send_with(
                "POST",
                "/ui/session",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let set = headers[header::SET_COOKIE].to_str().unwrap();
        let pair = set.split(';').next().unwrap().to_string();
        let answer: Value = serde_json::from_str(&text).unwrap();
        Session {
            cookie: pair,
            csrf: answer["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    /// A request with the session's cookie, and its CSRF token when `csrf` is set.
    async fn with_session(
        &self,
        session: &Session,
        csrf: Option<&str>,
        method: &str,
        uri: &str,
        body: &str,
    ) -> Answer {
        let mut headers = vec![("cookie", session.cookie.as_str())];
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf));
        }
        let (status, _, text) = self.send_with(method, uri, &headers, body).await;
        Answer {
            status,
            retry_after: None,
            body: if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{uri}: {e}: {text}"))
            },
        }
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_never_echoes_the_token() {
    let f = Fixture::new().await;
    let body = json!({ "token": f.contoso }).to_string();
    let (status, headers, text) = f
        .send_with(
            "POST",
            "/ui/session",
            &[("content-type", "application/json")],
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    let (pair, flags) = cookie.split_once(';').unwrap();
    let id = pair.strip_prefix("signet_session=").unwrap();
    assert_eq!(id.len(), 43, "32 random bytes: {cookie}");
    assert_eq!(
        flags, " HttpOnly; SameSite=Strict; Path=/; Max-Age=28800",
        "no Secure on plain HTTP"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["name"], "contoso-ci");
    assert_eq!(answer["scope"], "tenant:contoso");
    assert_eq!(answer["csrf_token"].as_str().unwrap().len(), 43);
    assert_eq!(answer["expires"], "2027-01-15T16:00:00Z", "eight hours on");
    assert!(!text.contains(&f.contoso), "the token is never sent back");
    assert!(!text.contains(id), "nor the session id");

    // Under TLS the cookie is Secure.
    let secure = router(ApiState::new(Arc::clone(&f.service), 3600).with_secure_cookies(true));
    let response = secure
        .oneshot(
            Request::post("/ui/session")
                .header("content-type", "application/json")
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // A wrong token opens nothing; neither does a form post (a form on another site can send
    // one, but not JSON).
    for (content_type, body, status) in [
        (
            "application/json",
            r#"{"token": "not-a-token"}"#,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "application/x-www-form-urlencoded",
            &*format!("token={}", f.contoso),
            StatusCode::BAD_REQUEST,
        ),
        ("text/plain", &*body, StatusCode::BAD_REQUEST),
        ("application/json", "{}", StatusCode::BAD_REQUEST),
        ("application/json", "token", StatusCode::BAD_REQUEST),
    ] {
        let (got, headers, text) = f
            .send_with(
                "POST",
                "/ui/session",
                &[("content-type", content_type)],
                body,
            )
            .await;
        assert_eq!(got, status, "{content_type} {body}: {text}");
        assert!(headers.get(header::SET_COOKIE).is_none());
        let error: Value = serde_json::from_str(&text).unwrap();
        assert!(error["error"]["message"].is_string(), "{text}");
    }
    let (status, _, _) = f.send_with("GET", "/ui/session", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no cookie, no session");
}

#[tokio::test]
async fn a_cookie_change_without_the_csrf_token_is_refused() {
    let f = Fixture::new().await;
    let s = f.sign_in(&f.contoso).await;
    let uri = "/api/v1/dkim/contoso.com";
    let read = f.with_session(&s, None, "GET", uri, "").await;
    assert_eq!(read.status, StatusCode::OK, "reads need no CSRF token");
    assert_eq!(read.body["domain"], "contoso.com");
    let shown = f.with_session(&s, None, "GET", "/ui/session", "").await;
    assert_eq!(shown.body["csrf_token"], s.csrf.as_str());

    let enable = r#"{"Enabled": true}"#;
    for csrf in [None, Some("wrong"), Some("")] {
        let refused = f.with_session(&s, csrf, "PATCH", uri, enable).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{csrf:?}");
        assert_eq!(refused.body["error"]["code"], "forbidden");
        assert!(
            message(&refused).contains("X-CSRF-Token"),
            "{}",
            refused.body
        );
    }
    for (method, path) in [
        ("POST", "/api/v1/dkim/contoso.com/rotate"),
        ("DELETE", "/api/v1/dkim/contoso.com"),
        ("POST", "/api/v1/analyze"),
        ("DELETE", "/ui/session"),
    ] {
        let refused = f.with_session(&s, None, method, path, "x").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert_eq!(
        f.call("GET", uri, Some(&f.contoso), "").await.body["enabled"],
        false,
        "nothing changed"
    );

    // With the token: the same answers as with a bearer token, audited as the token.
    let missing = f
        .with_session(&s, Some(&s.csrf), "PATCH", uri, enable)
        .await;
    assert_eq!(missing.status, StatusCode::CONFLICT);
    assert_eq!(missing.body["error"]["code"], "cname_missing");
    assert_eq!(
        missing.body["error"]["records"][0]["name"],
        "selector1._domainkey.contoso.com"
    );
    f.publish_cnames("contoso.com", "contoso");
    let enabled = f
        .with_session(&s, Some(&s.csrf), "PATCH", uri, enable)
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(enabled.body["enabled"], true);
    let last = last_audit(&f).await;
    assert_eq!(
        (&last["who"], &last["what"]),
        (&json!("token:contoso-ci"), &json!("dkim.set"))
    );

    // Bearer requests need no CSRF token, cookie or not.
    let bearer = f
        .call(
            "POST",
            "/api/v1/dkim/contoso.com/rotate",
            Some(&f.contoso),
            "",
        )
        .await;
    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.body);
}

fn domains(list: &Answer) -> Vec<&str> {
    list.body["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_tenant_session_sees_its_tenant_only() {
    let f = Fixture::new().await;
    let s = f.sign_in(&f.contoso).await;
    let list = f.with_session(&s, None, "GET", "/api/v1/dkim", "").await;
    assert_eq!(
        domains(&list),
        ["contoso.com", "contoso.dkim.example.net"],
        "its domains and its initial domain"
    );
    for (method, path) in [
        ("GET", "/api/v1/dkim/fabrikam.com"),
        ("GET", "/api/v1/records/fabrikam.com"),
        ("GET", "/api/v1/audit?domain=fabrikam.com"),
        ("PATCH", "/api/v1/dkim/fabrikam.com"),
        ("POST", "/api/v1/dkim/fabrikam.com/rotate"),
    ] {
        let hidden = f
            .with_session(&s, Some(&s.csrf), method, path, r#"{"Enabled": true}"#)
            .await;
        assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let admin = f.sign_in(&f.admin).await;
    let all = f
        .with_session(&admin, None, "GET", "/api/v1/dkim", "")
        .await;
    assert!(domains(&all).contains(&"fabrikam.com"));
}

#[tokio::test]
async fn signing_out_ends_the_session_and_sessions_expire() {
    let f = Fixture::new().await;
    let s = f.sign_in(&f.contoso).await;
    let other = f.sign_in(&f.contoso).await;
    let (status, headers, _) = f
        .send_with(
            "DELETE",
            "/ui/session",
            &[("cookie", &s.cookie), ("x-csrf-token", &s.csrf)],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cleared = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("signet_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    for path in ["/ui/session", "/api/v1/dkim"] {
        let gone = f.with_session(&s, None, "GET", path, "").await;
        assert_eq!(gone.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let again = f
        .with_session(&s, Some(&s.csrf), "DELETE", "/ui/session", "")
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // The other session lives on, for eight hours.
    f.clock
        .fetch_add(SESSION_LIFETIME.seconds() - 1, Ordering::SeqCst);
    let still = f
        .with_session(&other, None, "GET", "/api/v1/dkim", "")
        .await;
    assert_eq!(still.status, StatusCode::OK);
    f.clock.fetch_add(1, Ordering::SeqCst);
    for path in ["/ui/session", "/api/v1/dkim"] {
        let expired = f.with_session(&other, None, "GET", path, "").await;
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            message(&expired).contains("sign in again"),
            "{}",
            expired.body
        );
    }
}

#[tokio::test]
async fn removing_the_token_ends_its_sessions() {
    let f = Fixture::new().await;
    let s = f.sign_in(&f.contoso).await;
    f.service
        .remove_token(&"contoso-ci".parse().unwrap())
        .await
        .unwrap();
    let refused = f.with_session(&s, None, "GET", "/api/v1/dkim", "").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let shown = f.with_session(&s, None, "GET", "/ui/session", "").await;
    assert_eq!(shown.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_no_secret() {
    let f = Fixture::new().await;
    let _ = f.sign_in(&f.admin).await;
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/api/v1/dkim", "application/json"),
        ("/nowhere", "application/json"),
    ] {
        let (_, headers, text) = f.send_with("GET", path, &[], "").await;
        assert_eq!(headers[header::CONTENT_TYPE], kind, "{path}");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.starts_with("default-src 'self'; script-src 'self';"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert!(
            !text.contains(&f.admin) && !text.contains(&f.contoso),
            "{path}"
        );
    }
    let (status, _, page) = f.send_with("GET", "/", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<script src="/ui/app.js" defer></script>"#));
    assert!(!page.contains("<script>"), "no inline script");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
}
