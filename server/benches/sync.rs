//! `cargo xtask bench sync`: the sync path end to end on loopback. One JSON object per line:
//! `{"bench","metric","value","unit"}`.
//!
//! Setup: a real server (SQLite, `synchronous=FULL`) holding the fixture district and
//! `--docs` case documents (default 100,000) spread over the basic grids.
//!
//! - `first_sync_s`, `first_sync_bytes`: a newly enrolled inspector's first sync (its grid);
//! - `day_*`: that inspector's day — 50 cases × 10 edits offline, then one sync: bytes up and
//!   down on the wire, round trips, wall time; `day_raw_change_bytes` is the size of the day's
//!   Automerge changes themselves (the floor for bytes up);
//! - `noop_round_trips`, `noop_bytes`: a reconnect with nothing new, of a phone holding about
//!   2,000 documents;
//! - `merges_per_s`, `sync_p99_ms`: 200 enrolled devices each push 5 new events on each of 50
//!   documents of their grid (10,000 document merges), 8 requests in flight, commits
//!   included; p99 of the request latency; `bare_apply_per_s` is Automerge `load_incremental`
//!   of the same changes on the same documents, alone (no I/O, no validation).
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it is a quiet smoke test at a
//! tiny size.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::case::{EventKind, Role, Stamp};
use gridlink_core::doc::CaseDoc;
use gridlink_core::store::{Moment, NewCase, Store, StoreConfig};
use gridlink_core::sync::wire::{self, PushDoc, SyncRequest, SyncResponse};
use gridlink_core::sync::{
    HttpTransport, SyncOptions, Transport, TransportError, device_actor, enroll,
};
use gridlink_server::demo;
use gridlink_server::store::ServerStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const T0: i64 = 1_795_910_400_000;

struct Counting<'a> {
    inner: &'a dyn Transport,
    up: AtomicU64,
    down: AtomicU64,
    trips: AtomicU64,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn Transport) -> Self {
        Counting {
            inner,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
            trips: AtomicU64::new(0),
        }
    }
}

impl Transport for Counting<'_> {
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.inner.get(path)
    }

    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.put(path, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.up.fetch_add(body.len() as u64, Ordering::Relaxed);
        self.trips.fetch_add(1, Ordering::Relaxed);
        let out = self.inner.post(path, body)?;
        self.down.fetch_add(out.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

struct Phone {
    store: Store,
    http: HttpTransport,
    _dir: std::path::PathBuf,
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let docs = arg(&args, "--docs").unwrap_or(if measuring { 100_000 } else { 300 });
    let devices = arg(&args, "--devices").unwrap_or(if measuring { 200 } else { 3 });
    let per_device = if measuring { 50 } else { 3 };
    let day_cases = if measuring { 50 } else { 3 };
    let noop_target = if measuring { 2_000 } else { 10 };
    let emit = |metric: &str, value: f64, unit: &str| {
        if measuring {
            println!(
                "{}",
                serde_json::json!({ "bench": "sync", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
            );
        }
    };
    let note = |text: String| {
        if measuring {
            eprintln!("{text}");
        }
    };

    let root = std::env::temp_dir().join(format!("gridlink-sync-bench-{}", uuid::Uuid::new_v4()));
    let (store, state, district) = demo::bench_state(&root).unwrap();
    let started = Instant::now();
    demo::seed_cases(&state, &district, docs, 11, T0).unwrap();
    note(format!(
        "seeded {docs} documents in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(gridlink_server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));

    let phone = |user: &str, n: usize| -> Phone {
        let code = demo::enroll_code(&state, user, 1, "bench").unwrap();
        let device = uuid::Uuid::new_v4().to_string();
        let enrollment =
            enroll(&HttpTransport::new(&url).unwrap(), &code, &device, "bench").unwrap();
        let dir = root.join(format!("phone-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(
            dir.join("phone.sqlite"),
            StoreConfig::new(device, enrollment.user_id.clone(), enrollment.role),
        )
        .unwrap();
        store.set_enrollment(&enrollment).unwrap();
        Phone {
            store,
            http: HttpTransport::new(&url)
                .unwrap()
                .with_token(&enrollment.token),
            _dir: dir,
        }
    };
    let options = SyncOptions::default();

    // A new inspector's first sync.
    let inspector = phone("insp-0001", 0);
    let counting = Counting::new(&inspector.http);
    let started = Instant::now();
    inspector.store.sync(&counting, &options, &()).unwrap();
    emit("first_sync_s", started.elapsed().as_secs_f64(), "s");
    emit(
        "first_sync_bytes",
        (counting.up.load(Ordering::Relaxed) + counting.down.load(Ordering::Relaxed)) as f64,
        "B",
    );
    emit(
        "first_sync_docs",
        inspector.store.document_ids().unwrap().len() as f64,
        "docs",
    );

    // The inspector's day, offline, then one sync.
    let grid = district
        .users
        .iter()
        .find(|u| u.id == "insp-0001")
        .unwrap()
        .grid_ids[0]
        .clone();
    let mut day_ids = Vec::new();
    for c in 0..day_cases {
        let id = uuid::Uuid::new_v4().to_string();
        let at = |k: i64| Moment {
            at_ms: T0 + (c as i64) * 600_000 + k * 30_000,
            location: None,
        };
        inspector
            .store
            .report(
                NewCase {
                    id: id.clone(),
                    category: gridlink_core::case::Category::Sanitation,
                    source: gridlink_core::case::Source::GridInspector,
                    title: format!("巡查发现第{c}处垃圾堆放"),
                    description: "小区北门绿化带内有建筑垃圾堆放，约两立方米".into(),
                    location: Some(gridlink_core::case::Location {
                        point: gridlink_core::geo::LatLon::new(31.16, 120.64),
                        accuracy_m: 6.0,
                    }),
                    address_id: None,
                    grid_id: grid.clone(),
                    photos: vec![format!("{:064x}", c)],
                    priority: Default::default(),
                },
                at(0),
            )
            .unwrap();
        for k in 1..9 {
            let kind = if k == 4 {
                EventKind::PhotoAdded {
                    hash: format!("{:064x}", 1000 + c * 10 + k),
                }
            } else {
                EventKind::Comment {
                    text: format!("第{k}次跟进：已联系物业，约定清运时间"),
                }
            };
            inspector.store.record(&id, kind, at(k as i64)).unwrap();
        }
        inspector
            .store
            .record(
                &id,
                EventKind::ResolvedInGrid {
                    note: "已清运完毕，现场恢复整洁".into(),
                },
                at(9),
            )
            .unwrap();
        day_ids.push(id);
    }
    let raw: usize = day_ids
        .iter()
        .map(|id| {
            let mut doc =
                CaseDoc::load(id, &inspector.store.unacknowledged_changes(id).unwrap()).unwrap();
            doc.automerge()
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().len())
                .sum::<usize>()
        })
        .sum();
    let counting = Counting::new(&inspector.http);
    let started = Instant::now();
    inspector.store.sync(&counting, &options, &()).unwrap();
    emit(
        "day_sync_ms",
        started.elapsed().as_secs_f64() * 1000.0,
        "ms",
    );
    emit(
        "day_bytes_up",
        counting.up.load(Ordering::Relaxed) as f64,
        "B",
    );
    emit(
        "day_bytes_down",
        counting.down.load(Ordering::Relaxed) as f64,
        "B",
    );
    emit(
        "day_round_trips",
        counting.trips.load(Ordering::Relaxed) as f64,
        "count",
    );
    emit("day_raw_change_bytes", raw as f64, "B");
    assert!(inspector.store.unacknowledged().unwrap().is_empty());

    // A no-op reconnect of a phone holding about 2,000 documents.
    let holder = "bench-holder";
    store
        .add_user(
            &gridlink_server::store::User {
                id: holder.into(),
                name: "基准".into(),
                role: Role::GridChief,
            },
            "bench",
        )
        .unwrap();
    let mut granted = 0;
    for g in &district.grids {
        if granted >= noop_target {
            break;
        }
        store
            .grant(holder, &format!("grid:{}", g.id).parse().unwrap(), "bench")
            .unwrap();
        granted += docs_in_grid(&store, &g.id);
    }
    let big = phone(holder, 1);
    big.store.sync(&big.http, &options, &()).unwrap();
    let held = big.store.document_ids().unwrap().len();
    let counting = Counting::new(&big.http);
    big.store.sync(&counting, &options, &()).unwrap();
    emit("noop_docs_held", held as f64, "docs");
    emit(
        "noop_round_trips",
        counting.trips.load(Ordering::Relaxed) as f64,
        "count",
    );
    emit(
        "noop_bytes",
        (counting.up.load(Ordering::Relaxed) + counting.down.load(Ordering::Relaxed)) as f64,
        "B",
    );

    // Merge throughput: enrolled devices, their requests built beforehand.
    let inspectors: Vec<&gridlink_fixtures::User> = district
        .users
        .iter()
        .filter(|u| u.role == "grid_inspector" && u.id != "insp-0001")
        .take(devices)
        .collect();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let mut bare = Vec::new();
    for (n, user) in inspectors.iter().enumerate() {
        let code = demo::enroll_code(&state, &user.id, 1, "bench").unwrap();
        let device = uuid::Uuid::new_v4().to_string();
        let enrollment =
            enroll(&HttpTransport::new(&url).unwrap(), &code, &device, "bench").unwrap();
        let prefix: [u8; 16] = enrollment.actor_prefix.as_slice().try_into().unwrap();
        // Catch up first, as a phone would have, so the measured requests pull little.
        let http = HttpTransport::new(&url)
            .unwrap()
            .with_token(&enrollment.token);
        let mut cursor = wire::Cursor::default();
        let mut ids = Vec::new();
        loop {
            let request = SyncRequest {
                protocol: wire::PROTOCOL_VERSION,
                request_id: format!("c{n}"),
                push: vec![],
                cursor,
                max_pull_bytes: 8 << 20,
                history: None,
            };
            let response: SyncResponse = wire::decode(
                &http.post("/v1/sync", &wire::encode(&request)).unwrap(),
                1 << 28,
            )
            .unwrap();
            ids.extend(response.pulled.iter().map(|p| p.doc_id.clone()));
            cursor = response.cursor;
            if !response.more {
                break;
            }
        }
        ids.sort();
        ids.dedup();
        let mut push = Vec::new();
        for id in ids.iter().take(per_device) {
            let stored = store.load_doc(id).unwrap().unwrap();
            let mut doc = CaseDoc::load(id, &stored.bytes).unwrap();
            let pristine = doc.clone();
            doc.set_actor(device_actor(&prefix, 0));
            let before = doc.heads();
            for k in 0..5 {
                let stamp = Stamp {
                    actor: user.id.clone(),
                    role: Role::GridInspector,
                    device: device.clone(),
                    at_ms: T0 + 86_400_000 + k,
                    location: None,
                };
                doc.record(
                    EventKind::Comment {
                        text: format!("第{k}条巡查记录"),
                    },
                    stamp,
                )
                .unwrap();
            }
            let changes = doc.save_after(&before);
            bare.push((pristine, changes.clone()));
            push.push(PushDoc {
                doc_id: id.clone(),
                changes,
            });
        }
        let request = SyncRequest {
            protocol: wire::PROTOCOL_VERSION,
            request_id: format!("m{n}"),
            push,
            cursor,
            max_pull_bytes: 8 << 20,
            history: None,
        };
        bodies.push((enrollment.token, wire::encode(&request)));
    }
    let merges: usize = bare.len();
    let queue = Mutex::new(bodies);
    let latencies = Mutex::new(Vec::new());
    let accepted = AtomicU64::new(0);
    note(format!("merging: {} requests", queue.lock().unwrap().len()));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let base = HttpTransport::new(&url).unwrap();
                loop {
                    let Some((token, body)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let out = base
                        .clone()
                        .with_token(&token)
                        .post("/v1/sync", &body)
                        .unwrap();
                    latencies
                        .lock()
                        .unwrap()
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    let response: SyncResponse = wire::decode(&out, 1 << 28).unwrap();
                    assert!(
                        response.rejections.is_empty(),
                        "{:?}",
                        response.rejections.first()
                    );
                    accepted.fetch_add(response.acks.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(accepted.load(Ordering::Relaxed) as usize, merges);
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies[((latencies.len() as f64 * 0.99).ceil() as usize)
        .saturating_sub(1)
        .min(latencies.len() - 1)];
    emit("merges_per_s", merges as f64 / wall, "merges/s");
    emit("sync_p99_ms", p99, "ms");
    emit("server_docs", store.doc_count().unwrap() as f64, "docs");

    let mut spent = 0.0;
    for (mut doc, changes) in bare {
        let t = Instant::now();
        doc.automerge().load_incremental(&changes).unwrap();
        spent += t.elapsed().as_secs_f64();
    }
    emit("bare_apply_per_s", merges as f64 / spent, "merges/s");

    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
    drop(state);
    let _ = std::fs::remove_dir_all(&root);
}

/// How many documents a grid holds.
fn docs_in_grid(store: &Arc<dyn ServerStore>, grid: &str) -> usize {
    store
        .docs_leaving(&[format!("grid:{grid}").parse().unwrap()], &[])
        .unwrap()
        .len()
}
