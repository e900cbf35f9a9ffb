//! The district's rules on the server: the separation of duties checked on the phone and on
//! every push, relaxed by the district; deadlines in working days with a holiday calendar an
//! operator loads, counted again for open cases at once; the warning before the deadline in
//! the case rows and the list filter.

use crate::common::*;
use crate::push_ops::push;
use gridlink_core::case::{Duties, EventKind, Role, Stamp, Status, WorkCalendar};
use gridlink_core::sync::device_actor;
use gridlink_core::sync::visibility::Area;
use gridlink_core::sync::wire::RejectCode;
use gridlink_server::store::{self, CaseFilter, DistrictRules};
use std::time::Duration;

/// The inspector's own verification, built past the phone's check (as a modified app could)
/// and pushed.
fn push_own_verification(
    server: &TestServer,
    inspector: &Phone,
    id: &str,
    at: i64,
) -> Vec<RejectCode> {
    let mut doc = server.doc(id).unwrap();
    doc.set_actor(device_actor(
        inspector
            .enrollment
            .actor_prefix
            .as_slice()
            .try_into()
            .unwrap(),
        0,
    ));
    let before = doc.heads();
    doc.record_under(
        EventKind::Verified {
            note: "自己验收".into(),
        },
        Stamp {
            actor: inspector.user().into(),
            role: Role::GridInspector,
            device: inspector.device_id.clone(),
            at_ms: at,
            location: None,
        },
        &Duties::RELAXED,
    )
    .unwrap();
    let response = push(inspector, id, doc.save_after(&before));
    response
        .rejections
        .iter()
        .map(|r| {
            assert!(r.message.contains("处置人"), "{}", r.message);
            r.code
        })
        .collect()
}

#[test]
fn a_resolver_cannot_verify_their_own_fix_on_the_phone_nor_by_a_push_past_it() {
    let mut server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let id = inspector.report(GRID, "楼道堆放杂物", T0);
    let resolved = EventKind::ResolvedInGrid {
        note: "已清理".into(),
    };
    assert!(inspector.act(&id, resolved, T0 + 1_000).is_some());
    // The phone refuses, by the same core rule…
    let own = EventKind::Verified {
        note: "自己验收".into(),
    };
    assert!(inspector.act(&id, own, T0 + 2_000).is_none());
    inspector.sync();
    // …and so does the server, whatever the app sends.
    assert_eq!(
        push_own_verification(&server, &inspector, &id, T0 + 3_000),
        vec![RejectCode::RoleNotAllowed]
    );
    assert_eq!(
        server.doc(&id).unwrap().case().unwrap().state.status,
        Status::Resolved
    );

    // A district that lets one person do both says so; the nodes read it when they start.
    let relaxed = DistrictRules {
        duties: Duties::RELAXED,
        ..DistrictRules::default()
    };
    store::set_rules(&**server.state.store(), &relaxed, "test").unwrap();
    server.restart(Duration::ZERO);
    assert_eq!(
        push_own_verification(&server, &inspector, &id, T0 + 4_000),
        vec![]
    );
    assert_eq!(
        server.doc(&id).unwrap().case().unwrap().state.status,
        Status::Verified
    );
}

#[test]
fn a_holiday_calendar_moves_the_deadlines_of_open_cases_and_the_warning_lists_them() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    // T0 is Friday 2026-05-29, 04:26 in the district.
    let id = inspector.report(GRID, "路灯不亮", T0);
    inspector.sync();
    let row = |server: &TestServer| {
        let everything = CaseFilter {
            area: Area {
                district: true,
                ..Area::default()
            },
            ids: vec![id.clone()],
            limit: 10,
            ..CaseFilter::default()
        };
        server
            .state
            .store()
            .case_list(&everything)
            .unwrap()
            .remove(0)
    };
    let hour = 3_600_000;
    // Three working days (a sanitation case at the grid): the rest of Friday, Monday,
    // Tuesday, and Wednesday until 04:26; the weekend does not count.
    let due = T0 + 120 * hour;
    assert_eq!(row(&server).due_at, Some(due));
    let warn = row(&server).warn_at.unwrap();
    assert!(warn > T0 && warn < due);

    // Monday 1 June made a holiday: the deadline moves a day, at once.
    let mut rules = DistrictRules::default();
    rules.limits.calendar = WorkCalendar::parse("2026-06-01 休 测试假日").unwrap();
    let changed = store::set_rules(&**server.state.store(), &rules, "test").unwrap();
    assert!(changed >= 1, "{changed}");
    assert_eq!(row(&server).due_at, Some(due + 24 * hour));

    // In warning between its warning time and its deadline, and only then.
    let listed = |at: i64| {
        server
            .state
            .store()
            .case_list(&CaseFilter {
                area: Area {
                    district: true,
                    ..Area::default()
                },
                warning_at: Some(at),
                limit: 1_000,
                ..CaseFilter::default()
            })
            .unwrap()
            .iter()
            .any(|r| r.id == id)
    };
    let warn = row(&server).warn_at.unwrap();
    assert!(!listed(warn - 1));
    assert!(listed(warn));
    assert!(listed(due + 24 * hour));
    assert!(!listed(due + 24 * hour + 1));
    let district = Area {
        district: true,
        ..Area::default()
    };
    let counted = |at: i64| server.state.store().warning_count(at, &district).unwrap();
    assert_eq!(
        (
            counted(warn - 1),
            counted(warn),
            counted(due + 24 * hour + 1)
        ),
        (0, 1, 0)
    );
}

#[test]
fn the_demo_district_s_holiday_notice_reads_and_a_bad_one_names_its_line() {
    let calendar = WorkCalendar::parse(gridlink_fixtures::HOLIDAYS_2026).unwrap();
    let day = |date: &str| {
        let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
    };
    assert!(!calendar.is_working_day(day("2026-02-17")), "春节");
    assert!(
        calendar.is_working_day(day("2026-02-14")),
        "a Saturday worked"
    );
    assert!(!calendar.is_working_day(day("2026-10-05")), "国庆节");
    assert!(calendar.is_working_day(day("2026-10-09")), "a Friday");
    let err = WorkCalendar::parse("2026-02-15 休\n2026-02-31 休").unwrap_err();
    assert!(err.to_string().contains("第2行"), "{err}");
}
