//! Server merge: validates each pushed document with gridlink-core's rules and commits the
//! accepted ones in one transaction.
//!
//! Loaded documents stay in an LRU cache (loading dominates a merge otherwise). A pushed
//! document is applied *in place* to its cached copy; if the push is refused, that copy is
//! dropped and the next request loads the stored one again, so a refused push never leaves a
//! trace.
//!
//! One `Merger` runs on one thread ([`spawn`]): SQLite has one writer, and two merges of one
//! document must not start from the same copy. That thread takes every push waiting for it
//! and commits them in one transaction (group commit): with `synchronous=FULL` a commit costs
//! an fsync, and the pushes that arrived during one fsync share the next. Within a batch the
//! pushed documents are grouped by document; each group is merged in arrival order, and the
//! groups are shared between two workers (validation is CPU work: Automerge loads, applies
//! and reads).

use crate::store::{AuditEntry, CaseRow, Merge, ServerStore, StoreError};
use gridlink_core::Error as CoreError;
use gridlink_core::case::{Case, ScoringRule, score};
use gridlink_core::doc::{CaseDoc, DocKind, RecordDoc};
use gridlink_core::sync::access::{Before, Pusher, Refusal, check_push};
use gridlink_core::sync::actor_belongs_to;
use gridlink_core::sync::ops::{Caps, judge};
use gridlink_core::sync::records::check_record_push;
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
    held: Held,
    scopes: BTreeSet<ScopeKey>,
    chunks: u32,
    /// About how many bytes the store holds for the document (its saved form plus the change
    /// rows since), for the push validator's document cap.
    bytes: usize,
}

/// A loaded document: a case with its fold, or a record. (Cases are most of what is merged;
/// keeping the fold inline saves an allocation per merge.)
#[allow(clippy::large_enum_variant)]
enum Held {
    Case { doc: CaseDoc, case: Case },
    Record(RecordDoc),
}

impl Held {
    /// Loads stored or pushed bytes as the kind the id names.
    fn load(doc_id: &str, bytes: &[u8]) -> Result<Held, CoreError> {
        Ok(match DocKind::of(doc_id) {
            DocKind::Case => {
                let doc = CaseDoc::load(doc_id, bytes)?;
                let case = doc.case()?;
                Held::Case { doc, case }
            }
            _ => Held::Record(RecordDoc::load(doc_id, bytes)?),
        })
    }

    /// Applies changes in place (on error the copy must be dropped) and re-folds a case.
    fn apply_in_place(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        match self {
            Held::Case { doc, case } => {
                doc.apply_in_place(bytes)?;
                *case = doc.case()?;
            }
            Held::Record(doc) => doc.apply_in_place(bytes)?,
        }
        Ok(())
    }

    fn save(&mut self) -> Vec<u8> {
        match self {
            Held::Case { doc, .. } => doc.save(),
            Held::Record(doc) => doc.save(),
        }
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
    /// A merger over `store`, caching up to `cache_docs` documents.
    pub fn new(store: Arc<dyn ServerStore>, cache_docs: usize) -> Result<Merger, StoreError> {
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
            rule: ScoringRule::default(),
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

    /// Validates and merges a batch of pushes (`(pusher, actor prefix, documents, time)`),
    /// returning one outcome per push. Accepted documents join the batch's pending merges,
    /// committed by [`commit_batch`](Self::commit_batch).
    pub fn stage_batch(
        &mut self,
        pushes: &[(&Pusher, &[u8], &[PushDoc], i64)],
    ) -> Vec<PushOutcome> {
        let mut groups: Vec<DocGroup<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (job, (pusher, prefix, docs, now_ms)) in pushes.iter().enumerate() {
            for push in docs.iter() {
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
                    pusher,
                    prefix,
                    push,
                    now_ms: *now_ms,
                });
            }
        }
        for group in &mut groups {
            group.state = self
                .staged
                .remove(&group.doc_id)
                .or_else(|| self.cache.pop(&group.doc_id));
        }
        let (store, grids, rule) = (&*self.store, &self.grids, &self.rule);
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

    /// Stores documents the server itself wrote (fixture imports, the demo's history), without
    /// access checks, in one transaction.
    pub fn import(&mut self, docs: Vec<CaseDoc>) -> Result<(), StoreError> {
        self.import_from(docs, "server", Vec::new())
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

    /// Stores documents the server wrote on behalf of a device (a citizen's report), with
    /// audit entries, in one transaction.
    pub fn import_from(
        &mut self,
        docs: Vec<CaseDoc>,
        device_id: &str,
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
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
                device_id: device_id.to_owned(),
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
        self.store.commit(&merges, &audit)
    }
}

/// One pushed document and the push it came in.
struct Item<'a> {
    job: usize,
    pusher: &'a Pusher,
    prefix: &'a [u8],
    push: &'a PushDoc,
    now_ms: i64,
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
    let held = Held::load(doc_id, &stored.bytes).map_err(|e| {
        tracing::error!(doc_id, error = %e, "stored document does not load");
        refusal(
            RejectCode::ServerError,
            format!("服务器上的文档无法读取 / the server's copy does not load: {e}"),
        )
    })?;
    Ok(Some(Cached {
        held,
        scopes: stored.scopes,
        chunks: stored.chunks,
        bytes: stored.bytes.len(),
    }))
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
                c.held.apply_in_place(&merge.changes).ok()?;
                c.scopes = merge.scopes.clone();
                c.bytes += merge.changes.len();
            }
            None => {
                cached = Some(Cached {
                    held: Held::load(doc_id, &merge.changes).ok()?,
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
        let merged = match state {
            Ok(current) => merge_one(
                current,
                context,
                item.pusher,
                item.prefix,
                item.push,
                item.now_ms,
            ),
            Err(refusal) => Err(refusal),
        };
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
                result.audit.push(entry(
                    "push",
                    format!("{added} events, {} bytes", merge.changes.len()),
                ));
                result
                    .outcomes
                    .push((item.job, ItemOutcome::Ack(ack, added)));
                result.merges.push(*merge);
                state = Ok(Some(cached));
            }
            Err(r) => {
                tracing::info!(doc_id = %doc_id, device = %pusher.device_id, code = r.code.code(), "push refused: {}", r.message);
                result.audit.push(entry(
                    "push_rejected",
                    format!("{}: {}", r.code.code(), r.message),
                ));
                let mut restored = restore(store, doc_id, in_flight, &result.merges);
                let server_doc = restored
                    .as_mut()
                    .and_then(|c| pusher.may_read(&c.scopes).then(|| c.held.save()));
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

/// Validates one push of a document against the document as it stands (`existing`, none for a
/// new document). On refusal the working copy is consumed (it may be half-applied).
fn merge_one(
    existing: Option<Cached>,
    context: &Context<'_>,
    pusher: &Pusher,
    actor_prefix: &[u8],
    push: &PushDoc,
    now_ms: i64,
) -> Result<Merged, Refusal> {
    let (grids, rule) = (context.grids, context.rule);
    if push.changes.len() > MAX_DOC_PUSH_BYTES {
        return Err(refusal(
            RejectCode::TooLarge,
            format!(
                "一次推送的文档不能超过 {} 字节 / one document's push may not exceed {} bytes",
                MAX_DOC_PUSH_BYTES, MAX_DOC_PUSH_BYTES
            ),
        ));
    }
    if DocKind::of(&push.doc_id) != DocKind::Case {
        return merge_record(existing, context, pusher, actor_prefix, push, now_ms);
    }
    let (mut doc, before, before_heads) = match existing {
        Some(Cached {
            held: Held::Case { mut doc, case },
            scopes,
            chunks,
            bytes,
        }) => {
            let heads = doc.heads();
            // Applied in place: on any refusal below the copy is dropped, not re-cached.
            doc.apply_in_place(&push.changes).map_err(core_refusal)?;
            (doc, Some((case, scopes, chunks, bytes)), heads)
        }
        Some(_) => return Err(refusal(RejectCode::ServerError, "kind mismatch".into())),
        None => (
            CaseDoc::load(&push.doc_id, &push.changes).map_err(core_refusal)?,
            None,
            Vec::new(),
        ),
    };
    let heads = doc.heads();
    if let Some((_, scopes, _, _)) = &before {
        check_readable(pusher, scopes, &push.doc_id)?;
    }
    if heads == before_heads
        && let Some((case, scopes, chunks, bytes)) = before
    {
        return Ok(Merged::Unchanged {
            cached: Cached {
                held: Held::Case { doc, case },
                scopes,
                chunks,
                bytes,
            },
            heads,
        });
    }
    // One pass over the new changes: their authors, what each operation does, and the bytes
    // the change log keeps.
    let new = doc.changes_since(&before_heads);
    check_authors(&new.actors, actor_prefix, pusher)?;
    let stored_bytes = before.as_ref().map_or(0, |b| b.3);
    judge(
        doc.automerge(),
        DocKind::Case,
        &new.changes,
        before.is_none(),
        stored_bytes,
        &Caps::DEFAULT,
    )?;
    let (actors, new_changes) = (new.actors, new.bytes);
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
    let place = grids.get(&after.details.grid_id).cloned().ok_or_else(|| {
        refusal(
            RejectCode::UnknownGrid,
            format!(
                "没有网格 {} / there is no grid {}",
                after.details.grid_id, after.details.grid_id
            ),
        )
    })?;
    let after_scopes = grown(case_scopes(&after, &place), before.as_ref().map(|b| &b.1));
    let added = check_push(
        pusher,
        before
            .as_ref()
            .map(|(case, scopes, _, _)| Before { case, scopes }),
        &after,
        &after_scopes,
    )?;
    let chunks = before.as_ref().map_or(0, |b| b.2) + 1;
    // A new document is kept as one compact save; an existing one gains its new changes.
    let changes = if before.is_some() {
        new_changes
    } else {
        doc.save()
    };
    let compacted = (chunks >= COMPACT_AFTER_CHUNKS).then(|| doc.save());
    let merge = Merge {
        doc_id: push.doc_id.clone(),
        device_id: logged_device(&actors, pusher),
        changes,
        heads,
        base_heads: Some(before_heads),
        scopes: after_scopes.clone(),
        new_scopes: match &before {
            Some((_, scopes, _, _)) => after_scopes.difference(scopes).cloned().collect(),
            None => after_scopes.clone(),
        },
        row: Some(CaseRow::of(&after, &place, &rule.limits)),
        record: None,
        compacted: compacted.clone(),
        photos: after.state.photos.clone(),
        scores: score(&after, &place, rule),
    };
    let bytes = match &compacted {
        Some(saved) => saved.len(),
        None => stored_bytes + merge.changes.len(),
    };
    Ok(Merged::Accepted {
        cached: Cached {
            held: Held::Case { doc, case: after },
            scopes: after_scopes,
            chunks: if compacted.is_some() { 0 } else { chunks },
            bytes,
        },
        merge: Box::new(merge),
        added: added.len() as u64,
    })
}

/// [`merge_one`] for a record document (address, visit, mediation file, template).
fn merge_record(
    existing: Option<Cached>,
    context: &Context<'_>,
    pusher: &Pusher,
    actor_prefix: &[u8],
    push: &PushDoc,
    now_ms: i64,
) -> Result<Merged, Refusal> {
    let (mut doc, before, before_heads) = match existing {
        Some(Cached {
            held: Held::Record(doc),
            scopes,
            chunks,
            bytes,
        }) => {
            let mut after = doc.clone();
            let heads = after.heads();
            after.apply_in_place(&push.changes).map_err(core_refusal)?;
            (after, Some((doc, scopes, chunks, bytes)), heads)
        }
        Some(_) => return Err(refusal(RejectCode::ServerError, "kind mismatch".into())),
        None => (
            RecordDoc::load(&push.doc_id, &push.changes).map_err(core_refusal)?,
            None,
            Vec::new(),
        ),
    };
    let heads = doc.heads();
    if let Some((_, scopes, _, _)) = &before {
        check_readable(pusher, scopes, &push.doc_id)?;
    }
    if heads == before_heads
        && let Some((_, scopes, chunks, bytes)) = before
    {
        return Ok(Merged::Unchanged {
            cached: Cached {
                held: Held::Record(doc),
                scopes,
                chunks,
                bytes,
            },
            heads,
        });
    }
    let new = doc.changes_since(&before_heads);
    check_authors(&new.actors, actor_prefix, pusher)?;
    let stored_bytes = before.as_ref().map_or(0, |b| b.3);
    judge(
        doc.automerge(),
        DocKind::of(&push.doc_id),
        &new.changes,
        before.is_none(),
        stored_bytes,
        &Caps::DEFAULT,
    )?;
    let (actors, new_changes) = (new.actors, new.bytes);
    let mut accepted = check_record_push(
        pusher,
        before.as_ref().map(|(doc, scopes, _, _)| (doc, scopes)),
        &doc,
        context,
        now_ms,
    )?;
    accepted.scopes = grown(
        std::mem::take(&mut accepted.scopes),
        before.as_ref().map(|b| &b.1),
    );
    let chunks = before.as_ref().map_or(0, |b| b.2) + 1;
    let changes = if before.is_some() {
        new_changes
    } else {
        doc.save()
    };
    let compacted = (chunks >= COMPACT_AFTER_CHUNKS).then(|| doc.save());
    let merge = Merge {
        doc_id: push.doc_id.clone(),
        device_id: logged_device(&actors, pusher),
        changes,
        heads,
        base_heads: Some(before_heads),
        scopes: accepted.scopes.clone(),
        new_scopes: match &before {
            Some((_, scopes, _, _)) => accepted.scopes.difference(scopes).cloned().collect(),
            None => accepted.scopes.clone(),
        },
        row: None,
        photos: accepted.summary.photos.clone(),
        record: Some(accepted.summary),
        compacted: compacted.clone(),
        scores: Vec::new(),
    };
    let bytes = match &compacted {
        Some(saved) => saved.len(),
        None => stored_bytes + merge.changes.len(),
    };
    Ok(Merged::Accepted {
        cached: Cached {
            held: Held::Record(doc),
            scopes: accepted.scopes,
            chunks: if compacted.is_some() { 0 } else { chunks },
            bytes,
        },
        merge: Box::new(merge),
        added: accepted.added,
    })
}

/// A document's scopes after a merge: where its content now places it, and every scope it was
/// in before. Scopes only grow (ADR 0004): a department whose dispatch a concurrent rejection
/// overruled still receives the rest of the case and folds it to the same state as everyone
/// else, and the scopes in memory, in `doc_scopes` and in the log stay one set.
fn grown(now: BTreeSet<ScopeKey>, before: Option<&BTreeSet<ScopeKey>>) -> BTreeSet<ScopeKey> {
    match before {
        Some(before) => now.union(before).cloned().collect(),
        None => now,
    }
}

/// What a merge reads besides the document: the store, the grids, the scoring rule.
struct Context<'a> {
    store: &'a dyn ServerStore,
    grids: &'a HashMap<String, GridPlace>,
    rule: &'a ScoringRule,
    /// Addresses merged but not committed yet: code → grid.
    fresh: &'a HashMap<String, String>,
}

impl Context<'_> {
    fn record(&self, doc_id: &str) -> Option<RecordDoc> {
        let stored = self.store.load_doc(doc_id).ok()??;
        RecordDoc::load(doc_id, &stored.bytes).ok()
    }
}

impl gridlink_core::sync::records::Lookup for Context<'_> {
    fn place(&self, grid_id: &str) -> Option<GridPlace> {
        self.grids.get(grid_id).cloned()
    }

    fn address_grid(&self, code: &str) -> Option<String> {
        if let Some(grid) = self.fresh.get(code) {
            return Some(grid.clone());
        }
        let doc = self.record(&gridlink_core::address::address_doc_id(code))?;
        doc.details::<gridlink_core::address::AddressRecord>()
            .ok()
            .map(|d| d.grid_id)
    }

    fn is_published(&self, template: &gridlink_core::checklist::Template) -> bool {
        use gridlink_core::checklist::{TemplateChange, TemplateRecord, template_doc_id};
        self.record(&template_doc_id(&template.id))
            .and_then(|doc| doc.entries::<TemplateRecord>().ok())
            .is_some_and(|entries| {
                entries.iter().any(|e| {
                    let TemplateChange::Published {
                        template: published,
                    } = &e.body;
                    published == template
                })
            })
    }
}

/// Nothing new is acknowledged too, but only to a device that may read the document (an
/// acknowledgement tells its heads).
fn check_readable(
    pusher: &Pusher,
    scopes: &BTreeSet<ScopeKey>,
    doc_id: &str,
) -> Result<(), Refusal> {
    if pusher.may_read(scopes) {
        Ok(())
    } else {
        Err(refusal(
            RejectCode::OutOfScope,
            format!("文档 {doc_id} 不在您的范围内 / document {doc_id} is outside your scope"),
        ))
    }
}

fn check_authors(
    actors: &[automerge::ActorId],
    actor_prefix: &[u8],
    pusher: &Pusher,
) -> Result<(), Refusal> {
    match actors
        .iter()
        .find(|a| !actor_belongs_to(a, actor_prefix, &pusher.device_id))
    {
        Some(actor) => Err(refusal(
            RejectCode::ForgedActor,
            format!(
                "变更的作者 {actor} 不是本设备 / a change is authored by {actor}, not by this device"
            ),
        )),
        None => Ok(()),
    }
}

/// The device a merge is logged under. Changes the server recorded for the device (its
/// actions endpoint, actor epoch `u32::MAX`) are not the device's own: logged under another
/// name, so that the device's next pull brings them to its phone.
fn logged_device(actors: &[automerge::ActorId], pusher: &Pusher) -> String {
    let server_epoch = crate::actions::SERVER_EPOCH.to_be_bytes();
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

/// The merge thread stops adding pushes to a batch at this many documents (a batch holds at
/// most this plus one push, [`gridlink_core::sync::wire::MAX_PUSH_DOCS`]).
const MAX_BATCH_DOCS: usize = 2_000;

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
            let pushes: Vec<(&Pusher, &[u8], &[PushDoc], i64)> = batch
                .iter()
                .filter_map(|job| match job {
                    Job::Push {
                        pusher,
                        actor_prefix,
                        docs,
                        now_ms,
                        ..
                    } => Some((pusher, actor_prefix.as_slice(), docs.as_slice(), *now_ms)),
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
