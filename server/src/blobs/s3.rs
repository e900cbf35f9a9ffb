//! The blob store's S3-compatible backend: one bucket (optionally a prefix in it) that every
//! server node reaches, so a photo uploaded through one node is served by all of them and an
//! upload cut on one node resumes on another.
//!
//! Layout, under the prefix:
//! - `sha256/<first two hex>/<hash>`: a complete blob, written once (content-addressed);
//! - `partial/<hash>/<offset, 16 digits>`: one object per chunk of an upload in progress.
//!   S3 has no append, and its multipart parts must be at least 5 MiB while phones send
//!   256 KiB chunks over bad links, so each chunk is an object of its own, acknowledged once
//!   the bucket has it. What an upload holds is the run of chunks that follow each other from
//!   byte 0. When the declared size is reached the run is read back, verified (hash, image) and
//!   written as the complete blob, then the chunks are deleted.
//!
//! Two nodes writing the same upload at once (a phone retrying through another node while the
//! first request is still running) can only overwrite a chunk at the same offset or leave a
//! chunk past the run: the run is still a prefix of *some* bytes, and the whole blob is checked
//! against its hash before it counts, so the worst case is a `HashMismatch` and a fresh start.
//!
//! The bucket is named by `s3://bucket[/prefix]`; the endpoint, region and credentials come
//! from the usual environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Credentials are
//! required: the server never falls back to asking a cloud metadata address for them.

use super::BlobError;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, PutPayload, RetryConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One stored chunk of an upload in progress.
struct Chunk {
    offset: u64,
    size: u64,
    key: Path,
}

/// The run of `chunks` (sorted by offset) that follow each other from byte 0. A chunk past a
/// gap, or inside the run (left by another node's retry), is not part of it.
fn contiguous(chunks: &[Chunk]) -> impl Iterator<Item = &Chunk> {
    let mut run = 0;
    chunks.iter().filter(move |c| {
        let next = c.offset == run;
        if next {
            run += c.size;
        }
        next
    })
}

/// A bucket, with the small runtime its client runs on (the store's callers are blocking
/// threads; they wait on a channel, so they may be any thread, in a runtime or not).
pub(super) struct Bucket {
    store: Arc<dyn ObjectStore>,
    runtime: Option<tokio::runtime::Runtime>,
    url: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside another runtime that is refused.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            e.to_string(),
        )),
        e => BlobError::Unavailable(e.to_string()),
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Bucket {
    /// Opens `s3://bucket[/prefix]` and checks that the bucket answers (one listing request).
    /// `options` (object_store's `aws_*` keys) override the environment.
    pub(super) fn open(url: &str, options: &[(&str, &str)]) -> Result<Bucket, BlobError> {
        let bad = |why: &str| {
            BlobError::Config(format!(
                "{url}: {why}（应为 s3://存储桶[/前缀] / expected s3://bucket[/prefix]）"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(bad("bad bucket name"));
        }
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let given = options
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty());
            if !given && std::env::var(key).map_or(true, |v| v.is_empty()) {
                return Err(BlobError::Config(format!(
                    "{url}: 缺少环境变量 {key} / {key} is not set (object storage credentials come from the environment)"
                )));
            }
        }
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| BlobError::Config(format!("{url}: {e}")))?;
            builder = builder.with_config(key, *value);
        }
        // Bounded waits unless the environment or the caller chose others.
        for (key, default) in [
            (ClientConfigKey::ConnectTimeout, "5s"),
            (ClientConfigKey::Timeout, "30s"),
        ] {
            let key = AmazonS3ConfigKey::Client(key);
            if builder.get_config_value(&key).is_none() {
                builder = builder.with_config(key, default);
            }
        }
        let s3 = builder
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| BlobError::Config(format!("{url}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => Arc::new(s3),
            prefix => Arc::new(PrefixStore::new(s3, prefix)),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gridlink-s3")
            .enable_all()
            .build()
            .map_err(BlobError::Io)?;
        let bucket = Bucket {
            store,
            runtime: Some(runtime),
            url: url.to_owned(),
        };
        bucket.check().map_err(|e| match e {
            BlobError::Unavailable(why) => BlobError::Config(format!(
                "{url}: 对象存储无法访问 / object storage unreachable: {why}"
            )),
            e => e,
        })?;
        Ok(bucket)
    }

    /// One cheap request that fails when the bucket cannot be reached or used.
    pub(super) fn check(&self) -> Result<(), BlobError> {
        let store = self.store.clone();
        self.run(async move {
            store
                .list_with_delimiter(Some(&Path::from("partial/0")))
                .await
                .map(drop)
        })?
        .map_err(unavailable)
    }

    /// Runs `future` on the bucket's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, BlobError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| BlobError::Unavailable("shutting down".into()))?;
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| BlobError::Unavailable("the object storage client stopped".into()))
    }

    fn final_key(hash: &str) -> Path {
        Path::from(format!("sha256/{}/{hash}", &hash[..2]))
    }

    fn chunk_key(hash: &str, offset: u64) -> Path {
        Path::from(format!("partial/{hash}/{offset:016}"))
    }

    fn chunk_prefix(hash: &str) -> Path {
        Path::from(format!("partial/{hash}"))
    }

    /// The size of a complete blob, if stored.
    pub(super) fn size(&self, hash: &str) -> Result<Option<u64>, BlobError> {
        let (store, key) = (self.store.clone(), Self::final_key(hash));
        match self.run(async move { store.head(&key).await })? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The chunks of an upload, by offset.
    fn chunks(&self, hash: &str) -> Result<Vec<Chunk>, BlobError> {
        let (store, prefix) = (self.store.clone(), Self::chunk_prefix(hash));
        let metas: Vec<object_store::ObjectMeta> = self
            .run(async move { store.list(Some(&prefix)).try_collect().await })?
            .map_err(unavailable)?;
        let mut chunks: Vec<Chunk> = metas
            .into_iter()
            .filter_map(|m| {
                let offset = m.location.filename()?.parse::<u64>().ok()?;
                Some(Chunk {
                    offset,
                    size: m.size,
                    key: m.location,
                })
            })
            .collect();
        chunks.sort_by_key(|c| c.offset);
        Ok(chunks)
    }

    /// Bytes an upload holds: the run of chunks that follow each other from byte 0.
    pub(super) fn received(&self, hash: &str) -> Result<u64, BlobError> {
        Ok(contiguous(&self.chunks(hash)?).map(|c| c.size).sum())
    }

    /// Stores the chunk at `offset`.
    pub(super) fn put_chunk(&self, hash: &str, offset: u64, bytes: &[u8]) -> Result<(), BlobError> {
        let (store, key) = (self.store.clone(), Self::chunk_key(hash, offset));
        let payload = PutPayload::from(bytes.to_vec());
        self.run(async move { store.put(&key, payload).await.map(drop) })?
            .map_err(unavailable)
    }

    /// Makes the upload whole: reads the run from byte 0 (up to `size`), lets `accept` judge
    /// the bytes, writes them as the complete blob if it does, and deletes every chunk of the
    /// upload either way (a refused upload starts over).
    pub(super) fn complete(
        &self,
        hash: &str,
        size: u64,
        accept: impl FnOnce(&[u8]) -> Result<(), BlobError>,
    ) -> Result<(), BlobError> {
        let chunks = self.chunks(hash)?;
        let bytes = self.read_run(&chunks, size)?;
        let keys = chunks.into_iter().map(|c| c.key).collect();
        if let Err(refused) = accept(&bytes) {
            self.delete(keys)?;
            return Err(refused);
        }
        self.put_final(hash, bytes)?;
        // The blob is whole; chunks left now would only be swept later.
        if let Err(e) = self.delete(keys) {
            tracing::warn!(hash, error = %e, "deleting the chunks of a complete upload failed");
        }
        Ok(())
    }

    /// The bytes of the run of `chunks` from byte 0, as far as `limit`.
    fn read_run(&self, chunks: &[Chunk], limit: u64) -> Result<Vec<u8>, BlobError> {
        let mut keys = Vec::new();
        let mut run = 0;
        for chunk in contiguous(chunks) {
            if run >= limit {
                break;
            }
            keys.push(chunk.key.clone());
            run += chunk.size;
        }
        let store = self.store.clone();
        self.run(async move {
            let mut bytes = Vec::new();
            for key in keys {
                bytes.extend_from_slice(&store.get(&key).await?.bytes().await?);
            }
            Ok::<_, object_store::Error>(bytes)
        })?
        .map_err(unavailable)
    }

    /// Writes a complete blob.
    fn put_final(&self, hash: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let (store, key) = (self.store.clone(), Self::final_key(hash));
        self.run(async move { store.put(&key, PutPayload::from(bytes)).await.map(drop) })?
            .map_err(unavailable)
    }

    /// Deletes every chunk of an upload.
    pub(super) fn discard(&self, hash: &str) -> Result<(), BlobError> {
        let keys: Vec<Path> = self.chunks(hash)?.into_iter().map(|c| c.key).collect();
        self.delete(keys)
    }

    fn delete(&self, keys: Vec<Path>) -> Result<(), BlobError> {
        let store = self.store.clone();
        self.run(async move {
            for key in keys {
                match store.delete(&key).await {
                    Err(e) if !is_not_found(&e) => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })?
        .map_err(unavailable)
    }

    /// A complete blob's bytes.
    pub(super) fn read(&self, hash: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let (store, key) = (self.store.clone(), Self::final_key(hash));
        match self.run(async move {
            match store.get(&key).await {
                Ok(got) => got.bytes().await.map(|b| Some(b.to_vec())),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })? {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the chunks of uploads none of whose chunks changed for `max_age`, except those
    /// `skip` says are running here; returns how many uploads went.
    pub(super) fn sweep(
        &self,
        max_age: Duration,
        skip: impl Fn(&str) -> bool,
    ) -> Result<usize, BlobError> {
        let store = self.store.clone();
        let metas: Vec<object_store::ObjectMeta> = self
            .run(async move { store.list(Some(&Path::from("partial"))).try_collect().await })?
            .map_err(unavailable)?;
        let mut uploads: std::collections::BTreeMap<
            String,
            (chrono::DateTime<chrono::Utc>, Vec<Path>),
        > = Default::default();
        for meta in metas {
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(hash) = parts
                .len()
                .checked_sub(2)
                .map(|i| parts[i].as_ref().to_owned())
            else {
                continue;
            };
            let entry = uploads
                .entry(hash)
                .or_insert((meta.last_modified, Vec::new()));
            entry.0 = entry.0.max(meta.last_modified);
            entry.1.push(meta.location);
        }
        let Some(cutoff) = chrono::Duration::from_std(max_age)
            .ok()
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
        else {
            return Ok(0);
        };
        let mut removed = 0;
        for (hash, (newest, keys)) in uploads {
            if newest < cutoff && super::is_hash(&hash) && !skip(&hash) {
                self.delete(keys)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
