//! Hostile images are refused without allocating beyond the configured limit.
//!
//! A binary of its own: it installs a counting global allocator and measures the peak heap
//! while each input is processed, which only works with one test running at a time.

#![allow(unsafe_code, clippy::unwrap_used, missing_docs)]

use gridlink_core::photo::{self, PhotoConfig, PhotoError, PhotoLimits};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `System.alloc`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as `System.dealloc`.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as `System.realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = CURRENT.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes allocated above the level at the start, at the worst moment of `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG whose header claims `width` × `height` RGBA and whose data is a few bytes of zlib.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &vec![0u8; 1 << 20]).unwrap();
    png_chunk(&mut out, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A real, valid PNG: 3000 × 3000 transparent pixels (36 MB decoded) in ~40 KB.
fn png_bomb() -> Vec<u8> {
    let img = image::RgbaImage::new(3000, 3000);
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[test]
fn the_bomb_and_garbage_corpus_is_refused_within_the_allocation_limit() {
    let limits = PhotoLimits {
        max_alloc_bytes: 16 << 20,
        ..PhotoLimits::default()
    };
    let config = PhotoConfig {
        limits,
        ..PhotoConfig::default()
    };
    let good =
        std::fs::read(gridlink_fixtures::committed_photos_dir().join("orientation-6.jpg")).unwrap();
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("PNG bomb (valid, 36 MB decoded)", png_bomb()),
        ("PNG claiming 30000 x 30000", png_claiming(30_000, 30_000)),
        ("PNG claiming 12000 x 12000", png_claiming(12_000, 12_000)),
        (
            "JPEG claiming 30000 x 30000",
            gridlink_fixtures::photos::with_frame_size(&good, 30_000, 30_000),
        ),
        (
            "JPEG claiming 8000 x 8000",
            gridlink_fixtures::photos::with_frame_size(&good, 8_000, 8_000),
        ),
        ("truncated JPEG", good[..good.len() / 3].to_vec()),
        ("zero bytes", Vec::new()),
        ("text named .jpg", b"GET / HTTP/1.1\r\n\r\n".repeat(100)),
        ("PNG signature then garbage", {
            let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
            v.extend(gridlink_fixtures::photos::noise_bytes(3, 100_000));
            v
        }),
    ];
    for (label, bytes) in &corpus {
        let started = std::time::Instant::now();
        let (result, peak) = peak_during(|| photo::process(bytes, &config));
        let elapsed = started.elapsed();
        eprintln!(
            "{label}: {result:?} in {elapsed:?}, peak heap {peak} B",
            result = result.as_ref().err()
        );
        assert!(result.is_err(), "{label}: accepted");
        assert!(
            peak as u64 <= limits.max_alloc_bytes,
            "{label}: allocated {peak} bytes, over the {} limit",
            limits.max_alloc_bytes
        );
        if label.contains("claiming") || label.contains("bomb") {
            assert!(
                matches!(result, Err(PhotoError::TooLarge { .. })),
                "{label}: {result:?}"
            );
        }
    }
    // The counter does see real work: a legitimate photo under the same limits.
    // (Its decoded 400 × 600 RGB buffer alone is 720,000 bytes; the bound is loose because
    // the test harness's own thread may free memory meanwhile.)
    let (ok, peak) = peak_during(|| photo::process(&good, &config));
    assert!(ok.is_ok());
    assert!(peak > 200_000, "peak {peak}");
}
