//! Automerge documents: the typed mapping between gridlink's records and the CRDT documents
//! that phones edit offline and the server merges.
//!
//! One document per record. A case document's root is
//! `{ schema: 1, kind: "case", details: {…}, history: [event, …] }`; the mapping is derived with
//! autosurgeon. All strings are scalar strings, never Text objects, and all integers are
//! signed (`i64`), so the JavaScript implementation reads them as plain strings and numbers.
//! Editing = one Automerge change per user action, stamped with the real time.

mod case_doc;

pub use case_doc::{CASE_SCHEMA, CaseDoc};

use crate::error::{Error, Result};
use automerge::{AutoCommit, ReadDoc, ScalarValue, Value};

/// An Automerge actor id derived from a device id: the device's 16 UUID bytes. The server
/// checks that every change a device pushes is authored by that device's own actor id.
pub fn actor_for_device(device_id: &str) -> Result<automerge::ActorId> {
    let uuid = uuid::Uuid::parse_str(device_id)
        .map_err(|_| Error::Config(format!("设备编号必须是 UUID / device id must be a UUID: {device_id:?}")))?;
    Ok(automerge::ActorId::from(uuid.as_bytes().as_slice()))
}

/// Loads Automerge bytes from outside (disk, a peer, the network) without trusting them:
/// a load error or a panic inside Automerge becomes [`Error::Corrupt`].
pub(crate) fn load_untrusted(doc_id: &str, bytes: &[u8]) -> Result<AutoCommit> {
    let corrupt = |detail: String| Error::Corrupt { doc_id: doc_id.to_owned(), detail };
    match std::panic::catch_unwind(|| AutoCommit::load(bytes)) {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(_) => Err(corrupt("automerge panicked while loading".into())),
    }
}

/// Applies Automerge bytes from outside to a document, containing errors and panics the same way.
pub(crate) fn apply_untrusted(doc_id: &str, doc: &mut AutoCommit, bytes: &[u8]) -> Result<()> {
    let corrupt = |detail: String| Error::Corrupt { doc_id: doc_id.to_owned(), detail };
    let mut attempt = doc.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| attempt.load_incremental(bytes))) {
        Ok(Ok(_)) => {
            *doc = attempt;
            Ok(())
        }
        Ok(Err(e)) => Err(corrupt(e.to_string())),
        Err(_) => Err(corrupt("automerge panicked while applying changes".into())),
    }
}

/// Reads the root `schema` and `kind` and checks them against what this build reads.
pub(crate) fn check_root(doc_id: &str, doc: &AutoCommit, kind: &str, supported: i64) -> Result<()> {
    let malformed = |detail: String| Error::Malformed { doc_id: doc_id.to_owned(), detail };
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
        return Err(Error::UnsupportedSchema { doc_id: doc_id.to_owned(), found, supported });
    }
    match doc.get(automerge::ROOT, "kind") {
        Ok(Some((Value::Scalar(s), _))) if s.as_str() == Some(kind) => Ok(()),
        _ => Err(malformed(format!("the root `kind` is not {kind:?}"))),
    }
}
