//! The photo capture queue: processed photos wait here, with their bytes, until the server has
//! confirmed them by hash.
//!
//! A capture is processed (see [`crate::photo`]) and written in one transaction: the queue row
//! and the bytes, so a photo is either fully captured or absent whenever the app is killed.
//! Upload progress (`confirmed` bytes, attempts, the next attempt time) is written after every
//! confirmed chunk, so an upload resumes where the server says it stopped. The original file a
//! photo came from is deleted only once the server has confirmed the processed photo.

// The upload/submission half is called by the sync client (feature `client`).
#![cfg_attr(not(feature = "client"), allow(dead_code))]
use super::{Moment, Store, now_ms};
use crate::error::{Error, Result};
use crate::photo::{self, ProcessedPhoto};
use rusqlite::{OptionalExtension, Row, params};
use std::path::Path;

/// How much the photo queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoBudget {
    /// Most bytes of processed photos and thumbnails kept on the phone.
    pub max_bytes: u64,
    /// A capture is refused when the device has less free space than this.
    pub min_free_bytes: u64,
    /// Most bytes of downloaded photos (other people's cases) kept for offline viewing.
    pub cache_bytes: u64,
    /// How long a photo whose case (report, visit, mediation file) was never saved on this
    /// phone still counts as unsent work: the report screen may still be open. After it the
    /// photo is [orphaned](PhotoStatus::orphaned): listed for the user to discard, never
    /// deleted by itself (the case may still be saved, and then it goes as usual).
    pub orphan_grace_ms: i64,
}

/// Default [`PhotoBudget::orphan_grace_ms`]: an hour, far longer than filling in a report.
pub const ORPHAN_GRACE_MS: i64 = 60 * 60 * 1000;

impl Default for PhotoBudget {
    fn default() -> Self {
        PhotoBudget {
            max_bytes: 512 << 20,
            min_free_bytes: 200 << 20,
            cache_bytes: 128 << 20,
            orphan_grace_ms: ORPHAN_GRACE_MS,
        }
    }
}

/// Where a photo stands in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhotoState {
    /// Processed and stored; not sent yet.
    Processed,
    /// Partly uploaded: `confirmed_bytes` are on the server.
    Uploading,
    /// The server confirmed the hash.
    Uploaded,
    /// The last attempt failed; another follows at `next_attempt_at_ms`.
    Failed,
    /// Refused for good (not an image, too large, failing its hash twice); kept for the user to
    /// see and retry, never blocking the rest of the queue.
    Quarantined,
}

impl PhotoState {
    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            PhotoState::Processed => "processed",
            PhotoState::Uploading => "uploading",
            PhotoState::Uploaded => "uploaded",
            PhotoState::Failed => "failed",
            PhotoState::Quarantined => "quarantined",
        }
    }

    /// The state with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<PhotoState> {
        [
            PhotoState::Processed,
            PhotoState::Uploading,
            PhotoState::Uploaded,
            PhotoState::Failed,
            PhotoState::Quarantined,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }

    /// Simplified Chinese label for the queue screen.
    pub fn label_zh(self) -> &'static str {
        match self {
            PhotoState::Processed => "等待上传",
            PhotoState::Uploading => "上传中",
            PhotoState::Uploaded => "已上传",
            PhotoState::Failed => "上传失败，稍后重试",
            PhotoState::Quarantined => "无法上传",
        }
    }
}

/// One photo as the queue screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoStatus {
    /// SHA-256 of the processed JPEG.
    pub hash: String,
    /// The case (or citizen report) it belongs to.
    pub case_id: String,
    /// State.
    pub state: PhotoState,
    /// Size of the processed JPEG.
    pub size: u64,
    /// Bytes the server has confirmed.
    pub confirmed_bytes: u64,
    /// Whether the thumbnail is on the server.
    pub thumbnail_sent: bool,
    /// Failed attempts since the last success.
    pub attempts: u32,
    /// Why the last attempt failed (zh-CN / English).
    pub last_error: Option<String>,
    /// When the next automatic attempt is due, UTC ms.
    pub next_attempt_at_ms: i64,
    /// When it was taken (device clock), UTC ms.
    pub taken_at_ms: i64,
    /// Pixel size.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
    /// Whether the full-size bytes are still on the phone (they may be evicted once uploaded).
    pub local: bool,
    /// When it entered the queue (phone clock), UTC ms.
    pub captured_at_ms: i64,
    /// Not uploaded, and its case (report, visit, mediation file) is not saved on this phone
    /// although the grace period since capture has passed (the app was killed before the
    /// report was saved, or the user left the report screen). Not counted as unsent work,
    /// never uploaded (the server would refuse it), and [discardable](Store::discard_photo).
    pub orphaned: bool,
}

/// Where a capture comes from.
#[derive(Debug, Clone, Copy)]
pub enum PhotoInput<'a> {
    /// Camera bytes in memory.
    Bytes(&'a [u8]),
    /// A file the camera wrote; deleted once the server has confirmed the processed photo.
    File(&'a Path),
}

/// A photo due for upload, with what the client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DuePhoto {
    pub(crate) hash: String,
    pub(crate) thumb_hash: String,
    pub(crate) thumb_sent: bool,
    pub(crate) attempts: u32,
}

/// Whether a photo's case, record or citizen report is saved on the phone (SQL over `p`);
/// a macro so that it can be spliced into the queries with `concat!`.
macro_rules! owner_saved {
    () => {
        "(EXISTS (SELECT 1 FROM documents o WHERE o.id = p.case_id) \
         OR EXISTS (SELECT 1 FROM citizen_reports c WHERE c.id = p.case_id))"
    };
}

const COLUMNS: &str = concat!(
    "p.hash, p.case_id, p.state, p.size, p.confirmed, p.thumb_sent, p.attempts, \
     p.last_error, p.next_attempt_at, p.taken_at, p.width, p.height, \
     EXISTS (SELECT 1 FROM photo_data d WHERE d.hash = p.hash AND d.kind = 'full'), \
     p.created_at, ",
    owner_saved!()
);

/// A photo captured before `cutoff` (UTC ms) whose owner is not saved is orphaned.
fn status_of(row: &Row<'_>, cutoff: i64) -> rusqlite::Result<PhotoStatus> {
    let state: String = row.get(2)?;
    let state = PhotoState::from_code(&state).unwrap_or(PhotoState::Failed);
    let captured_at_ms: i64 = row.get(13)?;
    let owner_saved: bool = row.get(14)?;
    Ok(PhotoStatus {
        hash: row.get(0)?,
        case_id: row.get(1)?,
        state,
        size: row.get::<_, i64>(3)?.max(0) as u64,
        confirmed_bytes: row.get::<_, i64>(4)?.max(0) as u64,
        thumbnail_sent: row.get(5)?,
        attempts: row.get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
        last_error: row.get(7)?,
        next_attempt_at_ms: row.get(8)?,
        taken_at_ms: row.get(9)?,
        width: row.get::<_, i64>(10)?.max(0) as u32,
        height: row.get::<_, i64>(11)?.max(0) as u32,
        local: row.get(12)?,
        captured_at_ms,
        orphaned: !owner_saved && state != PhotoState::Uploaded && captured_at_ms <= cutoff,
    })
}

impl Store {
    /// Captures a photo for a case (or a citizen report): processes it (limits, orientation,
    /// resize, re-encode without metadata) and queues it, bytes and row in one transaction.
    ///
    /// `free_space` is what the operating system reports as free for the app (Android
    /// `StatFs`, iOS "available for important usage"); below the configured floor the
    /// capture is refused with [`Error::StorageFull`], as it is when the photo budget is full
    /// even after evicting already-uploaded full-size copies. Capturing the same photo again
    /// returns the queued one.
    pub fn capture_photo(
        &self,
        case_id: &str,
        input: PhotoInput<'_>,
        taken: Moment,
        free_space: Option<u64>,
    ) -> Result<PhotoStatus> {
        // A case (UUID), or a record whose entries reference photos: a visit's answers and
        // findings, a mediation agreement's signatures.
        let record = matches!(
            crate::doc::DocKind::of(case_id),
            crate::doc::DocKind::Visit | crate::doc::DocKind::Mediation
        );
        if !record && uuid::Uuid::parse_str(case_id).is_err() {
            return Err(Error::Config(format!(
                "案件编号不是 UUID / case id is not a UUID: {case_id:?}"
            )));
        }
        let budget = &self.config.photo_budget;
        if let Some(free) = free_space
            && free < budget.min_free_bytes
        {
            return Err(Error::StorageFull {
                needed: budget.min_free_bytes,
                available: free,
            });
        }
        let processed = match input {
            PhotoInput::Bytes(bytes) => photo::process(bytes, &self.config.photo)?,
            PhotoInput::File(path) => photo::process_file(path, &self.config.photo)?,
        };
        let original = match input {
            PhotoInput::File(path) => Some(path.to_string_lossy().into_owned()),
            PhotoInput::Bytes(_) => None,
        };
        self.queue_processed(case_id, &processed, taken, original)
    }

    fn queue_processed(
        &self,
        case_id: &str,
        p: &ProcessedPhoto,
        taken: Moment,
        original: Option<String>,
    ) -> Result<PhotoStatus> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let known: Option<String> = tx
            .query_row("SELECT hash FROM photos WHERE hash = ?1", [&p.hash], |r| {
                r.get(0)
            })
            .optional()?;
        if known.is_none() {
            let needed = (p.jpeg.len() + p.thumbnail.len()) as u64;
            make_room(&tx, needed, self.config.photo_budget.max_bytes)?;
            tx.execute(
                "INSERT INTO photos (hash, case_id, size, width, height, thumb_hash, thumb_size,
                     taken_at, state, original_path, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'processed', ?9, ?10)",
                params![
                    p.hash,
                    case_id,
                    p.jpeg.len() as i64,
                    p.width,
                    p.height,
                    p.thumbnail_hash,
                    p.thumbnail.len() as i64,
                    taken.at_ms,
                    original,
                    now_ms()
                ],
            )?;
            tx.execute(
                "INSERT INTO photo_data (hash, kind, data) VALUES (?1, 'full', ?2), (?1, 'thumb', ?3)",
                params![p.hash, p.jpeg, p.thumbnail],
            )?;
        }
        let status = query_status(&tx, &p.hash, self.orphan_cutoff())?;
        tx.commit()?;
        Ok(status)
    }

    /// One photo's status.
    pub fn photo_status(&self, hash: &str) -> Result<PhotoStatus> {
        query_status(&self.lock(), hash, self.orphan_cutoff())
    }

    /// Photos not yet confirmed by the server, oldest first, then the 50 most recently
    /// uploaded: what the queue screen lists.
    pub fn photo_queue(&self) -> Result<Vec<PhotoStatus>> {
        let cutoff = self.orphan_cutoff();
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM photos p WHERE p.state != 'uploaded' ORDER BY p.created_at, p.hash"
        ))?;
        let mut out: Vec<PhotoStatus> = stmt
            .query_map([], |r| status_of(r, cutoff))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM photos p WHERE p.state = 'uploaded'
             ORDER BY p.uploaded_at DESC, p.hash LIMIT 50"
        ))?;
        out.extend(
            stmt.query_map([], |r| status_of(r, cutoff))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
        Ok(out)
    }

    /// The photos of one case, in capture order.
    pub fn photos_of_case(&self, case_id: &str) -> Result<Vec<PhotoStatus>> {
        let cutoff = self.orphan_cutoff();
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM photos p WHERE p.case_id = ?1 ORDER BY p.taken_at, p.hash"
        ))?;
        Ok(stmt
            .query_map([case_id], |r| status_of(r, cutoff))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The processed JPEG (or its thumbnail) if it is on the phone: captured here, or
    /// downloaded earlier.
    pub fn photo_bytes(&self, hash: &str, thumbnail: bool) -> Result<Option<Vec<u8>>> {
        let conn = self.lock();
        let kind = if thumbnail { "thumb" } else { "full" };
        let own: Option<Vec<u8>> = conn
            .prepare_cached("SELECT data FROM photo_data WHERE hash = ?1 AND kind = ?2")?
            .query_row(params![hash, kind], |r| r.get(0))
            .optional()?;
        if own.is_some() {
            return Ok(own);
        }
        Ok(conn
            .prepare_cached("SELECT data FROM photo_cache WHERE hash = ?1 AND kind = ?2")?
            .query_row(params![hash, kind], |r| r.get(0))
            .optional()?)
    }

    /// Keeps a downloaded photo for offline viewing, evicting the oldest beyond the budget.
    pub(crate) fn cache_photo(&self, hash: &str, thumbnail: bool, bytes: &[u8]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO photo_cache (hash, kind, data, fetched_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (hash, kind) DO UPDATE SET fetched_at = excluded.fetched_at",
            params![
                hash,
                if thumbnail { "thumb" } else { "full" },
                bytes,
                now_ms()
            ],
        )?;
        let budget = i64::try_from(self.config.photo_budget.cache_bytes).unwrap_or(i64::MAX);
        // Newest first; everything past the budget goes.
        tx.execute(
            "DELETE FROM photo_cache WHERE rowid IN (
                 SELECT rowid FROM (
                     SELECT rowid, SUM(length(data)) OVER (ORDER BY fetched_at DESC, rowid DESC) AS running
                     FROM photo_cache)
                 WHERE running > ?1)",
            [budget],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Makes a failed, waiting or quarantined photo due now ("重试" on the queue screen).
    pub fn retry_photo_now(&self, hash: &str) -> Result<PhotoStatus> {
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE photos SET next_attempt_at = 0, attempts = 0,
                 state = CASE WHEN state IN ('failed', 'quarantined')
                     THEN CASE WHEN confirmed > 0 THEN 'uploading' ELSE 'processed' END
                     ELSE state END
             WHERE hash = ?1 AND state != 'uploaded'",
            [hash],
        )?;
        if changed == 0 && query_status(&conn, hash, 0).is_err() {
            return Err(Error::NotFound(hash.to_owned()));
        }
        query_status(&conn, hash, self.orphan_cutoff())
    }

    /// Makes every waiting photo due now (back from offline: "全部重试").
    pub fn retry_all_photos_now(&self) -> Result<usize> {
        let conn = self.lock();
        Ok(conn.execute(
            "UPDATE photos SET next_attempt_at = 0
             WHERE state IN ('processed', 'uploading', 'failed')",
            [],
        )?)
    }

    /// Photos whose case was never saved on this phone, past the grace period (see
    /// [`PhotoStatus::orphaned`]), oldest first: what the queue screen offers to discard.
    pub fn orphaned_photos(&self) -> Result<Vec<PhotoStatus>> {
        let cutoff = self.orphan_cutoff();
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM photos p
             WHERE p.state != 'uploaded' AND p.created_at <= ?1 AND NOT {}
             ORDER BY p.created_at, p.hash",
            owner_saved!()
        ))?;
        Ok(stmt
            .query_map([cutoff], |r| status_of(r, cutoff))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a photo that no saved case, record or citizen report owns ("丢弃" on the queue
    /// screen), with its bytes and the camera file it came from. The grace period does not
    /// apply: this is the user's choice. A photo of a saved case is refused, since the case
    /// refers to it and every phone in scope would miss it.
    pub fn discard_photo(&self, hash: &str) -> Result<()> {
        let original: Option<String> = {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            let found: Option<(bool, String, Option<String>)> = tx
                .query_row(
                    concat!(
                        "SELECT p.state != 'uploaded' AND NOT ",
                        owner_saved!(),
                        ", p.case_id, p.original_path FROM photos p WHERE p.hash = ?1"
                    ),
                    [hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((orphan, owner, original)) = found else {
                return Err(Error::NotFound(hash.to_owned()));
            };
            if !orphan {
                return Err(Error::PhotoInUse {
                    hash: hash.to_owned(),
                    owner,
                });
            }
            tx.execute("DELETE FROM photos WHERE hash = ?1", [hash])?;
            tx.commit()?;
            original
        };
        // After the commit, as when uploaded: a crash before this leaves only a stray file.
        if let Some(path) = original {
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    /// Photos captured before this moment whose owner is not saved are orphaned.
    fn orphan_cutoff(&self) -> i64 {
        now_ms().saturating_sub(self.config.photo_budget.orphan_grace_ms.max(0))
    }

    /// Photos due for an upload attempt at `now_ms`, oldest first.
    pub(crate) fn photos_due(&self, now_ms: i64, limit: usize) -> Result<Vec<DuePhoto>> {
        let conn = self.lock();
        // A photo whose case is not saved waits: the server refuses photos no case references.
        let mut stmt = conn.prepare_cached(concat!(
            "SELECT p.hash, p.thumb_hash, p.thumb_sent, p.attempts FROM photos p
             WHERE p.state IN ('processed', 'uploading', 'failed') AND p.next_attempt_at <= ?1
               AND EXISTS (SELECT 1 FROM photo_data d WHERE d.hash = p.hash AND d.kind = 'full')
               AND ",
            owner_saved!(),
            " ORDER BY p.created_at, p.hash LIMIT ?2"
        ))?;
        Ok(stmt
            .query_map(params![now_ms, limit as i64], |r| {
                Ok(DuePhoto {
                    hash: r.get(0)?,
                    thumb_hash: r.get(1)?,
                    thumb_sent: r.get(2)?,
                    attempts: r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Records that the server holds `confirmed` bytes of the photo.
    pub(crate) fn photo_progress(&self, hash: &str, confirmed: u64) -> Result<()> {
        self.lock().execute(
            "UPDATE photos SET confirmed = ?2, state = 'uploading', last_error = NULL
             WHERE hash = ?1 AND state != 'uploaded'",
            params![hash, confirmed as i64],
        )?;
        Ok(())
    }

    /// Records that the thumbnail is on the server.
    pub(crate) fn photo_thumbnail_sent(&self, hash: &str) -> Result<()> {
        self.lock()
            .execute("UPDATE photos SET thumb_sent = 1 WHERE hash = ?1", [hash])?;
        Ok(())
    }

    /// Records the server's receipt; deletes the original file the photo came from.
    pub(crate) fn photo_uploaded(&self, hash: &str, at_ms: i64) -> Result<()> {
        let original: Option<String> = {
            let conn = self.lock();
            let original = conn
                .query_row(
                    "SELECT original_path FROM photos WHERE hash = ?1",
                    [hash],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            conn.execute(
                "UPDATE photos SET state = 'uploaded', confirmed = size, thumb_sent = 1,
                     attempts = 0, last_error = NULL, uploaded_at = ?2, original_path = NULL
                 WHERE hash = ?1",
                params![hash, at_ms],
            )?;
            original
        };
        // After the commit: a crash before this line leaves a file the app can still delete;
        // deleting first could lose the only copy.
        // A file already gone is fine; one that cannot be deleted stays for the app to clean.
        if let Some(path) = original {
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    /// Records a failed attempt: `retry_at` for a transient failure, none to quarantine.
    pub(crate) fn photo_failed(
        &self,
        hash: &str,
        message: &str,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let conn = self.lock();
        match retry_at {
            Some(at) => conn.execute(
                "UPDATE photos SET state = 'failed', attempts = attempts + 1, last_error = ?2,
                     next_attempt_at = ?3
                 WHERE hash = ?1 AND state != 'uploaded'",
                params![hash, message, at],
            )?,
            None => conn.execute(
                // The server's copy is unknown after a refusal; the next attempt asks it.
                "UPDATE photos SET state = 'quarantined', attempts = attempts + 1,
                     last_error = ?2, confirmed = 0
                 WHERE hash = ?1 AND state != 'uploaded'",
                params![hash, message],
            )?,
        };
        Ok(())
    }

    /// Postpones a photo without counting a failure (its case is not on the server yet).
    pub(crate) fn photo_waiting(&self, hash: &str, message: &str, until: i64) -> Result<()> {
        self.lock().execute(
            "UPDATE photos SET last_error = ?2, next_attempt_at = ?3
             WHERE hash = ?1 AND state != 'uploaded'",
            params![hash, message, until],
        )?;
        Ok(())
    }
}

fn query_status(conn: &rusqlite::Connection, hash: &str, cutoff: i64) -> Result<PhotoStatus> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM photos p WHERE p.hash = ?1"))?
        .query_row([hash], |r| status_of(r, cutoff))
        .optional()?
        .ok_or_else(|| Error::NotFound(hash.to_owned()))
}

/// Frees budget for `needed` bytes by evicting full-size copies of uploaded photos (the server
/// has them; thumbnails stay), oldest upload first; refuses when that is not enough.
fn make_room(tx: &rusqlite::Transaction<'_>, needed: u64, max_bytes: u64) -> Result<()> {
    let used = |tx: &rusqlite::Transaction<'_>| -> Result<u64> {
        Ok(tx
            .query_row(
                "SELECT COALESCE(SUM(length(data)), 0) FROM photo_data",
                [],
                |r| r.get::<_, i64>(0),
            )?
            .max(0) as u64)
    };
    let mut in_use = used(tx)?;
    if in_use + needed <= max_bytes {
        return Ok(());
    }
    let mut stmt = tx.prepare(
        "SELECT d.hash, length(d.data) FROM photo_data d JOIN photos p ON p.hash = d.hash
         WHERE d.kind = 'full' AND p.state = 'uploaded' ORDER BY p.uploaded_at, p.hash",
    )?;
    let evictable: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (hash, size) in evictable {
        if in_use + needed <= max_bytes {
            break;
        }
        tx.execute(
            "DELETE FROM photo_data WHERE hash = ?1 AND kind = 'full'",
            [&hash],
        )?;
        in_use = in_use.saturating_sub(size.max(0) as u64);
    }
    if in_use + needed > max_bytes {
        return Err(Error::StorageFull {
            needed,
            available: max_bytes.saturating_sub(in_use),
        });
    }
    Ok(())
}
