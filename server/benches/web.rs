//! `cargo xtask bench web`: the command centre and Open311 under load. One JSON object per
//! line: `{"bench","metric","value","unit"}`.
//!
//! Setup: a real server (SQLite data directory, the fixture district) holding `--cases` cases
//! reported over the 270 days before now, seeded through the real merge path (default 100,000;
//! `--scale full`: 1,215,000, the district's nine months at ~4,500 a day). Seeding takes about
//! an hour at full scale, so the data directory is kept (`--data DIR`, default
//! `target/bench-data/web-<cases>`) and reused while it holds the same number of cases.
//!
//! Then `--clients` (50) concurrent clients on loopback each send `--requests` (20) requests
//! to one page at a time, after a warm-up round:
//! - `case_list_*_ms`: the case list's first page (`/web/cases`), as a district operator;
//! - `stats_*_ms`: the statistics page (`/web/stats`, the last 30 days);
//! - `search_*_ms`: the case list searched for a word many titles hold (垃圾), with its total;
//!   `search_number_*` for the first eight characters of a case number;
//! - `open311_*_ms`: Open311 `GET requests.json` (the spec's defaults: the last 90 days, up
//!   to 1,000 requests); `open311_page100_*` the same with `page_size=100`.
//!
//! Latency is measured by the clients, from sending the request to the last byte of the body.
//! `*_first_ms` is the first request of each page alone, before the warm-up: for the
//! statistics page, the cost of computing its figures (cached afterwards until a change is
//! stored, or for a minute).
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a quiet smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_server::{demo, open311, web};
use std::time::{Duration, Instant};

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "web", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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
    let full = value("--scale").as_deref() == Some("full");
    let cases: usize =
        value("--cases")
            .and_then(|v| v.parse().ok())
            .unwrap_or(match (full, measuring) {
                (true, _) => 1_215_000,
                (false, true) => 100_000,
                (false, false) => 300,
            });
    let clients: usize = value("--clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 50 } else { 4 });
    let per_client: usize = value("--requests")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 20 } else { 2 });
    let (root, keep) = match value("--data") {
        Some(dir) => (std::path::PathBuf::from(dir), true),
        None if measuring => (
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/bench-data")
                .join(format!("web-{cases}")),
            true,
        ),
        None => (
            std::env::temp_dir().join(format!("gridlink-web-{}", uuid::Uuid::new_v4())),
            false,
        ),
    };
    let say = |line: String| {
        if measuring {
            eprintln!("{line}");
        }
    };

    // The data: reused when it holds the same number of cases, else seeded afresh.
    let (_, state, district, reused) = demo::kept_bench_state(&root, cases, say).unwrap();
    if reused {
        say(format!("reusing {} ({cases} cases)", root.display()));
    }
    if measuring {
        emit("cases", cases as f64, "cases");
    }

    let key = open311::issue_key(&state, "bench", "district", "bench").unwrap();
    let operator = district
        .users
        .iter()
        .find(|u| u.role == "operator")
        .expect("the fixture district has an operator");
    let session = web::open_session(&state, &operator.id).unwrap();
    // A case number as an operator reads it over the phone: its first eight characters.
    let number = state
        .store()
        .case_list(&gridlink_server::store::CaseFilter {
            area: gridlink_core::sync::visibility::Area {
                district: true,
                ..Default::default()
            },
            limit: 1,
            ..Default::default()
        })
        .unwrap()
        .first()
        .map(|r| r.id[..8].to_owned())
        .unwrap_or_default();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gridlink_server::serve(listener, state, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        let cookie = format!("{}={}", web::SESSION_COOKIE, session);
        let pages = [
            ("case_list", format!("{base}/web/cases"), true),
            ("stats", format!("{base}/web/stats"), true),
            // Text search over every case: a word many titles hold (垃圾), and a number.
            (
                "search",
                format!("{base}/web/cases?q=%E5%9E%83%E5%9C%BE"),
                true,
            ),
            (
                "search_number",
                format!("{base}/web/cases?q={number}"),
                true,
            ),
            (
                "open311",
                format!("{base}/open311/v2/requests.json?api_key={key}"),
                false,
            ),
            (
                "open311_page100",
                format!("{base}/open311/v2/requests.json?page_size=100&api_key={key}"),
                false,
            ),
        ];
        for (name, url, with_cookie) in pages {
            let get = move |client: reqwest::Client, url: String, cookie: String| async move {
                let started = Instant::now();
                let mut request = client.get(&url);
                if with_cookie {
                    request = request.header("cookie", cookie);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                assert!(status.is_success(), "{url}: {status}");
                (started.elapsed().as_secs_f64() * 1e3, body.len())
            };
            // The first request alone, cold (the statistics page computes its figures here;
            // later requests find them cached until a change is stored).
            let (first, _) = get(client.clone(), url.clone(), cookie.clone()).await;
            if measuring {
                emit(&format!("{name}_first_ms"), first, "ms");
            }
            // Warm-up: one round of every client.
            let warm: Vec<_> = (0..clients)
                .map(|_| tokio::spawn(get(client.clone(), url.clone(), cookie.clone())))
                .collect();
            let mut bytes = 0;
            for w in warm {
                bytes = w.await.unwrap().1;
            }
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
                    tokio::spawn(async move {
                        let mut times = Vec::with_capacity(per_client);
                        for _ in 0..per_client {
                            times.push(get(client.clone(), url.clone(), cookie.clone()).await.0);
                        }
                        times
                    })
                })
                .collect();
            let mut times = Vec::new();
            for t in tasks {
                times.extend(t.await.unwrap());
            }
            let wall = started.elapsed().as_secs_f64();
            times.sort_by(f64::total_cmp);
            if measuring {
                emit(&format!("{name}_p50_ms"), percentile(&times, 50.0), "ms");
                emit(&format!("{name}_p99_ms"), percentile(&times, 99.0), "ms");
                emit(
                    &format!("{name}_throughput"),
                    times.len() as f64 / wall,
                    "req/s",
                );
                emit(&format!("{name}_bytes"), bytes as f64, "bytes");
            }
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
}
