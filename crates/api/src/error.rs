//! The one error shape of the API: `{"error": {"code": "...", "message": "..."}}`, with the
//! status saying what kind of failure it is. Internal details are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use signet_app::{AppError, MissingCnames};

/// How long a client should wait after a temporary DNS failure, in seconds.
const RETRY_AFTER: u32 = 30;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// More members of the `error` object (the CNAMEs to publish, …).
    extra: Map<String, Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// 400: the request is wrong; `field` names what.
    pub fn bad_request(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{field}: {why}"),
        )
    }

    pub fn unauthorized(why: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", why)
    }

    /// 403: a change made with the session cookie but without the session's CSRF token.
    pub fn forbidden(why: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", why)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn not_found(why: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", why)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is larger than {} bytes",
                crate::BODY_LIMIT
            ),
        )
    }

    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store does not answer",
        )
    }

    /// 500; `why` goes to the log only.
    pub(crate) fn internal_because(why: &str) -> Self {
        tracing::error!("api: {why}");
        Self::internal()
    }

    /// 503 with `Retry-After`: a DNS lookup failed for now; `report` is what was found anyway.
    pub(crate) fn dns_unavailable(why: &str, report: Value) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "dns_unavailable", why);
        error.extra.insert("report".into(), report);
        error
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    fn cname_missing(missing: &MissingCnames) -> Self {
        let mut error = Self::new(StatusCode::CONFLICT, "cname_missing", missing.to_string());
        let records: Vec<Value> = missing
            .selectors
            .iter()
            .map(|s| json!({ "type": "CNAME", "name": s.name, "value": s.target }))
            .collect();
        let found: Vec<Value> = missing
            .selectors
            .iter()
            .map(|s| json!({ "selector": s.slot.name(), "name": s.name, "found": s.describe() }))
            .collect();
        error.extra.insert("records".into(), records.into());
        error.extra.insert("found".into(), found.into());
        error
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        use signet_keys::Error as Keys;
        match error {
            AppError::NotFound(why) => ApiError::not_found(why),
            AppError::Refused(why) => Self::new(StatusCode::CONFLICT, "refused", why),
            AppError::CnameMissing(missing) => ApiError::cname_missing(&missing),
            AppError::Temporary(why) => {
                tracing::warn!("api: DNS lookup failed: {why}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "dns_unavailable",
                    "a DNS lookup failed for now; try again later",
                )
            }
            AppError::Keys(Keys::Rotation(refused)) => {
                Self::new(StatusCode::CONFLICT, "refused", refused.to_string())
            }
            AppError::Keys(
                e @ (Keys::DomainName { .. }
                | Keys::TenantName { .. }
                | Keys::Unsupported(_)
                | Keys::Time(_)
                | Keys::Record(_)),
            ) => Self::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
            AppError::Keys(e) => {
                tracing::error!("api: key operation failed: {e}");
                ApiError::internal()
            }
            AppError::Store(e) => {
                tracing::error!("api: store: {e}");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.into());
        error.extend(self.extra);
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.code == "dns_unavailable" {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
