//! The harness: a real server on 127.0.0.1 (in this process, on its own tokio runtime) over a
//! temporary data directory with the fixture district, and phones that are real
//! `gridlink_core::Store`s enrolled over HTTP.

use gridlink_core::case::{Category, EventKind, Location, Role, Source};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{Moment, NewCase, Store, StoreConfig};
use gridlink_core::sync::wire::EnrollResponse;
use gridlink_core::sync::{Backoff, HttpTransport, SyncOptions, SyncReport, Transport, enroll};
use gridlink_server::{AppState, ServerConfig, demo, store::SqliteStore};
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
    runtime: tokio::runtime::Runtime,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    pub data: TempDir,
}

impl TestServer {
    /// A server with the fixture district's grids and users, and no cases.
    pub fn start() -> TestServer {
        Self::start_with(ServerConfig::default(), 0)
    }

    /// A server with `cases` cases of history.
    pub fn start_with(config: ServerConfig, cases: usize) -> TestServer {
        let data = TempDir::new();
        let state = state_in(data.path(), config);
        let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
        demo::import_district(&state, &district).unwrap();
        if cases > 0 {
            demo::seed_cases(&state, &district, cases, 7, T0).unwrap();
        }
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
        self.state = state_in(self.data.path(), self.config);
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.spawn(listener);
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

fn state_in(dir: &Path, config: ServerConfig) -> AppState {
    AppState::new(Arc::new(SqliteStore::open(dir).unwrap()), config).unwrap()
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
