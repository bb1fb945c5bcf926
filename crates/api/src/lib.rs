//! signet's HTTP API: JSON under `/api/v1`, each handler a thin call into the same `signet-app`
//! use-cases as the CLI, so the two never disagree (`docs/reference.md`, "Signing configs", for
//! the property names; the README's "HTTP API" for the endpoints).
//!
//! Requests carry `Authorization: Bearer TOKEN` (`signet token add`); a tenant token sees its own
//! tenant's domains only, anything else answering 404 as if absent. Changes are audited as
//! `token:NAME`. Errors are `{"error": {"code": "...", "message": "..."}}`. The router is a
//! value, so tests drive it without sockets; [`serve`] puts it on a listener.
//!
//! ```text
//! let state = ApiState::new(Arc::new(service), 3600);
//! signet_api::serve(listener, signet_api::router(state), stop).await?;
//! ```

mod auth;
mod dkim;
mod error;
mod input;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::json;
use signet_app::{Clock, Dns, Service};

pub use error::ApiError;

/// The largest request body accepted; more is refused with 413 before it is read.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share: the use-cases and the TTL shown with records.
#[derive(Debug)]
pub struct ApiState<D, C> {
    service: Arc<Service<D, C>>,
    records_ttl: u32,
}

impl<D, C> Clone for ApiState<D, C> {
    fn clone(&self) -> Self {
        ApiState {
            service: Arc::clone(&self.service),
            records_ttl: self.records_ttl,
        }
    }
}

impl<D, C> ApiState<D, C> {
    /// `records_ttl` is the key zone's TTL (`[dns] ttl`), as `signet records` shows it.
    pub fn new(service: Arc<Service<D, C>>, records_ttl: u32) -> Self {
        ApiState {
            service,
            records_ttl,
        }
    }
}

/// The whole HTTP surface: `/api/v1/…`, `/healthz`, `/readyz`.
pub fn router<D, C>(state: ApiState<D, C>) -> Router
where
    D: Dns + Clone + 'static,
    C: Clock + Clone + 'static,
{
    let api = Router::new()
        .route("/dkim", get(dkim::list))
        .route("/dkim/{domain}", get(dkim::get).merge(patch(dkim::set)))
        .route("/dkim/{domain}/rotate", post(dkim::rotate))
        .route("/records/{domain}", get(dkim::records))
        .route("/audit", get(dkim::audit));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes; requests under way are finished
/// first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Alive: answers as long as the process does. No token.
async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Ready: the store answers. No token; 503 otherwise.
async fn readyz<D: Dns, C: Clock>(State(state): State<ApiState<D, C>>) -> Response {
    match state.service.zone_serial().await {
        Ok(_) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!("api: not ready: {e}");
            ApiError::not_ready().into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests;
