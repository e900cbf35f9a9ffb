//! The phone's session: who is signed in on this phone, and everything that follows from it.
//! An app holds one [`PhoneSession`] (the bindings' `FieldApp` wraps it and only converts
//! types).
//!
//! - **Sign-in** (an enrollment code, a citizen registration, or an enrollment obtained
//!   elsewhere) opens the user's store and keeps a sign-in record beside the database
//!   (`<db>.session.json`), written atomically, so the next start reopens the same user's data.
//! - **A damaged sign-in** (an unreadable record, a database without credentials, a database
//!   with no record at all) is set aside, renamed and kept for support, never opened for the
//!   next user and never deleted; a database this build cannot read (a newer app's, a
//!   damaged file) is left where it is and the error says so.
//! - **Sign-out** waits for a running sync and for calls in flight, refuses while work has not
//!   reached the server unless the user chose to discard it, removes the user's files, and
//!   retires the device id: the server ties a device id to one user, so the next sign-in
//!   registers a fresh one.
//! - **Syncs** run one at a time, blocking ([`PhoneSession::sync`]) or on the session's own
//!   background thread ([`PhoneSession::in_background`]), which outlives a panicking job.
//! - **The grid map** is kept beside the database and loaded at start.
//! - **The camera's files** are written to the session's photo directory and taken from
//!   there only ([`PhoneSession::capture_camera_file`]), since a captured file is deleted
//!   once uploaded.
//! - **What needs attention**: the documents the server refused or will be sent again, and
//!   every refused edit with what it was, newest first ([`PhoneSession::refused_edits`]).

use crate::case::{Case, Role, Source};
use crate::error::{Error, Result};
use crate::geo::GridIndex;
use crate::store::{CitizenReportState, NewCase, OutboxState, PhotoState, Store, StoreConfig};
use crate::sync::wire::EnrollResponse;
use crate::sync::{
    Backoff, CitizenSyncReport, HttpTransport, PhotoQueueObserver, SyncObserver, SyncOptions,
    SyncReport, Transport, UploadOptions, UploadReport,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

/// Why the session cannot do what was asked: what the screen does about it follows from the
/// variant (sign in again, wait, sync first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Nobody is signed in.
    #[error("尚未登录，请先用登记码登录 / not signed in: sign in with an enrollment code")]
    NotSignedIn,
    /// The sign-in record or the phone's enrollment is damaged or missing: it was set aside.
    #[error("{0}")]
    SignInAgain(String),
    /// Somebody is signed in already: sign out first to change user.
    #[error(
        "本机已登录，如需换人请先退出 / this phone is signed in: sign out first to change user"
    )]
    AlreadySignedIn,
    /// Work has not reached the server; sign-out would lose it.
    #[error(
        "还有 {count} 项工作未同步，请先同步 / {count} items have not reached the server: sync first"
    )]
    UnsentWork {
        /// Documents, photos and citizen reports not yet on the server.
        count: usize,
    },
    /// Calls still hold the store: try again in a moment.
    #[error(
        "手机仍在处理数据，请稍后再退出 / the phone is still working: sign out again in a moment"
    )]
    Busy,
    /// The user's role reports no cases from this screen (citizens use 随手拍; departments
    /// and law enforcement report none).
    #[error("{0}")]
    MayNotReport(String),
    /// A case needs a grid and the user has none to default to.
    #[error("请选择网格 / choose a grid")]
    NoGrid,
    /// A file of the session cannot be written, moved or removed.
    #[error("{0}")]
    Files(String),
    /// A camera file outside the session's photo directory (captured files are deleted, so
    /// only those the camera wrote where the session said are taken).
    #[error(
        "照片文件须在照片目录中（用 new_photo_path()）/ the photo file must be in the photo directory (use new_photo_path())"
    )]
    PhotoOutsideDirectory,
}

/// A case the signed-in user reports: all but its source, which follows the user's role
/// (`Role::report_source`), and with the grid defaulting to the user's first grid.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseReport {
    /// A fresh id, kept by the screen so a retried tap is the same case.
    pub id: String,
    /// Category.
    pub category: crate::case::Category,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Where.
    pub location: Option<crate::case::Location>,
    /// The standard address, if known.
    pub address_id: Option<String>,
    /// The grid (none: the user's first grid).
    pub grid_id: Option<String>,
    /// Photos captured for it.
    pub photos: Vec<String>,
    /// Priority.
    pub priority: crate::case::Priority,
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        Error::Session(e)
    }
}

/// How the app opens its session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The SQLite file (in the app's private storage).
    pub database_path: PathBuf,
    /// Where the camera writes photos before they are processed (created if missing).
    pub photo_dir: PathBuf,
    /// The district server.
    pub server_url: String,
    /// This installation's id (a UUID the app made once and keeps).
    pub device_id: String,
    /// A name for the server's device list.
    pub device_name: String,
    /// Attempts per request before a sync gives up for now.
    pub max_attempts: u32,
    /// How long a photo whose report was never saved still counts as unsent work, ms.
    pub orphan_photo_grace_ms: i64,
}

/// Who is signed in (the sign-in record kept beside the database).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignedInUser {
    /// The user.
    pub user_id: String,
    /// Their name, as the server has it.
    pub user_name: String,
    /// Their role.
    pub role: Role,
    /// This device.
    pub device_id: String,
    /// The scope keys the user was granted (`grid:…`, `town:…`).
    pub scopes: Vec<String>,
}

impl SignedInUser {
    /// The grid ids among the scopes (the inspector's patrol grids).
    pub fn grids(&self) -> Vec<String> {
        self.scopes
            .iter()
            .filter_map(|s| s.strip_prefix("grid:"))
            .map(str::to_owned)
            .collect()
    }

    fn of(response: &EnrollResponse) -> SignedInUser {
        SignedInUser {
            user_id: response.user_id.clone(),
            user_name: response.user_name.clone(),
            role: response.role,
            device_id: response.device_id.clone(),
            scopes: response.scopes.clone(),
        }
    }
}

/// The signed-in user's store and transport.
pub struct SignedIn {
    /// Who.
    pub user: SignedInUser,
    /// Their store.
    pub store: Arc<Store>,
    /// The transport carrying their device token.
    pub transport: Arc<HttpTransport>,
}

/// What one sync did.
#[derive(Debug, Clone)]
pub enum SessionSync {
    /// Staff: documents pushed and pulled, then photos uploaded.
    Staff {
        /// The document sync.
        sync: SyncReport,
        /// The photo uploads.
        photos: UploadReport,
    },
    /// A citizen: reports submitted and "my reports" refreshed.
    Citizen(CitizenSyncReport),
}

type Job = Box<dyn FnOnce() + Send>;

/// The phone's session. See the module docs.
pub struct PhoneSession {
    config: SessionConfig,
    signed: RwLock<Option<Arc<SignedIn>>>,
    grids: RwLock<Option<Arc<GridIndex>>>,
    background: Mutex<Option<mpsc::Sender<Job>>>,
    /// Held by every sync and by sign-out: syncs run one at a time, and the database is never
    /// deleted under one.
    sync_lock: Mutex<()>,
}

fn files_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    SessionError::Files(format!("{what} {}: {e}", path.display())).into()
}

/// Writes a small file so that a power cut leaves the old content or the new, never a torn
/// or empty file: written and synced beside it, then renamed over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| files_error("无法写入 / cannot write", path, &e))
}

/// Work on the phone that has not reached the server: documents with unconfirmed changes,
/// photos still to upload (not those whose report was never saved, past their grace), citizen
/// reports still to submit.
pub fn unsent(store: &Store) -> Result<usize> {
    let docs = store.unacknowledged()?.len();
    let photos = store
        .photo_queue()?
        .iter()
        .filter(|p| {
            !p.orphaned && !matches!(p.state, PhotoState::Uploaded | PhotoState::Quarantined)
        })
        .count();
    let reports = store
        .citizen_reports()?
        .iter()
        .filter(|r| r.state == CitizenReportState::Pending)
        .count();
    Ok(docs + photos + reports)
}

impl PhoneSession {
    /// Opens the session: the user signed in before, if their record and store are sound; a
    /// damaged sign-in set aside; the grid map if one was kept.
    pub fn open(config: SessionConfig) -> Result<PhoneSession> {
        if uuid::Uuid::parse_str(&config.device_id).is_err() {
            return Err(Error::Config(
                "设备编号必须是 UUID（用 new_id() 生成一次并保存）/ the device id must be a UUID (make one with new_id() and keep it)".into(),
            ));
        }
        std::fs::create_dir_all(&config.photo_dir).map_err(|e| {
            files_error(
                "无法创建照片目录 / cannot create the photo directory",
                &config.photo_dir,
                &e,
            )
        })?;
        let session = PhoneSession {
            config,
            signed: RwLock::new(None),
            grids: RwLock::new(None),
            background: Mutex::new(None),
            sync_lock: Mutex::new(()),
        };
        match std::fs::read(session.record_path()) {
            Ok(bytes) => match session.restore(&bytes) {
                Ok(()) => {}
                // A database this build cannot read (a newer app's, a damaged file) is not
                // moved: the app shows the message (update the app, call support).
                Err(
                    e @ (Error::Sqlite(_)
                    | Error::DatabaseTooNew { .. }
                    | Error::Corrupt { .. }
                    | Error::UnsupportedSchema { .. }
                    | Error::Malformed { .. }),
                ) => return Err(e),
                Err(_) => session.set_aside()?,
            },
            // A database with no sign-in record cannot be attributed to anyone: set aside
            // before somebody else signs in over it.
            Err(_) if session.config.database_path.exists() => session.set_aside()?,
            Err(_) => {}
        }
        if let Ok(text) = std::fs::read_to_string(session.grids_path()) {
            // A damaged map file only costs the map: it is loaded again at the next refresh.
            if let Ok(index) = GridIndex::from_geojson(&text) {
                *session.grids.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(index));
            }
        }
        Ok(session)
    }

    fn companion(&self, suffix: &str) -> PathBuf {
        let mut path = self.config.database_path.clone().into_os_string();
        path.push(suffix);
        PathBuf::from(path)
    }

    fn record_path(&self) -> PathBuf {
        self.companion(".session.json")
    }

    fn grids_path(&self) -> PathBuf {
        self.companion(".grids.geojson")
    }

    fn device_id_path(&self) -> PathBuf {
        self.companion(".device-id")
    }

    /// The database and its companions, as one set of paths.
    fn database_files(&self) -> [PathBuf; 4] {
        [
            self.record_path(),
            self.config.database_path.clone(),
            self.companion("-wal"),
            self.companion("-shm"),
        ]
    }

    /// The device id the next enrollment registers: the installation's, until a sign-out
    /// retires it, then a fresh one.
    pub fn next_device_id(&self) -> String {
        std::fs::read_to_string(self.device_id_path())
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| uuid::Uuid::parse_str(id).is_ok())
            .unwrap_or_else(|| self.config.device_id.clone())
    }

    /// Moves an unusable sign-in aside, kept for support rather than deleted.
    fn set_aside(&self) -> Result<()> {
        let suffix = format!("unreadable-{}", crate::store::now_ms());
        for path in self.database_files() {
            if path.exists() {
                let aside = PathBuf::from(format!("{}.{suffix}", path.display()));
                std::fs::rename(&path, &aside)
                    .map_err(|e| files_error("无法移开 / cannot move aside", &path, &e))?;
            }
        }
        Ok(())
    }

    fn restore(&self, bytes: &[u8]) -> Result<()> {
        let user: SignedInUser = serde_json::from_slice(bytes).map_err(|_| {
            SessionError::SignInAgain(
                "登录信息已损坏，请重新登录 / the sign-in record is damaged: sign in again".into(),
            )
        })?;
        self.sign_in(user, None)
    }

    /// Opens the store for `user` and keeps it as the signed-in state.
    fn sign_in(&self, user: SignedInUser, enrollment: Option<&EnrollResponse>) -> Result<()> {
        let mut config = StoreConfig::new(&user.device_id, &user.user_id, user.role);
        config.photo_budget.orphan_grace_ms = self.config.orphan_photo_grace_ms;
        let store = Store::open(&self.config.database_path, config)?;
        if let Some(enrollment) = enrollment {
            store.set_enrollment(enrollment)?;
        }
        let token = store
            .credentials()?
            .ok_or_else(|| {
                SessionError::SignInAgain(
                    "本机登记信息缺失，请重新登录 / this phone's enrollment is missing: sign in again"
                        .into(),
                )
            })?
            .token;
        let transport = HttpTransport::new(&self.config.server_url)?.with_token(&token);
        *self.signed.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(SignedIn {
            user,
            store: Arc::new(store),
            transport: Arc::new(transport),
        }));
        Ok(())
    }

    /// The signed-in user's store and transport.
    pub fn signed(&self) -> Result<Arc<SignedIn>> {
        self.signed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| SessionError::NotSignedIn.into())
    }

    /// Who is signed in, if anyone.
    pub fn user(&self) -> Option<SignedInUser> {
        self.signed().ok().map(|s| s.user.clone())
    }

    /// Refuses a new enrollment over a signed-in phone before any code is spent. A phone
    /// whose device was revoked signs out first (`sign_out(true)`): a revoked device's
    /// unsent work is not trusted by the server, by design.
    fn may_enroll(&self) -> Result<()> {
        if self.signed().is_ok() {
            return Err(SessionError::AlreadySignedIn.into());
        }
        Ok(())
    }

    /// Signs in with an enrollment obtained elsewhere (tests and benchmarks without a server).
    pub fn adopt_enrollment(&self, response: EnrollResponse) -> Result<SignedInUser> {
        self.may_enroll()?;
        self.accept_enrollment(response)
    }

    fn accept_enrollment(&self, response: EnrollResponse) -> Result<SignedInUser> {
        let user = SignedInUser::of(&response);
        self.sign_in(user.clone(), Some(&response))?;
        let bytes = serde_json::to_vec(&user)
            .map_err(|e| SessionError::Files(format!("sign-in record: {e}")))?;
        write_atomically(&self.record_path(), &bytes)?;
        Ok(user)
    }

    /// Signs in with a one-time enrollment code from the district (network).
    pub fn enroll(&self, code: &str) -> Result<SignedInUser> {
        self.may_enroll()?;
        let transport = HttpTransport::new(&self.config.server_url)?;
        let response = crate::sync::enroll(
            &transport,
            code,
            &self.next_device_id(),
            &self.config.device_name,
        )?;
        self.accept_enrollment(response)
    }

    /// Registers this phone anonymously as a citizen (随手拍), optionally with a name and
    /// phone for call-backs (network).
    pub fn register_citizen(
        &self,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> Result<SignedInUser> {
        self.may_enroll()?;
        let transport = HttpTransport::new(&self.config.server_url)?;
        let response = crate::sync::register_citizen(
            &transport,
            &self.next_device_id(),
            &self.config.device_name,
            name,
            phone,
        )?;
        self.accept_enrollment(response)
    }

    /// Signs out and removes the user's data from the phone. Refused while work has not
    /// reached the server, unless `discard_unsent`. Waits for a running sync, and up to
    /// `wait` for calls still holding the store; the next sign-in registers a fresh device id.
    pub fn sign_out(&self, discard_unsent: bool, wait: Duration) -> Result<()> {
        let _no_sync = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let signed = self
            .signed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(SessionError::NotSignedIn)?;
        let put_back = |signed: Arc<SignedIn>, error: Error| {
            *self.signed.write().unwrap_or_else(|p| p.into_inner()) = Some(signed);
            Err(error)
        };
        // Calls in flight keep the store open: wait for them (new calls see no sign-in).
        let deadline = Instant::now() + wait;
        while Arc::strong_count(&signed) > 1 || Arc::strong_count(&signed.store) > 1 {
            if Instant::now() > deadline {
                return put_back(signed, SessionError::Busy.into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pending = match unsent(&signed.store) {
            Ok(n) => n,
            Err(e) => return put_back(signed, e),
        };
        if pending > 0 && !discard_unsent {
            return put_back(signed, SessionError::UnsentWork { count: pending }.into());
        }
        // The last holder: dropping it closes the database before its files go.
        drop(signed);
        for path in self.database_files() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(files_error("无法删除 / cannot remove", &path, &e)),
            }
        }
        write_atomically(
            &self.device_id_path(),
            uuid::Uuid::new_v4().to_string().as_bytes(),
        )
    }

    fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            backoff: Backoff {
                attempts: self.config.max_attempts.max(1),
                ..Backoff::default()
            },
            ..SyncOptions::default()
        }
    }

    fn upload_options(&self) -> UploadOptions {
        UploadOptions {
            backoff: self.sync_options().backoff,
            ..UploadOptions::default()
        }
    }

    /// Syncs now, blocking, one sync at a time: staff push their work, pull their scope and
    /// upload photos; citizens submit reports and refresh "my reports".
    pub fn sync(
        &self,
        observer: &dyn SyncObserver,
        photos: &dyn PhotoQueueObserver,
    ) -> Result<SessionSync> {
        let _one_at_a_time = self.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
        let signed = self.signed()?;
        let (store, transport) = (&signed.store, signed.transport.as_ref());
        if signed.user.role == Role::Citizen {
            return Ok(SessionSync::Citizen(store.sync_citizen(
                transport,
                &self.sync_options(),
                &self.upload_options(),
                photos,
            )?));
        }
        let sync = store.sync(transport, &self.sync_options(), observer)?;
        let photos = store.upload_photos(transport, &self.upload_options(), photos)?;
        Ok(SessionSync::Staff { sync, photos })
    }

    /// Runs `job` on the session's background thread (started on first use, and again if it
    /// ever stopped); a job that panics is caught and the thread lives on for the next one.
    pub fn in_background(&self, job: Box<dyn FnOnce() + Send>) -> Result<()> {
        let mut background = self.background.lock().unwrap_or_else(|p| p.into_inner());
        let job = match background.as_ref() {
            Some(sender) => match sender.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gridlink-network".into())
            .spawn(move || {
                for job in rx {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| {
                SessionError::Files(format!(
                    "无法启动网络线程 / cannot start the network thread: {e}"
                ))
            })?;
        tx.send(job).map_err(|_| {
            Error::Network("网络线程已停止 / the network thread has stopped".into())
        })?;
        *background = Some(tx);
        Ok(())
    }

    /// Reports a case offline as the signed-in user.
    pub fn report_case(&self, report: CaseReport, at: crate::store::Moment) -> Result<Case> {
        let signed = self.signed()?;
        let role = signed.user.role;
        let source = match role.report_source() {
            Some(Source::Citizen) => {
                return Err(SessionError::MayNotReport(
                    "市民请用随手拍上报 / citizens report with 随手拍".into(),
                )
                .into());
            }
            Some(source) => source,
            None => {
                return Err(SessionError::MayNotReport(format!(
                    "{}不上报案件 / the {} role does not report cases",
                    role.label_zh(),
                    role.code()
                ))
                .into());
            }
        };
        let grid_id = report
            .grid_id
            .or_else(|| signed.user.grids().into_iter().next())
            .ok_or(SessionError::NoGrid)?;
        let new = NewCase {
            id: report.id,
            category: report.category,
            source,
            title: report.title,
            description: report.description,
            location: report.location,
            address_id: report.address_id,
            grid_id,
            photos: report.photos,
            priority: report.priority,
        };
        signed.store.report(new, at)
    }

    /// Keeps a grid map (GeoJSON) beside the database and uses it; returns how many grids it
    /// holds.
    pub fn load_grids(&self, geojson: &str) -> Result<usize> {
        let index = GridIndex::from_geojson(geojson)
            .map_err(|e| Error::Config(format!("网格地图无效 / the grid map is invalid: {e}")))?;
        write_atomically(&self.grids_path(), geojson.as_bytes())?;
        let n = index.len();
        *self.grids.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(index));
        Ok(n)
    }

    /// Downloads the district's grid map from the server and keeps it (network).
    pub fn refresh_grids(&self) -> Result<usize> {
        let bytes = self
            .signed()?
            .transport
            .get("/v1/grids")
            .map_err(crate::sync::into_error)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Network(
                "服务器返回的网格地图不是 UTF-8 / the server's grid map is not UTF-8".into(),
            )
        })?;
        self.load_grids(&text)
    }

    /// The grid map, if one is loaded.
    pub fn grids(&self) -> Option<Arc<GridIndex>> {
        self.grids.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Today's patrol list of a grid (the user's first grid when none is given): every
    /// address with its last visit, those not visited in `days` days first.
    pub fn patrol_list(
        &self,
        grid_id: Option<&str>,
        days: u32,
    ) -> Result<Vec<crate::store::PatrolItem>> {
        let signed = self.signed()?;
        let grid = match grid_id {
            Some(grid) => grid.to_owned(),
            None => signed
                .user
                .grids()
                .into_iter()
                .next()
                .ok_or(SessionError::NoGrid)?,
        };
        signed
            .store
            .patrol_list(&grid, days, crate::store::now_ms())
    }

    /// A fresh path in the photo directory for the camera to write a photo to.
    pub fn new_photo_path(&self) -> PathBuf {
        self.config
            .photo_dir
            .join(format!("{}.jpg", uuid::Uuid::new_v4()))
    }

    /// Captures the photo the camera wrote to `path` (from [`new_photo_path`](Self::new_photo_path))
    /// for `owner_id`. The file is deleted once the server has confirmed the processed photo,
    /// so a file anywhere else is refused.
    pub fn capture_camera_file(
        &self,
        owner_id: &str,
        path: &Path,
        at: crate::store::Moment,
        free_space_bytes: Option<u64>,
    ) -> Result<crate::store::PhotoStatus> {
        let inside = std::fs::canonicalize(path)
            .ok()
            .zip(std::fs::canonicalize(&self.config.photo_dir).ok())
            .is_some_and(|(file, dir)| file.starts_with(dir));
        if !inside {
            return Err(SessionError::PhotoOutsideDirectory.into());
        }
        self.signed()?.store.capture_photo(
            owner_id,
            crate::store::PhotoInput::File(path),
            at,
            free_space_bytes,
        )
    }

    /// The documents the server refused at the last syncs, or could not take and will be
    /// sent again.
    pub fn refused_documents(&self) -> Result<Vec<RefusedDocument>> {
        let outbox = self.signed()?.store.outbox()?;
        Ok(outbox
            .into_iter()
            .filter_map(|e| {
                let (code, message, will_retry) = match e.state {
                    OutboxState::Rejected { code, message } => (code, message, false),
                    OutboxState::Deferred { code, message } => (code, message, true),
                    _ => return None,
                };
                Some(RefusedDocument {
                    doc_id: e.doc_id,
                    code,
                    message,
                    will_retry,
                })
            })
            .collect())
    }

    /// Every edit the server refused, newest first: case events and record entries, each with
    /// what it was and why, so the user can see it and do it again if it still applies.
    pub fn refused_edits(&self) -> Result<Vec<RefusedEdit>> {
        let store = self.signed()?.store.clone();
        let mut out: Vec<RefusedEdit> = store
            .rejected_edits()?
            .into_iter()
            .map(|r| RefusedEdit {
                summary: match (&r.event.kind, &r.details) {
                    (crate::case::EventKind::Reported { .. }, Some(d)) => {
                        format!("{}：{}", r.event.kind.label(), d.title)
                    }
                    (kind, _) => kind.label().to_owned(),
                },
                entry_json: r
                    .details
                    .as_ref()
                    .and_then(|d| serde_json::to_string(d).ok()),
                doc_id: r.doc_id,
                event: Some(r.event),
                code: r.code,
                message: r.message,
                at_ms: r.at_ms,
            })
            .collect();
        for r in store.rejected_entries()? {
            out.push(RefusedEdit {
                summary: match &r.entry {
                    Some(_) => "记录条目 / record entry".to_owned(),
                    None => "新记录 / new record".to_owned(),
                },
                entry_json: r.entry.or(r.details).map(|v| v.to_string()),
                doc_id: r.doc_id,
                event: None,
                code: r.code,
                message: r.message,
                at_ms: r.at_ms,
            });
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.at_ms));
        Ok(out)
    }
}

/// A document the server refused, or will be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedDocument {
    /// The document.
    pub doc_id: String,
    /// The server's reason code.
    pub code: String,
    /// Its message, for people.
    pub message: String,
    /// Whether it is sent again by itself (the server's own trouble), or was refused.
    pub will_retry: bool,
}

/// An edit the server refused: a case event, or a record's entry or new record.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedEdit {
    /// The document.
    pub doc_id: String,
    /// The event, for a case.
    pub event: Option<crate::case::Event>,
    /// The entry or the new record's details (or a new case's), as JSON.
    pub entry_json: Option<String>,
    /// One line for the list: what it was.
    pub summary: String,
    /// The server's reason code.
    pub code: String,
    /// Its message, for people.
    pub message: String,
    /// When it was made, UTC ms.
    pub at_ms: i64,
}
