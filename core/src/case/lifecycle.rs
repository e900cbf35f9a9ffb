//! The fold: a case's history in, its current state out.
//!
//! Order. Events are sorted by (`seq`, `at_ms`, `id`) — causal order first (see `event.rs`),
//! then device time, then id to break ties. That key is part of each event, so the order does
//! not depend on how or when events reached a replica: the same event set always folds to the
//! same state. An event id seen twice is one event.
//!
//! Validity. Each event is checked at its point in the fold: the author's role must be allowed
//! to author it, and the case must be in a status (and at a level) where it makes sense. An
//! event that fails is kept in the history, listed in [`CaseState::flagged`] with the reason,
//! and changes nothing. Two chiefs who both accept the same case offline therefore both see one
//! acceptance applied and the other flagged, on every phone.

use super::event::{Event, EventKind};
use super::role::Role;
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashSet;

/// The administrative level that holds a case (the "721" ladder: grid, then village and town,
/// then departments, then law enforcement).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Reconcile,
    Hydrate,
)]
pub enum Level {
    /// 网格.
    Grid,
    /// 村(社区).
    Village,
    /// 镇(街道).
    Town,
    /// 职能部门 (town or district department).
    Department,
    /// 综合执法.
    LawEnforcement,
}

impl Level {
    /// Every level, from the grid up.
    pub const ALL: [Level; 5] = [
        Level::Grid,
        Level::Village,
        Level::Town,
        Level::Department,
        Level::LawEnforcement,
    ];

    /// The level with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Level::Grid => "grid",
            Level::Village => "village",
            Level::Town => "town",
            Level::Department => "department",
            Level::LawEnforcement => "law_enforcement",
        }
    }

    /// Simplified Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Level::Grid => "网格",
            Level::Village => "村(社区)",
            Level::Town => "镇(街道)",
            Level::Department => "职能部门",
            Level::LawEnforcement => "综合执法",
        }
    }

    /// The rung above on the ladder of places, where a case goes when it is escalated one
    /// step (by hand, or automatically past its time limit): grid → village → town. From the
    /// town up there is no escalation: the town dispatches to departments or law enforcement.
    pub fn next_up(self) -> Option<Level> {
        match self {
            Level::Grid => Some(Level::Village),
            Level::Village => Some(Level::Town),
            Level::Town | Level::Department | Level::LawEnforcement => None,
        }
    }

    /// Where the command centre's escalation takes a case: straight to the top of the ladder
    /// of places, the town, which dispatches onward.
    pub const ESCALATION_TOP: Level = Level::Town;

    /// The share of the "721" split this level counts toward: 7 (grid side: grid, village,
    /// town), 2 (departments) or 1 (law enforcement).
    pub fn split_721(self) -> u8 {
        match self {
            Level::Grid | Level::Village | Level::Town => 7,
            Level::Department => 2,
            Level::LawEnforcement => 1,
        }
    }
}

/// Where a case stands in the closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 待受理.
    Reported,
    /// 已受理 (at the current level, not yet in hand).
    Accepted,
    /// 已派遣 to a department or law enforcement.
    Dispatched,
    /// 处置中.
    Handling,
    /// 已办结, 待核查.
    Resolved,
    /// 已核查, 待结案.
    Verified,
    /// 已结案 (see [`Closure`] for how).
    Closed,
}

impl Status {
    /// Every status, in loop order.
    pub const ALL: [Status; 7] = [
        Status::Reported,
        Status::Accepted,
        Status::Dispatched,
        Status::Handling,
        Status::Resolved,
        Status::Verified,
        Status::Closed,
    ];

    /// Stable machine code, as stored in index rows.
    pub fn code(self) -> &'static str {
        match self {
            Status::Reported => "reported",
            Status::Accepted => "accepted",
            Status::Dispatched => "dispatched",
            Status::Handling => "handling",
            Status::Resolved => "resolved",
            Status::Verified => "verified",
            Status::Closed => "closed",
        }
    }

    /// The status with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Simplified Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Status::Reported => "待受理",
            Status::Accepted => "已受理",
            Status::Dispatched => "已派遣",
            Status::Handling => "处置中",
            Status::Resolved => "待核查",
            Status::Verified => "待结案",
            Status::Closed => "已结案",
        }
    }

    /// Whether someone still has to act to solve the case (deadlines apply).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Reported | Status::Accepted | Status::Dispatched | Status::Handling
        )
    }
}

/// How a closed case was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closure {
    /// Solved, verified, closed.
    Completed,
    /// 不予受理.
    Invalid,
    /// Duplicate of another case.
    Duplicate {
        /// The original case.
        of: String,
    },
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagReason {
    /// The author's role may not author this kind of event.
    RoleNotAllowed {
        /// The role the event claims.
        role: Role,
    },
    /// The case was in a status where this event makes no sense (e.g. a second acceptance).
    WrongStatus {
        /// The status at that point in the fold.
        status: Status,
    },
    /// The case was at a level where this event makes no sense.
    WrongLevel {
        /// The level at that point in the fold.
        level: Level,
    },
    /// The event precedes the report.
    BeforeReport,
    /// A second report in the same case.
    AlreadyReported,
    /// The event's content is malformed (see the message).
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// Another event with the same id but different content came first.
    ConflictingId,
    /// The person who resolved the case may not verify or close it ([`super::Duties`]); only
    /// ever the reason an action is refused when it is recorded, never a flag of the fold.
    SeparationOfDuties {
        /// What the rule says (Chinese, then English).
        message: String,
    },
}

impl FlagReason {
    /// Why, for people: Simplified Chinese, then English (the command centre shows it when an
    /// action is refused, the phone when one is not recorded).
    pub fn message(&self) -> String {
        match self {
            FlagReason::RoleNotAllowed { role } => format!(
                "{}无权执行此操作 / the {} role may not do this",
                role.label_zh(),
                role.code()
            ),
            FlagReason::WrongStatus { status } => format!(
                "案件现为“{}”，不能执行此操作；可能已有他人处理，请刷新后再看 / the case is {} now, so this cannot be done: someone may have acted on it, reload to see",
                status.label_zh(),
                status.code()
            ),
            FlagReason::WrongLevel { level } => format!(
                "案件现在{}，此层级不能执行此操作 / the case is at the {} level, where this cannot be done",
                level.label_zh(),
                level.code()
            ),
            FlagReason::BeforeReport => "案件尚未上报 / the case has not been reported".into(),
            FlagReason::AlreadyReported => "案件已经上报过 / the case was reported already".into(),
            FlagReason::Malformed { message } => format!("内容无效 / invalid: {message}"),
            FlagReason::ConflictingId => {
                "已有同一编号、内容不同的事件 / another event has this id with other content".into()
            }
            FlagReason::SeparationOfDuties { message } => message.clone(),
        }
    }
}

/// An event kept in the history but not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlaggedEvent {
    /// The event's id.
    pub event_id: String,
    /// Why it was not applied.
    pub reason: FlagReason,
}

/// The state of a case, computed from its history by [`fold`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    /// Where the case stands.
    pub status: Status,
    /// Set when `status` is [`Status::Closed`].
    pub closure: Option<Closure>,
    /// The level that holds the case now.
    pub level: Level,
    /// Who must act: `user:<id>`, `dept:<code>` or `enf:<code>`; none while it waits at a level.
    pub assignee: Option<String>,
    /// Deadline, UTC ms.
    pub due_at_ms: Option<i64>,
    /// The level that solved the case, for the 721 statistics; cleared if verification fails.
    pub solved_level: Option<Level>,
    /// User id of the reporter.
    pub reporter: Option<String>,
    /// Device time of the report.
    pub reported_at_ms: Option<i64>,
    /// Latest device time of any event.
    pub updated_at_ms: i64,
    /// Device time of the closing event.
    pub closed_at_ms: Option<i64>,
    /// Photo hashes: those of the report, then those added, without repeats.
    pub photos: Vec<String>,
    /// Number of comments.
    pub comments: u32,
    /// How often verification failed and the case reopened.
    pub reopened: u32,
    /// Events kept but not applied.
    pub flagged: Vec<FlaggedEvent>,
    /// The level a dispatched case returns to on 退单.
    dispatched_from: Option<Level>,
}

impl CaseState {
    fn new() -> Self {
        CaseState {
            status: Status::Reported,
            closure: None,
            level: Level::Grid,
            assignee: None,
            due_at_ms: None,
            solved_level: None,
            reporter: None,
            reported_at_ms: None,
            updated_at_ms: 0,
            closed_at_ms: None,
            photos: Vec::new(),
            comments: 0,
            reopened: 0,
            flagged: Vec::new(),
            dispatched_from: None,
        }
    }

    fn add_photo(&mut self, hash: &str) {
        if !self.photos.iter().any(|p| p == hash) {
            self.photos.push(hash.to_owned());
        }
    }

    /// Applies one event, or says why it cannot be applied.
    fn apply(&mut self, event: &Event) -> Result<(), FlagReason> {
        if let Err(e) = event.validate() {
            return Err(FlagReason::Malformed {
                message: e.to_string(),
            });
        }
        if !event.role.may_author(&event.kind) {
            return Err(FlagReason::RoleNotAllowed { role: event.role });
        }
        let reported = self.reporter.is_some();
        match &event.kind {
            EventKind::Reported { .. } if reported => return Err(FlagReason::AlreadyReported),
            EventKind::Reported { .. } => {}
            _ if !reported => return Err(FlagReason::BeforeReport),
            _ => {}
        }
        let status = self.status;
        let wrong_status = || Err(FlagReason::WrongStatus { status });
        let at = |statuses: &[Status]| statuses.contains(&status);
        use Status::*;
        match &event.kind {
            EventKind::Reported { photos } => {
                self.reporter = Some(event.actor.clone());
                self.reported_at_ms = Some(event.at_ms);
                photos.iter().for_each(|p| self.add_photo(p));
            }
            EventKind::Accepted {
                assignee,
                due_at_ms,
            } => {
                if !at(&[Reported]) {
                    return wrong_status();
                }
                self.status = Accepted;
                self.assignee = Some(format!(
                    "user:{}",
                    assignee.as_deref().unwrap_or(&event.actor)
                ));
                self.due_at_ms = *due_at_ms;
            }
            EventKind::RejectedInvalid { .. } | EventKind::DuplicateOf { .. } => {
                if !at(&[Reported, Accepted]) {
                    return wrong_status();
                }
                self.close(
                    event,
                    match &event.kind {
                        EventKind::DuplicateOf { case_id } => Closure::Duplicate {
                            of: case_id.clone(),
                        },
                        _ => Closure::Invalid,
                    },
                );
            }
            EventKind::ResolvedInGrid { .. } => {
                if self.level != Level::Grid {
                    return Err(FlagReason::WrongLevel { level: self.level });
                }
                if !at(&[Reported, Accepted, Handling]) {
                    return wrong_status();
                }
                self.status = Resolved;
                self.solved_level = Some(Level::Grid);
            }
            EventKind::Escalated { to, .. } => {
                if !at(&[Reported, Accepted, Handling]) {
                    return wrong_status();
                }
                if *to <= self.level || self.level.next_up().is_none() {
                    return Err(FlagReason::WrongLevel { level: self.level });
                }
                self.status = Accepted;
                self.level = *to;
                self.assignee = None;
                self.due_at_ms = None;
            }
            EventKind::Dispatched {
                target, due_at_ms, ..
            } => {
                if !at(&[Accepted, Handling]) {
                    return wrong_status();
                }
                if self.level > Level::Town {
                    return Err(FlagReason::WrongLevel { level: self.level });
                }
                self.dispatched_from = Some(self.level);
                self.status = Dispatched;
                self.level = target.level();
                self.assignee = Some(target.assignee_key());
                self.due_at_ms = *due_at_ms;
            }
            EventKind::Returned { .. } => {
                if !at(&[Dispatched, Handling]) {
                    return wrong_status();
                }
                let Some(back_to) = self.dispatched_from.take() else {
                    return Err(FlagReason::WrongLevel { level: self.level });
                };
                self.status = Accepted;
                self.level = back_to;
                self.assignee = None;
                self.due_at_ms = None;
            }
            EventKind::Handling { .. } => {
                if !at(&[Accepted, Dispatched, Handling]) {
                    return wrong_status();
                }
                self.status = Handling;
            }
            EventKind::Resolved { .. } => {
                if !at(&[Accepted, Dispatched, Handling]) {
                    return wrong_status();
                }
                self.status = Resolved;
                self.solved_level = Some(self.level);
            }
            EventKind::Verified { .. } => {
                if !at(&[Resolved]) {
                    return wrong_status();
                }
                self.status = Verified;
            }
            EventKind::VerificationFailed { .. } => {
                if !at(&[Resolved, Verified]) {
                    return wrong_status();
                }
                self.status = Handling;
                self.solved_level = None;
                self.reopened += 1;
            }
            EventKind::Closed { .. } => {
                if !at(&[Verified]) {
                    return wrong_status();
                }
                self.close(event, Closure::Completed);
            }
            EventKind::Comment { .. } => self.comments += 1,
            EventKind::PhotoAdded { hash } => self.add_photo(hash),
        }
        Ok(())
    }

    fn close(&mut self, event: &Event, closure: Closure) {
        self.status = Status::Closed;
        self.closure = Some(closure);
        self.closed_at_ms = Some(event.at_ms);
        self.due_at_ms = None;
    }
}

/// The fold order: causal (`seq`), then device time, then id; full ties (only possible for two
/// different events claiming one id) fall back to the remaining fields so the order is total.
fn fold_order(a: &Event, b: &Event) -> Ordering {
    (a.seq, a.at_ms, &a.id, &a.actor, &a.device, a.kind.code())
        .cmp(&(b.seq, b.at_ms, &b.id, &b.actor, &b.device, b.kind.code()))
        .then_with(|| {
            format!("{:?}{:?}{:?}", a.kind, a.role, a.location)
                .cmp(&format!("{:?}{:?}{:?}", b.kind, b.role, b.location))
        })
}

/// Sorts `events` into fold order, drops exact duplicates, and computes the state.
///
/// Returns the deduplicated history in fold order and the state. The result depends only on
/// the *set* of events given, never on their order or on repeats.
pub fn fold(events: impl IntoIterator<Item = Event>) -> (Vec<Event>, CaseState) {
    let mut events: Vec<Event> = events.into_iter().collect();
    events.sort_by(fold_order);
    events.dedup();
    let mut state = CaseState::new();
    let mut seen: HashSet<&str> = HashSet::with_capacity(events.len());
    for event in &events {
        state.updated_at_ms = state.updated_at_ms.max(event.at_ms);
        if !seen.insert(event.id.as_str()) {
            state.flagged.push(FlaggedEvent {
                event_id: event.id.clone(),
                reason: FlagReason::ConflictingId,
            });
            continue;
        }
        if let Err(reason) = state.apply(event) {
            state.flagged.push(FlaggedEvent {
                event_id: event.id.clone(),
                reason,
            });
        }
    }
    (events, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn is_machine_code(code: &str) -> bool {
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }

    fn is_chinese_label(label: &str) -> bool {
        label
            .chars()
            .any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
            && !label.chars().any(|c| c.is_ascii_alphanumeric())
    }

    /// Every value has a distinct machine code that parses back, and its own Chinese label.
    fn codes_and_labels_hold<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        code: fn(T) -> &'static str,
        from_code: fn(&str) -> Option<T>,
        label: fn(T) -> &'static str,
    ) {
        let (mut codes, mut labels) = (BTreeSet::new(), BTreeSet::new());
        for &value in all {
            let code = code(value);
            assert!(is_machine_code(code), "{code:?} is not a machine code");
            assert!(codes.insert(code), "{code} is used twice");
            assert_eq!(from_code(code), Some(value));
            let label = label(value);
            assert!(is_chinese_label(label), "{label:?} is not a Chinese label");
            assert!(labels.insert(label), "{label} is used twice");
        }
    }

    #[test]
    fn every_level_has_a_distinct_code_that_parses_back_and_its_own_label() {
        codes_and_labels_hold(&Level::ALL, Level::code, Level::from_code, Level::label_zh);
        assert_eq!(
            Level::from_code("law_enforcement"),
            Some(Level::LawEnforcement)
        );
        assert_eq!(Level::from_code(""), None);
        assert_eq!(Level::from_code("Grid"), None);
        assert_eq!(Level::from_code("district"), None);
        assert_eq!(Level::Town.label_zh(), "镇(街道)");
    }

    #[test]
    fn every_status_has_a_distinct_code_that_parses_back_and_its_own_label() {
        codes_and_labels_hold(
            &Status::ALL,
            Status::code,
            Status::from_code,
            Status::label_zh,
        );
        assert_eq!(Status::from_code("handling"), Some(Status::Handling));
        assert_eq!(Status::from_code(""), None);
        assert_eq!(Status::from_code("Closed"), None);
        assert_eq!(Status::Closed.label_zh(), "已结案");
    }

    #[test]
    fn the_721_split_counts_grid_village_and_town_as_seven_departments_two_enforcement_one() {
        let split: Vec<u8> = Level::ALL.into_iter().map(Level::split_721).collect();
        assert_eq!(split, [7, 7, 7, 2, 1]);
    }

    #[test]
    fn a_case_is_open_until_it_is_resolved() {
        let open: Vec<Status> = Status::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(
            open,
            [
                Status::Reported,
                Status::Accepted,
                Status::Dispatched,
                Status::Handling
            ]
        );
    }

    #[test]
    fn escalation_climbs_one_rung_of_places_and_stops_at_the_town() {
        let next: Vec<Option<Level>> = Level::ALL.into_iter().map(Level::next_up).collect();
        assert_eq!(
            next,
            [Some(Level::Village), Some(Level::Town), None, None, None]
        );
        assert_eq!(Level::ESCALATION_TOP, Level::Town);
        assert!(
            Level::ALL
                .into_iter()
                .all(|l| l.next_up().is_none_or(|up| up > l))
        );
    }
}
