//! The phone's local store: one SQLite file holding every document the phone has, the
//! server's acknowledgements, a query index row per case, and the quarantine.
//!
//! `Store` is the entry point: [`Store::open`] opens (or creates) the file, runs the
//! migrations and hands out the API. The API is blocking; apps call it off the main thread.
//! There is one connection, and so one writer; every write that touches a document rewrites its
//! index row in the same transaction, so lists never disagree with documents.
//!
//! Documents are not kept in memory between calls (a loaded case costs ~25 KB and a phone has
//! thousands): each call loads what it needs from `base` + chunks, and lists come from the
//! index rows alone.

mod citizen;
mod migrations;
mod photos;
mod query;
mod records;
mod sync;

pub use citizen::{
    CitizenReportState, CitizenReportView, MAX_REPORT_CHARS, MAX_REPORT_PHOTOS, NewCitizenReport,
};
pub use migrations::SCHEMA_VERSION;
#[cfg(feature = "client")]
pub(crate) use photos::DuePhoto;
pub use photos::{ORPHAN_GRACE_MS, PhotoBudget, PhotoInput, PhotoState, PhotoStatus};
pub use query::{
    BadPageCursor, CaseFilter, CaseOrder, CasePage, CaseQuery, CaseSummary, PageCursor,
};
pub use records::{AddressHit, DEFAULT_CHECK_IN_M, MediationSummary, PatrolItem, VisitAnswer};
pub use sync::{
    Credentials, OutboxEntry, OutboxState, PushBatch, RejectedEdit, RejectedEntry, ResponseOutcome,
};

use crate::case::{Case, CaseDetails, Category, EventKind, Location, Role, Source, Stamp};
use crate::doc::{CaseDoc, DocKind, RecordDoc, SyncedDoc, actor_for_device};
use crate::error::{Error, Result};
use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Who uses this store, and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// This device's id (a UUID); its bytes are the Automerge actor id of every local edit.
    pub device_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// After this many incremental chunks a document is compacted into one save.
    pub compact_after_chunks: u32,
    /// How captured photos are processed.
    pub photo: crate::photo::PhotoConfig,
    /// How much the photo queue may hold.
    pub photo_budget: PhotoBudget,
}

impl StoreConfig {
    /// A configuration with the default compaction threshold.
    pub fn new(device_id: impl Into<String>, user_id: impl Into<String>, role: Role) -> Self {
        StoreConfig {
            device_id: device_id.into(),
            user_id: user_id.into(),
            role,
            compact_after_chunks: 4,
            photo: crate::photo::PhotoConfig::default(),
            photo_budget: PhotoBudget::default(),
        }
    }
}

/// What a reporter enters to open a case.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    /// Case id chosen by the app (a UUID), so that retrying a report never makes two cases.
    pub id: String,
    /// What it is about.
    pub category: Category,
    /// The channel.
    pub source: Source,
    /// One line.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Where the problem is.
    pub location: Option<Location>,
    /// Standard address code.
    pub address_id: Option<String>,
    /// The grid it belongs to.
    pub grid_id: String,
    /// Photo hashes taken with the report.
    pub photos: Vec<String>,
    /// How urgent it is.
    pub priority: crate::case::Priority,
}

impl NewCase {
    /// The case's reported facts (title trimmed; the reporter is the signed-in user, set by
    /// the `reported` event) and its photos.
    fn into_details(self) -> (CaseDetails, Vec<String>) {
        (
            CaseDetails {
                id: self.id,
                category: self.category,
                source: self.source,
                title: self.title.trim().to_owned(),
                description: self.description,
                location: self.location,
                address_id: self.address_id,
                grid_id: self.grid_id,
                reporter: None,
                priority: self.priority,
            },
            self.photos,
        )
    }
}

/// When and where the user acted (device clock, UTC ms; location if sampled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moment {
    /// Device time, UTC milliseconds.
    pub at_ms: i64,
    /// Where the device was.
    pub location: Option<Location>,
}

/// Changes for one document received from another replica (the server, in practice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteChanges {
    /// The document.
    pub doc_id: String,
    /// Automerge bytes: a full save, or changes following what this replica has.
    pub bytes: Vec<u8>,
}

/// What [`Store::apply_remote`] did with a batch.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// Documents that changed.
    pub applied: Vec<String>,
    /// Documents that already had every change (a repeated delivery).
    pub unchanged: Vec<String>,
    /// Documents whose changes were refused, with why; their bytes are in the quarantine.
    pub rejected: Vec<(String, Error)>,
}

/// A quarantined piece of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The document it belongs to.
    pub doc_id: String,
    /// `local` (a stored document that stopped loading) or `remote` (bytes from a peer).
    pub origin: String,
    /// Why it was set aside.
    pub reason: String,
    /// Size of the kept bytes.
    pub size: usize,
    /// When, UTC ms.
    pub at_ms: i64,
}

/// The phone's local store. See the module docs.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    config: StoreConfig,
    /// The actor of local edits: the device UUID until the device enrolls, then the
    /// server-issued prefix and the current epoch (see `sync::device_actor`).
    actor: Mutex<automerge::ActorId>,
}

impl Store {
    /// Opens or creates the store at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        let mut actor = actor_for_device(&config.device_id)?;
        if config.user_id.trim().is_empty() {
            return Err(Error::Config("用户编号为空 / the user id is empty".into()));
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL lets readers run beside the writer; FULL makes every committed user action
        // survive a power cut (the outbox is the only copy until the server acknowledges it).
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Every write path runs the same dozen statements; keep them all prepared.
        conn.set_prepared_statement_cache_capacity(64);
        migrations::migrate(&mut conn)?;
        if let Some(enrolled) = sync::enrolled_actor(&conn)? {
            actor = enrolled;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            config,
            actor: Mutex::new(actor),
        })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Opens a new case as the signed-in user. Reporting the same case id again returns the
    /// case as it is (a retried tap is harmless) if the details match, and an error otherwise.
    pub fn report(&self, new: NewCase, at: Moment) -> Result<Case> {
        let mut conn = self.lock();
        let (details, photos) = new.into_details();
        let (tx, existing) = self.begin_with(&mut conn, &details.id)?;
        if let Some(existing) = existing {
            let case = existing.case()?;
            return if case.details == details {
                Ok(case)
            } else {
                Err(Error::Invalid(crate::case::EventError::Invalid(format!(
                    "案件编号 {} 已被另一个案件使用 / case id {} is already used by another case",
                    details.id, details.id
                ))))
            };
        }
        let case = self.create_case(&tx, details, photos, at)?;
        tx.commit()?;
        Ok(case)
    }

    /// Opens a new case inside a transaction already begun (a hazard found on a visit).
    fn report_in(&self, tx: &Connection, new: NewCase, at: Moment) -> Result<Case> {
        let (details, photos) = new.into_details();
        self.create_case(tx, details, photos, at)
    }

    fn create_case(
        &self,
        tx: &Connection,
        details: CaseDetails,
        photos: Vec<String>,
        at: Moment,
    ) -> Result<Case> {
        let (mut doc, _) = CaseDoc::create(details, photos, self.stamp(at), self.actor())?;
        let case = doc.case()?;
        write_doc(tx, &mut doc, None, &case, self.config.compact_after_chunks)?;
        Ok(case)
    }

    /// Records one action on a case as the signed-in user: one Automerge change, the document
    /// and its index row written in one transaction. An action that the case's state or the
    /// user's role does not allow is refused with [`Error::NotAllowed`] and nothing is written.
    pub fn record(&self, case_id: &str, kind: EventKind, at: Moment) -> Result<Case> {
        let mut conn = self.lock();
        let (tx, doc) = self.begin_with(&mut conn, case_id)?;
        let mut doc = doc.ok_or_else(|| Error::NotFound(case_id.to_owned()))?;
        let before = doc.heads();
        let (_, case) = doc.record(kind, self.stamp(at))?;
        write_doc(
            &tx,
            &mut doc,
            Some(&before),
            &case,
            self.config.compact_after_chunks,
        )?;
        tx.commit()?;
        Ok(case)
    }

    /// A case with its full history and folded state.
    pub fn case(&self, case_id: &str) -> Result<Case> {
        let mut conn = self.lock();
        let (tx, doc) = self.begin_with(&mut conn, case_id)?;
        tx.commit()?;
        doc.ok_or_else(|| Error::NotFound(case_id.to_owned()))?
            .case()
    }

    /// One page of cases from the index rows.
    pub fn list(&self, query: &CaseQuery) -> Result<CasePage> {
        let conn = self.lock();
        query::list(&conn, query, &self.config.user_id)
    }

    /// Applies changes from other replicas, all in one transaction, each document in its own
    /// savepoint: a document whose bytes are corrupt, of an unknown schema, or malformed is
    /// rejected (its bytes quarantined) and leaves its stored version untouched, while the rest
    /// of the batch goes in.
    pub fn apply_remote(&self, batch: &[RemoteChanges], now_ms: i64) -> Result<ApplyReport> {
        let mut conn = self.lock();
        let mut tx = conn.transaction()?;
        let mut report = ApplyReport::default();
        for item in batch {
            let sp = tx.savepoint()?;
            match self.apply_any(&sp, item).map(|(changed, _)| changed) {
                Ok(true) => {
                    sp.commit()?;
                    report.applied.push(item.doc_id.clone());
                }
                Ok(false) => {
                    sp.commit()?;
                    report.unchanged.push(item.doc_id.clone());
                }
                Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                Err(e) => {
                    drop(sp);
                    quarantine(
                        &tx,
                        &item.doc_id,
                        "remote",
                        &e.to_string(),
                        &item.bytes,
                        now_ms,
                    )?;
                    report.rejected.push((item.doc_id.clone(), e));
                }
            }
        }
        tx.commit()?;
        Ok(report)
    }

    /// Applies one document's remote changes, of any kind, and writes it; returns whether it
    /// changed, and the document as it now is. A stored copy that no longer loads is
    /// quarantined and treated as absent, so a full document from the server can replace it.
    pub(crate) fn apply_any(
        &self,
        tx: &Connection,
        item: &RemoteChanges,
    ) -> Result<(bool, Box<dyn SyncedDoc>)> {
        if DocKind::of(&item.doc_id) == DocKind::Case {
            let existing = match self.load(tx, &item.doc_id) {
                Ok(doc) => doc,
                Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                Err(_) => None,
            };
            let (changed, doc) = self.apply_one_keep(tx, item, existing)?;
            return Ok((changed, Box::new(doc)));
        }
        let existing = match self.load_record(tx, &item.doc_id) {
            Ok(doc) => doc,
            Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
            Err(_) => None,
        };
        let (changed, doc) = self.apply_record(tx, &item.doc_id, &item.bytes, existing)?;
        Ok((changed, Box::new(doc)))
    }

    /// Applies one case's remote changes and writes it; returns whether it changed, and the
    /// document as it now is.
    fn apply_one_keep(
        &self,
        tx: &Connection,
        item: &RemoteChanges,
        existing: Option<CaseDoc>,
    ) -> Result<(bool, CaseDoc)> {
        let (mut doc, before) = match existing {
            Some(mut doc) => {
                let before = doc.heads();
                // The document was loaded for this item only; on error it is dropped and the
                // savepoint rolled back, so no copy is needed.
                doc.apply_in_place(&item.bytes)?;
                (doc, Some(before))
            }
            None => {
                let mut doc = CaseDoc::load(&item.doc_id, &item.bytes)?;
                doc.set_actor(self.actor());
                (doc, None)
            }
        };
        if before.as_deref() == Some(doc.heads().as_slice()) {
            return Ok((false, doc));
        }
        let case = doc.case()?;
        if case.details.id != item.doc_id {
            return Err(Error::Malformed {
                doc_id: item.doc_id.clone(),
                detail: format!("the document says it is case {}", case.details.id),
            });
        }
        write_doc(
            tx,
            &mut doc,
            before.as_deref(),
            &case,
            self.config.compact_after_chunks,
        )?;
        Ok((true, doc))
    }

    /// Ids of documents holding changes the server has not acknowledged.
    pub fn unacknowledged(&self) -> Result<Vec<String>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT d.id FROM documents d LEFT JOIN sync_state s ON s.doc_id = d.id
             WHERE s.acked_heads IS NULL OR s.acked_heads != d.heads ORDER BY d.id",
        )?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// The changes of one document that the server has not acknowledged, as Automerge bytes
    /// (the whole document if the server has acknowledged nothing).
    pub fn unacknowledged_changes(&self, doc_id: &str) -> Result<Vec<u8>> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let doc = self.load_synced(&tx, doc_id);
        let mut doc = doc?.ok_or_else(|| Error::NotFound(doc_id.to_owned()))?;
        let acked = acked_heads(&tx, doc_id)?;
        tx.commit()?;
        Ok(match acked {
            Some(heads) => doc.save_after(&heads),
            None => doc.save(),
        })
    }

    /// Records that the server holds the document up to `heads`.
    pub fn set_acknowledged(&self, doc_id: &str, heads: &[ChangeHash]) -> Result<()> {
        let conn = self.lock();
        let changed = conn.execute(
            "INSERT INTO sync_state (doc_id, acked_heads) SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?1)
             ON CONFLICT (doc_id) DO UPDATE SET acked_heads = excluded.acked_heads",
            params![doc_id, encode_heads(heads)],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(doc_id.to_owned()));
        }
        Ok(())
    }

    /// The heads the server is known to hold for a document.
    pub fn acknowledged(&self, doc_id: &str) -> Result<Option<Vec<ChangeHash>>> {
        let conn = self.lock();
        acked_heads(&conn, doc_id)
    }

    /// Rewrites a document as one compacted save (also done automatically every
    /// [`StoreConfig::compact_after_chunks`] changes).
    pub fn compact(&self, doc_id: &str) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let doc = self.load_synced(&tx, doc_id);
        let mut doc = doc?.ok_or_else(|| Error::NotFound(doc_id.to_owned()))?;
        compact_doc(&tx, doc.as_mut())?;
        tx.commit()?;
        Ok(())
    }

    /// Everything in the quarantine, newest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT doc_id, origin, reason, length(bytes), at FROM quarantine ORDER BY at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Quarantined {
                doc_id: r.get(0)?,
                origin: r.get(1)?,
                reason: r.get(2)?,
                size: r
                    .get::<_, i64>(3)
                    .map(|n| usize::try_from(n).unwrap_or(0))?,
                at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn stamp(&self, at: Moment) -> Stamp {
        Stamp {
            actor: self.config.user_id.clone(),
            role: self.config.role,
            device: self.config.device_id.clone(),
            at_ms: at.at_ms,
            location: at.location,
        }
    }

    fn actor(&self) -> automerge::ActorId {
        self.actor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Begins a transaction and loads a document in it. If the stored document no longer
    /// loads, the transaction that moved it to the quarantine is committed before the error is
    /// returned, so the bytes are kept aside rather than rolled back.
    fn begin_with<'c>(
        &self,
        conn: &'c mut Connection,
        doc_id: &str,
    ) -> Result<(Transaction<'c>, Option<CaseDoc>)> {
        let tx = conn.transaction()?;
        match self.load(&tx, doc_id) {
            Ok(doc) => Ok((tx, doc)),
            Err(e) => {
                tx.commit()?;
                Err(e)
            }
        }
    }

    /// Loads a document from its base and chunks. A stored document that no longer loads is
    /// moved to the quarantine (within `conn`'s transaction) and reported as the error.
    fn load(&self, tx: &Connection, doc_id: &str) -> Result<Option<CaseDoc>> {
        if DocKind::of(doc_id) != DocKind::Case {
            return Ok(None);
        }
        self.load_as(tx, doc_id, |id, bytes| {
            let mut doc = CaseDoc::load(id, bytes)?;
            doc.set_actor(self.actor());
            Ok(doc)
        })
    }

    /// Loads a record document (see [`load`](Self::load)).
    fn load_record(&self, tx: &Connection, doc_id: &str) -> Result<Option<RecordDoc>> {
        if DocKind::of(doc_id) == DocKind::Case {
            return Ok(None);
        }
        self.load_as(tx, doc_id, |id, bytes| {
            let mut doc = RecordDoc::load(id, bytes)?;
            doc.set_actor(self.actor());
            Ok(doc)
        })
    }

    /// Loads a document of any kind, for what every kind shares (sync, compaction).
    pub(crate) fn load_synced(
        &self,
        tx: &Connection,
        doc_id: &str,
    ) -> Result<Option<Box<dyn SyncedDoc>>> {
        Ok(if DocKind::of(doc_id) == DocKind::Case {
            self.load(tx, doc_id)?
                .map(|d| Box::new(d) as Box<dyn SyncedDoc>)
        } else {
            self.load_record(tx, doc_id)?
                .map(|d| Box::new(d) as Box<dyn SyncedDoc>)
        })
    }

    fn load_as<D>(
        &self,
        tx: &Connection,
        doc_id: &str,
        parse: impl Fn(&str, &[u8]) -> Result<D>,
    ) -> Result<Option<D>> {
        let Some(mut bytes) = tx
            .prepare_cached("SELECT base FROM documents WHERE id = ?1")?
            .query_row([doc_id], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
        else {
            return Ok(None);
        };
        let mut stmt =
            tx.prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([doc_id])?;
        while let Some(row) = rows.next()? {
            bytes.extend_from_slice(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?);
        }
        match parse(doc_id, &bytes) {
            Ok(doc) => Ok(Some(doc)),
            Err(
                e @ (Error::Corrupt { .. }
                | Error::Malformed { .. }
                | Error::UnsupportedSchema { .. }),
            ) => {
                quarantine(tx, doc_id, "local", &e.to_string(), &bytes, now_ms())?;
                delete_doc(tx, doc_id)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// Milliseconds since the Unix epoch, by this device's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

fn acked_heads(conn: &Connection, doc_id: &str) -> Result<Option<Vec<ChangeHash>>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT acked_heads FROM sync_state WHERE doc_id = ?1",
            [doc_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(bytes.map(|b| decode_heads(&b)))
}

fn decode_heads(bytes: &[u8]) -> Vec<ChangeHash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(ChangeHash))
        .collect()
}

fn quarantine(
    tx: &Connection,
    doc_id: &str,
    origin: &str,
    reason: &str,
    bytes: &[u8],
    at_ms: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO quarantine (doc_id, origin, reason, bytes, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![doc_id, origin, reason, bytes, at_ms],
    )?;
    Ok(())
}

/// Deletes a document with its chunks, acknowledgement, index row and search row.
fn delete_doc(conn: &Connection, doc_id: &str) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM case_search WHERE rowid = (SELECT rowid FROM cases WHERE doc_id = ?1)",
    )?
    .execute([doc_id])?;
    conn.prepare_cached(
        "DELETE FROM record_search WHERE rowid = (SELECT rowid FROM records WHERE doc_id = ?1)",
    )?
    .execute([doc_id])?;
    conn.prepare_cached("DELETE FROM documents WHERE id = ?1")?
        .execute([doc_id])?;
    Ok(())
}

/// Replaces a document's base and chunks by one full save.
fn compact_doc(conn: &Connection, doc: &mut dyn SyncedDoc) -> Result<()> {
    let bytes = doc.save();
    conn.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1")?
        .execute([doc.doc_id()])?;
    conn.prepare_cached("UPDATE documents SET base = ?2, chunk_count = 0 WHERE id = ?1")?
        .execute(params![doc.doc_id(), bytes])?;
    Ok(())
}

/// Persists a document after a change and rewrites its index row: a new document is written
/// whole; an existing one gets the changes since `before` as a new chunk, or is compacted when
/// it has collected enough chunks.
fn write_doc(
    tx: &Connection,
    doc: &mut CaseDoc,
    before: Option<&[ChangeHash]>,
    case: &Case,
    compact_after: u32,
) -> Result<()> {
    write_bytes(
        tx,
        doc,
        "case",
        before,
        case.state.updated_at_ms,
        compact_after,
    )?;
    query::write_index_row(tx, case)
}

/// Persists a document's bytes after a change (any kind): a new document whole; an existing
/// one as a new chunk of the changes since `before`, or compacted when it has collected
/// enough chunks.
fn write_bytes(
    tx: &Connection,
    doc: &mut dyn SyncedDoc,
    kind: &str,
    before: Option<&[ChangeHash]>,
    updated_at: i64,
    compact_after: u32,
) -> Result<()> {
    let id = doc.doc_id().to_owned();
    let heads = encode_heads(&doc.heads());
    match before {
        None => {
            tx.prepare_cached(
                "INSERT INTO documents (id, kind, base, chunk_count, heads, updated_at) VALUES (?1, ?5, ?2, 0, ?3, ?4)",
            )?
            .execute(params![id, doc.save(), heads, updated_at, kind])?;
        }
        Some(before) => {
            let chunks: u32 = tx
                .prepare_cached(
                    "UPDATE documents SET chunk_count = chunk_count + 1, heads = ?2, updated_at = ?3
                     WHERE id = ?1 RETURNING chunk_count",
                )?
                .query_row(params![id, heads, updated_at], |r| r.get(0))?;
            if chunks >= compact_after {
                compact_doc(tx, doc)?;
            } else {
                tx.prepare_cached(
                    "INSERT INTO doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, chunks, doc.save_after(before)])?;
            }
        }
    }
    Ok(())
}
