//! Cases the server opens on someone's behalf: a citizen's 随手拍 report, an Open311
//! request. One path for all of them: the case is judged by the rules a phone's new case is
//! (the source must be the one the reporter's role may give, `Role::may_report_as`; the text
//! and fields as `CaseDoc::create` checks them), written under the server's actor, and stored
//! on the merge thread, where a second copy of the same submission finds the first.

use crate::state::{AppState, SERVER_ACTOR_PREFIX};
use crate::store::{AuditEntry, StoreError};
use gridlink_core::case::{CaseDetails, Stamp};
use gridlink_core::doc::CaseDoc;

/// A case to open.
pub(crate) struct Intake {
    /// What was reported.
    pub details: CaseDetails,
    /// Its photos (already stored).
    pub photos: Vec<String>,
    /// Who reported it, as what, from where, when.
    pub stamp: Stamp,
    /// The device the change log names.
    pub device_id: String,
    /// The audit entry written with it.
    pub audit: AuditEntry,
}

/// What opening did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// A new case.
    Created,
    /// The same reporter's case with this id was already there (a retried submission).
    Already,
    /// The id belongs to another reporter's case: nothing was written.
    Taken,
}

/// Why a case could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    /// The case breaks a rule (its source, a field, its text).
    #[error("{0}")]
    Invalid(String),
    /// Storage failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens a case as described in the module docs.
pub(crate) fn open_case(state: &AppState, intake: Intake) -> Result<Opened, IntakeError> {
    let Intake {
        details,
        photos,
        stamp,
        device_id,
        audit,
    } = intake;
    stamp
        .role
        .check_report_source(details.source)
        .map_err(IntakeError::Invalid)?;
    let reporter = stamp.actor.clone();
    let actor = gridlink_core::sync::device_actor(&SERVER_ACTOR_PREFIX, 0);
    let (doc, _) = CaseDoc::create(details, photos, stamp, actor)
        .map_err(|e| IntakeError::Invalid(e.to_string()))?;
    let id = doc.id().to_owned();
    let opened = state.with_merger(move |m| -> Result<Opened, StoreError> {
        if let Some(row) = m.store().case_row(&id)? {
            return Ok(if row.reporter.as_deref() == Some(reporter.as_str()) {
                Opened::Already
            } else {
                Opened::Taken
            });
        }
        m.import_from(vec![doc], &device_id, vec![audit])
            .map(|()| Opened::Created)
    })??;
    Ok(opened)
}
