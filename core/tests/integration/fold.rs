//! The fold: order-independence (property tests), the 721 level bookkeeping, and invalid
//! events kept and flagged.

use crate::common::{MINUTE, T0, event, hash, uuid};
use gridlink_core::case::{
    Closure, DispatchTarget, Event, EventKind, FlagReason, Level, Role, Status, fold,
};
use proptest::prelude::*;

fn dept() -> DispatchTarget {
    DispatchTarget::Department {
        code: "dept-env".into(),
        name: "区生态环境局".into(),
    }
}

fn enforcement() -> DispatchTarget {
    DispatchTarget::LawEnforcement {
        code: "enf-320509001".into(),
        name: "松陵街道综合执法局".into(),
    }
}

fn note(s: &str) -> String {
    s.to_owned()
}

/// A pool of plausible events from every role; random subsets of it, in random orders, make
/// the property-test histories (many are invalid at their point, which is the point).
fn pool() -> Vec<EventKind> {
    vec![
        EventKind::Accepted {
            assignee: Some("insp-0001".into()),
            due_at_ms: Some(T0 + 3 * 86_400_000),
        },
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        EventKind::RejectedInvalid {
            reason: note("重复上报"),
        },
        EventKind::DuplicateOf { case_id: uuid(999) },
        EventKind::ResolvedInGrid {
            note: note("已清理"),
        },
        EventKind::Escalated {
            to: Level::Village,
            reason: note("需村里协调"),
        },
        EventKind::Escalated {
            to: Level::Town,
            reason: note("涉及多个村"),
        },
        EventKind::Dispatched {
            target: dept(),
            due_at_ms: Some(T0 + 86_400_000),
            note: note("请处置"),
        },
        EventKind::Dispatched {
            target: enforcement(),
            due_at_ms: None,
            note: note("违建拆除"),
        },
        EventKind::Returned {
            reason: note("非本部门职责"),
        },
        EventKind::Handling {
            note: note("已到场"),
        },
        EventKind::Resolved {
            note: note("已整改"),
        },
        EventKind::Verified {
            note: note("现场核查通过"),
        },
        EventKind::VerificationFailed {
            reason: note("仍有堆放"),
        },
        EventKind::Closed {
            note: note("结案")
        },
        EventKind::Comment {
            text: note("居民反映夜间更严重"),
        },
        EventKind::PhotoAdded { hash: hash(7) },
    ]
}

const ROLES: [Role; 9] = [
    Role::GridInspector,
    Role::ProfessionalInspector,
    Role::GridChief,
    Role::Mediator,
    Role::DepartmentHandler,
    Role::LawEnforcement,
    Role::Operator,
    Role::Citizen,
    Role::System,
];

fn history_strategy() -> impl Strategy<Value = Vec<Event>> {
    let pool_len = pool().len();
    prop::collection::vec((0..pool_len, 0..ROLES.len(), 1i64..8, 0i64..50), 0..14).prop_map(
        |picks| {
            let kinds = pool();
            let mut events = vec![event(
                0,
                1,
                EventKind::Reported {
                    photos: vec![hash(1)],
                },
                "insp-0001",
                Role::GridInspector,
                T0,
            )];
            for (i, (k, r, seq, minutes)) in picks.into_iter().enumerate() {
                let n = i as u128 + 1;
                events.push(event(
                    n,
                    seq,
                    kinds[k].clone(),
                    &format!("user-{r}"),
                    ROLES[r],
                    T0 + minutes * MINUTE,
                ));
            }
            events
        },
    )
}

/// The same event set as three replicas might hold it: each in its own order, each with some
/// events delivered twice.
fn replicas_strategy() -> impl Strategy<Value = (Vec<Event>, [Vec<Event>; 3])> {
    history_strategy().prop_flat_map(|events| {
        let n = events.len();
        let replica = move |events: Vec<Event>| {
            (
                Just(events.clone()).prop_shuffle(),
                prop::collection::vec(0..n, 0..4),
            )
                .prop_map(|(mut shuffled, dups)| {
                    for d in dups {
                        let copy = shuffled[d % shuffled.len()].clone();
                        shuffled.insert(d % (shuffled.len() + 1), copy);
                    }
                    shuffled
                })
        };
        (
            Just(events.clone()),
            replica(events.clone()),
            replica(events.clone()),
            replica(events),
        )
            .prop_map(|(all, a, b, c)| (all, [a, b, c]))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_order_and_duplication_folds_to_the_same_state((all, replicas) in replicas_strategy()) {
        let (history, state) = fold(all.clone());
        prop_assert_eq!(history.len(), all.len());
        for replica in replicas {
            let (h, s) = fold(replica);
            prop_assert_eq!(&h, &history);
            prop_assert_eq!(&s, &state);
        }
        // Every event is either applied or flagged, and nothing is lost from the history.
        prop_assert!(state.flagged.len() < history.len());
    }
}

fn chain(steps: Vec<(EventKind, &str, Role)>) -> Vec<Event> {
    let mut events = vec![event(
        0,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-0001",
        Role::GridInspector,
        T0,
    )];
    for (i, (kind, actor, role)) in steps.into_iter().enumerate() {
        let n = i as i64 + 1;
        events.push(event(n as u128, n + 1, kind, actor, role, T0 + n * MINUTE));
    }
    events
}

#[test]
fn solved_in_grid_counts_toward_the_seven() {
    let (_, s) = fold(chain(vec![
        (
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::ResolvedInGrid {
                note: note("劝导清理"),
            },
            "insp-0001",
            Role::GridInspector,
        ),
        (
            EventKind::Verified { note: note("ok") },
            "insp-0001",
            Role::GridInspector,
        ),
        (
            EventKind::Closed {
                note: note("结案")
            },
            "chief-0001",
            Role::GridChief,
        ),
    ]));
    assert!(s.flagged.is_empty(), "{:?}", s.flagged);
    assert_eq!(
        (s.status, s.closure.clone(), s.solved_level),
        (Status::Closed, Some(Closure::Completed), Some(Level::Grid))
    );
    assert_eq!(s.solved_level.map(Level::split_721), Some(7));
    assert_eq!(s.closed_at_ms, Some(T0 + 4 * MINUTE));
}

#[test]
fn department_and_enforcement_levels_are_recorded() {
    let (_, s) = fold(chain(vec![
        (
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Dispatched {
                target: dept(),
                due_at_ms: Some(T0 + 86_400_000),
                note: note(""),
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Handling {
                note: note("已到场"),
            },
            "dept-env-01",
            Role::DepartmentHandler,
        ),
        (
            EventKind::Resolved {
                note: note("已整改"),
            },
            "dept-env-01",
            Role::DepartmentHandler,
        ),
    ]));
    assert_eq!(
        (s.status, s.level, s.solved_level),
        (Status::Resolved, Level::Department, Some(Level::Department))
    );
    assert_eq!(s.assignee.as_deref(), Some("dept:dept-env"));
    assert_eq!(s.solved_level.map(Level::split_721), Some(2));

    let (_, s) = fold(chain(vec![
        (
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Escalated {
                to: Level::Town,
                reason: note("需执法"),
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Dispatched {
                target: enforcement(),
                due_at_ms: None,
                note: note(""),
            },
            "op-01",
            Role::Operator,
        ),
        (
            EventKind::Resolved {
                note: note("已拆除"),
            },
            "enf-320509001-01",
            Role::LawEnforcement,
        ),
    ]));
    assert_eq!(s.solved_level, Some(Level::LawEnforcement));
    assert_eq!(s.solved_level.map(Level::split_721), Some(1));
}

#[test]
fn a_returned_case_goes_back_to_the_level_that_dispatched_it() {
    let (_, s) = fold(chain(vec![
        (
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Escalated {
                to: Level::Town,
                reason: note("跨村"),
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Dispatched {
                target: dept(),
                due_at_ms: Some(T0 + 1),
                note: note(""),
            },
            "op-01",
            Role::Operator,
        ),
        (
            EventKind::Returned {
                reason: note("非本部门职责"),
            },
            "dept-env-01",
            Role::DepartmentHandler,
        ),
    ]));
    assert!(s.flagged.is_empty());
    assert_eq!(
        (s.status, s.level, s.assignee.clone(), s.due_at_ms),
        (Status::Accepted, Level::Town, None, None)
    );
}

#[test]
fn failed_verification_reopens_and_clears_the_solving_level() {
    let (_, s) = fold(chain(vec![
        (
            EventKind::ResolvedInGrid {
                note: note("当场处理"),
            },
            "insp-0001",
            Role::GridInspector,
        ),
        (
            EventKind::VerificationFailed {
                reason: note("复发"),
            },
            "chief-0001",
            Role::GridChief,
        ),
    ]));
    assert_eq!(
        (s.status, s.solved_level, s.reopened),
        (Status::Handling, None, 1)
    );
}

#[test]
fn concurrent_acceptances_keep_both_and_apply_one() {
    // Two chiefs accept offline: both events have seq 2 (each saw only the report).
    let events = vec![
        event(
            0,
            1,
            EventKind::Reported { photos: vec![] },
            "insp-0001",
            Role::GridInspector,
            T0,
        ),
        event(
            1,
            2,
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-a",
            Role::GridChief,
            T0 + 5 * MINUTE,
        ),
        event(
            2,
            2,
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-b",
            Role::GridChief,
            T0 + 3 * MINUTE,
        ),
    ];
    let (history, s) = fold(events);
    assert_eq!(history.len(), 3);
    // The earlier device time wins the tie; the other is kept and flagged.
    assert_eq!(s.assignee.as_deref(), Some("user:chief-b"));
    assert_eq!(s.flagged.len(), 1);
    assert_eq!(s.flagged[0].event_id, uuid(1));
    assert_eq!(
        s.flagged[0].reason,
        FlagReason::WrongStatus {
            status: Status::Accepted
        }
    );
}

#[test]
fn invalid_events_are_kept_flagged_and_not_applied() {
    let (history, s) = fold(chain(vec![
        // An inspector may not dispatch (巡办分离).
        (
            EventKind::Dispatched {
                target: dept(),
                due_at_ms: None,
                note: note(""),
            },
            "insp-0001",
            Role::GridInspector,
        ),
        // Closing before verification is out of order.
        (
            EventKind::Closed {
                note: note("结案")
            },
            "chief-0001",
            Role::GridChief,
        ),
        // A department cannot resolve "in grid".
        (
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::Dispatched {
                target: dept(),
                due_at_ms: None,
                note: note(""),
            },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::ResolvedInGrid { note: note("") },
            "chief-0001",
            Role::GridChief,
        ),
        // Malformed content: an empty reason.
        (
            EventKind::Returned { reason: note("  ") },
            "dept-env-01",
            Role::DepartmentHandler,
        ),
        (
            EventKind::Comment {
                text: note("备注")
            },
            "insp-0001",
            Role::GridInspector,
        ),
    ]));
    assert_eq!(history.len(), 8);
    let reasons: Vec<&FlagReason> = s.flagged.iter().map(|f| &f.reason).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(
        reasons[0],
        &FlagReason::RoleNotAllowed {
            role: Role::GridInspector
        }
    );
    assert_eq!(
        reasons[1],
        &FlagReason::WrongStatus {
            status: Status::Reported
        }
    );
    assert_eq!(
        reasons[2],
        &FlagReason::WrongLevel {
            level: Level::Department
        }
    );
    assert!(matches!(reasons[3], FlagReason::Malformed { .. }));
    assert_eq!(
        (s.status, s.level, s.comments),
        (Status::Dispatched, Level::Department, 1)
    );
}

#[test]
fn a_conflicting_copy_of_an_event_id_is_flagged() {
    let mut forged = event(
        1,
        2,
        EventKind::Comment {
            text: note("原文")
        },
        "insp-0001",
        Role::GridInspector,
        T0 + 1,
    );
    let original = forged.clone();
    forged.kind = EventKind::Comment {
        text: note("篡改")
    };
    let report = event(
        0,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-0001",
        Role::GridInspector,
        T0,
    );
    let (h1, s1) = fold(vec![report.clone(), original.clone(), forged.clone()]);
    let (h2, s2) = fold(vec![forged, report, original]);
    assert_eq!((h1, &s1), (h2, &s2));
    assert_eq!(s1.flagged.len(), 1);
    assert_eq!(s1.flagged[0].reason, FlagReason::ConflictingId);
    assert_eq!(s1.comments, 1);
}

#[test]
fn photos_are_collected_once() {
    let (_, s) = fold(chain(vec![
        (
            EventKind::PhotoAdded { hash: hash(2) },
            "insp-0001",
            Role::GridInspector,
        ),
        (
            EventKind::PhotoAdded { hash: hash(2) },
            "chief-0001",
            Role::GridChief,
        ),
        (
            EventKind::PhotoAdded { hash: hash(3) },
            "insp-0001",
            Role::GridInspector,
        ),
    ]));
    assert_eq!(s.photos, vec![hash(2), hash(3)]);
}

// ---- Each rule pinned down, so a weakened condition is caught (`cargo xtask mutants`) ----

/// Who may record what: the whole matrix, written out by hand from DOMAIN.md's roles.
#[test]
fn every_role_may_author_exactly_its_events() {
    use Role::*;
    let kinds: [(&str, EventKind); 15] = [
        ("reported", EventKind::Reported { photos: vec![] }),
        (
            "accepted",
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
        ),
        (
            "rejected_invalid",
            EventKind::RejectedInvalid { reason: note("x") },
        ),
        ("duplicate_of", EventKind::DuplicateOf { case_id: uuid(9) }),
        (
            "resolved_in_grid",
            EventKind::ResolvedInGrid { note: note("x") },
        ),
        (
            "escalated",
            EventKind::Escalated {
                to: Level::Village,
                reason: note("x"),
            },
        ),
        (
            "dispatched",
            EventKind::Dispatched {
                target: dept(),
                due_at_ms: None,
                note: note("x"),
            },
        ),
        ("returned", EventKind::Returned { reason: note("x") }),
        ("handling", EventKind::Handling { note: note("x") }),
        ("resolved", EventKind::Resolved { note: note("x") }),
        ("verified", EventKind::Verified { note: note("x") }),
        (
            "verification_failed",
            EventKind::VerificationFailed { reason: note("x") },
        ),
        ("closed", EventKind::Closed { note: note("x") }),
        ("comment", EventKind::Comment { text: note("x") }),
        ("photo_added", EventKind::PhotoAdded { hash: hash(1) }),
    ];
    let allowed: [(Role, &[&str]); 9] = [
        (
            GridInspector,
            &[
                "reported",
                "resolved_in_grid",
                "handling",
                "verified",
                "verification_failed",
                "comment",
                "photo_added",
            ],
        ),
        (
            ProfessionalInspector,
            &[
                "reported",
                "resolved_in_grid",
                "handling",
                "verified",
                "verification_failed",
                "comment",
                "photo_added",
            ],
        ),
        (
            GridChief,
            &[
                "reported",
                "accepted",
                "rejected_invalid",
                "duplicate_of",
                "resolved_in_grid",
                "escalated",
                "dispatched",
                "handling",
                "resolved",
                "verified",
                "verification_failed",
                "closed",
                "comment",
                "photo_added",
            ],
        ),
        (
            Mediator,
            &[
                "reported",
                "resolved_in_grid",
                "handling",
                "resolved",
                "comment",
                "photo_added",
            ],
        ),
        (
            DepartmentHandler,
            &["returned", "handling", "resolved", "comment", "photo_added"],
        ),
        (
            LawEnforcement,
            &["returned", "handling", "resolved", "comment", "photo_added"],
        ),
        (
            Operator,
            &[
                "reported",
                "accepted",
                "rejected_invalid",
                "duplicate_of",
                "escalated",
                "dispatched",
                "handling",
                "resolved",
                "verified",
                "verification_failed",
                "closed",
                "comment",
                "photo_added",
            ],
        ),
        (Citizen, &["reported", "comment", "photo_added"]),
        (System, &["reported", "escalated"]),
    ];
    for (role, may) in allowed {
        for (name, kind) in &kinds {
            assert_eq!(
                role.may_author(kind),
                may.contains(name),
                "{} recording {name}",
                role.code()
            );
        }
    }
}

fn flag_of(events: Vec<Event>, n: u128) -> Option<FlagReason> {
    fold(events)
        .1
        .flagged
        .into_iter()
        .find(|f| f.event_id == uuid(n))
        .map(|f| f.reason)
}

fn reported_by_inspector() -> Event {
    event(
        1,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-1",
        Role::GridInspector,
        T0,
    )
}

#[test]
fn a_second_report_and_anything_before_the_report_are_flagged_with_their_reason() {
    let again = event(
        2,
        2,
        EventKind::Reported { photos: vec![] },
        "insp-2",
        Role::GridInspector,
        T0 + MINUTE,
    );
    assert_eq!(
        flag_of(vec![reported_by_inspector(), again], 2),
        Some(FlagReason::AlreadyReported)
    );
    // A comment ordered before the report (same seq, earlier) is not applied.
    let early = event(
        3,
        1,
        EventKind::Comment {
            text: note("先于上报"),
        },
        "insp-1",
        Role::GridInspector,
        T0 - MINUTE,
    );
    let (_, state) = fold(vec![reported_by_inspector(), early.clone()]);
    assert_eq!(state.comments, 0);
    assert_eq!(
        flag_of(vec![reported_by_inspector(), early], 3),
        Some(FlagReason::BeforeReport)
    );
}

#[test]
fn a_duplicate_closes_the_case_naming_the_original() {
    let duplicate = event(
        2,
        2,
        EventKind::DuplicateOf { case_id: uuid(77) },
        "chief-1",
        Role::GridChief,
        T0 + MINUTE,
    );
    let (_, state) = fold(vec![reported_by_inspector(), duplicate]);
    assert_eq!(state.status, Status::Closed);
    assert_eq!(state.closure, Some(Closure::Duplicate { of: uuid(77) }));
    let invalid = event(
        3,
        2,
        EventKind::RejectedInvalid {
            reason: note("不属实"),
        },
        "chief-1",
        Role::GridChief,
        T0 + MINUTE,
    );
    assert_eq!(
        fold(vec![reported_by_inspector(), invalid]).1.closure,
        Some(Closure::Invalid)
    );
}

#[test]
fn escalation_climbs_one_way_and_never_above_the_town() {
    let escalate = |n: u128, seq: i64, to: Level| {
        event(
            n,
            seq,
            EventKind::Escalated {
                to,
                reason: note("需上级协调"),
            },
            "chief-1",
            Role::GridChief,
            T0 + seq * MINUTE,
        )
    };
    // Grid → village → town, one step at a time, is applied.
    let (_, state) = fold(vec![
        reported_by_inspector(),
        escalate(2, 2, Level::Village),
        escalate(3, 3, Level::Town),
    ]);
    assert!(state.flagged.is_empty(), "{:?}", state.flagged);
    assert_eq!((state.level, state.status), (Level::Town, Status::Accepted));
    // To its own level, or down, is refused (below the village is malformed at once).
    assert!(matches!(
        flag_of(
            vec![reported_by_inspector(), escalate(2, 2, Level::Grid)],
            2
        ),
        Some(FlagReason::Malformed { .. })
    ));
    assert_eq!(
        flag_of(
            vec![
                reported_by_inspector(),
                escalate(2, 2, Level::Town),
                escalate(3, 3, Level::Village),
            ],
            3
        ),
        Some(FlagReason::WrongLevel { level: Level::Town })
    );
    assert_eq!(
        flag_of(
            vec![
                reported_by_inspector(),
                escalate(2, 2, Level::Village),
                escalate(3, 3, Level::Village),
            ],
            3
        ),
        Some(FlagReason::WrongLevel {
            level: Level::Village
        })
    );
    // From the town there is no escalating further: departments are dispatched to.
    assert_eq!(
        flag_of(
            vec![
                reported_by_inspector(),
                escalate(2, 2, Level::Town),
                escalate(3, 3, Level::Town),
            ],
            3
        ),
        Some(FlagReason::WrongLevel { level: Level::Town })
    );
}

#[test]
fn handling_is_recorded_only_on_a_case_that_someone_has_taken() {
    let handling = |n: u128, seq: i64| {
        event(
            n,
            seq,
            EventKind::Handling {
                note: note("正在处理"),
            },
            "chief-1",
            Role::GridChief,
            T0 + seq * MINUTE,
        )
    };
    assert_eq!(
        flag_of(vec![reported_by_inspector(), handling(2, 2)], 2),
        Some(FlagReason::WrongStatus {
            status: Status::Reported
        })
    );
    let accepted = event(
        3,
        2,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        "chief-1",
        Role::GridChief,
        T0 + MINUTE,
    );
    let (_, state) = fold(vec![reported_by_inspector(), accepted, handling(4, 3)]);
    assert_eq!(state.status, Status::Handling);
    assert!(state.flagged.is_empty());
}
