//! Overdue cases: listed for whoever covers them, and escalated automatically when the
//! district turns that on.
//!
//! A case's deadline is materialized with every merge (`cases.due_at`, from the events or the
//! time-limit table), so "overdue" is an indexed range query. `GET /v1/cases/overdue` lists
//! the overdue cases in the caller's grants, judged by the same scope rows sync reads. [`escalate_overdue`] records, for every overdue
//! case still in a grid or a village, an `escalated` event one rung up, authored by the
//! platform (role system) through the ordinary merge, so it reaches every phone in scope; the
//! server runs it every `auto_escalate_minutes` when that is set.

use crate::authored::{self, Author, WriteError};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::{DeviceAuth, StoreError};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gridlink_core::case::{EventKind, Level, Role};

/// Most cases one escalation run handles (the next run takes the rest).
const MAX_PER_RUN: u32 = 500;

/// `GET /v1/cases/overdue`: the overdue cases the caller covers, oldest deadline first.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        let device: DeviceAuth = state.authenticate(&headers)?;
        if device.user.role == Role::Citizen {
            return Err(ApiError::Forbidden(
                "市民不能查看工单 / citizens do not see work orders".into(),
            ));
        }
        let grants = state.store().grants(&device.user.id)?;
        let now = now_ms();
        let cases: Vec<serde_json::Value> = state
            .store()
            .overdue_cases(now, Some(&grants), 5 * MAX_PER_RUN)?
            .into_iter()
            .map(|row| {
                serde_json::json!({
                    "id": row.id,
                    "title": row.title,
                    "grid_id": row.place.grid_id,
                    "status": row.status,
                    "level": row.level,
                    "due_at_ms": row.due_at,
                    "overdue_ms": row.due_at.map(|d| now - d),
                })
            })
            .collect();
        Ok(axum::Json(serde_json::json!({ "now_ms": now, "cases": cases })).into_response())
    })
    .await
}

/// Escalates every overdue case still in a grid or a village one rung up; returns their ids.
pub fn escalate_overdue(state: &AppState, now: i64) -> Result<Vec<String>, StoreError> {
    let platform = Author::platform();
    let mut escalated = Vec::new();
    for row in state.store().overdue_cases(now, None, MAX_PER_RUN)? {
        let Some(to) = Level::from_code(&row.level).and_then(Level::next_up) else {
            continue;
        };
        let kind = EventKind::Escalated {
            to,
            reason: "超过办理时限，系统自动上报 / past its time limit: escalated automatically"
                .into(),
        };
        match authored::record(state, &platform, &row.id, kind, now) {
            Ok(_) => escalated.push(row.id),
            Err(WriteError::Store(e)) => return Err(e),
            // A case whose state moved on meanwhile (accepted elsewhere and solved) is refused
            // by the fold and left alone.
            Err(WriteError::NotAllowed(_) | WriteError::NotFound) => {}
            Err(e) => tracing::error!(case = %row.id, error = %e, "overdue case not escalated"),
        }
    }
    if !escalated.is_empty() {
        tracing::info!(count = escalated.len(), "escalated overdue cases");
    }
    Ok(escalated)
}
