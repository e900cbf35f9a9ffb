//! gridlink-ffi: the uniffi surface of gridlink-core for the Android and iOS apps (Kotlin,
//! Swift; Python for the tests).
//!
//! Thin on purpose: [`FieldApp`] wraps the core's store, sync client and photo queue; the
//! core's own domain types cross the boundary as they are ([`types`]); [`views`] holds the few
//! screen shapes that differ from the core's; [`ApiError`] is the one error the apps act on.
//! Everything here is a few lines over a core call — rules live in the core.
//!
//! Proc-macros only (no UDL). `cargo xtask bindings` builds the library and generates the
//! bindings in library mode into `target/bindings/`.

// The scaffolding uniffi generates is `extern "C"` code; nothing unsafe is written by hand.
#![allow(unsafe_code)]

mod app;
mod error;
mod observe;
pub mod types;
pub mod views;

pub use app::{AppConfig, FieldApp};
pub use error::{ApiError, ApiResult};
pub use observe::{PhotoQueueObserver, SyncObserver};

use gridlink_core::case::Category;
use gridlink_core::geo::{self, LatLon};
use views::CategoryOption;

uniffi::setup_scaffolding!("gridlink");

/// A fresh id (UUID) for a new case, report, visit, mediation file or device.
#[uniffi::export]
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// WGS-84 (GPS, storage) to GCJ-02 (the coordinates of maps in mainland China).
#[uniffi::export]
pub fn wgs84_to_gcj02(point: LatLon) -> LatLon {
    geo::wgs84_to_gcj02(point)
}

/// GCJ-02 (a point picked on a Chinese map) back to WGS-84 for storage.
#[uniffi::export]
pub fn gcj02_to_wgs84(point: LatLon) -> LatLon {
    geo::gcj02_to_wgs84(point)
}

/// The case categories with their labels, for pickers.
#[uniffi::export]
pub fn categories() -> Vec<CategoryOption> {
    Category::ALL
        .into_iter()
        .map(|category| CategoryOption {
            category,
            label: category.label_zh().to_owned(),
        })
        .collect()
}

/// The library's version, for the about screen and bug reports.
#[uniffi::export]
pub fn library_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Panics inside Rust on purpose. The binding tests call it to prove that a panic reaches
/// the app as an error (uniffi's internal error), never as a crash of the process.
#[uniffi::export]
pub fn check_panic_boundary(message: String) {
    panic!("{message}");
}
