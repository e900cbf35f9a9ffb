//! `cargo xtask bench hostile`: what abusive clients cost the server. One JSON object per line:
//! `{"bench","metric","value","unit"}`.
//!
//! The real server binary over a fresh data directory with the fixture district (under
//! `target/bench-data/hostile`), on 127.0.0.1. After it settles, its resident memory is read
//! from `/proc` (`idle_rss_mb`). Then 50 abusive clients, each from its own loopback source
//! address (127.0.0.2 …, so that each meets the per-address bounds as a real client would),
//! attack it for `--seconds` (30) while a prober on 127.0.0.1 asks `GET /healthz` on a new
//! connection every 50 ms (`abuse_healthz_p50_ms`, `abuse_healthz_p99_ms`, failures counted in
//! `abuse_healthz_failed`) and the server's RSS is sampled every 100 ms
//! (`abuse_peak_rss_mb`). Targets: peak ≤ 1.5 × idle + 256 MB, p99 ≤ 200 ms.
//!
//! The abuses, ten clients each:
//! - slow headers: as many connections as the server lets one address hold, each sending a
//!   request's headers a byte a second (the header deadline must cut them);
//! - oversized bodies without credentials: `POST /v1/sync` announcing 64 MiB with a bad token
//!   and streaming it, and 1 MiB bodies to the anonymous `POST /v1/enroll`;
//! - many idle connections, reopened whenever the server closes them;
//! - bogus sync bodies from an enrolled device: random bytes and a zlib bomb (64 MiB of zeros
//!   in ~64 KiB), as fast as the answers come;
//! - junk: bytes that are not HTTP, and a megabyte of header.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a short smoke run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "hostile", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Resident memory of a process, MB (from `/proc/PID/status`).
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn cli(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .env("GRIDLINK_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `GET /healthz` on a new connection; the time to the whole answer, ms, if it was a 200.
fn probe(addr: SocketAddr) -> Option<f64> {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    answer
        .starts_with(b"HTTP/1.1 200")
        .then(|| started.elapsed().as_secs_f64() * 1000.0)
}

async fn connect(
    source: std::net::IpAddr,
    to: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads whatever answer comes (up to a bound), ignoring errors.
async fn drain(stream: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 16 << 10];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
}

struct Abuse {
    to: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl Abuse {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    async fn slow_headers(self: Arc<Self>, source: std::net::IpAddr, connections: usize) {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let abuse = self.clone();
            tasks.push(tokio::spawn(async move {
                while abuse.running() {
                    let Ok(mut stream) = connect(source, abuse.to).await else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    abuse.requests.fetch_add(1, Ordering::Relaxed);
                    if stream
                        .write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    while abuse.running() && stream.write_all(b"a").await.is_ok() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn oversized(self: Arc<Self>, source: std::net::IpAddr) {
        let chunk = vec![b'x'; 1 << 20];
        let mut turn = 0u64;
        while self.running() {
            turn += 1;
            let Ok(mut stream) = connect(source, self.to).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let head = if turn.is_multiple_of(2) {
                format!(
                    "POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer forged\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    gridlink_core::sync::wire::CONTENT_TYPE,
                    64u64 << 20
                )
            } else {
                format!(
                    "POST /v1/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    chunk.len()
                )
            };
            if stream.write_all(head.as_bytes()).await.is_err() {
                continue;
            }
            for _ in 0..64 {
                if !self.running() || stream.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            drain(&mut stream).await;
        }
    }

    async fn idle_connections(self: Arc<Self>, source: std::net::IpAddr, connections: usize) {
        let mut held: Vec<tokio::net::TcpStream> = Vec::new();
        while self.running() {
            held.retain(|s| {
                let mut probe = [0u8; 1];
                // An open idle connection has nothing to read; a closed one reads 0 bytes.
                matches!(s.try_read(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
            });
            while held.len() < connections && self.running() {
                match connect(source, self.to).await {
                    Ok(stream) => {
                        self.requests.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn bogus_sync(self: Arc<Self>, source: std::net::IpAddr, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let bomb = {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..64 {
                z.write_all(&zeros).unwrap();
            }
            z.finish().unwrap()
        };
        while self.running() {
            let Ok(mut stream) = connect(source, self.to).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            for _ in 0..20 {
                if !self.running() {
                    break;
                }
                let body = if rng.bool() {
                    bomb.clone()
                } else {
                    (0..rng.usize(1..256 << 10)).map(|_| rng.u8(..)).collect()
                };
                let head = format!(
                    "POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    self.token,
                    gridlink_core::sync::wire::CONTENT_TYPE,
                    body.len()
                );
                self.requests.fetch_add(1, Ordering::Relaxed);
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(&body).await.is_err()
                {
                    break;
                }
                let mut answer = vec![0u8; 64 << 10];
                match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await
                {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
            }
        }
    }

    async fn junk(self: Arc<Self>, source: std::net::IpAddr, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        while self.running() {
            let Ok(mut stream) = connect(source, self.to).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let sent = if rng.bool() {
                let noise: Vec<u8> = (0..rng.usize(1..64 << 10)).map(|_| rng.u8(..)).collect();
                stream.write_all(&noise).await
            } else {
                let mut head = b"GET /healthz HTTP/1.1\r\nX-Huge: ".to_vec();
                head.extend(std::iter::repeat_n(b'h', 1 << 20));
                head.extend_from_slice(b"\r\n\r\n");
                stream.write_all(&head).await
            };
            if sent.is_ok() {
                drain(&mut stream).await;
            }
        }
    }
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
    let seconds: u64 = value("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 30 } else { 2 });
    let clients: usize = value("--clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 50 } else { 10 });
    // One kind of abuse alone (slow, oversized, idle, bogus, junk), to find what costs.
    let only: Option<usize> = value("--only").map(|kind| {
        ["slow", "oversized", "idle", "bogus", "junk"]
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("--only takes slow, oversized, idle, bogus or junk"))
    });
    let bin = env!("CARGO_BIN_EXE_gridlink-server");
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench-data")
        .join(format!("hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_arg = data.to_string_lossy().into_owned();
    cli(bin, &["import-fixtures", "--data", &data_arg]);
    let code = cli(
        bin,
        &["enroll-code", "--data", &data_arg, "--user", "insp-0001"],
    );
    let addr: SocketAddr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap()
    };
    let mut server = Command::new(bin)
        .args(["serve", "--data", &data_arg, "--addr", &addr.to_string()])
        .env("GRIDLINK_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe(addr).is_none() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let enrollment = gridlink_core::sync::enroll(
        &gridlink_core::sync::HttpTransport::new(&format!("http://{addr}")).unwrap(),
        code.lines().last().unwrap(),
        &uuid::Uuid::new_v4().to_string(),
        "压力测试手机",
    )
    .unwrap();

    // Idle: settled after start and a few ordinary requests.
    for _ in 0..20 {
        probe(addr);
    }
    std::thread::sleep(Duration::from_secs(if measuring { 3 } else { 1 }));
    let idle = rss_mb(pid).unwrap_or(f64::NAN);

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(std::sync::Mutex::new(idle));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss_mb(pid) {
                    let mut peak = peak.lock().unwrap();
                    *peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut times, mut failed) = (Vec::new(), 0u64);
            // Let the abuse build up first.
            std::thread::sleep(Duration::from_millis(500));
            while !stop.load(Ordering::Relaxed) {
                match probe(addr) {
                    Some(ms) => times.push(ms),
                    None => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (times, failed)
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let abuse = Arc::new(Abuse {
        to: addr,
        token: enrollment.token,
        stop: stop.clone(),
        requests: requests.clone(),
    });
    let per_address = gridlink_server::conn::ConnLimits::default().per_address + 44;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let source = std::net::IpAddr::from([127, 0, (2 + i / 250) as u8, (2 + i % 250) as u8]);
            let abuse = abuse.clone();
            runtime.spawn(async move {
                match only.unwrap_or(i % 5) {
                    0 => abuse.slow_headers(source, per_address).await,
                    1 => abuse.oversized(source).await,
                    2 => abuse.idle_connections(source, per_address).await,
                    3 => abuse.bogus_sync(source, i as u64).await,
                    _ => abuse.junk(source, i as u64).await,
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut times, failed) = prober.join().unwrap();
    sampler.join().unwrap();
    runtime.block_on(async {
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let survived = server.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data);
    assert!(survived, "the server died under the abuse");

    times.sort_by(f64::total_cmp);
    let peak = *peak.lock().unwrap();
    if measuring {
        emit("clients", clients as f64, "clients");
        emit("abuse_seconds", seconds as f64, "s");
        emit(
            "abuse_connections_and_requests",
            requests.load(Ordering::Relaxed) as f64,
            "count",
        );
        emit("idle_rss_mb", idle, "MB");
        emit("abuse_peak_rss_mb", peak, "MB");
        emit("abuse_peak_rss_target_mb", 1.5 * idle + 256.0, "MB");
        emit("abuse_healthz_p50_ms", percentile(&times, 50.0), "ms");
        emit("abuse_healthz_p99_ms", percentile(&times, 99.0), "ms");
        emit("abuse_healthz_probes", times.len() as f64, "count");
        emit("abuse_healthz_failed", failed as f64, "count");
    } else {
        assert!(
            !times.is_empty(),
            "no health probe answered ({failed} failed)"
        );
    }
}
