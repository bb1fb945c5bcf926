//! `/api/v1/dkim`, `/records`, `/audit`: `Get-`, `Set-` and `Rotate-DkimSigningConfig`, the
//! records to publish, and the audit log, each one call into `signet-app`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use signet_app::view::{audit_json, config_json, config_properties, records_json};
use signet_app::{Clock, DkimView, Dns};

use crate::auth::Caller;
use crate::{ApiError, ApiState, input};

type Answer = Result<Json<Value>, ApiError>;
type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// `GET /dkim?limit=&cursor=`: the configs the token may see, a page at a time, in the order
/// of `signet dkim get`; `next_cursor` is null on the last page.
pub(crate) async fn list<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    params: Params,
) -> Answer {
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let limit = input::limit(params.get("limit").map(String::as_str))?;
    let after = input::cursor(params.get("cursor").map(String::as_str))?;
    let page = state
        .service
        .visible_configs(caller.scope(), after.as_ref(), limit)
        .await?;
    let zone = &state.service.settings().zone;
    let configs: Vec<Value> = page
        .views
        .iter()
        .map(|view| config_json(&config_properties(view, zone)))
        .collect();
    Ok(Json(json!({
        "configs": configs,
        "next_cursor": page.next.as_ref().map(input::encode_cursor),
    })))
}

/// `GET /dkim/{domain}`: the object `signet dkim get DOMAIN --format json` prints.
pub(crate) async fn get<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
) -> Answer {
    let domain = caller.visible_domain(&state, &domain).await?;
    let views = state.service.configs(Some(&domain)).await?;
    let view = views
        .first()
        .ok_or_else(|| ApiError::not_found(format!("{domain} has no signing config")))?;
    Ok(Json(show(&state, view)))
}

/// `PATCH /dkim/{domain}`: `signet dkim set`. Enabling checks the CNAMEs live first and answers
/// 409 with the records to publish when they are not in place.
pub(crate) async fn set<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let domain = caller.visible_domain(&state, &domain).await?;
    let options = input::set_options(&read(body)?)?;
    let config = caller.service(&state).set(&domain, options).await?;
    Ok(Json(show(&state, &DkimView::Configured(config))))
}

/// `POST /dkim/{domain}`: `signet dkim new` (`key_size`, `algorithm`, the canonicalizations,
/// `enabled`, which checks the CNAMEs first); 201 with the new config.
pub(crate) async fn new<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let domain = caller.visible_domain(&state, &domain).await?;
    let options = input::new_options(&read(body)?)?;
    let config = caller.service(&state).new_config(&domain, options).await?;
    Ok((
        StatusCode::CREATED,
        Json(show(&state, &DkimView::Configured(config))),
    ))
}

/// `DELETE /dkim/{domain}`: `signet dkim remove`; its records are withdrawn. 204.
pub(crate) async fn remove<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    let domain = caller.visible_domain(&state, &domain).await?;
    caller.service(&state).remove_config(&domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /dkim/{domain}/rotate`: `signet dkim rotate`; the answer carries the `RotateOnDate`.
pub(crate) async fn rotate<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let domain = caller.visible_domain(&state, &domain).await?;
    let key_size = input::rotate_options(&read(body)?)?;
    let config = caller.service(&state).rotate(&domain, key_size).await?;
    Ok(Json(show(&state, &DkimView::Configured(config))))
}

/// `GET /records/{domain}`: what `signet records DOMAIN --format json` prints.
pub(crate) async fn records<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
) -> Answer {
    let domain = caller.visible_domain(&state, &domain).await?;
    let records = state.service.records(&domain).await?;
    Ok(Json(records_json(&records, state.records_ttl)))
}

/// `GET /audit?domain=`: the entries `signet audit --format json` prints, those the token may
/// see.
pub(crate) async fn audit<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    params: Params,
) -> Answer {
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    let domain = params
        .get("domain")
        .map(|d| input::domain("domain", d))
        .transpose()?;
    let entries = state
        .service
        .visible_audit(caller.scope(), domain.as_ref())
        .await?;
    Ok(Json(entries.iter().map(audit_json).collect()))
}

fn show<D: Dns, C: Clock>(state: &ApiState<D, C>, view: &DkimView) -> Value {
    config_json(&config_properties(view, &state.service.settings().zone))
}

/// The body, or 413 when it is over [`crate::BODY_LIMIT`].
pub(crate) fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large()
        } else {
            ApiError::bad_request("body", e.body_text())
        }
    })
}
