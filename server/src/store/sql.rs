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
    assignee, reporter, title, reported_at, updated_at, due_at, closed_at, solved_level, flagged, events, lat, lon, address_id, description, warn_at";

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

/// A pull page as both SQL backends read it: scope after scope, each scope's change rows in
/// log order, until the byte budget runs out; then the remaining scopes keep their positions
/// (so a document's changes never arrive ahead of their dependencies from another scope's
/// stream).
/// A change row of a page: its sequence number and bytes.
type SeqChunk = (i64, Vec<u8>);

pub(super) struct PageReader<'a> {
    exclude_device: &'a str,
    max_bytes: u64,
    page: super::PullPage,
    seen: std::collections::HashSet<i64>,
    by_doc: std::collections::HashMap<String, usize>,
    /// Per document, in first-seen order: its change rows as (sequence number, bytes).
    chunks: Vec<(String, Vec<SeqChunk>)>,
    size: u64,
}

impl<'a> PageReader<'a> {
    pub(super) fn new(exclude_device: &'a str, max_bytes: u64) -> Self {
        PageReader {
            exclude_device,
            max_bytes,
            page: super::PullPage::default(),
            seen: Default::default(),
            by_doc: Default::default(),
            chunks: Vec::new(),
            size: 0,
        }
    }

    /// The budget ran out: scopes not read yet keep their positions.
    pub(super) fn is_full(&self) -> bool {
        self.page.more
    }

    /// One change row of a scope read from `start`. `false` when the budget ran out before
    /// it (the row is not taken and the scope's position stays before it).
    pub(super) fn take(
        &mut self,
        start: u64,
        seq: i64,
        doc_id: String,
        device: &str,
        bytes: Vec<u8>,
    ) -> bool {
        if self.size >= self.max_bytes && self.size > 0 {
            self.page.more = true;
            return false;
        }
        // The phone holds its own changes, except when it reads a key from the start (first
        // sync, a grant given back): then it gets everything.
        if (start > 0 && device == self.exclude_device) || !self.seen.insert(seq) {
            return true;
        }
        self.size += bytes.len() as u64;
        let slot = match self.by_doc.get(&doc_id) {
            Some(slot) => *slot,
            None => {
                self.by_doc.insert(doc_id.clone(), self.chunks.len());
                self.chunks.push((doc_id, Vec::new()));
                self.chunks.len() - 1
            }
        };
        if let Some((_, list)) = self.chunks.get_mut(slot) {
            list.push((seq, bytes));
        }
        true
    }

    /// The position a scope reached.
    pub(super) fn reached(&mut self, key: &ScopeKey, pos: i64) {
        self.page
            .positions
            .push((key.clone(), u64::try_from(pos).unwrap_or(0)));
    }

    /// The documents of the page, in first-seen order.
    pub(super) fn doc_ids(&self) -> impl Iterator<Item = &str> {
        self.chunks.iter().map(|(id, _)| id.as_str())
    }

    /// The page, each document's changes in sequence order with its stored heads.
    pub(super) fn finish(
        self,
        heads: &std::collections::HashMap<String, Vec<u8>>,
    ) -> super::PullPage {
        let mut page = self.page;
        for (doc_id, mut list) in self.chunks {
            list.sort_by_key(|(seq, _)| *seq);
            page.docs.push(gridlink_core::sync::wire::PulledDoc {
                heads: decode_heads(heads.get(&doc_id).map(Vec::as_slice).unwrap_or_default()),
                bytes: list.into_iter().flat_map(|(_, b)| b).collect(),
                doc_id,
            });
        }
        page
    }
}
