//! The web admin page: HTML, CSS and JS compiled into the binary (`crates/api/web/`), nothing
//! fetched from elsewhere, and the session endpoints it signs in and out with. The page calls
//! the same `/api/v1` endpoints as any client, with the session cookie instead of a bearer
//! token (`session.rs`). Every answer of the router carries [`security_headers`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use signet_app::{ApiToken, Clock, Dns};

use crate::dkim::read;
use crate::session::{self, Live};
use crate::{ApiError, ApiState, SESSION_LIFETIME};

const PAGE: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/app.css");

/// Only this origin's scripts, styles, images and connections; no inline script, no framing.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the security headers to every answer (the page, its files, the API's JSON).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        (REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

/// `GET /`: the page.
pub(crate) async fn page() -> Response {
    file("text/html; charset=utf-8", PAGE)
}

/// `GET /ui/app.js`.
pub(crate) async fn script() -> Response {
    file("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /ui/app.css`.
pub(crate) async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE)
}

/// What the page learns of its session: who, what scope, the CSRF token, until when. Never
/// the API token.
fn described(token: &ApiToken, csrf: &str, expires: signet_keys::Timestamp) -> Value {
    json!({
        "name": token.name.as_str(),
        "scope": token.scope.to_string(),
        "csrf_token": csrf,
        "expires": expires.rfc3339(),
    })
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /ui/session` with `{"token": "..."}` (JSON only, which a form on another site cannot
/// send): opens a session and sets its cookie; the answer is that of `GET /ui/session`.
pub(crate) async fn sign_in<D: Dns + Clone, C: Clock + Clone>(
    State(state): State<ApiState<D, C>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let json_body = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_body {
        return Err(ApiError::bad_request(
            "Content-Type",
            "send the token as JSON (application/json): {\"token\": \"...\"}",
        ));
    }
    let body: Value = serde_json::from_slice(&read(body)?)
        .map_err(|e| ApiError::bad_request("body", format!("not JSON: {e}")))?;
    let presented = body
        .get("token")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("token", "missing; send {\"token\": \"...\"}"))?;
    let Some(token) = state.service.token_for(presented).await? else {
        return Err(ApiError::unauthorized("the token is not known"));
    };
    let opened = state
        .sessions
        .open(presented, state.service.now(), SESSION_LIFETIME);
    let cookie = session::set_cookie(opened.id.expose(), SESSION_LIFETIME, state.secure_cookies);
    let mut response = Json(described(&token, &opened.csrf, opened.expires)).into_response();
    response.headers_mut().insert(SET_COOKIE, cookie);
    Ok(no_store(response))
}

/// The request's live session and its token; 401 without one.
async fn signed_in<D: Dns, C: Clock>(
    state: &ApiState<D, C>,
    headers: &HeaderMap,
    method: &Method,
) -> Result<(String, Live, ApiToken), ApiError> {
    let now = state.service.now();
    let Some((id, live)) = session::authenticate(&state.sessions, headers, method, now)? else {
        return Err(ApiError::unauthorized("not signed in"));
    };
    if let Some(token) = state.service.token_for(&live.token).await? {
        return Ok((id, live, token));
    }
    state.sessions.close(&id);
    Err(ApiError::unauthorized("the token is not known"))
}

/// `GET /ui/session`: who is signed in, and the CSRF token to send with changes.
pub(crate) async fn session<D: Dns + Clone, C: Clock + Clone>(
    State(state): State<ApiState<D, C>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, live, token) = signed_in(&state, &headers, &Method::GET).await?;
    Ok(no_store(
        Json(described(&token, &live.csrf, live.expires)).into_response(),
    ))
}

/// `DELETE /ui/session` (with the CSRF token): signs out; the session is deleted and the
/// cookie cleared. 204.
pub(crate) async fn sign_out<D: Dns + Clone, C: Clock + Clone>(
    State(state): State<ApiState<D, C>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = state.service.now();
    let Some((id, _)) = session::authenticate(&state.sessions, &headers, &Method::DELETE, now)?
    else {
        return Err(ApiError::unauthorized("not signed in"));
    };
    state.sessions.close(&id);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, session::clear_cookie(state.secure_cookies));
    Ok(no_store(response))
}
