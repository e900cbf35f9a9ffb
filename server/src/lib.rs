//! gridlink-server: the district's sync server. It merges what phones did offline into the
//! master record (validating every push with gridlink-core's own rules), sends each device
//! what its user's grants cover, and registers devices.
//!
//! [`app`] builds the router (tests call it without a socket); [`serve`] runs it with
//! graceful shutdown. Storage is behind [`store::ServerStore`]; the merge engine is
//! [`merge::Merger`].
//!
//! Endpoints: `POST /v1/enroll`, `POST /v1/sync` (zlib-compressed CBOR, see
//! `gridlink_core::sync::wire`), photo upload and download ([`photos`]), citizen registration
//! and reports ([`citizen`]), Open311 GeoReport v2 ([`open311`]), the command centre's pages
//! ([`web`]), `GET /healthz`, `GET /metrics`. Every request passes the abuse
//! limits ([`limits`]) first.

#![forbid(unsafe_code)]

pub mod actions;
pub mod blobs;
pub mod citizen;
pub mod conn;
pub mod demo;
pub mod error;
pub mod faults;
pub mod identity;
pub mod limits;
pub mod media;
pub mod merge;
pub mod metrics;
pub mod open311;
pub mod overdue;
pub mod photos;
pub mod records;
pub mod scores;
pub mod store;
pub mod web;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State, rejection::BytesRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use blobs::BlobStore;
use error::ApiError;
use gridlink_core::geo::{GridIndex, GridInfo, LatLon};
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::scope::ScopeKey;
use gridlink_core::sync::wire::{
    self, Cursor, EnrollRequest, EnrollResponse, SyncRequest, SyncResponse,
};
use merge::Merger;
use metrics::Metrics;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use store::{NewDevice, ServerStore, StoreError};

/// Limits and sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest request body accepted (compressed), bytes.
    pub max_body_bytes: usize,
    /// Largest pulled payload in one response, bytes.
    pub max_pull_bytes: u64,
    /// Documents kept loaded in memory.
    pub cache_docs: usize,
    /// Largest photo blob, bytes (a processed photo is ~200–400 KB).
    pub max_photo_bytes: u64,
    /// Largest thumbnail blob, bytes.
    pub max_thumbnail_bytes: u64,
    /// Citizen registrations allowed per phone number.
    pub max_registrations_per_phone: u32,
    /// How long a chunk upload may go without receiving a byte before it ends as if the
    /// connection were cut (what arrived is kept; the blob's lock is released), ms.
    pub chunk_idle_ms: u64,
    /// Per-address and per-device request limits.
    pub rate_limits: limits::RateLimits,
    /// Escalate overdue grid and village cases automatically every this many minutes (0: off).
    pub auto_escalate_minutes: u64,
    /// Connections per client address, and how long a silent connection is kept.
    pub connections: conn::ConnLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 32 << 20,
            max_pull_bytes: 8 << 20,
            cache_docs: 4096,
            max_photo_bytes: gridlink_core::photo::MAX_PHOTO_BYTES,
            max_thumbnail_bytes: gridlink_core::photo::MAX_THUMBNAIL_BYTES,
            max_registrations_per_phone: 5,
            chunk_idle_ms: 30_000,
            rate_limits: limits::RateLimits::default(),
            auto_escalate_minutes: 0,
            connections: conn::ConnLimits::default(),
        }
    }
}

/// Cursor keys allowed beyond the device's grants and withdrawn grants (see `sync_blocking`).
const CURSOR_KEY_SLACK: usize = 32;

/// The actor prefix of changes the server writes itself (citizen reports, imports).
pub const SERVER_ACTOR_PREFIX: [u8; gridlink_core::sync::ACTOR_PREFIX_LEN] =
    [0x5e; gridlink_core::sync::ACTOR_PREFIX_LEN];

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// Stripes of [`AppState::action_lock`].
const ACTION_LOCK_STRIPES: usize = 64;

/// Syncs decoded, merged and answered at once: twice the cores, at least four. Merges are one
/// at a time anyway (one merger), so more would only add memory: each sync in progress holds
/// its inflated body (up to [`wire::MAX_SYNC_REQUEST_BYTES`]) and the pull it builds. The rest
/// wait for a turn, up to [`SYNC_TURN_WAIT`], then are answered 503 with `Retry-After`.
fn sync_turns() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
}

/// How long a sync waits for a turn before it is told the server is busy.
const SYNC_TURN_WAIT: Duration = Duration::from_secs(20);

struct Inner {
    store: Arc<dyn ServerStore>,
    merges: std::sync::mpsc::Sender<merge::Job>,
    metrics: Metrics,
    config: ServerConfig,
    blobs: Arc<BlobStore>,
    /// The grid polygons, for placing citizen reports (none until a district is imported).
    grid_index: RwLock<Option<Arc<GridIndex>>>,
    limiter: limits::Limiter,
    /// The command centre's sessions, names and cached statistics.
    web: web::WebState,
    /// Actions the server records for a device are written under one actor per device
    /// (`prefix ‖ u32::MAX`): two recorded at once would share a sequence number. One lock per
    /// stripe of devices makes them one after another (each starts from the committed case).
    action_locks: Box<[std::sync::Mutex<()>]>,
    /// Turns for syncs in progress (see [`sync_turns`]).
    sync_turns: tokio::sync::Semaphore,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl AppState {
    /// State over a store, with the blob store in `blob_dir`.
    pub fn new(
        store: Arc<dyn ServerStore>,
        blob_dir: &std::path::Path,
        config: ServerConfig,
    ) -> Result<AppState, StoreError> {
        let blobs = BlobStore::open(blob_dir)
            .map_err(|e| StoreError::Database(format!("{}: {e}", blob_dir.display())))?;
        // Uploads abandoned for a week will not resume: their phones have given up or gone.
        match blobs.sweep_partials(std::time::Duration::from_secs(7 * 24 * 3600)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept abandoned partial uploads"),
            Err(e) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
        }
        let merger = Merger::new(store.clone(), config.cache_docs)?;
        let merges = merge::spawn(merger)
            .map_err(|e| StoreError::Database(format!("starting the merge thread: {e}")))?;
        let state = AppState {
            inner: Arc::new(Inner {
                store,
                merges,
                metrics: Metrics::new(),
                config,
                blobs,
                grid_index: RwLock::new(None),
                limiter: limits::Limiter::default(),
                web: web::WebState::default(),
                action_locks: (0..ACTION_LOCK_STRIPES)
                    .map(|_| std::sync::Mutex::new(()))
                    .collect(),
                sync_turns: tokio::sync::Semaphore::new(sync_turns()),
            }),
        };
        state.reload_grid_index()?;
        Ok(state)
    }

    /// Holds off other actions recorded for the same device until the guard drops.
    pub(crate) fn action_lock(&self, device_id: &str) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device_id.hash(&mut hasher);
        let locks = &self.inner.action_locks;
        let lock = &locks[(hasher.finish() % locks.len() as u64) as usize];
        // A panic while holding it left nothing half-done that the lock protects.
        lock.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<BlobStore> {
        &self.inner.blobs
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &limits::Limiter {
        &self.inner.limiter
    }

    /// Reads the grid polygons (setting `grid_shapes`) into the index used to place citizen
    /// reports, and the names the command centre shows (settings `grid_shapes` and
    /// `district_admin`).
    pub fn reload_grid_index(&self) -> Result<(), StoreError> {
        let shapes = match self.inner.store.setting("grid_shapes")? {
            Some(bytes) => Some(
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Database(format!("grid_shapes: {e}")))?,
            ),
            None => None,
        };
        let index = match &shapes {
            Some(text) => {
                Some(Arc::new(GridIndex::from_geojson(text).map_err(|e| {
                    StoreError::Database(format!("grid_shapes: {e}"))
                })?))
            }
            None => None,
        };
        *self
            .inner
            .grid_index
            .write()
            .unwrap_or_else(|p| p.into_inner()) = index;
        self.inner.web.set_directory(web::Directory::load(
            self.inner.store.setting("district_admin")?.as_deref(),
            shapes.as_deref(),
        )?);
        Ok(())
    }

    /// The command centre's state.
    pub fn web(&self) -> &web::WebState {
        &self.inner.web
    }

    /// The grid containing a point.
    pub fn grid_at(&self, point: LatLon) -> Option<String> {
        self.place_at(point).map(|g| g.id)
    }

    /// The grid containing a point, with its village and town (from the in-memory index).
    pub fn place_at(&self, point: LatLon) -> Option<GridInfo> {
        let index = self
            .inner
            .grid_index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        index.grid_at(point).cloned()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ServerStore> {
        &self.inner.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs `f` on the merge thread, between batches, and returns its result.
    pub fn with_merger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Merger) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner
            .merges
            .send(merge::Job::Run(Box::new(move |m| {
                let _ = tx.send(f(m));
            })))
            .map_err(|_| StoreError::Database("the merge thread has stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Database("the merge thread failed".into()))
    }

    /// Pushes changes as an authenticated device (the server recording its actions), through
    /// the ordinary merge.
    pub fn push_as(
        &self,
        pusher: &Pusher,
        actor_prefix: &[u8],
        docs: Vec<wire::PushDoc>,
    ) -> Result<merge::PushOutcome, ApiError> {
        self.push(pusher, actor_prefix, docs, now_ms())
    }

    /// Hands a push to the merge thread and waits for its outcome (committed, or failed whole).
    fn push(
        &self,
        pusher: &Pusher,
        actor_prefix: &[u8],
        docs: Vec<wire::PushDoc>,
        now_ms: i64,
    ) -> Result<merge::PushOutcome, ApiError> {
        let (reply, outcome) = std::sync::mpsc::channel();
        self.inner
            .merges
            .send(merge::Job::Push {
                pusher: pusher.clone(),
                actor_prefix: actor_prefix.to_vec(),
                docs,
                now_ms,
                reply,
            })
            .map_err(|_| ApiError::Internal("the merge thread has stopped".into()))?;
        outcome
            .recv()
            .map_err(|_| ApiError::Internal("the merge thread failed".into()))?
            .map_err(ApiError::from)
    }

    /// What an authenticated device may do: its user, role and grants.
    pub fn pusher(&self, device: &store::DeviceAuth) -> Result<Pusher, ApiError> {
        Ok(Pusher {
            user_id: device.user.id.clone(),
            role: device.user.role,
            device_id: device.device_id.clone(),
            scopes: {
                let mut scopes = self.inner.store.grants(&device.user.id)?;
                scopes.extend(ScopeKey::implicit(&device.user.id, device.user.role));
                scopes
            },
        })
    }

    /// The device a request's bearer token belongs to.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<store::DeviceAuth, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("缺少设备令牌 / the device token is missing".into())
            })?;
        self.inner
            .store
            .device_by_token(&identity::hash_secret(token))?
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "设备令牌无效或设备已被停用，请重新登记 / the device token is unknown or the device was revoked: enroll again".into(),
                )
            })
    }

    /// Handles one sync request body for an authenticated device.
    pub fn sync_blocking(
        &self,
        device: &store::DeviceAuth,
        body: &[u8],
    ) -> Result<SyncResponse, ApiError> {
        if device.user.role == gridlink_core::case::Role::Citizen {
            return Err(ApiError::Forbidden(
                "市民账号通过随手拍接口上报，不同步案件文档 / citizen accounts report through /v1/citizen, they do not sync case documents".into(),
            ));
        }
        let request: SyncRequest = wire::decode(body, wire::MAX_SYNC_REQUEST_BYTES)?;
        wire::check_protocol(request.protocol)?;
        if request.push.len() > wire::MAX_PUSH_DOCS {
            return Err(ApiError::TooLarge(format!(
                "一次最多推送 {} 个文档 / at most {} documents per push",
                wire::MAX_PUSH_DOCS,
                wire::MAX_PUSH_DOCS
            )));
        }
        let store = &self.inner.store;
        let pusher = self.pusher(device)?;
        let grants = pusher.scopes.clone();
        // Keys the device read before and whose grant was withdrawn: their documents leave.
        // Only withdrawn keys count, so naming keys in a cursor reveals nothing.
        let revoked = if request.cursor.0.is_empty() {
            BTreeSet::new()
        } else {
            store.revoked_grants(&device.user.id)?
        };
        // Checked before the push is merged, so a refused request changes nothing. A cursor
        // this server gave names the keys the device reads (each response's cursor holds only
        // those); one kept from before a change of grants may name a few more, hence the slack.
        let most = grants.len() + revoked.len() + CURSOR_KEY_SLACK;
        if request.cursor.0.len() > most {
            return Err(ApiError::BadRequest(format!(
                "游标包含 {} 个范围，多于本设备可读的 {most} 个 / the cursor names {} scopes, more than the {most} this device may read",
                request.cursor.0.len(),
                request.cursor.0.len(),
            )));
        }
        let now = now_ms();
        let pushed = if request.push.is_empty() {
            merge::PushOutcome::default()
        } else {
            self.push(&pusher, &device.actor_prefix, request.push, now)?
        };
        let m = &self.inner.metrics;
        m.docs_merged.inc_by(pushed.acks.len() as u64);
        for r in &pushed.rejections {
            m.docs_rejected
                .get_or_create(&Metrics::label("code", r.code.code()))
                .inc();
        }

        let from: Vec<(ScopeKey, u64)> = grants
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    request.cursor.0.get(&k.to_string()).copied().unwrap_or(0),
                )
            })
            .collect();
        let left: Vec<ScopeKey> = request
            .cursor
            .0
            .keys()
            .filter_map(|k| k.parse::<ScopeKey>().ok())
            .filter(|k| !grants.contains(k) && revoked.contains(k))
            .collect();
        let kept: Vec<ScopeKey> = grants.iter().cloned().collect();
        let removed = store.docs_leaving(&left, &kept)?;
        let budget = request
            .max_pull_bytes
            .clamp(1, self.inner.config.max_pull_bytes);
        let page = store.pull(&from, &device.device_id, budget)?;
        m.docs_pulled.inc_by(page.docs.len() as u64);
        Ok(SyncResponse {
            protocol: wire::PROTOCOL_VERSION,
            request_id: request.request_id,
            acks: pushed.acks,
            rejections: pushed.rejections,
            pulled: page.docs,
            removed,
            cursor: Cursor(
                page.positions
                    .into_iter()
                    .map(|(k, p)| (k.to_string(), p))
                    .collect(),
            ),
            more: page.more,
        })
    }

    /// Redeems an enrollment code.
    pub fn enroll_blocking(&self, body: &[u8]) -> Result<EnrollResponse, ApiError> {
        let request: EnrollRequest = wire::decode(body, 64 << 10)?;
        wire::check_protocol(request.protocol)?;
        if uuid::Uuid::parse_str(&request.device_id).is_err() {
            return Err(ApiError::BadRequest(format!(
                "设备编号必须是 UUID / the device id must be a UUID: {:?}",
                request.device_id.chars().take(64).collect::<String>()
            )));
        }
        let name: String = request.device_name.trim().chars().take(100).collect();
        let token = identity::new_token().map_err(ApiError::Internal)?;
        let device = NewDevice {
            id: request.device_id.clone(),
            name,
            token_hash: identity::hash_secret(&token),
            actor_prefix: identity::new_actor_prefix().map_err(ApiError::Internal)?,
        };
        let code_hash = identity::hash_secret(&identity::normalize_code(&request.code));
        let user = match self.inner.store.enroll(&code_hash, &device, now_ms()) {
            Ok(user) => user,
            // Another user's active device id.
            Err(StoreError::Conflict(message)) => {
                self.inner
                    .metrics
                    .enrollments
                    .get_or_create(&Metrics::label("outcome", "refused"))
                    .inc();
                return Err(ApiError::Forbidden(message));
            }
            Err(StoreError::NotFound(_)) => {
                self.inner
                    .metrics
                    .enrollments
                    .get_or_create(&Metrics::label("outcome", "refused"))
                    .inc();
                return Err(ApiError::Forbidden(
                    "登记码无效、已使用或已过期 / the enrollment code is unknown, used or expired"
                        .into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.inner
            .metrics
            .enrollments
            .get_or_create(&Metrics::label("outcome", "ok"))
            .inc();
        let scopes: BTreeSet<ScopeKey> = self.inner.store.grants(&user.id)?;
        Ok(EnrollResponse {
            protocol: wire::PROTOCOL_VERSION,
            device_id: device.id,
            token,
            actor_prefix: device.actor_prefix,
            user_id: user.id,
            user_name: user.name,
            role: user.role,
            scopes: scopes.iter().map(ToString::to_string).collect(),
        })
    }
}

/// Runs blocking work (SQLite, Automerge) off the async workers; a panicked task is an
/// internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An endpoint anyone may call before enrolling: its body is at most
/// [`MAX_ANONYMOUS_BODY_BYTES`], refused from the announced length before any of it is read
/// (and, for a body sent without one, as soon as it grows past the bound).
fn anonymous(
    route: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_ANONYMOUS_BODY_BYTES))
        .layer::<_, std::convert::Infallible>(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_ANONYMOUS_BODY_BYTES,
        ))
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/enroll", anonymous(post(enroll)))
        .route("/v1/sync", post(sync))
        .route(
            "/v1/blobs/{hash}",
            get(photos::blob_status)
                .put(photos::blob_put)
                .layer(DefaultBodyLimit::max(wire::MAX_CHUNK_BYTES)),
        )
        .route("/v1/photos/{hash}", get(photos::photo))
        .route("/v1/photos/{hash}/thumb", get(photos::thumbnail))
        .route("/v1/citizen/register", anonymous(post(citizen::register)))
        .route(
            "/v1/citizen/reports",
            post(citizen::submit).get(citizen::mine),
        )
        .route("/v1/cases/overdue", get(overdue::list))
        .route("/v1/cases/{id}/reporter", get(citizen::reporter))
        .route("/v1/scores", get(scores::scores))
        .route("/v1/cases/{id}/events", post(actions::record))
        .route(
            "/v1/templates",
            get(records::list_templates).post(records::post_template),
        )
        .route("/v1/patrols/coverage", get(records::coverage))
        .route("/v1/grids", get(records::grid_map))
        .route(
            "/open311/v2/{file}",
            anonymous(get(open311::resource).post(open311::post_request)),
        )
        .route("/open311/v2/services/{file}", get(open311::service))
        .route("/open311/v2/requests/{file}", get(open311::request))
        .route("/open311/v2/tokens/{file}", get(open311::token))
        .merge(web::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit,
        ))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (a sync being merged completes and is answered) before returning. Connections are
/// HTTP/1.1 through [`conn::Capped`] (per-address cap, idle time-out), and a request's headers
/// must arrive within [`conn::ConnLimits::header_deadline`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let minutes = state.inner.config.auto_escalate_minutes;
    let escalation = (minutes > 0).then(|| {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(minutes * 60));
            loop {
                every.tick().await;
                let state = state.clone();
                let run = tokio::task::spawn_blocking(move || {
                    overdue::escalate_overdue(&state, now_ms())
                })
                .await;
                if let Ok(Err(e)) = run {
                    tracing::warn!(error = %e, "automatic escalation failed");
                }
            }
        })
    });
    let limits = state.inner.config.connections;
    let mut listener = conn::Capped::new(listener, limits);
    let router = app(state);
    // HTTP/1.1 as axum::serve would, plus the header deadline it does not set.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_deadline);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // The client's address rides in each request's extensions, as axum's own
        // `into_make_service_with_connect_info` does: wrapping the router service costs an
        // `Arc` clone, where `Router::layer` would rebuild every route for every connection
        // (tens of kilobytes each, multiplied by every connection a slow client holds).
        let service = hyper_util::service::TowerToHyperService::new(
            tower_http::add_extension::AddExtension::new(
                router.clone(),
                axum::extract::ConnectInfo(addr),
            ),
        );
        let connection =
            connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %addr, "connection ended");
            }
        });
    }
    // No new connections; the requests in flight finish and are answered.
    drop(listener);
    connections.shutdown().await;
    if let Some(task) = escalation {
        task.abort();
    }
    Ok(())
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(wire::ErrorBody {
            code: "not_found".into(),
            message: "没有这个地址 / no such endpoint".into(),
        }),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.inner.store.clone();
    let docs = tokio::task::spawn_blocking(move || store.doc_count())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(axum::Json(serde_json::json!({ "status": "ok", "documents": docs })).into_response())
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
        .into_response()
}

pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("请求过大 / the request body is too large".into())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

/// How long a client may take to send a request body once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads a body the handler takes only after it has authenticated the request, so an
/// unauthenticated client cannot make the server buffer megabytes: at most `limit` bytes,
/// within [`BODY_READ_TIMEOUT`].
/// Most bytes of a request body other than a sync or a blob chunk (an event, a citizen's report,
/// a checklist template, a form): these are small by nature.
pub const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

/// Most bytes of a body sent before any authentication (enrollment, a citizen registering, an
/// Open311 POST): a code, a name, a phone number, a short description.
pub const MAX_ANONYMOUS_BODY_BYTES: usize = 64 << 10;

/// Authenticates the device from `headers` (off the runtime), then reads the body (at most
/// `limit`, within [`BODY_READ_TIMEOUT`]): a client that is not enrolled costs no body.
pub(crate) async fn authenticated_body(
    state: &AppState,
    headers: HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(store::DeviceAuth, Bytes), ApiError> {
    let device = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.authenticate(&headers))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
    };
    let body = read_body_after_auth(body, limit).await?;
    Ok((device, body))
}

pub(crate) async fn read_body_after_auth(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::refused(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "请求体发送过慢 / the request body arrived too slowly",
        )),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Err(ApiError::TooLarge(
                    "请求过大 / the request body is too large".into(),
                ))
            } else {
                Err(ApiError::BadRequest(format!(
                    "请求体读取失败 / the request body could not be read: {e}"
                )))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

pub(crate) fn cbor(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response()
}

async fn enroll(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let response = blocking(move || state.enroll_blocking(&body)).await?;
    Ok(cbor(wire::encode(&response)))
}

async fn sync(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let m = &state.inner.metrics;
    m.in_flight.inc();
    let result = async {
        let (device, body) =
            authenticated_body(&state, headers, body, state.inner.config.max_body_bytes).await?;
        m.bytes_in.inc_by(body.len() as u64);
        let _turn = tokio::time::timeout(SYNC_TURN_WAIT, state.inner.sync_turns.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "服务器繁忙，你的工作保留在设备上，稍后自动重发 / the server is busy: your work stays on the device and is sent again later",
                )
            })?;
        let state = state.clone();
        let response = tokio::task::spawn_blocking(move || {
            state
                .sync_blocking(&device, &body)
                .map(|r| wire::encode(&r))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        Ok::<_, ApiError>(response)
    }
    .await;
    m.in_flight.dec();
    m.sync_seconds.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(bytes) => {
            m.sync_requests
                .get_or_create(&Metrics::label("outcome", "ok"))
                .inc();
            m.bytes_out.inc_by(bytes.len() as u64);
            cbor(bytes)
        }
        Err(e) => {
            m.sync_requests
                .get_or_create(&Metrics::label("outcome", e.code()))
                .inc();
            e.into_response()
        }
    }
}
