//! The one error every HTTP handler returns: a status and a JSON `{code, message}`. Server
//! faults are logged in full and shown to clients only as "internal error".

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridlink_core::sync::wire::{ErrorBody, WireError};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body could not be read (malformed, not zlib, not CBOR, wrong shape).
    #[error("{0}")]
    BadRequest(String),
    /// The peer speaks another protocol version.
    #[error("{0}")]
    UnsupportedProtocol(String),
    /// The body exceeds the limit.
    #[error("{0}")]
    TooLarge(String),
    /// No valid device token.
    #[error("{0}")]
    Unauthorized(String),
    /// An enrollment code that is unknown, used or expired.
    #[error("{0}")]
    Forbidden(String),
    /// A fault on the server's side.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedProtocol(_) => (StatusCode::BAD_REQUEST, "unsupported_protocol"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The machine code sent to clients.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnsupportedProtocol { .. } => ApiError::UnsupportedProtocol(e.to_string()),
            WireError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            WireError::Compression(_) | WireError::Malformed(_) => {
                ApiError::BadRequest(e.to_string())
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "服务器内部错误，请稍后重试 / internal server error, please retry later".to_owned()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(ErrorBody {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response()
    }
}
