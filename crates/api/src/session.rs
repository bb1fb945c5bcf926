//! The web page's sessions. Signing in with a token opens a session: a random id in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` under TLS) and a table here, in memory,
//! keyed by the id's SHA-256, holding the token (to be checked again at every request, so a
//! removed token ends its sessions), a CSRF token and an expiry. A request made with the cookie
//! that changes something (any method but GET and HEAD) must carry the CSRF token in
//! `X-CSRF-Token`, which the page reads from `GET /ui/session`; another site can send the cookie
//! (not with `SameSite=Strict`, but older browsers) yet never read that answer.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::header::{COOKIE, HeaderMap};
use axum::http::{HeaderValue, Method};
use signet_keys::{Span, Timestamp, TokenDigest, TokenSecret};
use zeroize::Zeroizing;

use crate::ApiError;

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "signet_session";

/// The header a cookie-authenticated change carries the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts from sign-in; then the page asks for the token again.
pub const SESSION_LIFETIME: Span = Span::hours(8);

/// At most this many sessions at once; when full, expired ones go first, then the oldest.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    /// The API token the session was opened with, as presented.
    token: Zeroizing<String>,
    csrf: Zeroizing<String>,
    expires: Timestamp,
}

/// What a new session is: its id (for the cookie only) and its CSRF token (for the page).
pub(crate) struct Opened {
    pub(crate) id: TokenSecret,
    pub(crate) csrf: String,
    pub(crate) expires: Timestamp,
}

/// A live session found by its cookie.
pub(crate) struct Live {
    /// The API token, to look up (again) with `Service::token_for`.
    pub(crate) token: Zeroizing<String>,
    pub(crate) csrf: Zeroizing<String>,
    pub(crate) expires: Timestamp,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Live(until {})", self.expires)
    }
}

/// The session table. The ids themselves are not kept, only their digests.
#[derive(Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sessions({} open)", self.lock().len())
    }
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `token` (already checked) until `now + lifetime`.
    pub(crate) fn open(&self, token: &str, now: Timestamp, lifetime: Span) -> Opened {
        let (id, digest) = TokenSecret::generate();
        let (csrf, _) = TokenSecret::generate();
        let expires = now.plus(lifetime);
        let mut table = self.lock();
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.expires > now);
        }
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k)
        {
            table.remove(&oldest);
        }
        table.insert(
            *digest.as_bytes(),
            Session {
                token: Zeroizing::new(token.to_string()),
                csrf: Zeroizing::new(csrf.expose().to_string()),
                expires,
            },
        );
        Opened {
            id,
            csrf: csrf.expose().to_string(),
            expires,
        }
    }

    /// The live session `id` names; an expired one is removed and not found.
    pub(crate) fn find(&self, id: &str, now: Timestamp) -> Option<Live> {
        let key = *TokenDigest::of(id).as_bytes();
        let mut table = self.lock();
        let session = table.get(&key)?;
        if session.expires <= now {
            table.remove(&key);
            return None;
        }
        Some(Live {
            token: session.token.clone(),
            csrf: session.csrf.clone(),
            expires: session.expires,
        })
    }

    /// Ends session `id`; whether it was open.
    pub(crate) fn close(&self, id: &str) -> bool {
        self.lock().remove(TokenDigest::of(id).as_bytes()).is_some()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The session id in the request's `Cookie` headers, if any.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The live session of a request that carries the cookie; `None` when it carries none. A
/// change without the session's CSRF token is 403; an unknown or expired session 401.
pub(crate) fn authenticate(
    sessions: &Sessions,
    headers: &HeaderMap,
    method: &Method,
    now: Timestamp,
) -> Result<Option<(String, Live)>, ApiError> {
    let Some(id) = cookie(headers) else {
        return Ok(None);
    };
    let live = sessions
        .find(id, now)
        .ok_or_else(|| ApiError::unauthorized("the session has ended or expired; sign in again"))?;
    if !(method == Method::GET || method == Method::HEAD) {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !TokenDigest::of(presented).matches(&TokenDigest::of(&live.csrf)) {
            return Err(ApiError::forbidden(
                "a change made with the session cookie needs the session's X-CSRF-Token header",
            ));
        }
    }
    Ok(Some((id.to_string(), live)))
}

/// The `Set-Cookie` value for a new session.
pub(crate) fn set_cookie(id: &str, lifetime: Span, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        lifetime.seconds()
    ))
    .expect("a base64url id makes a valid header")
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .expect("a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_unix(1_800_000_000);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_session_lasts_its_lifetime_and_no_longer() {
        let sessions = Sessions::default();
        let opened = sessions.open("tok", T0, Span::hours(1));
        let id = opened.id.expose();
        assert_eq!(opened.expires, T0.plus(Span::hours(1)));
        let live = sessions
            .find(id, T0.plus(Span::seconds_from(3599)))
            .unwrap();
        assert_eq!(live.token.as_str(), "tok");
        assert_eq!(live.csrf.as_str(), opened.csrf);
        assert!(sessions.find(id, T0.plus(Span::hours(1))).is_none());
        assert_eq!(sessions.len(), 0, "an expired session is removed");
        assert!(sessions.find("not-a-session", T0).is_none());
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_closed_sessions_are_gone() {
        let sessions = Sessions::default();
        let a = sessions.open("tok", T0, Span::hours(1));
        let b = sessions.open("tok", T0, Span::hours(1));
        assert_ne!(a.id.expose(), b.id.expose());
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.id.expose().len(), 43);
        assert!(sessions.close(a.id.expose()));
        assert!(!sessions.close(a.id.expose()));
        assert!(sessions.find(a.id.expose(), T0).is_none());
        assert!(sessions.find(b.id.expose(), T0).is_some());
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        for n in 0..i64::try_from(MAX_SESSIONS).unwrap() {
            sessions.open("tok", T0.plus(Span::seconds_from(n)), Span::hours(1));
        }
        let newest = sessions.open("tok", T0.plus(Span::hours(2)), Span::hours(1));
        assert!(sessions.len() <= MAX_SESSIONS);
        assert!(
            sessions
                .find(newest.id.expose(), T0.plus(Span::hours(2)))
                .is_some()
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(
            cookie(&headers(&[("cookie", "a=1; signet_session=abc ; b=2")])),
            Some("abc")
        );
        assert_eq!(
            cookie(&headers(&[
                ("cookie", "a=1"),
                ("cookie", "signet_session=x")
            ])),
            Some("x")
        );
        assert_eq!(cookie(&headers(&[("cookie", "signet_session=")])), None);
        assert_eq!(cookie(&headers(&[("cookie", "xsignet_session=1")])), None);
        assert_eq!(cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn changes_need_the_csrf_token_and_reads_do_not() {
        let sessions = Sessions::default();
        let opened = sessions.open("tok", T0, Span::hours(1));
        let with_cookie = format!("{COOKIE_NAME}={}", opened.id.expose());
        let plain = headers(&[("cookie", &with_cookie)]);
        let good = headers(&[("cookie", &with_cookie), (CSRF_HEADER, &opened.csrf)]);
        let wrong = headers(&[("cookie", &with_cookie), (CSRF_HEADER, "nope")]);
        assert!(
            authenticate(&sessions, &plain, &Method::GET, T0)
                .unwrap()
                .is_some()
        );
        for method in [Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            for refused in [&plain, &wrong] {
                let error = authenticate(&sessions, refused, &method, T0).unwrap_err();
                assert_eq!(error.status(), axum::http::StatusCode::FORBIDDEN);
            }
            assert!(
                authenticate(&sessions, &good, &method, T0)
                    .unwrap()
                    .is_some()
            );
        }
        assert!(
            authenticate(&sessions, &HeaderMap::new(), &Method::POST, T0)
                .unwrap()
                .is_none()
        );
        let late = T0.plus(Span::hours(1));
        let expired = authenticate(&sessions, &good, &Method::GET, late).unwrap_err();
        assert_eq!(expired.status(), axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn cookie_flags() {
        let cookie = set_cookie("abc", Span::hours(8), false);
        assert_eq!(
            cookie.to_str().unwrap(),
            "signet_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert!(
            set_cookie("abc", Span::hours(8), true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
    }
}
