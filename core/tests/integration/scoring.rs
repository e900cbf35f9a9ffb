//! The scoring rule on scripted histories: solved low pays more, no credit without
//! verification, lateness, returns and reopenings cost the right unit, and the result depends
//! only on the events (any delivery order).

use crate::common::{T0, details, event, uuid};
use gridlink_core::case::{
    Case, DispatchTarget, Event, EventKind, Level, Role, ScoreReason, ScoreUnit, ScoringRule, fold,
    score,
};
use gridlink_core::sync::scope::GridPlace;
use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn place() -> GridPlace {
    GridPlace {
        grid_id: "320509001001-01".into(),
        village_id: "320509001001".into(),
        town_id: "320509001".into(),
    }
}

fn case(events: Vec<Event>) -> Case {
    let (history, state) = fold(events);
    assert!(state.flagged.is_empty(), "{:?}", state.flagged);
    Case {
        details: details(&uuid(1), "楼道堆物"),
        history,
        state,
    }
}

/// Points per unit.
/// The score lines' totals under the default rule with its limits in clock hours (`T0` is a
/// Sunday: working days would move every deadline; `deadline.rs` tests those).
fn totals(case: &Case) -> BTreeMap<ScoreUnit, f64> {
    let mut rule = ScoringRule::default();
    rule.limits.working_days = false;
    let mut out = BTreeMap::new();
    for line in score(case, &place(), &rule) {
        *out.entry(line.unit).or_insert(0.0) += line.points;
    }
    out
}

fn person(id: &str) -> ScoreUnit {
    ScoreUnit::Person(id.into())
}

fn grid() -> ScoreUnit {
    ScoreUnit::Grid("320509001001-01".into())
}

fn reported(n: u128) -> Event {
    event(
        n,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-0001",
        Role::GridInspector,
        T0,
    )
}

fn accepted(n: u128, seq: i64, due: Option<i64>) -> Event {
    event(
        n,
        seq,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: due,
        },
        "chief-0001",
        Role::GridChief,
        T0 + HOUR,
    )
}

fn text(s: &str) -> String {
    s.into()
}

/// The grid inspector records a fix in the grid.
fn fixed_in_grid(n: u128, seq: i64, note: &str, at: i64) -> Event {
    event(
        n,
        seq,
        EventKind::ResolvedInGrid { note: text(note) },
        "insp-0001",
        Role::GridInspector,
        at,
    )
}

/// The grid chief verifies a fix.
fn verified_by_chief(n: u128, seq: i64, note: &str, at: i64) -> Event {
    event(
        n,
        seq,
        EventKind::Verified { note: text(note) },
        "chief-0001",
        Role::GridChief,
        at,
    )
}

#[test]
fn solved_in_the_grid_on_time_and_verified_pays_the_grid_the_solver_and_the_reporter() {
    let c = case(vec![
        reported(1),
        accepted(2, 2, Some(T0 + DAY)),
        fixed_in_grid(3, 3, "已清理", T0 + 2 * HOUR),
        verified_by_chief(4, 4, "属实", T0 + 3 * HOUR),
    ]);
    let t = totals(&c);
    assert_eq!(t[&grid()], 12.0);
    assert_eq!(t[&person("insp-0001")], 12.0 + 1.0, "solver and reporter");
    assert_eq!(t.len(), 2);
    // The credit counts when verified.
    let solved = score(&c, &place(), &ScoringRule::default())
        .into_iter()
        .find(|l| l.reason == ScoreReason::Solved)
        .unwrap();
    assert_eq!(solved.at_ms, T0 + 3 * HOUR);
}

#[test]
fn no_credit_without_verification_and_none_for_an_invalid_report() {
    let unverified = case(vec![
        reported(1),
        accepted(2, 2, None),
        fixed_in_grid(3, 3, "已处理", T0 + 2 * HOUR),
    ]);
    let t = totals(&unverified);
    assert_eq!(t.get(&grid()), None);
    assert_eq!(t[&person("insp-0001")], 1.0, "only the report");
    let invalid = case(vec![
        reported(1),
        event(
            2,
            2,
            EventKind::RejectedInvalid {
                reason: text("不属于城市管理范围"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + HOUR,
        ),
    ]);
    assert!(score(&invalid, &place(), &ScoringRule::default()).is_empty());
}

#[test]
fn climbing_higher_pays_less_and_lateness_is_charged_per_started_day() {
    // Escalated to the town, solved by the command centre 25 hours after the town's 7-day
    // limit, which counts from the report (an escalation keeps the report's clock): two
    // started days late.
    let escalated_at = T0 + 2 * HOUR;
    let solved_at = T0 + 168 * HOUR + 25 * HOUR;
    let c = case(vec![
        reported(1),
        accepted(2, 2, None),
        event(
            3,
            3,
            EventKind::Escalated {
                to: Level::Town,
                reason: text("涉及多个村"),
            },
            "chief-0001",
            Role::GridChief,
            escalated_at,
        ),
        event(
            4,
            4,
            EventKind::Resolved {
                note: text("已协调"),
            },
            "op-01",
            Role::Operator,
            solved_at,
        ),
        event(
            5,
            5,
            EventKind::Verified {
                note: text("核实")
            },
            "op-01",
            Role::Operator,
            solved_at + HOUR,
        ),
    ]);
    let t = totals(&c);
    assert_eq!(t[&ScoreUnit::Town("320509001".into())], 6.0 - 2.0);
    assert_eq!(t[&person("op-01")], 6.0 - 2.0);
    assert_eq!(t[&person("insp-0001")], 1.0);
    assert_eq!(t.get(&grid()), None, "the grid did not solve it");
}

#[test]
fn a_return_costs_the_returning_department_and_the_receiver_of_the_redispatch_is_credited() {
    let env = DispatchTarget::Department {
        code: "dept-env".into(),
        name: "区生态环境局".into(),
    };
    let enf = DispatchTarget::LawEnforcement {
        code: "enf-320509001".into(),
        name: "松陵街道综合执法局".into(),
    };
    let c = case(vec![
        reported(1),
        accepted(2, 2, None),
        event(
            3,
            3,
            EventKind::Dispatched {
                target: env,
                due_at_ms: Some(T0 + 5 * DAY),
                note: text("请处理"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + 2 * HOUR,
        ),
        event(
            4,
            4,
            EventKind::Returned {
                reason: text("属于违建，非我局职责"),
            },
            "dept-env-01",
            Role::DepartmentHandler,
            T0 + 3 * HOUR,
        ),
        event(
            5,
            5,
            EventKind::Dispatched {
                target: enf,
                due_at_ms: Some(T0 + 10 * DAY),
                note: text("请拆除"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + 4 * HOUR,
        ),
        event(
            6,
            6,
            EventKind::Resolved {
                note: text("已拆除"),
            },
            "enf-320509001-01",
            Role::LawEnforcement,
            T0 + 3 * DAY,
        ),
        verified_by_chief(7, 7, "已核实", T0 + 4 * DAY),
    ]);
    let t = totals(&c);
    assert_eq!(t[&ScoreUnit::Department("dept-env".into())], -2.0);
    assert_eq!(
        t[&ScoreUnit::Enforcement("enf-320509001".into())],
        4.0 + 2.0
    );
    assert_eq!(t[&person("enf-320509001-01")], 4.0 + 2.0);
}

#[test]
fn a_fix_that_fails_verification_costs_its_unit_and_person_before_the_second_fix_is_credited() {
    let events = vec![
        reported(1),
        accepted(2, 2, Some(T0 + 2 * DAY)),
        fixed_in_grid(3, 3, "已清理", T0 + 2 * HOUR),
        event(
            4,
            4,
            EventKind::VerificationFailed {
                reason: text("又堆上了"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + 3 * HOUR,
        ),
        event(
            5,
            5,
            EventKind::Resolved {
                note: text("已彻底清理并告知业主"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + 5 * HOUR,
        ),
        verified_by_chief(6, 6, "属实", T0 + 6 * HOUR),
    ];
    let c = case(events.clone());
    let t = totals(&c);
    assert_eq!(t[&grid()], -4.0 + 10.0 + 2.0);
    assert_eq!(t[&person("insp-0001")], -4.0 + 1.0);
    assert_eq!(t[&person("chief-0001")], 12.0);
    // The same events delivered in any order score the same.
    let mut reversed = events;
    reversed.reverse();
    assert_eq!(
        score(&case(reversed), &place(), &ScoringRule::default()),
        score(&c, &place(), &ScoringRule::default())
    );
}

#[test]
fn a_recheck_that_fails_after_verification_withdraws_the_credit() {
    let c = case(vec![
        reported(1),
        accepted(2, 2, None),
        fixed_in_grid(3, 3, "已清理", T0 + 2 * HOUR),
        verified_by_chief(4, 4, "属实", T0 + 3 * HOUR),
        event(
            5,
            5,
            EventKind::VerificationFailed {
                reason: text("复查发现又堆上了"),
            },
            "chief-0001",
            Role::GridChief,
            T0 + DAY,
        ),
    ]);
    let t = totals(&c);
    assert_eq!(t[&grid()], -4.0);
    assert_eq!(t[&person("insp-0001")], -4.0 + 1.0);
}
