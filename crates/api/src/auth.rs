//! `Authorization: Bearer TOKEN` (or the web page's session): who calls, and what they may see.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use signet_app::{ApiToken, Clock, Dns, Service};
use signet_keys::{DomainName, TokenScope};

use zeroize::Zeroizing;

use crate::{ApiError, ApiState, input, session};

/// The token a request was made with. As an extractor it answers 401 to a request without a
/// known token, before anything else is looked at.
#[derive(Debug)]
pub(crate) struct Caller {
    token: ApiToken,
}

impl Caller {
    pub(crate) fn scope(&self) -> &TokenScope {
        &self.token.scope
    }

    /// The domain in a request's path, once this token may see it: a malformed name is a 400
    /// naming `domain`, another tenant's domain the same 404 as an absent one.
    pub(crate) async fn visible_domain<D: Dns + Clone, C: Clock + Clone>(
        &self,
        state: &ApiState<D, C>,
        raw: &str,
    ) -> Result<DomainName, ApiError> {
        let domain = input::domain("domain", raw)?;
        state.service.visible_domain(self.scope(), &domain).await?;
        Ok(domain)
    }

    /// The use-cases acting for this token: the audit log names it `token:NAME`.
    pub(crate) fn service<D: Dns + Clone, C: Clock + Clone>(
        &self,
        state: &ApiState<D, C>,
    ) -> Service<D, C> {
        state
            .service
            .acting_as(format!("token:{}", self.token.name))
    }
}

impl<D: Dns, C: Clock> FromRequestParts<ApiState<D, C>> for Caller {
    type Rejection = ApiError;

    /// The bearer token, or else the web page's session cookie (see `session`: a change needs
    /// the session's CSRF token too). Either way the token is looked up with `token_for`, so
    /// a removed token is refused from its next request on.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<D, C>,
    ) -> Result<Self, ApiError> {
        let (presented, session) = if let Some(header) = parts.headers.get(AUTHORIZATION) {
            let presented = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header is not Bearer TOKEN")
                })?;
            (Zeroizing::new(presented.to_string()), None)
        } else {
            let now = state.service.now();
            match session::authenticate(&state.sessions, &parts.headers, &parts.method, now)? {
                Some((id, live)) => (live.token, Some(id)),
                None => return Err(ApiError::unauthorized("send Authorization: Bearer TOKEN")),
            }
        };
        if let Some(token) = state.service.token_for(&presented).await? {
            return Ok(Caller { token });
        }
        if let Some(id) = session {
            state.sessions.close(&id);
        }
        Err(ApiError::unauthorized("the token is not known"))
    }
}
