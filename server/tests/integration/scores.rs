//! Scores follow the merged histories: a case solved in the grid and verified credits the
//! grid (rolled up into its village and town) and the people; a change after verification
//! (a failed re-check) rewrites the case's lines; only operators read them.

use crate::common::{TestServer, test_config};
use gridlink_core::case::EventKind;
use gridlink_core::sync::{Transport, TransportError};

const GRID: &str = "320509001001-01";

fn scores(phone: &crate::common::Phone) -> serde_json::Value {
    let now = gridlink_server::now_ms();
    serde_json::from_slice(
        &phone
            .transport
            .get(&format!("/v1/scores?from=0&to={}", now + 3_600_000))
            .unwrap(),
    )
    .unwrap()
}

fn points(report: &serde_json::Value, list: &str, kind: &str, id: &str) -> Option<f64> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["kind"] == kind && u["id"] == id)
        .map(|u| u["points"].as_f64().unwrap())
}

#[test]
fn a_verified_grid_fix_credits_the_grid_its_areas_and_people_and_a_reopening_rewrites_it() {
    let server = TestServer::start_with(test_config(), 0);
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let operator = server.phone("op-01");
    let t = gridlink_server::now_ms() - 3_600_000;
    let case = inspector.report(GRID, "楼道堆放杂物", t);
    inspector.sync();
    chief.sync();
    chief
        .act(
            &case,
            EventKind::Accepted {
                assignee: Some("insp-0001".into()),
                due_at_ms: None,
            },
            t + 60_000,
        )
        .unwrap();
    chief.sync();
    inspector.sync();
    inspector
        .act(
            &case,
            EventKind::ResolvedInGrid {
                note: "已清理".into(),
            },
            t + 120_000,
        )
        .unwrap();
    inspector.sync();
    // Not verified yet: only the report counts.
    let before = scores(&operator);
    assert_eq!(points(&before, "units", "grid", GRID), None);
    assert_eq!(points(&before, "units", "person", "insp-0001"), Some(1.0));
    chief.sync();
    chief
        .act(
            &case,
            EventKind::Verified {
                note: "已核实".into(),
            },
            t + 180_000,
        )
        .unwrap();
    chief.sync();
    let after = scores(&operator);
    assert_eq!(points(&after, "units", "grid", GRID), Some(12.0));
    assert_eq!(points(&after, "units", "person", "insp-0001"), Some(13.0));
    assert_eq!(
        points(&after, "areas", "village", "320509001001"),
        Some(12.0)
    );
    assert_eq!(points(&after, "areas", "town", "320509001"), Some(12.0));
    // The fix did not hold after all: the case's lines are rewritten.
    chief
        .act(
            &case,
            EventKind::VerificationFailed {
                reason: "又堆上了".into(),
            },
            t + 240_000,
        )
        .unwrap();
    chief.sync();
    let reopened = scores(&operator);
    assert_eq!(points(&reopened, "units", "grid", GRID), Some(-4.0));
    assert_eq!(
        points(&reopened, "units", "person", "insp-0001"),
        Some(-3.0)
    );
    // Only the command centre reads scores; a bad period is refused.
    assert!(matches!(
        chief.transport.get("/v1/scores"),
        Err(TransportError::Status { status: 403, .. })
    ));
    assert!(matches!(
        operator.transport.get("/v1/scores?from=10&to=5"),
        Err(TransportError::Status { status: 400, .. })
    ));
}

/// The roll-ups (30-day blocks of score sums, case counts per day) give what the raw rows give,
/// for periods that start and end anywhere, after cases changed under them.
#[test]
fn period_totals_and_case_statistics_agree_with_the_raw_rows_for_any_period() {
    let server = crate::common::TestServer::start_sqlite_with(crate::common::test_config(), 300);
    let store = server.state.store();
    let raw = rusqlite::Connection::open(server.data.path().join("gridlink.sqlite")).unwrap();
    let day_ms = 86_400_000;
    let now = crate::common::T0;
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..25 {
        let from = now - rng.i64(0..40 * day_ms);
        let to = from + rng.i64(1..45 * day_ms);
        let (first, end) = (
            (from + 28_800_000).div_euclid(day_ms),
            (to - 1 + 28_800_000).div_euclid(day_ms) + 1,
        );
        let mut want: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
        let mut stmt = raw
            .prepare(
                "SELECT unit, points FROM score_lines
                 WHERE (at + 28800000) / 86400000 >= ?1 AND (at + 28800000) / 86400000 < ?2",
            )
            .unwrap();
        let mut rows = stmt.query([first, end]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let e = want.entry(row.get(0).unwrap()).or_default();
            e.0 += row.get::<_, f64>(1).unwrap();
            e.1 += 1;
        }
        let got: std::collections::BTreeMap<String, (f64, u64)> = store
            .score_totals(from, to)
            .unwrap()
            .into_iter()
            .map(|t| (t.unit, (t.points, t.lines)))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (unit, (points, lines)) in &want {
            assert!(
                (got[unit].0 - points).abs() < 1e-6 && got[unit].1 == *lines,
                "{unit}"
            );
        }
        let stats = store
            .case_stats(from, to, &gridlink_server::store::Area::district())
            .unwrap();
        let (reported, closed): (i64, i64) = raw
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(status = 'closed'), 0) FROM cases
                 WHERE (reported_at + 28800000) / 86400000 >= ?1 AND (reported_at + 28800000) / 86400000 < ?2",
                [first, end],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (stats.reported, stats.closed),
            (reported as u64, closed as u64)
        );
    }
    // After a case moves on (resolved, verified), the roll-ups follow.
    let operator = server.phone("op-01");
    operator.sync();
    let case = operator
        .store
        .list(&Default::default())
        .unwrap()
        .items
        .into_iter()
        .find(|c| {
            c.status == gridlink_core::case::Status::Accepted
                && c.level == gridlink_core::case::Level::Grid
        })
        .expect("an accepted case in a grid");
    let before = store
        .case_stats(
            i64::MIN,
            i64::MAX,
            &gridlink_server::store::Area::district(),
        )
        .unwrap();
    let recorded = operator.act(
        &case.id,
        gridlink_core::case::EventKind::Resolved {
            note: "指挥中心协调处置".into(),
        },
        now,
    );
    assert!(recorded.is_some());
    operator.sync();
    let after = store
        .case_stats(
            i64::MIN,
            i64::MAX,
            &gridlink_server::store::Area::district(),
        )
        .unwrap();
    assert_eq!(after.reported, before.reported);
    assert_eq!(
        after.solved_by_level.get("grid").copied().unwrap_or(0),
        before.solved_by_level.get("grid").copied().unwrap_or(0) + 1
    );
    command_centre_rollups_agree_with_the_raw_rows(store.as_ref(), &raw);
}

/// The command centre's roll-ups (cases per day, town, category and outcome; open cases per
/// grid and level) equal the same figures counted from the case rows.
fn command_centre_rollups_agree_with_the_raw_rows(
    store: &dyn gridlink_server::store::ServerStore,
    raw: &rusqlite::Connection,
) {
    use gridlink_server::store::Area;
    use std::collections::BTreeMap;
    let district = Area {
        district: true,
        ..Area::default()
    };
    let mut got: BTreeMap<(i64, String, String, bool, Option<String>), u64> = BTreeMap::new();
    for c in store
        .case_counts(i64::MIN / 2, i64::MAX / 2, &district)
        .unwrap()
    {
        *got.entry((c.day, c.town_id, c.category, c.closed, c.solved_level))
            .or_default() += c.n;
    }
    let want: BTreeMap<(i64, String, String, bool, Option<String>), u64> = raw
        .prepare(
            "SELECT (reported_at + 28800000) / 86400000, town_id, category, status = 'closed',
                    solved_level, COUNT(*) FROM cases GROUP BY 1, 2, 3, 4, 5",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                r.get::<_, i64>(5)? as u64,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, want);
    let open = "status IN ('reported', 'accepted', 'dispatched', 'handling')";
    let count = |sql: &str| -> BTreeMap<String, u64> {
        raw.prepare(sql)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let by_grid: BTreeMap<String, u64> = store.open_by_grid().unwrap().into_iter().collect();
    assert_eq!(
        by_grid,
        count(&format!(
            "SELECT grid_id, COUNT(*) FROM cases WHERE {open} GROUP BY 1"
        ))
    );
    let by_level: BTreeMap<String, u64> = store
        .open_by_level(&district)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        by_level,
        count(&format!(
            "SELECT level, COUNT(*) FROM cases WHERE {open} GROUP BY 1"
        ))
    );
    // A town's share: only its rows.
    let (town, _): (String, i64) = raw
        .query_row(
            "SELECT town_id, COUNT(*) FROM cases GROUP BY 1 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let of_town: BTreeMap<String, u64> = store
        .open_by_level(&Area {
            towns: vec![town.clone()],
            ..Area::default()
        })
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        of_town,
        count(&format!(
            "SELECT level, COUNT(*) FROM cases WHERE {open} AND town_id = '{town}' GROUP BY 1"
        ))
    );
}

/// What a town's operator reads of `GET /v1/scores` is their town's: its grids, villages and
/// the town, and the cases reported there; no person, department or other town. (Before
/// visibility had one home, the answer was the whole district's, byte for byte.)
#[test]
fn a_town_operator_reads_the_scores_and_case_figures_of_their_town_only() {
    let server = TestServer::start_sqlite_with(test_config(), 300);
    let store = server.state.store();
    let grids = store.grids().unwrap();
    let town = grids
        .iter()
        .find(|g| g.grid_id == GRID)
        .unwrap()
        .town_id
        .clone();
    store
        .add_user(
            &gridlink_server::store::User {
                id: "op-town".into(),
                name: "镇指挥分中心".into(),
                role: gridlink_core::case::Role::Operator,
            },
            "test",
        )
        .unwrap();
    store
        .grant(
            "op-town",
            &gridlink_core::sync::scope::ScopeKey::Town(town.clone()),
            "test",
        )
        .unwrap();
    let district = scores(&server.phone("op-01"));
    let mine = scores(&server.phone("op-town"));
    let town_of = |kind: &str, id: &str| -> Option<String> {
        match kind {
            "grid" => grids
                .iter()
                .find(|g| g.grid_id == id)
                .map(|g| g.town_id.clone()),
            "village" => grids
                .iter()
                .find(|g| g.village_id == id)
                .map(|g| g.town_id.clone()),
            "town" => Some(id.to_owned()),
            _ => None,
        }
    };
    let towns_in = |report: &serde_json::Value, list: &str| -> Vec<Option<String>> {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| town_of(u["kind"].as_str().unwrap(), u["id"].as_str().unwrap()))
            .collect()
    };
    // The district's report holds other towns, people and departments: the test can fail.
    let everywhere = towns_in(&district, "units");
    assert!(
        everywhere
            .iter()
            .any(|t| t.as_ref().is_some_and(|t| *t != town))
    );
    assert!(
        everywhere.iter().any(Option::is_none),
        "people, departments"
    );
    for list in ["units", "areas"] {
        let seen = towns_in(&mine, list);
        assert!(!seen.is_empty(), "{list}: the town's own figures are there");
        assert!(
            seen.iter().all(|t| t.as_deref() == Some(town.as_str())),
            "{list}: {seen:?}"
        );
    }
    // The town's units carry the same points as in the district's report.
    for u in mine["units"].as_array().unwrap() {
        let (kind, id) = (u["kind"].as_str().unwrap(), u["id"].as_str().unwrap());
        assert_eq!(
            points(&district, "units", kind, id),
            u["points"].as_f64(),
            "{kind}:{id}"
        );
    }
    // The case figures are the town's cases.
    let raw = rusqlite::Connection::open(server.data.path().join("gridlink.sqlite")).unwrap();
    let count = |sql: &str| -> u64 {
        raw.query_row(sql, [&town], |r| r.get::<_, i64>(0))
            .unwrap()
            .try_into()
            .unwrap()
    };
    let reported = count("SELECT COUNT(*) FROM cases WHERE town_id = ?1");
    assert!(reported > 0);
    assert!(district["cases"]["reported"].as_u64().unwrap() > reported);
    assert_eq!(mine["cases"]["reported"].as_u64(), Some(reported));
    assert_eq!(
        mine["cases"]["closed"].as_u64(),
        Some(count(
            "SELECT COUNT(*) FROM cases WHERE town_id = ?1 AND status = 'closed'"
        ))
    );
}
