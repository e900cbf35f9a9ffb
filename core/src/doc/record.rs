//! Record documents: every synced document that is not a case — a standard address with its
//! people and enterprises, a patrol visit, a mediation file, a checklist template.
//!
//! They share the case document's shape and its rule (ADR 0001): the root is
//! `{ schema, kind, details, history }`, `details` is written once when the document is
//! created, and everything that happens afterwards is an [`Entry`] appended to `history`.
//! Concurrent appends are all kept, and each kind folds its entries in the same order on
//! every replica (Lamport `seq`, device time, id), so two inspectors correcting one address
//! offline both land, and a move-out never erases an edit made at the same time.
//!
//! Unlike the case document, whose hot path is tuned with autosurgeon, records are mapped
//! through serde's JSON model: written with [`put_json`], read with [`read_json`](super::read_json).
//! What kind a document is follows from its id's prefix ([`DocKind::of`]), so the sync layer
//! routes a pushed or pulled document before it loads it.

use super::{apply_untrusted, check_root, load_untrusted};
use crate::case::{Location, Role, Stamp};
use crate::error::{Error, Result};
use automerge::{
    AutoCommit, ChangeHash, ObjType, ReadDoc, ScalarValue, Value, transaction::CommitOptions,
    transaction::Transactable,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The kinds of synced documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// A work order (`CaseDoc`); ids without a record prefix.
    Case,
    /// A standard address with its houses, people and enterprises (一标多实); `addr-…`.
    Address,
    /// One patrol visit to an address; `visit-…`.
    Visit,
    /// A mediation file (人民调解); `med-…`.
    Mediation,
    /// A patrol checklist template, authored on the server; `tpl-…`.
    Template,
}

impl DocKind {
    /// Every record kind (not [`Case`](DocKind::Case)).
    pub const RECORDS: [DocKind; 4] = [
        DocKind::Address,
        DocKind::Visit,
        DocKind::Mediation,
        DocKind::Template,
    ];

    /// The kind of the document with this id.
    pub fn of(doc_id: &str) -> DocKind {
        DocKind::RECORDS
            .into_iter()
            .find(|k| doc_id.starts_with(k.prefix()))
            .unwrap_or(DocKind::Case)
    }

    /// The root `kind` value and the local store's `documents.kind`.
    pub fn code(self) -> &'static str {
        match self {
            DocKind::Case => "case",
            DocKind::Address => "address",
            DocKind::Visit => "visit",
            DocKind::Mediation => "mediation",
            DocKind::Template => "template",
        }
    }

    /// The id prefix of this kind (empty for cases).
    pub fn prefix(self) -> &'static str {
        match self {
            DocKind::Case => "",
            DocKind::Address => "addr-",
            DocKind::Visit => "visit-",
            DocKind::Mediation => "med-",
            DocKind::Template => "tpl-",
        }
    }
}

/// A record kind: its details, the body of its entries, and its schema version.
pub trait Record {
    /// The kind.
    const KIND: DocKind;
    /// The newest schema this build reads and writes.
    const SCHEMA: i64;
    /// Written once, at creation.
    type Details: Serialize + DeserializeOwned + Clone + std::fmt::Debug;
    /// What one entry says.
    type Body: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug;
}

/// One entry of a record's history: what happened (`body`), who did it in which role, on
/// which device, when, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<B> {
    /// Unique id (UUID).
    pub id: String,
    /// Lamport counter: one more than the highest the author had seen.
    pub seq: i64,
    /// Device time, UTC ms.
    pub at_ms: i64,
    /// User id.
    pub actor: String,
    /// The role the user acted in.
    pub role: Role,
    /// Device id.
    pub device: String,
    /// Where the device was, if known.
    #[serde(default)]
    pub location: Option<Location>,
    /// What happened.
    pub body: B,
}

impl<B> Entry<B> {
    /// The fold order every replica agrees on.
    fn order_key(&self) -> (i64, i64, &str) {
        (self.seq, self.at_ms, &self.id)
    }
}

/// A record document, of any record kind. Typed access goes through [`details`](Self::details)
/// and [`entries`](Self::entries) with the kind's [`Record`] type.
#[derive(Debug, Clone)]
pub struct RecordDoc {
    id: String,
    kind: DocKind,
    doc: AutoCommit,
}

impl RecordDoc {
    /// Creates a record: its details and its first entries, in one change by `actor`.
    pub fn create<R: Record>(
        id: &str,
        details: &R::Details,
        first: Vec<R::Body>,
        stamp: &Stamp,
        actor: automerge::ActorId,
    ) -> Result<(RecordDoc, Vec<Entry<R::Body>>)> {
        if DocKind::of(id) != R::KIND {
            return Err(Error::Config(format!(
                "{} 文档的编号必须以 {} 开头 / a {} document's id must start with {}: {id:?}",
                R::KIND.code(),
                R::KIND.prefix(),
                R::KIND.code(),
                R::KIND.prefix()
            )));
        }
        let mut doc = AutoCommit::new().with_actor(actor);
        let malformed = |detail: String| Error::Malformed {
            doc_id: id.to_owned(),
            detail,
        };
        doc.put(automerge::ROOT, "schema", R::SCHEMA)
            .map_err(|e| malformed(e.to_string()))?;
        doc.put(automerge::ROOT, "kind", R::KIND.code())
            .map_err(|e| malformed(e.to_string()))?;
        let details = serde_json::to_value(details).map_err(|e| malformed(e.to_string()))?;
        unfit_text(&details)?;
        put_json(&mut doc, &automerge::ROOT, "details".into(), &details)
            .map_err(|e| malformed(e.to_string()))?;
        doc.put_object(automerge::ROOT, "history", ObjType::List)
            .map_err(|e| malformed(e.to_string()))?;
        let mut record = RecordDoc {
            id: id.to_owned(),
            kind: R::KIND,
            doc,
        };
        let entries = record.write_entries::<R>(first, stamp, &[])?;
        record.doc.commit_with(
            CommitOptions::default()
                .with_message("created")
                .with_time(stamp.at_ms),
        );
        Ok((record, entries))
    }

    /// Loads saved bytes (untrusted) and checks the root against the kind the id names.
    pub fn load(id: &str, bytes: &[u8]) -> Result<RecordDoc> {
        let kind = DocKind::of(id);
        if kind == DocKind::Case {
            return Err(Error::Malformed {
                doc_id: id.to_owned(),
                detail: "not a record id".into(),
            });
        }
        let doc = load_untrusted(id, bytes)?;
        check_root(id, &doc, kind.code(), schema_of(kind))?;
        Ok(RecordDoc {
            id: id.to_owned(),
            kind,
            doc,
        })
    }

    /// Appends entries as one change (one user action).
    pub fn append<R: Record>(
        &mut self,
        bodies: Vec<R::Body>,
        stamp: &Stamp,
    ) -> Result<Vec<Entry<R::Body>>> {
        self.expect(R::KIND)?;
        let existing = self.entries::<R>()?;
        let entries = self.write_entries::<R>(bodies, stamp, &existing)?;
        let message = entries.first().map_or("entry".to_owned(), |e| {
            serde_json::to_value(&e.body)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "entry".to_owned())
        });
        self.doc.commit_with(
            CommitOptions::default()
                .with_message(message)
                .with_time(stamp.at_ms),
        );
        Ok(entries)
    }

    fn write_entries<R: Record>(
        &mut self,
        bodies: Vec<R::Body>,
        stamp: &Stamp,
        existing: &[Entry<R::Body>],
    ) -> Result<Vec<Entry<R::Body>>> {
        let history = self.history_obj()?;
        let len = self.doc.length(&history);
        let last = existing.iter().map(|e| e.seq).max().unwrap_or(0);
        let mut written = Vec::with_capacity(bodies.len());
        let mut values = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.into_iter().enumerate() {
            let entry = Entry {
                id: uuid::Uuid::new_v4().to_string(),
                seq: last + 1 + i64::try_from(i).unwrap_or(i64::MAX - last - 1),
                at_ms: stamp.at_ms,
                actor: stamp.actor.clone(),
                role: stamp.role,
                device: stamp.device.clone(),
                location: stamp.location,
                body,
            };
            let value = serde_json::to_value(&entry).map_err(|e| self.malformed(e.to_string()))?;
            // Checked before anything is written: a refused entry leaves the document as it was.
            unfit_text(&value)?;
            values.push(value);
            written.push(entry);
        }
        for (i, value) in values.iter().enumerate() {
            put_json(&mut self.doc, &history, (len + i).into(), value)
                .map_err(|e| self.malformed(e.to_string()))?;
        }
        Ok(written)
    }

    /// Appends an entry exactly as another replica wrote it (its id, seq, stamp), as one
    /// change: a pending entry re-applied on top of the server's version after a refusal.
    pub fn append_entry_json(&mut self, entry: &serde_json::Value) -> Result<()> {
        let history = self.history_obj()?;
        let len = self.doc.length(&history);
        put_json(&mut self.doc, &history, len.into(), entry)
            .map_err(|e| self.malformed(e.to_string()))?;
        let at = entry
            .get("at_ms")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        self.doc.commit_with(
            CommitOptions::default()
                .with_message("reapplied")
                .with_time(at),
        );
        Ok(())
    }

    /// The document id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The kind.
    pub fn kind(&self) -> DocKind {
        self.kind
    }

    /// Sets the actor of this replica's next changes.
    pub fn set_actor(&mut self, actor: automerge::ActorId) {
        self.doc.set_actor(actor);
    }

    /// The details, typed.
    pub fn details<R: Record>(&self) -> Result<R::Details> {
        self.expect(R::KIND)?;
        serde_json::from_value(self.details_json()?)
            .map_err(|e| self.malformed(format!("details: {e}")))
    }

    /// The details as JSON (for checks that do not depend on the kind).
    pub fn details_json(&self) -> Result<serde_json::Value> {
        match self.doc.get(automerge::ROOT, "details") {
            Ok(Some((Value::Object(ObjType::Map), obj))) => {
                Ok(super::read_json(&self.doc, &obj, ObjType::Map))
            }
            _ => Err(self.malformed("`details` is not a map".into())),
        }
    }

    /// The entries in fold order, typed.
    pub fn entries<R: Record>(&self) -> Result<Vec<Entry<R::Body>>> {
        self.expect(R::KIND)?;
        let obj = self.history_obj()?;
        let mut entries: Vec<Entry<R::Body>> =
            serde_json::from_value(super::read_json(&self.doc, &obj, ObjType::List))
                .map_err(|e| self.malformed(format!("history: {e}")))?;
        entries.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        // A duplicated id (a replayed entry) counts once.
        entries.dedup_by(|a, b| a.id == b.id);
        Ok(entries)
    }

    /// The entries as JSON, in list order (for checks that do not depend on the kind).
    pub fn entries_json(&self) -> Result<Vec<serde_json::Value>> {
        let obj = self.history_obj()?;
        match super::read_json(&self.doc, &obj, ObjType::List) {
            serde_json::Value::Array(items) => Ok(items),
            _ => Err(self.malformed("`history` is not a list".into())),
        }
    }

    /// Current heads.
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// The whole document, compacted.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// The changes made since `heads`.
    pub fn save_after(&mut self, heads: &[ChangeHash]) -> Vec<u8> {
        self.doc.save_after(heads)
    }

    /// Applies untrusted changes in place and re-checks the root; on error the document may
    /// be partly changed and must be dropped.
    pub fn apply_in_place(&mut self, bytes: &[u8]) -> Result<()> {
        apply_untrusted(&self.id, &mut self.doc, bytes)?;
        check_root(&self.id, &self.doc, self.kind.code(), schema_of(self.kind))
    }

    /// Applies untrusted changes; on error the document is left as it was.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<()> {
        let mut next = self.clone();
        next.apply_in_place(bytes)?;
        *self = next;
        Ok(())
    }

    /// Merges another replica of the same record.
    pub fn merge(&mut self, other: &mut RecordDoc) -> Result<()> {
        let bytes = other.doc.save();
        self.apply(&bytes)
    }

    /// The changes beyond `heads`: their distinct actors and their bytes.
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> super::NewChanges {
        super::changes_since(&mut self.doc, heads)
    }

    /// The underlying Automerge document, for the sync layer.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    fn expect(&self, kind: DocKind) -> Result<()> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(self.malformed(format!(
                "a {} document read as {}",
                self.kind.code(),
                kind.code()
            )))
        }
    }

    fn history_obj(&self) -> Result<automerge::ObjId> {
        match self.doc.get(automerge::ROOT, "history") {
            Ok(Some((Value::Object(ObjType::List), id))) => Ok(id),
            _ => Err(self.malformed("`history` is not a list".into())),
        }
    }

    fn malformed(&self, detail: String) -> Error {
        Error::Malformed {
            doc_id: self.id.clone(),
            detail,
        }
    }
}

/// The newest schema of each record kind.
fn schema_of(kind: DocKind) -> i64 {
    match kind {
        DocKind::Case => super::CASE_SCHEMA,
        DocKind::Address => crate::address::AddressRecord::SCHEMA,
        DocKind::Visit => crate::checklist::VisitRecord::SCHEMA,
        DocKind::Mediation => crate::mediation::MediationRecord::SCHEMA,
        DocKind::Template => crate::checklist::TemplateRecord::SCHEMA,
    }
}

/// Writes a JSON value under `prop` of `obj`: objects become maps, arrays lists, strings
/// scalar strings (never Text), integers `i64`, other numbers `f64`. At a list position the
/// value is inserted.
pub(crate) fn put_json(
    doc: &mut AutoCommit,
    obj: &automerge::ObjId,
    prop: automerge::Prop,
    value: &serde_json::Value,
) -> std::result::Result<(), automerge::AutomergeError> {
    use serde_json::Value as J;
    let in_list = matches!(prop, automerge::Prop::Seq(_));
    let scalar = |v: &J| -> Option<ScalarValue> {
        Some(match v {
            J::Null => ScalarValue::Null,
            J::Bool(b) => ScalarValue::Boolean(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => ScalarValue::Int(i),
                None => ScalarValue::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => ScalarValue::Str(s.as_str().into()),
            J::Array(_) | J::Object(_) => return None,
        })
    };
    if let Some(s) = scalar(value) {
        match prop {
            automerge::Prop::Seq(i) if in_list => doc.insert(obj, i, s)?,
            p => doc.put(obj, p, s)?,
        }
        return Ok(());
    }
    let kind = if value.is_array() {
        ObjType::List
    } else {
        ObjType::Map
    };
    let child = match prop {
        automerge::Prop::Seq(i) => doc.insert_object(obj, i, kind)?,
        p => doc.put_object(obj, p, kind)?,
    };
    match value {
        J::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                put_json(doc, &child, i.into(), item)?;
            }
        }
        J::Object(fields) => {
            for (key, item) in fields {
                put_json(doc, &child, key.as_str().into(), item)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A person's text holding a character no text may hold is refused as invalid input.
fn unfit_text(value: &serde_json::Value) -> Result<()> {
    crate::text::check_json(value)
        .map_err(|e| Error::Invalid(crate::case::EventError::Invalid(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_id_prefix() {
        assert_eq!(DocKind::of("addr-320509001001-0001"), DocKind::Address);
        assert_eq!(DocKind::of("visit-1"), DocKind::Visit);
        assert_eq!(DocKind::of("med-1"), DocKind::Mediation);
        assert_eq!(DocKind::of("tpl-household"), DocKind::Template);
        assert_eq!(
            DocKind::of("6f9619ff-8b86-d011-b42d-00c04fc964ff"),
            DocKind::Case
        );
    }
}
