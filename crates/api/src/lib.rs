//! signet's HTTP API: JSON under `/api/v1`, each handler a thin call into the same `signet-app`
//! use-cases as the CLI, so the two never disagree (`docs/reference.md`, "Signing configs", for
//! the property names; the README's "HTTP API" for the endpoints).
//!
//! Requests carry `Authorization: Bearer TOKEN` (`signet token add`); a tenant token sees its own
//! tenant's domains (and queued messages) only, anything else answering 404 as if absent. Changes are audited as
//! `token:NAME`. Errors are `{"error": {"code": "...", "message": "..."}}`. The router is a
//! value, so tests drive it without sockets; [`serve`] puts it on a listener.
//!
//! ```text
//! let state = ApiState::new(Arc::new(service), 3600);
//! signet_api::serve(listener, signet_api::router(state), stop).await?;
//! ```

mod auth;
mod connection;
mod directory;
mod dkim;
mod error;
mod input;
mod inspect;
mod metrics;
mod queue;
mod session;
mod web;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde_json::json;
use signet_app::{Clock, Dns, Service};
use signet_keys::TokenDigest;

pub use error::ApiError;
pub use metrics::{CounterSample, RelayCounters};
pub use queue::{QueueEntry, QueueView};
pub use session::SESSION_LIFETIME;
pub use signet_verifier::Verifier;

/// The largest request body accepted; more is refused with 413 before it is read.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the handlers share: the use-cases, the TTL shown with records, what `/metrics` reports
/// and asks for, and the binary's queue and verifier (`/queue`, `/verify`; 404 without).
#[derive(Debug)]
pub struct ApiState<D, C> {
    service: Arc<Service<D, C>>,
    records_ttl: u32,
    relay: Option<Arc<dyn RelayCounters>>,
    metrics_token: Option<TokenDigest>,
    queue: Option<Arc<dyn QueueView>>,
    verifier: Option<Arc<Verifier>>,
    /// The web page's sessions (`session.rs`).
    sessions: Arc<session::Sessions>,
    /// Whether the session cookie is `Secure` (the listener is HTTPS).
    secure_cookies: bool,
}

impl<D, C> Clone for ApiState<D, C> {
    fn clone(&self) -> Self {
        ApiState {
            service: Arc::clone(&self.service),
            records_ttl: self.records_ttl,
            relay: self.relay.clone(),
            metrics_token: self.metrics_token.clone(),
            queue: self.queue.clone(),
            verifier: self.verifier.clone(),
            sessions: Arc::clone(&self.sessions),
            secure_cookies: self.secure_cookies,
        }
    }
}

impl<D, C> ApiState<D, C> {
    /// `records_ttl` is the key zone's TTL (`[dns] ttl`), as `signet records` shows it.
    pub fn new(service: Arc<Service<D, C>>, records_ttl: u32) -> Self {
        ApiState {
            service,
            records_ttl,
            relay: None,
            metrics_token: None,
            queue: None,
            verifier: None,
            sessions: Arc::default(),
            secure_cookies: false,
        }
    }

    /// `/metrics` reports these relay counters too.
    #[must_use]
    pub fn with_relay(mut self, relay: Arc<dyn RelayCounters>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// `GET /queue` lists this queue.
    #[must_use]
    pub fn with_queue(mut self, queue: Arc<dyn QueueView>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// `POST /verify` verifies with this verifier (and its resolver).
    #[must_use]
    pub fn with_verifier(mut self, verifier: Arc<Verifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The web page's session cookie carries `Secure` (set when the listener is HTTPS).
    #[must_use]
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// `/metrics` answers only requests that carry `Authorization: Bearer <token>`
    /// (`[http] metrics_token`); only its digest is kept.
    #[must_use]
    pub fn with_metrics_token(mut self, token: &str) -> Self {
        self.metrics_token = Some(TokenDigest::of(token));
        self
    }
}

/// The whole HTTP surface: the web page (`/`, `/ui/…`), `/api/v1/…`, `/metrics`, `/healthz`,
/// `/readyz`; every answer carries the security headers of `web.rs`.
pub fn router<D, C>(state: ApiState<D, C>) -> Router
where
    D: Dns + Clone + 'static,
    C: Clock + Clone + 'static,
{
    let api = Router::new()
        .route(
            "/tenants",
            get(directory::tenants).merge(post(directory::add_tenant)),
        )
        .route("/tenants/{tenant}", delete(directory::remove_tenant))
        .route(
            "/domains",
            get(directory::domains).merge(post(directory::add_domain)),
        )
        .route("/domains/{domain}", delete(directory::remove_domain))
        .route(
            "/connectors",
            get(directory::connectors).merge(post(directory::add_connector)),
        )
        .route(
            "/connectors/{tenant}/{name}",
            delete(directory::remove_connector),
        )
        .route("/dkim", get(dkim::list))
        .route(
            "/dkim/{domain}",
            get(dkim::get)
                .merge(post(dkim::new))
                .merge(patch(dkim::set))
                .merge(delete(dkim::remove)),
        )
        .route("/dkim/{domain}/rotate", post(dkim::rotate))
        .route("/records/{domain}", get(dkim::records))
        .route("/audit", get(dkim::audit))
        .route("/queue", get(queue::list))
        .route("/verify", post(inspect::verify))
        .route("/analyze", post(inspect::analyze));
    Router::new()
        .route("/", get(web::page))
        .route("/ui/app.js", get(web::script))
        .route("/ui/app.css", get(web::style))
        .route(
            "/ui/session",
            get(web::session)
                .merge(post(web::sign_in))
                .merge(delete(web::sign_out)),
        )
        .nest("/api/v1", api)
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(web::security_headers))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes; requests under way are finished
/// first. Every read and write has a 30 s deadline (idle kept-alive connections included), and
/// at most 256 connections are served at once (`connection.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener =
        connection::LimitedListener::new(listener, connection::ConnectionLimits::default());
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
    no_such_endpoint()
}

/// What an unknown endpoint answers; a tenant token gets the same from the admin's endpoints.
pub(crate) fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests;
