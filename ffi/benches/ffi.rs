//! `cargo xtask bench ffi`, the Rust half: a phone with N cases (default 10,000) opened
//! through `FieldApp`, and the typical screen call — the first page of 50 open cases — timed
//! in Rust (`rust_list_ms`, median of 201). The xtask then times the same call on the same
//! database from Python (`python_list_ms`) and reports the stripped library's size.
//!
//! `--dir D` keeps the phone in D (with `bench.json` saying how to open it) for the Python
//! half. Under `cargo test --all-targets` (no `--bench`) it is a small smoke run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::case::{Category, EventKind, Role};
use gridlink_core::sync::wire::{EnrollResponse, PROTOCOL_VERSION};
use gridlink_ffi::views::{CaseListQuery, NewCaseInput};
use gridlink_ffi::{AppConfig, FieldApp};
use std::path::PathBuf;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let cases: usize = arg(&args, "--cases")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 10_000 } else { 30 });
    let dir = arg(&args, "--dir").map(PathBuf::from).unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gridlink-ffi-bench-{}", uuid::Uuid::new_v4()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let device_id = uuid::Uuid::from_u128(11).to_string();
    let config = AppConfig {
        database_path: dir.join("phone.sqlite").to_string_lossy().into_owned(),
        photo_dir: dir.join("camera").to_string_lossy().into_owned(),
        server_url: "http://127.0.0.1:9".into(),
        device_id: device_id.clone(),
        device_name: "bench".into(),
        max_attempts: 1,
        orphan_photo_grace_s: 3600,
    };
    let app = FieldApp::open(config.clone()).unwrap();
    app.adopt_enrollment(EnrollResponse {
        protocol: PROTOCOL_VERSION,
        device_id,
        token: "bench-token".into(),
        actor_prefix: vec![7; 16],
        user_id: "chief-0001".into(),
        user_name: "网格长".into(),
        role: Role::GridChief,
        scopes: vec!["grid:320509001001-01".into()],
    })
    .unwrap();
    for n in 0..cases {
        let id = uuid::Uuid::from_u128(0x3000_0000_0000_4000_8000_0000_0000_0000 + n as u128)
            .to_string();
        app.report_case(NewCaseInput {
            id: id.clone(),
            category: Category::ALL[n % Category::ALL.len()],
            title: format!("第{n}号巡查发现楼道堆放杂物"),
            description: "三楼楼道堆满纸箱。".into(),
            location: None,
            address_id: None,
            grid_id: Some(format!("320509001001-{:02}", n % 7 + 1)),
            photos: vec![],
            priority: None,
        })
        .unwrap();
        // Two cases in three are taken on; the rest wait.
        if n % 3 != 0 {
            let kind = EventKind::Accepted {
                assignee: Some(format!("insp-{:04}", n % 899 + 1)),
                due_at_ms: None,
            };
            app.record(id, kind, None).unwrap();
        }
    }
    let query = CaseListQuery {
        open_only: true,
        limit: 50,
        ..CaseListQuery::default()
    };
    assert_eq!(
        app.list_cases(query.clone()).unwrap().items.len(),
        cases.min(50)
    );
    let mut samples: Vec<f64> = (0..201)
        .map(|_| {
            let t = Instant::now();
            let page = app.list_cases(query.clone()).unwrap();
            std::hint::black_box(page);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    std::fs::write(
        dir.join("bench.json"),
        serde_json::json!({
            "database_path": config.database_path,
            "photo_dir": config.photo_dir,
            "device_id": config.device_id,
            "cases": cases,
        })
        .to_string(),
    )
    .unwrap();
    if measuring {
        println!(
            "{}",
            serde_json::json!({"bench": "ffi", "metric": "rust_list_ms", "value": (median * 1000.0).round() / 1000.0, "unit": "ms"})
        );
    } else {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
