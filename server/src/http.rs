//! What every HTTP handler needs: blocking work off the async workers, bodies read with
//! bounds and deadlines (after authentication where there is any), CBOR answers.

use crate::error::ApiError;
use crate::state::AppState;
use crate::store;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridlink_core::sync::wire;
use std::time::Duration;

/// Runs blocking work (SQLite, Automerge) off the async workers; a panicked task is an
/// internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("请求过大 / the request body is too large".into())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

/// How long a client may take to send a request body once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads a body the handler takes only after it has authenticated the request, so an
/// unauthenticated client cannot make the server buffer megabytes: at most `limit` bytes,
/// within [`BODY_READ_TIMEOUT`].
/// Most bytes of a request body other than a sync or a blob chunk (an event, a citizen's report,
/// a checklist template, a form): these are small by nature.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

/// Most bytes of a body sent before any authentication (enrollment, a citizen registering, an
/// Open311 POST): a code, a name, a phone number, a short description.
pub const MAX_ANONYMOUS_BODY_BYTES: usize = 64 << 10;

/// Authenticates the device from `headers` (off the runtime), then reads the body (at most
/// `limit`, within [`BODY_READ_TIMEOUT`]): a client that is not enrolled costs no body.
pub(crate) async fn authenticated_body(
    state: &AppState,
    headers: HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(store::DeviceAuth, Bytes), ApiError> {
    let device = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.authenticate(&headers))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let body = read_body_after_auth(body, limit).await?;
    Ok((device, body))
}

pub(crate) async fn read_body_after_auth(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::refused(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "请求体发送过慢 / the request body arrived too slowly",
        )),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(ApiError::TooLarge(
                    "请求过大 / the request body is too large".into(),
                ))
            } else {
                Err(ApiError::BadRequest(format!(
                    "请求体读取失败 / the request body could not be read: {e}"
                )))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

pub(crate) fn cbor(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response()
}
