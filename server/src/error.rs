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
    /// A request refused for a reason the client acts on, with its own status and code
    /// (`blob_not_referenced`, `offset_mismatch`, `hash_mismatch`, `not_an_image`,
    /// `outside_district`, `conflict`, …).
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: StatusCode,
        /// Machine code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Too many requests from this device or address; retry after this many seconds.
    #[error(
        "请求过于频繁，请 {retry_after_s} 秒后再试 / too many requests: retry in {retry_after_s} s"
    )]
    RateLimited {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// A fault on the server's side.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// A refusal with its status, code and message.
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedProtocol(_) => (StatusCode::BAD_REQUEST, "unsupported_protocol"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Refused { status, code, .. } => (*status, code),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
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
        let mut response = (
            status,
            Json(ErrorBody {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response();
        if let ApiError::RateLimited { retry_after_s } = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_s),
            );
        }
        response
    }
}
