//! `GET /queue`: the relay's queue as `signet queue list --format json` shows it. The spool is
//! in the binary's data directory, so this crate reads it through [`QueueView`], which the
//! binary implements over `Spool::open_alongside`; without one the endpoint answers 404.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use signet_app::{Clock, Dns};

use crate::auth::Caller;
use crate::{ApiError, ApiState};

/// One queued message, as a row of `signet queue list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueEntry {
    pub id: String,
    /// The tenant whose connector or login sent it.
    pub tenant: String,
    /// The envelope sender; `<>` for the null sender.
    pub from: String,
    /// The recipients, separated by spaces.
    pub to: String,
    pub attempts: u32,
    /// RFC 3339.
    pub next_attempt: String,
}

/// The relay's queue, read at each request (blocking file reads are fine: the API calls it off
/// the async threads).
pub trait QueueView: Send + Sync + std::fmt::Debug {
    /// Every queued message; the error is logged, never sent.
    fn entries(&self) -> Result<Vec<QueueEntry>, String>;
}

/// `GET /queue`: an admin token sees every entry, a tenant token its tenant's only.
pub(crate) async fn list<D: Dns, C: Clock>(
    caller: Caller,
    State(state): State<ApiState<D, C>>,
) -> Result<Json<Vec<QueueEntry>>, ApiError> {
    let Some(queue) = state.queue.clone() else {
        return Err(crate::no_such_endpoint());
    };
    let entries = tokio::task::spawn_blocking(move || queue.entries())
        .await
        .map_err(|e| ApiError::internal_because(&format!("queue: {e}")))?
        .map_err(|e| ApiError::internal_because(&format!("queue: {e}")))?;
    let scope = caller.scope();
    Ok(Json(
        entries
            .into_iter()
            .filter(|e| scope.tenant().is_none_or(|own| own.as_str() == e.tenant))
            .collect(),
    ))
}
