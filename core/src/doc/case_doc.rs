//! The case document: create, load, append an event, read back, merge.

use super::{apply_untrusted, check_root, load_untrusted};
use crate::case::{Case, CaseDetails, Duties, Event, EventKind, FlagReason, Stamp, fold};
use crate::error::{Error, Result};
use automerge::{
    AutoCommit, ChangeHash, ObjType, ReadDoc, Value, transaction::CommitOptions,
    transaction::Transactable,
};
use autosurgeon::{hydrate_prop, reconcile_insert, reconcile_prop};

/// The newest case-document schema this build reads and writes.
pub const CASE_SCHEMA: i64 = 1;

const KIND: &str = "case";

/// One case (work order) as an Automerge document.
#[derive(Debug, Clone)]
pub struct CaseDoc {
    id: String,
    doc: AutoCommit,
}

impl CaseDoc {
    /// Opens a new case: the details and the `reported` event, in one change authored by `actor`.
    ///
    /// Returns the document and the event it recorded.
    pub fn create(
        details: CaseDetails,
        photos: Vec<String>,
        stamp: Stamp,
        actor: automerge::ActorId,
    ) -> Result<(CaseDoc, Event)> {
        details.validate()?;
        let event = Event::new(EventKind::Reported { photos }, stamp, &[]);
        event.validate()?;
        let (_, state) = fold([event.clone()]);
        if let Some(flag) = state.flagged.into_iter().next() {
            return Err(Error::NotAllowed {
                reason: flag.reason,
            });
        }
        let mut doc = AutoCommit::new().with_actor(actor);
        let malformed = |detail: String| Error::Malformed {
            doc_id: details.id.clone(),
            detail,
        };
        doc.put(automerge::ROOT, "schema", CASE_SCHEMA)
            .map_err(|e| malformed(e.to_string()))?;
        doc.put(automerge::ROOT, "kind", KIND)
            .map_err(|e| malformed(e.to_string()))?;
        reconcile_prop(&mut doc, automerge::ROOT, "details", &details)
            .map_err(|e| malformed(e.to_string()))?;
        reconcile_prop(&mut doc, automerge::ROOT, "history", vec![event.clone()])
            .map_err(|e| malformed(e.to_string()))?;
        doc.commit_with(
            CommitOptions::default()
                .with_message("reported")
                .with_time(event.at_ms),
        );
        Ok((
            CaseDoc {
                id: details.id,
                doc,
            },
            event,
        ))
    }

    /// Loads a saved document (full save, or a save followed by incremental chunks) and checks
    /// its schema. Bytes are treated as untrusted.
    pub fn load(id: &str, bytes: &[u8]) -> Result<CaseDoc> {
        let doc = load_untrusted(id, bytes)?;
        check_root(id, &doc, KIND, CASE_SCHEMA)?;
        Ok(CaseDoc {
            id: id.to_owned(),
            doc,
        })
    }

    /// Sets the actor that authors this replica's next changes.
    pub fn set_actor(&mut self, actor: automerge::ActorId) {
        self.doc.set_actor(actor);
    }

    /// The case id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records one user action as one change: checks the event's content, then checks that it
    /// applies at the end of the history (role and status), and only then writes it.
    ///
    /// Returns the event as recorded and the case as it now stands.
    pub fn record(&mut self, kind: EventKind, stamp: Stamp) -> Result<(Event, Case)> {
        self.record_under(kind, stamp, &Duties::default())
    }

    /// [`record`](Self::record) under a district's separation of duties.
    pub fn record_under(
        &mut self,
        kind: EventKind,
        stamp: Stamp,
        duties: &Duties,
    ) -> Result<(Event, Case)> {
        kind.validate()?;
        let history = self.history()?;
        let len = history.len();
        let event = Event::new(kind, stamp, &history);
        event.validate()?;
        let mut with_new = history;
        with_new.push(event.clone());
        let (history, state) = fold(with_new);
        if let Some(flag) = state.flagged.iter().find(|f| f.event_id == event.id) {
            return Err(Error::NotAllowed {
                reason: flag.reason.clone(),
            });
        }
        let details = self.details()?;
        let case = Case {
            details,
            history,
            state,
        };
        if let Some(message) = duties.breach(&case, &event) {
            return Err(Error::NotAllowed {
                reason: FlagReason::SeparationOfDuties { message },
            });
        }
        let history_obj = self.history_obj()?;
        reconcile_insert(&mut self.doc, history_obj, len, &event).map_err(|e| {
            Error::Malformed {
                doc_id: self.id.clone(),
                detail: e.to_string(),
            }
        })?;
        self.doc.commit_with(
            CommitOptions::default()
                .with_message(event.kind.code())
                .with_time(event.at_ms),
        );
        Ok((event, case))
    }

    /// The reported facts, read by one walk like [`history`](Self::history).
    pub fn details(&self) -> Result<CaseDetails> {
        let obj = match self.doc.get(automerge::ROOT, "details") {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            _ => {
                return Err(Error::Malformed {
                    doc_id: self.id.clone(),
                    detail: "`details` is not a map".into(),
                });
            }
        };
        serde_json::from_value(super::read_json(&self.doc, &obj, ObjType::Map)).map_err(|e| {
            Error::Malformed {
                doc_id: self.id.clone(),
                detail: format!("details: {e}"),
            }
        })
    }

    /// The reported facts read with autosurgeon's `Hydrate` (the reference mapping).
    pub fn details_via_autosurgeon(&self) -> Result<CaseDetails> {
        hydrate_prop(&self.doc, automerge::ROOT, "details").map_err(|e| self.malformed(e))
    }

    /// The history as stored (list order, not fold order).
    ///
    /// Read by walking the list once (`read_json`) and deserialising with serde rather than
    /// through autosurgeon's per-field `get`s: the history is the hot read (every action, every
    /// case screen) and this is several times faster. The two mappings agree by construction —
    /// the types derive both, with the same names — and `history_matches_autosurgeon` in the
    /// tests keeps them honest.
    pub fn history(&self) -> Result<Vec<Event>> {
        let obj = self.history_obj()?;
        serde_json::from_value(super::read_json(&self.doc, &obj, ObjType::List)).map_err(|e| {
            Error::Malformed {
                doc_id: self.id.clone(),
                detail: format!("history: {e}"),
            }
        })
    }

    /// The history read with autosurgeon's `Hydrate` (the reference mapping).
    pub fn history_via_autosurgeon(&self) -> Result<Vec<Event>> {
        hydrate_prop(&self.doc, automerge::ROOT, "history").map_err(|e| self.malformed(e))
    }

    /// The case: details, history in fold order, and the folded state.
    pub fn case(&self) -> Result<Case> {
        let details = self.details()?;
        let (history, state) = fold(self.history()?);
        Ok(Case {
            details,
            history,
            state,
        })
    }

    /// Current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes made since `heads`, as bytes that [`apply`](Self::apply) or `load` accept
    /// after the earlier bytes.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// Applies changes from another replica (untrusted bytes), then re-checks the schema. On
    /// any error the document is left exactly as it was.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<()> {
        let mut next = self.doc.clone();
        apply_untrusted(&self.id, &mut next, bytes)?;
        check_root(&self.id, &next, KIND, CASE_SCHEMA)?;
        self.doc = next;
        Ok(())
    }

    /// Like [`apply`](Self::apply) but without keeping a copy to fall back on: on error the
    /// document may be partly changed and must be dropped. For callers that loaded it only for
    /// this, or can load it again (the store, the server's cache), it saves copying the whole
    /// document.
    pub fn apply_in_place(&mut self, bytes: &[u8]) -> Result<()> {
        apply_untrusted(&self.id, &mut self.doc, bytes)?;
        check_root(&self.id, &self.doc, KIND, CASE_SCHEMA)
    }

    /// Merges another replica of the same case into this one.
    pub fn merge(&mut self, other: &mut CaseDoc) -> Result<()> {
        let bytes = other.doc.save();
        self.apply(&bytes)
    }

    /// The changes this document has beyond `heads` (every change when `heads` is empty):
    /// their distinct actor ids, and their bytes (change chunks that `load`/`apply` accept
    /// after the earlier bytes, like [`save_after`](Self::save_after)).
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> super::NewChanges {
        super::changes_since(&mut self.doc, heads)
    }

    /// The underlying Automerge document, for the sync layer.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    fn history_obj(&self) -> Result<automerge::ObjId> {
        match self.doc.get(automerge::ROOT, "history") {
            Ok(Some((Value::Object(ObjType::List), id))) => Ok(id),
            _ => Err(Error::Malformed {
                doc_id: self.id.clone(),
                detail: "`history` is not a list".into(),
            }),
        }
    }

    fn malformed(&self, e: autosurgeon::HydrateError) -> Error {
        Error::Malformed {
            doc_id: self.id.clone(),
            detail: e.to_string(),
        }
    }
}
