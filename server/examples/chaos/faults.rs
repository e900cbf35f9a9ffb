//! The faults campaign: random schedules of role actions by five devices of four roles, offline
//! as often as not, synced over faulty links with server restarts in between. When the faults
//! stop, every device syncs in turn, round after round, until every document each one holds
//! has the server's heads and nothing is unacknowledged; a further round must move nothing.
//! Every event any device made must then be on the server and on every device holding its
//! case, or listed to its author as refused, with a reason.

use crate::link::Faulty;
use crate::{emit, fast_sync, moment_now, new_case};
use anyhow::{Context, Result, bail};
use automerge::ChangeHash;
use gridlink_core::case::{DispatchTarget, EventKind, Level, Role};
use gridlink_core::store::{Store, StoreConfig};
use gridlink_core::sync::HttpTransport;
use gridlink_core::sync::wire::EnrollResponse;
use gridlink_server::store::SqliteStore;
use gridlink_server::{AppState, ServerConfig, demo};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const GRID: &str = "320509001001-01";
/// The devices: two inspectors of the grid (one of them on two phones), its village chief, an
/// operator of the command centre and a department's handler.
const USERS: [&str; 5] = ["insp-0001", "insp-0001", "insp-0002", "chief-0001", "op-01"];
const DEPARTMENT: &str = "dept-env-01";
/// Rounds of healed syncs allowed to converge.
const ROUNDS_TARGET: u32 = 3;
const ROUNDS_MAX: u32 = 6;

fn config() -> ServerConfig {
    ServerConfig {
        rate_limits: gridlink_server::limits::RateLimits::unlimited(),
        ..ServerConfig::default()
    }
}

fn state_in(dir: &Path) -> Result<AppState> {
    Ok(AppState::new(
        Arc::new(SqliteStore::open(dir)?),
        &dir.join("blobs"),
        config(),
    )?)
}

/// An in-process server on 127.0.0.1, restartable on its address.
struct Server {
    runtime: tokio::runtime::Runtime,
    dir: PathBuf,
    addr: std::net::SocketAddr,
    state: AppState,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
}

impl Server {
    fn start(dir: &Path) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let mut server = Server {
            addr: listener.local_addr()?,
            state: state_in(dir)?,
            dir: dir.to_owned(),
            runtime,
            stop: None,
        };
        server.spawn(listener);
        Ok(server)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spawn(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = self.runtime.spawn(gridlink_server::serve(
            listener,
            self.state.clone(),
            async {
                let _ = rx.await;
            },
        ));
        self.stop = Some((tx, handle));
    }

    fn halt(&mut self) -> Result<()> {
        if let Some((tx, handle)) = self.stop.take() {
            let _ = tx.send(());
            self.runtime.block_on(handle)??;
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        self.halt()?;
        self.state = state_in(&self.dir)?;
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))?;
        self.spawn(listener);
        Ok(())
    }

    fn heads(&self, doc: &str) -> Result<Option<(Vec<ChangeHash>, HashSet<String>)>> {
        let Some(stored) = self.state.store().load_doc(doc)? else {
            return Ok(None);
        };
        let mut loaded = gridlink_core::doc::CaseDoc::load(doc, &stored.bytes)?;
        let mut heads = loaded.heads();
        heads.sort();
        let events = loaded.case()?.history.into_iter().map(|e| e.id).collect();
        Ok(Some((heads, events)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Waits until the store in `dir` is closed: the merger thread lets go of its connections
/// after the server is dropped, and SQLite then checkpoints and removes its WAL. A copy taken
/// before would race the checkpoint.
fn closed(dir: &Path) -> Result<()> {
    let open = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with("-wal") || name.ends_with("-shm")
            })
        })
    };
    for _ in 0..600 {
        if !open(dir) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the template store in {} did not close within 30 s",
        dir.display()
    )
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The server data every schedule starts from: the fixture district, the second inspector
/// granted the grid, and every device enrolled (their enrollments returned).
fn template(dir: &Path) -> Result<Vec<EnrollResponse>> {
    let server = Server::start(dir)?;
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    demo::import_district(&server.state, &district)?;
    server
        .state
        .store()
        .grant("insp-0002", &grid_key()?, "chaos")?;
    let mut enrollments = Vec::new();
    for user in USERS.iter().chain([&DEPARTMENT]) {
        let code = demo::enroll_code(&server.state, user, 1, "chaos")?;
        enrollments.push(gridlink_core::sync::enroll(
            &HttpTransport::new(&server.url())?,
            &code,
            &uuid::Uuid::new_v4().to_string(),
            "混沌测试手机",
        )?);
    }
    Ok(enrollments)
}

fn grid_key() -> Result<gridlink_core::sync::scope::ScopeKey> {
    format!("grid:{GRID}")
        .parse()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

struct Device {
    store: Store,
    link: Faulty,
    role: Role,
}

/// What one schedule came to.
#[derive(Default)]
struct Outcome {
    events: usize,
    refused: usize,
    rounds: u32,
    converged: bool,
    lost: Vec<String>,
    faults: usize,
    restarts: usize,
    regrants: usize,
}

pub fn campaign(schedules: u64, seed: u64, dir: &Path) -> Result<()> {
    let root = dir.join(format!("faults-{seed}"));
    let _ = std::fs::remove_dir_all(&root);
    let base = root.join("template");
    let enrollments = template(&base).context("setting up the district")?;
    closed(&base)?;
    let (mut events, mut refused, mut converged, mut rounds_max) = (0usize, 0usize, 0u64, 0u32);
    let (mut faults, mut restarts, mut regrants) = (0usize, 0usize, 0usize);
    let mut lost = Vec::new();
    for schedule in 0..schedules {
        let dir = root.join(format!("s{schedule}"));
        copy_dir(&base, &dir.join("server"))?;
        let outcome = run_schedule(&dir, &enrollments, seed.wrapping_mul(7919) + schedule)
            .with_context(|| format!("schedule {schedule} (seed {seed})"))?;
        let _ = std::fs::remove_dir_all(&dir);
        events += outcome.events;
        refused += outcome.refused;
        faults += outcome.faults;
        restarts += outcome.restarts;
        regrants += outcome.regrants;
        rounds_max = rounds_max.max(outcome.rounds);
        if outcome.converged {
            converged += 1;
        } else {
            eprintln!("schedule {schedule}: did not converge in {ROUNDS_MAX} rounds");
        }
        for line in outcome.lost {
            lost.push(format!("schedule {schedule}: {line}"));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    emit(
        "chaos_faults",
        "fault_schedules",
        schedules as f64,
        "schedules",
    );
    emit("chaos_faults", "events", events as f64, "events");
    emit("chaos_faults", "faults_injected", faults as f64, "faults");
    emit(
        "chaos_faults",
        "server_restarts",
        restarts as f64,
        "restarts",
    );
    emit("chaos_faults", "grant_changes", regrants as f64, "changes");
    emit("chaos_faults", "converged", converged as f64, "schedules");
    emit("chaos_faults", "refused", refused as f64, "events");
    emit(
        "chaos_faults",
        "converge_rounds_max",
        f64::from(rounds_max),
        "rounds",
    );
    emit("chaos_faults", "lost_events", lost.len() as f64, "events");
    for line in &lost {
        eprintln!("LOST: {line}");
    }
    if !lost.is_empty() || converged < schedules || rounds_max > ROUNDS_TARGET {
        bail!(
            "chaos faults: {} lost, {} of {schedules} converged, {rounds_max} rounds at most (seed {seed})",
            lost.len(),
            converged
        );
    }
    Ok(())
}

fn actions(rng: &mut fastrand::Rng, other_case: Option<&str>) -> EventKind {
    let n = rng.u16(..);
    let text = |what: &str| format!("{what} {n}");
    match rng.u8(0..14) {
        0 => EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        1 => EventKind::RejectedInvalid {
            reason: text("不属于受理范围"),
        },
        2 => match other_case {
            Some(case) => EventKind::DuplicateOf {
                case_id: case.to_owned(),
            },
            None => EventKind::Comment {
                text: text("重复?"),
            },
        },
        3 => EventKind::ResolvedInGrid {
            note: text("网格内已处理"),
        },
        4 => EventKind::Escalated {
            to: Level::Village,
            reason: text("需村里协调"),
        },
        5 => EventKind::Escalated {
            to: Level::Town,
            reason: text("需镇里协调"),
        },
        6 => EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "dept-env".into(),
                name: "区生态环境局".into(),
            },
            due_at_ms: None,
            note: text("请环保处置"),
        },
        7 => EventKind::Returned {
            reason: text("非本部门职责"),
        },
        8 => EventKind::Handling {
            note: text("处置中"),
        },
        9 => EventKind::Resolved {
            note: text("已办结"),
        },
        10 => EventKind::Verified {
            note: text("核查通过"),
        },
        11 => EventKind::VerificationFailed {
            reason: text("问题仍在"),
        },
        12 => EventKind::Closed {
            note: text("结案")
        },
        _ => EventKind::Comment {
            text: text("备注")
        },
    }
}

fn cases_of(store: &Store) -> Result<Vec<String>> {
    Ok(store
        .document_ids()?
        .into_iter()
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .collect())
}

fn run_schedule(dir: &Path, enrollments: &[EnrollResponse], seed: u64) -> Result<Outcome> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut server = Server::start(&dir.join("server"))?;
    let url = server.url();
    let mut devices = Vec::new();
    for (n, enrollment) in enrollments.iter().enumerate() {
        let store = Store::open(
            dir.join(format!("device-{n}.sqlite")),
            StoreConfig::new(&enrollment.device_id, &enrollment.user_id, enrollment.role),
        )?;
        store.set_enrollment(enrollment)?;
        let link = Faulty::new(
            HttpTransport::new(&url)?.with_token(&enrollment.token),
            rng.u64(..),
            rng.u32(0..12),
        );
        devices.push(Device {
            store,
            link,
            role: enrollment.role,
        });
    }
    let mut outcome = Outcome::default();
    // (device, doc, event) of everything made.
    let mut made: Vec<(usize, String, String)> = Vec::new();
    for _ in 0..rng.usize(40..120) {
        let n = rng.usize(..devices.len());
        let device = &devices[n];
        let roll = rng.u8(0..20);
        if roll == 0 {
            server.restart()?;
            outcome.restarts += 1;
        } else if roll == 1 && rng.u8(0..3) == 0 {
            // The second inspector is moved off the grid, or back onto it, while their phone
            // may be offline with edits of its cases: those edits are refused, and said so.
            let store = server.state.store();
            if store.grants("insp-0002")?.contains(&grid_key()?) {
                store.revoke_grant("insp-0002", &grid_key()?, "chaos")?;
            } else {
                store.grant("insp-0002", &grid_key()?, "chaos")?;
            }
            outcome.regrants += 1;
        } else if roll < 8 {
            let _ = device.store.sync(&device.link, &fast_sync(3), &());
        } else if roll < 11 && device.role == Role::GridInspector {
            let id = uuid::Uuid::new_v4().to_string();
            let case = device.store.report(
                new_case(&id, GRID, "随手拍: 路面破损", vec![]),
                moment_now(),
            )?;
            made.push((n, id, case.history[0].id.clone()));
        } else {
            let cases = cases_of(&device.store)?;
            if cases.is_empty() {
                continue;
            }
            let doc = cases[rng.usize(..cases.len())].clone();
            let other = cases.iter().find(|c| **c != doc).map(String::as_str);
            let before: HashSet<String> = device
                .store
                .case(&doc)?
                .history
                .into_iter()
                .map(|e| e.id)
                .collect();
            // The phone refuses what its role may not do here (that is the rule, not a fault):
            // the person tries something else, a few times.
            for _ in 0..6 {
                let kind = actions(&mut rng, other);
                if let Ok(case) = device.store.record(&doc, kind, moment_now()) {
                    if let Some(event) = case.history.iter().find(|e| !before.contains(&e.id)) {
                        made.push((n, doc, event.id.clone()));
                    }
                    break;
                }
            }
        }
    }

    // The faults stop.
    for device in &devices {
        *device
            .link
            .faults_left
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = 0;
        device
            .link
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        device.link.flush_held();
        outcome.faults += device.link.injected();
    }
    let mut rounds = 0;
    while rounds < ROUNDS_MAX {
        rounds += 1;
        for device in &devices {
            let _ = device.store.sync(&device.link, &fast_sync(3), &());
        }
        if settled(&server, &devices)?.is_some() {
            outcome.converged = true;
            break;
        }
    }
    outcome.rounds = rounds;
    if outcome.converged {
        // One more round moves nothing.
        let before = settled(&server, &devices)?;
        for device in &devices {
            let _ = device.store.sync(&device.link, &fast_sync(3), &());
        }
        if settled(&server, &devices)? != before {
            outcome.converged = false;
            outcome
                .lost
                .push("a round after convergence still moved documents".into());
        }
    }

    outcome.events = made.len();
    for (n, doc, event) in &made {
        let refused = devices[*n]
            .store
            .rejected_edits()?
            .into_iter()
            .find(|r| r.event.id == *event);
        if let Some(refusal) = refused {
            outcome.refused += 1;
            if refusal.message.trim().is_empty() {
                outcome
                    .lost
                    .push(format!("{event} of {doc} refused without a reason"));
            }
            continue;
        }
        match server.heads(doc)? {
            Some((_, events)) if events.contains(event) => {}
            _ => outcome.lost.push(format!(
                "{event} of {doc} (device {n}) is not on the server"
            )),
        }
        for (m, device) in devices.iter().enumerate() {
            if cases_of(&device.store)?.contains(doc)
                && !device
                    .store
                    .case(doc)
                    .is_ok_and(|c| c.history.iter().any(|e| e.id == *event))
            {
                outcome.lost.push(format!(
                    "{event} of {doc} (device {n}) is not on device {m}, which holds the case"
                ));
            }
        }
    }
    Ok(outcome)
}

/// Every document each device holds, with the server's heads, when they all agree and nothing
/// is waiting to be acknowledged; none otherwise.
fn settled(
    server: &Server,
    devices: &[Device],
) -> Result<Option<BTreeMap<String, Vec<ChangeHash>>>> {
    let mut all = BTreeMap::new();
    for device in devices {
        if !device.store.unacknowledged()?.is_empty() {
            return Ok(None);
        }
        for doc in cases_of(&device.store)? {
            let mut heads = device.store.heads(&doc)?;
            heads.sort();
            match server.heads(&doc)? {
                Some((server_heads, _)) if server_heads == heads => {
                    all.insert(doc, heads);
                }
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(all))
}
