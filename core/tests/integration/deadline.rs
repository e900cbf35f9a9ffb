//! Time limits: the table (strictest matching exception, else the level's default), the
//! deadline a case is held to as it climbs, is returned and is solved, the escalation that
//! keeps the report's clock, the warning before the deadline, working days with a holiday and
//! a make-up working day, and the separation of duties.

use crate::common::{T0, details, event, uuid};
use gridlink_core::case::{
    Case, Category, DispatchTarget, Duties, Event, EventKind, Level, Priority, Role, TimeLimits,
    Urgency, WorkCalendar, deadline, fold, is_overdue, urgency, warn_at,
};

/// The table in clock hours (`T0` is a Sunday: working days would move every deadline).
fn clock_hours() -> TimeLimits {
    TimeLimits {
        working_days: false,
        ..TimeLimits::default()
    }
}

const HOUR: i64 = 3_600_000;

fn case(category: Category, priority: Priority, events: Vec<Event>) -> Case {
    let (history, state) = fold(events);
    assert!(state.flagged.is_empty(), "{:?}", state.flagged);
    let mut details = details(&uuid(1), "测试");
    details.category = category;
    details.priority = priority;
    Case {
        details,
        history,
        state,
    }
}

fn reported() -> Event {
    event(
        1,
        1,
        EventKind::Reported { photos: vec![] },
        "insp-0001",
        Role::GridInspector,
        T0,
    )
}

#[test]
fn the_strictest_matching_limit_applies() {
    let t = TimeLimits::default();
    assert_eq!(
        t.hours(Level::Grid, Category::Sanitation, Priority::Normal),
        72
    );
    assert_eq!(
        t.hours(Level::Grid, Category::FireHazard, Priority::Normal),
        24
    );
    assert_eq!(
        t.hours(Level::Grid, Category::FireHazard, Priority::Urgent),
        4
    );
    assert_eq!(
        t.hours(Level::Grid, Category::FireHazard, Priority::Low),
        24
    );
    assert_eq!(
        t.hours(Level::Grid, Category::Sanitation, Priority::Low),
        168
    );
    assert_eq!(
        t.hours(
            Level::LawEnforcement,
            Category::IllegalConstruction,
            Priority::Normal
        ),
        720
    );
    assert_eq!(
        t.hours(
            Level::LawEnforcement,
            Category::IllegalConstruction,
            Priority::Urgent
        ),
        72
    );
    assert_eq!(t.hours(Level::Town, Category::Other, Priority::Normal), 168);
}

#[test]
fn the_deadline_follows_the_case_up_the_ladder_and_stops_when_solved() {
    let limits = clock_hours();
    let mut events = vec![reported()];
    let c = case(Category::Sanitation, Priority::Urgent, events.clone());
    assert_eq!(deadline(&c, &limits), Some(T0 + 4 * HOUR));
    assert!(!is_overdue(&c, &limits, T0 + 4 * HOUR));
    assert!(is_overdue(&c, &limits, T0 + 4 * HOUR + 1));
    // Accepted with an explicit deadline: that one.
    events.push(event(
        2,
        2,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: Some(T0 + 2 * HOUR),
        },
        "chief-0001",
        Role::GridChief,
        T0 + HOUR,
    ));
    assert_eq!(
        deadline(
            &case(Category::Sanitation, Priority::Urgent, events.clone()),
            &limits
        ),
        Some(T0 + 2 * HOUR)
    );
    // Dispatched without one: the department's limit from the dispatch.
    events.push(event(
        3,
        3,
        EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "dept-urban".into(),
                name: "区城市管理局".into(),
            },
            due_at_ms: None,
            note: "请清运".into(),
        },
        "chief-0001",
        Role::GridChief,
        T0 + 3 * HOUR,
    ));
    let dispatched = case(Category::Sanitation, Priority::Normal, events.clone());
    assert_eq!(
        deadline(&dispatched, &limits),
        Some(T0 + 3 * HOUR + 240 * HOUR)
    );
    // Returned: back at the grid, its clock restarted at the return.
    events.push(event(
        4,
        4,
        EventKind::Returned {
            reason: "非本部门".into(),
        },
        "dept-urban-01",
        Role::DepartmentHandler,
        T0 + 5 * HOUR,
    ));
    assert_eq!(
        deadline(
            &case(Category::Sanitation, Priority::Normal, events.clone()),
            &limits
        ),
        Some(T0 + 5 * HOUR + 72 * HOUR)
    );
    // Solved: no deadline, never overdue.
    events.push(event(
        5,
        5,
        EventKind::ResolvedInGrid {
            note: "已清运".into(),
        },
        "insp-0001",
        Role::GridInspector,
        T0 + 6 * HOUR,
    ));
    let solved = case(Category::Sanitation, Priority::Normal, events);
    assert_eq!(deadline(&solved, &limits), None);
    assert!(!is_overdue(&solved, &limits, i64::MAX));
}

#[test]
fn priorities_have_codes_and_labels() {
    for p in Priority::ALL {
        assert_eq!(Priority::from_code(p.code()), Some(p));
        assert!(!p.label_zh().is_empty());
    }
    assert_eq!(Priority::default(), Priority::Normal);
}

fn escalated(n: u128, at_ms: i64) -> Event {
    event(
        n,
        n as i64,
        EventKind::Escalated {
            to: Level::Town,
            reason: "需要镇级协调".into(),
        },
        "chief-0001",
        Role::GridChief,
        at_ms,
    )
}

#[test]
fn an_escalation_keeps_the_report_s_clock_and_gives_no_time_back() {
    let limits = clock_hours();
    // On time at the grid (72 h), escalated after 10 h: the town's 168 h, from the report.
    let early = case(
        Category::Sanitation,
        Priority::Normal,
        vec![reported(), escalated(2, T0 + 10 * HOUR)],
    );
    assert_eq!(deadline(&early, &limits), Some(T0 + 168 * HOUR));
    // Escalated eight hours late: the town's limit still counts from the report (88 h left,
    // not 168)…
    let late = case(
        Category::Sanitation,
        Priority::Normal,
        vec![reported(), escalated(2, T0 + 80 * HOUR)],
    );
    assert_eq!(deadline(&late, &limits), Some(T0 + 168 * HOUR));
    // …and escalated after the town's limit too, it is overdue at once.
    let very_late = case(
        Category::Sanitation,
        Priority::Normal,
        vec![reported(), escalated(2, T0 + 200 * HOUR)],
    );
    assert_eq!(
        urgency(&very_late, &limits, T0 + 200 * HOUR),
        Some(Urgency::Overdue)
    );
}

#[test]
fn a_case_warns_when_three_quarters_of_its_time_are_spent_then_goes_overdue() {
    let limits = clock_hours();
    let c = case(Category::Sanitation, Priority::Normal, vec![reported()]);
    assert_eq!(warn_at(&c, &limits), Some(T0 + 54 * HOUR));
    assert_eq!(
        urgency(&c, &limits, T0 + 54 * HOUR - 1),
        Some(Urgency::OnTime)
    );
    assert_eq!(urgency(&c, &limits, T0 + 54 * HOUR), Some(Urgency::Warning));
    assert_eq!(urgency(&c, &limits, T0 + 72 * HOUR), Some(Urgency::Warning));
    assert_eq!(
        urgency(&c, &limits, T0 + 72 * HOUR + 1),
        Some(Urgency::Overdue)
    );
    // The share is the district's.
    let half = TimeLimits {
        warn_percent: 50,
        ..clock_hours()
    };
    assert_eq!(warn_at(&c, &half), Some(T0 + 36 * HOUR));
    // Urgent: four clock hours, whatever the day.
    let urgent = case(Category::Sanitation, Priority::Urgent, vec![reported()]);
    assert_eq!(
        deadline(&urgent, &TimeLimits::default()),
        Some(T0 + 4 * HOUR)
    );
    assert_eq!(
        warn_at(&urgent, &TimeLimits::default()),
        Some(T0 + 3 * HOUR)
    );
}

#[test]
fn working_days_skip_the_weekend_and_a_holiday_and_count_a_make_up_day() {
    // T0 is Sunday 2026-11-29, 08:00 in the district.
    let c = case(Category::Sanitation, Priority::Normal, vec![reported()]);
    // Weekdays only: the clock starts on Monday at 00:00 (T0 + 16 h); three working days
    // end on Thursday at 00:00.
    let weekdays = TimeLimits::default();
    assert_eq!(deadline(&c, &weekdays), Some(T0 + 88 * HOUR));
    // That Sunday worked to make up for a holiday on Tuesday: 16 h on Sunday, Monday,
    // Wednesday, then 8 h on Thursday.
    let calendar = WorkCalendar::parse("2026-11-29 班 调休\n2026-12-01 休 假日\n").unwrap();
    let notice = TimeLimits {
        calendar,
        ..TimeLimits::default()
    };
    assert_eq!(deadline(&c, &notice), Some(T0 + 96 * HOUR));
    // The warning counts working time too: 54 working hours are in on Wednesday at 14:00.
    assert_eq!(warn_at(&c, &notice), Some(T0 + 78 * HOUR));
}

fn resolved_verified(verifier: &str, role: Role) -> Case {
    case(
        Category::Sanitation,
        Priority::Normal,
        vec![
            reported(),
            event(
                2,
                2,
                EventKind::ResolvedInGrid {
                    note: "已清理".into(),
                },
                "insp-0001",
                Role::GridInspector,
                T0 + HOUR,
            ),
            event(
                3,
                3,
                EventKind::Verified {
                    note: "已核实".into(),
                },
                verifier,
                role,
                T0 + 2 * HOUR,
            ),
        ],
    )
}

#[test]
fn the_resolver_may_not_verify_their_own_fix_unless_the_district_allows_it() {
    let own = resolved_verified("insp-0001", Role::GridInspector);
    let verify = own.history.last().unwrap().clone();
    let breach = Duties::default()
        .breach(&own, &verify)
        .expect("refused by default");
    assert!(
        breach.contains("处置人") && breach.contains("cannot verify"),
        "{breach}"
    );
    assert_eq!(Duties::RELAXED.breach(&own, &verify), None);
    let other = resolved_verified("chief-0001", Role::GridChief);
    assert_eq!(
        Duties::default().breach(&other, other.history.last().unwrap()),
        None
    );
}
