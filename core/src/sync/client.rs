//! The phone's sync client: [`Store::sync`] pushes and pulls until caught up, retrying with
//! exponential back-off and jitter, reporting progress to an observer.
//!
//! The network sits behind [`Transport`] (one blocking `post`), so tests wrap the real HTTP
//! transport in one that drops, duplicates, delays or reorders responses. Every request
//! carries an id the server echoes; a response to another request (late, duplicated,
//! reordered) is set aside and the request is sent again, which the server treats as a
//! harmless repeat.

use super::wire::{
    self, EnrollRequest, EnrollResponse, ErrorBody, PROTOCOL_VERSION, SyncRequest, SyncResponse,
};
use crate::error::{Error, Result};
use crate::store::Store;
use std::time::Duration;

/// A failed exchange with the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer (connection refused or reset, timeout, DNS): worth retrying.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {} ({})", body.message, body.code)]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's `{code, message}`.
        body: ErrorBody,
    },
}

/// Whether the same request may succeed later after this HTTP status: the server's own
/// trouble (5xx, among them 503 unavailable and 507 storage full), too many requests, a
/// time-out. Everything else is an answer about the request itself.
pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

impl TransportError {
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            TransportError::Unreachable(_) => true,
            TransportError::Status { status, .. } => is_transient_status(*status),
        }
    }
}

/// Moves one request body to the server and its response body back.
pub trait Transport: Send + Sync {
    /// Posts `body` to `path` (e.g. `/v1/sync`) and returns the response body of a 2xx answer.
    fn post(&self, path: &str, body: &[u8]) -> std::result::Result<Vec<u8>, TransportError>;
    /// Gets `path` (e.g. `/v1/blobs/{hash}?…`) and returns the body of a 2xx answer.
    fn get(&self, path: &str) -> std::result::Result<Vec<u8>, TransportError>;
    /// Puts raw bytes (`application/octet-stream`, a blob chunk) to `path`.
    fn put(&self, path: &str, body: &[u8]) -> std::result::Result<Vec<u8>, TransportError>;
}

/// The real transport: HTTPS (or HTTP on a LAN/loopback) with reqwest and rustls.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    base_url: String,
    token: Option<String>,
}

impl HttpTransport {
    /// A transport to `base_url` (e.g. `https://grid.example.cn`), without credentials (for
    /// enrollment).
    pub fn new(base_url: &str) -> Result<HttpTransport> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("gridlink-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP 客户端 / HTTP client: {e}")))?;
        Ok(HttpTransport {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    /// The same transport carrying a device token.
    pub fn with_token(mut self, token: &str) -> HttpTransport {
        self.token = Some(token.to_owned());
        self
    }
}

impl HttpTransport {
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&[u8], &'static str)>,
    ) -> std::result::Result<Vec<u8>, TransportError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some((body, content_type)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.to_vec());
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .map_err(|e| TransportError::Unreachable(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            code: "http_error".into(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        });
        Err(TransportError::Status {
            status: status.as_u16(),
            body,
        })
    }
}

impl Transport for HttpTransport {
    fn post(&self, path: &str, body: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
        self.send(
            reqwest::Method::POST,
            path,
            Some((body, wire::CONTENT_TYPE)),
        )
    }

    fn get(&self, path: &str) -> std::result::Result<Vec<u8>, TransportError> {
        self.send(reqwest::Method::GET, path, None)
    }

    fn put(&self, path: &str, body: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
        self.send(
            reqwest::Method::PUT,
            path,
            Some((body, "application/octet-stream")),
        )
    }
}

/// Retry policy: exponential back-off with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's ceiling.
    pub first: Duration,
    /// No delay exceeds this.
    pub max: Duration,
    /// Attempts per exchange before giving up with [`Error::Network`].
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
            attempts: 8,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based): uniform in `[0, min(max, first·2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// How [`Store::sync`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Retry policy for each exchange.
    pub backoff: Backoff,
    /// About how many bytes of changes one request pushes.
    pub max_push_bytes: usize,
    /// How many pulled bytes one response may carry.
    pub max_pull_bytes: u64,
    /// Round trips after which a sync stops even if not caught up (the next sync goes on).
    pub max_rounds: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            backoff: Backoff::default(),
            max_push_bytes: 2 << 20,
            max_pull_bytes: 4 << 20,
            max_rounds: 500,
        }
    }
}

/// Running totals of one sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Round trips that got a response.
    pub round_trips: u32,
    /// Documents pushed (counting a document again if it is pushed again).
    pub docs_sent: u64,
    /// Documents that changed from pulled changes.
    pub docs_received: u64,
    /// Documents the server confirmed.
    pub docs_accepted: u64,
    /// Documents the server refused.
    pub docs_rejected: u64,
    /// Documents deleted because they left the scope.
    pub docs_removed: u64,
    /// Documents the server could not take for its own reasons (kept, pushed again later).
    pub docs_deferred: u64,
    /// Request bytes on the wire.
    pub bytes_sent: u64,
    /// Response bytes on the wire.
    pub bytes_received: u64,
    /// Attempts that failed and were retried.
    pub retries: u32,
}

/// What a finished sync did.
pub type SyncReport = SyncProgress;

/// Told about a sync while it runs (the apps show a progress bar and "retrying in 8 s").
pub trait SyncObserver: Send + Sync {
    /// After each round trip.
    fn progress(&self, progress: &SyncProgress) {
        let _ = progress;
    }
    /// Before waiting to retry.
    fn retrying(&self, attempt: u32, delay: Duration, error: &str) {
        let _ = (attempt, delay, error);
    }
}

impl SyncObserver for () {}

/// Exchanges an enrollment code for device credentials. The caller then opens the store for
/// the returned user and role and calls [`Store::set_enrollment`].
pub fn enroll(
    transport: &dyn Transport,
    code: &str,
    device_id: &str,
    device_name: &str,
) -> Result<EnrollResponse> {
    let request = EnrollRequest {
        protocol: PROTOCOL_VERSION,
        code: code.trim().to_owned(),
        device_id: device_id.to_owned(),
        device_name: device_name.to_owned(),
    };
    let body = transport
        .post("/v1/enroll", &wire::encode(&request))
        .map_err(into_error)?;
    let response: EnrollResponse = wire::decode(&body, wire::MAX_MESSAGE_BYTES)?;
    wire::check_protocol(response.protocol)?;
    Ok(response)
}

pub(crate) fn into_error(e: TransportError) -> Error {
    match e {
        TransportError::Unreachable(message) => Error::Network(message),
        TransportError::Status { status, body } => Error::Server {
            status,
            code: body.code,
            message: body.message,
        },
    }
}

impl Store {
    /// Pushes every unacknowledged change and pulls everything in scope, round after round,
    /// until caught up (or `options.max_rounds`). Each exchange is retried with back-off; each
    /// response is applied in one transaction. A failure leaves everything stored as it was
    /// after the last applied response, and the next sync goes on from there.
    pub fn sync(
        &self,
        transport: &dyn Transport,
        options: &SyncOptions,
        observer: &dyn SyncObserver,
    ) -> Result<SyncReport> {
        if self.credentials()?.is_none() {
            return Err(Error::Config(
                "设备尚未登记，请先用登记码登录 / this device has not enrolled: sign in with an enrollment code first".into(),
            ));
        }
        let mut progress = SyncProgress::default();
        for _ in 0..options.max_rounds {
            let batch = self.prepare_push(options.max_push_bytes)?;
            let request = SyncRequest {
                protocol: PROTOCOL_VERSION,
                request_id: uuid::Uuid::new_v4().to_string(),
                push: batch.docs.clone(),
                cursor: self.cursor()?,
                max_pull_bytes: options.max_pull_bytes,
                history: self.server_history()?,
            };
            let body = wire::encode(&request);
            let response = self.exchange(
                transport,
                &body,
                &request.request_id,
                options,
                observer,
                &mut progress,
            )?;
            let outcome = self.apply_response(&response, &batch)?;
            progress.round_trips += 1;
            progress.docs_sent += batch.docs.len() as u64;
            progress.docs_received += outcome.received;
            progress.docs_accepted += outcome.accepted;
            progress.docs_rejected += outcome.rejected;
            progress.docs_removed += outcome.removed;
            progress.docs_deferred += outcome.deferred;
            observer.progress(&progress);
            let caught_up = !response.more
                && batch.left_out == 0
                && outcome.reapplied == 0
                && outcome.kept_for_push == 0
                && !outcome.restored
                && response.rejections.len() as u64 == outcome.deferred;
            if caught_up {
                return Ok(progress);
            }
        }
        Ok(progress)
    }

    fn exchange(
        &self,
        transport: &dyn Transport,
        body: &[u8],
        request_id: &str,
        options: &SyncOptions,
        observer: &dyn SyncObserver,
        progress: &mut SyncProgress,
    ) -> Result<SyncResponse> {
        let mut last = String::new();
        // The server's own answer when the last attempt got one (a full disk: 507), so the
        // user is told what it said rather than that it cannot be reached.
        let mut answered = None;
        for attempt in 1..=options.backoff.attempts.max(1) {
            if attempt > 1 {
                let delay = options.backoff.delay(attempt - 1);
                observer.retrying(attempt, delay, &last);
                progress.retries += 1;
                std::thread::sleep(delay);
            }
            progress.bytes_sent += body.len() as u64;
            let bytes = match transport.post("/v1/sync", body) {
                Ok(bytes) => bytes,
                Err(e) if e.is_transient() => {
                    last = e.to_string();
                    answered = matches!(e, TransportError::Status { .. }).then_some(e);
                    continue;
                }
                Err(e) => return Err(into_error(e)),
            };
            answered = None;
            progress.bytes_received += bytes.len() as u64;
            match wire::decode::<SyncResponse>(&bytes, wire::MAX_MESSAGE_BYTES) {
                Ok(response) if response.protocol != PROTOCOL_VERSION => {
                    wire::check_protocol(response.protocol)?;
                }
                Ok(response) if response.request_id == request_id => return Ok(response),
                // A response to another request: late, duplicated or reordered. Set aside.
                Ok(_) => last = "stale response".into(),
                // Damaged in transit: ask again.
                Err(e) => last = e.to_string(),
            }
        }
        Err(answered.map_or(Error::Network(last), into_error))
    }
}
