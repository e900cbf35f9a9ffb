//! The one error the apps see. Its variants are what a screen does about it: show the message
//! beside the field (`Validation`), say the thing is gone (`NotFound`), hide the action
//! (`NotAllowed`), show "offline, will retry" (`Network`), ask to free space (`StorageFull`),
//! show the server's refusal (`Rejected`), send the user back to sign-in (`SignInAgain`), or
//! report a broken local database (`Storage`). Messages are zh-CN first, English second, and
//! carry no personal data (the core's messages never repeat names, ID numbers or phones).

use gridlink_core::Error;

/// What went wrong, as the apps act on it. The text is in `detail` (a field named `message`
/// would clash with the Kotlin and Swift exceptions' own).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ApiError {
    /// What the user entered does not fit (a field, an answer, a photo, a mediation step).
    #[error("{detail}")]
    Validation {
        /// For the user.
        detail: String,
    },
    /// No such case, address, visit, template or file on this phone.
    #[error("{detail}")]
    NotFound {
        /// For the user.
        detail: String,
    },
    /// The user's role, or the case's state, does not allow this action.
    #[error("{detail}")]
    NotAllowed {
        /// For the user.
        detail: String,
    },
    /// The server cannot be reached; the work is kept and sent later.
    #[error("{detail}")]
    Network {
        /// For the user.
        detail: String,
    },
    /// The phone or the photo budget is full.
    #[error("{detail}")]
    StorageFull {
        /// For the user.
        detail: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The server refused the request (or this phone's copy conflicts with it).
    #[error("{detail}")]
    Rejected {
        /// The server's machine code (`forbidden`, `bad_request`, …).
        code: String,
        /// For the user.
        detail: String,
    },
    /// The device is not enrolled, or its credentials were revoked: sign in again.
    #[error("{detail}")]
    SignInAgain {
        /// For the user.
        detail: String,
    },
    /// The local database cannot be read or written (corrupt file, newer app version).
    #[error("{detail}")]
    Storage {
        /// For the user.
        detail: String,
    },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Invalid(_)
            | Error::Photo(_)
            | Error::Base(gridlink_core::address::BaseError::Id(_))
            | Error::Base(gridlink_core::address::BaseError::Field { .. })
            | Error::Checklist(_)
            | Error::Mediation(_) => ApiError::Validation { detail: message },
            Error::Base(gridlink_core::address::BaseError::Unknown(_)) | Error::NotFound(_) => {
                ApiError::NotFound { detail: message }
            }
            Error::Base(gridlink_core::address::BaseError::RoleNotAllowed(_))
            | Error::NotAllowed { .. }
            | Error::PhotoInUse { .. } => ApiError::NotAllowed { detail: message },
            Error::Wire(gridlink_core::sync::wire::WireError::UnsupportedProtocol { .. }) => {
                ApiError::Rejected {
                    code: "unsupported_protocol".into(),
                    detail: message,
                }
            }
            Error::Network(_) | Error::Wire(_) => ApiError::Network { detail: message },
            Error::Server { status: 401, .. } => ApiError::SignInAgain { detail: message },
            // The server's own trouble after every retry (a full disk, its database away):
            // nothing is lost, the work is sent again later; say what the server said.
            Error::Server {
                status, message, ..
            } if gridlink_core::sync::is_transient_status(status) => ApiError::Network { detail: message },
            Error::Server { code, .. } => ApiError::Rejected {
                code,
                detail: message,
            },
            Error::StorageFull { needed, available } => ApiError::StorageFull {
                detail: message,
                needed,
                available,
            },
            // Configuration the app passed (an id that is not a UUID, a bad server URL).
            Error::Config(_) => ApiError::Validation { detail: message },
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull =>
            {
                ApiError::StorageFull {
                    detail: "手机存储空间已满，请清理后重试 / the phone's storage is full: free some space and retry".into(),
                    needed: 0,
                    available: 0,
                }
            }
            Error::Session(e) => {
                use gridlink_core::session::SessionError;
                match e {
                    SessionError::NotSignedIn | SessionError::SignInAgain(_) => {
                        ApiError::SignInAgain { detail: message }
                    }
                    SessionError::AlreadySignedIn
                    | SessionError::UnsentWork { .. }
                    | SessionError::Busy
                    | SessionError::MayNotReport(_) => ApiError::NotAllowed { detail: message },
                    SessionError::NoGrid | SessionError::PhotoOutsideDirectory => {
                        ApiError::Validation { detail: message }
                    }
                    SessionError::Files(_) => ApiError::Storage { detail: message },
                }
            }
            Error::Corrupt { .. }
            | Error::UnsupportedSchema { .. }
            | Error::Malformed { .. }
            | Error::Sqlite(_)
            | Error::DatabaseTooNew { .. } => ApiError::Storage { detail: message },
        }
    }
}

impl From<gridlink_core::sync::TransportError> for ApiError {
    fn from(e: gridlink_core::sync::TransportError) -> Self {
        use gridlink_core::sync::TransportError;
        match e {
            TransportError::Unreachable(m) => ApiError::Network {
                detail: format!(
                    "无法连接服务器，稍后会自动重试 / the server cannot be reached (will retry later): {m}"
                ),
            },
            TransportError::Status { status: 401, body } => ApiError::SignInAgain {
                detail: body.message,
            },
            TransportError::Status { status, body }
                if gridlink_core::sync::is_transient_status(status) =>
            {
                ApiError::Network {
                    detail: body.message,
                }
            }
            TransportError::Status { body, .. } => ApiError::Rejected {
                code: body.code,
                detail: body.message,
            },
        }
    }
}

/// The result of every fallible call.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<gridlink_core::store::BadPageCursor> for ApiError {
    fn from(e: gridlink_core::store::BadPageCursor) -> Self {
        ApiError::Validation {
            detail: e.to_string(),
        }
    }
}
