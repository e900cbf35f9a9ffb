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
    /// The server cannot store anything now: its disk is full (507) or its database is
    /// unreachable (503). Nothing was written; the client keeps its work and retries after
    /// `Retry-After`.
    #[error("{}", unavailable_message(*.full))]
    Unavailable {
        /// The disk is full (rather than the database unreachable).
        full: bool,
        /// For the log.
        detail: String,
    },
    /// A fault on the server's side.
    #[error("internal: {0}")]
    Internal(String),
}

/// Seconds a client waits before retrying when the disk is full (an operator must act) or the
/// database is unreachable (often seconds).
pub const RETRY_FULL_S: u64 = 300;
/// See [`RETRY_FULL_S`].
pub const RETRY_UNAVAILABLE_S: u64 = 30;

/// Sets `Retry-After` on an answer of the server's own unavailability: 507 (full disk) and 503
/// (database unreachable, busy), whichever surface (API, pages, Open311) gives it.
pub(crate) fn retry_when_unavailable(response: &mut Response) {
    let seconds = match response.status() {
        StatusCode::INSUFFICIENT_STORAGE => RETRY_FULL_S,
        StatusCode::SERVICE_UNAVAILABLE => RETRY_UNAVAILABLE_S,
        _ => return,
    };
    response
        .headers_mut()
        .entry(axum::http::header::RETRY_AFTER)
        .or_insert(axum::http::HeaderValue::from(seconds));
}

fn unavailable_message(full: bool) -> &'static str {
    if full {
        "服务器存储空间已满，暂时无法保存；你的工作保留在设备上，稍后自动重发 / the server's storage is full: nothing was saved, your work stays on the device and is sent again later"
    } else {
        "服务器数据库暂时不可用；你的工作保留在设备上，稍后自动重发 / the server's database is unavailable: your work stays on the device and is sent again later"
    }
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
            ApiError::Unavailable { full: true, .. } => {
                (StatusCode::INSUFFICIENT_STORAGE, "storage_full")
            }
            ApiError::Unavailable { full: false, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The machine code sent to clients.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// The HTTP status answered.
    pub fn status(&self) -> StatusCode {
        self.parts().0
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
        use crate::store::StoreError;
        match e {
            StoreError::Full(detail) => ApiError::Unavailable { full: true, detail },
            StoreError::Unavailable(detail) => ApiError::Unavailable {
                full: false,
                detail,
            },
            // Another writer got there first: nothing was written, and a retry merges anew.
            stale @ StoreError::Stale { .. } => ApiError::Unavailable {
                full: false,
                detail: stale.to_string(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                ApiError::Unavailable {
                    full: true,
                    detail: e.to_string(),
                }
            }
            _ => ApiError::Internal(e.to_string()),
        }
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
            ApiError::Unavailable { full, detail } => {
                tracing::error!(%detail, full, "storage unavailable");
                self.to_string()
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
        retry_when_unavailable(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// A database whose file may grow no further: its next insert fails as a full disk does.
    fn full_database() -> rusqlite::Error {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 2;")
            .unwrap();
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap_err()
    }

    #[test]
    fn a_full_disk_or_an_unreachable_database_says_so_with_retry_after() {
        let full = ApiError::from(StoreError::from(full_database()));
        let response = full.into_response();
        assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "300");

        let dir = std::env::temp_dir().join(format!("gridlink-absent-{}", std::process::id()));
        let unreachable = rusqlite::Connection::open_with_flags(
            dir.join("no-such-dir").join("db.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
        )
        .unwrap_err();
        let response = ApiError::from(StoreError::from(unreachable)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "30");

        let disk = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            ApiError::from(disk).into_response().status(),
            StatusCode::INSUFFICIENT_STORAGE
        );
        // Other faults stay 500, without Retry-After.
        let other = ApiError::from(StoreError::Database("x".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            other
                .headers()
                .get(axum::http::header::RETRY_AFTER)
                .is_none()
        );
    }
}
