//! Automerge documents: the typed mapping between gridlink's records and the CRDT documents
//! that phones edit offline and the server merges.
//!
//! One document per record. A case document's root is
//! `{ schema: 1, kind: "case", details: {…}, history: [event, …] }`; the mapping is derived with
//! autosurgeon. All strings are scalar strings, never Text objects, and all integers are
//! signed (`i64`), so the JavaScript implementation reads them as plain strings and numbers.
//! Editing = one Automerge change per user action, stamped with the real time.

mod case_doc;
mod record;

pub use case_doc::{CASE_SCHEMA, CaseDoc};
pub use record::{DocKind, Entry, Record, RecordDoc};

use crate::error::{Error, Result};
use automerge::{AutoCommit, ReadDoc, ScalarValue, Value};

/// What the store and the sync layer do with any synced document, whatever its kind.
pub trait SyncedDoc {
    /// Document id.
    fn doc_id(&self) -> &str;
    /// Current heads.
    fn heads(&mut self) -> Vec<automerge::ChangeHash>;
    /// The whole document, compacted.
    fn save(&mut self) -> Vec<u8>;
    /// The changes since `heads`.
    fn save_after(&mut self, heads: &[automerge::ChangeHash]) -> Vec<u8>;
    /// Whether the document holds this change.
    fn has_change(&mut self, hash: &automerge::ChangeHash) -> bool;
    /// The changes since `heads` that `own` actors authored and that stand on `heads` or on
    /// one another ([`own_changes_after`]).
    fn own_changes_after(
        &mut self,
        heads: &[automerge::ChangeHash],
        own: &dyn Fn(&automerge::ActorId) -> bool,
    ) -> OwnChanges;
}

/// What of a document a device may push: its own changes the server can apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnChanges {
    /// The changes, as bytes `load`/`apply` accept after the earlier ones.
    pub bytes: Vec<u8>,
    /// Changes taken.
    pub taken: usize,
    /// Changes since the heads left out: others' (which only their authors may push), and
    /// this device's that stand on those.
    pub held_back: usize,
}

/// The changes of `doc` since `heads` that `own` actors authored and whose dependencies are
/// all at or before `heads` or among the changes taken: what a device may push of a document
/// whose server copy is at `heads`. Normally every change since the acknowledged heads is the
/// device's own (others' arrive by pull, which moves the heads past them); after the server
/// was restored from a backup the phone may hold others' changes that the server lost, and
/// the server takes a device's changes only (ADR 0013).
pub fn own_changes_after(
    doc: &mut AutoCommit,
    heads: &[automerge::ChangeHash],
    own: &dyn Fn(&automerge::ActorId) -> bool,
) -> OwnChanges {
    let changes = doc.get_changes(heads);
    // A document the server holds nothing of, all this device's own: one compact save, as
    // before. Otherwise the changes' own bytes (what `save_after` writes), in one pass.
    if heads.is_empty() && changes.iter().all(|c| own(c.actor_id())) {
        return OwnChanges {
            taken: changes.len(),
            held_back: 0,
            bytes: doc.save(),
        };
    }
    let after: std::collections::HashSet<automerge::ChangeHash> =
        changes.iter().map(|c| c.hash()).collect();
    let mut taken = std::collections::HashSet::new();
    let mut out = OwnChanges::default();
    for change in &changes {
        let stands = change
            .deps()
            .iter()
            .all(|d| !after.contains(d) || taken.contains(d));
        if own(change.actor_id()) && stands {
            taken.insert(change.hash());
            out.bytes.extend_from_slice(change.raw_bytes());
            out.taken += 1;
        } else {
            out.held_back += 1;
        }
    }
    out
}

macro_rules! synced_doc {
    ($t:ty) => {
        impl SyncedDoc for $t {
            fn doc_id(&self) -> &str {
                self.id()
            }
            fn heads(&mut self) -> Vec<automerge::ChangeHash> {
                <$t>::heads(self)
            }
            fn save(&mut self) -> Vec<u8> {
                <$t>::save(self)
            }
            fn save_after(&mut self, heads: &[automerge::ChangeHash]) -> Vec<u8> {
                <$t>::save_after(self, heads)
            }
            fn has_change(&mut self, hash: &automerge::ChangeHash) -> bool {
                self.automerge().get_change_by_hash(hash).is_some()
            }
            fn own_changes_after(
                &mut self,
                heads: &[automerge::ChangeHash],
                own: &dyn Fn(&automerge::ActorId) -> bool,
            ) -> OwnChanges {
                own_changes_after(self.automerge(), heads, own)
            }
        }
    };
}
synced_doc!(CaseDoc);
synced_doc!(RecordDoc);

/// An Automerge actor id derived from a device id: the device's 16 UUID bytes. The server
/// checks that every change a device pushes is authored by that device's own actor id.
pub fn actor_for_device(device_id: &str) -> Result<automerge::ActorId> {
    let uuid = uuid::Uuid::parse_str(device_id).map_err(|_| {
        Error::Config(format!(
            "设备编号必须是 UUID / device id must be a UUID: {device_id:?}"
        ))
    })?;
    Ok(automerge::ActorId::from(uuid.as_bytes().as_slice()))
}

/// Loads Automerge bytes from outside (disk, a peer, the network) without trusting them:
/// a load error or a panic inside Automerge becomes [`Error::Corrupt`].
pub(crate) fn load_untrusted(doc_id: &str, bytes: &[u8]) -> Result<AutoCommit> {
    let corrupt = |detail: String| Error::Corrupt {
        doc_id: doc_id.to_owned(),
        detail,
    };
    match std::panic::catch_unwind(|| AutoCommit::load(bytes)) {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(_) => Err(corrupt("automerge panicked while loading".into())),
    }
}

/// Applies Automerge bytes from outside to a document, containing errors and panics the same way.
/// On error the document may be partly changed: callers apply to a scratch copy.
pub(crate) fn apply_untrusted(doc_id: &str, doc: &mut AutoCommit, bytes: &[u8]) -> Result<()> {
    let corrupt = |detail: String| Error::Corrupt {
        doc_id: doc_id.to_owned(),
        detail,
    };
    // `load_incremental` silently skips a truncated or garbled tail (it is built for partial
    // streams); bytes from a peer must be whole, so check every chunk first.
    match std::panic::catch_unwind(|| check_chunks(bytes)) {
        Ok(Ok(())) => {}
        Ok(Err(detail)) => return Err(corrupt(detail)),
        Err(_) => return Err(corrupt("automerge panicked while parsing changes".into())),
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.load_incremental(bytes))) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(_) => Err(corrupt("automerge panicked while applying changes".into())),
    }
}

/// Walks the chunks of an Automerge byte stream (magic, checksum, type, LEB128 length, body) and
/// checks that they cover the input exactly; change chunks are parsed and their checksums
/// verified, document chunks loaded strictly.
fn check_chunks(bytes: &[u8]) -> std::result::Result<(), String> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let header = bytes
            .get(at..at + 9)
            .ok_or_else(|| format!("truncated chunk header at byte {at}"))?;
        if header[..4] != MAGIC {
            return Err(format!("no chunk starts at byte {at}"));
        }
        let chunk_type = header[8];
        at += 9;
        let mut len: u64 = 0;
        for shift in 0..10 {
            let byte = *bytes
                .get(at)
                .ok_or_else(|| format!("truncated chunk length at byte {at}"))?;
            at += 1;
            len |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                break;
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "chunk at byte {start} claims {len} bytes; only {} remain",
                bytes.len() - at
            )
        })?;
        let chunk = &bytes[start..end];
        match chunk_type {
            1 | 2 => {
                automerge::Change::try_from(chunk)
                    .map_err(|e| format!("change at byte {start}: {e}"))?;
            }
            0 => {
                let strict =
                    automerge::LoadOptions::new().on_partial_load(automerge::OnPartialLoad::Error);
                automerge::Automerge::load_with_options(chunk, strict)
                    .map_err(|e| format!("document at byte {start}: {e}"))?;
            }
            3 => {}
            other => return Err(format!("unknown chunk type {other} at byte {start}")),
        }
        at = end;
    }
    Ok(())
}

/// Reads an object of a document as JSON for serde, walking it with `map_range`/`list_range`
/// (one pass per object; about four times faster than Automerge's own `hydrate` for a case
/// history). Scalars that gridlink documents never contain (bytes, counters, timestamps,
/// unknown types) become `null`, which typed deserialisation then rejects where a value is
/// required.
pub(crate) fn read_json(
    doc: &AutoCommit,
    obj: &automerge::ObjId,
    kind: automerge::ObjType,
) -> serde_json::Value {
    use automerge::{ObjType, ScalarValueRef as S, ValueRef};
    use serde_json::Value as J;
    let value = |v: ValueRef<'_>, id: &dyn Fn() -> automerge::ObjId| -> J {
        match v {
            ValueRef::Object(kind @ (ObjType::Map | ObjType::Table | ObjType::List)) => {
                read_json(doc, &id(), kind)
            }
            ValueRef::Object(ObjType::Text) => doc.text(id()).map_or(J::Null, J::String),
            ValueRef::Scalar(S::Str(s)) => J::String(s.into_owned()),
            ValueRef::Scalar(S::Int(i)) => J::from(i),
            ValueRef::Scalar(S::Uint(u)) => J::from(u),
            ValueRef::Scalar(S::F64(f)) => {
                serde_json::Number::from_f64(f).map_or(J::Null, J::Number)
            }
            ValueRef::Scalar(S::Boolean(b)) => J::Bool(b),
            ValueRef::Scalar(_) => J::Null,
        }
    };
    match kind {
        ObjType::List => J::Array(
            doc.list_range(obj, ..)
                .map(|item| value(item.value.clone(), &|| item.id()))
                .collect(),
        ),
        _ => J::Object(
            doc.map_range(obj, ..)
                .map(|item| {
                    (
                        item.key.to_string(),
                        value(item.value.clone(), &|| item.id()),
                    )
                })
                .collect(),
        ),
    }
}

/// The changes a document has beyond some heads: what a push added.
#[derive(Debug, Clone)]
pub struct NewChanges {
    /// Their distinct actor ids.
    pub actors: Vec<automerge::ActorId>,
    /// Their bytes: uncompressed change chunks that `load`/`apply` accept after the earlier
    /// bytes (cheaper to produce, and whatever travels is compressed whole).
    pub bytes: Vec<u8>,
    /// The changes themselves, in causal order, for the push validator.
    pub changes: Vec<automerge::Change>,
}

/// The changes a document has beyond `heads` (every change when `heads` is empty).
pub(crate) fn changes_since(doc: &mut AutoCommit, heads: &[automerge::ChangeHash]) -> NewChanges {
    let changes = doc.get_changes(heads);
    let mut actors: Vec<automerge::ActorId> =
        changes.iter().map(|c| c.actor_id().clone()).collect();
    actors.sort();
    actors.dedup();
    let mut bytes = Vec::with_capacity(changes.iter().map(|c| c.raw_bytes().len()).sum());
    for change in &changes {
        bytes.extend_from_slice(change.raw_bytes());
    }
    NewChanges {
        actors,
        bytes,
        changes,
    }
}

/// Reads the root `schema` and `kind` and checks them against what this build reads.
pub(crate) fn check_root(doc_id: &str, doc: &AutoCommit, kind: &str, supported: i64) -> Result<()> {
    let malformed = |detail: String| Error::Malformed {
        doc_id: doc_id.to_owned(),
        detail,
    };
    let found = match doc.get(automerge::ROOT, "schema") {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Int(v) => *v,
            ScalarValue::Uint(v) => i64::try_from(*v).unwrap_or(i64::MAX),
            other => return Err(malformed(format!("`schema` is {other:?}, not an integer"))),
        },
        Ok(_) => return Err(malformed("the root has no `schema`".into())),
        Err(e) => return Err(malformed(e.to_string())),
    };
    if found < 1 {
        return Err(malformed(format!("`schema` is {found}")));
    }
    if found > supported {
        return Err(Error::UnsupportedSchema {
            doc_id: doc_id.to_owned(),
            found,
            supported,
        });
    }
    match doc.get(automerge::ROOT, "kind") {
        Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(kind) => Ok(()),
        _ => Err(malformed(format!("the root `kind` is not {kind:?}"))),
    }
}
