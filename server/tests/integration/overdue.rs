//! Overdue cases: listed for those who cover them, escalated one rung by the platform, and the
//! escalation reaches the phones; cases solved meanwhile are left alone.

use crate::common::{TestServer, moment};
use gridlink_core::case::{Category, EventKind, Level, Priority, Role, Source, Status};
use gridlink_core::store::NewCase;
use gridlink_core::sync::Transport;

const GRID: &str = "320509001001-01";

fn report(phone: &crate::common::Phone, title: &str, priority: Priority, at: i64) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    phone
        .store
        .report(
            NewCase {
                id: id.clone(),
                category: Category::Sanitation,
                source: Source::GridInspector,
                title: title.into(),
                description: String::new(),
                location: None,
                address_id: None,
                grid_id: GRID.into(),
                photos: vec![],
                priority,
            },
            moment(at),
        )
        .unwrap();
    id
}

#[test]
fn overdue_cases_are_listed_and_escalated_by_the_platform() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let now = gridlink_server::now_ms();
    // Urgent (4 h in a grid), reported five hours ago: overdue. Normal: not yet.
    let late = report(
        &inspector,
        "燃气泄漏气味",
        Priority::Urgent,
        now - 5 * 3_600_000,
    );
    let fresh = report(
        &inspector,
        "垃圾桶满溢",
        Priority::Normal,
        now - 5 * 3_600_000,
    );
    // Urgent and overdue too, but solved before the run: left alone.
    let solved = report(
        &inspector,
        "路灯不亮",
        Priority::Urgent,
        now - 5 * 3_600_000,
    );
    inspector
        .act(
            &solved,
            EventKind::ResolvedInGrid {
                note: "已修复".into(),
            },
            now - 3_600_000,
        )
        .unwrap();
    inspector.sync();

    let listed: serde_json::Value =
        serde_json::from_slice(&chief.transport.get("/v1/cases/overdue").unwrap()).unwrap();
    let ids: Vec<&str> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![late.as_str()]);
    // Another grid's inspector covers none of them; citizens see no work orders.
    let stranger = server.phone("insp-0002");
    let theirs: serde_json::Value =
        serde_json::from_slice(&stranger.transport.get("/v1/cases/overdue").unwrap()).unwrap();
    assert!(theirs["cases"].as_array().unwrap().is_empty());

    let escalated = gridlink_server::overdue::escalate_overdue(&server.state, now).unwrap();
    assert_eq!(escalated, vec![late.clone()]);
    chief.sync();
    let case = chief.store.case(&late).unwrap();
    assert_eq!(case.state.level, Level::Village);
    let event = case.history.last().unwrap();
    assert_eq!((event.actor.as_str(), event.role), ("system", Role::System));
    assert_eq!(chief.store.case(&fresh).unwrap().state.level, Level::Grid);
    assert_eq!(
        chief.store.case(&solved).unwrap().state.status,
        Status::Resolved
    );
    // At the village it has the village's time: not overdue again right away.
    assert!(
        gridlink_server::overdue::escalate_overdue(&server.state, now)
            .unwrap()
            .is_empty()
    );
    // A second run later escalates it to the town.
    let later = now + 13 * 3_600_000;
    assert_eq!(
        gridlink_server::overdue::escalate_overdue(&server.state, later).unwrap(),
        vec![late.clone()]
    );
    chief.sync();
    assert_eq!(chief.store.case(&late).unwrap().state.level, Level::Town);
}
