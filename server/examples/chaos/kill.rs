//! The kill campaign: the real server binary and three phone processes under a sync and photo
//! workload; at each point the server or one phone gets SIGKILL. Then every phone finishes
//! syncing and each promise is checked: every document on a phone loads, every edit a phone
//! made is still on it, and every edit and photo is in the server's stored record (unless the
//! server refused the edit and told its author).
//!
//! With `--nodes N --database URL --s3 ENDPOINT`, N server processes share one PostgreSQL
//! database and one bucket (ADR 0014); each phone syncs through a node picked at random for
//! each sync, over a link that drops, duplicates, holds back and reorders requests, and at
//! every point one node gets SIGKILL (and a phone, one point in three).

use crate::{emit, fast_sync, fast_upload};
use anyhow::{Context, Result, bail};
use gridlink_core::case::Role;
use gridlink_core::store::{PhotoState, Store, StoreConfig};
use gridlink_core::sync::HttpTransport;
use gridlink_server::store::{DocumentStore, PgStore, SqliteStore};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Points between two checks of everything made so far (each point checks what it made).
const FULL_CHECK_EVERY: u64 = 25;

pub struct Plan {
    pub points: u64,
    pub seed: u64,
    pub server_bin: PathBuf,
    pub dir: PathBuf,
    /// Server processes (more than one needs `database` and `s3`).
    pub nodes: usize,
    /// The district master on PostgreSQL instead of a SQLite data directory.
    pub database: Option<String>,
    /// An S3 endpoint whose bucket holds the photos (shared by the nodes).
    pub s3: Option<String>,
    /// A shell command that kills the database's primary and promotes its standby, run at
    /// the middle point instead of killing a node (the phones keep syncing meanwhile).
    pub failover: Option<String>,
}

/// The bucket of a campaign's photos on `--s3`.
const BUCKET: &str = "gridlink-chaos";

/// One enrolled phone of the campaign.
struct PhoneSpec {
    db: PathBuf,
    device: String,
    user: String,
    role: Role,
    grid: String,
    token: String,
}

/// What the phones said they did (see `phone.rs`), by phone.
#[derive(Default)]
struct Ledger {
    /// (phone, doc, event).
    made: Vec<(usize, String, String)>,
    acked: HashSet<String>,
    /// (phone, doc, hash).
    photos: Vec<(usize, String, String)>,
    photos_acked: HashSet<String>,
}

/// A server process, restarted on the same address.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    /// `--database`, `--blobs` and what else every command of the installation takes.
    shared: Vec<String>,
    env: Vec<(String, String)>,
    addr: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(["serve", "--data"])
            .arg(&self.data)
            .args(&self.shared)
            .args(["--addr", &self.addr])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("GRIDLINK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if healthy(&self.addr) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "the server exited at start ({status}); see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the server did not answer /healthz within 30 s")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn healthy(addr: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn free_addr() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

fn cli(bin: &Path, args: &[&str], server: &Server) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .args(&server.shared)
        .envs(server.env.iter().map(|(k, v)| (k, v)))
        .env("GRIDLINK_LOG", "warn")
        .output()?;
    if !out.status.success() {
        bail!(
            "{} {}: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub fn campaign(plan: &Plan) -> Result<()> {
    let root = std::fs::canonicalize(plan.dir.parent().unwrap_or(Path::new(".")))
        .unwrap_or_default()
        .join(plan.dir.file_name().unwrap_or_default())
        .join(format!("kill-{}", plan.seed));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    if plan.nodes > 1 && (plan.database.is_none() || plan.s3.is_none()) {
        bail!(
            "--nodes {} needs --database URL and --s3 ENDPOINT",
            plan.nodes
        );
    }
    let mut shared = Vec::new();
    let mut env = Vec::new();
    if let Some(url) = &plan.database {
        shared.extend(["--database".to_owned(), url.clone()]);
    }
    let blob_options = plan.s3.as_ref().map(|endpoint| {
        vec![
            ("AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "gridlink-chaos".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                "gridlink-chaos-secret".to_owned(),
            ),
            ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP".to_owned(), "true".to_owned()),
        ]
    });
    let blob_url = format!("s3://{BUCKET}/kill-{}", plan.seed);
    if let (Some(endpoint), Some(options)) = (&plan.s3, &blob_options) {
        make_bucket(endpoint)?;
        shared.extend(["--blobs".to_owned(), blob_url.clone()]);
        env.extend(options.iter().cloned());
    }
    let mut servers: Vec<Server> = Vec::new();
    for node in 0..plan.nodes.max(1) {
        servers.push(Server {
            bin: plan.server_bin.clone(),
            data: root.join(if node == 0 {
                "server".to_owned()
            } else {
                format!("server-{node}")
            }),
            shared: shared.clone(),
            env: env.clone(),
            addr: free_addr()?,
            log: root.join(format!("server-{node}.log")),
            child: None,
        });
    }
    let data = servers[0].data.clone();
    let data_arg = data.to_string_lossy().into_owned();
    cli(
        &plan.server_bin,
        &["import-fixtures", "--data", &data_arg],
        &servers[0],
    )?;
    for server in &mut servers {
        server.start()?;
    }
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let url = urls[0].clone();
    let mut phones = Vec::new();
    for (n, user) in ["insp-0001", "insp-0001", "chief-0001"]
        .into_iter()
        .enumerate()
    {
        let code = cli(
            &plan.server_bin,
            &["enroll-code", "--data", &data_arg, "--user", user],
            &servers[0],
        )?;
        let device = uuid::Uuid::new_v4().to_string();
        let enrollment = gridlink_core::sync::enroll(
            &HttpTransport::new(&url)?,
            code.lines().last().unwrap_or_default(),
            &device,
            "混沌测试手机",
        )?;
        let db = root.join(format!("phone-{n}.sqlite"));
        let store = Store::open(&db, StoreConfig::new(&device, user, enrollment.role))?;
        store.set_enrollment(&enrollment)?;
        let grid = if enrollment.role == Role::GridInspector {
            enrollment
                .scopes
                .iter()
                .find_map(|s| s.strip_prefix("grid:"))
                .unwrap_or_default()
                .to_owned()
        } else {
            String::new()
        };
        phones.push(PhoneSpec {
            db,
            device,
            user: user.to_owned(),
            role: enrollment.role,
            grid,
            token: enrollment.token,
        });
    }

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let (mut server_kills, mut phone_kills, mut hung, mut unsynced) = (0u64, 0u64, 0u64, 0u64);
    let mut failover_s: Option<f64> = None;
    let mut lost: Vec<String> = Vec::new();
    let (mut checked_made, mut checked_photos) = (0usize, 0usize);
    for point in 0..plan.points {
        let stop = root.join("stop");
        let _ = std::fs::remove_file(&stop);
        let mut workers = Vec::new();
        let mut readers = Vec::new();
        for (n, phone) in phones.iter().enumerate() {
            let mut child = Command::new(std::env::current_exe()?)
                .arg("phone")
                .arg("--db")
                .arg(&phone.db)
                .args(["--device", &phone.device, "--user", &phone.user])
                .args([
                    "--role",
                    phone.role.code(),
                    "--url",
                    &urls.join(","),
                    "--grid",
                    &phone.grid,
                ])
                .args([
                    "--seed",
                    &(plan.seed * 1_000_003 + point * 7 + n as u64).to_string(),
                ])
                .arg("--stop")
                .arg(&stop)
                .stdout(Stdio::piped())
                .spawn()?;
            let out = child.stdout.take().context("the phone's stdout")?;
            let ledger = ledger.clone();
            readers.push(std::thread::spawn(move || read_ledger(n, out, &ledger)));
            workers.push(child);
        }
        std::thread::sleep(Duration::from_millis(rng.u64(100..1500)));
        if let Some(command) = plan.failover.as_ref().filter(|_| point == plan.points / 2) {
            // The database's primary dies under load; its synchronous standby takes over and
            // the nodes find it (a multi-host connection string, read-write sessions only).
            let started = Instant::now();
            let status = Command::new("sh").args(["-c", command]).status()?;
            if !status.success() {
                bail!("the failover command failed ({status}): {command}");
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while !servers.iter().all(|s| healthy(&s.addr)) {
                if Instant::now() > deadline {
                    bail!("the nodes did not reach the promoted standby within 60 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            failover_s = Some(started.elapsed().as_secs_f64());
            eprintln!(
                "point {point}: primary killed and standby promoted; every node serves again after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        } else if servers.len() > 1 {
            // Any node may be merging (every node merges): one of them dies at each point.
            server_kills += 1;
            let victim = rng.usize(..servers.len());
            servers[victim].kill();
            if rng.u8(0..3) == 0 {
                phone_kills += 1;
                let phone = rng.usize(..workers.len());
                let _ = workers[phone].kill();
            }
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
            servers[victim].start()?;
        } else if rng.bool() {
            server_kills += 1;
            servers[0].kill();
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
            servers[0].start()?;
        } else {
            phone_kills += 1;
            let victim = rng.usize(..workers.len());
            let _ = workers[victim].kill();
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        std::fs::write(&stop, b"")?;
        for mut worker in workers {
            let deadline = Instant::now() + Duration::from_secs(60);
            while worker.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    hung += 1;
                    eprintln!("point {point}: a phone did not stop within 60 s");
                    let _ = worker.kill();
                    let _ = worker.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for reader in readers {
            let _ = reader.join();
        }

        // Every phone: its documents load, its own edits are still on it, and it finishes
        // syncing against the restarted server.
        let ledger = ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // What this point made is checked after it; everything made so far every
        // FULL_CHECK_EVERY points and after the last, so a long campaign stays linear and
        // still proves at the end that nothing acknowledged is missing.
        let full = (point + 1) % FULL_CHECK_EVERY == 0 || point + 1 == plan.points;
        let (made_from, photos_from) = if full {
            (0, 0)
        } else {
            (checked_made, checked_photos)
        };
        let made_docs: HashSet<(usize, &str)> = ledger
            .made
            .iter()
            .map(|(p, d, _)| (*p, d.as_str()))
            .collect();
        let touched: HashSet<&str> = ledger.made[made_from..]
            .iter()
            .map(|(_, d, _)| d.as_str())
            .collect();
        for (n, phone) in phones.iter().enumerate() {
            let store = Store::open(
                &phone.db,
                StoreConfig::new(&phone.device, &phone.user, phone.role),
            )
            .with_context(|| format!("point {point}: phone {n} does not open after the kill"))?;
            let refused = refused_events(&store)?;
            for doc in store.document_ids()? {
                if uuid::Uuid::parse_str(&doc).is_ok() && (full || touched.contains(doc.as_str())) {
                    store.case(&doc).with_context(|| {
                        format!("point {point}: phone {n}: {doc} does not load")
                    })?;
                }
            }
            for (_, doc, event) in ledger.made[made_from..].iter().filter(|(p, _, _)| *p == n) {
                if !refused.contains(event) && !has_event(&store, doc, event) {
                    lost.push(format!(
                        "point {point}: phone {n} lost its own {event} of {doc}"
                    ));
                }
            }
            // Each phone finishes through a node of its own this point.
            let transport = HttpTransport::new(&urls[(n + point as usize) % urls.len()])?
                .with_token(&phone.token);
            let expected: Vec<&String> = ledger.photos[photos_from..]
                .iter()
                .filter(|(p, doc, _)| *p == n && made_docs.contains(&(n, doc.as_str())))
                .map(|(_, _, hash)| hash)
                .collect();
            let mut done = false;
            for _ in 0..5 {
                store.retry_all_photos_now()?;
                if let Err(e) = store.sync(&transport, &fast_sync(20), &()) {
                    eprintln!("point {point}: phone {n}: {e}");
                }
                if let Err(e) = store.upload_photos(&transport, &fast_upload(20), &()) {
                    eprintln!("point {point}: phone {n}: {e}");
                }
                let photos_up = expected.iter().all(|hash| {
                    store
                        .photo_status(hash)
                        .is_ok_and(|s| s.state == PhotoState::Uploaded)
                });
                if photos_up && store.unacknowledged()?.is_empty() {
                    done = true;
                    break;
                }
            }
            if !done {
                unsynced += 1;
                let waiting: Vec<String> = expected
                    .iter()
                    .filter_map(|hash| {
                        let status = store.photo_status(hash).ok()?;
                        (status.state != PhotoState::Uploaded)
                            .then(|| format!("{hash}: {:?}", status.state))
                    })
                    .collect();
                eprintln!(
                    "point {point}: phone {n} did not finish syncing in 5 syncs (unacknowledged: {:?}; photos waiting: {waiting:?})",
                    store.unacknowledged()?
                );
            }
        }

        // The server's stored record: every edit not refused, every photo of a saved report.
        let stored: Box<dyn DocumentStore> = match &plan.database {
            Some(url) => Box::new(PgStore::open(url)?),
            None => Box::new(SqliteStore::open(&data)?),
        };
        let blobs = match &blob_options {
            Some(options) => {
                let options: Vec<(&str, &str)> = options
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                gridlink_server::blobs::BlobStore::open_s3_with(&blob_url, &options)?
            }
            None => gridlink_server::blobs::BlobStore::open(&data.join("blobs"))?,
        };
        let mut refused = HashSet::new();
        for phone in &phones {
            let store = Store::open(
                &phone.db,
                StoreConfig::new(&phone.device, &phone.user, phone.role),
            )?;
            refused.extend(refused_events(&store)?);
        }
        let mut docs: HashMap<String, HashSet<String>> = HashMap::new();
        for (_, doc, event) in &ledger.made[made_from..] {
            if refused.contains(event) {
                continue;
            }
            if !docs.contains_key(doc) {
                docs.insert(doc.clone(), server_events(&*stored, doc)?);
            }
            if !docs[doc].contains(event) {
                let acked = if ledger.acked.contains(event) {
                    "acknowledged "
                } else {
                    ""
                };
                lost.push(format!(
                    "point {point}: the server lacks the {acked}{event} of {doc}"
                ));
            }
        }
        for (_, doc, hash) in &ledger.photos[photos_from..] {
            if docs.contains_key(doc) && !blobs.has(hash).unwrap_or(false) {
                let acked = if ledger.photos_acked.contains(hash) {
                    "acknowledged "
                } else {
                    ""
                };
                lost.push(format!(
                    "point {point}: the server lacks the {acked}photo {hash}"
                ));
            }
        }
        (checked_made, checked_photos) = (ledger.made.len(), ledger.photos.len());
        if full {
            eprintln!(
                "chaos kill: {} points, {} edits made, {} acknowledged, {} lost so far",
                point + 1,
                ledger.made.len(),
                ledger.acked.len(),
                lost.len()
            );
        }
        if !lost.is_empty() || hung > 0 {
            break;
        }
    }

    let ledger = ledger
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    emit(
        "chaos_kill",
        "kill_points",
        (server_kills + phone_kills) as f64,
        "points",
    );
    emit("chaos_kill", "server_kills", server_kills as f64, "kills");
    if let Some(seconds) = failover_s {
        emit("chaos_kill", "failover_s", seconds, "s");
    }
    emit("chaos_kill", "phone_kills", phone_kills as f64, "kills");
    emit(
        "chaos_kill",
        "made_edits",
        ledger.made.len() as f64,
        "edits",
    );
    emit(
        "chaos_kill",
        "acknowledged_edits",
        ledger.acked.len() as f64,
        "edits",
    );
    emit("chaos_kill", "photos", ledger.photos.len() as f64, "photos");
    emit(
        "chaos_kill",
        "acknowledged_photos",
        ledger.photos_acked.len() as f64,
        "photos",
    );
    emit("chaos_kill", "unsynced_phones", unsynced as f64, "phones");
    emit("chaos_kill", "hung_phones", hung as f64, "phones");
    emit("chaos_kill", "lost_edits", lost.len() as f64, "edits");
    for line in &lost {
        eprintln!("LOST: {line}");
    }
    if !lost.is_empty() || hung > 0 || unsynced > 0 {
        bail!(
            "chaos kill: {} lost, {hung} hung, {unsynced} unsynced (seed {}; server logs in {})",
            lost.len(),
            plan.seed,
            root.display()
        );
    }
    Ok(())
}

fn read_ledger(phone: usize, out: std::process::ChildStdout, ledger: &Mutex<Ledger>) {
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut ledger = ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match words.as_slice() {
            ["made", doc, event] => ledger.made.push((phone, (*doc).into(), (*event).into())),
            ["photo", doc, hash] => ledger.photos.push((phone, (*doc).into(), (*hash).into())),
            ["acked", event] => {
                ledger.acked.insert((*event).into());
            }
            ["photo_acked", hash] => {
                ledger.photos_acked.insert((*hash).into());
            }
            _ => {}
        }
    }
}

fn refused_events(store: &Store) -> Result<HashSet<String>> {
    Ok(store
        .rejected_edits()?
        .into_iter()
        .map(|r| r.event.id)
        .collect())
}

fn has_event(store: &Store, doc: &str, event: &str) -> bool {
    store
        .case(doc)
        .is_ok_and(|case| case.history.iter().any(|e| e.id == event))
}

/// Makes the campaign's bucket (the test store runs without access control).
fn make_bucket(endpoint: &str) -> Result<()> {
    let made = reqwest::blocking::Client::new()
        .put(format!("{}/{BUCKET}", endpoint.trim_end_matches('/')))
        .send()
        .with_context(|| format!("the S3 endpoint {endpoint}"))?;
    if !(made.status().is_success() || made.status() == reqwest::StatusCode::CONFLICT) {
        bail!("making bucket {BUCKET}: HTTP {}", made.status());
    }
    Ok(())
}

fn server_events(stored: &dyn DocumentStore, doc: &str) -> Result<HashSet<String>> {
    let Some(found) = stored.load_doc(doc)? else {
        return Ok(HashSet::new());
    };
    let case = gridlink_core::doc::CaseDoc::load(doc, &found.bytes)?.case()?;
    Ok(case.history.into_iter().map(|e| e.id).collect())
}
