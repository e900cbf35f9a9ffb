//! The one detailed error of gridlink-core. Every variant says what went wrong in words a
//! person can act on (zh-CN first, English second); the bindings map these to the few
//! variants the apps act on.

use crate::case::{EventError, FlagReason};

/// Everything that can go wrong in gridlink-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What a person entered is not acceptable.
    #[error("输入无效 / invalid input: {0}")]
    Invalid(#[from] EventError),
    /// The action does not fit the case's current state or the user's role.
    #[error("{}", .reason.message())]
    NotAllowed {
        /// Why, as the fold would flag it.
        reason: FlagReason,
    },
    /// No document with this id.
    #[error("找不到 {0} / not found: {0}")]
    NotFound(String),
    /// Document bytes that Automerge cannot load (corrupt, truncated, hostile).
    #[error("文档 {doc_id} 已损坏 / document {doc_id} is corrupt: {detail}")]
    Corrupt {
        /// The document.
        doc_id: String,
        /// What Automerge said.
        detail: String,
    },
    /// A document written by a newer app version.
    #[error(
        "文档 {doc_id} 的格式版本 {found} 高于本应用支持的 {supported}，请升级应用 / document {doc_id} has schema {found}; this app supports up to {supported}: please update the app"
    )]
    UnsupportedSchema {
        /// The document.
        doc_id: String,
        /// The version found at the root.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// The document loads but is not shaped like the record it claims to be.
    #[error(
        "文档 {doc_id} 的内容不符合格式 / document {doc_id} does not match its schema: {detail}"
    )]
    Malformed {
        /// The document.
        doc_id: String,
        /// What did not fit.
        detail: String,
    },
    /// The local database failed.
    #[cfg(feature = "store")]
    #[error("本地数据库错误 / local database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file was written by a newer app version.
    #[cfg(feature = "store")]
    #[error(
        "数据库版本 {found} 高于本应用支持的 {supported}，请升级应用 / database schema {found} is newer than this app's {supported}: please update the app"
    )]
    DatabaseTooNew {
        /// `user_version` found in the file.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// Invalid configuration given to the store.
    #[error("配置无效 / invalid configuration: {0}")]
    Config(String),
    /// The server could not be reached, after retrying.
    #[error(
        "无法连接服务器，稍后会自动重试 / the server cannot be reached (will retry later): {0}"
    )]
    Network(String),
    /// The server refused the request itself (not one document): bad credentials, a revoked
    /// device, an unsupported protocol.
    #[error(
        "服务器拒绝了请求（{status} {code}）/ the server refused the request ({status} {code}): {message}"
    )]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's machine code (`unauthorized`, `unsupported_protocol`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// A photo that cannot be processed.
    #[cfg(feature = "photo")]
    #[error(transparent)]
    Photo(#[from] crate::photo::PhotoError),
    /// A new photo does not fit: the photo budget or the device's free space is below the floor.
    #[error(
        "存储空间不足：需要 {needed} 字节，可用 {available} 字节。请先同步以释放空间 / not enough storage: {needed} bytes needed, {available} available; sync to free space"
    )]
    StorageFull {
        /// Bytes the capture needs.
        needed: u64,
        /// Bytes available under the budget or on the device.
        available: u64,
    },
    /// A photo that a saved case, record or citizen report refers to cannot be discarded.
    #[error(
        "照片 {hash} 属于已保存的 {owner}，不能丢弃 / photo {hash} belongs to the saved {owner} and cannot be discarded"
    )]
    PhotoInUse {
        /// The photo.
        hash: String,
        /// Its case, record or report.
        owner: String,
    },
    /// Base data (一标多实) that cannot be saved as entered.
    #[error(transparent)]
    Base(#[from] crate::address::BaseError),
    /// A checklist answer, check-in or check-out that does not fit the template.
    #[error(transparent)]
    Checklist(#[from] crate::checklist::ChecklistError),
    /// A mediation step that does not fit the file.
    #[error(transparent)]
    Mediation(#[from] crate::mediation::MediationError),
    /// A sync message that could not be read.
    #[error(transparent)]
    Wire(#[from] crate::sync::wire::WireError),
    /// The phone's session cannot do it (not signed in, unsent work, a damaged sign-in).
    #[cfg(feature = "client")]
    #[error(transparent)]
    Session(crate::session::SessionError),
}

/// Shorthand for results in gridlink-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
