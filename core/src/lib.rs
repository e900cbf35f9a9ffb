//! gridlink-core: the domain of grid governance (cases and their closed loop, roles, geography)
//! and the phone's offline engine (case documents in Automerge, kept in SQLite).
//!
//! The pure parts — [`case`], [`doc`], [`geo`], and the wire types and access rules of
//! [`sync`] — build without default features, so the server validates what phones push with
//! the very rules the phones apply. [`store`] (default feature) is the phone's local database;
//! the `client` feature adds the phone's sync client; `photo` (default) processes camera photos.

#![forbid(unsafe_code)]

pub mod address;
pub mod case;
pub mod checklist;
pub mod day;
pub mod doc;
mod error;
pub mod geo;
pub mod mediation;
#[cfg(feature = "photo")]
pub mod photo;
pub mod privacy;
pub mod search;
#[cfg(feature = "client")]
pub mod session;
#[cfg(feature = "store")]
pub mod store;
pub mod sync;
pub mod text;

pub use error::{Error, Result};
