//! Writes the server makes on someone's behalf, by one path: a command-centre action or one
//! recorded through the actions API, a published checklist template, the platform's
//! automatic escalation, a citizen's 随手拍 report and an Open311 request.
//!
//! Each is written with gridlink-core's document API, as a phone would write it, under a
//! server-held Automerge actor ([`Author`]), and handed to the merge pipeline like a phone's
//! push ([`submit`]): there it is judged by the same rules (every operation of the change,
//! the author's role and scopes, or for the intake the rule of a reporter's new case),
//! batched with the phones' pushes, committed against the heads it started from, and
//! audited. Nothing the server writes for someone takes a shortcut to the store; only bulk
//! imports of whole documents the server made itself do (`Merger::import` for the fixture
//! and demo cases, `Merger::import_records` for the register of standard addresses).

use crate::error::ApiError;
use crate::merge::{Origin, PushOutcome};
use crate::state::{AppState, SERVER_ACTOR_PREFIX, now_ms};
use crate::store::{DeviceAuth, StoreError};
use axum::http::StatusCode;
use gridlink_core::Error as CoreError;
use gridlink_core::case::{Case, CaseDetails, Event, EventKind, Stamp};
use gridlink_core::doc::{CaseDoc, DocKind};
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::wire::{PushDoc, RejectCode, Rejection};
use std::collections::BTreeSet;

/// The epoch of the actor the server records a device's actions under, which a phone never
/// reaches.
pub const SERVER_EPOCH: u32 = u32::MAX;

/// Whom the server writes for, and under which Automerge actor.
#[derive(Debug, Clone)]
pub struct Author {
    /// Who the change is judged as.
    pub pusher: Pusher,
    /// The actor prefix its changes must carry.
    prefix: Vec<u8>,
    /// The actor its changes are written under.
    actor: automerge::ActorId,
}

impl Author {
    /// A device's user (the command centre's pages, the actions API, an operator publishing a
    /// template): written under the device's prefix with [`SERVER_EPOCH`], judged as the
    /// device's own push would be.
    pub fn device(state: &AppState, device: &DeviceAuth) -> Result<Author, ApiError> {
        Author::for_pusher(state.pusher(device)?, &device.actor_prefix)
    }

    /// As [`device`](Self::device), for a pusher already worked out.
    pub fn for_pusher(pusher: Pusher, prefix: &[u8]) -> Result<Author, ApiError> {
        let whole: [u8; gridlink_core::sync::ACTOR_PREFIX_LEN] = prefix
            .try_into()
            .map_err(|_| ApiError::Internal("bad actor prefix".into()))?;
        Ok(Author {
            pusher,
            prefix: prefix.to_vec(),
            actor: gridlink_core::sync::device_actor(&whole, SERVER_EPOCH),
        })
    }

    /// The platform itself (role system, the pseudo-device `server`): automatic escalation,
    /// templates the server publishes.
    pub fn platform() -> Author {
        Author {
            pusher: crate::records::platform_pusher(),
            prefix: SERVER_ACTOR_PREFIX.to_vec(),
            actor: gridlink_core::sync::device_actor(&SERVER_ACTOR_PREFIX, 0),
        }
    }

    /// A reporter outside the sync (a citizen, an Open311 client) whose reports arrive from
    /// the stamp's device: no grants; what it may write is the intake's rule. Its actor is
    /// the platform's: the intake only ever creates documents (sequence 1 of a new one), so
    /// it never races the platform's serialised writes to an existing one.
    fn reporter(stamp: &Stamp) -> Author {
        Author {
            pusher: Pusher {
                user_id: stamp.actor.clone(),
                role: stamp.role,
                device_id: stamp.device.clone(),
                scopes: BTreeSet::new(),
            },
            prefix: SERVER_ACTOR_PREFIX.to_vec(),
            actor: gridlink_core::sync::device_actor(&SERVER_ACTOR_PREFIX, 0),
        }
    }

    /// The actor the author's changes are written under.
    pub fn actor(&self) -> automerge::ActorId {
        self.actor.clone()
    }

    /// Who, as what, from which device, at `at_ms`: the stamp of what the author records.
    pub fn stamp(&self, at_ms: i64) -> Stamp {
        Stamp {
            actor: self.pusher.user_id.clone(),
            role: self.pusher.role,
            device: self.pusher.device_id.clone(),
            at_ms,
            location: None,
        }
    }
}

/// Why a write on someone's behalf did not happen. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No such case, or the author may not see it.
    #[error("没有这个案件，或无权查看 / no such case, or not yours to see")]
    NotFound,
    /// A case is reported once, by its reporter.
    #[error("案件已上报 / the case is already reported")]
    AlreadyReported,
    /// Events are recorded on cases only; records are written on the phone and synced.
    #[error(
        "这不是案件：走访、地址和调解档案只能在手机上记录并同步 / not a case: visits, addresses and mediation files are recorded on the phone and synced"
    )]
    NotACase,
    /// The case's state or the author's role does not allow it now (the fold's answer).
    #[error("{0}")]
    NotAllowed(String),
    /// What was to be written is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The merge refused it.
    #[error("{} ({})", .0.message, .0.code.code())]
    Refused(Rejection),
    /// The server's own copy does not load.
    #[error("服务器上的文档无法读取 / the server's copy does not load: {0}")]
    Broken(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        let message = e.to_string();
        match e {
            WriteError::NotFound => ApiError::refused(StatusCode::NOT_FOUND, "not_found", message),
            WriteError::AlreadyReported => ApiError::BadRequest(message),
            WriteError::NotACase => {
                ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "not_a_case", message)
            }
            WriteError::NotAllowed(_) => {
                ApiError::refused(StatusCode::CONFLICT, "not_allowed", message)
            }
            WriteError::Invalid(_) => {
                ApiError::refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            WriteError::Refused(_) => ApiError::refused(StatusCode::FORBIDDEN, "refused", message),
            WriteError::Broken(_) => ApiError::Internal(message),
            WriteError::Store(e) => e.into(),
        }
    }
}

/// Hands changes the server wrote for `author` to the merge pipeline and waits for the
/// commit: the one way in for every write in this module's list. A refusal is an error.
pub fn submit(
    state: &AppState,
    author: &Author,
    docs: Vec<PushDoc>,
    origin: Origin,
) -> Result<PushOutcome, WriteError> {
    let outcome = state.push(&author.pusher, &author.prefix, docs, now_ms(), origin)?;
    match outcome.rejections.into_iter().next() {
        // The server's own trouble (its copy does not load, its storage failed): nothing is
        // wrong with the write, and whoever asked for it may retry.
        Some(rejection) if rejection.code == RejectCode::ServerError => Err(WriteError::Store(
            StoreError::Unavailable(rejection.message),
        )),
        Some(rejection) => Err(WriteError::Refused(Rejection {
            server_doc: None,
            ..rejection
        })),
        None => Ok(PushOutcome {
            rejections: Vec::new(),
            ..outcome
        }),
    }
}

/// Records an event on a case as `author` at `at_ms`, exactly as a phone would (the same
/// validation, role table and fold), and merges it. Returns the event and the case as it now
/// folds.
pub fn record(
    state: &AppState,
    author: &Author,
    case_id: &str,
    kind: EventKind,
    at_ms: i64,
) -> Result<(Event, Case), WriteError> {
    if matches!(kind, EventKind::Reported { .. }) {
        return Err(WriteError::AlreadyReported);
    }
    if DocKind::of(case_id) != DocKind::Case {
        return Err(WriteError::NotACase);
    }
    // One recorded action of an author at a time: each loads the case as committed by the
    // one before, so their changes never share a sequence number.
    let _serial = state.action_lock(&author.pusher.device_id);
    let stored = state
        .store()
        .load_doc(case_id)?
        .ok_or(WriteError::NotFound)?;
    if !author.pusher.may_read(&stored.scopes) {
        return Err(WriteError::NotFound);
    }
    let mut doc = CaseDoc::load(case_id, &stored.bytes)
        .map_err(|e| WriteError::Broken(format!("{case_id}: {e}")))?;
    doc.set_actor(author.actor());
    let before = doc.heads();
    let duties = &state.rules().duties;
    let (event, case) = doc
        .record_under(kind, author.stamp(at_ms), duties)
        .map_err(|e| match e {
            CoreError::NotAllowed { reason } => WriteError::NotAllowed(reason.message()),
            CoreError::Invalid(e) => WriteError::Invalid(e.to_string()),
            other => WriteError::Broken(other.to_string()),
        })?;
    let changes = doc.save_after(&before);
    submit(
        state,
        author,
        vec![PushDoc {
            doc_id: case_id.to_owned(),
            changes,
        }],
        Origin::Recorded,
    )?;
    Ok((event, case))
}

/// A case to open for a reporter outside the sync.
pub struct Intake {
    /// What was reported.
    pub details: CaseDetails,
    /// Its photos (already stored).
    pub photos: Vec<String>,
    /// Who reported it, as what, from which device, when.
    pub stamp: Stamp,
    /// The action it is audited under (`citizen_report`, `open311_request`).
    pub audit_action: &'static str,
}

/// What opening did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new case.
    Created,
    /// The same reporter's case with this id was already there (a retried submission).
    Already,
    /// The id belongs to another reporter's case: nothing was written.
    Taken,
}

/// Opens a case for its reporter: checked as `CaseDoc::create` checks every new case (the
/// fields, the text), written under the server's actor, and judged in the merge pipeline by
/// the intake's rule (a new case only, from the source the reporter's role may give). A
/// submission whose id exists already is answered from the stored case: the same reporter's
/// (a retry) or another's.
pub fn open(state: &AppState, intake: Intake) -> Result<Opened, WriteError> {
    let Intake {
        details,
        photos,
        stamp,
        audit_action,
    } = intake;
    stamp
        .role
        .check_report_source(details.source)
        .map_err(WriteError::Invalid)?;
    let author = Author::reporter(&stamp);
    let known = |state: &AppState, id: &str| -> Result<Option<Opened>, WriteError> {
        Ok(state.store().case_row(id)?.map(|row| {
            if row.reporter.as_deref() == Some(author.pusher.user_id.as_str()) {
                Opened::Already
            } else {
                Opened::Taken
            }
        }))
    };
    if let Some(opened) = known(state, &details.id)? {
        return Ok(opened);
    }
    let (mut doc, _) = CaseDoc::create(details, photos, stamp, author.actor())
        .map_err(|e| WriteError::Invalid(e.to_string()))?;
    let id = doc.id().to_owned();
    let pushed = submit(
        state,
        &author,
        vec![PushDoc {
            doc_id: id.clone(),
            changes: doc.save(),
        }],
        Origin::Intake(audit_action),
    );
    match pushed {
        // Nothing added: the very same submission, merged already.
        Ok(outcome) if outcome.events_added == 0 => Ok(Opened::Already),
        Ok(_) => Ok(Opened::Created),
        // Another submission with this id got in first.
        Err(WriteError::Refused(refused)) => match known(state, &id)? {
            Some(opened) => Ok(opened),
            None => Err(WriteError::Refused(refused)),
        },
        Err(e) => Err(e),
    }
}
