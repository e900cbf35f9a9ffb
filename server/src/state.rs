//! The state every handler shares ([`AppState`]): the store, the merge thread, the blob
//! store, the grid index, the abuse limits, the command centre's state and the metrics; and
//! what it does for every caller (authentication, pushes through the merger). It sits beneath
//! the handlers: no module reaches up to the crate root for it.

use crate::blobs::BlobStore;
use crate::error::ApiError;
use crate::merge::{self, Merger};
use crate::metrics::Metrics;
use crate::store::{self, ServerStore, StoreError};
use crate::{conn, identity, limits, web};
use axum::http::{HeaderMap, header};
use gridlink_core::geo::{GridIndex, GridInfo, LatLon};
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::scope::ScopeKey;
use gridlink_core::sync::wire;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

/// The actor prefix of changes the server writes itself (citizen reports, imports).
pub const SERVER_ACTOR_PREFIX: [u8; gridlink_core::sync::ACTOR_PREFIX_LEN] =
    [0x5e; gridlink_core::sync::ACTOR_PREFIX_LEN];

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
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
pub(crate) const SYNC_TURN_WAIT: Duration = Duration::from_secs(20);

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ServerStore>,
    pub(crate) merges: std::sync::mpsc::Sender<merge::Job>,
    pub(crate) metrics: Metrics,
    pub(crate) config: ServerConfig,
    pub(crate) blobs: Arc<BlobStore>,
    /// The grid polygons, for placing citizen reports (none until a district is imported).
    pub(crate) grid_index: RwLock<Option<Arc<GridIndex>>>,
    pub(crate) limiter: limits::Limiter,
    /// The command centre's sessions, names and cached statistics.
    pub(crate) web: web::WebState,
    /// Actions the server records for a device are written under one actor per device
    /// (`prefix ‖ u32::MAX`): two recorded at once would share a sequence number. One lock per
    /// stripe of devices makes them one after another (each starts from the committed case).
    pub(crate) action_locks: Box<[std::sync::Mutex<()>]>,
    /// Turns for syncs in progress (see [`sync_turns`]).
    pub(crate) sync_turns: tokio::sync::Semaphore,
    /// This installation's history id ([`store::HISTORY_SETTING`]).
    pub(crate) history: String,
    /// The district's rules as stored when this node started ([`crate::store::rules`]).
    pub(crate) rules: crate::store::DistrictRules,
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
        Self::with_blobs(store, blobs, config)
    }

    /// State over a store and a blob store (files or a bucket).
    pub fn with_blobs(
        store: Arc<dyn ServerStore>,
        blobs: Arc<BlobStore>,
        config: ServerConfig,
    ) -> Result<AppState, StoreError> {
        // Uploads abandoned for a week will not resume: their phones have given up or gone.
        match blobs.sweep_partials(std::time::Duration::from_secs(7 * 24 * 3600)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept abandoned partial uploads"),
            Err(e) => tracing::warn!(error = %e, "sweeping partial uploads failed"),
        }
        let history = history_id(&*store)?;
        let rules = crate::store::rules(&*store)?;
        let merger = Merger::new(store.clone(), config.cache_docs, &rules)?;
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
                history,
                rules,
            }),
        };
        state.reload_grid_index()?;
        Ok(state)
    }

    /// The district's rules this node follows (read when it started).
    pub fn rules(&self) -> &crate::store::DistrictRules {
        &self.inner.rules
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

    /// This installation's history id, which a restore from a backup makes anew.
    pub fn history(&self) -> &str {
        &self.inner.history
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

    /// Hands a push to the merge thread and waits for its outcome (committed, or failed whole).
    pub(crate) fn push(
        &self,
        pusher: &Pusher,
        actor_prefix: &[u8],
        docs: Vec<wire::PushDoc>,
        now_ms: i64,
        origin: merge::Origin,
    ) -> Result<merge::PushOutcome, StoreError> {
        let (reply, outcome) = std::sync::mpsc::channel();
        let metrics = &self.inner.metrics;
        let started = std::time::Instant::now();
        metrics.merge_queue.inc();
        let sent = self
            .inner
            .merges
            .send(merge::Job::Push {
                pusher: pusher.clone(),
                actor_prefix: actor_prefix.to_vec(),
                docs,
                now_ms,
                origin,
                reply,
            })
            .map_err(|_| StoreError::Database("the merge thread has stopped".into()));
        let answered = sent.and_then(|()| {
            outcome
                .recv()
                .map_err(|_| StoreError::Database("the merge thread failed".into()))?
        });
        metrics.merge_queue.dec();
        metrics
            .merge_seconds
            .observe(started.elapsed().as_secs_f64());
        let retry = match &answered {
            Err(StoreError::Stale { .. }) => Some("stale"),
            Err(StoreError::Unavailable(_)) => Some("unavailable"),
            _ => None,
        };
        if let Some(reason) = retry {
            metrics
                .merge_retries
                .get_or_create(&Metrics::label("reason", reason))
                .inc();
        }
        answered
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
}

/// The store's history id, made now if it has none (a new installation, or one from before
/// history ids).
fn history_id(store: &dyn ServerStore) -> Result<String, StoreError> {
    if let Some(id) = store
        .setting(store::HISTORY_SETTING)?
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|id| !id.is_empty())
    {
        return Ok(id);
    }
    let id = store::backup::new_history_id();
    store.put_setting(store::HISTORY_SETTING, id.as_bytes())?;
    Ok(id)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
