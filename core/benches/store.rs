//! `cargo xtask bench store`: the phone store at district load. Prints one JSON object per
//! line: `{"bench","metric","value","unit"}`.
//!
//! - `create_10k_s`: report N cases (default 10,000) and record 9 more events on each, every
//!   event a separate user action (load, change, save chunk, rewrite index row, commit);
//! - `open_ms`: open the store file again (migrations check, WAL);
//! - `list_page_ms`: first page of 50 "assigned to me" among them (median of 101);
//! - `load_fold_ms`: load one case document from SQLite, hydrate and fold it (median of 501);
//! - `apply_remote_ms`: apply 1,000 changes from another device in one batch, per change.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::case::{Category, EventKind, Role, Source};
use gridlink_core::doc::{CaseDoc, actor_for_device};
use gridlink_core::store::{
    CaseFilter, CaseQuery, Moment, NewCase, RemoteChanges, Store, StoreConfig,
};
use std::time::Instant;

const T0: i64 = 1_795_910_400_000;

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "store", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn id(n: usize) -> String {
    uuid::Uuid::from_u128(0x2000_0000_0000_4000_8000_0000_0000_0000 + n as u128).to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    // Then it is a smoke test: a small run that checks the benchmark still works, prints nothing.
    let measuring = args.iter().any(|a| a == "--bench");
    let cases: usize = args
        .iter()
        .position(|a| a == "--cases")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 10_000 } else { 20 });
    let emit = |metric: &str, value: f64, unit: &str| {
        if measuring {
            emit(metric, value, unit);
        }
    };
    let dir = std::env::temp_dir().join(format!("gridlink-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("phone.sqlite");
    let device = uuid::Uuid::from_u128(7).to_string();
    let config = StoreConfig::new(device, "chief-0001", Role::GridChief);

    let store = Store::open(&path, config.clone()).unwrap();
    let start = Instant::now();
    for n in 0..cases {
        let at = |k: i64| Moment {
            at_ms: T0 + (n as i64) * 1_000 + k,
            location: None,
        };
        store
            .report(
                NewCase {
                    id: id(n),
                    category: Category::ALL[n % Category::ALL.len()],
                    source: Source::GridInspector,
                    title: format!("第{n}号巡查发现楼道堆放杂物存在火灾隐患"),
                    description: "三楼楼道堆满纸箱，电动车在楼道内充电。".into(),
                    location: None,
                    address_id: None,
                    grid_id: format!("320509001{:03}-{:02}", n % 19, n % 7),
                    photos: vec![],
                    priority: Default::default(),
                },
                at(0),
            )
            .unwrap();
        // One case in five is assigned to the signed-in chief.
        let assignee = if n % 5 == 0 {
            None
        } else {
            Some(format!("insp-{:04}", n % 899))
        };
        store
            .record(
                &id(n),
                EventKind::Accepted {
                    assignee,
                    due_at_ms: Some(T0 + 86_400_000),
                },
                at(1),
            )
            .unwrap();
        for k in 2..10 {
            store
                .record(
                    &id(n),
                    EventKind::Comment {
                        text: format!("第{k}次跟进"),
                    },
                    at(k),
                )
                .unwrap();
        }
    }
    emit(
        "create_10k_s",
        start.elapsed().as_secs_f64() * 10_000.0 / cases as f64,
        "s",
    );
    drop(store);

    let start = Instant::now();
    let store = Store::open(&path, config).unwrap();
    emit("open_ms", start.elapsed().as_secs_f64() * 1e3, "ms");

    let query = CaseQuery {
        filter: CaseFilter {
            assigned_to_me: true,
            ..CaseFilter::default()
        },
        limit: 50,
        ..CaseQuery::default()
    };
    let samples = (0..101)
        .map(|_| {
            let t = Instant::now();
            let page = store.list(&query).unwrap();
            assert_eq!(page.items.len(), 50.min(cases / 5));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    emit("list_page_ms", median(samples), "ms");

    let samples = (0..501)
        .map(|i| {
            let t = Instant::now();
            let case = store.case(&id((i * 7919) % cases)).unwrap();
            assert_eq!(case.history.len(), 10);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    emit("load_fold_ms", median(samples), "ms");

    // 1,000 changes made on another device (an inspector commenting on 1,000 cases).
    let other = actor_for_device(&uuid::Uuid::from_u128(8).to_string()).unwrap();
    let remote_count = 1_000.min(cases);
    let batch: Vec<RemoteChanges> = (0..remote_count)
        .map(|n| {
            let bytes = store.unacknowledged_changes(&id(n)).unwrap();
            let mut doc = CaseDoc::load(&id(n), &bytes).unwrap();
            doc.set_actor(other.clone());
            let heads = doc.heads();
            let stamp = gridlink_core::case::Stamp {
                actor: "insp-0001".into(),
                role: Role::GridInspector,
                device: "inspector-phone".into(),
                at_ms: T0 + 99_000_000,
                location: None,
            };
            doc.record(
                EventKind::Comment {
                    text: "现场已复查".into(),
                },
                stamp,
            )
            .unwrap();
            RemoteChanges {
                doc_id: id(n),
                bytes: doc.save_after(&heads),
            }
        })
        .collect();
    let start = Instant::now();
    let report = store.apply_remote(&batch, T0).unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(report.applied.len(), remote_count);
    emit("apply_remote_ms", elapsed / remote_count as f64, "ms");

    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
