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
