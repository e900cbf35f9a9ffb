//! Resumable photo upload: [`Store::upload_photos`] sends the queue's thumbnails first, then
//! the full photos, each in chunks to the server's content-addressed blob store.
//!
//! For each blob the client first asks the server how much it holds (`GET
//! /v1/blobs/{hash}`), then sends the rest (`PUT /v1/blobs/{hash}?offset=…`), one chunk per
//! request. A cut connection costs at most the chunk in flight: the next attempt asks again
//! and resumes at the server's offset (the server keeps what arrived of a cut chunk, too). The
//! server verifies the SHA-256 once the last byte is in and answers with a receipt; only then
//! is the photo marked uploaded and its original file deleted. A blob the server already has
//! (sent by another phone, or before a reinstall) costs one request.

use super::client::{Backoff, Transport, TransportError, into_error};
use super::wire::{self, BlobStatus};
use crate::error::{Error, Result};
use crate::store::{DuePhoto, PhotoStatus, Store};
use std::time::Duration;

/// How [`Store::upload_photos`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Retry policy for each request.
    pub backoff: Backoff,
    /// Bytes per chunk (64 KiB–1 MiB; 256 KiB suits 3G/4G).
    pub chunk_bytes: usize,
    /// Photos handled in one call.
    pub max_photos: usize,
    /// How long a photo whose case the server does not know yet waits before it is tried
    /// again (the case is synced first).
    pub wait_for_case: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            backoff: Backoff::default(),
            chunk_bytes: 256 << 10,
            max_photos: 200,
            wait_for_case: Duration::from_secs(60),
        }
    }
}

/// What one [`Store::upload_photos`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Photos the server confirmed.
    pub uploaded: u32,
    /// Thumbnails the server confirmed.
    pub thumbnails: u32,
    /// Photos waiting for their case to reach the server.
    pub waiting: u32,
    /// Photos that failed and will be retried later.
    pub failed: u32,
    /// Photos refused for good.
    pub quarantined: u32,
    /// Chunk bytes sent (photo data only, counting resent bytes).
    pub bytes_sent: u64,
    /// Requests that failed and were retried.
    pub retries: u32,
}

/// Told about the photo queue while an upload runs (the queue screen updates per item).
pub trait PhotoQueueObserver: Send + Sync {
    /// A photo's status changed (progress, uploaded, failed, quarantined).
    fn changed(&self, status: &PhotoStatus) {
        let _ = status;
    }
}

impl PhotoQueueObserver for () {}

/// Why one blob did not get through.
enum Failure {
    /// Worth retrying later (network, server busy).
    Transient(String),
    /// The server does not know a case referencing the photo yet.
    NotReferenced(String),
    /// Refused for good.
    Permanent(String),
    /// The local store failed, or the device may not upload at all: stop.
    Local(Error),
}

impl Store {
    /// Uploads the photos that are due: thumbnails first, then full photos, oldest first.
    /// A photo that fails is given a next attempt time (exponential back-off with jitter)
    /// and the queue moves on; a photo the server refuses for good is quarantined.
    pub fn upload_photos(
        &self,
        transport: &dyn Transport,
        options: &UploadOptions,
        observer: &dyn PhotoQueueObserver,
    ) -> Result<UploadReport> {
        let mut report = UploadReport::default();
        let now = crate::store::now_ms();
        let due = self.photos_due(now, options.max_photos)?;
        let mut blocked = std::collections::BTreeSet::new();
        // Thumbnails first: the command centre sees every photo small before any large.
        for photo in due.iter().filter(|p| !p.thumb_sent) {
            let Some(bytes) = self.photo_bytes(&photo.hash, true)? else {
                continue;
            };
            let path = |offset: Option<u64>| {
                blob_path(
                    &photo.thumb_hash,
                    "thumb",
                    Some(&photo.hash),
                    bytes.len(),
                    offset,
                )
            };
            let sent = self.send_blob(
                transport,
                options,
                &photo.thumb_hash,
                &bytes,
                &path,
                &mut report,
                None,
            );
            if self.settle(photo, sent, options, now, &mut report)? {
                self.photo_thumbnail_sent(&photo.hash)?;
                report.thumbnails += 1;
            } else {
                blocked.insert(photo.hash.clone());
            }
            observer.changed(&self.photo_status(&photo.hash)?);
        }
        for photo in due.iter().filter(|p| !blocked.contains(&p.hash)) {
            let Some(bytes) = self.photo_bytes(&photo.hash, false)? else {
                continue;
            };
            let path =
                |offset: Option<u64>| blob_path(&photo.hash, "photo", None, bytes.len(), offset);
            let progress = |confirmed: u64| -> Result<()> {
                self.photo_progress(&photo.hash, confirmed)?;
                observer.changed(&self.photo_status(&photo.hash)?);
                Ok(())
            };
            let sent = self.send_blob(
                transport,
                options,
                &photo.hash,
                &bytes,
                &path,
                &mut report,
                Some(&progress),
            );
            if self.settle(photo, sent, options, now, &mut report)? {
                self.photo_uploaded(&photo.hash, crate::store::now_ms())?;
                report.uploaded += 1;
            }
            observer.changed(&self.photo_status(&photo.hash)?);
        }
        Ok(report)
    }

    /// Records a failed blob on its photo; returns whether the blob got through.
    fn settle(
        &self,
        photo: &DuePhoto,
        sent: std::result::Result<(), Failure>,
        options: &UploadOptions,
        now: i64,
        report: &mut UploadReport,
    ) -> Result<bool> {
        match sent {
            Ok(()) => Ok(true),
            Err(failure) => {
                self.record_failure(&photo.hash, photo.attempts, failure, options, now, report)?;
                Ok(false)
            }
        }
    }

    /// A photo to show: from the phone if it is here (captured or downloaded before),
    /// otherwise downloaded from the server (`GET /v1/photos/{hash}[/thumb]`), checked, and
    /// kept for offline viewing. A full photo must hash to its name; a thumbnail must be a
    /// JPEG within limits.
    pub fn fetch_photo(
        &self,
        transport: &dyn Transport,
        hash: &str,
        thumbnail: bool,
    ) -> Result<Vec<u8>> {
        if let Some(bytes) = self.photo_bytes(hash, thumbnail)? {
            return Ok(bytes);
        }
        let path = if thumbnail {
            format!("/v1/photos/{hash}/thumb")
        } else {
            format!("/v1/photos/{hash}")
        };
        let bytes = transport.get(&path).map_err(into_error)?;
        let valid = if thumbnail {
            crate::photo::probe(&bytes, &self.config().photo.limits).is_ok()
        } else {
            crate::photo::sha256_hex(&bytes) == hash
        };
        if !valid {
            return Err(Error::Corrupt {
                doc_id: hash.to_owned(),
                detail: "下载的照片与其名称不符 / the downloaded photo does not match its name"
                    .into(),
            });
        }
        self.cache_photo(hash, thumbnail, &bytes)?;
        Ok(bytes)
    }

    fn record_failure(
        &self,
        hash: &str,
        attempts: u32,
        failure: Failure,
        options: &UploadOptions,
        now: i64,
        report: &mut UploadReport,
    ) -> Result<()> {
        match failure {
            Failure::Local(e) => Err(e),
            Failure::Transient(message) => {
                let delay = options.backoff.delay(attempts + 1);
                report.failed += 1;
                self.photo_failed(hash, &message, Some(now + millis(delay)))
            }
            Failure::NotReferenced(message) => {
                report.waiting += 1;
                self.photo_waiting(hash, &message, now + millis(options.wait_for_case))
            }
            Failure::Permanent(message) => {
                report.quarantined += 1;
                self.photo_failed(hash, &message, None)
            }
        }
    }

    /// Sends one blob: asks what the server has, sends the rest chunk by chunk, retrying each
    /// request with back-off and re-asking the offset after a failure.
    #[allow(clippy::too_many_arguments)]
    fn send_blob(
        &self,
        transport: &dyn Transport,
        options: &UploadOptions,
        hash: &str,
        bytes: &[u8],
        path: &dyn Fn(Option<u64>) -> String,
        report: &mut UploadReport,
        progress: Option<&dyn Fn(u64) -> Result<()>>,
    ) -> std::result::Result<(), Failure> {
        let chunk = options.chunk_bytes.clamp(16 << 10, wire::MAX_CHUNK_BYTES);
        let size = bytes.len() as u64;
        let mut failures = 0u32;
        let mut restarted = false;
        let mut offset: Option<u64> = None;
        loop {
            if failures > 0 {
                if failures >= options.backoff.attempts.max(1) {
                    return Err(Failure::Transient(format!(
                        "上传中断，稍后重试 / upload interrupted, will retry: {}",
                        offset.map_or("no answer".to_owned(), |o| format!("at byte {o}"))
                    )));
                }
                report.retries += 1;
                std::thread::sleep(options.backoff.delay(failures));
            }
            let status = match offset {
                // Where the server stands (after a failure, or at the start).
                None => transport.get(&path(None)),
                Some(at) => {
                    let end = (at + chunk as u64).min(size);
                    let piece = &bytes[at as usize..end as usize];
                    report.bytes_sent += piece.len() as u64;
                    transport.put(&path(Some(at)), piece)
                }
            };
            let status: BlobStatus = match status {
                Ok(body) => match wire::decode(&body, 64 << 10) {
                    Ok(status) => status,
                    // Damaged in transit: ask where the server stands.
                    Err(_) => {
                        failures += 1;
                        offset = None;
                        continue;
                    }
                },
                Err(e) => match classify(e) {
                    Classified::Retry => {
                        failures += 1;
                        offset = None;
                        continue;
                    }
                    Classified::Restart if !restarted => {
                        // The server discarded a blob that failed its hash: start over once.
                        restarted = true;
                        offset = None;
                        continue;
                    }
                    Classified::Restart => {
                        return Err(Failure::Permanent(
                            "照片两次校验失败 / the photo failed its hash check twice".into(),
                        ));
                    }
                    Classified::NotReferenced(message) => {
                        return Err(Failure::NotReferenced(message));
                    }
                    Classified::Permanent(message) => return Err(Failure::Permanent(message)),
                    Classified::Fatal(e) => return Err(Failure::Local(e)),
                },
            };
            if status.hash != hash || status.size != size {
                return Err(Failure::Permanent(format!(
                    "服务器回复的文件不符 / the server answered for another blob ({} bytes)",
                    status.size
                )));
            }
            if let Some(receipt) = &status.receipt {
                if receipt.hash != hash {
                    return Err(Failure::Permanent("收据不符 / receipt mismatch".into()));
                }
                if let Some(progress) = progress {
                    progress(size).map_err(Failure::Local)?;
                }
                return Ok(());
            }
            if status.received > size {
                return Err(Failure::Permanent(
                    "服务器偏移量无效 / bad server offset".into(),
                ));
            }
            if offset.is_some() {
                failures = 0;
            }
            if let Some(progress) = progress
                && offset != Some(status.received)
            {
                progress(status.received).map_err(Failure::Local)?;
            }
            offset = Some(status.received);
        }
    }
}

enum Classified {
    /// Ask the server's offset again and go on (network, busy, a chunk at a stale offset).
    Retry,
    /// The server discarded the blob.
    Restart,
    NotReferenced(String),
    Permanent(String),
    /// Not about this photo (the device was revoked): stop the whole upload.
    Fatal(Error),
}

fn classify(e: TransportError) -> Classified {
    if e.is_transient() {
        return Classified::Retry;
    }
    match &e {
        TransportError::Status { status: 409, body } if body.code == "size_mismatch" => {
            Classified::Permanent(body.message.clone())
        }
        TransportError::Status { status: 409, .. } => Classified::Retry,
        TransportError::Status { body, .. } if body.code == "hash_mismatch" => Classified::Restart,
        TransportError::Status { body, .. } if body.code == "blob_not_referenced" => {
            Classified::NotReferenced(body.message.clone())
        }
        TransportError::Status { status: 401, .. } => Classified::Fatal(into_error(e)),
        _ => Classified::Permanent(into_error(e).to_string()),
    }
}

fn blob_path(hash: &str, kind: &str, of: Option<&str>, size: usize, offset: Option<u64>) -> String {
    let mut path = format!("/v1/blobs/{hash}?kind={kind}&size={size}");
    if let Some(of) = of {
        path.push_str("&of=");
        path.push_str(of);
    }
    if let Some(offset) = offset {
        path.push_str(&format!("&offset={offset}"));
    }
    path
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
