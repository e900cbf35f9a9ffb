//! Whether a push may be merged: the server's half of the rules the phone already applied.
//!
//! The phone checks each action against the case's state and the user's role before writing
//! it; a phone can be modified, so the server checks again what only it can know or trust:
//! whose device wrote the change, whether the case lies in the user's grants, and that the
//! push only *adds* events. Events that the fold flags because of a concurrent action (two
//! chiefs accepting offline) are accepted and kept, as on every replica; events no state could
//! make valid (a role that may not author them, malformed content) are refused.

use super::scope::ScopeKey;
use super::wire::RejectCode;
use crate::case::{Case, Duties, FlagReason, Role};
use std::collections::{BTreeSet, HashMap};

/// The device id under which the server pushes the platform's own changes (role system).
pub const PLATFORM_DEVICE: &str = "server";

/// The authenticated device that pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    /// Its user.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// The device id events must carry.
    pub device_id: String,
    /// The user's grants.
    pub scopes: BTreeSet<ScopeKey>,
}

impl Pusher {
    /// Whether the pusher may write a document with these scope keys.
    pub fn may_write(&self, doc_scopes: &BTreeSet<ScopeKey>) -> bool {
        super::visibility::writes_document(&self.scopes, doc_scopes)
    }

    /// Whether the pusher may read a document with these scope keys.
    pub fn may_read(&self, doc_scopes: &BTreeSet<ScopeKey>) -> bool {
        super::visibility::sees_document(&self.scopes, doc_scopes)
    }
}

/// A refused push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub code: RejectCode,
    /// For people.
    pub message: String,
    /// The events concerned, if the refusal is about particular events.
    pub event_ids: Vec<String>,
}

impl Refusal {
    fn new(code: RejectCode, message: String) -> Self {
        Refusal {
            code,
            message,
            event_ids: Vec::new(),
        }
    }
}

/// A case as the server held it before the push, with its scope keys.
#[derive(Debug, Clone, Copy)]
pub struct Before<'a> {
    /// The case.
    pub case: &'a Case,
    /// Its scope keys.
    pub scopes: &'a BTreeSet<ScopeKey>,
}

/// Checks a push: `before` is the server's case (none for a new case), `after` the case with
/// the push merged and `after_scopes` its scope keys. Returns the ids of the events the push
/// adds.
pub fn check_push(
    pusher: &Pusher,
    before: Option<Before<'_>>,
    after: &Case,
    after_scopes: &BTreeSet<ScopeKey>,
) -> Result<Vec<String>, Refusal> {
    check_push_under(pusher, before, after, after_scopes, &Duties::default())
}

/// [`check_push`] under a district's separation of duties: a new `verified` or `closed` event
/// by the person who resolved the case is refused unless `duties` allows it.
pub fn check_push_under(
    pusher: &Pusher,
    before: Option<Before<'_>>,
    after: &Case,
    after_scopes: &BTreeSet<ScopeKey>,
    duties: &Duties,
) -> Result<Vec<String>, Refusal> {
    // The platform's own changes (automatic escalation) come from the server itself, as the
    // pseudo-device `server`, which no enrolled device can be (device ids are UUIDs).
    let platform = pusher.role == Role::System && pusher.device_id == PLATFORM_DEVICE;
    if pusher.role == Role::Citizen || (pusher.role == Role::System && !platform) {
        return Err(Refusal::new(
            RejectCode::RoleNotAllowed,
            format!(
                "{}不能直接提交案件文档，请用随手拍上报 / the {} role cannot push case documents; citizens submit reports",
                pusher.role.label_zh(),
                pusher.role.code()
            ),
        ));
    }
    // Scope is judged on what the server already knew (a push cannot widen its own scope by
    // dispatching to the pusher's department); for a new case, on where it says it is.
    let scopes = before.map_or(after_scopes, |b| b.scopes);
    if !pusher.may_write(scopes) {
        return Err(Refusal::new(
            RejectCode::OutOfScope,
            format!(
                "案件 {} 不在您负责的网格或部门内 / case {} is outside your grids and departments",
                after.details.id, after.details.id
            ),
        ));
    }
    check_events(pusher, before, after, duties)
}

/// Checks a new case the server's intake opens for its reporter (a citizen's 随手拍, an Open311
/// request): `reporter` is who reported it, with the device the reports came from and no
/// grants. The intake is server code that no device reaches through sync, so scopes do not
/// gate it: the case is judged as a new case from that reporter is (reported by them, from
/// the source their role may give, every event theirs). A case that exists already is
/// refused (a retried or clashing submission; the intake answers it from the stored case):
/// the intake only opens cases. Returns the ids of the events it adds.
pub fn check_intake(
    reporter: &Pusher,
    before: Option<Before<'_>>,
    after: &Case,
) -> Result<Vec<String>, Refusal> {
    if before.is_some() {
        return Err(Refusal::new(
            RejectCode::RewritesHistory,
            format!(
                "案件 {} 已存在 / case {} exists already",
                after.details.id, after.details.id
            ),
        ));
    }
    check_events(reporter, None, after, &Duties::default())
}

/// What [`check_push`] and [`check_intake`] judge alike once the pusher may write the case:
/// the reported facts and recorded events unchanged, a new case reported by the pusher from a
/// source their role may give, and every new event the pusher's own and valid.
fn check_events(
    pusher: &Pusher,
    before: Option<Before<'_>>,
    after: &Case,
    duties: &Duties,
) -> Result<Vec<String>, Refusal> {
    let known: HashMap<&str, &crate::case::Event> = before
        .map(|b| b.case.history.iter().map(|e| (e.id.as_str(), e)).collect())
        .unwrap_or_default();
    if let Some(before) = before {
        if before.case.details != after.details {
            return Err(Refusal::new(
                RejectCode::RewritesHistory,
                "不能修改案件的上报信息 / the reported facts of a case cannot be changed".into(),
            ));
        }
        let after_ids: HashMap<&str, &crate::case::Event> =
            after.history.iter().map(|e| (e.id.as_str(), e)).collect();
        let changed: Vec<String> = known
            .iter()
            .filter(|(id, event)| after_ids.get(*id) != Some(*event))
            .map(|(id, _)| (*id).to_owned())
            .collect();
        if !changed.is_empty() {
            return Err(Refusal {
                code: RejectCode::RewritesHistory,
                message:
                    "不能修改或删除已记录的事件 / recorded events cannot be changed or deleted"
                        .into(),
                event_ids: changed,
            });
        }
    } else if after.state.reporter.as_deref() != Some(pusher.user_id.as_str()) {
        return Err(Refusal::new(
            RejectCode::Impersonation,
            "新案件必须由推送者本人上报 / a new case must be reported by the pusher".into(),
        ));
    } else if let Err(message) = pusher.role.check_report_source(after.details.source) {
        return Err(Refusal::new(RejectCode::RoleNotAllowed, message));
    }
    let mut added = Vec::new();
    for event in after
        .history
        .iter()
        .filter(|e| !known.contains_key(e.id.as_str()))
    {
        let refuse = |code, message: String| Refusal {
            code,
            message,
            event_ids: vec![event.id.clone()],
        };
        if event.actor != pusher.user_id
            || event.device != pusher.device_id
            || event.role != pusher.role
        {
            return Err(refuse(
                RejectCode::Impersonation,
                format!(
                    "事件 {} 冒用了他人的身份（{} / {} / {}）/ event {} claims another user, device or role",
                    event.id,
                    event.actor,
                    event.device,
                    event.role.code(),
                    event.id
                ),
            ));
        }
        let flag = after.state.flagged.iter().find(|f| f.event_id == event.id);
        match flag.map(|f| &f.reason) {
            Some(FlagReason::RoleNotAllowed { role }) => {
                return Err(refuse(
                    RejectCode::RoleNotAllowed,
                    format!(
                        "{}无权执行“{}” / the {} role may not record {}",
                        role.label_zh(),
                        event.kind.code(),
                        role.code(),
                        event.kind.code()
                    ),
                ));
            }
            Some(
                reason @ (FlagReason::Malformed { .. }
                | FlagReason::BeforeReport
                | FlagReason::AlreadyReported
                | FlagReason::ConflictingId),
            ) => {
                return Err(refuse(
                    RejectCode::Malformed,
                    format!(
                        "事件 {} 无效 / event {} is invalid: {reason:?}",
                        event.id, event.id
                    ),
                ));
            }
            // Never a flag of the fold; refused the same way if one claims to be.
            Some(FlagReason::SeparationOfDuties { message }) => {
                return Err(refuse(RejectCode::RoleNotAllowed, message.clone()));
            }
            // Concurrent actions: kept and shown, as on every replica.
            Some(FlagReason::WrongStatus { .. } | FlagReason::WrongLevel { .. }) => {}
            None => {
                if let Some(message) = duties.breach(after, event) {
                    return Err(refuse(RejectCode::RoleNotAllowed, message));
                }
            }
        }
        added.push(event.id.clone());
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pusher(scopes: &[ScopeKey]) -> Pusher {
        Pusher {
            user_id: "insp-0001".into(),
            role: Role::GridInspector,
            device_id: "dev-1".into(),
            scopes: scopes.iter().cloned().collect(),
        }
    }

    fn keys(keys: &[ScopeKey]) -> BTreeSet<ScopeKey> {
        keys.iter().cloned().collect()
    }

    #[test]
    fn a_pusher_reads_and_writes_only_through_a_key_it_holds() {
        let grid = ScopeKey::Grid("320509001001-01".into());
        let other = ScopeKey::Grid("320509001001-02".into());
        let town = ScopeKey::Town("320509001".into());
        let inspector = pusher(std::slice::from_ref(&grid));
        let case_here = keys(&[ScopeKey::District, town.clone(), grid.clone()]);
        let case_next_door = keys(&[ScopeKey::District, town.clone(), other]);
        assert!(inspector.may_read(&case_here));
        assert!(inspector.may_write(&case_here));
        assert!(!inspector.may_read(&case_next_door));
        assert!(!inspector.may_write(&case_next_door));
        assert!(!inspector.may_read(&BTreeSet::new()));
        // A key that grants reading only (a reporter's own case, the shared templates).
        let reporter = ScopeKey::Reporter("citizen-1".into());
        let citizen = pusher(std::slice::from_ref(&reporter));
        let reported = keys(&[grid, reporter]);
        assert!(citizen.may_read(&reported));
        assert!(!citizen.may_write(&reported));
        let staff = pusher(&[ScopeKey::Shared]);
        assert!(staff.may_read(&keys(&[ScopeKey::Shared])));
        assert!(!staff.may_write(&keys(&[ScopeKey::Shared])));
    }
}
