//! Server merge: validates each pushed document with gridlink-core's rules and commits the
//! accepted ones in one transaction.
//!
//! Loaded documents stay in an LRU cache (loading dominates a merge otherwise). A pushed
//! document is applied *in place* to its cached copy; if the push is refused, that copy is
//! dropped and the next request loads the stored one again, so a refused push never leaves a
//! trace.
//!
//! One `Merger` runs on one thread ([`spawn`]): SQLite has one writer, and two merges of one
//! document must not start from the same copy. That thread takes every push waiting for it,
//! validates them one after the other, and commits them in one transaction (group commit):
//! with `synchronous=FULL` a commit costs an fsync, and the pushes that arrived during one
//! fsync share the next.

use crate::store::{AuditEntry, CaseRow, Merge, ServerStore, StoreError};
use gridlink_core::Error as CoreError;
use gridlink_core::case::Case;
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::access::{Before, Pusher, Refusal, check_push};
use gridlink_core::sync::actor_belongs_to;
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_core::sync::wire::{Ack, PushDoc, RejectCode, Rejection};
use lru::LruCache;
use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;

/// The largest change bytes accepted for one document in one push.
pub const MAX_DOC_PUSH_BYTES: usize = 1 << 20;

/// Compact a document's stored form after this many change rows.
const COMPACT_AFTER_CHUNKS: u32 = 32;

struct Cached {
    doc: CaseDoc,
    case: Case,
    scopes: BTreeSet<ScopeKey>,
    chunks: u32,
}

/// What one push produced.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// Documents the server now holds.
    pub acks: Vec<Ack>,
    /// Documents refused.
    pub rejections: Vec<Rejection>,
    /// Events added by accepted documents.
    pub events_added: u64,
}

/// The merge engine. See the module docs.
pub struct Merger {
    store: Arc<dyn ServerStore>,
    cache: LruCache<String, Cached>,
    grids: HashMap<String, GridPlace>,
    /// Documents touched by the batch being built, with its uncommitted changes: outside the
    /// LRU, so they can neither be evicted before the commit nor survive a failed one.
    staged: HashMap<String, Cached>,
    merges: Vec<Merge>,
    audit: Vec<AuditEntry>,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Merger {
    /// A merger over `store`, caching up to `cache_docs` documents.
    pub fn new(store: Arc<dyn ServerStore>, cache_docs: usize) -> Result<Merger, StoreError> {
        let grids = store
            .grids()?
            .into_iter()
            .map(|g| (g.grid_id.clone(), g))
            .collect();
        Ok(Merger {
            store,
            cache: LruCache::new(NonZeroUsize::new(cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN)),
            grids,
            staged: HashMap::new(),
            merges: Vec::new(),
            audit: Vec::new(),
        })
    }

    /// Reloads the grid table (after an import).
    pub fn reload_grids(&mut self) -> Result<(), StoreError> {
        self.grids = self
            .store
            .grids()?
            .into_iter()
            .map(|g| (g.grid_id.clone(), g))
            .collect();
        Ok(())
    }

    /// Forgets every cached document and whatever the current batch staged.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
        self.staged.clear();
        self.merges.clear();
        self.audit.clear();
    }

    fn load(&mut self, doc_id: &str) -> Result<Option<Cached>, Refusal> {
        if let Some(cached) = self.staged.remove(doc_id) {
            return Ok(Some(cached));
        }
        if let Some(cached) = self.cache.pop(doc_id) {
            return Ok(Some(cached));
        }
        let stored = self.store.load_doc(doc_id).map_err(|e| {
            refusal(
                RejectCode::Corrupt,
                format!("服务器存储错误 / server storage error: {e}"),
            )
        })?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let doc = CaseDoc::load(doc_id, &stored.bytes).map_err(|e| {
            tracing::error!(doc_id, error = %e, "stored document does not load");
            refusal(
                RejectCode::Corrupt,
                format!("服务器上的文档无法读取 / the server's copy does not load: {e}"),
            )
        })?;
        let case = doc
            .case()
            .map_err(|e| refusal(RejectCode::Malformed, e.to_string()))?;
        Ok(Some(Cached {
            doc,
            case,
            scopes: stored.scopes,
            chunks: stored.chunks,
        }))
    }

    /// Validates and merges one push into the current batch: accepted documents join the
    /// batch's pending merges (committed by [`commit_batch`](Self::commit_batch)), and the
    /// documents stay in the batch's staging area, so a later push in the same batch builds on
    /// them.
    pub fn stage(
        &mut self,
        pusher: &Pusher,
        actor_prefix: &[u8],
        docs: &[PushDoc],
        now_ms: i64,
    ) -> PushOutcome {
        let mut outcome = PushOutcome::default();
        for push in docs {
            match self.merge_one(pusher, actor_prefix, push) {
                Ok(Merged::Unchanged { cached, heads }) => {
                    outcome.acks.push(Ack {
                        doc_id: push.doc_id.clone(),
                        heads: heads.into_iter().map(Into::into).collect(),
                    });
                    self.staged.insert(push.doc_id.clone(), cached);
                }
                Ok(Merged::Accepted {
                    cached,
                    merge,
                    added,
                }) => {
                    outcome.events_added += added;
                    outcome.acks.push(Ack {
                        doc_id: push.doc_id.clone(),
                        heads: merge.heads.iter().copied().map(Into::into).collect(),
                    });
                    self.audit.push(AuditEntry {
                        at_ms: now_ms,
                        actor: pusher.user_id.clone(),
                        device: Some(pusher.device_id.clone()),
                        action: "push".into(),
                        subject: push.doc_id.clone(),
                        detail: format!("{added} events, {} bytes", merge.changes.len()),
                    });
                    self.merges.push(*merge);
                    self.staged.insert(push.doc_id.clone(), cached);
                }
                Err(r) => {
                    tracing::info!(doc_id = %push.doc_id, device = %pusher.device_id, code = r.code.code(), "push refused: {}", r.message);
                    self.audit.push(AuditEntry {
                        at_ms: now_ms,
                        actor: pusher.user_id.clone(),
                        device: Some(pusher.device_id.clone()),
                        action: "push_rejected".into(),
                        subject: push.doc_id.clone(),
                        detail: format!("{}: {}", r.code.code(), r.message),
                    });
                    let server_doc = self.readable_copy(pusher, &push.doc_id);
                    outcome.rejections.push(Rejection {
                        doc_id: push.doc_id.clone(),
                        code: r.code,
                        message: r.message,
                        event_ids: r.event_ids,
                        server_doc,
                    });
                }
            }
        }
        outcome
    }

    /// Commits everything staged since the last commit in one transaction. On success the
    /// staged documents join the cache; on failure they are dropped (the next push loads the
    /// stored versions), and nothing of the batch was stored.
    pub fn commit_batch(&mut self) -> Result<(), StoreError> {
        let result = self.store.commit(&self.merges, &self.audit);
        self.merges.clear();
        self.audit.clear();
        let staged = std::mem::take(&mut self.staged);
        if result.is_ok() {
            for (id, cached) in staged {
                self.cache.put(id, cached);
            }
        }
        result
    }

    /// Stores documents the server itself wrote (fixture imports, the demo's history), without
    /// access checks, in one transaction.
    pub fn import(&mut self, docs: Vec<CaseDoc>) -> Result<(), StoreError> {
        let mut merges = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let case = doc
                .case()
                .map_err(|e| StoreError::Conflict(e.to_string()))?;
            let place = self
                .grids
                .get(&case.details.grid_id)
                .cloned()
                .ok_or_else(|| StoreError::NotFound(format!("grid {}", case.details.grid_id)))?;
            let scopes = case_scopes(&case, &place);
            let bytes = doc.save();
            merges.push(Merge {
                doc_id: doc.id().to_owned(),
                device_id: "server".into(),
                changes: bytes.clone(),
                heads: doc.heads(),
                scopes,
                row: CaseRow::of(&case, &place),
                compacted: Some(bytes),
            });
            self.cache.pop(doc.id());
        }
        self.store.commit(&merges, &[])
    }

    /// The server's whole copy of a document, if it exists and the pusher may read it.
    fn readable_copy(&mut self, pusher: &Pusher, doc_id: &str) -> Option<Vec<u8>> {
        let mut cached = self.load(doc_id).ok().flatten()?;
        let bytes = pusher.may_read(&cached.scopes).then(|| cached.doc.save());
        self.staged.insert(doc_id.to_owned(), cached);
        bytes
    }

    fn merge_one(
        &mut self,
        pusher: &Pusher,
        actor_prefix: &[u8],
        push: &PushDoc,
    ) -> Result<Merged, Refusal> {
        if push.changes.len() > MAX_DOC_PUSH_BYTES {
            return Err(refusal(
                RejectCode::TooLarge,
                format!(
                    "一次推送的文档不能超过 {} 字节 / one document's push may not exceed {} bytes",
                    MAX_DOC_PUSH_BYTES, MAX_DOC_PUSH_BYTES
                ),
            ));
        }
        let existing = self.load(&push.doc_id)?;
        let (mut doc, before, before_heads) = match existing {
            Some(mut cached) => {
                let heads = cached.doc.heads();
                // Applied in place: on any refusal below `cached` is dropped, not re-cached.
                cached
                    .doc
                    .apply_in_place(&push.changes)
                    .map_err(core_refusal)?;
                let Cached {
                    doc,
                    case,
                    scopes,
                    chunks,
                } = cached;
                (doc, Some((case, scopes, chunks)), heads)
            }
            None => (
                CaseDoc::load(&push.doc_id, &push.changes).map_err(core_refusal)?,
                None,
                Vec::new(),
            ),
        };
        let heads = doc.heads();
        if heads == before_heads
            && let Some((case, scopes, chunks)) = before
        {
            return Ok(Merged::Unchanged {
                cached: Cached {
                    doc,
                    case,
                    scopes,
                    chunks,
                },
                heads,
            });
        }
        if let Some(actor) = doc
            .actors_since(&before_heads)
            .into_iter()
            .find(|a| !actor_belongs_to(a, actor_prefix))
        {
            return Err(refusal(
                RejectCode::ForgedActor,
                format!(
                    "变更的作者 {actor} 不是本设备 / a change is authored by {actor}, not by this device"
                ),
            ));
        }
        let extra = doc.unexpected_root_keys();
        if !extra.is_empty() {
            return Err(refusal(
                RejectCode::Malformed,
                format!("文档含有未定义的字段 / unknown fields at the root: {extra:?}"),
            ));
        }
        let after = doc.case().map_err(core_refusal)?;
        if after.details.id != push.doc_id {
            return Err(refusal(
                RejectCode::Malformed,
                format!(
                    "文档自称案件 {} / the document says it is case {}",
                    after.details.id, after.details.id
                ),
            ));
        }
        let place = self
            .grids
            .get(&after.details.grid_id)
            .cloned()
            .ok_or_else(|| {
                refusal(
                    RejectCode::UnknownGrid,
                    format!(
                        "没有网格 {} / there is no grid {}",
                        after.details.grid_id, after.details.grid_id
                    ),
                )
            })?;
        let after_scopes = case_scopes(&after, &place);
        let added = check_push(
            pusher,
            before
                .as_ref()
                .map(|(case, scopes, _)| Before { case, scopes }),
            &after,
            &after_scopes,
        )?;
        let chunks = before.as_ref().map_or(0, |b| b.2) + 1;
        let changes = if before.is_some() {
            doc.save_after(&before_heads)
        } else {
            doc.save()
        };
        let compacted = (chunks >= COMPACT_AFTER_CHUNKS).then(|| doc.save());
        let merge = Merge {
            doc_id: push.doc_id.clone(),
            device_id: pusher.device_id.clone(),
            changes,
            heads,
            scopes: after_scopes.clone(),
            row: CaseRow::of(&after, &place),
            compacted: compacted.clone(),
        };
        Ok(Merged::Accepted {
            cached: Cached {
                doc,
                case: after,
                scopes: after_scopes,
                chunks: if compacted.is_some() { 0 } else { chunks },
            },
            merge: Box::new(merge),
            added: added.len() as u64,
        })
    }
}

enum Merged {
    Unchanged {
        cached: Cached,
        heads: Vec<automerge::ChangeHash>,
    },
    Accepted {
        cached: Cached,
        merge: Box<Merge>,
        added: u64,
    },
}

fn refusal(code: RejectCode, message: String) -> Refusal {
    Refusal {
        code,
        message,
        event_ids: Vec::new(),
    }
}

fn core_refusal(e: CoreError) -> Refusal {
    let code = match &e {
        CoreError::Corrupt { .. } => RejectCode::Corrupt,
        CoreError::UnsupportedSchema { .. } => RejectCode::UnsupportedSchema,
        _ => RejectCode::Malformed,
    };
    refusal(code, e.to_string())
}

/// Most pushed documents the merge thread puts in one transaction.
const MAX_BATCH_DOCS: usize = 2_000;

type Reply = std::sync::mpsc::Sender<Result<PushOutcome, String>>;

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
        /// Where the outcome goes.
        reply: Reply,
    },
    /// Anything else that needs the merger (imports, grid reloads), run between batches.
    Run(Box<dyn FnOnce(&mut Merger) + Send>),
}

/// Starts the merge thread; it ends when every sender is dropped.
pub fn spawn(merger: Merger) -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("gridlink-merge".into())
        .spawn(move || run(merger, &rx))?;
    Ok(tx)
}

fn run(mut merger: Merger, jobs: &std::sync::mpsc::Receiver<Job>) {
    let mut waiting: Option<Job> = None;
    loop {
        let first = match waiting.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
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
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut outcomes = Vec::with_capacity(batch.len());
            for job in &batch {
                if let Job::Push {
                    pusher,
                    actor_prefix,
                    docs,
                    now_ms,
                    ..
                } = job
                {
                    outcomes.push(merger.stage(pusher, actor_prefix, docs, *now_ms));
                }
            }
            merger.commit_batch().map(|()| outcomes)
        }));
        let replies = batch.into_iter().filter_map(|job| match job {
            Job::Push { reply, .. } => Some(reply),
            Job::Run(_) => None,
        });
        match done {
            Ok(Ok(outcomes)) => {
                for (reply, outcome) in replies.zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(Err(e)) => {
                for reply in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            Err(_) => {
                merger.clear_cache();
                for reply in replies {
                    let _ = reply.send(Err("the merge panicked".into()));
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
