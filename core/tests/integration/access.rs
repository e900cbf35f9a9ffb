//! The server's push rules (`sync::access`) and the sync client's pure parts, tested alone:
//! cases are folded from event lists, no store, no network.

use crate::common::*;
use gridlink_core::case::{Case, EventKind, Role, fold};
use gridlink_core::sync::access::{Before, Pusher, check_intake, check_push};
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_core::sync::wire::RejectCode;
use gridlink_core::sync::{Backoff, actor_belongs_to, device_actor};
use std::collections::BTreeSet;
use std::time::Duration;

fn place() -> GridPlace {
    GridPlace {
        grid_id: "320509001001-01".into(),
        village_id: "320509001001".into(),
        town_id: "320509001".into(),
    }
}

fn case(events: Vec<gridlink_core::case::Event>) -> Case {
    let (history, state) = fold(events);
    Case {
        details: details(&uuid(0), "楼道堆物"),
        history,
        state,
    }
}

fn pusher(user: &str, role: Role, scopes: &[&str]) -> Pusher {
    Pusher {
        user_id: user.into(),
        role,
        device_id: format!("dev-{user}"),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

fn reported() -> gridlink_core::case::Event {
    event(
        1,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-1",
        Role::GridInspector,
        T0,
    )
}

fn code(result: Result<Vec<String>, gridlink_core::sync::access::Refusal>) -> Option<RejectCode> {
    result.err().map(|r| r.code)
}

#[test]
fn a_new_case_is_accepted_only_in_a_granted_place_and_from_its_reporter() {
    let after = case(vec![reported()]);
    let scopes = case_scopes(&after, &place());
    let inspector = pusher("insp-1", Role::GridInspector, &["grid:320509001001-01"]);
    assert_eq!(
        check_push(&inspector, None, &after, &scopes).unwrap(),
        vec![uuid(1)]
    );
    let chief = pusher("insp-1", Role::GridInspector, &["village:320509001001"]);
    assert!(check_push(&chief, None, &after, &scopes).is_ok());
    let elsewhere = pusher("insp-1", Role::GridInspector, &["grid:320509002001-01"]);
    assert_eq!(
        code(check_push(&elsewhere, None, &after, &scopes)),
        Some(RejectCode::OutOfScope)
    );
    let someone_else = pusher("insp-2", Role::GridInspector, &["grid:320509001001-01"]);
    assert_eq!(
        code(check_push(&someone_else, None, &after, &scopes)),
        Some(RejectCode::Impersonation)
    );
    // A reporter key lets a citizen read their report, never write; citizens push nothing.
    let citizen = pusher("insp-1", Role::Citizen, &["reporter:insp-1"]);
    assert_eq!(
        code(check_push(&citizen, None, &after, &scopes)),
        Some(RejectCode::RoleNotAllowed)
    );
    let reader = pusher("insp-1", Role::GridInspector, &["reporter:insp-1"]);
    assert!(reader.may_read(&scopes));
    assert_eq!(
        code(check_push(&reader, None, &after, &scopes)),
        Some(RejectCode::OutOfScope)
    );
}

#[test]
fn the_intake_opens_a_reporters_new_case_anywhere_and_nothing_else() {
    let citizen_report = |actor: &str| {
        let mut after = case(vec![event(
            1,
            1,
            EventKind::Reported { photos: vec![] },
            actor,
            Role::Citizen,
            T0,
        )]);
        after.details.source = gridlink_core::case::Source::Citizen;
        after
    };
    // A citizen holds no grants: the intake is not gated by scopes.
    let citizen = pusher("citizen-1", Role::Citizen, &[]);
    let after = citizen_report("citizen-1");
    assert_eq!(check_intake(&citizen, None, &after).unwrap(), vec![uuid(1)]);
    // The very same case pushed over sync is refused: citizens push nothing.
    let scopes = case_scopes(&after, &place());
    assert_eq!(
        code(check_push(&citizen, None, &after, &scopes)),
        Some(RejectCode::RoleNotAllowed)
    );
    // Only new cases: one that exists is not the intake's to change.
    assert_eq!(
        code(check_intake(
            &citizen,
            Some(Before {
                case: &after,
                scopes: &scopes
            }),
            &after
        )),
        Some(RejectCode::RewritesHistory)
    );
    // Reported by someone else, or from a source a citizen does not give.
    let other = pusher("citizen-2", Role::Citizen, &[]);
    assert_eq!(
        code(check_intake(&other, None, &after)),
        Some(RejectCode::Impersonation)
    );
    let mut inspection = after.clone();
    inspection.details.source = gridlink_core::case::Source::GridInspector;
    assert_eq!(
        code(check_intake(&citizen, None, &inspection)),
        Some(RejectCode::RoleNotAllowed)
    );
}

#[test]
fn added_events_are_judged_by_role_and_author_while_concurrent_ones_are_kept() {
    let before = case(vec![reported()]);
    let scopes = case_scopes(&before, &place());
    let b = Before {
        case: &before,
        scopes: &scopes,
    };
    let inspector = pusher("insp-1", Role::GridInspector, &["grid:320509001001-01"]);
    let chief = pusher("chief-1", Role::GridChief, &["village:320509001001"]);

    let dispatch = event(
        2,
        2,
        EventKind::Dispatched {
            target: gridlink_core::case::DispatchTarget::Department {
                code: "env".into(),
                name: "环保".into(),
            },
            due_at_ms: None,
            note: String::new(),
        },
        "insp-1",
        Role::GridInspector,
        T0 + MINUTE,
    );
    let refused = check_push(
        &inspector,
        Some(b),
        &case(vec![reported(), dispatch]),
        &scopes,
    )
    .unwrap_err();
    assert_eq!(
        (refused.code, refused.event_ids),
        (RejectCode::RoleNotAllowed, vec![uuid(2)])
    );

    let claims_chief = event(
        3,
        2,
        EventKind::Comment {
            text: "冒充".into(),
        },
        "chief-1",
        Role::GridChief,
        T0 + MINUTE,
    );
    assert_eq!(
        code(check_push(
            &inspector,
            Some(b),
            &case(vec![reported(), claims_chief]),
            &scopes
        )),
        Some(RejectCode::Impersonation)
    );

    // Two acceptances made offline: the second is flagged by the fold on every replica, and kept.
    let first = event(
        4,
        2,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        "chief-2",
        Role::GridChief,
        T0 + MINUTE,
    );
    let second = event(
        5,
        2,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        "chief-1",
        Role::GridChief,
        T0 + 2 * MINUTE,
    );
    let with_first = case(vec![reported(), first.clone()]);
    let both = case(vec![reported(), first, second]);
    assert!(!both.state.flagged.is_empty());
    let b = Before {
        case: &with_first,
        scopes: &scopes,
    };
    assert_eq!(
        check_push(&chief, Some(b), &both, &scopes).unwrap(),
        vec![uuid(5)]
    );

    // Dropping or changing a recorded event is refused, naming it.
    let b = Before {
        case: &with_first,
        scopes: &scopes,
    };
    let refused = check_push(&chief, Some(b), &case(vec![reported()]), &scopes).unwrap_err();
    assert_eq!(
        (refused.code, refused.event_ids),
        (RejectCode::RewritesHistory, vec![uuid(4)])
    );
}

#[test]
fn a_dispatch_adds_the_departments_scope() {
    let dispatched = case(vec![
        reported(),
        event(
            2,
            2,
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            "chief-1",
            Role::GridChief,
            T0 + 1,
        ),
        event(
            3,
            3,
            EventKind::Escalated {
                to: gridlink_core::case::Level::Town,
                reason: "需部门处置".into(),
            },
            "chief-1",
            Role::GridChief,
            T0 + 2,
        ),
        event(
            4,
            4,
            EventKind::Dispatched {
                target: gridlink_core::case::DispatchTarget::Department {
                    code: "env".into(),
                    name: "环保".into(),
                },
                due_at_ms: None,
                note: String::new(),
            },
            "op-1",
            Role::Operator,
            T0 + 3,
        ),
    ]);
    let scopes = case_scopes(&dispatched, &place());
    let expected: BTreeSet<ScopeKey> = [
        "district",
        "town:320509001",
        "village:320509001001",
        "grid:320509001001-01",
        "reporter:insp-1",
        "dept:env",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(scopes, expected);
}

#[test]
fn backoff_grows_with_jitter_up_to_its_cap() {
    let backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_secs(2),
        attempts: 8,
    };
    for attempt in 1..12 {
        let ceiling = Duration::from_millis(100 * (1u64 << (attempt - 1).min(20)))
            .min(Duration::from_secs(2));
        let delays: Vec<Duration> = (0..50).map(|_| backoff.delay(attempt)).collect();
        assert!(delays.iter().all(|d| *d <= ceiling), "attempt {attempt}");
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "no jitter at attempt {attempt}"
        );
    }
}

#[test]
fn device_actors_carry_the_issued_prefix_or_the_device_id() {
    let prefix = [3u8; 16];
    let device = uuid(42);
    assert!(actor_belongs_to(
        &device_actor(&prefix, 0),
        &prefix,
        &device
    ));
    assert!(actor_belongs_to(
        &device_actor(&prefix, 7),
        &prefix,
        &device
    ));
    assert!(!actor_belongs_to(
        &device_actor(&[4u8; 16], 0),
        &prefix,
        &device
    ));
    assert!(!actor_belongs_to(
        &automerge::ActorId::from(prefix.to_vec()),
        &prefix,
        &device
    ));
    // Before its first enrollment a device edits as its own id, and only its own.
    let pre = gridlink_core::doc::actor_for_device(&device).unwrap();
    assert!(actor_belongs_to(&pre, &prefix, &device));
    assert!(!actor_belongs_to(&pre, &prefix, &uuid(43)));
}

#[test]
fn only_the_platform_itself_pushes_as_the_system_role() {
    let before = case(vec![reported()]);
    let scopes = case_scopes(&before, &place());
    let b = Before {
        case: &before,
        scopes: &scopes,
    };
    let escalation = |device: &str| gridlink_core::case::Event {
        device: device.into(),
        ..event(
            2,
            2,
            EventKind::Escalated {
                to: gridlink_core::case::Level::Village,
                reason: "超时自动上报".into(),
            },
            "system",
            Role::System,
            T0 + MINUTE,
        )
    };
    let platform = Pusher {
        user_id: "system".into(),
        role: Role::System,
        device_id: gridlink_core::sync::access::PLATFORM_DEVICE.into(),
        scopes: ["district".parse().unwrap()].into_iter().collect(),
    };
    let after = case(vec![
        reported(),
        escalation(gridlink_core::sync::access::PLATFORM_DEVICE),
    ]);
    assert_eq!(
        check_push(&platform, Some(b), &after, &scopes).unwrap(),
        vec![uuid(2)]
    );
    // An enrolled device that claims the system role is not the platform.
    let claims_system = Pusher {
        device_id: uuid(42),
        ..platform.clone()
    };
    let after = case(vec![reported(), escalation(&uuid(42))]);
    assert_eq!(
        code(check_push(&claims_system, Some(b), &after, &scopes)),
        Some(RejectCode::RoleNotAllowed)
    );
}

#[test]
fn an_event_must_name_the_pushers_user_device_and_role_all_three() {
    let before = case(vec![reported()]);
    let scopes = case_scopes(&before, &place());
    let b = Before {
        case: &before,
        scopes: &scopes,
    };
    let chief = pusher("chief-1", Role::GridChief, &["village:320509001001"]);
    let comment = event(
        2,
        2,
        EventKind::Comment {
            text: "已联系物业".into(),
        },
        "chief-1",
        Role::GridChief,
        T0 + MINUTE,
    );
    assert!(
        check_push(
            &chief,
            Some(b),
            &case(vec![reported(), comment.clone()]),
            &scopes
        )
        .is_ok()
    );
    let other_device = gridlink_core::case::Event {
        device: "dev-someone-else".into(),
        ..comment.clone()
    };
    let other_role = gridlink_core::case::Event {
        role: Role::Operator,
        ..comment
    };
    for forged in [other_device, other_role] {
        assert_eq!(
            code(check_push(
                &chief,
                Some(b),
                &case(vec![reported(), forged]),
                &scopes
            )),
            Some(RejectCode::Impersonation)
        );
    }
}

#[test]
fn a_new_case_must_carry_the_report_source_of_its_reporters_role() {
    use gridlink_core::case::Source;
    let grid = ["grid:320509001001-01"];
    let with_source = |source: Source| {
        let mut c = case(vec![reported()]);
        c.details.source = source;
        c
    };
    let inspector = pusher("insp-1", Role::GridInspector, &grid);
    let own = with_source(Source::GridInspector);
    assert!(check_push(&inspector, None, &own, &case_scopes(&own, &place())).is_ok());
    for source in [
        Source::ProfessionalInspector,
        Source::Citizen,
        Source::Open311,
        Source::Analytics,
    ] {
        let forged = with_source(source);
        let refusal = check_push(&inspector, None, &forged, &case_scopes(&forged, &place()))
            .expect_err("a grid inspector's case posing as another channel");
        assert_eq!(refusal.code, RejectCode::RoleNotAllowed, "{source:?}");
        assert!(
            refusal.message.contains(source.code()),
            "{}",
            refusal.message
        );
    }
    // A professional inspector's own source passes; theirs is not a grid inspector's.
    let mut theirs = with_source(Source::ProfessionalInspector);
    let (history, state) = fold(vec![event(
        1,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-1",
        Role::ProfessionalInspector,
        T0,
    )]);
    (theirs.history, theirs.state) = (history, state);
    let professional = pusher("insp-1", Role::ProfessionalInspector, &grid);
    let scopes = case_scopes(&theirs, &place());
    assert!(check_push(&professional, None, &theirs, &scopes).is_ok());
    theirs.details.source = Source::GridInspector;
    assert_eq!(
        code(check_push(&professional, None, &theirs, &scopes)),
        Some(RejectCode::RoleNotAllowed)
    );
}
