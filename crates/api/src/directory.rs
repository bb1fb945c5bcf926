//! `/api/v1/tenants`, `/domains`, `/connectors`: `signet tenant`, `domain` and `connector`, each
//! one call into `signet-app`, answering the rows their `list --format json` prints.
//!
//! Tenants are the admin's: to a tenant token `POST /tenants` and `DELETE /tenants/…` answer
//! exactly as an unknown endpoint does, and `GET /tenants` lists its own tenant only.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::Value;
use signet_app::view::{config_json, connector_properties, domain_properties, tenant_properties};
use signet_app::{Clock, Dns, manages_tenants};

use crate::auth::Caller;
use crate::dkim::read;
use crate::{ApiError, ApiState, input};

type Answer = Result<Json<Value>, ApiError>;
type Created = Result<(StatusCode, Json<Value>), ApiError>;
type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// `?tenant=`, when given.
fn tenant_param(params: Params) -> Result<Option<signet_keys::TenantName>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request("query", e.body_text()))?;
    params
        .get("tenant")
        .map(|t| input::tenant("tenant", t))
        .transpose()
}

/// Refuses a tenant token, as an endpoint that is not there.
fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if manages_tenants(caller.scope()) {
        Ok(())
    } else {
        Err(crate::no_such_endpoint())
    }
}

/// `GET /tenants`: `signet tenant list --format json`, the tenants the token may see.
pub(crate) async fn tenants<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
) -> Answer {
    let zone = &state.service.settings().zone;
    let tenants = state.service.visible_tenants(caller.scope()).await?;
    Ok(Json(
        tenants
            .iter()
            .map(|t| config_json(&tenant_properties(t, zone)))
            .collect(),
    ))
}

/// `POST /tenants` `{"name"}`: `signet tenant add`; answers the new tenant's row.
pub(crate) async fn add_tenant<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    body: Result<Bytes, BytesRejection>,
) -> Created {
    admin_only(&caller)?;
    let name = input::new_tenant(&read(body)?)?;
    caller.service(&state).add_tenant(&name).await?;
    let tenant = state.service.visible_tenant(caller.scope(), &name).await?;
    let zone = &state.service.settings().zone;
    Ok((
        StatusCode::CREATED,
        Json(config_json(&tenant_properties(&tenant, zone))),
    ))
}

/// `DELETE /tenants/{tenant}`: `signet tenant remove`; 204.
pub(crate) async fn remove_tenant<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    let tenant = input::tenant("tenant", &tenant)?;
    caller.service(&state).remove_tenant(&tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /domains?tenant=`: `signet domain list --format json`, the domains the token may see.
pub(crate) async fn domains<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    params: Params,
) -> Answer {
    let tenant = tenant_param(params)?;
    let domains = state
        .service
        .visible_domains(caller.scope(), tenant.as_ref())
        .await?;
    Ok(Json(
        domains
            .iter()
            .map(|d| config_json(&domain_properties(d)))
            .collect(),
    ))
}

/// `POST /domains` `{"tenant", "domain"}`: `signet domain add`; answers the domain's row (its
/// signing config is at `/dkim/{domain}`, disabled, with a key in selector1).
pub(crate) async fn add_domain<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    body: Result<Bytes, BytesRejection>,
) -> Created {
    let (tenant, domain) = input::new_domain(&read(body)?)?;
    caller
        .service(&state)
        .add_visible_domain(caller.scope(), &tenant, &domain)
        .await?;
    let accepted = state
        .service
        .visible_domain(caller.scope(), &domain)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(config_json(&domain_properties(&accepted))),
    ))
}

/// `DELETE /domains/{domain}`: `signet domain remove`, with its config and keys; 204.
pub(crate) async fn remove_domain<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    let domain = caller.visible_domain(&state, &domain).await?;
    caller.service(&state).remove_domain(&domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /connectors?tenant=`: `signet connector list --format json`, never a password hash.
pub(crate) async fn connectors<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    params: Params,
) -> Answer {
    let tenant = tenant_param(params)?;
    let connectors = state
        .service
        .visible_connectors(caller.scope(), tenant.as_ref())
        .await?;
    Ok(Json(
        connectors
            .iter()
            .map(|c| config_json(&connector_properties(c)))
            .collect(),
    ))
}

/// `POST /connectors`: `signet connector add`, with `from` (networks) or `login` and
/// `password` (never echoed, logged or audited); answers the connector's row.
pub(crate) async fn add_connector<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    body: Result<Bytes, BytesRejection>,
) -> Created {
    let (tenant, name, new) = input::new_connector(&read(body)?)?;
    let connector = caller
        .service(&state)
        .add_visible_connector(caller.scope(), &tenant, &name, new)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(config_json(&connector_properties(&connector))),
    ))
}

/// `DELETE /connectors/{tenant}/{name}`: `signet connector remove`; 204.
pub(crate) async fn remove_connector<D: Dns + Clone, C: Clock + Clone>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = input::tenant("tenant", &tenant)?;
    state
        .service
        .visible_tenant(caller.scope(), &tenant)
        .await?;
    caller
        .service(&state)
        .remove_connector(&tenant, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
