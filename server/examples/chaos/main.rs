//! gridlink's chaos campaigns (issue 15), run as `cargo xtask chaos …`:
//!
//! - `kill --points N --seed S --server-bin PATH [--dir DIR]`: the real server binary and phone
//!   processes (real `gridlink_core::Store`s over HTTP) under a sync and photo workload; at each of
//!   N random points the server or one phone is killed with SIGKILL, restarted, every phone
//!   finishes syncing, and every edit and photo the phones made (above all, those the server
//!   acknowledged) is checked on the phone and in the server's stored documents and blobs;
//! - `faults --schedules N --seed S [--dir DIR]`: random schedules of role actions across five devices of
//!   four roles (two inspectors, a village chief, an operator, a department) over faulty links
//!   (drops, duplicates, stale and late answers, delays, requests held back and delivered after
//!   later ones) and server restarts; after the faults stop, everything must converge within 3
//!   rounds, and every event any device made must be on every device holding its case and on the
//!   server, or listed to its author as refused;
//! - `phone …`: one phone's workload, the child process `kill` starts and kills.
//!
//! Results are JSON lines on stdout (`{"bench","metric","value","unit"}`); diagnostics go to
//! stderr. The exit status is 1 when anything was lost or did not converge. Servers bind to
//! 127.0.0.1 only.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    unreachable_pub
)]

#[path = "../../tests/support/link.rs"]
mod link;

mod faults;
mod kill;
mod phone;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = Flags::parse(args.get(1..).unwrap_or_default())?;
    match args.first().map(String::as_str) {
        Some("kill") => kill::campaign(&kill::Plan {
            points: flags.number("points", 20)?,
            seed: flags.number("seed", 1)?,
            server_bin: PathBuf::from(flags.text("server-bin").context("--server-bin PATH")?),
            dir: PathBuf::from(flags.text("dir").unwrap_or("target/chaos")),
            nodes: flags.number("nodes", 1)? as usize,
            database: flags.text("database").map(str::to_owned),
            s3: flags.text("s3").map(str::to_owned),
            failover: flags.text("failover-cmd").map(str::to_owned),
        }),
        Some("faults") => faults::campaign(
            flags.number("schedules", 20)?,
            flags.number("seed", 1)?,
            &PathBuf::from(flags.text("dir").unwrap_or("target/chaos")),
        ),
        Some("phone") => phone::run(&flags),
        _ => bail!(
            "usage: chaos kill --points N --seed S --server-bin PATH [--dir DIR] [--nodes N --database URL --s3 ENDPOINT [--failover-cmd SH]] | chaos faults --schedules N --seed S [--dir DIR]"
        ),
    }
}

/// `--name value` pairs.
pub struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let Some(name) = name.strip_prefix("--") else {
                bail!("expected --name, got {name:?}");
            };
            let value = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            out.push((name.to_owned(), value.clone()));
        }
        Ok(Flags(out))
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("--{name} takes a number, not {v:?}")),
        }
    }
}

/// One JSON line of results.
pub fn emit(bench: &str, metric: &str, value: f64, unit: &str) {
    println!(
        "{}",
        serde_json::json!({"bench": bench, "metric": metric, "value": value, "unit": unit})
    );
}

/// A PNG of blocks in colours drawn from `seed`: every seed a different photo.
pub fn drawn_photo(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (w, h) = (320u32, 240u32);
    let blocks: Vec<[u8; 3]> = (0..48)
        .map(|_| [rng.u8(..), rng.u8(..), rng.u8(..)])
        .collect();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb(blocks[((y / 40) * 8 + x / 40) as usize % blocks.len()])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap_or_default();
    out.into_inner()
}

/// A case any inspector of `grid` could report.
pub fn new_case(
    id: &str,
    grid: &str,
    title: &str,
    photos: Vec<String>,
) -> gridlink_core::store::NewCase {
    use gridlink_core::case::{Category, Location, Source};
    gridlink_core::store::NewCase {
        id: id.to_owned(),
        category: Category::Sanitation,
        source: Source::GridInspector,
        title: title.to_owned(),
        description: String::new(),
        location: Some(Location {
            point: gridlink_core::geo::LatLon::new(31.16, 120.64),
            accuracy_m: 5.0,
        }),
        address_id: None,
        grid_id: grid.to_owned(),
        photos,
        priority: Default::default(),
    }
}

/// Now, as a phone records it.
pub fn moment_now() -> gridlink_core::store::Moment {
    gridlink_core::store::Moment {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
        location: None,
    }
}

/// Retries fast: a campaign must not sleep for real back-off.
pub fn fast_sync(attempts: u32) -> gridlink_core::sync::SyncOptions {
    gridlink_core::sync::SyncOptions {
        backoff: gridlink_core::sync::Backoff {
            first: std::time::Duration::from_millis(5),
            max: std::time::Duration::from_millis(60),
            attempts,
        },
        ..Default::default()
    }
}

/// Photo uploads that retry fast, in small chunks (so that a kill lands mid-photo).
pub fn fast_upload(attempts: u32) -> gridlink_core::sync::UploadOptions {
    gridlink_core::sync::UploadOptions {
        backoff: gridlink_core::sync::Backoff {
            first: std::time::Duration::from_millis(5),
            max: std::time::Duration::from_millis(60),
            attempts,
        },
        chunk_bytes: 64 << 10,
        wait_for_case: std::time::Duration::from_millis(50),
        ..Default::default()
    }
}
