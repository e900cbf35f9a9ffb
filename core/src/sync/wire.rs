//! The sync messages and their encoding: CBOR (serde), then zlib. A request and its response
//! carry a protocol version; a peer of another version gets a typed error, not a guess.
//!
//! Decoding is bounded twice: the compressed body by the HTTP layer, and the inflated bytes
//! here (`limit`), so a small hostile body cannot inflate into gigabytes.

use crate::case::Role;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Media type of every sync body (zlib-compressed CBOR).
pub const CONTENT_TYPE: &str = "application/vnd.gridlink.sync+cbor+zlib";

/// The most documents one request pushes (the phone sends the rest in the next round).
pub const MAX_PUSH_DOCS: usize = 1_000;

/// Default ceiling for an inflated message.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Ceiling for an inflated sync request: one push ([`SyncOptions`](super::SyncOptions) sends
/// 2 MiB, or one document of up to the push validator's 8 MiB cap) and a cursor, with room.
pub const MAX_SYNC_REQUEST_BYTES: usize = 16 << 20;

/// The most keys a cursor may hold: more scopes than any device reads (a district operator
/// reads one key, a chief a grid or a few). A cursor over it is refused while it is decoded,
/// so a hostile one costs no more than this.
pub const MAX_CURSOR_KEYS: usize = 4_096;

/// Where a device stands in each scope it reads: scope key → position in that scope's log.
/// Opaque to the phone, which stores it and sends it back. At most [`MAX_CURSOR_KEYS`] keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cursor(pub BTreeMap<String, u64>);

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Cursor;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(
                    f,
                    "a map of at most {MAX_CURSOR_KEYS} scope keys to positions"
                )
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Cursor, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, position)) = map.next_entry::<String, u64>()? {
                    if out.len() == MAX_CURSOR_KEYS {
                        return Err(serde::de::Error::custom(format!(
                            "游标超过 {MAX_CURSOR_KEYS} 个范围 / a cursor holds at most {MAX_CURSOR_KEYS} scope keys"
                        )));
                    }
                    out.insert(key, position);
                }
                Ok(Cursor(out))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// The changes of one document a phone pushes: what the server has not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDoc {
    /// The document.
    pub doc_id: String,
    /// Automerge bytes (a whole save, or changes after the acknowledged heads).
    #[serde(with = "serde_bytes")]
    pub changes: Vec<u8>,
}

/// `POST /v1/sync` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Chosen by the phone per logical request and echoed by the server, so that a response
    /// delivered late or twice is recognised and set aside.
    pub request_id: String,
    /// Documents with unacknowledged changes.
    pub push: Vec<PushDoc>,
    /// Pull from here.
    pub cursor: Cursor,
    /// The most pulled bytes the phone wants in this response (the server caps it too).
    pub max_pull_bytes: u64,
    /// The server's history id from the last response the phone applied (none before the
    /// first, and from servers that give none). The server ignores the cursor of another
    /// history: it was restored from a backup since, and pulls start again from nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// The server holds a document up to these heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The document.
    pub doc_id: String,
    /// Its heads on the server after the merge (32-byte change hashes).
    pub heads: Vec<Hash>,
}

/// A change hash on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hash(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl From<automerge::ChangeHash> for Hash {
    fn from(h: automerge::ChangeHash) -> Self {
        Hash(h.0)
    }
}

impl From<Hash> for automerge::ChangeHash {
    fn from(h: Hash) -> Self {
        automerge::ChangeHash(h.0)
    }
}

/// Why the server refused a pushed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// A change is authored by an actor id that is not this device's.
    ForgedActor,
    /// An event claims another user, device or role than the pusher's.
    Impersonation,
    /// The pusher's role may not author an event of this kind.
    RoleNotAllowed,
    /// The document is outside the pusher's grids, villages, towns or departments.
    OutOfScope,
    /// The push changes or removes events already recorded, or the case's reported facts.
    RewritesHistory,
    /// An event's content is invalid, or the document is not a well-formed case.
    Malformed,
    /// The bytes are not valid Automerge.
    Corrupt,
    /// The document was written by a newer app.
    UnsupportedSchema,
    /// The case names a grid the district does not have.
    UnknownGrid,
    /// The document is larger than the server accepts in one push.
    TooLarge,
    /// The server could not read its own copy: nothing is wrong with the push; try again later.
    ServerError,
}

impl RejectCode {
    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            RejectCode::ForgedActor => "forged_actor",
            RejectCode::Impersonation => "impersonation",
            RejectCode::RoleNotAllowed => "role_not_allowed",
            RejectCode::OutOfScope => "out_of_scope",
            RejectCode::RewritesHistory => "rewrites_history",
            RejectCode::Malformed => "malformed",
            RejectCode::Corrupt => "corrupt",
            RejectCode::UnsupportedSchema => "unsupported_schema",
            RejectCode::UnknownGrid => "unknown_grid",
            RejectCode::TooLarge => "too_large",
            RejectCode::ServerError => "server_error",
        }
    }

    /// Every reason.
    pub const ALL: [RejectCode; 11] = [
        RejectCode::ForgedActor,
        RejectCode::Impersonation,
        RejectCode::RoleNotAllowed,
        RejectCode::OutOfScope,
        RejectCode::RewritesHistory,
        RejectCode::Malformed,
        RejectCode::Corrupt,
        RejectCode::UnsupportedSchema,
        RejectCode::UnknownGrid,
        RejectCode::TooLarge,
        RejectCode::ServerError,
    ];

    /// Parses [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<RejectCode> {
        RejectCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A pushed document the server refused. Nothing of it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The document.
    pub doc_id: String,
    /// Why.
    pub code: RejectCode,
    /// For people (zh-CN, then English).
    pub message: String,
    /// The events refused, when the refusal is about particular events; empty when the whole
    /// push was refused (forged actor, out of scope, corrupt bytes…).
    pub event_ids: Vec<String>,
    /// The server's whole copy, when the device may read it: the phone resets to it.
    #[serde(with = "serde_bytes")]
    pub server_doc: Option<Vec<u8>>,
}

/// Changes of one document in the device's scope, after its cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledDoc {
    /// The document.
    pub doc_id: String,
    /// Automerge bytes to apply (one or more chunks, in causal order).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// The server's heads for the document when the page was read.
    pub heads: Vec<Hash>,
}

/// `POST /v1/sync` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The request's id, echoed.
    pub request_id: String,
    /// Pushed documents the server now holds.
    pub acks: Vec<Ack>,
    /// Pushed documents it refused.
    pub rejections: Vec<Rejection>,
    /// One page of changes in scope.
    pub pulled: Vec<PulledDoc>,
    /// Documents that left the device's scope (a grant was withdrawn): delete them locally.
    pub removed: Vec<String>,
    /// Where the next pull starts.
    pub cursor: Cursor,
    /// More changes wait after this page.
    pub more: bool,
    /// The server's history id, made anew by every restore from a backup. A phone that
    /// last saw another one knows the server may have lost changes it acknowledged: it pushes
    /// again everything of its own the server does not hold (ADR 0013).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// `POST /v1/enroll` body: a one-time code from an operator, and the phone's own device id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The enrollment code, as typed.
    pub code: String,
    /// The phone's device id (a UUID it generated).
    pub device_id: String,
    /// A name people recognise ("张三的华为 P40").
    pub device_name: String,
}

/// `POST /v1/enroll` response: who the device now acts for, and its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The device id, as registered.
    pub device_id: String,
    /// The bearer token (shown once; the server keeps only its hash).
    pub token: String,
    /// The device's actor prefix (see [`super::device_actor`]).
    #[serde(with = "serde_bytes")]
    pub actor_prefix: Vec<u8>,
    /// The user.
    pub user_id: String,
    /// The user's name.
    pub user_name: String,
    /// The user's role.
    pub role: Role,
    /// The scopes the user is granted (`grid:…`, `village:…`, `town:…`, `dept:…`, …).
    pub scopes: Vec<String>,
}

/// Largest chunk of a blob upload the server accepts in one request, bytes.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// What the server holds of a blob (`GET`/`PUT /v1/blobs/{hash}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStatus {
    /// SHA-256 (hex) of the blob.
    pub hash: String,
    /// Its full size, bytes.
    pub size: u64,
    /// Bytes received so far: the offset the next chunk starts at.
    pub received: u64,
    /// Present once the blob is complete and verified.
    pub receipt: Option<Receipt>,
}

/// The server's confirmation that a blob is stored, complete and verified by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// SHA-256 (hex), verified over the stored bytes.
    pub hash: String,
    /// Size, bytes.
    pub size: u64,
    /// When the server completed it, UTC ms.
    pub received_at_ms: i64,
}

/// A citizen's anonymous registration (`POST /v1/citizen/register`); answered with an
/// [`EnrollResponse`] of role citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenRegisterRequest {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The phone's device id (a UUID it generated).
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// How handlers may address the citizen (shown masked: 张**).
    pub name: Option<String>,
    /// A mainland mobile number, optional; the server keeps only a keyed hash and a masked
    /// form (138****1234).
    pub phone: Option<String>,
}

/// Longest citizen report line, characters.
pub const MAX_REPORT_CHARS: usize = 100;
/// Most photos per citizen report.
pub const MAX_REPORT_PHOTOS: usize = 9;

/// A 随手拍 report (`POST /v1/citizen/reports`): a plain submission, idempotent by `id`;
/// the server turns it into a case document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CitizenReport {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Report id chosen by the phone (a UUID): the case id.
    pub id: String,
    /// Category code.
    pub category: String,
    /// One line.
    pub text: String,
    /// Where the problem is.
    pub location: crate::case::Location,
    /// 1–9 photo hashes (the photos follow by upload).
    pub photos: Vec<String>,
    /// When the citizen pressed send (device clock), UTC ms.
    pub reported_at_ms: i64,
}

/// The server's answer to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenReceipt {
    /// The report (= case) id.
    pub id: String,
    /// The grid it was placed in.
    pub grid_id: String,
    /// False when the report had been received before (a repeated submission).
    pub created: bool,
}

/// One of a citizen's reports as the citizen sees it: no one else's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyReport {
    /// Report id.
    pub id: String,
    /// Category code.
    pub category: String,
    /// The line the citizen wrote.
    pub title: String,
    /// Status code.
    pub status: String,
    /// Status in words (zh-CN).
    pub status_label: String,
    /// The grid it was placed in.
    pub grid_id: String,
    /// When reported, UTC ms.
    pub reported_at_ms: i64,
    /// Last change, UTC ms.
    pub updated_at_ms: i64,
    /// The closing note, or why it was not accepted.
    pub closing_note: Option<String>,
}

/// A citizen's reports (`GET /v1/citizen/reports`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyReports {
    /// The reports.
    pub reports: Vec<MyReport>,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine code (`bad_request`, `unauthorized`, `unsupported_protocol`, …).
    pub code: String,
    /// For people (zh-CN, then English).
    pub message: String,
}

/// A body that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not zlib, or truncated.
    #[error("消息未正确压缩 / the message is not valid zlib: {0}")]
    Compression(String),
    /// Inflates beyond the limit.
    #[error("消息过大（超过 {limit} 字节）/ the message inflates beyond {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not the expected CBOR structure.
    #[error("消息格式无效 / the message is malformed: {0}")]
    Malformed(String),
    /// Another protocol version.
    #[error(
        "不支持的协议版本 {found}（本端为 {supported}）/ protocol version {found} is not supported (this side speaks {supported})"
    )]
    UnsupportedProtocol {
        /// What the peer sent.
        found: u32,
        /// What this build speaks.
        supported: u32,
    },
}

/// Encodes a message: CBOR, then zlib.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut cbor = Vec::new();
    // Writing to a Vec cannot fail and every message type serialises.
    if let Err(e) = ciborium::into_writer(message, &mut cbor) {
        unreachable!("CBOR encoding into memory failed: {e}");
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let out = z.write_all(&cbor).and_then(|()| z.finish());
    match out {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("zlib into memory failed: {e}"),
    }
}

/// Decodes a message, inflating at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, WireError> {
    let mut inflated = Vec::new();
    let mut reader = flate2::read::ZlibDecoder::new(body).take((limit as u64).saturating_add(1));
    reader
        .read_to_end(&mut inflated)
        .map_err(|e| WireError::Compression(e.to_string()))?;
    if inflated.len() > limit {
        return Err(WireError::TooLarge { limit });
    }
    ciborium::from_reader(inflated.as_slice()).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Checks a peer's protocol version.
pub fn check_protocol(found: u32) -> Result<(), WireError> {
    if found == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(WireError::UnsupportedProtocol {
            found,
            supported: PROTOCOL_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SyncRequest {
        SyncRequest {
            protocol: PROTOCOL_VERSION,
            request_id: "r1".into(),
            push: vec![PushDoc {
                doc_id: "c1".into(),
                changes: vec![1, 2, 3],
            }],
            cursor: Cursor([("grid:a".to_owned(), 7)].into_iter().collect()),
            max_pull_bytes: 1 << 20,
            history: Some("h1".into()),
        }
    }

    /// A request as clients before history ids write it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct EarlierRequest {
        protocol: u32,
        request_id: String,
        push: Vec<PushDoc>,
        cursor: Cursor,
        max_pull_bytes: u64,
    }

    #[test]
    fn the_history_id_is_optional_both_ways() {
        let earlier = EarlierRequest {
            protocol: PROTOCOL_VERSION,
            request_id: "r1".into(),
            push: Vec::new(),
            cursor: Cursor::default(),
            max_pull_bytes: 1 << 20,
        };
        let read: SyncRequest = decode(&encode(&earlier), 1 << 20).unwrap();
        assert_eq!(read.history, None);
        assert_eq!(read.request_id, "r1");
        // An earlier server reads a request that carries one.
        let read: EarlierRequest = decode(&encode(&request()), 1 << 20).unwrap();
        assert_eq!(read.cursor, request().cursor);
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&request());
        assert_eq!(decode::<SyncRequest>(&bytes, 1 << 20).ok(), Some(request()));
        for code in RejectCode::ALL {
            assert_eq!(RejectCode::from_code(code.code()), Some(code));
        }
        assert_eq!(RejectCode::from_code("nonsense"), None);
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(
            decode::<SyncRequest>(b"not zlib", 1 << 20),
            Err(WireError::Compression(_))
        ));
        let other = encode(&ErrorBody {
            code: "x".into(),
            message: "y".into(),
        });
        assert!(matches!(
            decode::<SyncRequest>(&other, 1 << 20),
            Err(WireError::Malformed(_))
        ));
        // A bomb: a megabyte of zeros inflates past a small limit.
        let bomb = encode(&vec![0u8; 1 << 20]);
        assert!(matches!(
            decode::<Vec<u8>>(&bomb, 1024),
            Err(WireError::TooLarge { .. })
        ));
    }
}
