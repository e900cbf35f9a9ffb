//! The sync and enroll protocol (`POST /v1/sync`, `POST /v1/enroll`; the wire format is
//! `gridlink_core::sync::wire`): a sync authenticates the device, waits for a turn, merges what
//! it pushes and answers with what its grants cover since its cursor; an enrollment redeems a
//! one-time code for a device token.

use crate::error::ApiError;
use crate::http::{authenticated_body, blocking, cbor, read_body};
use crate::metrics::Metrics;
use crate::state::{AppState, SYNC_TURN_WAIT, now_ms};
use crate::store::{self, NewDevice, StoreError};
use crate::{identity, merge};
use axum::body::{Body, Bytes};
use axum::extract::{State, rejection::BytesRejection};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gridlink_core::sync::scope::ScopeKey;
use gridlink_core::sync::wire::{
    self, Cursor, EnrollRequest, EnrollResponse, SyncRequest, SyncResponse,
};
use std::collections::BTreeSet;
use std::time::Instant;

/// Cursor keys allowed beyond the device's grants and withdrawn grants (see `sync_blocking`).
const CURSOR_KEY_SLACK: usize = 32;

impl AppState {
    /// Handles one sync request body for an authenticated device.
    pub fn sync_blocking(
        &self,
        device: &store::DeviceAuth,
        body: &[u8],
    ) -> Result<SyncResponse, ApiError> {
        if device.user.role == gridlink_core::case::Role::Citizen {
            return Err(ApiError::Forbidden(
                "市民账号通过随手拍接口上报，不同步案件文档 / citizen accounts report through /v1/citizen, they do not sync case documents".into(),
            ));
        }
        let request: SyncRequest = wire::decode(body, wire::MAX_SYNC_REQUEST_BYTES)?;
        wire::check_protocol(request.protocol)?;
        if request.push.len() > wire::MAX_PUSH_DOCS {
            return Err(ApiError::TooLarge(format!(
                "一次最多推送 {} 个文档 / at most {} documents per push",
                wire::MAX_PUSH_DOCS,
                wire::MAX_PUSH_DOCS
            )));
        }
        let store = &self.inner.store;
        let pusher = self.pusher(device)?;
        let grants = pusher.scopes.clone();
        // Keys the device read before and whose grant was withdrawn: their documents leave.
        // Only withdrawn keys count, so naming keys in a cursor reveals nothing.
        let revoked = if request.cursor.0.is_empty() {
            BTreeSet::new()
        } else {
            store.revoked_grants(&device.user.id)?
        };
        // Checked before the push is merged, so a refused request changes nothing. A cursor
        // this server gave names the keys the device reads (each response's cursor holds only
        // those); one kept from before a change of grants may name a few more, hence the slack.
        let most = grants.len() + revoked.len() + CURSOR_KEY_SLACK;
        if request.cursor.0.len() > most {
            return Err(ApiError::BadRequest(format!(
                "游标包含 {} 个范围，多于本设备可读的 {most} 个 / the cursor names {} scopes, more than the {most} this device may read",
                request.cursor.0.len(),
                request.cursor.0.len(),
            )));
        }
        let now = now_ms();
        let pushed = if request.push.is_empty() {
            merge::PushOutcome::default()
        } else {
            self.push(
                &pusher,
                &device.actor_prefix,
                request.push,
                now,
                merge::Origin::Device,
            )?
        };
        let m = &self.inner.metrics;
        m.docs_merged.inc_by(pushed.acks.len() as u64);
        for r in &pushed.rejections {
            m.docs_rejected
                .get_or_create(&Metrics::label("code", r.code.code()))
                .inc();
        }

        // A cursor of another history (this server was restored from a backup since) points
        // into a log that no longer exists: the pull starts again from nothing.
        let restored = request
            .history
            .as_deref()
            .is_some_and(|h| h != self.history());
        let from: Vec<(ScopeKey, u64)> = grants
            .iter()
            .map(|k| {
                let position = match restored {
                    true => 0,
                    false => request.cursor.0.get(&k.to_string()).copied().unwrap_or(0),
                };
                (k.clone(), position)
            })
            .collect();
        let left: Vec<ScopeKey> = request
            .cursor
            .0
            .keys()
            .filter_map(|k| k.parse::<ScopeKey>().ok())
            .filter(|k| !grants.contains(k) && revoked.contains(k))
            .collect();
        let kept: Vec<ScopeKey> = grants.iter().cloned().collect();
        let removed = store.docs_leaving(&left, &kept)?;
        let budget = request
            .max_pull_bytes
            .clamp(1, self.inner.config.max_pull_bytes);
        let page = store.pull(&from, &device.device_id, budget)?;
        m.docs_pulled.inc_by(page.docs.len() as u64);
        Ok(SyncResponse {
            protocol: wire::PROTOCOL_VERSION,
            request_id: request.request_id,
            acks: pushed.acks,
            rejections: pushed.rejections,
            pulled: page.docs,
            removed,
            cursor: Cursor(
                page.positions
                    .into_iter()
                    .map(|(k, p)| (k.to_string(), p))
                    .collect(),
            ),
            more: page.more,
            history: Some(self.history().to_owned()),
        })
    }

    /// Redeems an enrollment code.
    pub fn enroll_blocking(&self, body: &[u8]) -> Result<EnrollResponse, ApiError> {
        let request: EnrollRequest = wire::decode(body, 64 << 10)?;
        wire::check_protocol(request.protocol)?;
        if uuid::Uuid::parse_str(&request.device_id).is_err() {
            return Err(ApiError::BadRequest(format!(
                "设备编号必须是 UUID / the device id must be a UUID: {:?}",
                request.device_id.chars().take(64).collect::<String>()
            )));
        }
        let name: String = request.device_name.trim().chars().take(100).collect();
        let token = identity::new_token().map_err(ApiError::Internal)?;
        let device = NewDevice {
            id: request.device_id.clone(),
            name,
            token_hash: identity::hash_secret(&token),
            actor_prefix: identity::new_actor_prefix().map_err(ApiError::Internal)?,
        };
        let code_hash = identity::hash_secret(&identity::normalize_code(&request.code));
        let user = match self.inner.store.enroll(&code_hash, &device, now_ms()) {
            Ok(user) => user,
            // Another user's active device id.
            Err(StoreError::Conflict(message)) => {
                self.inner
                    .metrics
                    .enrollments
                    .get_or_create(&Metrics::label("outcome", "refused"))
                    .inc();
                return Err(ApiError::Forbidden(message));
            }
            Err(StoreError::NotFound(_)) => {
                self.inner
                    .metrics
                    .enrollments
                    .get_or_create(&Metrics::label("outcome", "refused"))
                    .inc();
                return Err(ApiError::Forbidden(
                    "登记码无效、已使用或已过期 / the enrollment code is unknown, used or expired"
                        .into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.inner
            .metrics
            .enrollments
            .get_or_create(&Metrics::label("outcome", "ok"))
            .inc();
        let scopes: BTreeSet<ScopeKey> = self.inner.store.grants(&user.id)?;
        Ok(EnrollResponse {
            protocol: wire::PROTOCOL_VERSION,
            device_id: device.id,
            token,
            actor_prefix: device.actor_prefix,
            user_id: user.id,
            user_name: user.name,
            role: user.role,
            scopes: scopes.iter().map(ToString::to_string).collect(),
        })
    }
}

pub(crate) async fn enroll(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let response = blocking(move || state.enroll_blocking(&body)).await?;
    Ok(cbor(wire::encode(&response)))
}

pub(crate) async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let m = &state.inner.metrics;
    m.in_flight.inc();
    let result = async {
        let (device, body) =
            authenticated_body(&state, headers, body, state.inner.config.max_body_bytes).await?;
        m.bytes_in.inc_by(body.len() as u64);
        let _turn = tokio::time::timeout(SYNC_TURN_WAIT, state.inner.sync_turns.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "服务器繁忙，你的工作保留在设备上，稍后自动重发 / the server is busy: your work stays on the device and is sent again later",
                )
            })?;
        let state = state.clone();
        let response = tokio::task::spawn_blocking(move || {
            state
                .sync_blocking(&device, &body)
                .map(|r| wire::encode(&r))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok::<_, ApiError>(response)
    }
    .await;
    m.in_flight.dec();
    m.sync_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(bytes) => {
            m.sync_requests
                .get_or_create(&Metrics::label("outcome", "ok"))
                .inc();
            m.bytes_out.inc_by(bytes.len() as u64);
            cbor(bytes)
        }
        Err(e) => {
            m.sync_requests
                .get_or_create(&Metrics::label("outcome", e.code()))
                .inc();
            e.into_response()
        }
    }
}
