//! `cargo xtask bench workflows`: scores (智能考核) over a district's history. One JSON object
//! per line: `{"bench","metric","value","unit"}`.
//!
//! Setup: a real server store holding the fixture district and `--cases` cases of history
//! spread over `--days` (default 100,000 over 30 days; `--scale full` is the district's 9
//! months at the article's volume: 1,215,000 cases over 270 days) with their score lines,
//! which every merge keeps up to date.
//!
//! - `scores_full_s`: recompute every case's score lines from the documents alone (load,
//!   fold, score), the check that the stored lines are reproducible;
//! - `scores_query_ms`: totals per unit for the whole period from the stored lines;
//! - `stats_721_ms`: the whole period's reported/closed counts and 721 split;
//! - `day_merge_s`: one more day of cases (4,500) merged, their lines written with them;
//! - `scores_incremental_ms`: the totals and the 721 statistics again after that day: the
//!   stored lines and rows already include it, so updating the scores is these queries.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a quiet smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::case::{ScoringRule, score};
use gridlink_core::doc::CaseDoc;
use gridlink_server::demo;
use std::collections::HashMap;
use std::time::Instant;

const T0: i64 = 1_795_910_400_000;

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "workflows", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
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
                (false, false) => 200,
            });
    let days: i64 = value("--days")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 270 } else { 30 });
    let day = if measuring { 4_500 } else { 20 };
    let emit = |metric: &str, value: f64, unit: &str| {
        if measuring {
            emit(metric, value, unit);
        }
    };
    let root = std::env::temp_dir().join(format!("gridlink-workflows-{}", uuid::Uuid::new_v4()));
    let (store, state, district) = demo::bench_state(&root).unwrap();
    let started = Instant::now();
    demo::seed_cases_over(&state, &district, cases, 17, T0, days).unwrap();
    if measuring {
        eprintln!(
            "seeded {cases} cases over {days} days in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    emit("cases", cases as f64, "cases");

    // From the documents alone.
    let places: HashMap<String, _> = store
        .grids()
        .unwrap()
        .into_iter()
        .map(|g| (g.grid_id.clone(), g))
        .collect();
    let ids: Vec<String> = rusqlite::Connection::open(root.join("server/gridlink.sqlite"))
        .unwrap()
        .prepare("SELECT id FROM documents")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rule = ScoringRule::default();
    let started = Instant::now();
    let mut lines = 0usize;
    let mut recomputed = 0.0;
    for id in &ids {
        let stored = store.load_doc(id).unwrap().unwrap();
        let case = CaseDoc::load(id, &stored.bytes).unwrap().case().unwrap();
        let place = &places[&case.details.grid_id];
        for line in score(&case, place, &rule) {
            lines += 1;
            recomputed += line.points;
        }
    }
    emit("scores_full_s", started.elapsed().as_secs_f64(), "s");
    emit("score_lines", lines as f64, "lines");

    let started = Instant::now();
    let totals = store.score_totals(i64::MIN, i64::MAX).unwrap();
    emit(
        "scores_query_ms",
        started.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    let started = Instant::now();
    let stats = store
        .case_stats(
            i64::MIN,
            i64::MAX,
            &gridlink_server::store::Area::district(),
        )
        .unwrap();
    emit("stats_721_ms", started.elapsed().as_secs_f64() * 1e3, "ms");
    assert_eq!(stats.reported as usize, ids.len());
    // The stored lines and the recomputation from the documents agree.
    let stored: f64 = totals.iter().map(|t| t.points).sum();
    assert!(
        (stored - recomputed).abs() < 1e-6 * (lines.max(1) as f64),
        "stored {stored} vs recomputed {recomputed}"
    );

    let started = Instant::now();
    demo::seed_cases(&state, &district, day, 18, T0 + 86_400_000).unwrap();
    emit("day_merge_s", started.elapsed().as_secs_f64(), "s");
    let started = Instant::now();
    let after = store.score_totals(i64::MIN, i64::MAX).unwrap();
    let after_stats = store
        .case_stats(
            i64::MIN,
            i64::MAX,
            &gridlink_server::store::Area::district(),
        )
        .unwrap();
    emit(
        "scores_incremental_ms",
        started.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    // The day's lines are in the totals already.
    let day_lines: u64 =
        after.iter().map(|t| t.lines).sum::<u64>() - totals.iter().map(|t| t.lines).sum::<u64>();
    assert!(day_lines > 0, "the day added no score lines");
    assert_eq!(after_stats.reported, stats.reported + day as u64);
    let _ = std::fs::remove_dir_all(&root);
}
