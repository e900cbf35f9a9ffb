//! Photos an outside system names by URL: Open311's `media_url` on `POST requests`.
//!
//! The server fetches the URL itself, so the URL must not become a way to make it read inside
//! the network (SSRF). Only hosts an operator listed are fetched (`gridlink-server
//! open311-media-hosts`, kept in the setting [`SETTING`]; none by default, so `media_url` is
//! refused until hosts are listed); only `http`/`https` on the listed host and port; no
//! redirects; a time limit; at most [`MAX_MEDIA_BYTES`] read. What arrives goes through the
//! same pipeline as a phone's photo (resized, re-encoded without metadata, thumbnail), and is
//! stored by its SHA-256 like any uploaded photo.
//!
//! Decoding is what costs memory (an 8000×8000 progressive JPEG of 563 KB needs hundreds of
//! megabytes), so the header is read first and checked against [`PhotoLimits::remote`], lower
//! than a phone camera's, before anything is decoded; and at most [`MAX_DECODES`] media photos
//! are decoded at once, the others waiting up to [`DECODE_WAIT`] and then refused as busy.

use crate::state::AppState;
use crate::store::{BlobRow, StoreError, StoreResult};
use gridlink_core::photo::{PhotoConfig, PhotoLimits, ProcessedPhoto};
use std::io::Read;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The setting holding the allowed hosts (comma-separated `host` or `host:port`).
pub const SETTING: &str = "open311_media_hosts";
/// Most bytes read from a media URL.
pub const MAX_MEDIA_BYTES: u64 = PhotoLimits::remote().max_input_bytes;
/// Most media photos decoded at once, across the process.
pub const MAX_DECODES: usize = 2;
/// How long a media photo waits for its turn to be decoded.
pub const DECODE_WAIT: Duration = Duration::from_secs(20);
/// Time limit of a fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a media URL gave no photo.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not a URL this server fetches (scheme, form).
    #[error("media_url 无效 / media_url is not a usable http(s) URL: {0}")]
    BadUrl(String),
    /// The host is not on the operators' list.
    #[error("不接受来自 {0} 的 media_url / media_url from {0} is not accepted here")]
    NotAllowed(String),
    /// The fetch failed or did not answer 200.
    #[error("无法获取 media_url / media_url could not be fetched: {0}")]
    Fetch(String),
    /// Larger than [`MAX_MEDIA_BYTES`].
    #[error("media_url 超过 16 MB / media_url is larger than 16 MB")]
    TooLarge,
    /// Not a photo the pipeline accepts.
    #[error("media_url 不是可用的照片 / media_url is not a usable photo: {0}")]
    NotAPhoto(String),
    /// Other media photos are being decoded and none finished in time.
    #[error("服务器正忙，请稍后重试 / the server is busy with other photos: try again later")]
    Busy,
    /// Storing it failed.
    #[error("保存照片失败 / storing the photo failed: {0}")]
    Storage(StoreError),
}

/// The decoding turns: a counting semaphore for blocking threads.
static DECODING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A turn to decode; given back on drop.
struct Turn;

impl Turn {
    fn take(wait: Duration) -> Result<Turn, MediaError> {
        let (count, freed) = &DECODING;
        let deadline = Instant::now() + wait;
        let mut running = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= MAX_DECODES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MediaError::Busy);
            }
            running = freed
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *running += 1;
        Ok(Turn)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let (count, freed) = &DECODING;
        *count.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        freed.notify_one();
    }
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The hosts media URLs may come from.
pub fn allowed_hosts(state: &AppState) -> StoreResult<Vec<String>> {
    Ok(state
        .store()
        .setting(SETTING)?
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .split(',')
                .map(normalize)
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

/// Replaces the allowed hosts (`host` or `host:port`; an empty list refuses every media URL).
pub fn set_allowed_hosts(state: &AppState, hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut list = Vec::new();
    for host in hosts.iter().map(|h| normalize(h)).filter(|h| !h.is_empty()) {
        let url = reqwest::Url::parse(&format!("http://{host}/"))
            .map_err(|e| anyhow::anyhow!("主机名无效 / not a host name: {host:?}: {e}"))?;
        if url.host_str().is_none() || url.path() != "/" || host.contains(['/', '@', '?', '#']) {
            anyhow::bail!("主机名无效 / not a host name: {host:?}");
        }
        list.push(host);
    }
    state
        .store()
        .put_setting(SETTING, list.join(",").as_bytes())?;
    Ok(list)
}

/// Parses a media URL and checks it against the allowed hosts (see [`check`]).
pub fn checked_url(url: &str, allowed: &[String]) -> Result<reqwest::Url, MediaError> {
    let url = reqwest::Url::parse(url.trim()).map_err(|e| MediaError::BadUrl(e.to_string()))?;
    check(&url, allowed)?;
    Ok(url)
}

/// Whether `url` is on the list: its host, or its `host:port`, is listed (a listed host
/// without a port allows only the scheme's default port).
fn check(url: &reqwest::Url, allowed: &[String]) -> Result<(), MediaError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(MediaError::BadUrl(format!("scheme {:?}", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MediaError::BadUrl("credentials in the URL".into()));
    }
    let host = url
        .host_str()
        .map(normalize)
        .ok_or_else(|| MediaError::BadUrl("no host".into()))?;
    let with_port = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    if allowed.contains(&with_port) {
        Ok(())
    } else {
        Err(MediaError::NotAllowed(with_port))
    }
}

/// Fetches a media URL (blocking), processes it as a photo and stores it with its thumbnail.
/// Returns the photo's hash.
pub fn fetch_photo(state: &AppState, url: &str) -> Result<String, MediaError> {
    let allowed = allowed_hosts(state).map_err(MediaError::Storage)?;
    let url = checked_url(url, &allowed)?;
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| MediaError::Fetch(e.to_string()))?;
    let response = client
        .get(url.clone())
        .send()
        .map_err(|e| MediaError::Fetch(e.without_url().to_string()))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(MediaError::Fetch(format!("HTTP {}", response.status())));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_MEDIA_BYTES)
    {
        return Err(MediaError::TooLarge);
    }
    let mut bytes = Vec::new();
    response
        .take(MAX_MEDIA_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| MediaError::Fetch(e.to_string()))?;
    if bytes.len() as u64 > MAX_MEDIA_BYTES {
        return Err(MediaError::TooLarge);
    }
    let config = PhotoConfig {
        limits: PhotoLimits::remote(),
        ..PhotoConfig::default()
    };
    let not_a_photo = |e: gridlink_core::photo::PhotoError| MediaError::NotAPhoto(e.to_string());
    // Refused from its header, before anything is decoded or waits for a turn.
    gridlink_core::photo::probe(&bytes, &config.limits).map_err(not_a_photo)?;
    let photo = {
        let _turn = Turn::take(DECODE_WAIT)?;
        gridlink_core::photo::process(&bytes, &config).map_err(not_a_photo)?
    };
    keep(state, &photo).map_err(MediaError::Storage)?;
    Ok(photo.hash)
}

/// Stores a processed photo and its thumbnail as complete blobs (idempotent).
fn keep(state: &AppState, photo: &ProcessedPhoto) -> StoreResult<()> {
    let blobs = state.blobs();
    let io = |e: crate::blobs::BlobError| match e {
        crate::blobs::BlobError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(e.to_string())
        }
        crate::blobs::BlobError::Unavailable(detail) => StoreError::Unavailable(detail),
        other => StoreError::Database(other.to_string()),
    };
    for (hash, bytes, thumb_of, limits) in [
        (
            &photo.hash,
            &photo.jpeg,
            None,
            PhotoLimits::uploaded_photo(),
        ),
        (
            &photo.thumbnail_hash,
            &photo.thumbnail,
            Some(&photo.hash),
            PhotoLimits::uploaded_thumbnail(),
        ),
    ] {
        if !blobs.has(hash).map_err(io)? {
            let guard = blobs.begin(hash).map_err(io)?;
            let held = blobs.received(hash).map_err(io)?;
            if held > 0 {
                // A partial left by an interrupted attempt: start over.
                blobs.discard_partial(&guard, hash).map_err(io)?;
            }
            blobs.append(&guard, hash, 0, bytes).map_err(io)?;
            blobs
                .complete(&guard, hash, bytes.len() as u64, &limits)
                .map_err(io)?;
        }
        state.store().put_blob(&BlobRow {
            hash: hash.clone(),
            size: bytes.len() as u64,
            kind: if thumb_of.is_some() { "thumb" } else { "photo" }.into(),
            thumb_of: thumb_of.cloned(),
            device_id: "open311".into(),
            received_at_ms: crate::state::now_ms(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_two_media_photos_are_decoded_at_once() {
        let short = Duration::from_millis(30);
        let first = Turn::take(short).unwrap();
        let second = Turn::take(short).unwrap();
        assert!(matches!(Turn::take(short), Err(MediaError::Busy)));
        // A waiting photo gets the turn a finished one gives back.
        let waiting = std::thread::spawn(move || Turn::take(Duration::from_secs(10)).is_ok());
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        assert!(waiting.join().unwrap());
        drop(second);
        let _again = [Turn::take(short).unwrap(), Turn::take(short).unwrap()];
    }

    #[test]
    fn only_listed_hosts_and_ports_over_http_are_fetched() {
        let allowed = vec![
            "media.example.gov.cn".to_owned(),
            "127.0.0.1:8088".to_owned(),
        ];
        let ok = |u: &str| check(&reqwest::Url::parse(u).unwrap(), &allowed);
        assert!(ok("https://media.example.gov.cn/a.jpg").is_ok());
        assert!(ok("http://MEDIA.example.gov.cn./a.jpg").is_ok());
        assert!(ok("http://127.0.0.1:8088/a.jpg").is_ok());
        assert!(matches!(
            ok("http://127.0.0.1/a.jpg"),
            Err(MediaError::NotAllowed(_))
        ));
        assert!(matches!(
            ok("http://127.0.0.1:9999/a.jpg"),
            Err(MediaError::NotAllowed(_))
        ));
        assert!(matches!(
            ok("https://media.example.gov.cn:8443/a.jpg"),
            Err(MediaError::NotAllowed(_))
        ));
        assert!(matches!(
            ok("http://169.254.169.254/latest/meta-data"),
            Err(MediaError::NotAllowed(_))
        ));
        assert!(matches!(
            ok("http://evil.example/media.example.gov.cn"),
            Err(MediaError::NotAllowed(_))
        ));
        assert!(matches!(
            ok("file:///etc/passwd"),
            Err(MediaError::BadUrl(_))
        ));
        assert!(matches!(
            ok("ftp://media.example.gov.cn/a.jpg"),
            Err(MediaError::BadUrl(_))
        ));
        assert!(matches!(
            ok("http://user:pw@media.example.gov.cn/a.jpg"),
            Err(MediaError::BadUrl(_))
        ));
    }
}
