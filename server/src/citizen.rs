//! 随手拍: citizens register anonymously, submit reports, and follow their own reports.
//!
//! - `POST /v1/citizen/register` ([`CitizenRegisterRequest`] → [`EnrollResponse`]): a
//!   device-bound citizen account; rate-limited per address (see [`crate::limits`]) and per
//!   phone number. The number is kept only as a keyed hash and a masked form.
//! - `POST /v1/citizen/reports` ([`CitizenReport`] → [`CitizenReceipt`]): idempotent by the
//!   report id. The server places the report in the grid containing its location, and writes
//!   the case document itself (source citizen, the reporter masked in the details). Citizens
//!   never push CRDT history.
//! - `GET /v1/citizen/reports` ([`MyReports`]): the citizen's reports with status and closing
//!   note; nothing about anyone else.
//! - `GET /v1/cases/{id}/reporter` (JSON): the reporter of a case, masked for handlers and in
//!   full for operators.

use crate::authored;
use crate::error::ApiError;
use crate::identity;
use crate::state::{AppState, now_ms};
use crate::store::{Citizen, DeviceAuth, NewDevice, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State, rejection::BytesRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridlink_core::address::{mask_name, mask_phone};
use gridlink_core::case::{CaseDetails, Category, EventKind, Role, Source, Stamp, Status};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::wire::{
    self, CitizenReceipt, CitizenRegisterRequest, CitizenReport, EnrollResponse, MAX_REPORT_CHARS,
    MAX_REPORT_PHOTOS, MyReport, MyReports,
};

/// Most reports listed for a citizen.
const MAX_LISTED: u32 = 200;

/// Whether `phone` is a mainland mobile number (11 digits, 1[3-9]…).
fn valid_phone(phone: &str) -> bool {
    phone.len() == 11
        && phone.bytes().all(|b| b.is_ascii_digit())
        && phone.starts_with('1')
        && matches!(phone.as_bytes()[1], b'3'..=b'9')
}

/// How handlers see a citizen: `张** 138****1234`, or `市民` when nothing was given.
pub fn masked_contact(citizen: &Citizen) -> String {
    let parts: Vec<String> = [
        citizen.name.as_deref().map(mask_name),
        citizen.phone_masked.clone(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect();
    if parts.is_empty() {
        "市民".into()
    } else {
        parts.join(" ")
    }
}

fn citizen_only(device: &DeviceAuth) -> Result<(), ApiError> {
    if device.user.role != Role::Citizen {
        return Err(ApiError::Forbidden(
            "这是市民随手拍接口 / this endpoint is for citizen accounts".into(),
        ));
    }
    Ok(())
}

/// `POST /v1/citizen/register`.
pub async fn register(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = crate::http::read_body(body)?;
    let response = crate::http::blocking(move || register_blocking(&state, &body)).await?;
    Ok(crate::http::cbor(wire::encode(&response)))
}

fn register_blocking(state: &AppState, body: &[u8]) -> Result<EnrollResponse, ApiError> {
    let request: CitizenRegisterRequest = wire::decode(body, 64 << 10)?;
    wire::check_protocol(request.protocol)?;
    if uuid::Uuid::parse_str(&request.device_id).is_err() {
        return Err(ApiError::BadRequest(
            "设备编号必须是 UUID / the device id must be a UUID".into(),
        ));
    }
    let name = request
        .name
        .map(|n| n.trim().chars().take(20).collect::<String>())
        .filter(|n| !n.is_empty());
    let phone = match request.phone.map(|p| p.trim().replace([' ', '-'], "")) {
        Some(p) if valid_phone(&p) => Some(p),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "手机号应为 11 位大陆手机号 / the phone number must be an 11-digit mainland mobile number".into(),
            ));
        }
        None => None,
    };
    let pepper = state
        .store()
        .setting("phone_pepper")?
        .ok_or_else(|| ApiError::Internal("phone_pepper missing".into()))?;
    let phone_hash = phone.as_deref().map(|p| {
        let mut keyed = pepper.clone();
        keyed.extend_from_slice(p.as_bytes());
        gridlink_core::photo::sha256_hex(&keyed)
    });
    let token = identity::new_token().map_err(ApiError::Internal)?;
    let citizen = Citizen {
        user_id: format!("cit-{}", uuid::Uuid::new_v4().simple()),
        name: name.clone(),
        phone_hash,
        phone_masked: phone.as_deref().map(mask_phone),
        registered_at_ms: now_ms(),
    };
    let device = NewDevice {
        id: request.device_id.clone(),
        name: request.device_name.trim().chars().take(100).collect(),
        token_hash: identity::hash_secret(&token),
        actor_prefix: identity::new_actor_prefix().map_err(ApiError::Internal)?,
    };
    match state.store().register_citizen(
        &citizen,
        &device,
        state.config().max_registrations_per_phone,
    ) {
        Ok(()) => {}
        Err(StoreError::Conflict(message)) => {
            return Err(ApiError::refused(StatusCode::CONFLICT, "conflict", message));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .metrics()
        .enrollments
        .get_or_create(&crate::metrics::Metrics::label("outcome", "citizen"))
        .inc();
    Ok(EnrollResponse {
        protocol: wire::PROTOCOL_VERSION,
        device_id: device.id,
        token,
        actor_prefix: device.actor_prefix,
        user_id: citizen.user_id,
        user_name: name.unwrap_or_default(),
        role: Role::Citizen,
        scopes: Vec::new(),
    })
}

/// `POST /v1/citizen/reports`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (device, body) =
        crate::http::authenticated_body(&state, headers, body, crate::http::MAX_REQUEST_BODY_BYTES)
            .await?;
    let receipt = crate::http::blocking(move || submit_blocking(&state, device, &body)).await?;
    Ok(crate::http::cbor(wire::encode(&receipt)))
}

fn invalid(message: String) -> ApiError {
    ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}

fn submit_blocking(
    state: &AppState,
    device: crate::store::DeviceAuth,
    body: &[u8],
) -> Result<CitizenReceipt, ApiError> {
    citizen_only(&device)?;
    let report: CitizenReport = wire::decode(body, 64 << 10)?;
    wire::check_protocol(report.protocol)?;
    if uuid::Uuid::parse_str(&report.id).is_err() {
        return Err(invalid(
            "上报编号不是 UUID / the report id is not a UUID".into(),
        ));
    }
    let category = Category::from_code(&report.category)
        .ok_or_else(|| invalid(format!("未知类别 / unknown category {:?}", report.category)))?;
    let text = report.text.trim();
    if text.is_empty() || text.chars().count() > MAX_REPORT_CHARS || text.contains(['\n', '\r']) {
        return Err(invalid(format!(
            "说明须为一行，1–{MAX_REPORT_CHARS} 字 / one line of 1–{MAX_REPORT_CHARS} characters"
        )));
    }
    gridlink_core::text::check(text).map_err(|e| invalid(format!("说明 / text: {e}")))?;
    if !report.location.is_valid() {
        return Err(invalid("位置无效 / the location is invalid".into()));
    }
    if report.photos.is_empty()
        || report.photos.len() > MAX_REPORT_PHOTOS
        || !report.photos.iter().all(|h| crate::blobs::is_hash(h))
    {
        return Err(invalid(format!(
            "须附 1–{MAX_REPORT_PHOTOS} 张照片 / attach 1–{MAX_REPORT_PHOTOS} photos"
        )));
    }
    let citizen = state
        .store()
        .citizen(&device.user.id)?
        .ok_or_else(|| ApiError::Forbidden("不是已注册的市民 / not a registered citizen".into()))?;
    // Idempotent by id: the same citizen sending the same report again gets the same answer.
    if let Some(row) = state.store().case_row(&report.id)? {
        return if row.reporter.as_deref() == Some(device.user.id.as_str()) {
            Ok(CitizenReceipt {
                id: report.id,
                grid_id: row.place.grid_id,
                created: false,
            })
        } else {
            Err(ApiError::refused(
                StatusCode::CONFLICT,
                "conflict",
                "该编号已被使用 / this id is already used",
            ))
        };
    }
    let grid_id = state.grid_at(report.location.point).ok_or_else(|| {
        ApiError::refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "outside_district",
            "该位置不在本区网格内 / this location is outside the district's grids",
        )
    })?;
    let now = now_ms();
    let details = CaseDetails {
        id: report.id.clone(),
        category,
        source: Source::Citizen,
        title: text.to_owned(),
        description: String::new(),
        location: Some(report.location),
        address_id: None,
        grid_id: grid_id.clone(),
        reporter: Some(masked_contact(&citizen)),
        priority: Default::default(),
    };
    let stamp = Stamp {
        actor: device.user.id.clone(),
        role: Role::Citizen,
        device: device.device_id.clone(),
        // A phone clock ahead of the server's does not date a report in the future.
        at_ms: report.reported_at_ms.min(now),
        location: Some(report.location),
    };
    let opened = authored::open(
        state,
        authored::Intake {
            details,
            photos: report.photos.clone(),
            stamp,
            audit_action: "citizen_report",
        },
    )
    .map_err(|e| match e {
        authored::WriteError::Invalid(message) => invalid(message),
        other => other.into(),
    })?;
    let created = match opened {
        authored::Opened::Created => true,
        authored::Opened::Already => false,
        authored::Opened::Taken => {
            return Err(ApiError::refused(
                StatusCode::CONFLICT,
                "conflict",
                "该编号已被使用 / this id is already used",
            ));
        }
    };
    state.metrics().citizen_reports.inc();
    Ok(CitizenReceipt {
        id: report.id,
        grid_id,
        created,
    })
}

/// `GET /v1/citizen/reports`.
pub async fn mine(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let reports = crate::http::blocking(move || mine_blocking(&state, &headers)).await?;
    Ok(crate::http::cbor(wire::encode(&reports)))
}

fn mine_blocking(state: &AppState, headers: &HeaderMap) -> Result<MyReports, ApiError> {
    let device = state.authenticate(headers)?;
    citizen_only(&device)?;
    let rows = state.store().reported_by(&device.user.id, MAX_LISTED)?;
    let mut reports = Vec::with_capacity(rows.len());
    for row in rows {
        // Only a solved or closed case has a note for its reporter: open ones cost no load.
        let ended = matches!(
            Status::from_code(&row.status),
            Some(Status::Resolved | Status::Verified | Status::Closed)
        );
        let closing_note = if ended {
            state
                .store()
                .load_doc(&row.id)?
                .and_then(|stored| CaseDoc::load(&row.id, &stored.bytes).ok())
                .and_then(|doc| doc.case().ok())
                .and_then(|case| closing_note(&case))
        } else {
            None
        };
        let status_label = Status::from_code(&row.status)
            .map_or_else(|| row.status.clone(), |s| s.label_zh().to_owned());
        reports.push(MyReport {
            id: row.id,
            category: row.category,
            title: row.title,
            status: row.status,
            status_label,
            grid_id: row.place.grid_id,
            reported_at_ms: row.reported_at,
            updated_at_ms: row.updated_at,
            closing_note,
        });
    }
    Ok(MyReports { reports })
}

/// What the reporter is told at the end: the closing note, the reason it was not taken on,
/// or the note of the fix.
fn closing_note(case: &gridlink_core::case::Case) -> Option<String> {
    let flagged = |id: &str| case.state.flagged.iter().any(|f| f.event_id == id);
    case.history
        .iter()
        .rev()
        .filter(|e| !flagged(&e.id))
        .find_map(|e| match &e.kind {
            EventKind::Closed { note } if !note.trim().is_empty() => Some(note.clone()),
            EventKind::RejectedInvalid { reason } => Some(reason.clone()),
            EventKind::DuplicateOf { .. } => Some(
                "与已有案件重复，已合并处理 / a duplicate of a case already being handled".into(),
            ),
            EventKind::Resolved { note } | EventKind::ResolvedInGrid { note }
                if !note.trim().is_empty() =>
            {
                Some(note.clone())
            }
            _ => None,
        })
}

/// `GET /v1/cases/{id}/reporter`: who reported a case, masked unless the caller is an
/// operator; 404 for a case the caller may not see.
pub async fn reporter(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        let device = state.authenticate(&headers)?;
        let not_found = || {
            ApiError::refused(
                StatusCode::NOT_FOUND,
                "not_found",
                "没有这个案件，或无权查看 / no such case, or not yours to see",
            )
        };
        let stored = state.store().load_doc(&case_id)?.ok_or_else(not_found)?;
        let pusher = state.pusher(&device)?;
        if device.user.role == Role::Citizen || !pusher.may_read(&stored.scopes) {
            return Err(not_found());
        }
        let row = state.store().case_row(&case_id)?.ok_or_else(not_found)?;
        let citizen = match &row.reporter {
            Some(id) => state.store().citizen(id)?,
            None => None,
        };
        let operator = gridlink_core::privacy::sees_citizen_contact(device.user.role);
        let body = match &citizen {
            Some(c) => serde_json::json!({
                "case_id": case_id,
                "kind": "citizen",
                "user_id": if operator { Some(c.user_id.clone()) } else { None },
                "name": if operator { c.name.clone() } else { c.name.as_deref().map(mask_name) },
                // Only the masked number is kept.
                "phone": c.phone_masked,
                "display": if operator {
                    [c.name.clone(), c.phone_masked.clone()].into_iter().flatten().collect::<Vec<_>>().join(" ")
                } else {
                    masked_contact(c)
                },
            }),
            None => serde_json::json!({
                "case_id": case_id,
                "kind": "staff",
                "user_id": row.reporter,
                "display": row.reporter,
            }),
        };
        Ok(axum::Json(body).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citizens_are_shown_masked_and_phone_numbers_checked() {
        assert!(valid_phone("13812341234"));
        assert!(!valid_phone("12812341234"));
        assert!(!valid_phone("1381234123"));
        assert!(!valid_phone("1381234123x"));
        let c = Citizen {
            user_id: "cit-1".into(),
            name: Some("张三".into()),
            phone_hash: None,
            phone_masked: Some("138****1234".into()),
            registered_at_ms: 0,
        };
        assert_eq!(masked_contact(&c), "张** 138****1234");
        assert_eq!(
            masked_contact(&Citizen {
                name: None,
                phone_masked: None,
                ..c
            }),
            "市民"
        );
    }
}
