//! The harness: a real server on 127.0.0.1 (in this process, on its own tokio runtime) over a
//! temporary data directory with the fixture district, and phones that are real
//! `gridlink_core::Store`s enrolled over HTTP.

use gridlink_core::case::{Category, EventKind, Location, Role, Source};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{Moment, NewCase, Store, StoreConfig};
use gridlink_core::sync::wire::EnrollResponse;
use gridlink_core::sync::{Backoff, HttpTransport, SyncOptions, SyncReport, Transport, enroll};
use gridlink_server::store::{PgStore, ServerStore, SqliteStore};
use gridlink_server::{AppState, ServerConfig, demo};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const GRID: &str = "320509001001-01";
pub const GRID_2: &str = "320509001001-02";
pub const OTHER_TOWN_GRID: &str = "320509002001-01";
pub const T0: i64 = 1_780_000_000_000;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gridlink-server-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Where a test server keeps the district master: SQLite in its data directory, or, with
/// `GRIDLINK_TEST_BACKEND=postgres`, a schema of its own on the PostgreSQL server
/// `GRIDLINK_TEST_POSTGRES` names (`cargo xtask ci` starts one and runs the suite again so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The connection string of the test's own schema.
    Postgres(String),
}

/// The connection string of the PostgreSQL server the suite runs against, if any. Under CI
/// it must be set: the PostgreSQL half of the suite never passes by being skipped.
pub fn postgres_server() -> Option<String> {
    match std::env::var("GRIDLINK_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => None,
    }
}

/// The PostgreSQL server for a test that needs one. Without one the test says so and passes,
/// except under CI, where a missing PostgreSQL fails it.
pub fn postgres_for_test() -> Option<String> {
    if let Some(server) = postgres_server() {
        return Some(server);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the PostgreSQL tests: GRIDLINK_TEST_POSTGRES is not set"
    );
    eprintln!("GRIDLINK_TEST_POSTGRES is not set: this PostgreSQL test does not run");
    None
}

/// The S3-compatible server (an endpoint URL, `GRIDLINK_TEST_S3`; `cargo xtask ci` starts
/// SeaweedFS on 127.0.0.1) for a test that needs one. Without one the test says so and
/// passes, except under CI, where it fails.
pub fn s3_for_test() -> Option<String> {
    match std::env::var("GRIDLINK_TEST_S3") {
        Ok(url) if !url.trim().is_empty() => return Some(url.trim_end_matches('/').to_owned()),
        _ => {}
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the object storage tests: GRIDLINK_TEST_S3 is not set"
    );
    eprintln!("GRIDLINK_TEST_S3 is not set: this object storage test does not run");
    None
}

/// Where a test server keeps photos: its data directory, or a bucket of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blobs {
    Files,
    /// `url`: `s3://bucket/prefix`.
    S3 {
        endpoint: String,
        url: String,
    },
}

/// The one bucket of the test S3 server; each test server keeps its photos under a prefix of
/// its own (the store's `s3://bucket/prefix` form), so tests never see each other's.
const TEST_BUCKET: &str = "gridlink-test";

impl Blobs {
    /// A prefix of its own for a data directory in the test bucket (made, if it is not
    /// there yet, with a plain `PUT /bucket`: the test server runs without access control,
    /// and the client signs every request all the same).
    pub fn bucket_for(endpoint: &str, dir: &Path) -> Blobs {
        let made = reqwest::blocking::Client::new()
            .put(format!("{endpoint}/{TEST_BUCKET}"))
            .send()
            .unwrap_or_else(|e| panic!("the test S3 server ({endpoint}): {e}"));
        assert!(
            made.status().is_success() || made.status() == reqwest::StatusCode::CONFLICT,
            "making bucket {TEST_BUCKET}: {made:?}"
        );
        Blobs::S3 {
            endpoint: endpoint.to_owned(),
            url: format!("s3://{TEST_BUCKET}/{}", schema_name(dir)),
        }
    }

    pub fn open(&self, dir: &Path) -> Arc<gridlink_server::blobs::BlobStore> {
        match self {
            Blobs::Files => gridlink_server::blobs::BlobStore::open(&dir.join("blobs")).unwrap(),
            Blobs::S3 { endpoint, url } => gridlink_server::blobs::BlobStore::open_s3_with(
                url,
                &[
                    ("aws_endpoint", endpoint),
                    ("aws_access_key_id", "gridlink-test"),
                    ("aws_secret_access_key", "gridlink-test-secret"),
                    ("aws_region", "us-east-1"),
                    ("aws_allow_http", "true"),
                ],
            )
            .unwrap(),
        }
    }
}

impl Backend {
    /// The backend of the suite for a data directory (one schema per directory, made on
    /// first use, so a second handle or a restart opens the same record).
    pub fn for_dir(dir: &Path) -> Backend {
        if std::env::var("GRIDLINK_TEST_BACKEND").as_deref() != Ok("postgres") {
            return Backend::Sqlite;
        }
        let server = postgres_server()
            .expect("GRIDLINK_TEST_BACKEND=postgres needs GRIDLINK_TEST_POSTGRES (a server)");
        Backend::Postgres(schema_for(&server, dir))
    }

    pub fn open(&self, dir: &Path) -> Arc<dyn ServerStore> {
        match self {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir).unwrap()),
            Backend::Postgres(url) => Arc::new(PgStore::open(url).unwrap()),
        }
    }
}

/// Makes the schema of a data directory on the test PostgreSQL server; its connection string.
pub fn schema_for(server: &str, dir: &Path) -> String {
    let schema = schema_name(dir);
    let mut admin = postgres::Client::connect(server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("the test PostgreSQL server ({server}): {e}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .unwrap();
    format!("{server} options='-c search_path={schema}'")
}

/// The schema of a data directory's district master on the test PostgreSQL server.
pub fn schema_name(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dir")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("t_{name}")
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub state: AppState,
    config: ServerConfig,
    backend: Backend,
    blobs: Blobs,
    runtime: tokio::runtime::Runtime,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    pub data: TempDir,
}

/// The default configuration without rate limits: tests enroll many phones from 127.0.0.1.
/// (The limits have tests of their own.)
pub fn test_config() -> ServerConfig {
    ServerConfig {
        rate_limits: gridlink_server::limits::RateLimits::unlimited(),
        ..ServerConfig::default()
    }
}

impl TestServer {
    /// A server with the fixture district's grids and users, and no cases.
    pub fn start() -> TestServer {
        Self::start_with(test_config(), 0)
    }

    /// A server with `cases` cases of history.
    pub fn start_with(config: ServerConfig, cases: usize) -> TestServer {
        let data = TempDir::new();
        let backend = Backend::for_dir(data.path());
        Self::start_in(data, backend, config, cases, None)
    }

    /// A server on SQLite whatever the suite's backend (the SQLite backup, for one, or a
    /// test that reads the SQLite file itself).
    pub fn start_sqlite() -> TestServer {
        Self::start_sqlite_with(test_config(), 0)
    }

    /// [`start_sqlite`](Self::start_sqlite) with `cases` cases of history.
    pub fn start_sqlite_with(config: ServerConfig, cases: usize) -> TestServer {
        Self::start_in(TempDir::new(), Backend::Sqlite, config, cases, None)
    }

    /// A server over a store made by `store` in the data directory (a restart opens SQLite
    /// there).
    pub fn start_over(
        config: ServerConfig,
        cases: usize,
        store: impl FnOnce(&Path) -> Arc<dyn ServerStore>,
    ) -> TestServer {
        let data = TempDir::new();
        let store = store(data.path());
        Self::start_in(data, Backend::Sqlite, config, cases, Some(store))
    }

    /// A server on its own PostgreSQL schema (whatever the suite's backend), on the server
    /// `postgres` names.
    pub fn start_on_postgres(postgres: &str) -> TestServer {
        let data = TempDir::new();
        let backend = Backend::Postgres(schema_for(postgres, data.path()));
        Self::start_in(data, backend, test_config(), 0, None)
    }

    /// A server on its own PostgreSQL schema and its own bucket on the S3 server at
    /// `endpoint`; [`another_node`](Self::another_node) shares both.
    pub fn start_on_postgres_and_s3(
        postgres: &str,
        endpoint: &str,
        config: ServerConfig,
    ) -> TestServer {
        let data = TempDir::new();
        let backend = Backend::Postgres(schema_for(postgres, data.path()));
        let blobs = Blobs::bucket_for(endpoint, data.path());
        let store = backend.open(data.path());
        let server = Self::boot(data, backend, blobs, config, store);
        let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
        demo::import_district(&server.state, &district).unwrap();
        server
    }

    /// A second server node over the same district master (its own data directory and port;
    /// nothing imported: the first node did that).
    pub fn another_node(&self) -> TestServer {
        let data = TempDir::new();
        let store = self.backend.open(data.path());
        Self::boot(
            data,
            self.backend.clone(),
            self.blobs.clone(),
            self.config,
            store,
        )
    }

    fn start_in(
        data: TempDir,
        backend: Backend,
        config: ServerConfig,
        cases: usize,
        store: Option<Arc<dyn ServerStore>>,
    ) -> TestServer {
        let store = store.unwrap_or_else(|| backend.open(data.path()));
        let server = Self::boot(data, backend, Blobs::Files, config, store);
        let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
        demo::import_district(&server.state, &district).unwrap();
        if cases > 0 {
            demo::seed_cases(&server.state, &district, cases, 7, T0).unwrap();
        }
        server
    }

    fn boot(
        data: TempDir,
        backend: Backend,
        blobs: Blobs,
        config: ServerConfig,
        store: Arc<dyn ServerStore>,
    ) -> TestServer {
        let state = AppState::with_blobs(store, blobs.open(data.path()), config).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = TestServer {
            url: format!("http://{addr}"),
            addr,
            state,
            config,
            backend,
            blobs,
            runtime,
            stop: None,
            data,
        };
        server.spawn(listener);
        server
    }

    fn spawn(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let handle = self
            .runtime
            .spawn(gridlink_server::serve(listener, state, async {
                let _ = rx.await;
            }));
        self.stop = Some((tx, handle));
    }

    /// Stops accepting, finishes requests in flight, and drops the state (as a process exit
    /// would).
    pub fn stop(&mut self) {
        if let Some((tx, handle)) = self.stop.take() {
            let _ = tx.send(());
            self.runtime.block_on(handle).unwrap().unwrap();
        }
    }

    /// Stops, then starts a fresh server process state over the same data directory and port.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        self.serve_again();
    }

    /// A fresh server process state over the data directory, on the same port.
    fn serve_again(&mut self) {
        self.state = AppState::with_blobs(
            self.backend.open(self.data.path()),
            self.blobs.open(self.data.path()),
            self.config,
        )
        .unwrap();
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.spawn(listener);
    }

    /// The machine is lost: stops, restores `backup` into a fresh data directory with the
    /// server's own `restore`, and starts over it on the same port.
    pub fn restore_from(&mut self, backup: &Path) {
        self.stop();
        let data = TempDir::new();
        std::fs::remove_dir_all(data.path()).unwrap();
        gridlink_server::store::backup::restore(backup, data.path()).unwrap();
        self.data = data;
        self.backend = Backend::Sqlite;
        self.blobs = Blobs::Files;
        self.serve_again();
    }

    /// The machine is lost and its database restored elsewhere with PostgreSQL's tools: stops,
    /// and serves again over the database `url` names (the data directory's photos are kept).
    pub fn serve_over_postgres(&mut self, url: String) {
        self.stop();
        self.backend = Backend::Postgres(url);
        self.serve_again();
    }

    pub fn code_for(&self, user: &str) -> String {
        demo::enroll_code(&self.state, user, 1, "test").unwrap()
    }

    /// A phone enrolled for `user`.
    pub fn phone(&self, user: &str) -> Phone {
        let device_id = uuid::Uuid::new_v4().to_string();
        let enrollment = enroll(
            &HttpTransport::new(&self.url).unwrap(),
            &self.code_for(user),
            &device_id,
            "测试手机",
        )
        .unwrap();
        Phone::open(&self.url, device_id, enrollment)
    }

    /// Imports the fixture district's standard addresses and publishes the standard
    /// checklists.
    pub fn with_base_data(&self) -> usize {
        let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
        gridlink_server::records::import_base_data(&self.state, &district).unwrap()
    }

    /// The server's current copy of a document.
    pub fn doc(&self, id: &str) -> Option<gridlink_core::doc::CaseDoc> {
        let stored = self.state.store().load_doc(id).unwrap()?;
        Some(gridlink_core::doc::CaseDoc::load(id, &stored.bytes).unwrap())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Phone {
    pub store: Store,
    pub transport: HttpTransport,
    pub enrollment: EnrollResponse,
    pub device_id: String,
    _dir: TempDir,
}

/// Fast retries: tests must not sleep for real back-off.
pub fn options() -> SyncOptions {
    SyncOptions {
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(50),
            attempts: 60,
        },
        ..SyncOptions::default()
    }
}

impl Phone {
    pub fn open(url: &str, device_id: String, enrollment: EnrollResponse) -> Phone {
        let dir = TempDir::new();
        let store = Store::open(
            dir.path().join("phone.sqlite"),
            StoreConfig::new(
                device_id.clone(),
                enrollment.user_id.clone(),
                enrollment.role,
            ),
        )
        .unwrap();
        store.set_enrollment(&enrollment).unwrap();
        let transport = HttpTransport::new(url)
            .unwrap()
            .with_token(&enrollment.token);
        Phone {
            store,
            transport,
            enrollment,
            device_id,
            _dir: dir,
        }
    }

    pub fn user(&self) -> &str {
        &self.enrollment.user_id
    }

    /// The phone's database file.
    pub fn db_path(&self) -> PathBuf {
        self._dir.path().join("phone.sqlite")
    }

    pub fn sync(&self) -> SyncReport {
        self.sync_via(&self.transport).unwrap()
    }

    pub fn sync_via(&self, transport: &dyn Transport) -> gridlink_core::Result<SyncReport> {
        self.store.sync(transport, &options(), &())
    }

    /// Reports a case in `grid`; returns its id.
    pub fn report(&self, grid: &str, title: &str, at: i64) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.store
            .report(
                NewCase {
                    id: id.clone(),
                    category: Category::Sanitation,
                    source: if self.enrollment.role == Role::Citizen {
                        Source::Citizen
                    } else {
                        Source::GridInspector
                    },
                    title: title.into(),
                    description: String::new(),
                    location: Some(Location {
                        point: LatLon::new(31.16, 120.64),
                        accuracy_m: 5.0,
                    }),
                    address_id: None,
                    grid_id: grid.into(),
                    photos: vec![],
                    priority: Default::default(),
                },
                moment(at),
            )
            .unwrap();
        id
    }

    /// Records an action; returns the new event's id, or none if the phone refused it.
    pub fn act(&self, case: &str, kind: EventKind, at: i64) -> Option<String> {
        let before: std::collections::HashSet<String> = self
            .store
            .case(case)
            .unwrap()
            .history
            .into_iter()
            .map(|e| e.id)
            .collect();
        let after = self.store.record(case, kind, moment(at)).ok()?;
        after
            .history
            .into_iter()
            .map(|e| e.id)
            .find(|id| !before.contains(id))
    }

    pub fn comment(&self, case: &str, text: &str, at: i64) -> String {
        self.act(case, EventKind::Comment { text: text.into() }, at)
            .unwrap()
    }
}

pub fn moment(at_ms: i64) -> Moment {
    Moment {
        at_ms,
        location: None,
    }
}

/// A SQLite store whose commits fail while `failing` is set (a full disk, say), and whose
/// document loads fail while `failing_loads` is set (a damaged page).
pub struct FailingStore {
    pub inner: SqliteStore,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub failing_loads: Arc<std::sync::atomic::AtomicBool>,
}

mod failing {
    use super::FailingStore;
    use gridlink_core::sync::scope::{GridPlace, ScopeKey};
    use gridlink_server::store::*;
    use std::collections::BTreeSet;
    use std::sync::atomic::Ordering;

    impl DocumentStore for FailingStore {
        fn load_doc(&self, doc_id: &str) -> StoreResult<Option<StoredDoc>> {
            if self.failing_loads.load(Ordering::SeqCst) {
                return Err(StoreError::Database("I/O error (injected)".into()));
            }
            self.inner.load_doc(doc_id)
        }
        fn commit(&self, merges: &[Merge], audit: &[AuditEntry]) -> StoreResult<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Full("disk full (injected)".into()));
            }
            self.inner.commit(merges, audit)
        }
        fn pull(
            &self,
            from: &[(ScopeKey, u64)],
            exclude_device: &str,
            max_bytes: u64,
        ) -> StoreResult<PullPage> {
            self.inner.pull(from, exclude_device, max_bytes)
        }
        fn docs_leaving(&self, left: &[ScopeKey], kept: &[ScopeKey]) -> StoreResult<Vec<String>> {
            self.inner.docs_leaving(left, kept)
        }
        fn doc_count(&self) -> StoreResult<u64> {
            self.inner.doc_count()
        }
        fn change_seq(&self) -> StoreResult<i64> {
            self.inner.change_seq()
        }
        fn refresh_deadlines(&self, limits: &gridlink_core::case::TimeLimits) -> StoreResult<u64> {
            self.inner.refresh_deadlines(limits)
        }
    }

    impl Directory for FailingStore {
        fn add_user(&self, user: &User, by: &str) -> StoreResult<()> {
            self.inner.add_user(user, by)
        }
        fn user(&self, id: &str) -> StoreResult<Option<User>> {
            self.inner.user(id)
        }
        fn grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<()> {
            self.inner.grant(user_id, scope, by)
        }
        fn revoke_grant(&self, user_id: &str, scope: &ScopeKey, by: &str) -> StoreResult<bool> {
            self.inner.revoke_grant(user_id, scope, by)
        }
        fn grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
            self.inner.grants(user_id)
        }
        fn revoked_grants(&self, user_id: &str) -> StoreResult<BTreeSet<ScopeKey>> {
            self.inner.revoked_grants(user_id)
        }
        fn add_enroll_code(
            &self,
            user_id: &str,
            code_hash: &str,
            expires_at_ms: i64,
            by: &str,
        ) -> StoreResult<()> {
            self.inner
                .add_enroll_code(user_id, code_hash, expires_at_ms, by)
        }
        fn enroll(&self, code_hash: &str, device: &NewDevice, now_ms: i64) -> StoreResult<User> {
            self.inner.enroll(code_hash, device, now_ms)
        }
        fn device_by_token(&self, token_hash: &str) -> StoreResult<Option<DeviceAuth>> {
            self.inner.device_by_token(token_hash)
        }
        fn revoke_device(&self, device_id: &str, by: &str) -> StoreResult<bool> {
            self.inner.revoke_device(device_id, by)
        }
        fn put_grids(&self, grids: &[GridPlace]) -> StoreResult<()> {
            self.inner.put_grids(grids)
        }
        fn grids(&self) -> StoreResult<Vec<GridPlace>> {
            self.inner.grids()
        }
        fn add_api_key(&self, key_hash: &str, key: &ApiKey, by: &str) -> StoreResult<()> {
            self.inner.add_api_key(key_hash, key, by)
        }
        fn api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
            self.inner.api_key(key_hash)
        }
        fn register_citizen(
            &self,
            citizen: &Citizen,
            device: &NewDevice,
            max_per_phone: u32,
        ) -> StoreResult<()> {
            self.inner.register_citizen(citizen, device, max_per_phone)
        }
        fn citizen(&self, user_id: &str) -> StoreResult<Option<Citizen>> {
            self.inner.citizen(user_id)
        }
        fn set_web_password(&self, user_id: &str, hash: &str, by: &str) -> StoreResult<()> {
            self.inner.set_web_password(user_id, hash, by)
        }
        fn web_password(&self, user_id: &str) -> StoreResult<Option<String>> {
            self.inner.web_password(user_id)
        }
        fn add_web_session(&self, session: &WebSession) -> StoreResult<()> {
            self.inner.add_web_session(session)
        }
        fn web_session(
            &self,
            token_hash: &str,
            now_ms: i64,
        ) -> StoreResult<Option<(WebSession, User)>> {
            self.inner.web_session(token_hash, now_ms)
        }
        fn end_web_session(&self, token_hash: &str) -> StoreResult<()> {
            self.inner.end_web_session(token_hash)
        }
        fn web_device(&self, user_id: &str, actor_prefix: &[u8]) -> StoreResult<DeviceAuth> {
            self.inner.web_device(user_id, actor_prefix)
        }
    }

    impl CaseQueries for FailingStore {
        fn case_row(&self, id: &str) -> StoreResult<Option<CaseRow>> {
            self.inner.case_row(id)
        }
        fn reported_by(&self, user_id: &str, limit: u32) -> StoreResult<Vec<CaseRow>> {
            self.inner.reported_by(user_id, limit)
        }
        fn overdue_cases(
            &self,
            now_ms: i64,
            scopes: Option<&BTreeSet<ScopeKey>>,
            limit: u32,
        ) -> StoreResult<Vec<CaseRow>> {
            self.inner.overdue_cases(now_ms, scopes, limit)
        }
        fn record_ids(&self, kind: &str) -> StoreResult<Vec<String>> {
            self.inner.record_ids(kind)
        }
        fn coverage(&self, grid_id: &str) -> StoreResult<Vec<CoverageRow>> {
            self.inner.coverage(grid_id)
        }
        fn case_list(&self, filter: &CaseFilter) -> StoreResult<Vec<CaseRow>> {
            self.inner.case_list(filter)
        }
        fn case_total(&self, filter: &CaseFilter) -> StoreResult<u64> {
            self.inner.case_total(filter)
        }
    }

    impl Statistics for FailingStore {
        fn score_totals(&self, from_ms: i64, to_ms: i64) -> StoreResult<Vec<ScoreTotal>> {
            self.inner.score_totals(from_ms, to_ms)
        }
        fn case_counts(
            &self,
            from_ms: i64,
            to_ms: i64,
            area: &Area,
        ) -> StoreResult<Vec<CaseCount>> {
            self.inner.case_counts(from_ms, to_ms, area)
        }
        fn open_by_grid(&self) -> StoreResult<Vec<(String, u64)>> {
            self.inner.open_by_grid()
        }
        fn open_by_level(&self, area: &Area) -> StoreResult<Vec<(String, u64)>> {
            self.inner.open_by_level(area)
        }
        fn overdue_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
            self.inner.overdue_count(now_ms, area)
        }
        fn warning_count(&self, now_ms: i64, area: &Area) -> StoreResult<u64> {
            self.inner.warning_count(now_ms, area)
        }
    }

    impl BlobIndex for FailingStore {
        fn photo_owner(&self, hash: &str) -> StoreResult<Option<PhotoCase>> {
            self.inner.photo_owner(hash)
        }
        fn blob(&self, hash: &str) -> StoreResult<Option<BlobRow>> {
            self.inner.blob(hash)
        }
        fn put_blob(&self, blob: &BlobRow) -> StoreResult<()> {
            self.inner.put_blob(blob)
        }
        fn thumbnail_of(&self, photo_hash: &str) -> StoreResult<Option<BlobRow>> {
            self.inner.thumbnail_of(photo_hash)
        }
    }

    impl SettingsAudit for FailingStore {
        fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
            self.inner.audit(entry)
        }
        fn audit_log(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
            self.inner.audit_log(limit)
        }
        fn setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
            self.inner.setting(key)
        }
        fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
            self.inner.put_setting(key, value)
        }
    }
}
