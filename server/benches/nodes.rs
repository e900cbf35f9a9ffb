//! `cargo xtask bench nodes` (beside `bench sync` on each backend): backups and restores, the
//! move to PostgreSQL, and several server nodes over one database. One JSON object per line:
//! `{"bench","metric","value","unit"}`.
//!
//! Setup: a SQLite data directory holding the fixture district and `--cases` cases (default
//! 100,000; `--scale full`: 1,215,000, nine months of the district), kept under
//! `target/bench-data/web-<cases>` and shared with `bench web`: seeding the full district takes
//! about an hour.
//!
//! - `backup_s_sqlite`, `backup_bytes_sqlite`, `restore_s_sqlite`: `gridlink-server backup` of
//!   that directory while it is open, and `restore` of the file into an empty directory;
//! - `move_to_postgres_s`: `gridlink-server move-to-postgres` into `--database` (empty);
//! - `backup_s_pg`, `backup_bytes_pg`, `restore_s_pg`: the README's PostgreSQL procedure,
//!   `pg_dump -Fc` of the moved database and `pg_restore -j 2` into a new one (`--pg-bindir`);
//! - `noop_syncs_per_s_1node`, `noop_syncs_per_s_3nodes`: `--phones` (100) enrolled inspectors'
//!   phones, holding their grid, reconnect with nothing new as fast as they can for
//!   `--seconds` (5), through one `gridlink-server serve` process, then through three over the
//!   same database (each phone keeps to one node, as behind a proxy with sticky sessions);
//!   `noop_throttled` counts answers the nodes' rate limits refused (0, or the figure is theirs);
//! - `takeover_s`, `sync_p99_ms_steady`, `sync_p99_ms_takeover`, `takeover_lost`: the phones
//!   each push an edit of one of their cases every 250 ms through their node, and after 3 s
//!   one node is SIGKILLed. Its phones' next sync fails over to the next node, as a proxy does
//!   on a refused or reset connection (every node merges: there is no merging node to elect).
//!   `takeover_s` is the longest time from the kill until a phone of the dead node had an edit
//!   acknowledged by another (their 250 ms pause included); the p99s are of syncs as the
//!   phones saw them, failover included, in the 2 s before the kill (after a first second in
//!   which every phone's first edit arrives at once) and the 5 s after; `takeover_lost` counts
//!   acknowledged edits missing from the database afterwards (must be 0).
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a quiet smoke test: the
//! SQLite backup and restore at a tiny size, and the rest only when `--database` is given.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use automerge::ChangeHash;
use gridlink_core::case::{EventKind, Role, Stamp};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::wire::{self, ErrorBody, PushDoc, SyncRequest, SyncResponse};
use gridlink_core::sync::{Transport, TransportError, device_actor, enroll, is_transient_status};
use gridlink_server::demo;
use gridlink_server::store::backup;
use gridlink_server::store::{DocumentStore, PgStore};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "nodes", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A phone's HTTP link to one node, arriving through a proxy that names the phone's own
/// address in `X-Forwarded-For` (the nodes run with `--trust-forwarded`, so the per-address
/// limits see phones, not the proxy).
#[derive(Clone)]
struct Via {
    client: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
    from: String,
}

impl Via {
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, TransportError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", &self.from);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
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
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
        Err(TransportError::Status {
            status: status.as_u16(),
            body,
        })
    }
}

impl Transport for Via {
    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.send(reqwest::Method::POST, path, Some(body))
    }
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.send(reqwest::Method::GET, path, None)
    }
    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.send(reqwest::Method::PUT, path, Some(body))
    }
}

/// A `gridlink-server serve` process over the shared database.
struct Node {
    addr: String,
    child: Option<Child>,
}

impl Node {
    fn start(dir: &Path, database: &str, n: usize) -> Node {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let data = dir.join(format!("node-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::File::create(dir.join(format!("node-{n}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gridlink-server"))
            .args([
                "serve",
                "--trust-forwarded",
                "--addr",
                &addr,
                "--database",
                database,
            ])
            .arg("--data")
            .arg(&data)
            .env("GRIDLINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let node = Node {
            addr,
            child: Some(child),
        };
        let health = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let answer = health
                .get(format!("{}/healthz", node.url()))
                .timeout(Duration::from_secs(2))
                .send();
            if answer.is_ok_and(|a| a.status().is_success()) {
                return node;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {n} did not answer /healthz within 60 s; see its log in {dir:?}");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An enrolled phone: its token, actor, place on the wire and one case it edits.
struct Phone {
    user: String,
    device: String,
    token: String,
    from: String,
    prefix: [u8; 16],
    cursor: wire::Cursor,
    history: Option<String>,
    doc_id: String,
}

impl Phone {
    fn via(&self, client: &reqwest::blocking::Client, node: &str) -> Via {
        Via {
            client: client.clone(),
            base: node.to_owned(),
            token: Some(self.token.clone()),
            from: self.from.clone(),
        }
    }

    fn request(&self, id: String, push: Vec<PushDoc>) -> Vec<u8> {
        wire::encode(&SyncRequest {
            protocol: wire::PROTOCOL_VERSION,
            request_id: id,
            push,
            cursor: self.cursor.clone(),
            max_pull_bytes: 8 << 20,
            history: self.history.clone(),
        })
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, measured: usize, smoke: usize| {
        value(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(if measuring { measured } else { smoke })
    };
    let full = value("--scale").as_deref() == Some("full");
    let cases = number("--cases", if full { 1_215_000 } else { 100_000 }, 30);
    let phones = number("--phones", 100, 6);
    let seconds = number("--seconds", 5, 1) as u64;
    let database = value("--database");
    let say = |line: String| {
        if measuring {
            eprintln!("{line}");
        }
    };
    let emit = |metric: &str, value: f64, unit: &str| {
        if measuring {
            emit(metric, value, unit);
        }
    };

    let scratch = std::env::temp_dir().join(format!("gridlink-nodes-{}", uuid::Uuid::new_v4()));
    let root = if measuring {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/bench-data")
            .join(format!("web-{cases}"))
    } else {
        scratch.join("district")
    };
    std::fs::create_dir_all(&scratch).unwrap();

    // The SQLite installation, kept between runs.
    let (store, state, district, reused) = demo::kept_bench_state(&root, cases, say).unwrap();
    if reused {
        say(format!("reusing {} ({cases} cases)", root.display()));
    }
    emit("cases", cases as f64, "cases");
    let data = root.join("server");

    let file = scratch.join("gridlink.backup");
    let started = Instant::now();
    let copied = backup::backup(&data, &file).unwrap();
    emit("backup_s_sqlite", started.elapsed().as_secs_f64(), "s");
    emit("backup_bytes_sqlite", copied.bytes as f64, "B");
    assert_eq!(copied.docs, store.doc_count().unwrap());
    drop((store, state));
    let target = scratch.join("restored");
    let started = Instant::now();
    let restored = backup::restore(&file, &target).unwrap();
    emit("restore_s_sqlite", started.elapsed().as_secs_f64(), "s");
    assert_eq!(restored.docs, copied.docs);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&target);

    let Some(database) = database else {
        let _ = std::fs::remove_dir_all(&scratch);
        if !measuring {
            let _ = std::fs::remove_dir_all(&root);
        }
        return;
    };

    // The move, and the PostgreSQL backup the README describes.
    let started = Instant::now();
    gridlink_server::store::postgres::move_from_sqlite(&data, &database).unwrap();
    emit("move_to_postgres_s", started.elapsed().as_secs_f64(), "s");
    if let Some(bindir) = value("--pg-bindir") {
        let bindir = PathBuf::from(bindir);
        let dump = scratch.join("gridlink.dump");
        let started = Instant::now();
        let status = Command::new(bindir.join("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(&dump)
            .args(["-d", &database])
            .status()
            .unwrap();
        assert!(status.success(), "pg_dump");
        emit("backup_s_pg", started.elapsed().as_secs_f64(), "s");
        emit(
            "backup_bytes_pg",
            std::fs::metadata(&dump).unwrap().len() as f64,
            "B",
        );
        let name = format!("restored_{}", std::process::id());
        postgres::Client::connect(&database, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let started = Instant::now();
        let status = Command::new(bindir.join("pg_restore"))
            .args(["-j", "2", "-d", &format!("{database} dbname={name}")])
            .arg(&dump)
            .status()
            .unwrap();
        assert!(status.success(), "pg_restore");
        emit("restore_s_pg", started.elapsed().as_secs_f64(), "s");
        let _ = std::fs::remove_file(&dump);
        postgres::Client::connect(&database, postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("DROP DATABASE {name}"))
            .unwrap();
    }

    // The phones, enrolled and caught up through one node.
    let pg = std::sync::Arc::new(PgStore::open(&database).unwrap());
    let admin = gridlink_server::AppState::new(
        pg.clone(),
        &scratch.join("admin-blobs"),
        gridlink_server::ServerConfig::default(),
    )
    .unwrap();
    let mut nodes = vec![Node::start(&scratch, &database, 0)];
    let http = client();
    let mut fleet: Vec<Phone> = district
        .users
        .iter()
        .filter(|u| u.role == "grid_inspector")
        .take(phones)
        .enumerate()
        .map(|(n, user)| {
            let from = format!("10.{}.{}.{}", n / 65_536, (n / 256) % 256, n % 256);
            let code = demo::enroll_code(&admin, &user.id, 1, "bench").unwrap();
            let device = uuid::Uuid::new_v4().to_string();
            let link = Via {
                client: http.clone(),
                base: nodes[0].url(),
                token: None,
                from: from.clone(),
            };
            let enrollment = enroll(&link, &code, &device, "bench").unwrap();
            Phone {
                user: user.id.clone(),
                device,
                token: enrollment.token,
                from,
                prefix: enrollment.actor_prefix.as_slice().try_into().unwrap(),
                cursor: wire::Cursor::default(),
                history: None,
                doc_id: String::new(),
            }
        })
        .collect();
    let started = Instant::now();
    let mut held = 0;
    for (n, phone) in fleet.iter_mut().enumerate() {
        let link = phone.via(&http, &nodes[0].url());
        let mut first = None;
        loop {
            let body = phone.request(format!("catch-up-{n}"), vec![]);
            let response: SyncResponse =
                wire::decode(&link.post("/v1/sync", &body).unwrap(), 1 << 28).unwrap();
            held += response.pulled.len();
            if first.is_none() {
                first = response.pulled.first().map(|p| p.doc_id.clone());
            }
            phone.cursor = response.cursor;
            phone.history = response.history;
            if !response.more {
                break;
            }
        }
        phone.doc_id = first.expect("every inspector's grid holds cases");
    }
    say(format!(
        "{} phones caught up ({held} documents) in {:.0} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    ));

    // Reconnects with nothing new: one node, then three.
    let noop = |fleet: &[Phone], urls: &[String]| -> (f64, u64) {
        let done = AtomicU64::new(0);
        let throttled = AtomicU64::new(0);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (n, phone) in fleet.iter().enumerate() {
                let link = phone.via(&http, &urls[n % urls.len()]);
                let (done, throttled) = (&done, &throttled);
                scope.spawn(move || {
                    let body = phone.request(format!("noop-{n}"), vec![]);
                    while Instant::now() < deadline {
                        match link.post("/v1/sync", &body) {
                            Ok(out) => {
                                let response: SyncResponse = wire::decode(&out, 1 << 28).unwrap();
                                assert!(response.pulled.is_empty() && !response.more);
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(TransportError::Status { status: 429, .. }) => {
                                throttled.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            Err(e) => panic!("no-op sync: {e}"),
                        }
                    }
                });
            }
        });
        (
            done.into_inner() as f64 / started.elapsed().as_secs_f64(),
            throttled.into_inner(),
        )
    };
    let (one, throttled_one) = noop(&fleet, &[nodes[0].url()]);
    emit("noop_syncs_per_s_1node", one, "syncs/s");
    nodes.push(Node::start(&scratch, &database, 1));
    nodes.push(Node::start(&scratch, &database, 2));
    let urls: Vec<String> = nodes.iter().map(Node::url).collect();
    let (three, throttled_three) = noop(&fleet, &urls);
    emit("noop_syncs_per_s_3nodes", three, "syncs/s");
    emit(
        "noop_throttled",
        (throttled_one + throttled_three) as f64,
        "answers",
    );

    // Edits while a node dies.
    let origin = Instant::now();
    // The first second is the herd: every phone's first edit at once.
    let warm = Duration::from_secs(1);
    let kill_at = Duration::from_secs(3);
    let end_at = kill_at + Duration::from_secs(5);
    // When the node died, in µs since `origin` (0: not yet).
    let killed = AtomicU64::new(0);
    // (started, latency ms) of every sync; per phone of the dead node, its first ack by another.
    let syncs = Mutex::new(Vec::<(Duration, f64)>::new());
    let recovered = Mutex::new(Vec::<Duration>::new());
    let retried = AtomicU64::new(0);
    let nodes = Mutex::new(nodes);
    let pg = &pg;
    let acked: Vec<(String, Vec<ChangeHash>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = fleet
            .iter()
            .enumerate()
            .map(|(n, phone)| {
                let (urls, syncs, recovered, killed, retried) =
                    (&urls, &syncs, &recovered, &killed, &retried);
                let http = http.clone();
                scope.spawn(move || {
                    let stored = pg.load_doc(&phone.doc_id).unwrap().unwrap();
                    let mut doc = CaseDoc::load(&phone.doc_id, &stored.bytes).unwrap();
                    doc.set_actor(device_actor(&phone.prefix, 0));
                    let mut acked = doc.heads();
                    let home = n % urls.len();
                    let mut node = home;
                    let mut waiting = home == 0;
                    let mut k = 0;
                    while origin.elapsed() < end_at {
                        k += 1;
                        doc.record(
                            EventKind::Comment {
                                text: format!("第{k}条巡查记录"),
                            },
                            Stamp {
                                actor: phone.user.clone(),
                                role: Role::GridInspector,
                                device: phone.device.clone(),
                                at_ms: gridlink_server::now_ms(),
                                location: None,
                            },
                        )
                        .unwrap();
                        let heads = doc.heads();
                        let body = phone.request(
                            format!("edit-{n}-{k}"),
                            vec![PushDoc {
                                doc_id: phone.doc_id.clone(),
                                changes: doc.save_after(&acked),
                            }],
                        );
                        let sent = origin.elapsed();
                        let response = loop {
                            match phone.via(&http, &urls[node]).post("/v1/sync", &body) {
                                Ok(out) => {
                                    break wire::decode::<SyncResponse>(&out, 1 << 28).unwrap();
                                }
                                // A refused or reset connection: the proxy tries the next node.
                                Err(TransportError::Unreachable(_)) => {
                                    node = (node + 1) % urls.len();
                                    retried.fetch_add(1, Ordering::Relaxed);
                                }
                                // Retry later (another node wrote first, the database is busy).
                                Err(TransportError::Status { status, .. })
                                    if is_transient_status(status) =>
                                {
                                    retried.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                                Err(e) => panic!("edit refused: {e}"),
                            }
                        };
                        let now = origin.elapsed();
                        assert!(response.rejections.is_empty(), "{:?}", response.rejections);
                        assert!(response.acks.iter().any(|a| a.doc_id == phone.doc_id));
                        acked = heads;
                        syncs
                            .lock()
                            .unwrap()
                            .push((sent, (now - sent).as_secs_f64() * 1000.0));
                        let death = killed.load(Ordering::SeqCst);
                        if waiting && death > 0 && node != 0 {
                            waiting = false;
                            recovered
                                .lock()
                                .unwrap()
                                .push(now.saturating_sub(Duration::from_micros(death)));
                        }
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    (phone.doc_id.clone(), acked)
                })
            })
            .collect();
        let wait = kill_at.saturating_sub(origin.elapsed());
        std::thread::sleep(wait);
        nodes.lock().unwrap()[0].kill();
        killed.store(origin.elapsed().as_micros().max(1) as u64, Ordering::SeqCst);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let death = Duration::from_micros(killed.into_inner());
    let recovered = recovered.into_inner().unwrap();
    let dead_phones = fleet.len().div_ceil(urls.len());
    assert_eq!(
        recovered.len(),
        dead_phones,
        "every phone of the dead node synced again"
    );
    let takeover = recovered.iter().max().copied().unwrap_or_default();
    emit("takeover_s", takeover.as_secs_f64(), "s");
    let syncs = syncs.into_inner().unwrap();
    let mut steady: Vec<f64> = syncs
        .iter()
        .filter(|(at, _)| *at >= warm && *at < death)
        .map(|(_, ms)| *ms)
        .collect();
    let mut during: Vec<f64> = syncs
        .iter()
        .filter(|(at, _)| *at >= death && *at < death + Duration::from_secs(5))
        .map(|(_, ms)| *ms)
        .collect();
    steady.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    emit("sync_p99_ms_steady", percentile(&steady, 99.0), "ms");
    emit("sync_p99_ms_takeover", percentile(&during, 99.0), "ms");
    emit("takeover_edits", syncs.len() as f64, "edits");
    emit(
        "takeover_retries",
        retried.load(Ordering::Relaxed) as f64,
        "requests",
    );
    let mut lost = 0;
    for (doc_id, heads) in &acked {
        let stored = pg.load_doc(doc_id).unwrap().unwrap();
        let mut doc = CaseDoc::load(doc_id, &stored.bytes).unwrap();
        lost += heads
            .iter()
            .filter(|h| doc.automerge().get_change_by_hash(h).is_none())
            .count();
    }
    emit("takeover_lost", lost as f64, "edits");
    assert_eq!(lost, 0, "acknowledged edits missing from the database");

    drop(nodes);
    let _ = std::fs::remove_dir_all(&scratch);
}
