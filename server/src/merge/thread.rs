//! The merge pipeline's two threads: one merges, one commits.

use super::{MAX_BATCH_DOCS, Merger, Origin, PushOutcome, Submission};
use crate::store::{AuditEntry, Merge, ServerStore, StoreError};
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::wire::PushDoc;
use std::sync::Arc;

type Reply = std::sync::mpsc::Sender<Result<PushOutcome, StoreError>>;

/// Work for the merge thread.
pub enum Job {
    /// A device's push.
    Push {
        /// Who pushes.
        pusher: Pusher,
        /// The device's actor prefix.
        actor_prefix: Vec<u8>,
        /// What.
        docs: Vec<PushDoc>,
        /// When, UTC ms.
        now_ms: i64,
        /// Where it comes from.
        origin: Origin,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// Anything else that needs the merger (imports, grid reloads), run between batches.
    Run(Box<dyn FnOnce(&mut Merger) + Send>),
}

/// A staged batch on its way to the commit thread.
struct Staged {
    epoch: u64,
    merges: Arc<Vec<Merge>>,
    audit: Vec<AuditEntry>,
    replies: Vec<(Reply, PushOutcome)>,
}

/// Starts the merge pipeline; it ends when every sender is dropped.
///
/// Two threads: the merge thread validates batch N+1 while the commit thread writes batch N
/// (its fsync is the longest single step). Batch N+1 may build on batch N's documents, so if
/// a commit fails, every batch staged on top of it fails too: batches carry the merger's
/// *epoch*; a failed commit marks its epoch as lost; the commit thread refuses batches of a
/// lost epoch, and the merge thread, seeing the mark, forgets its cache and moves to a new
/// epoch before it stages anything else.
pub fn spawn(merger: Merger) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    // A rendezvous: the merge thread hands batch N over only once batch N-1 is committed, so at
    // most one uncommitted batch lies under the one being staged, and its documents are still
    // in the cache (which holds at least two batches' worth).
    let (to_commit, commits) = std::sync::mpsc::sync_channel::<Staged>(0);
    let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let store = merger.store();
    let lost_by_commit = lost.clone();
    std::thread::Builder::new()
        .name("gridlink-commit".into())
        .spawn(move || commit_loop(&*store, &commits, &lost_by_commit))?;
    std::thread::Builder::new()
        .name("gridlink-merge".into())
        .spawn(move || run(merger, &rx, &to_commit, &lost))?;
    Ok(tx)
}

fn commit_loop(
    store: &dyn ServerStore,
    batches: &std::sync::mpsc::Receiver<Staged>,
    lost: &std::sync::atomic::AtomicU64,
) {
    use std::sync::atomic::Ordering;
    for batch in batches {
        // Every epoch below `lost` was built on a batch that never reached the disk.
        let result = if batch.epoch < lost.load(Ordering::Acquire) {
            Err(StoreError::Unavailable(
                "an earlier batch this one built on failed to commit".to_owned(),
            ))
        } else {
            store.commit(&batch.merges, &batch.audit)
        };
        if result.is_err() {
            lost.fetch_max(batch.epoch + 1, Ordering::AcqRel);
        }
        for (reply, outcome) in batch.replies {
            let _ = reply.send(result.clone().map(|()| outcome));
        }
    }
}

fn run(
    mut merger: Merger,
    jobs: &std::sync::mpsc::Receiver<Job>,
    to_commit: &std::sync::mpsc::SyncSender<Staged>,
    lost: &std::sync::atomic::AtomicU64,
) {
    use std::sync::atomic::Ordering;
    let mut epoch = 0;
    let mut waiting: Option<Job> = None;
    loop {
        let first = match waiting.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let lost_up_to = lost.load(Ordering::Acquire);
        if lost_up_to > epoch {
            merger.clear_cache();
            epoch = lost_up_to;
        }
        let mut batch = Vec::new();
        match first {
            Job::Run(f) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut merger)))
                    .is_err()
                {
                    merger.clear_cache();
                }
                continue;
            }
            push => batch.push(push),
        }
        let mut docs = batch_docs(&batch);
        while docs < MAX_BATCH_DOCS {
            match jobs.try_recv() {
                Ok(job @ Job::Push { .. }) => {
                    batch.push(job);
                    docs = batch_docs(&batch);
                }
                Ok(job) => {
                    waiting = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        let staged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let pushes: Vec<Submission<'_>> = batch
                .iter()
                .filter_map(|job| match job {
                    Job::Push {
                        pusher,
                        actor_prefix,
                        docs,
                        now_ms,
                        origin,
                        ..
                    } => Some(Submission {
                        pusher,
                        actor_prefix,
                        docs,
                        now_ms: *now_ms,
                        origin: *origin,
                    }),
                    Job::Run(_) => None,
                })
                .collect();
            let outcomes = merger.stage_batch(&pushes);
            (outcomes, merger.take_batch())
        }));
        let replies = batch.into_iter().filter_map(|job| match job {
            Job::Push { reply, .. } => Some(reply),
            Job::Run(_) => None,
        });
        match staged {
            Ok((outcomes, (merges, audit))) => {
                let staged = Staged {
                    epoch,
                    merges,
                    audit,
                    replies: replies.zip(outcomes).collect(),
                };
                if to_commit.send(staged).is_err() {
                    return;
                }
            }
            Err(_) => {
                merger.clear_cache();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database("the merge panicked".into())));
                }
            }
        }
    }
}

fn batch_docs(batch: &[Job]) -> usize {
    batch
        .iter()
        .map(|j| match j {
            Job::Push { docs, .. } => docs.len(),
            Job::Run(_) => 0,
        })
        .sum()
}
