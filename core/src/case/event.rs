//! The events of a case's history (全程留痕): each one says what happened, who did it in
//! which role, on which device, when by that device's clock, and optionally where.
//!
//! Events are only ever appended. `seq` is a Lamport counter: a device gives a new event one
//! more than the highest `seq` it has seen, so an event always sorts after every event its
//! author could see, whatever the devices' clocks say.

use super::{Location, MAX_TEXT_CHARS, lifecycle::Level, role::Role};
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// Where a dispatched case goes (派遣).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
pub enum DispatchTarget {
    /// A town or district department (环保, 城管, 消防, 公安 …).
    Department {
        /// Department code, e.g. `dept-env`.
        code: String,
        /// Display name, e.g. 区生态环境局.
        name: String,
    },
    /// A comprehensive law-enforcement unit (综合执法).
    LawEnforcement {
        /// Unit code, e.g. `enf-songling`.
        code: String,
        /// Display name, e.g. 松陵街道综合执法局.
        name: String,
    },
}

impl DispatchTarget {
    /// The assignee key used in index rows: `dept:<code>` or `enf:<code>`.
    pub fn assignee_key(&self) -> String {
        match self {
            DispatchTarget::Department { code, .. } => format!("dept:{code}"),
            DispatchTarget::LawEnforcement { code, .. } => format!("enf:{code}"),
        }
    }

    /// The 721 level a case reaches when dispatched here.
    pub fn level(&self) -> Level {
        match self {
            DispatchTarget::Department { .. } => Level::Department,
            DispatchTarget::LawEnforcement { .. } => Level::LawEnforcement,
        }
    }
}

/// What happened. Each variant is one step of the closed loop (全流程大闭环).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub enum EventKind {
    /// 上报: the case was opened, with the photos taken at the time (SHA-256 hex).
    Reported {
        /// Photo hashes.
        photos: Vec<String>,
    },
    /// 受理: a chief or the command centre took the case on, optionally naming who handles it.
    Accepted {
        /// User id of the handler; the acceptor when absent.
        assignee: Option<String>,
        /// Deadline, UTC ms.
        due_at_ms: Option<i64>,
    },
    /// 不予受理: not a valid case; closes it.
    RejectedInvalid {
        /// Why, for the reporter.
        reason: String,
    },
    /// 重复: the same problem as another case; closes it.
    DuplicateOf {
        /// The case this one duplicates.
        case_id: String,
    },
    /// 网格内办结: solved inside the grid.
    ResolvedInGrid {
        /// What was done.
        note: String,
    },
    /// 上报上级: moved up the administrative ladder (grid → village → town).
    Escalated {
        /// The level it goes to: village or town.
        to: Level,
        /// Why the lower level could not solve it.
        reason: String,
    },
    /// 派遣: sent to a department or to law enforcement.
    Dispatched {
        /// Who receives it.
        target: DispatchTarget,
        /// Deadline, UTC ms.
        due_at_ms: Option<i64>,
        /// Instructions.
        note: String,
    },
    /// 退单: the receiving department sends it back as not theirs.
    Returned {
        /// Why.
        reason: String,
    },
    /// 处置中: work has started or progressed.
    Handling {
        /// Progress note.
        note: String,
    },
    /// 办结: solved at the level that holds it.
    Resolved {
        /// What was done.
        note: String,
    },
    /// 核查通过: the reporting side confirms the fix.
    Verified {
        /// Verification note.
        note: String,
    },
    /// 核查不通过: the fix did not hold; the case reopens at the same level.
    VerificationFailed {
        /// What is still wrong.
        reason: String,
    },
    /// 结案.
    Closed {
        /// Closing note, shown to the reporter.
        note: String,
    },
    /// A remark; changes no state.
    Comment {
        /// The remark.
        text: String,
    },
    /// A photo added after the report (SHA-256 hex of the processed JPEG).
    PhotoAdded {
        /// Photo hash.
        hash: String,
    },
}

impl EventKind {
    /// Stable machine code of the kind.
    pub fn code(&self) -> &'static str {
        match self {
            EventKind::Reported { .. } => "reported",
            EventKind::Accepted { .. } => "accepted",
            EventKind::RejectedInvalid { .. } => "rejected_invalid",
            EventKind::DuplicateOf { .. } => "duplicate_of",
            EventKind::ResolvedInGrid { .. } => "resolved_in_grid",
            EventKind::Escalated { .. } => "escalated",
            EventKind::Dispatched { .. } => "dispatched",
            EventKind::Returned { .. } => "returned",
            EventKind::Handling { .. } => "handling",
            EventKind::Resolved { .. } => "resolved",
            EventKind::Verified { .. } => "verified",
            EventKind::VerificationFailed { .. } => "verification_failed",
            EventKind::Closed { .. } => "closed",
            EventKind::Comment { .. } => "comment",
            EventKind::PhotoAdded { .. } => "photo_added",
        }
    }

    /// What the step is called, zh-CN then English ("受理 / accepted"), for lists of
    /// refused edits and timelines.
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::Reported { .. } => "上报 / reported",
            EventKind::Accepted { .. } => "受理 / accepted",
            EventKind::RejectedInvalid { .. } => "不予受理 / rejected as invalid",
            EventKind::DuplicateOf { .. } => "重复案件 / duplicate",
            EventKind::ResolvedInGrid { .. } => "网格内解决 / resolved in the grid",
            EventKind::Escalated { .. } => "上报上级 / escalated",
            EventKind::Dispatched { .. } => "派遣 / dispatched",
            EventKind::Returned { .. } => "退回 / returned",
            EventKind::Handling { .. } => "处置中 / handling",
            EventKind::Resolved { .. } => "处置完成 / resolved",
            EventKind::Verified { .. } => "核查通过 / verified",
            EventKind::VerificationFailed { .. } => "核查未通过 / verification failed",
            EventKind::Closed { .. } => "结案 / closed",
            EventKind::Comment { .. } => "评论 / comment",
            EventKind::PhotoAdded { .. } => "添加照片 / photo added",
        }
    }

    /// Checks the content a person gave: required reasons present, texts within limits,
    /// hashes and ids well formed.
    pub fn validate(&self) -> Result<(), EventError> {
        match self {
            EventKind::Reported { photos } => {
                if photos.len() > 9 {
                    return Err(EventError::Invalid(
                        "一次最多 9 张照片 / at most 9 photos per report".into(),
                    ));
                }
                photos.iter().try_for_each(|h| check_hash(h))
            }
            EventKind::Accepted {
                assignee,
                due_at_ms,
            } => {
                if assignee.as_deref().is_some_and(|a| a.trim().is_empty()) {
                    return Err(EventError::Invalid(
                        "处置人为空 / the assignee is empty".into(),
                    ));
                }
                check_due(*due_at_ms)
            }
            EventKind::RejectedInvalid { reason }
            | EventKind::Returned { reason }
            | EventKind::VerificationFailed { reason } => check_text(reason, true),
            EventKind::Escalated { to, reason } => {
                if !matches!(to, Level::Village | Level::Town) {
                    return Err(EventError::Invalid(
                        "只能上报到村(社区)或镇(街道) / escalation goes to the village or the town"
                            .into(),
                    ));
                }
                check_text(reason, true)
            }
            EventKind::DuplicateOf { case_id } => {
                uuid::Uuid::parse_str(case_id).map(|_| ()).map_err(|_| {
                    EventError::Invalid(format!("重复案件编号无效 / not a case id: {case_id:?}"))
                })
            }
            EventKind::Dispatched {
                target,
                due_at_ms,
                note,
            } => {
                let (DispatchTarget::Department { code, name }
                | DispatchTarget::LawEnforcement { code, name }) = target;
                if code.trim().is_empty() || name.trim().is_empty() {
                    return Err(EventError::Invalid(
                        "派遣对象不完整 / the dispatch target is incomplete".into(),
                    ));
                }
                check_due(*due_at_ms)?;
                check_text(note, false)
            }
            EventKind::ResolvedInGrid { note }
            | EventKind::Handling { note }
            | EventKind::Resolved { note }
            | EventKind::Verified { note }
            | EventKind::Closed { note } => check_text(note, false),
            EventKind::Comment { text } => check_text(text, true),
            EventKind::PhotoAdded { hash } => check_hash(hash),
        }
    }
}

/// Who acts, where and when: the stamp every new event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// User id.
    pub actor: String,
    /// The role the user acts in.
    pub role: Role,
    /// Device id.
    pub device: String,
    /// Device time, UTC milliseconds.
    pub at_ms: i64,
    /// Where the device was, if known.
    pub location: Option<Location>,
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Event {
    /// Unique id (UUID) of the event; a duplicate delivery of the same event is one event.
    pub id: String,
    /// Lamport counter (see module docs).
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// User id of the author.
    pub actor: String,
    /// The author's role at the time.
    pub role: Role,
    /// Device the event was recorded on.
    pub device: String,
    /// Device time, UTC milliseconds.
    pub at_ms: i64,
    /// Where the device was, if known.
    pub location: Option<Location>,
}

impl Event {
    /// A new event with a fresh id, following every event in `history` (by `seq`).
    pub fn new(kind: EventKind, stamp: Stamp, history: &[Event]) -> Event {
        let seq = history.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            seq,
            kind,
            actor: stamp.actor,
            role: stamp.role,
            device: stamp.device,
            at_ms: stamp.at_ms,
            location: stamp.location,
        }
    }

    /// Checks the event's own content (not whether it fits the case's state: that is the fold's).
    pub fn validate(&self) -> Result<(), EventError> {
        if uuid::Uuid::parse_str(&self.id).is_err() {
            return Err(EventError::Invalid(format!(
                "事件编号无效 / not an event id: {:?}",
                self.id
            )));
        }
        if self.seq < 1 {
            return Err(EventError::Invalid(format!(
                "事件序号无效 / bad sequence number {}",
                self.seq
            )));
        }
        if self.actor.trim().is_empty() || self.device.trim().is_empty() {
            return Err(EventError::Invalid(
                "缺少操作人或设备 / the actor or device is missing".into(),
            ));
        }
        if self.at_ms <= 0 {
            return Err(EventError::Invalid("时间无效 / the time is invalid".into()));
        }
        if self.location.as_ref().is_some_and(|l| !l.is_valid()) {
            return Err(EventError::Invalid(
                "位置无效 / the location is invalid".into(),
            ));
        }
        self.kind.validate()
    }
}

/// An event (or case details) whose content is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The message says what is wrong, zh-CN first.
    #[error("{0}")]
    Invalid(String),
}

fn check_text(text: &str, required: bool) -> Result<(), EventError> {
    if required && text.trim().is_empty() {
        return Err(EventError::Invalid(
            "请填写原因或内容 / a reason or text is required".into(),
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(EventError::Invalid(format!(
            "内容超过 {MAX_TEXT_CHARS} 字 / the text is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    crate::text::check(text).map_err(|e| EventError::Invalid(format!("内容 / text: {e}")))
}

fn check_hash(hash: &str) -> Result<(), EventError> {
    let ok = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EventError::Invalid(format!(
            "照片编号不是 SHA-256 / not a photo hash: {hash:?}"
        )))
    }
}

fn check_due(due_at_ms: Option<i64>) -> Result<(), EventError> {
    match due_at_ms {
        Some(ms) if ms <= 0 => Err(EventError::Invalid(
            "截止时间无效 / the deadline is invalid".into(),
        )),
        _ => Ok(()),
    }
}
