//! `cargo xtask bench photo`: the photo path. One JSON object per line:
//! `{"bench","metric","value","unit"}`.
//!
//! - `pipeline_ms`: a 12-megapixel camera-like JPEG (4000 × 3000, ~4 MB, EXIF orientation 6
//!   and GPS, made by the fixture generator) → 1600 px JPEG + 256 px thumbnail, named by
//!   SHA-256; median of 21 runs on one core;
//! - `decode_only_ms`: a plain full-size decode of the same JPEG (the floor);
//! - `scaled_decode_ms`: the same decode at the DCT scale the pipeline uses (1/2);
//! - `output_bytes`, `thumbnail_bytes`: sizes of the processed photo and thumbnail;
//! - `upload_overhead_ratio`: bytes the phone sent (HTTP requests, headers included) to
//!   upload a 4 MB blob through a loopback proxy that cuts the connection 10 times, divided by
//!   the blob size.
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it is a quiet smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::case::{Category, Source};
use gridlink_core::photo::{self, PhotoConfig};
use gridlink_core::store::{Moment, NewCase, PhotoInput, PhotoState, Store, StoreConfig};
use gridlink_core::sync::{Backoff, HttpTransport, SyncOptions, UploadOptions, enroll};
use gridlink_fixtures::photos::CameraPhoto;
use gridlink_server::demo;
use gridlink_server::faults::CuttingProxy;
use std::time::{Duration, Instant};

fn emit(metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({ "bench": "photo", "metric": metric, "value": (value * 1000.0).round() / 1000.0, "unit": unit })
    );
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let emit = |metric: &str, value: f64, unit: &str| {
        if measuring {
            emit(metric, value, unit);
        }
    };
    let camera = if measuring {
        CameraPhoto::twelve_megapixel()
    } else {
        CameraPhoto {
            width: 800,
            height: 600,
            ..CameraPhoto::twelve_megapixel()
        }
    };
    let input = camera.jpeg();
    if measuring {
        eprintln!(
            "input: {} x {}, {} bytes",
            camera.width,
            camera.height,
            input.len()
        );
    }
    let runs = if measuring { 21 } else { 1 };
    let config = PhotoConfig::default();
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e3
    };
    // Each phase runs back to back, so that one does not disturb the other's caches.
    let decode: Vec<f64> = (0..runs)
        .map(|_| {
            time(&mut || {
                jpeg_decoder::Decoder::new(input.as_slice())
                    .decode()
                    .unwrap();
            })
        })
        .collect();
    let scaled: Vec<f64> = (0..runs)
        .map(|_| {
            time(&mut || {
                let mut d = jpeg_decoder::Decoder::new(input.as_slice());
                d.scale(1600, 1200).unwrap();
                d.decode().unwrap();
            })
        })
        .collect();
    let mut out = None;
    let pipeline: Vec<f64> = (0..runs)
        .map(|_| time(&mut || out = Some(photo::process(&input, &config).unwrap())))
        .collect();
    let out = out.unwrap();
    emit("input_bytes", input.len() as f64, "bytes");
    emit("decode_only_ms", median(decode), "ms");
    emit("scaled_decode_ms", median(scaled), "ms");
    emit("pipeline_ms", median(pipeline), "ms");
    emit("output_bytes", out.jpeg.len() as f64, "bytes");
    emit("thumbnail_bytes", out.thumbnail.len() as f64, "bytes");

    let (ratio, blob, cuts, seconds) = upload_with_cuts(&input, if measuring { 10 } else { 2 });
    if measuring {
        eprintln!("upload: {blob} bytes, {cuts} cuts, {seconds:.2} s");
    }
    emit("upload_blob_bytes", blob as f64, "bytes");
    emit("upload_overhead_ratio", ratio, "ratio");
}

/// Uploads the camera JPEG kept at full size (a ~4 MB blob) through a proxy that cuts the
/// connection `cuts` times; returns (bytes the phone sent / bytes of the photo and its
/// thumbnail, photo bytes, cuts done, seconds).
fn upload_with_cuts(input: &[u8], cuts: u64) -> (f64, u64, u64, f64) {
    let root = std::env::temp_dir().join(format!("gridlink-photo-bench-{}", uuid::Uuid::new_v4()));
    let (_, state, _) = demo::bench_state(&root).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(gridlink_server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let url = format!("http://{addr}");

    let device = uuid::Uuid::new_v4().to_string();
    let code = demo::enroll_code(&state, "insp-0001", 1, "bench").unwrap();
    let enrollment = enroll(&HttpTransport::new(&url).unwrap(), &code, &device, "bench").unwrap();
    // Kept at full size and high quality: the blob is about as large as the camera file.
    let phone_config = StoreConfig {
        photo: PhotoConfig {
            long_edge: gridlink_core::photo::PHOTO_LONG_EDGE,
            quality: 97,
            ..PhotoConfig::default()
        },
        ..StoreConfig::new(device.clone(), "insp-0001", enrollment.role)
    };
    let phone = Store::open(root.join("phone.sqlite"), phone_config).unwrap();
    phone.set_enrollment(&enrollment).unwrap();
    let case_id = uuid::Uuid::new_v4().to_string();
    let at = Moment {
        at_ms: gridlink_server::now_ms(),
        location: None,
    };
    let photo = phone
        .capture_photo(&case_id, PhotoInput::Bytes(input), at, None)
        .unwrap();
    phone
        .report(
            NewCase {
                id: case_id,
                category: Category::Sanitation,
                source: Source::GridInspector,
                title: "河道漂浮垃圾".into(),
                description: String::new(),
                location: None,
                address_id: None,
                grid_id: "320509001001-01".into(),
                photos: vec![photo.hash.clone()],
                priority: Default::default(),
            },
            at,
        )
        .unwrap();
    let direct = HttpTransport::new(&url)
        .unwrap()
        .with_token(&enrollment.token);
    phone.sync(&direct, &SyncOptions::default(), &()).unwrap();

    let thumb = phone.photo_bytes(&photo.hash, true).unwrap().unwrap().len() as u64;
    let total = photo.size + thumb;
    // Cuts spread evenly over the upload.
    let plan: Vec<u64> = (1..=cuts).map(|i| i * total / (cuts + 1)).collect();
    let proxy = CuttingProxy::start(addr, plan).unwrap();
    let transport = HttpTransport::new(&proxy.url())
        .unwrap()
        .with_token(&enrollment.token);
    let options = UploadOptions {
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(50),
            attempts: 20,
        },
        ..UploadOptions::default()
    };
    let started = Instant::now();
    for _ in 0..50 {
        phone.retry_all_photos_now().unwrap();
        phone.upload_photos(&transport, &options, &()).unwrap();
        if phone.photo_status(&photo.hash).unwrap().state == PhotoState::Uploaded {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        phone.photo_status(&photo.hash).unwrap().state,
        PhotoState::Uploaded
    );
    let ratio = proxy.bytes_up() as f64 / total as f64;
    let done = proxy.cuts_done();
    drop(proxy);
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    let _ = std::fs::remove_dir_all(&root);
    (ratio, photo.size, done, seconds)
}
