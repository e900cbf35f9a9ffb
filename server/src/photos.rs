//! Photo endpoints: resumable upload into the blob store and photos served back.
//!
//! - `GET /v1/blobs/{hash}?kind=photo|thumb&size=N[&of=PHOTO]`: how much of the blob the
//!   server holds ([`BlobStatus`]; with a receipt once complete).
//! - `PUT /v1/blobs/{hash}?kind=…&size=N&offset=O[&of=PHOTO]`, body = the next bytes: appends
//!   them (the body is read as it arrives; if the connection is cut, what arrived is kept) and
//!   answers with the new status; the last chunk is verified (SHA-256, JPEG header within
//!   limits) and answered with a receipt.
//! - `GET /v1/photos/{hash}` and `GET /v1/photos/{hash}/thumb`: the JPEG, to whoever may see a
//!   case that references it.
//!
//! A photo belongs to the case that first referenced its hash (its owner): a device may upload
//! it only if it may write that case (or its user reported it) — so the case is synced first —
//! and may download it only if it may read that case. A later case naming the same hash gains
//! nothing. A thumbnail names its photo with `of`. Sizes are capped, and the first bytes must
//! be a JPEG's.

use crate::blobs::{BlobError, UploadGuard, is_hash};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::{BlobRow, DeviceAuth, PhotoCase};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gridlink_core::photo::PhotoLimits;
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::wire::{self, BlobStatus, Receipt};
use http_body_util::BodyExt;
use serde::Deserialize;

/// The query of blob requests.
#[derive(Debug, Deserialize)]
pub struct BlobQuery {
    kind: String,
    size: u64,
    of: Option<String>,
    offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Photo,
    Thumb,
}

struct Checked {
    device: DeviceAuth,
    kind: Kind,
    /// The photo whose cases authorize the blob (the blob itself, or the thumbnail's photo).
    photo: String,
}

impl Checked {
    /// The row recording this blob as complete now.
    fn row(&self, hash: &str, size: u64) -> BlobRow {
        BlobRow {
            hash: hash.to_owned(),
            size,
            kind: match self.kind {
                Kind::Photo => "photo".into(),
                Kind::Thumb => "thumb".into(),
            },
            thumb_of: (self.kind == Kind::Thumb).then(|| self.photo.clone()),
            device_id: self.device.device_id.clone(),
            received_at_ms: now_ms(),
        }
    }
}

/// Whether a case lets this user upload (write) or see (read) its photos.
fn case_allows(pusher: &Pusher, case: &PhotoCase, write: bool) -> bool {
    case.reporter.as_deref() == Some(pusher.user_id.as_str())
        || if write {
            pusher.may_write(&case.scopes)
        } else {
            pusher.may_read(&case.scopes)
        }
}

fn check_upload(
    state: &AppState,
    headers: &HeaderMap,
    hash: &str,
    q: &BlobQuery,
) -> Result<Checked, ApiError> {
    let device = state.authenticate(headers)?;
    if !is_hash(hash) {
        return Err(ApiError::BadRequest(
            "文件名必须是 SHA-256 十六进制 / a blob is named by its SHA-256 in lower-case hex"
                .into(),
        ));
    }
    let config = state.config();
    let (kind, photo, cap) = match (q.kind.as_str(), &q.of) {
        ("photo", None) => (Kind::Photo, hash.to_owned(), config.max_photo_bytes),
        ("thumb", Some(of)) if is_hash(of) => (Kind::Thumb, of.clone(), config.max_thumbnail_bytes),
        _ => {
            return Err(ApiError::BadRequest(
                "kind 须为 photo，或 thumb 并以 of 指明原图 / kind must be photo, or thumb with of=<photo hash>".into(),
            ));
        }
    };
    // Who may, before anything about the blob is said.
    let pusher = state.pusher(&device)?;
    let owner = state.store().photo_owner(&photo)?;
    if !owner.is_some_and(|c| case_allows(&pusher, &c, true)) {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "blob_not_referenced",
            "没有你可编辑的案件引用这张照片（请先同步案件）/ no case you may write references this photo (sync the case first)",
        ));
    }
    if q.size == 0 || q.size > cap {
        return Err(ApiError::TooLarge(format!(
            "照片大小须在 1–{cap} 字节 / a {} must be 1–{cap} bytes",
            q.kind
        )));
    }
    Ok(Checked {
        device,
        kind,
        photo,
    })
}

fn status(hash: &str, size: u64, received: u64, receipt: Option<Receipt>) -> Response {
    (
        [(header::CONTENT_TYPE, wire::CONTENT_TYPE)],
        wire::encode(&BlobStatus {
            hash: hash.to_owned(),
            size,
            received,
            receipt,
        }),
    )
        .into_response()
}

/// The receipt of a complete blob. A file in place without its row (a crash between the
/// rename and the row) is recorded here, under the blob's upload lock and with the size the
/// file has; while another upload holds the lock, the blob is not reported complete yet.
fn receipt_for(
    state: &AppState,
    checked: &Checked,
    hash: &str,
    size: u64,
) -> Result<Option<Receipt>, ApiError> {
    let row = match state.store().blob(hash)? {
        Some(row) => row,
        None if state.blobs().has(hash).map_err(blob_error)? => {
            let Ok(_guard) = state.blobs().begin(hash) else {
                return Ok(None);
            };
            match state.store().blob(hash)? {
                Some(row) => row,
                None => {
                    let stored = state.blobs().stored_size(hash).map_err(blob_error)?;
                    let row = checked.row(hash, stored);
                    state.store().put_blob(&row)?;
                    row
                }
            }
        }
        None => return Ok(None),
    };
    if row.size != size {
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            "size_mismatch",
            format!(
                "该文件大小为 {} 字节 / this blob is {} bytes",
                row.size, row.size
            ),
        ));
    }
    Ok(Some(Receipt {
        hash: row.hash,
        size: row.size,
        received_at_ms: row.received_at_ms,
    }))
}

/// `GET /v1/blobs/{hash}`.
pub async fn blob_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    Query(q): Query<BlobQuery>,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || {
        let checked = check_upload(&state, &headers, &hash, &q)?;
        state
            .blobs()
            .wait_idle(&hash, std::time::Duration::from_secs(2));
        let receipt = receipt_for(&state, &checked, &hash, q.size)?;
        let received = match &receipt {
            Some(r) => r.size,
            None => state
                .blobs()
                .received(&hash)
                .map_err(blob_error)?
                .min(q.size),
        };
        Ok(status(&hash, q.size, received, receipt))
    })
    .await
}

/// `PUT /v1/blobs/{hash}`.
pub async fn blob_put(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    Query(q): Query<BlobQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let offset = q
        .offset
        .ok_or_else(|| ApiError::BadRequest("缺少 offset / offset is missing".into()))?;
    let size = q.size;
    let (checked, guard, receipt) = {
        let (state, hash) = (state.clone(), hash.clone());
        crate::http::blocking(move || {
            let checked = check_upload(&state, &headers, &hash, &q)?;
            let receipt = receipt_for(&state, &checked, &hash, size)?;
            let guard = state.blobs().begin(&hash).map_err(blob_error)?;
            Ok((checked, guard, receipt))
        })
        .await?
    };
    if let Some(receipt) = receipt {
        // Already complete (another device, or a repeated last chunk): nothing to write.
        return Ok(status(&hash, size, size, Some(receipt)));
    }
    let max_chunk = (size - offset.min(size)).min(wire::MAX_CHUNK_BYTES as u64);
    let idle = std::time::Duration::from_millis(state.config().chunk_idle_ms);
    // The read and the write run in a task of their own: if the client's connection is cut,
    // the server drops this handler, but what arrived is still written (it is a prefix of the
    // right bytes, and the whole blob is verified by its hash at the end), so the next attempt
    // resumes after it.
    let task = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut body = body;
        let mut cut = false;
        let mut too_large = false;
        // A connection that goes silent (a phone moving from Wi-Fi to 4G) ends the read
        // like a cut one, so it never holds the blob's lock for long.
        while let Ok(Some(frame)) = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| cut = true)
        {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if (received.len() + data.len()) as u64 > max_chunk {
                            too_large = true;
                            break;
                        }
                        received.extend_from_slice(&data);
                    }
                }
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
        if too_large {
            return Err(ApiError::TooLarge(format!(
                "这一块最多 {max_chunk} 字节 / this chunk may carry at most {max_chunk} bytes"
            )));
        }
        let outcome = crate::http::blocking(move || {
            write_chunk(&state, &checked, &guard, &hash, size, offset, &received)
                .map(|(held, receipt)| status(&hash, size, held, receipt))
        })
        .await;
        if cut {
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, "what arrived before the cut was not kept");
            }
            return Err(ApiError::BadRequest(
                "连接中断 / the connection was cut".into(),
            ));
        }
        outcome
    });
    task.await.map_err(|e| ApiError::Internal(e.to_string()))?
}

fn write_chunk(
    state: &AppState,
    checked: &Checked,
    guard: &UploadGuard,
    hash: &str,
    size: u64,
    offset: u64,
    bytes: &[u8],
) -> Result<(u64, Option<Receipt>), ApiError> {
    let blobs = state.blobs();
    // Checked before anything is written or discarded: a stale request never touches
    // another upload's progress.
    let have = blobs.received(hash).map_err(blob_error)?;
    if have > size {
        return Err(ApiError::refused(
            StatusCode::CONFLICT,
            "size_mismatch",
            format!(
                "服务器已收到 {have} 字节，多于声明的大小 / the server holds {have} bytes, more than the declared size"
            ),
        ));
    }
    if offset != have {
        return Err(blob_error(BlobError::OffsetMismatch { have }));
    }
    if offset == 0 && !bytes.is_empty() && !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(ApiError::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_an_image",
            "只接受 JPEG 照片 / only JPEG photos are accepted",
        ));
    }
    let held = if bytes.is_empty() {
        have
    } else {
        blobs
            .append(guard, hash, offset, bytes)
            .map_err(blob_error)?
    };
    state.metrics().blob_bytes_in.inc_by(bytes.len() as u64);
    if held < size {
        return Ok((held, None));
    }
    let limits = match checked.kind {
        Kind::Photo => PhotoLimits::uploaded_photo(),
        Kind::Thumb => PhotoLimits::uploaded_thumbnail(),
    };
    blobs
        .complete(guard, hash, size, &limits)
        .map_err(blob_error)?;
    let row = checked.row(hash, size);
    state.store().put_blob(&row)?;
    state.metrics().blobs_completed.inc();
    Ok((
        size,
        Some(Receipt {
            hash: row.hash,
            size,
            received_at_ms: row.received_at_ms,
        }),
    ))
}

fn blob_error(e: BlobError) -> ApiError {
    let message = e.to_string();
    match e {
        BlobError::OffsetMismatch { .. } => {
            ApiError::refused(StatusCode::CONFLICT, "offset_mismatch", message)
        }
        BlobError::Busy => ApiError::refused(StatusCode::CONFLICT, "upload_busy", message),
        BlobError::HashMismatch => {
            ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch", message)
        }
        BlobError::NotAnImage(_) => {
            ApiError::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image", message)
        }
        BlobError::Io(e) => ApiError::from(e),
        BlobError::Unavailable(detail) => ApiError::Unavailable {
            full: false,
            detail,
        },
        BlobError::Config(detail) => ApiError::Internal(detail),
    }
}

/// `GET /v1/photos/{hash}`.
pub async fn photo(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || serve_photo(&state, &headers, &hash, false)).await
}

/// `GET /v1/photos/{hash}/thumb`.
pub async fn thumbnail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    crate::http::blocking(move || serve_photo(&state, &headers, &hash, true)).await
}

fn serve_photo(
    state: &AppState,
    headers: &HeaderMap,
    hash: &str,
    thumb: bool,
) -> Result<Response, ApiError> {
    let device = state.authenticate(headers)?;
    let pusher = state.pusher(&device)?;
    send_photo(state, &pusher, hash, thumb)
}

/// A photo (or its thumbnail) for someone whose keys let them see its case.
pub(crate) fn send_photo(
    state: &AppState,
    pusher: &Pusher,
    hash: &str,
    thumb: bool,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::refused(
            StatusCode::NOT_FOUND,
            "not_found",
            "没有这张照片，或无权查看 / no such photo, or not yours to see",
        )
    };
    if !is_hash(hash) {
        return Err(not_found());
    }
    let owner = state.store().photo_owner(hash)?;
    // Operators of the district see everything; everyone else what their grants cover. An
    // unknown hash and a forbidden one look the same.
    if !owner.is_some_and(|c| case_allows(pusher, &c, false)) {
        return Err(not_found());
    }
    let blob = if thumb {
        state.store().thumbnail_of(hash)?.map(|row| row.hash)
    } else {
        Some(hash.to_owned())
    };
    let bytes = match blob {
        Some(b) => state.blobs().read(&b).map_err(blob_error)?,
        None => None,
    }
    .ok_or_else(|| {
        ApiError::refused(
            StatusCode::NOT_FOUND,
            "not_uploaded",
            "照片尚未上传完成 / the photo has not been uploaded yet",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_owned(),
            ),
            (header::ETAG, format!("\"{hash}\"")),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
