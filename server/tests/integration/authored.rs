//! The server's writes on someone's behalf take the merge pipeline like a phone's push: a
//! case the intake opens is judged there (an unknown grid; a submission whose id exists is
//! refused and answered from the stored case), simultaneous retries of one submission open
//! one case, and it is audited once.

use crate::common::TestServer;
use gridlink_core::case::{CaseDetails, Category, Location, Role, Source, Stamp};
use gridlink_core::doc::CaseDoc;
use gridlink_core::geo::LatLon;
use gridlink_core::sync::wire::RejectCode;
use gridlink_server::authored::{self, Intake, Opened, WriteError};

const GRID: &str = "320509001001-01";

fn intake(id: &str, reporter: &str, grid: &str) -> Intake {
    let location = Location {
        point: LatLon::new(31.16, 120.64),
        accuracy_m: 10.0,
    };
    Intake {
        details: CaseDetails {
            id: id.into(),
            category: Category::Sanitation,
            source: Source::Citizen,
            title: "小区门口垃圾堆积".into(),
            description: String::new(),
            location: Some(location),
            address_id: None,
            grid_id: grid.into(),
            reporter: Some("市民 王**".into()),
            priority: Default::default(),
        },
        photos: Vec::new(),
        stamp: Stamp {
            actor: reporter.into(),
            role: Role::Citizen,
            device: format!("dev-{reporter}"),
            at_ms: 1_795_910_400_000,
            location: Some(location),
        },
        audit_action: "citizen_report",
    }
}

#[test]
fn simultaneous_retries_of_one_submission_open_one_case_judged_by_the_pipeline() {
    let server = TestServer::start();
    let id = uuid::Uuid::new_v4().to_string();
    let answers: Vec<Result<Opened, WriteError>> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..6)
            .map(|_| {
                let (state, id) = (&server.state, &id);
                scope.spawn(move || authored::open(state, intake(id, "citizen-1", GRID)))
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let opened: Vec<Opened> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        opened.iter().filter(|o| **o == Opened::Created).count(),
        1,
        "{opened:?}"
    );
    assert!(
        opened
            .iter()
            .all(|o| matches!(o, Opened::Created | Opened::Already))
    );
    let stored = server.state.store().load_doc(&id).unwrap().unwrap();
    let case = CaseDoc::load(&id, &stored.bytes).unwrap().case().unwrap();
    assert_eq!(case.history.len(), 1);
    assert_eq!(case.state.reporter.as_deref(), Some("citizen-1"));
    let audited = server
        .state
        .store()
        .audit_log(1_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.subject == id && e.action == "citizen_report")
        .count();
    assert_eq!(audited, 1);

    // Another reporter's submission with that id writes nothing.
    assert_eq!(
        authored::open(&server.state, intake(&id, "citizen-2", GRID)).unwrap(),
        Opened::Taken
    );
    // The pipeline judges what the intake wrote: no grid of that name, nothing stored.
    let lost = uuid::Uuid::new_v4().to_string();
    match authored::open(&server.state, intake(&lost, "citizen-1", "999999999999-99")) {
        Err(WriteError::Refused(r)) => assert_eq!(r.code, RejectCode::UnknownGrid),
        other => panic!("{other:?}"),
    }
    assert!(server.state.store().load_doc(&lost).unwrap().is_none());
    // A citizen gives citizen reports only.
    let mut inspection = intake(&lost, "citizen-1", GRID);
    inspection.details.source = Source::GridInspector;
    assert!(matches!(
        authored::open(&server.state, inspection),
        Err(WriteError::Invalid(_))
    ));
    assert!(server.state.store().load_doc(&lost).unwrap().is_none());
}
