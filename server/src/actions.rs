//! Actions recorded by the server as case events: `POST /v1/cases/{id}/events` with the event
//! as JSON (an `EventKind`, e.g. `{"Dispatched": {"target": {"Department": {"code":
//! "dept-env", "name": "区生态环境局"}}, "due_at_ms": null, "note": "请处理"}}`).
//!
//! For the command centre (and any phone role that is online): the server loads its copy of
//! the case, records the event with the caller's identity exactly as a phone would (the same
//! validation, role table and fold), and pushes the change through the ordinary merge under
//! the caller's device ([`record_event`], which the command centre's pages use too; the path
//! is `crate::authored`'s) — so the same access checks apply and the event reaches every
//! phone in scope by sync. Its Automerge actor is the device's prefix with the reserved epoch
//! [`authored::SERVER_EPOCH`], which a phone never reaches.

use crate::authored;
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::DeviceAuth;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridlink_core::case::{Case, Event, EventKind};

/// `POST /v1/cases/{id}/events`.
pub async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (device, body) =
        crate::http::authenticated_body(&state, headers, body, crate::http::MAX_REQUEST_BODY_BYTES)
            .await?;
    crate::http::blocking(move || record_blocking(&state, device, &case_id, &body)).await
}

fn record_blocking(
    state: &AppState,
    device: crate::store::DeviceAuth,
    case_id: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let kind: EventKind = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("事件格式不对 / the event is malformed: {e}")))?;
    let (event, case) = record_event(state, &device, case_id, kind)?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({
            "case_id": case_id,
            "event_id": event.id,
            "status": case.state.status.code(),
            "level": case.state.level.code(),
        })),
    )
        .into_response())
}

/// Records an event on a case as a device's user (the API and the command centre's pages),
/// by the one path of the server's writes ([`authored::record`]).
pub fn record_event(
    state: &AppState,
    device: &DeviceAuth,
    case_id: &str,
    kind: EventKind,
) -> Result<(Event, Case), ApiError> {
    let author = authored::Author::device(state, device)?;
    Ok(authored::record(state, &author, case_id, kind, now_ms())?)
}
