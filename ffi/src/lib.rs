//! gridlink-ffi: the uniffi surface of gridlink-core for the Android and iOS apps.
//!
//! The bindings issue fills this crate with thin exported objects over `gridlink_core`
//! (one object per concept, each method a few lines). Until then it only re-exports the core
//! so the workspace layout and the dependency direction (ffi → core, never the reverse) hold.

#![forbid(unsafe_code)]

pub use gridlink_core as core;
