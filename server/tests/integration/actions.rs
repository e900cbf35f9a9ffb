//! Actions recorded by the server (`POST /v1/cases/{id}/events`): the command centre
//! dispatches, a department returns, and every phone in scope — the caller's own included —
//! receives the events by sync; roles, states and scopes are enforced as for phones.

use crate::common::{Phone, TestServer};
use gridlink_core::case::{EventKind, Level, Status};
use gridlink_core::sync::{Transport, TransportError};

const GRID: &str = "320509001001-01";
const T0: i64 = 1_795_910_400_000;

fn post(
    phone: &Phone,
    case: &str,
    event: serde_json::Value,
) -> Result<serde_json::Value, TransportError> {
    phone
        .transport
        .post(
            &format!("/v1/cases/{case}/events"),
            event.to_string().as_bytes(),
        )
        .map(|body| serde_json::from_slice(&body).unwrap())
}

#[test]
fn the_command_centre_dispatches_a_department_returns_and_every_phone_sees_it() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let operator = server.phone("op-01");
    let department = server.phone("dept-env-01");
    let case = inspector.report(GRID, "河道排污", T0);
    inspector.sync();
    chief.sync();

    // The chief accepts from the web; the chief's own phone receives the event.
    let accepted = post(
        &chief,
        &case,
        serde_json::json!({"Accepted": {"assignee": null, "due_at_ms": null}}),
    )
    .unwrap();
    assert_eq!(accepted["status"], "accepted");
    chief.sync();
    assert_eq!(
        chief.store.case(&case).unwrap().state.status,
        Status::Accepted
    );

    let dispatched = post(
        &operator,
        &case,
        serde_json::json!({"Dispatched": {
            "target": {"Department": {"code": "dept-env", "name": "区生态环境局"}},
            "due_at_ms": null,
            "note": "请核查排污口"
        }}),
    )
    .unwrap();
    assert_eq!(
        (dispatched["status"].as_str(), dispatched["level"].as_str()),
        (Some("dispatched"), Some("department"))
    );
    department.sync();
    let seen = department.store.case(&case).unwrap();
    assert_eq!(seen.state.level, Level::Department);
    let event = seen.history.last().unwrap();
    assert_eq!(
        (event.actor.as_str(), event.id.as_str()),
        ("op-01", dispatched["event_id"].as_str().unwrap())
    );

    post(
        &department,
        &case,
        serde_json::json!({"Returned": {"reason": "属于城管职责"}}),
    )
    .unwrap();
    for phone in [&inspector, &chief] {
        phone.sync();
        let c = phone.store.case(&case).unwrap();
        assert_eq!(
            (c.state.status, c.state.level),
            (Status::Accepted, Level::Grid)
        );
    }
    // The server's copy and the phones' agree.
    assert_eq!(
        server.doc(&case).unwrap().case().unwrap(),
        chief.store.case(&case).unwrap()
    );
}

#[test]
fn actions_are_refused_as_they_would_be_on_a_phone() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let case = inspector.report(GRID, "井盖缺失", T0);
    inspector.sync();
    let refused =
        |phone: &Phone, case: &str, event: serde_json::Value| match post(phone, case, event) {
            Err(TransportError::Status { status, body }) => (status, body.code),
            other => panic!("accepted: {other:?}"),
        };
    // An inspector may not dispatch (巡办分离).
    let dispatch = serde_json::json!({"Dispatched": {
        "target": {"Department": {"code": "dept-env", "name": "区生态环境局"}},
        "due_at_ms": null, "note": ""}});
    assert_eq!(
        refused(&inspector, &case, dispatch),
        (409, "not_allowed".to_owned())
    );
    // A case of another grid is not there for them.
    let stranger = server.phone("insp-0002");
    assert_eq!(
        refused(
            &stranger,
            &case,
            serde_json::json!({"Comment": {"text": "路过"}})
        ),
        (404, "not_found".to_owned())
    );
    assert_eq!(
        refused(
            &inspector,
            &uuid::Uuid::new_v4().to_string(),
            serde_json::json!({"Comment": {"text": "x"}})
        ),
        (404, "not_found".to_owned())
    );
    // Malformed, empty-reason and report events.
    assert_eq!(
        refused(&inspector, &case, serde_json::json!({"Teleported": {}})).0,
        400
    );
    assert_eq!(
        refused(
            &inspector,
            &case,
            serde_json::json!({"Reported": {"photos": []}})
        )
        .0,
        400
    );
    let chief = server.phone("chief-0001");
    assert_eq!(
        refused(
            &chief,
            &case,
            serde_json::json!({"RejectedInvalid": {"reason": "  "}})
        ),
        (422, "invalid".to_owned())
    );
    // Nothing of that reached the case.
    inspector.sync();
    assert_eq!(inspector.store.case(&case).unwrap().history.len(), 1);
    assert!(matches!(
        inspector.store.case(&case).unwrap().history[0].kind,
        EventKind::Reported { .. }
    ));
}

/// Eight actions recorded at once for one device all apply: they share the device's server
/// actor, and used to clash on its sequence numbers ("corrupt: duplicate seq").
#[test]
fn simultaneous_actions_of_one_device_all_apply() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let case = inspector.report(GRID, "垃圾满溢", T0);
    inspector.sync();
    let results: Vec<Result<serde_json::Value, TransportError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (chief, case) = (&chief, &case);
                s.spawn(move || {
                    post(
                        chief,
                        case,
                        serde_json::json!({"Comment": {"text": format!("同时的备注 {i}")}}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let history = server.doc(&case).unwrap().case().unwrap().history;
    assert_eq!(history.len(), 9);
    chief.sync();
    assert_eq!(chief.store.case(&case).unwrap().history.len(), 9);
}

/// A record document is not a case: its id on the events endpoint gets a clear 4xx, not a 500.
#[test]
fn recording_a_case_event_on_a_record_is_a_clear_refusal() {
    let server = TestServer::start();
    server.with_base_data();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let chief = server.phone("chief-0001");
    let address = district
        .addresses
        .iter()
        .find(|a| a.grid_id == GRID)
        .unwrap();
    for id in [
        gridlink_core::address::address_doc_id(&address.code),
        format!("med-{}", uuid::Uuid::new_v4()),
    ] {
        match post(
            &chief,
            &id,
            serde_json::json!({"Comment": {"text": "备注"}}),
        ) {
            Err(TransportError::Status { status, body }) => {
                assert_eq!(status, 422, "{id}");
                assert_eq!(body.code, "not_a_case");
                assert!(body.message.contains("不是案件"), "{}", body.message);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}
