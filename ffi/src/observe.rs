//! Observer interfaces the apps implement for long work, and their adapters to the core's
//! observer traits. Callbacks arrive on the library's network thread: the apps hop to their
//! main thread before touching views.

use crate::error::ApiError;
use crate::views::{PhotoView, SyncProgressView, SyncSummary};
use gridlink_core::store::PhotoStatus;
use gridlink_core::sync::SyncProgress;
use std::sync::Arc;
use std::time::Duration;

/// Told about a sync while it runs, and how it ended.
#[uniffi::export(foreign)]
pub trait SyncObserver: Send + Sync {
    /// After every exchange with the server.
    fn progress(&self, progress: SyncProgressView);
    /// A request failed and will be retried after `delay_ms` ("retrying in 8 s").
    fn retrying(&self, attempt: u32, delay_ms: u64, message: String);
    /// The sync ended.
    fn finished(&self, summary: SyncSummary);
    /// The sync stopped; everything received so far is kept and the next sync goes on.
    fn failed(&self, error: ApiError);
}

/// Told when a photo in the queue changes state (uploaded, failed, quarantined).
#[uniffi::export(foreign)]
pub trait PhotoQueueObserver: Send + Sync {
    /// The photo as it stands now.
    fn changed(&self, photo: PhotoView);
}

/// The core's sync observer over an app's.
pub(crate) struct SyncAdapter(pub(crate) Option<Arc<dyn SyncObserver>>);

impl gridlink_core::sync::SyncObserver for SyncAdapter {
    fn progress(&self, p: &SyncProgress) {
        if let Some(o) = &self.0 {
            o.progress(SyncProgressView {
                round_trips: p.round_trips,
                docs_sent: p.docs_sent,
                docs_received: p.docs_received,
                bytes_sent: p.bytes_sent,
                bytes_received: p.bytes_received,
            });
        }
    }

    fn retrying(&self, attempt: u32, delay: Duration, error: &str) {
        if let Some(o) = &self.0 {
            let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            o.retrying(attempt, delay_ms, error.to_owned());
        }
    }
}

/// The core's photo queue observer over an app's.
pub(crate) struct PhotoAdapter(pub(crate) Option<Arc<dyn PhotoQueueObserver>>);

impl gridlink_core::sync::PhotoQueueObserver for PhotoAdapter {
    fn changed(&self, status: &PhotoStatus) {
        if let Some(o) = &self.0 {
            o.changed(status.clone().into());
        }
    }
}
