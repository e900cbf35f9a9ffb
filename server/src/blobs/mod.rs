//! The content-addressed blob store: photos and thumbnails named by their SHA-256, as files in
//! the data directory (the default) or as objects in an S3-compatible bucket that several
//! server nodes share ([`s3`]).
//!
//! On files, `blobs/partial/<hash>` grows chunk by chunk (each append at the offset the client was told,
//! flushed to disk before it is confirmed); when the declared size is reached the file is
//! hashed, probed as an image, and renamed to `blobs/sha256/<first two hex>/<hash>`. A blob is
//! written once however many devices send it. Only one upload per hash runs at a time (a
//! second one gets `Busy` and retries), so appends never interleave.
//!
//! The rows describing complete blobs live in the [`ServerStore`](crate::store::ServerStore)
//! (`blobs`), written after the file is in place; a file without a row (a crash in between)
//! is found complete again by the next upload of that hash and recorded then.
//!
//! The upload lock is per node. Over a shared bucket two nodes may append to one upload at
//! once; what that can do is bounded by the hash check at the end (see [`s3`]).

mod s3;

use gridlink_core::photo::{self, PhotoLimits};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The chunk does not start where the server's copy ends.
    #[error("偏移量不符：服务器已有 {have} 字节 / offset mismatch: the server has {have} bytes")]
    OffsetMismatch {
        /// Bytes held.
        have: u64,
    },
    /// Another upload of the same blob is running.
    #[error("该文件正在由另一连接上传 / this blob is being uploaded by another connection")]
    Busy,
    /// The complete bytes do not hash to the name; the partial copy was discarded.
    #[error("文件校验失败，请重新上传 / the blob does not match its hash: upload it again")]
    HashMismatch,
    /// The complete bytes are not an acceptable image; discarded.
    #[error("不是可接受的图片 / not an acceptable image: {0}")]
    NotAnImage(String),
    /// Disk failure.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// The object storage did not answer or refused the request (retryable).
    #[error("对象存储暂不可用 / object storage unavailable: {0}")]
    Unavailable(String),
    /// The blob store cannot be opened as configured (bad URL, no credentials, unreachable).
    #[error("{0}")]
    Config(String),
}

/// The blob store. See the module docs.
#[derive(Debug)]
pub struct BlobStore {
    backend: Backend,
    active: Mutex<HashSet<String>>,
}

#[derive(Debug)]
enum Backend {
    /// Files under this directory.
    Files(PathBuf),
    /// Objects in a bucket.
    S3(s3::Bucket),
}

/// Exclusive right to append to one blob; released on drop.
#[derive(Debug)]
pub struct UploadGuard {
    store: Arc<BlobStore>,
    hash: String,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.store
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.hash);
    }
}

/// Whether `s` is a SHA-256 in lower-case hex (so it is safe as a file name).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl BlobStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> std::io::Result<Arc<BlobStore>> {
        std::fs::create_dir_all(root.join("partial"))?;
        std::fs::create_dir_all(root.join("sha256"))?;
        Ok(Self::with(Backend::Files(root.to_owned())))
    }

    /// Opens the bucket `s3://bucket[/prefix]` (endpoint and credentials from the
    /// environment: [`s3`]) and checks that it answers.
    pub fn open_s3(url: &str) -> Result<Arc<BlobStore>, BlobError> {
        Self::open_s3_with(url, &[])
    }

    /// [`open_s3`](Self::open_s3) with settings (object_store's keys: `aws_endpoint`,
    /// `aws_access_key_id`, …) that override the environment's.
    pub fn open_s3_with(url: &str, options: &[(&str, &str)]) -> Result<Arc<BlobStore>, BlobError> {
        Ok(Self::with(Backend::S3(s3::Bucket::open(url, options)?)))
    }

    fn with(backend: Backend) -> Arc<BlobStore> {
        Arc::new(BlobStore {
            backend,
            active: Mutex::new(HashSet::new()),
        })
    }

    /// Whether blobs live in object storage (not in the data directory).
    pub fn is_object_storage(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// Checks that the store can be reached (for `/healthz`).
    pub fn check(&self) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Files(root) => {
                std::fs::metadata(root.join("sha256"))?;
                Ok(())
            }
            Backend::S3(bucket) => bucket.check(),
        }
    }

    fn final_path(root: &Path, hash: &str) -> PathBuf {
        root.join("sha256").join(&hash[..2]).join(hash)
    }

    fn partial_path(root: &Path, hash: &str) -> PathBuf {
        root.join("partial").join(hash)
    }

    fn is_active(&self, hash: &str) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(hash)
    }

    /// Takes the upload lock of a blob.
    pub fn begin(self: &Arc<Self>, hash: &str) -> Result<UploadGuard, BlobError> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if !active.insert(hash.to_owned()) {
            return Err(BlobError::Busy);
        }
        Ok(UploadGuard {
            store: self.clone(),
            hash: hash.to_owned(),
        })
    }

    /// Waits (up to `timeout`) until no upload of `hash` is running, so that a status read
    /// after a cut connection sees what that connection delivered.
    pub fn wait_idle(&self, hash: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.is_active(hash) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Whether the complete blob is stored.
    pub fn has(&self, hash: &str) -> Result<bool, BlobError> {
        if !is_hash(hash) {
            return Ok(false);
        }
        match &self.backend {
            Backend::Files(root) => Ok(Self::final_path(root, hash).is_file()),
            Backend::S3(bucket) => Ok(bucket.size(hash)?.is_some()),
        }
    }

    /// Size of a complete blob.
    pub fn stored_size(&self, hash: &str) -> Result<u64, BlobError> {
        match &self.backend {
            Backend::Files(root) => Ok(std::fs::metadata(Self::final_path(root, hash))?.len()),
            Backend::S3(bucket) => bucket.size(hash)?.ok_or_else(|| {
                BlobError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("blob {hash} is not stored"),
                ))
            }),
        }
    }

    /// Deletes incomplete uploads not touched for `max_age` (abandoned by their phones, or
    /// never meant to finish); returns how many went.
    pub fn sweep_partials(&self, max_age: std::time::Duration) -> Result<usize, BlobError> {
        let root = match &self.backend {
            Backend::Files(root) => root,
            Backend::S3(bucket) => return bucket.sweep(max_age, |hash| self.is_active(hash)),
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(root.join("partial"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(hash) = name.to_str() else { continue };
            if !is_hash(hash) || self.is_active(hash) {
                continue;
            }
            let idle = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if idle > max_age {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes received of an incomplete blob.
    pub fn received(&self, hash: &str) -> Result<u64, BlobError> {
        match &self.backend {
            Backend::Files(root) => match std::fs::metadata(Self::partial_path(root, hash)) {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e.into()),
            },
            Backend::S3(bucket) => bucket.received(hash),
        }
    }

    /// Drops what a partial upload holds, so it starts over from byte 0.
    pub fn discard_partial(&self, _guard: &UploadGuard, hash: &str) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Files(root) => match std::fs::remove_file(Self::partial_path(root, hash)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Backend::S3(bucket) => bucket.discard(hash),
        }
    }

    /// Appends `bytes` at `offset` (which must equal what is held) and makes them durable.
    /// Returns the bytes now held.
    pub fn append(
        &self,
        _guard: &UploadGuard,
        hash: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, BlobError> {
        let root = match &self.backend {
            Backend::Files(root) => root,
            Backend::S3(bucket) => {
                let have = bucket.received(hash)?;
                if have != offset {
                    return Err(BlobError::OffsetMismatch { have });
                }
                bucket.put_chunk(hash, offset, bytes)?;
                return Ok(have + bytes.len() as u64);
            }
        };
        let path = Self::partial_path(root, hash);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let have = file.metadata()?.len();
        if have != offset {
            return Err(BlobError::OffsetMismatch { have });
        }
        file.write_all(bytes)?;
        file.sync_data()?;
        Ok(have + bytes.len() as u64)
    }

    /// Verifies a partial blob that reached its size and moves it into place. A blob that
    /// fails is deleted (the client starts over).
    /// The whole blob is checked against `limits` (what the phone's pipeline produces for its
    /// kind: [`PhotoLimits::uploaded_photo`], [`PhotoLimits::uploaded_thumbnail`]).
    pub fn complete(
        &self,
        _guard: &UploadGuard,
        hash: &str,
        size: u64,
        limits: &PhotoLimits,
    ) -> Result<(), BlobError> {
        let accept = |bytes: &[u8]| {
            if bytes.len() as u64 != size || photo::sha256_hex(bytes) != hash {
                return Err(BlobError::HashMismatch);
            }
            match photo::probe(bytes, limits) {
                Ok(p) if p.format == photo::Format::Jpeg => Ok(()),
                Ok(_) => Err(BlobError::NotAnImage("JPEG only".into())),
                Err(e) => Err(BlobError::NotAnImage(e.to_string())),
            }
        };
        let root = match &self.backend {
            Backend::Files(root) => root,
            Backend::S3(bucket) => return bucket.complete(hash, size, accept),
        };
        let partial = Self::partial_path(root, hash);
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        std::fs::File::open(&partial)?.read_to_end(&mut bytes)?;
        if let Err(refused) = accept(&bytes) {
            let _ = std::fs::remove_file(&partial);
            return Err(refused);
        }
        let target = Self::final_path(root, hash);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&partial, &target)?;
        if let Some(dir) = target.parent() {
            // The rename is durable once the directory is.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The bytes of a complete blob.
    pub fn read(&self, hash: &str) -> Result<Option<Vec<u8>>, BlobError> {
        if !is_hash(hash) {
            return Ok(None);
        }
        match &self.backend {
            Backend::Files(root) => match std::fs::read(Self::final_path(root, hash)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::S3(bucket) => bucket.read(hash),
        }
    }
}
