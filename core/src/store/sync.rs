//! The store's side of sync: the device's enrollment and cursor, building a push, and applying
//! a server response in one transaction (pulled changes, acknowledgements, refusals with the
//! reset of the refused document, documents that left the scope, the new cursor).
//!
//! No networking here: the client in `crate::sync` moves the bytes. Everything that changes
//! local state on a response happens in [`Store::apply_response`], so a response is applied
//! whole or not at all, and the cursor never moves past changes that were not stored.

use super::{Store, acked_heads, decode_heads, delete_doc, encode_heads, now_ms, write_doc};
use crate::case::{Event, Stamp};
use crate::doc::CaseDoc;
use crate::error::{Error, Result};
use crate::sync::wire::{Cursor, EnrollResponse, PushDoc, RejectCode, Rejection, SyncResponse};
use crate::sync::{ACTOR_PREFIX_LEN, device_actor};
use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};

/// What a device needs to talk to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The device id the server registered.
    pub device_id: String,
    /// The bearer token.
    pub token: String,
}

/// The last thing sync did with a document, for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxState {
    /// Local changes wait to be sent.
    Pending,
    /// Sent; the server has not confirmed yet.
    Sent,
    /// The server holds every local change.
    Accepted,
    /// The server could not take the last push for its own reasons (`server_error`: a full
    /// disk, its database unreachable): everything is kept and pushed again at the next sync.
    Deferred {
        /// Machine code of the reason.
        code: String,
        /// For people.
        message: String,
    },
    /// The server refused the last push (see [`Store::rejected_edits`]).
    Rejected {
        /// Machine code of the reason.
        code: String,
        /// For people.
        message: String,
    },
}

/// One document's outbox state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The document.
    pub doc_id: String,
    /// Its state.
    pub state: OutboxState,
}

/// An edit the server refused, kept so the user sees what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedEdit {
    /// The document.
    pub doc_id: String,
    /// The refused event (for a refused report: the report, with the case details in
    /// `details`).
    pub event: Event,
    /// The reported facts, when the refused edit was the report itself.
    pub details: Option<crate::case::CaseDetails>,
    /// Machine code of the reason.
    pub code: String,
    /// For people.
    pub message: String,
    /// When the refusal arrived, UTC ms.
    pub at_ms: i64,
}

/// A row of `rejected_edits`: a refused case event (`{event, details}`) or record entry
/// (`{entry, details}`).
struct RejectedRow {
    doc_id: String,
    value: serde_json::Value,
    code: String,
    message: String,
    at_ms: i64,
}

/// The server's copy sent with a refusal, loaded: `Some(None)` when the server has none the
/// device may read, `None` when it does not load here — then the local document is kept as it
/// is, marked refused with why, and the next sync tries again.
fn server_copy<D>(
    tx: &Connection,
    rejection: &Rejection,
    load: impl Fn(&str, &[u8]) -> Result<D>,
) -> Result<Option<Option<D>>> {
    let Some(bytes) = &rejection.server_doc else {
        return Ok(Some(None));
    };
    match load(&rejection.doc_id, bytes) {
        Ok(doc) => Ok(Some(Some(doc))),
        Err(e) => {
            set_outbox(
                tx,
                &rejection.doc_id,
                "rejected",
                Some((rejection.code.code(), &e.to_string())),
            )?;
            Ok(None)
        }
    }
}

/// A record entry (or a whole new record) the server refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedEntry {
    /// The record.
    pub doc_id: String,
    /// The entry as written (none when the refused record had no entries of this device).
    pub entry: Option<serde_json::Value>,
    /// The record's details, when the server holds no copy of it (a refused new record).
    pub details: Option<serde_json::Value>,
    /// Machine code of the reason.
    pub code: String,
    /// For people.
    pub message: String,
    /// When the refusal arrived, UTC ms.
    pub at_ms: i64,
}

/// The documents of one push, and the heads each was pushed at.
#[derive(Debug, Clone, Default)]
pub struct PushBatch {
    /// What to send.
    pub docs: Vec<PushDoc>,
    /// The local heads each document had when its changes were taken.
    pub heads: HashMap<String, Vec<ChangeHash>>,
    /// Documents with unsent changes left out because the batch was full.
    pub left_out: usize,
}

/// What applying a response did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseOutcome {
    /// Documents that changed from pulled changes.
    pub received: u64,
    /// Pulled documents refused locally (quarantined).
    pub refused_pulls: u64,
    /// Documents the server confirmed.
    pub accepted: u64,
    /// Documents the server refused (reset to its version).
    pub rejected: u64,
    /// Documents deleted because they left the scope.
    pub removed: u64,
    /// Refused edits re-applied on top of the server's version, to be pushed again.
    pub reapplied: u64,
    /// Documents the server could not take for its own reasons (kept, pushed again later).
    pub deferred: u64,
    /// Documents that left the scope but hold unsent edits: pushed first, deleted after.
    pub kept_for_push: u64,
    /// The server was restored from a backup since the last sync (another history id): every
    /// document is pushed again from what the server holds, photos are uploaded again.
    pub restored: bool,
}

const META_TOKEN: &str = "token";
const META_DEVICE: &str = "enrolled_device";
const META_PREFIX: &str = "actor_prefix";
const META_EPOCH: &str = "epoch";
const META_CURSOR: &str = "cursor";
const META_PENDING_REMOVAL: &str = "pending_removal";
const META_HISTORY: &str = "server_history";

fn meta(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT value FROM sync_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set_meta(conn: &Connection, key: &str, value: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

fn epoch(conn: &Connection) -> Result<u32> {
    Ok(meta(conn, META_EPOCH)?
        .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
        .map_or(0, u32::from_be_bytes))
}

/// The actor of an enrolled device (prefix + epoch), if the device has enrolled.
pub(super) fn enrolled_actor(conn: &Connection) -> Result<Option<automerge::ActorId>> {
    let Some(prefix) = meta(conn, META_PREFIX)? else {
        return Ok(None);
    };
    let prefix = <[u8; ACTOR_PREFIX_LEN]>::try_from(prefix.as_slice()).map_err(|_| {
        Error::Config("存储的设备标识已损坏 / the stored actor prefix is damaged".into())
    })?;
    Ok(Some(device_actor(&prefix, epoch(conn)?)))
}

fn set_acked(conn: &Connection, doc_id: &str, heads: &[ChangeHash]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_state (doc_id, acked_heads) VALUES (?1, ?2)
         ON CONFLICT (doc_id) DO UPDATE SET acked_heads = excluded.acked_heads",
    )?
    .execute(params![doc_id, encode_heads(heads)])?;
    Ok(())
}

/// After the server went back in time (a restore from a backup): nothing it acknowledged can
/// be counted on. Every document's acknowledged heads are forgotten (the pull, which starts
/// again from nothing, records the heads the server now holds, and the next push sends this
/// device's changes beyond them), and every photo still on the phone is uploaded again (the
/// server answers at once for those it kept).
fn forget_what_the_server_held(tx: &Connection) -> Result<()> {
    tx.execute("DELETE FROM sync_state", [])?;
    tx.execute("DELETE FROM sync_meta WHERE key = ?1", [META_CURSOR])?;
    tx.execute(
        "UPDATE photos SET state = 'processed', confirmed = 0, thumb_sent = 0, attempts = 0,
             last_error = NULL, next_attempt_at = 0, uploaded_at = NULL
         WHERE state = 'uploaded'
           AND EXISTS (SELECT 1 FROM photo_data d WHERE d.hash = photos.hash AND d.kind = 'full')",
        [],
    )?;
    Ok(())
}

/// Whether a stored document holds changes the server has not acknowledged (the same test as
/// [`Store::unacknowledged`], for one document).
fn has_unsent(conn: &Connection, doc_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM documents d LEFT JOIN sync_state s ON s.doc_id = d.id
             WHERE d.id = ?1 AND (s.acked_heads IS NULL OR s.acked_heads != d.heads))",
        )?
        .query_row([doc_id], |r| r.get(0))?)
}

fn set_outbox(
    conn: &Connection,
    doc_id: &str,
    state: &str,
    why: Option<(&str, &str)>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (doc_id, state, code, message, at) SELECT ?1, ?2, ?3, ?4, ?5
         WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?1)
         ON CONFLICT (doc_id) DO UPDATE SET state = excluded.state, code = excluded.code,
            message = excluded.message, at = excluded.at",
    )?
    .execute(params![
        doc_id,
        state,
        why.map(|w| w.0),
        why.map(|w| w.1),
        now_ms()
    ])?;
    Ok(())
}

impl Store {
    /// Keeps the credentials and actor prefix the server issued at enrollment. The pull cursor
    /// starts again from nothing, so the first sync brings the user's whole scope.
    pub fn set_enrollment(&self, enrollment: &EnrollResponse) -> Result<()> {
        // Events carry the store's user and device; the server checks them against the
        // enrollment, so a mismatch would make every push refused.
        if enrollment.device_id != self.config.device_id
            || enrollment.user_id != self.config.user_id
            || enrollment.role != self.config.role
        {
            return Err(Error::Config(format!(
                "登记的设备、用户或角色与本机不符 / the enrollment is for device {} and user {} ({}); this store is for device {} and user {} ({})",
                enrollment.device_id,
                enrollment.user_id,
                enrollment.role.code(),
                self.config.device_id,
                self.config.user_id,
                self.config.role.code()
            )));
        }
        let prefix = <[u8; ACTOR_PREFIX_LEN]>::try_from(enrollment.actor_prefix.as_slice())
            .map_err(|_| {
                Error::Config(
                    "服务器返回的设备标识无效 / the server sent an invalid actor prefix".into(),
                )
            })?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        set_meta(&tx, META_TOKEN, enrollment.token.as_bytes())?;
        set_meta(&tx, META_DEVICE, enrollment.device_id.as_bytes())?;
        set_meta(&tx, META_PREFIX, &prefix)?;
        set_meta(&tx, META_EPOCH, &0u32.to_be_bytes())?;
        tx.execute("DELETE FROM sync_meta WHERE key = ?1", [META_CURSOR])?;
        tx.commit()?;
        *self.actor.lock().unwrap_or_else(|p| p.into_inner()) = device_actor(&prefix, 0);
        Ok(())
    }

    /// The device's credentials, once it has enrolled.
    pub fn credentials(&self) -> Result<Option<Credentials>> {
        let conn = self.lock();
        let (Some(token), Some(device)) = (meta(&conn, META_TOKEN)?, meta(&conn, META_DEVICE)?)
        else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            device_id: String::from_utf8_lossy(&device).into_owned(),
            token: String::from_utf8_lossy(&token).into_owned(),
        }))
    }

    /// The server's history id from the last response applied (ADR 0013).
    pub fn server_history(&self) -> Result<Option<String>> {
        let conn = self.lock();
        Ok(meta(&conn, META_HISTORY)?.and_then(|b| String::from_utf8(b).ok()))
    }

    /// Whether `actor` is one of this device's: its enrolled prefix with any epoch, or the
    /// actor it edited with before it enrolled.
    fn own_actor(&self, conn: &Connection) -> Result<impl Fn(&automerge::ActorId) -> bool + use<>> {
        let prefix = meta(conn, META_PREFIX)?.unwrap_or_default();
        let device = self.config.device_id.clone();
        Ok(
            move |actor: &automerge::ActorId| {
                crate::sync::actor_belongs_to(actor, &prefix, &device)
            },
        )
    }

    /// Where the next pull starts.
    pub fn cursor(&self) -> Result<Cursor> {
        let conn = self.lock();
        // A damaged cursor only costs a fuller pull: start again from nothing.
        Ok(meta(&conn, META_CURSOR)?
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// Takes the unacknowledged changes of documents, up to about `max_bytes` and
    /// [`MAX_PUSH_DOCS`](crate::sync::wire::MAX_PUSH_DOCS), and marks them sent. At least one
    /// document is taken whatever its size.
    pub fn prepare_push(&self, max_bytes: usize) -> Result<PushBatch> {
        let ids = self.unacknowledged()?;
        let mut batch = PushBatch::default();
        let mut size = 0;
        let mut conn = self.lock();
        // One transaction for the whole batch: marking documents sent costs one commit.
        let tx = conn.transaction()?;
        let own = self.own_actor(&tx)?;
        for (i, id) in ids.iter().enumerate() {
            let mut doc = match self.load_synced(&tx, id) {
                Ok(Some(doc)) => doc,
                Ok(None) => continue,
                Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                // Quarantined by `load` (kept in this transaction); nothing to send.
                Err(_) => continue,
            };
            // Only this device's changes, and only those the server can apply: others'
            // changes since the acknowledged heads exist only after a restore (ADR 0013).
            let changes = match acked_heads(&tx, id)? {
                Some(heads) => doc.own_changes_after(&heads, &own),
                None => doc.own_changes_after(&[], &own),
            };
            if changes.taken == 0 {
                continue;
            }
            let changes = changes.bytes;
            let full = batch.docs.len() >= crate::sync::wire::MAX_PUSH_DOCS;
            if full || (!batch.docs.is_empty() && size + changes.len() > max_bytes) {
                batch.left_out = ids.len() - i;
                break;
            }
            size += changes.len();
            set_outbox(&tx, id, "sent", None)?;
            batch.heads.insert(id.clone(), doc.heads());
            batch.docs.push(PushDoc {
                doc_id: id.clone(),
                changes,
            });
        }
        tx.commit()?;
        Ok(batch)
    }

    /// Applies a server response in one transaction: the pulled changes (each document in a
    /// savepoint; refused ones are quarantined), the acknowledgements, the refusals (each
    /// refused document is reset to the server's version; the refused events go to
    /// [`rejected_edits`](Self::rejected_edits) and the user's other pending events are
    /// re-applied on top), the documents that left the scope, and the new cursor.
    pub fn apply_response(
        &self,
        response: &SyncResponse,
        pushed: &PushBatch,
    ) -> Result<ResponseOutcome> {
        let mut outcome = ResponseOutcome::default();
        let mut conn = self.lock();
        let mut tx = conn.transaction()?;
        let now = now_ms();
        let mut new_actor = None;
        if let Some(history) = &response.history {
            let before = meta(&tx, META_HISTORY)?;
            if before.as_deref().is_some_and(|b| b != history.as_bytes()) {
                forget_what_the_server_held(&tx)?;
                outcome.restored = true;
            }
            set_meta(&tx, META_HISTORY, history.as_bytes())?;
        }
        let mut pending_removal: std::collections::BTreeSet<String> =
            meta(&tx, META_PENDING_REMOVAL)?
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();

        for ack in &response.acks {
            let Some(heads) = pushed.heads.get(&ack.doc_id) else {
                continue;
            };
            let server: Vec<ChangeHash> = ack.heads.iter().map(|h| ChangeHash::from(*h)).collect();
            let mut sorted = heads.clone();
            sorted.sort();
            let mut server_sorted = server.clone();
            server_sorted.sort();
            if server_sorted == sorted {
                set_acked(&tx, &ack.doc_id, heads)?;
                set_outbox(&tx, &ack.doc_id, "accepted", None)?;
                outcome.accepted += 1;
            } else if let Ok(Some(mut doc)) = self.load_synced(&tx, &ack.doc_id) {
                // The server's heads differ from what was pushed: it holds others' changes too
                // (pulled below), or did not take all of ours. Only heads this phone holds are
                // recorded, so `save_after` never skips a change the server lacks.
                if server.iter().all(|h| doc.has_change(h)) {
                    set_acked(&tx, &ack.doc_id, &server)?;
                }
                set_outbox(&tx, &ack.doc_id, "accepted", None)?;
                outcome.accepted += 1;
            }
        }
        for pulled in &response.pulled {
            let sp = tx.savepoint()?;
            match self.apply_pulled(&sp, pulled) {
                Ok(changed) => {
                    sp.commit()?;
                    outcome.received += u64::from(changed);
                }
                Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                Err(e) => {
                    drop(sp);
                    super::quarantine(
                        &tx,
                        &pulled.doc_id,
                        "remote",
                        &e.to_string(),
                        &pulled.bytes,
                        now,
                    )?;
                    outcome.refused_pulls += 1;
                }
            }
        }
        for rejection in &response.rejections {
            if !pushed.heads.contains_key(&rejection.doc_id) {
                continue;
            }
            // The server's own trouble: keep everything and push again later.
            if rejection.code == RejectCode::ServerError {
                set_outbox(
                    &tx,
                    &rejection.doc_id,
                    "rejected",
                    Some((rejection.code.code(), &rejection.message)),
                )?;
                outcome.deferred += 1;
                continue;
            }
            let actor = match &new_actor {
                Some(actor) => actor,
                None => {
                    let next = epoch(&tx)?.wrapping_add(1);
                    set_meta(&tx, META_EPOCH, &next.to_be_bytes())?;
                    let actor = match meta(&tx, META_PREFIX)?
                        .and_then(|p| <[u8; ACTOR_PREFIX_LEN]>::try_from(p.as_slice()).ok())
                    {
                        Some(prefix) => device_actor(&prefix, next),
                        None => self.actor(),
                    };
                    new_actor.insert(actor)
                }
            };
            outcome.reapplied += self.reset_rejected(&tx, rejection, actor.clone(), now)?;
            outcome.rejected += 1;
        }
        for doc_id in &response.removed {
            let unsent = has_unsent(&tx, doc_id)?;
            // Unsent edits are pushed first; the server then refuses or takes them, and either
            // way the user is told. The document is remembered until it can go.
            if unsent {
                pending_removal.insert(doc_id.clone());
                outcome.kept_for_push += 1;
            } else {
                remove_out_of_scope(&tx, doc_id)?;
                outcome.removed += 1;
            }
        }
        // Documents that left the scope earlier while holding unsent edits go once those are
        // settled, unless the server has sent them again (back in scope).
        for pulled in &response.pulled {
            pending_removal.remove(&pulled.doc_id);
        }
        let waiting: Vec<String> = pending_removal.iter().cloned().collect();
        for doc_id in waiting {
            let unsent = has_unsent(&tx, &doc_id)?;
            if !unsent && !response.removed.contains(&doc_id) {
                remove_out_of_scope(&tx, &doc_id)?;
                pending_removal.remove(&doc_id);
                outcome.removed += 1;
            }
        }
        set_meta(
            &tx,
            META_PENDING_REMOVAL,
            &serde_json::to_vec(&pending_removal).map_err(|e| Error::Config(e.to_string()))?,
        )?;
        let cursor =
            serde_json::to_vec(&response.cursor).map_err(|e| Error::Config(e.to_string()))?;
        set_meta(&tx, META_CURSOR, &cursor)?;
        tx.commit()?;
        if let Some(actor) = new_actor {
            *self.actor.lock().unwrap_or_else(|p| p.into_inner()) = actor;
        }
        Ok(outcome)
    }

    /// Applies one pulled document; returns whether it changed. Marks the server's heads as
    /// acknowledged when the phone now holds all of them.
    fn apply_pulled(&self, tx: &Connection, pulled: &crate::sync::wire::PulledDoc) -> Result<bool> {
        let item = super::RemoteChanges {
            doc_id: pulled.doc_id.clone(),
            bytes: pulled.bytes.clone(),
        };
        let (changed, mut doc) = self.apply_any(tx, &item)?;
        let server: Vec<ChangeHash> = pulled.heads.iter().map(|h| ChangeHash::from(*h)).collect();
        if !server.is_empty() && server.iter().all(|h| doc.has_change(h)) {
            set_acked(tx, &pulled.doc_id, &server)?;
        }
        Ok(changed)
    }

    /// Resets a refused document to the server's version (or deletes it if the server has
    /// none the device may read), records the refused events, and re-applies the user's other
    /// pending events on top. Returns how many were re-applied.
    fn reset_rejected(
        &self,
        tx: &Connection,
        rejection: &Rejection,
        actor: automerge::ActorId,
        now: i64,
    ) -> Result<u64> {
        let doc_id = &rejection.doc_id;
        if crate::doc::DocKind::of(doc_id) != crate::doc::DocKind::Case {
            return self.reset_rejected_record(tx, rejection, actor, now);
        }
        let local = match self.load(tx, doc_id) {
            Ok(Some(doc)) => doc.case()?,
            Ok(None) => return Ok(0),
            Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
            Err(_) => return Ok(0),
        };
        let Some(server) = server_copy(tx, rejection, CaseDoc::load)? else {
            return Ok(0);
        };
        let server_case = server.as_ref().map(CaseDoc::case).transpose()?;
        let known: HashSet<&str> = server_case
            .iter()
            .flat_map(|c| c.history.iter().map(|e| e.id.as_str()))
            .collect();
        let pending: Vec<&Event> = local
            .history
            .iter()
            .filter(|e| !known.contains(e.id.as_str()) && e.device == self.config.device_id)
            .collect();
        let whole_push = server.is_none() || rejection.event_ids.is_empty();
        let refused = |e: &Event| whole_push || rejection.event_ids.contains(&e.id);
        let record_refusal = |event: &Event, code: &str, message: &str| -> Result<()> {
            let entry = serde_json::json!({
                "event": event,
                "details": matches!(event.kind, crate::case::EventKind::Reported { .. }).then_some(&local.details),
            });
            tx.prepare_cached(
                "INSERT INTO rejected_edits (doc_id, event, code, message, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![doc_id, entry.to_string(), code, message, now])?;
            Ok(())
        };
        delete_doc(tx, doc_id)?;
        let Some(mut doc) = server else {
            for event in pending {
                record_refusal(event, rejection.code.code(), &rejection.message)?;
            }
            return Ok(0);
        };
        doc.set_actor(actor);
        let case = doc.case()?;
        write_doc(tx, &mut doc, None, &case, self.config.compact_after_chunks)?;
        set_acked(tx, doc_id, &doc.heads())?;
        let mut reapplied = 0;
        for event in pending {
            if refused(event) {
                record_refusal(event, rejection.code.code(), &rejection.message)?;
                continue;
            }
            let before = doc.heads();
            let stamp = Stamp {
                actor: event.actor.clone(),
                role: event.role,
                device: event.device.clone(),
                at_ms: event.at_ms,
                location: event.location,
            };
            match doc.record(event.kind.clone(), stamp) {
                Ok((_, case)) => {
                    write_doc(
                        tx,
                        &mut doc,
                        Some(&before),
                        &case,
                        self.config.compact_after_chunks,
                    )?;
                    reapplied += 1;
                }
                Err(e) => record_refusal(event, "not_allowed_after_reset", &e.to_string())?,
            }
        }
        set_outbox(
            tx,
            doc_id,
            "rejected",
            Some((rejection.code.code(), &rejection.message)),
        )?;
        Ok(reapplied)
    }

    /// [`reset_rejected`](Self::reset_rejected) for a record: back to the server's version,
    /// the refused entries to the rejected edits, this device's other pending entries
    /// re-applied on top exactly as written.
    fn reset_rejected_record(
        &self,
        tx: &Connection,
        rejection: &Rejection,
        actor: automerge::ActorId,
        now: i64,
    ) -> Result<u64> {
        let doc_id = &rejection.doc_id;
        let local = match self.load_record(tx, doc_id) {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(0),
            Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
            Err(_) => return Ok(0),
        };
        let Some(server) = server_copy(tx, rejection, crate::doc::RecordDoc::load)? else {
            return Ok(0);
        };
        let id_of = |e: &serde_json::Value| {
            e.get("id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let known: HashSet<String> = match &server {
            Some(doc) => doc.entries_json()?.iter().map(id_of).collect(),
            None => HashSet::new(),
        };
        let pending: Vec<serde_json::Value> = local
            .entries_json()?
            .into_iter()
            .filter(|e| {
                !known.contains(&id_of(e))
                    && e.get("device").and_then(serde_json::Value::as_str)
                        == Some(self.config.device_id.as_str())
            })
            .collect();
        let whole_push = server.is_none() || rejection.event_ids.is_empty();
        // A record the server does not hold at all leaves the phone with its details kept
        // beside the refused entries, so that nothing typed in is lost.
        let details = if server.is_none() {
            local.details_json().ok()
        } else {
            None
        };
        let record_refusal = |entry: Option<&serde_json::Value>,
                              code: &str,
                              message: &str|
         -> Result<()> {
            let row = serde_json::json!({ "entry": entry, "details": details });
            tx.prepare_cached(
                "INSERT INTO rejected_edits (doc_id, event, code, message, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![doc_id, row.to_string(), code, message, now])?;
            Ok(())
        };
        delete_doc(tx, doc_id)?;
        let Some(mut doc) = server else {
            if pending.is_empty() {
                record_refusal(None, rejection.code.code(), &rejection.message)?;
            }
            for entry in &pending {
                record_refusal(Some(entry), rejection.code.code(), &rejection.message)?;
            }
            return Ok(0);
        };
        doc.set_actor(actor);
        self.write_record(tx, &mut doc, None)?;
        set_acked(tx, doc_id, &doc.heads())?;
        let mut reapplied = 0;
        for entry in &pending {
            if whole_push || rejection.event_ids.contains(&id_of(entry)) {
                record_refusal(Some(entry), rejection.code.code(), &rejection.message)?;
                continue;
            }
            let before = doc.heads();
            let mut next = doc.clone();
            match next
                .append_entry_json(entry)
                .and_then(|()| self.write_record(tx, &mut next, Some(&before)))
            {
                Ok(()) => {
                    doc = next;
                    reapplied += 1;
                }
                Err(Error::Sqlite(e)) => return Err(Error::Sqlite(e)),
                Err(e) => record_refusal(Some(entry), "not_allowed_after_reset", &e.to_string())?,
            }
        }
        set_outbox(
            tx,
            doc_id,
            "rejected",
            Some((rejection.code.code(), &rejection.message)),
        )?;
        Ok(reapplied)
    }

    /// Entries of record documents (addresses, visits, mediation files) the server refused,
    /// newest first.
    pub fn rejected_entries(&self) -> Result<Vec<RejectedEntry>> {
        let mut out = Vec::new();
        for RejectedRow {
            doc_id,
            value,
            code,
            message,
            at_ms,
        } in self.rejected_rows()?
        {
            if let Some(entry) = value.get("entry") {
                let some = |v: &serde_json::Value| (!v.is_null()).then(|| v.clone());
                out.push(RejectedEntry {
                    doc_id,
                    entry: some(entry),
                    details: value.get("details").and_then(some),
                    code,
                    message,
                    at_ms,
                });
            }
        }
        Ok(out)
    }

    /// Every document with a sync state worth showing: unsent, sent, or refused last time.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT d.id, (s.acked_heads IS NULL OR s.acked_heads != d.heads), o.state, o.code, o.message
             FROM documents d LEFT JOIN sync_state s ON s.doc_id = d.id LEFT JOIN outbox o ON o.doc_id = d.id
             WHERE s.acked_heads IS NULL OR s.acked_heads != d.heads OR o.state IN ('sent', 'rejected')
             ORDER BY d.id",
        )?;
        let rows = stmt.query_map([], |r| {
            let unsent: bool = r.get(1)?;
            let state: Option<String> = r.get(2)?;
            let code = r.get::<_, Option<String>>(3)?.unwrap_or_default();
            let message = r.get::<_, Option<String>>(4)?.unwrap_or_default();
            let deferred = code == RejectCode::ServerError.code();
            let state = match (unsent, state.as_deref()) {
                (true, Some("sent")) => OutboxState::Sent,
                (true, Some("rejected")) if deferred => OutboxState::Deferred { code, message },
                (true, _) => OutboxState::Pending,
                // The server has every change after all: the deferral is over.
                (false, Some("rejected")) if deferred => OutboxState::Accepted,
                (false, Some("rejected")) => OutboxState::Rejected { code, message },
                (false, _) => OutboxState::Accepted,
            };
            Ok(OutboxEntry {
                doc_id: r.get(0)?,
                state,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Edits the server refused, newest first.
    pub fn rejected_edits(&self) -> Result<Vec<RejectedEdit>> {
        let mut out = Vec::new();
        for RejectedRow {
            doc_id,
            value,
            code,
            message,
            at_ms,
        } in self.rejected_rows()?
        {
            // Record entries are listed by `rejected_entries`.
            if value.get("entry").is_some() {
                continue;
            }
            #[derive(serde::Deserialize)]
            struct Stored {
                event: Event,
                details: Option<crate::case::CaseDetails>,
            }
            let stored: Stored = serde_json::from_value(value).map_err(|e| Error::Malformed {
                doc_id: doc_id.clone(),
                detail: format!("rejected edit: {e}"),
            })?;
            out.push(RejectedEdit {
                doc_id,
                event: stored.event,
                details: stored.details,
                code,
                message,
                at_ms,
            });
        }
        Ok(out)
    }

    /// Every row of `rejected_edits`, newest first, its JSON parsed.
    fn rejected_rows(&self) -> Result<Vec<RejectedRow>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT doc_id, event, code, message, at FROM rejected_edits ORDER BY at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RejectedRow {
                doc_id: r.get(0)?,
                value: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                code: r.get(2)?,
                message: r.get(3)?,
                at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Current heads of a stored document.
    pub fn heads(&self, doc_id: &str) -> Result<Vec<ChangeHash>> {
        let conn = self.lock();
        let bytes: Vec<u8> = conn
            .query_row("SELECT heads FROM documents WHERE id = ?1", [doc_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::NotFound(doc_id.to_owned()))?;
        Ok(decode_heads(&bytes))
    }

    /// Ids of every stored document.
    pub fn document_ids(&self) -> Result<Vec<String>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT id FROM documents ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }
}

/// Deletes a document that left the phone's scope, with the photos of it the server already
/// has (their bytes follow by cascade); photos not yet confirmed stay in the queue, visible,
/// until the server has them or the user lets them go.
fn remove_out_of_scope(tx: &rusqlite::Transaction<'_>, doc_id: &str) -> Result<()> {
    delete_doc(tx, doc_id)?;
    tx.prepare_cached("DELETE FROM photos WHERE case_id = ?1 AND state = 'uploaded'")?
        .execute([doc_id])?;
    Ok(())
}
