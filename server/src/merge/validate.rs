//! What one pushed document may do: the server's judgement of a push against the document as
//! the server holds it, apart from the pipeline that groups, caches and commits pushes
//! ([`super`]). The rules themselves live in gridlink-core (`sync::ops` for what each
//! operation does, `sync::access` for cases, `sync::records` for records); this module picks
//! the ones that apply, in order, and gathers what the store must keep of an accepted push.

use super::Origin;
use crate::store::{CaseRow, ServerStore};
use gridlink_core::Error as CoreError;
use gridlink_core::case::{Case, ScoreLine, ScoringRule, score};
use gridlink_core::doc::{CaseDoc, DocKind, NewChanges, RecordDoc};
use gridlink_core::sync::access::{Before, Pusher, Refusal, check_intake, check_push_under};
use gridlink_core::sync::actor_belongs_to;
use gridlink_core::sync::ops::{Caps, judge};
use gridlink_core::sync::records::{RecordSummary, check_record_push};
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_core::sync::wire::RejectCode;
use std::collections::{BTreeSet, HashMap};

/// The largest change bytes accepted for one document in one push.
pub const MAX_DOC_PUSH_BYTES: usize = 1 << 20;

/// A document being merged: a working copy, to which a push is applied in place.
pub(super) enum Doc {
    Case(CaseDoc),
    Record(RecordDoc),
}

impl Doc {
    /// Loads stored or pushed bytes as the kind the id names.
    pub(super) fn load(doc_id: &str, bytes: &[u8]) -> Result<Doc, CoreError> {
        Ok(match DocKind::of(doc_id) {
            DocKind::Case => Doc::Case(CaseDoc::load(doc_id, bytes)?),
            _ => Doc::Record(RecordDoc::load(doc_id, bytes)?),
        })
    }

    /// Applies changes in place; on error the copy must be dropped.
    pub(super) fn apply_in_place(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        match self {
            Doc::Case(doc) => doc.apply_in_place(bytes),
            Doc::Record(doc) => doc.apply_in_place(bytes),
        }
    }

    /// Changes the applied ones depend on that this copy lacks (Automerge holds such changes
    /// back, invisibly: the document's heads do not move).
    pub(super) fn missing_deps(&mut self) -> Vec<automerge::ChangeHash> {
        match self {
            Doc::Case(doc) => doc.automerge().get_missing_deps(&[]),
            Doc::Record(doc) => doc.automerge().get_missing_deps(&[]),
        }
    }

    pub(super) fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        match self {
            Doc::Case(doc) => doc.heads(),
            Doc::Record(doc) => doc.heads(),
        }
    }

    pub(super) fn changes_since(&mut self, heads: &[automerge::ChangeHash]) -> NewChanges {
        match self {
            Doc::Case(doc) => doc.changes_since(heads),
            Doc::Record(doc) => doc.changes_since(heads),
        }
    }

    pub(super) fn save(&mut self) -> Vec<u8> {
        match self {
            Doc::Case(doc) => doc.save(),
            Doc::Record(doc) => doc.save(),
        }
    }

    fn automerge(&mut self) -> &automerge::AutoCommit {
        match self {
            Doc::Case(doc) => doc.automerge(),
            Doc::Record(doc) => doc.automerge(),
        }
    }
}

/// What the rules read of a document as it stood before a push: a case's fold, or the record.
/// (One lives per merge, moved in and out of the cache without an allocation.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Prior {
    Case(Case),
    Record(RecordDoc),
}

/// The document before a push, as the server holds it.
pub(super) struct Stored<'a> {
    pub prior: &'a Prior,
    pub scopes: &'a BTreeSet<ScopeKey>,
    /// About how many bytes the store holds for it (for the document cap).
    pub bytes: usize,
}

/// One push of one document, and who made it.
pub(super) struct Push<'a> {
    pub pusher: &'a Pusher,
    pub actor_prefix: &'a [u8],
    pub doc_id: &'a str,
    pub origin: Origin,
    pub now_ms: i64,
}

/// What an accepted push makes of the document: what the store keeps beside its changes.
pub(super) struct Verdict {
    /// The document's scopes after the push (grown: [`grown`]).
    pub scopes: BTreeSet<ScopeKey>,
    /// A case's fold after the push (kept with the working copy).
    pub fold: Option<Case>,
    pub row: Option<CaseRow>,
    pub record: Option<RecordSummary>,
    pub photos: Vec<String>,
    pub scores: Vec<ScoreLine>,
    /// Events or entries the push added.
    pub added: u64,
}

/// What a judgement reads besides the document: the store, the grids, the scoring rule.
pub(super) struct Context<'a> {
    pub store: &'a dyn ServerStore,
    pub grids: &'a HashMap<String, GridPlace>,
    pub rule: &'a ScoringRule,
    /// Who may verify and close their own work.
    pub duties: &'a gridlink_core::case::Duties,
    /// Addresses merged but not committed yet: code → grid.
    pub fresh: &'a HashMap<String, String>,
}

/// A push's size, before anything is loaded.
pub(super) fn check_size(changes: &[u8]) -> Result<(), Refusal> {
    if changes.len() > MAX_DOC_PUSH_BYTES {
        return Err(refusal(
            RejectCode::TooLarge,
            format!(
                "一次推送的文档不能超过 {MAX_DOC_PUSH_BYTES} 字节 / one document's push may not exceed {MAX_DOC_PUSH_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

/// Nothing new is acknowledged too, but only to a device that may read the document (an
/// acknowledgement tells its heads).
pub(super) fn check_readable(
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

/// Judges the changes a push adds (`new`) to the document (`after`, with them applied):
/// their authors, what each of their operations does, and then what the document they make
/// may be for this pusher. `stored` is the document before (none for a new one).
pub(super) fn judge_push(
    context: &Context<'_>,
    push: &Push<'_>,
    stored: Option<&Stored<'_>>,
    after: &mut Doc,
    new: &NewChanges,
) -> Result<Verdict, Refusal> {
    check_authors(&new.actors, push.actor_prefix, push.pusher)?;
    judge(
        after.automerge(),
        DocKind::of(push.doc_id),
        &new.changes,
        stored.is_none(),
        stored.map_or(0, |s| s.bytes),
        &Caps::DEFAULT,
    )?;
    match after {
        Doc::Case(doc) => judge_case(context, push, stored, doc),
        Doc::Record(doc) => judge_record(context, push, stored, doc),
    }
}

fn judge_case(
    context: &Context<'_>,
    push: &Push<'_>,
    stored: Option<&Stored<'_>>,
    doc: &mut CaseDoc,
) -> Result<Verdict, Refusal> {
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
    let place = context
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
    let scopes = grown(case_scopes(&after, &place), stored.map(|s| s.scopes));
    let before = match stored {
        Some(Stored {
            prior: Prior::Case(case),
            scopes,
            ..
        }) => Some(Before { case, scopes }),
        Some(_) => return Err(kind_mismatch()),
        None => None,
    };
    let added = match push.origin {
        Origin::Device | Origin::Recorded => {
            check_push_under(push.pusher, before, &after, &scopes, context.duties)?
        }
        Origin::Intake(_) => check_intake(push.pusher, before, &after)?,
    };
    Ok(Verdict {
        row: Some(CaseRow::of(&after, &place, &context.rule.limits)),
        photos: after.state.photos.clone(),
        scores: score(&after, &place, context.rule),
        fold: Some(after),
        scopes,
        record: None,
        added: added.len() as u64,
    })
}

fn judge_record(
    context: &Context<'_>,
    push: &Push<'_>,
    stored: Option<&Stored<'_>>,
    doc: &RecordDoc,
) -> Result<Verdict, Refusal> {
    if let Origin::Intake(_) = push.origin {
        return Err(refusal(
            RejectCode::Malformed,
            "受理只开立案件 / the intake opens cases only".into(),
        ));
    }
    let before = match stored {
        Some(Stored {
            prior: Prior::Record(record),
            scopes,
            ..
        }) => Some((record, *scopes)),
        Some(_) => return Err(kind_mismatch()),
        None => None,
    };
    let accepted = check_record_push(push.pusher, before, doc, context, push.now_ms)?;
    Ok(Verdict {
        scopes: grown(accepted.scopes, stored.map(|s| s.scopes)),
        fold: None,
        row: None,
        photos: accepted.summary.photos.clone(),
        record: Some(accepted.summary),
        scores: Vec::new(),
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

fn kind_mismatch() -> Refusal {
    refusal(
        RejectCode::ServerError,
        "服务器上的文档种类不符 / the server's copy is of another kind".into(),
    )
}

pub(super) fn refusal(code: RejectCode, message: String) -> Refusal {
    Refusal {
        code,
        message,
        event_ids: Vec::new(),
    }
}

pub(super) fn core_refusal(e: CoreError) -> Refusal {
    let code = match &e {
        CoreError::Corrupt { .. } => RejectCode::Corrupt,
        CoreError::UnsupportedSchema { .. } => RejectCode::UnsupportedSchema,
        _ => RejectCode::Malformed,
    };
    refusal(code, e.to_string())
}
