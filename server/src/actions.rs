//! Actions recorded by the server as case events: `POST /v1/cases/{id}/events` with the event
//! as JSON (an `EventKind`, e.g. `{"Dispatched": {"target": {"Department": {"code":
//! "dept-env", "name": "区生态环境局"}}, "due_at_ms": null, "note": "请处理"}}`).
//!
//! For the command centre (and any phone role that is online): the server loads its copy of
//! the case, records the event with the caller's identity exactly as a phone would (the same
//! validation, role table and fold), and pushes the change through the ordinary merge under
//! the caller's device ([`record_event`], which the command centre's pages use too) — so the same access checks apply and the event reaches every phone in
//! scope by sync. Its Automerge actor is the device's prefix with the reserved epoch
//! `u32::MAX`, which a phone never reaches.

use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::DeviceAuth;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridlink_core::Error as CoreError;
use gridlink_core::case::{Case, Event, EventKind, Stamp};
use gridlink_core::doc::{CaseDoc, DocKind};
use gridlink_core::sync::wire::PushDoc;

/// The epoch of the actor the server records a device's actions under.
pub const SERVER_EPOCH: u32 = u32::MAX;

/// The actor the server records changes under for a device with this actor prefix (epoch
/// [`SERVER_EPOCH`]).
pub fn server_actor(prefix: &[u8]) -> Result<automerge::ActorId, ApiError> {
    let prefix: [u8; gridlink_core::sync::ACTOR_PREFIX_LEN] = prefix
        .try_into()
        .map_err(|_| ApiError::Internal("bad actor prefix".into()))?;
    Ok(gridlink_core::sync::device_actor(&prefix, SERVER_EPOCH))
}

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

/// Records an event on a case as a device's user (the API and the command centre's pages):
/// validated by the same rules as on a phone, then merged like a push from that device.
pub fn record_event(
    state: &AppState,
    device: &DeviceAuth,
    case_id: &str,
    kind: EventKind,
) -> Result<(Event, Case), ApiError> {
    if matches!(kind, EventKind::Reported { .. }) {
        return Err(ApiError::BadRequest(
            "案件已上报 / the case is already reported".into(),
        ));
    }
    if DocKind::of(case_id) != DocKind::Case {
        return Err(ApiError::refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_case",
            "这不是案件：走访、地址和调解档案只能在手机上记录并同步 / not a case: visits, addresses and mediation files are recorded on the phone and synced",
        ));
    }
    let pusher = state.pusher(device)?;
    // One recorded action of this device at a time: each loads the case as committed by the
    // one before, so their changes never share a sequence number.
    let _serial = state.action_lock(&device.device_id);
    let not_found = || {
        ApiError::refused(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这个案件，或无权查看 / no such case, or not yours to see",
        )
    };
    let stored = state.store().load_doc(case_id)?.ok_or_else(not_found)?;
    if !pusher.may_read(&stored.scopes) {
        return Err(not_found());
    }
    let mut doc = CaseDoc::load(case_id, &stored.bytes)
        .map_err(|e| ApiError::Internal(format!("{case_id}: {e}")))?;
    doc.set_actor(server_actor(&device.actor_prefix)?);
    let before = doc.heads();
    let stamp = Stamp {
        actor: device.user.id.clone(),
        role: device.user.role,
        device: device.device_id.clone(),
        at_ms: now_ms(),
        location: None,
    };
    let (event, case) = doc.record(kind, stamp).map_err(|e| match e {
        CoreError::NotAllowed { reason } => ApiError::refused(
            StatusCode::CONFLICT,
            "not_allowed",
            format!("当前状态或角色不允许该操作 / not allowed now: {reason:?}"),
        ),
        CoreError::Invalid(e) => {
            ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
        }
        other => ApiError::Internal(other.to_string()),
    })?;
    let changes = doc.save_after(&before);
    let outcome = state.push_as(
        &pusher,
        &device.actor_prefix,
        vec![PushDoc {
            doc_id: case_id.to_owned(),
            changes,
        }],
    )?;
    if let Some(rejection) = outcome.rejections.first() {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "refused",
            format!("{} ({})", rejection.message, rejection.code.code()),
        ));
    }
    Ok((event, case))
}
