//! `POST /verify` and `POST /analyze`: `signet verify --json` and `signet analyze --json` for a
//! message in the request body. Any valid token may call them; they touch no tenant data.
//! Verification resolves through the [`Verifier`] the binary builds from `[resolver]`; without
//! one `/verify` answers 404. Analysis needs no DNS.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use serde_json::Value;
use signet_app::{Clock, Dns};
use signet_verifier::{Envelope, Verdict};

use crate::auth::Caller;
use crate::dkim::read;
use crate::{ApiError, ApiState};

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// The message in the body, line ends as on the wire; 400 when there is none.
fn message(body: Result<Bytes, BytesRejection>) -> Result<Vec<u8>, ApiError> {
    let body = read(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "body",
            "empty; send the message (RFC 5322) as the body",
        ));
    }
    Ok(signet_verifier::to_crlf(&body).into_owned())
}

/// `POST /verify?client_ip=&helo=&mail_from=`: the report of `signet verify --json`. A DNS
/// lookup that timed out or failed for now (verdict `temperror`) answers 503 with
/// `Retry-After`, the report in `error.report`.
pub(crate) async fn verify<D: Dns, C: Clock>(
    _caller: Caller,
    State(state): State<ApiState<D, C>>,
    params: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Some(verifier) = state.verifier.clone() else {
        return Err(crate::no_such_endpoint());
    };
    let Query(mut params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let client_ip = params
        .remove("client_ip")
        .map(|text| {
            text.parse::<IpAddr>().map_err(|_| {
                ApiError::bad_request("client_ip", format!("'{text}' is not an IP address"))
            })
        })
        .transpose()?;
    let envelope = Envelope {
        client_ip,
        helo: params.remove("helo"),
        mail_from: params.remove("mail_from"),
    };
    if let Some(unknown) = params.keys().next() {
        return Err(ApiError::bad_request(
            unknown,
            "unknown parameter (client_ip, helo, mail_from)",
        ));
    }
    let raw = message(body)?;
    let report = verifier.verify(&raw, &envelope, None).await;
    let json = serde_json::to_value(&report)
        .map_err(|e| ApiError::internal_because(&format!("verify: {e}")))?;
    if report.verdict == Verdict::TempError {
        return Err(ApiError::dns_unavailable(
            "a DNS lookup failed for now; try again later",
            json,
        ));
    }
    Ok(Json(json))
}

/// `POST /analyze`: what `signet analyze --json` shows for the message or headers in the body.
pub(crate) async fn analyze(
    _caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let raw = message(body)?;
    let analysis = signet_verifier::analyze(&raw);
    serde_json::to_value(&analysis)
        .map(Json)
        .map_err(|e| ApiError::internal_because(&format!("analyze: {e}")))
}
