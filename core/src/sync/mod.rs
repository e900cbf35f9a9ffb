//! Sync between phones and the district server.
//!
//! One HTTP round trip moves many documents: the phone posts the changes the server has not
//! acknowledged, for all its documents, plus its pull cursor; the server answers with
//! acknowledgements, per-document rejections, and the changes in the phone's scope after the
//! cursor, paged by size. Changes are content-addressed (Automerge change hashes), so a retried
//! or duplicated request is harmless. See `docs/adr/0004-sync-protocol.md`.
//!
//! The pure parts live here and build without I/O, so the server and the phone share them:
//! [`wire`] (the messages and their encoding), [`scope`] (which documents a grant covers) and
//! [`access`] (whether a push is allowed) and [`visibility`] (what a viewer may see). The phone's client — [`Transport`], the HTTP
//! transport and `Store::sync` — sits behind the `client` feature.

pub mod access;
pub mod ops;
pub mod records;
pub mod scope;
pub mod visibility;
pub mod wire;

#[cfg(feature = "client")]
mod citizen;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod upload;

#[cfg(feature = "client")]
pub use citizen::{CitizenSyncReport, register_citizen};
#[cfg(feature = "client")]
pub(crate) use client::into_error;
#[cfg(feature = "client")]
pub use client::{
    Backoff, HttpTransport, SyncObserver, SyncOptions, SyncProgress, SyncReport, Transport,
    TransportError, enroll, is_transient_status,
};
#[cfg(feature = "client")]
pub use upload::{PhotoQueueObserver, UploadOptions, UploadReport};

/// The Automerge actor id of a device's edits: the 16-byte prefix the server issued at
/// enrollment followed by a 4-byte epoch. The epoch moves on whenever the phone resets a
/// document to the server's version, so a rejected change can never share an
/// (actor, sequence number) pair with a later one.
pub fn device_actor(prefix: &[u8; ACTOR_PREFIX_LEN], epoch: u32) -> automerge::ActorId {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&epoch.to_be_bytes());
    automerge::ActorId::from(bytes)
}

/// Length of the actor prefix issued to a device.
pub const ACTOR_PREFIX_LEN: usize = 16;

/// Whether `actor` is one of the actor ids of the device `device_id` holding `prefix`: one
/// of its enrolled actors (`prefix ‖ epoch`), or the actor it edits with before it first
/// enrolls ([`actor_for_device`](crate::doc::actor_for_device)).
pub fn actor_belongs_to(actor: &automerge::ActorId, prefix: &[u8], device_id: &str) -> bool {
    let bytes = actor.to_bytes();
    let enrolled = bytes.len() == ACTOR_PREFIX_LEN + 4
        && prefix.len() == ACTOR_PREFIX_LEN
        && bytes.starts_with(prefix);
    enrolled || crate::doc::actor_for_device(device_id).is_ok_and(|pre| pre == *actor)
}
