//! Scripted field days (`fixtures/days/*.json`): real phones patrol with the standard
//! checklists, hazards become cases, chiefs, the command centre, departments and enforcement
//! act, each step synced through the real server; at the end the day's completion rate, 721
//! split, scores and patrol coverage equal what the fixture says.
//!
//! A step is `{ "at": "HH:MM", "user": id, <one of> }` with
//! `"visit": { id, address, template, answers: [[item, Answer]], hazards: {item: case name} }`,
//! `"report": { case, grid, category, title }` or `"act": { case, event }` (an `EventKind` as
//! JSON; `"due": "HH:MM"` sets its `due_at_ms`). Times are China time on `date`.

use crate::common::{Phone, TestServer};
use gridlink_core::case::{Category, EventKind, Location, Source};
use gridlink_core::checklist::Answer;
use gridlink_core::geo::LatLon;
use gridlink_core::store::{Moment, NewCase};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Deserialize)]
struct Day {
    name: String,
    date: String,
    steps: Vec<Step>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Step {
    at: String,
    user: String,
    #[serde(default)]
    visit: Option<VisitStep>,
    #[serde(default)]
    report: Option<ReportStep>,
    #[serde(default)]
    act: Option<ActStep>,
}

#[derive(Debug, Deserialize)]
struct VisitStep {
    id: String,
    address: String,
    template: String,
    answers: Vec<(String, Answer)>,
    hazards: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ReportStep {
    case: String,
    grid: String,
    category: String,
    title: String,
}

#[derive(Debug, Deserialize)]
struct ActStep {
    case: String,
    event: serde_json::Value,
    #[serde(default)]
    due: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Expect {
    reported: u64,
    closed: u64,
    completion_rate: f64,
    solved_by_level: BTreeMap<String, u64>,
    split_721: [u64; 3],
    units: BTreeMap<String, f64>,
    areas: BTreeMap<String, f64>,
    coverage: BTreeMap<String, (usize, usize)>,
}

/// UTC ms of `HH:MM` China time on `date` (YYYY-MM-DD).
fn time_on(date: &str, hhmm: &str) -> i64 {
    let num = |s: &str| s.parse::<i64>().unwrap();
    let (y, m, d) = (num(&date[..4]), num(&date[5..7]), num(&date[8..10]));
    // Days from the civil date (Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let (h, min) = hhmm.split_once(':').unwrap();
    days * 86_400_000 + (num(h) - 8) * 3_600_000 + num(min) * 60_000
}

fn run(path: &std::path::Path) {
    let day: Day = serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let server = TestServer::start();
    server.with_base_data();
    let mut phones: HashMap<String, Phone> = HashMap::new();
    let mut cases: HashMap<String, String> = HashMap::new();
    for (n, step) in day.steps.iter().enumerate() {
        let at_ms = time_on(&day.date, &step.at);
        let phone = phones
            .entry(step.user.clone())
            .or_insert_with(|| server.phone(&step.user));
        let context = format!("{} step {n} ({} {})", day.name, step.at, step.user);
        phone.sync();
        if let Some(visit) = &step.visit {
            let context = format!("{context} visit {}", visit.id);
            let address = phone.store.address(&visit.address).unwrap();
            let here = |minutes: i64| Moment {
                at_ms: at_ms + minutes * 60_000,
                location: Some(Location {
                    point: address.details.point,
                    accuracy_m: 10.0,
                }),
            };
            let id = uuid::Uuid::new_v4().to_string();
            phone
                .store
                .start_visit(&id, &visit.address, &visit.template, here(0), 200.0)
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            for (item, answer) in &visit.answers {
                let out = phone
                    .store
                    .answer_visit(&id, item, answer.clone(), here(1))
                    .unwrap_or_else(|e| panic!("{context}: {item}: {e}"));
                match (visit.hazards.get(item), out.hazard_case) {
                    (Some(name), Some(case)) => {
                        cases.insert(name.clone(), case.details.id);
                    }
                    (None, None) => {}
                    (want, got) => panic!("{context}: {item}: expected {want:?}, got {got:?}"),
                }
            }
            phone
                .store
                .finish_visit(&id, here(2))
                .unwrap_or_else(|e| panic!("{context}: {e}"));
        }
        if let Some(report) = &step.report {
            let id = uuid::Uuid::new_v4().to_string();
            phone
                .store
                .report(
                    NewCase {
                        id: id.clone(),
                        category: Category::from_code(&report.category).unwrap(),
                        source: Source::GridInspector,
                        title: report.title.clone(),
                        description: report.title.clone(),
                        location: Some(Location {
                            point: LatLon::new(31.16, 120.64),
                            accuracy_m: 10.0,
                        }),
                        address_id: None,
                        grid_id: report.grid.clone(),
                        photos: Vec::new(),
                        priority: Default::default(),
                    },
                    Moment {
                        at_ms,
                        location: None,
                    },
                )
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            cases.insert(report.case.clone(), id);
        }
        if let Some(act) = &step.act {
            let mut event = act.event.clone();
            if let Some(due) = &act.due
                && let Some(fields) = event.as_object_mut().and_then(|o| o.values_mut().next())
            {
                fields["due_at_ms"] = time_on(&day.date, due).into();
            }
            let kind: EventKind =
                serde_json::from_value(event).unwrap_or_else(|e| panic!("{context}: {e}"));
            let case_id = &cases[&act.case];
            phone
                .store
                .record(
                    case_id,
                    kind,
                    Moment {
                        at_ms,
                        location: None,
                    },
                )
                .unwrap_or_else(|e| panic!("{context}: {}: {e}", act.case));
        }
        let report = phone.sync();
        assert_eq!(report.docs_rejected, 0, "{context}: {report:?}");
    }
    for phone in phones.values() {
        phone.sync();
    }

    let from = time_on(&day.date, "00:00");
    let to = from + 86_400_000;
    let store = server.state.store();
    let report = gridlink_server::scores::report(
        store.as_ref(),
        from,
        to,
        &gridlink_server::store::Area::district(),
    )
    .unwrap();
    let e = &day.expect;
    assert_eq!(report.cases.reported, e.reported, "{}", day.name);
    assert_eq!(report.cases.closed, e.closed, "{}", day.name);
    assert!(
        (report.completion_rate - e.completion_rate).abs() < 1e-4,
        "{report:?}"
    );
    assert_eq!(report.cases.solved_by_level, e.solved_by_level);
    assert_eq!(report.split_721, e.split_721);
    let units: BTreeMap<String, f64> = report
        .units
        .iter()
        .map(|u| (format!("{}:{}", u.kind, u.id), u.points))
        .collect();
    assert_eq!(units, e.units, "{}", day.name);
    for (area, points) in &e.areas {
        let found = report
            .areas
            .iter()
            .find(|a| format!("{}:{}", a.kind, a.id) == *area)
            .unwrap_or_else(|| panic!("{area} missing: {:?}", report.areas));
        assert!(
            (found.points - points).abs() < 1e-9,
            "{area}: {}",
            found.points
        );
    }
    for (grid, (visited, total)) in &e.coverage {
        let rows = store.coverage(grid).unwrap();
        let done = rows
            .iter()
            .filter(|r| r.last_visit_ms.is_some_and(|t| t >= from && t < to))
            .count();
        assert_eq!((done, rows.len()), (*visited, *total), "{grid}");
    }
    // Every phone holds exactly the server's version of each case it was part of.
    for (name, id) in &cases {
        let Some(server_doc) = server.doc(id) else {
            panic!("{name} not on the server")
        };
        let server_case = server_doc.case().unwrap();
        for phone in phones.values() {
            if let Ok(case) = phone.store.case(id) {
                assert_eq!(case.state, server_case.state, "{name} on {}", phone.user());
            }
        }
    }
}

#[test]
fn scripted_field_days_end_with_the_expected_721_split_completion_and_scores() {
    let dir = gridlink_fixtures::days_dir();
    let mut days: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    days.sort();
    assert!(!days.is_empty(), "no field days in {}", dir.display());
    for day in days {
        run(&day);
    }
}
