//! Server merge: the pipeline that takes pushed documents, has each judged by
//! [`validate`] (gridlink-core's rules), and commits the accepted ones in one transaction.
//!
//! Loaded documents stay in an LRU cache (loading dominates a merge otherwise). A pushed
//! document is applied *in place* to its cached copy; if the push is refused, that copy is
//! dropped and rebuilt from the store and the merges not committed yet, so a refused push
//! never leaves a trace. Cases and records take the same pipeline; only their judgement
//! differs.
//!
//! One `Merger` runs on one thread ([`spawn`]): two merges of one document must not start
//! from the same copy. That thread takes every push waiting for it and commits them in one
//! transaction (group commit): with `synchronous=FULL` a commit costs an fsync, and the
//! pushes that arrived during one fsync share the next. Within a batch the pushed documents
//! are grouped by document; each group is merged in arrival order, and the groups are shared
//! between two workers (validation is CPU work: Automerge loads, applies and reads). Each
//! merge carries the heads it started from, and the store refuses it if they moved.
//!
//! Everything written goes through here: a phone's push ([`Origin::Device`]), a change the
//! server makes for a user or for the platform ([`Origin::Recorded`]) and a case the server's
//! intake opens for a reporter ([`Origin::Intake`]); see `crate::authored`.

mod thread;
pub mod validate;

pub use thread::{Job, spawn};
pub use validate::MAX_DOC_PUSH_BYTES;

use crate::store::{AuditEntry, CaseRow, Merge, ServerStore, StoreError};
use gridlink_core::Error as CoreError;
use gridlink_core::case::{Case, ScoringRule, score};
use gridlink_core::doc::{CaseDoc, DocKind, RecordDoc};
use gridlink_core::sync::access::{Pusher, Refusal};
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_core::sync::wire::{Ack, PushDoc, RejectCode, Rejection};
use lru::LruCache;
use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::Arc;
use validate::{
    Context, Doc, Prior, Push, Stored, check_readable, check_size, core_refusal, refusal,
};

/// Compact a document's stored form after this many change rows.
const COMPACT_AFTER_CHUNKS: u32 = 32;

/// The merge thread stops adding pushes to a batch at this many documents (a batch holds at
/// most this plus one push, [`gridlink_core::sync::wire::MAX_PUSH_DOCS`]).
const MAX_BATCH_DOCS: usize = 2_000;

/// Where a push comes from, which decides the rule its cases are judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A device's push over sync: `sync::access::check_push`, `sync::records::check_record_push`.
    Device,
    /// A change the server made for a device's user (a command-centre action) or for the
    /// platform (automatic escalation): judged as the device's own push would be.
    Recorded,
    /// A new case the server's intake opened for a reporter outside the sync (a citizen's
    /// report, an Open311 request): `sync::access::check_intake`. Audited under this action.
    Intake(&'static str),
}

impl Origin {
    /// The action an accepted push is audited under.
    fn audit_action(self) -> &'static str {
        match self {
            Origin::Device | Origin::Recorded => "push",
            Origin::Intake(action) => action,
        }
    }
}

/// One push handed to the merger: who, with which actor prefix, what, when, from where.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// Who pushes.
    pub pusher: &'a Pusher,
    /// The actor prefix the changes must be authored under.
    pub actor_prefix: &'a [u8],
    /// The documents.
    pub docs: &'a [PushDoc],
    /// When, UTC ms.
    pub now_ms: i64,
    /// Where it comes from.
    pub origin: Origin,
}

impl<'a> Submission<'a> {
    /// A device's push over sync.
    pub fn device(
        pusher: &'a Pusher,
        actor_prefix: &'a [u8],
        docs: &'a [PushDoc],
        now_ms: i64,
    ) -> Self {
        Submission {
            pusher,
            actor_prefix,
            docs,
            now_ms,
            origin: Origin::Device,
        }
    }
}

/// A document as the merger holds it between pushes.
struct Cached {
    doc: Doc,
    /// A case's fold as of the last judgement (none for a record, or when not folded yet).
    fold: Option<Case>,
    scopes: BTreeSet<ScopeKey>,
    chunks: u32,
    /// About how many bytes the store holds for the document (its saved form plus the change
    /// rows since), for the push validator's document cap.
    bytes: usize,
}

impl Cached {
    fn new(
        mut doc: Doc,
        scopes: BTreeSet<ScopeKey>,
        chunks: u32,
        bytes: usize,
    ) -> Result<Cached, CoreError> {
        let fold = match &mut doc {
            Doc::Case(case) => Some(case.case()?),
            Doc::Record(_) => None,
        };
        Ok(Cached {
            doc,
            fold,
            scopes,
            chunks,
            bytes,
        })
    }

    /// What the rules read of the document before a push: the case's fold, or a copy of the
    /// record (the working copy is about to change).
    fn prior(&mut self) -> Result<Prior, CoreError> {
        Ok(match (&mut self.doc, self.fold.take()) {
            (Doc::Case(_), Some(case)) => Prior::Case(case),
            (Doc::Case(doc), None) => Prior::Case(doc.case()?),
            (Doc::Record(doc), _) => Prior::Record(doc.clone()),
        })
    }
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
    /// The scoring rule and time limits every merged case's row and score lines follow.
    rule: ScoringRule,
    /// Who may verify and close their own work.
    duties: gridlink_core::case::Duties,
    /// Documents touched by the batch being built, with its uncommitted changes: outside the
    /// LRU, so they can neither be evicted before the commit nor survive a failed one.
    staged: HashMap<String, Cached>,
    merges: Vec<Merge>,
    audit: Vec<AuditEntry>,
    /// The merges of the batch handed to the commit thread last, by document: until the next
    /// hand-over they may not be in the store yet.
    in_flight: Arc<Vec<Merge>>,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Merger {
    /// A merger over `store`, caching up to `cache_docs` documents, under the district's
    /// `rules`.
    pub fn new(
        store: Arc<dyn ServerStore>,
        cache_docs: usize,
        rules: &crate::store::DistrictRules,
    ) -> Result<Merger, StoreError> {
        let grids = store
            .grids()?
            .into_iter()
            .map(|g| (g.grid_id.clone(), g))
            .collect();
        Ok(Merger {
            store,
            cache: LruCache::new(
                NonZeroUsize::new(cache_docs.max(2 * MAX_BATCH_DOCS)).unwrap_or(NonZeroUsize::MIN),
            ),
            grids,
            rule: ScoringRule {
                limits: rules.limits.clone(),
                ..ScoringRule::default()
            },
            duties: rules.duties,
            staged: HashMap::new(),
            merges: Vec::new(),
            audit: Vec::new(),
            in_flight: Arc::default(),
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
        self.in_flight = Arc::default();
        self.merges.clear();
        self.audit.clear();
    }

    /// Validates and merges a batch of pushes, returning one outcome per push. Accepted documents join the batch's pending merges,
    /// committed by [`commit_batch`](Self::commit_batch).
    pub fn stage_batch(&mut self, pushes: &[Submission<'_>]) -> Vec<PushOutcome> {
        let mut groups: Vec<DocGroup<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (job, submission) in pushes.iter().enumerate() {
            for push in submission.docs {
                let slot = *index.entry(push.doc_id.as_str()).or_insert_with(|| {
                    groups.push(DocGroup {
                        doc_id: push.doc_id.clone(),
                        state: None,
                        items: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[slot].items.push(Item {
                    job,
                    pusher: submission.pusher,
                    prefix: submission.actor_prefix,
                    push,
                    now_ms: submission.now_ms,
                    origin: submission.origin,
                });
            }
        }
        for group in &mut groups {
            group.state = self
                .staged
                .remove(&group.doc_id)
                .or_else(|| self.cache.pop(&group.doc_id));
        }
        let (store, grids, rule, duties) = (&*self.store, &self.grids, &self.rule, &self.duties);
        let mut in_flight: HashMap<&str, Vec<&Merge>> = HashMap::new();
        for m in self.in_flight.iter() {
            in_flight.entry(m.doc_id.as_str()).or_default().push(m);
        }
        let in_flight = &in_flight;
        // Standard addresses not in the store yet (the batch being committed, and this one's):
        // a visit pushed with a new address names it. Addresses go first for that.
        let mut fresh: HashMap<String, String> = HashMap::new();
        let note_addresses = |merges: &[Merge], fresh: &mut HashMap<String, String>| {
            for summary in merges.iter().filter_map(|m| m.record.as_ref()) {
                if let (DocKind::Address, Some(code), Some(grid)) =
                    (summary.kind, &summary.subject, &summary.grid_id)
                {
                    fresh.insert(code.clone(), grid.clone());
                }
            }
        };
        note_addresses(&self.in_flight, &mut fresh);
        let run = |g: DocGroup<'_>, fresh: &HashMap<String, String>| {
            let before = in_flight
                .get(g.doc_id.as_str())
                .map_or(&[][..], Vec::as_slice);
            let context = Context {
                store,
                grids,
                rule,
                duties,
                fresh,
            };
            merge_group(&context, before, g)
        };
        let (addresses, groups): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|g| DocKind::of(&g.doc_id) == DocKind::Address);
        let mut results: Vec<GroupResult> = Vec::with_capacity(addresses.len() + groups.len());
        for group in addresses {
            let result = run(group, &fresh);
            note_addresses(&result.merges, &mut fresh);
            results.push(result);
        }
        let fresh = &fresh;
        let run = |g: DocGroup<'_>| run(g, fresh);
        let total: usize = groups.iter().map(|g| g.items.len()).sum();
        let more: Vec<GroupResult> = if groups.len() < 2 || total < 8 {
            groups.into_iter().map(run).collect()
        } else {
            // Two halves of about equal work, one on a second thread.
            let mut halves = (Vec::new(), Vec::new());
            let (mut left, mut right) = (0, 0);
            for g in groups {
                if left <= right {
                    left += g.items.len();
                    halves.0.push(g);
                } else {
                    right += g.items.len();
                    halves.1.push(g);
                }
            }
            std::thread::scope(|scope| {
                let other = scope.spawn(move || halves.1.into_iter().map(run).collect::<Vec<_>>());
                let mut results: Vec<GroupResult> = halves.0.into_iter().map(run).collect();
                match other.join() {
                    Ok(more) => results.extend(more),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
                results
            })
        };
        results.extend(more);
        let mut outcomes: Vec<PushOutcome> =
            pushes.iter().map(|_| PushOutcome::default()).collect();
        for result in results {
            if let Some(state) = result.state {
                self.staged.insert(result.doc_id, state);
            }
            self.merges.extend(result.merges);
            self.audit.extend(result.audit);
            for (job, outcome) in result.outcomes {
                let Some(out) = outcomes.get_mut(job) else {
                    continue;
                };
                match outcome {
                    ItemOutcome::Ack(ack, added) => {
                        out.events_added += added;
                        out.acks.push(ack);
                    }
                    ItemOutcome::Rejected(rejection) => out.rejections.push(rejection),
                }
            }
        }
        outcomes
    }

    /// Commits everything staged since the last commit in one transaction. On success the
    /// staged documents join the cache; on failure they are dropped (the next push loads the
    /// stored versions), and nothing of the batch was stored.
    pub fn commit_batch(&mut self) -> Result<(), StoreError> {
        let (merges, audit) = self.take_batch();
        let result = self.store.commit(&merges, &audit);
        if result.is_err() {
            self.clear_cache();
        }
        result
    }

    /// Hands over what the batch staged, for a commit elsewhere: the staged documents join the
    /// cache now, ahead of the commit. Whoever commits must make the merger forget its cache
    /// if the commit fails ([`clear_cache`](Self::clear_cache)), before it stages anything
    /// that might build on the lost batch.
    pub fn take_batch(&mut self) -> (Arc<Vec<Merge>>, Vec<AuditEntry>) {
        for (id, cached) in std::mem::take(&mut self.staged) {
            self.cache.put(id, cached);
        }
        let merges = Arc::new(std::mem::take(&mut self.merges));
        // Shared with the committer, not copied: until the next hand-over they may not be in
        // the store yet, and a refusal must be undone on top of them.
        self.in_flight = merges.clone();
        (merges, std::mem::take(&mut self.audit))
    }

    /// The store the merger writes to.
    pub fn store(&self) -> Arc<dyn ServerStore> {
        self.store.clone()
    }

    /// Stores record documents the server wrote (the register of standard addresses), without
    /// access checks, in one transaction.
    pub fn import_records(
        &mut self,
        docs: Vec<RecordDoc>,
        device_id: &str,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let mut merges = Vec::with_capacity(docs.len());
        for mut doc in docs {
            let grids = &self.grids;
            let (scopes, summary) =
                gridlink_core::sync::records::summary(&doc, &|g| grids.get(g).cloned())
                    .map_err(|r| StoreError::Conflict(r.message))?;
            let bytes = doc.save();
            merges.push(Merge {
                doc_id: doc.id().to_owned(),
                device_id: device_id.to_owned(),
                changes: bytes.clone(),
                heads: doc.heads(),
                base_heads: None,
                new_scopes: scopes.clone(),
                scopes,
                row: None,
                photos: summary.photos.clone(),
                record: Some(summary),
                compacted: Some(bytes),
                scores: Vec::new(),
            });
            self.cache.pop(doc.id());
        }
        self.store.commit(&merges, &audit)
    }

    /// Stores whole case documents the server itself wrote (fixture imports, the demo's
    /// history), without access checks, in one transaction: they replace what is stored.
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
                device_id: "server".to_owned(),
                changes: bytes.clone(),
                heads: doc.heads(),
                base_heads: None,
                new_scopes: scopes.clone(),
                scopes,
                row: Some(CaseRow::of(&case, &place, &self.rule.limits)),
                record: None,
                compacted: Some(bytes),
                photos: case.state.photos.clone(),
                scores: score(&case, &place, &self.rule),
            });
            self.cache.pop(doc.id());
        }
        self.store.commit(&merges, &[])
    }
}

/// One pushed document and the push it came in.
struct Item<'a> {
    job: usize,
    pusher: &'a Pusher,
    prefix: &'a [u8],
    push: &'a PushDoc,
    now_ms: i64,
    origin: Origin,
}

/// Every push of one document in a batch, in arrival order, and the document as it stands.
struct DocGroup<'a> {
    doc_id: String,
    state: Option<Cached>,
    items: Vec<Item<'a>>,
}

enum ItemOutcome {
    Ack(Ack, u64),
    Rejected(Rejection),
}

struct GroupResult {
    doc_id: String,
    state: Option<Cached>,
    merges: Vec<Merge>,
    audit: Vec<AuditEntry>,
    outcomes: Vec<(usize, ItemOutcome)>,
}

/// The stored document, loaded and folded for the cache.
fn load_stored(store: &dyn ServerStore, doc_id: &str) -> Result<Option<Cached>, Refusal> {
    // The server's own trouble is not the push's fault: the phone keeps its copy and retries.
    let stored = store.load_doc(doc_id).map_err(|e| {
        refusal(
            RejectCode::ServerError,
            format!("服务器存储错误，请稍后重试 / server storage error, retry later: {e}"),
        )
    })?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let bytes = stored.bytes.len();
    let doc = Doc::load(doc_id, &stored.bytes)
        .and_then(|doc| Cached::new(doc, stored.scopes, stored.chunks, bytes));
    doc.map_err(|e| {
        tracing::error!(doc_id, error = %e, "stored document does not load");
        refusal(
            RejectCode::ServerError,
            format!("服务器上的文档无法读取 / the server's copy does not load: {e}"),
        )
    })
    .map(Some)
}

/// The document as it stood before a refused push (which was applied in place to the working
/// copy): the stored version, then the changes of the batch still being committed, then those
/// this batch accepted so far. Applying a change twice is harmless, so it does not matter
/// whether the batch in flight has reached the store yet.
fn restore(
    store: &dyn ServerStore,
    doc_id: &str,
    in_flight: &[&Merge],
    accepted: &[Merge],
) -> Option<Cached> {
    let mut cached = load_stored(store, doc_id).ok().flatten();
    for merge in in_flight.iter().copied().chain(accepted) {
        match cached.as_mut() {
            Some(c) => {
                c.doc.apply_in_place(&merge.changes).ok()?;
                // Folded again when a push is next judged against it.
                c.fold = None;
                c.scopes = merge.scopes.clone();
                c.bytes += merge.changes.len();
            }
            None => {
                cached = Some(Cached {
                    doc: Doc::load(doc_id, &merge.changes).ok()?,
                    fold: None,
                    scopes: merge.scopes.clone(),
                    chunks: 0,
                    bytes: merge.changes.len(),
                });
            }
        }
    }
    cached
}

/// Merges every push of one document in a batch, in order.
fn merge_group(context: &Context<'_>, in_flight: &[&Merge], group: DocGroup<'_>) -> GroupResult {
    let store = context.store;
    let DocGroup {
        doc_id,
        state,
        items,
    } = group;
    let mut result = GroupResult {
        doc_id,
        state: None,
        merges: Vec::new(),
        audit: Vec::new(),
        outcomes: Vec::new(),
    };
    let mut state = match state {
        Some(state) => Ok(Some(state)),
        None => load_stored(store, &result.doc_id),
    };
    for item in items {
        let push = Push {
            pusher: item.pusher,
            actor_prefix: item.prefix,
            doc_id: &result.doc_id,
            origin: item.origin,
            now_ms: item.now_ms,
        };
        let merged = state.and_then(|current| {
            merge_held(
                context,
                in_flight,
                &result.merges,
                current,
                &push,
                &item.push.changes,
            )
        });
        let (pusher, doc_id) = (item.pusher, &result.doc_id);
        let entry = |action: &str, detail: String| AuditEntry {
            at_ms: item.now_ms,
            actor: pusher.user_id.clone(),
            device: Some(pusher.device_id.clone()),
            action: action.to_owned(),
            subject: doc_id.clone(),
            detail,
        };
        match merged {
            Ok(Merged::Unchanged { cached, heads }) => {
                let ack = Ack {
                    doc_id: doc_id.clone(),
                    heads: heads.into_iter().map(Into::into).collect(),
                };
                result.outcomes.push((item.job, ItemOutcome::Ack(ack, 0)));
                state = Ok(Some(cached));
            }
            Ok(Merged::Accepted {
                cached,
                merge,
                added,
            }) => {
                let ack = Ack {
                    doc_id: doc_id.clone(),
                    heads: merge.heads.iter().copied().map(Into::into).collect(),
                };
                let grid = merge.row.as_ref().map(|r| r.place.grid_id.as_str());
                result.audit.push(entry(
                    item.origin.audit_action(),
                    match (item.origin, grid) {
                        (Origin::Intake(_), Some(grid)) => format!("grid {grid}"),
                        _ => format!("{added} events, {} bytes", merge.changes.len()),
                    },
                ));
                result
                    .outcomes
                    .push((item.job, ItemOutcome::Ack(ack, added)));
                result.merges.push(*merge);
                state = Ok(Some(cached));
            }
            Err(r) => {
                tracing::info!(doc_id = %doc_id, device = %pusher.device_id, code = r.code.code(), "push refused: {}", r.message);
                // A refused intake is the server's own write, answered to its caller (a
                // retried submission finds its case); a device's refused push is audited.
                if !matches!(item.origin, Origin::Intake(_)) {
                    result.audit.push(entry(
                        "push_rejected",
                        format!("{}: {}", r.code.code(), r.message),
                    ));
                }
                let mut restored = restore(store, doc_id, in_flight, &result.merges);
                let server_doc = restored
                    .as_mut()
                    .and_then(|c| pusher.may_read(&c.scopes).then(|| c.doc.save()));
                result.outcomes.push((
                    item.job,
                    ItemOutcome::Rejected(Rejection {
                        doc_id: doc_id.clone(),
                        code: r.code,
                        message: r.message,
                        event_ids: r.event_ids,
                        server_doc,
                    }),
                ));
                state = Ok(restored);
            }
        }
    }
    result.state = state.ok().flatten();
    result
}

/// The document before a push, as the pipeline holds it.
struct Base {
    prior: Prior,
    heads: Vec<automerge::ChangeHash>,
    scopes: BTreeSet<ScopeKey>,
    chunks: u32,
    bytes: usize,
}

/// Merges one push into the document as this node holds it (`current`); if that copy lacks
/// changes the push builds on (it was cached while another node wrote the document), once more
/// into the document as stored, with what is on its way there (`in_flight`, `accepted`). A push
/// that builds on changes the store lacks too is refused, retryably.
fn merge_held(
    context: &Context<'_>,
    in_flight: &[&Merge],
    accepted: &[Merge],
    current: Option<Cached>,
    push: &Push<'_>,
    changes: &[u8],
) -> Result<Merged, Refusal> {
    if let Some(merged) = merge_push(current, context, push, changes)? {
        return Ok(merged);
    }
    match restore(context.store, push.doc_id, in_flight, accepted) {
        Some(stored) => merge_push(Some(stored), context, push, changes)?,
        None => None,
    }
    .ok_or_else(|| {
        refusal(
            RejectCode::ServerError,
            "服务器缺少此推送所依赖的更改，请稍后重试 / the server lacks changes this push builds on: try again later".to_owned(),
        )
    })
}

/// Merges one push of a document into the document as it stands (`existing`, none for a new
/// document): applied in place, judged by [`validate`], and turned into what the store keeps.
/// The same for cases and records. On refusal the working copy is consumed (it may be
/// half-applied). `None` when the push depends on changes this copy lacks (Automerge holds
/// such changes back unseen, so nothing can be judged): nothing was kept.
fn merge_push(
    existing: Option<Cached>,
    context: &Context<'_>,
    push: &Push<'_>,
    changes: &[u8],
) -> Result<Option<Merged>, Refusal> {
    check_size(changes)?;
    let (mut doc, base) = match existing {
        Some(mut cached) => {
            let prior = cached.prior().map_err(core_refusal)?;
            let heads = cached.doc.heads();
            // Applied in place: on any refusal below the copy is dropped, not re-cached.
            cached.doc.apply_in_place(changes).map_err(core_refusal)?;
            let base = Base {
                prior,
                heads,
                scopes: cached.scopes,
                chunks: cached.chunks,
                bytes: cached.bytes,
            };
            (cached.doc, Some(base))
        }
        None => (Doc::load(push.doc_id, changes).map_err(core_refusal)?, None),
    };
    if !doc.missing_deps().is_empty() {
        return Ok(None);
    }
    let heads = doc.heads();
    // (The intake's reporter holds no scopes: whether it may write is the intake's rule
    // alone, which refuses any document that exists.)
    if let Some(base) = &base
        && !matches!(push.origin, Origin::Intake(_))
    {
        check_readable(push.pusher, &base.scopes, push.doc_id)?;
    }
    let base = match base {
        Some(base) if base.heads == heads => {
            let fold = match base.prior {
                Prior::Case(case) => Some(case),
                Prior::Record(_) => None,
            };
            let cached = Cached {
                doc,
                fold,
                scopes: base.scopes,
                chunks: base.chunks,
                bytes: base.bytes,
            };
            return Ok(Some(Merged::Unchanged { cached, heads }));
        }
        base => base,
    };
    // One pass over the new changes: their authors, what each operation does, and the bytes
    // the change log keeps.
    let new = doc.changes_since(base.as_ref().map_or(&[][..], |b| &b.heads));
    let stored = base.as_ref().map(|b| Stored {
        prior: &b.prior,
        scopes: &b.scopes,
        bytes: b.bytes,
    });
    let verdict = validate::judge_push(context, push, stored.as_ref(), &mut doc, &new)?;
    let device_id = logged_device(&new.actors, push.pusher);
    let chunks = base.as_ref().map_or(0, |b| b.chunks) + 1;
    let stored_bytes = base.as_ref().map_or(0, |b| b.bytes);
    let (changes, base_heads, new_scopes) = match base {
        Some(base) => (
            new.bytes,
            base.heads,
            verdict.scopes.difference(&base.scopes).cloned().collect(),
        ),
        // A new document is kept as one compact save; an existing one gains its new changes.
        None => (doc.save(), Vec::new(), verdict.scopes.clone()),
    };
    let compacted = (chunks >= COMPACT_AFTER_CHUNKS).then(|| doc.save());
    let bytes = match &compacted {
        Some(saved) => saved.len(),
        None => stored_bytes + changes.len(),
    };
    let merge = Merge {
        doc_id: push.doc_id.to_owned(),
        device_id,
        changes,
        heads,
        base_heads: Some(base_heads),
        scopes: verdict.scopes.clone(),
        new_scopes,
        row: verdict.row,
        record: verdict.record,
        compacted: compacted.clone(),
        photos: verdict.photos,
        scores: verdict.scores,
    };
    Ok(Some(Merged::Accepted {
        cached: Cached {
            doc,
            fold: verdict.fold,
            scopes: verdict.scopes,
            chunks: if compacted.is_some() { 0 } else { chunks },
            bytes,
        },
        merge: Box::new(merge),
        added: verdict.added,
    }))
}

/// The device a merge is logged under. Changes the server recorded for the device (its
/// actions, a template it published: actor epoch `u32::MAX`) are not the device's own: logged under another
/// name, so that the device's next pull brings them to its phone.
fn logged_device(actors: &[automerge::ActorId], pusher: &Pusher) -> String {
    let server_epoch = crate::authored::SERVER_EPOCH.to_be_bytes();
    let recorded_by_server =
        !actors.is_empty() && actors.iter().all(|a| a.to_bytes().ends_with(&server_epoch));
    if recorded_by_server {
        format!("server-for:{}", pusher.device_id)
    } else {
        pusher.device_id.clone()
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
