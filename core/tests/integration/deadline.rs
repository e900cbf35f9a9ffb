//! Time limits: the table (strictest matching exception, else the level's default), the
//! deadline a case is held to as it climbs, is returned and is solved, and old documents
//! without a priority.

use crate::common::{T0, details, event, uuid};
use gridlink_core::case::{
    Case, Category, DispatchTarget, Event, EventKind, Level, Priority, Role, TimeLimits, deadline,
    fold, is_overdue,
};

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
    let limits = TimeLimits::default();
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
