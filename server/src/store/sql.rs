//! What the SQL backends share: how heads, scopes and score reasons are written in rows, the
//! columns of a case row, and the open statuses as a SQL predicate.

use super::AuditEntry;
use crate::state::now_ms;
use gridlink_core::case::{ScoreReason, Status};
use gridlink_core::sync::scope::ScopeKey;
use gridlink_core::sync::wire::Hash;
use std::collections::BTreeSet;

pub(super) fn encode_heads(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort();
    sorted.iter().flat_map(|h| h.0).collect()
}

pub(super) fn decode_heads(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(Hash))
        .collect()
}

pub(super) fn parse_scopes(rows: impl IntoIterator<Item = String>) -> BTreeSet<ScopeKey> {
    // Keys are written by this server from parsed values; one that does not parse grants nothing.
    rows.into_iter().filter_map(|s| s.parse().ok()).collect()
}

/// Statuses of a case still to be solved (what can be overdue), as SQL: `Status::is_open`
/// written out, in the order of `Status::ALL` (the text of the partial index `cases_open_due`,
/// which SQLite uses only for a query naming the same predicate).
pub(super) struct OpenStatuses;

impl std::fmt::Display for OpenStatuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("status IN (")?;
        let open = Status::ALL.into_iter().filter(|s| s.is_open());
        for (i, status) in open.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "'{}'", status.code())?;
        }
        f.write_str(")")
    }
}

pub(super) const OPEN_STATUSES: OpenStatuses = OpenStatuses;

/// The columns of a case row, in the order `case_row` reads them.
pub(super) const CASE_COLUMNS: &str = "id, grid_id, village_id, town_id, category, source, status, level, \
    assignee, reporter, title, reported_at, updated_at, due_at, closed_at, solved_level, flagged, events, lat, lon, address_id, description";

/// How a score line's reason is written.
pub(super) fn reason_code(reason: ScoreReason) -> &'static str {
    match reason {
        ScoreReason::Solved => "solved",
        ScoreReason::OnTime => "on_time",
        ScoreReason::Late => "late",
        ScoreReason::Returned => "returned",
        ScoreReason::Reopened => "reopened",
        ScoreReason::Reported => "reported",
    }
}

pub(super) fn admin(by: &str, action: &str, subject: &str, detail: String) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: by.to_owned(),
        device: None,
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail,
    }
}
