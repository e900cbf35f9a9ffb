//! Record documents through the real server: mediation files reach only their team, the
//! area's mediators and the district's supervisors; a patrol's visit and its hazard case
//! reach the server and show in coverage; pushes against the record rules are refused with
//! nothing stored; concurrent base-data corrections through a faulty link all land.

use crate::common::{GRID, GRID_2, OTHER_TOWN_GRID, Phone, T0, TestServer, moment, options};
use crate::link::Faulty;
use gridlink_core::address::{
    AddressChange, AddressDetails, AddressRecord, PersonPatch, address_doc_id,
};
use gridlink_core::case::{Category, Location, Stamp};
use gridlink_core::checklist::{Answer, VisitDetails, VisitRecord, VisitStep, visit_doc_id};
use gridlink_core::doc::RecordDoc;
use gridlink_core::geo::LatLon;
use gridlink_core::mediation::{
    DisputeType, MediationDetails, MediationStep, Party, Rung, Side, Team,
};
use gridlink_core::store::{Moment, RemoteChanges};
use gridlink_core::sync::device_actor;
use std::time::Duration;

fn district() -> gridlink_fixtures::District {
    gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small)
}

pub(crate) fn inspector_of(district: &gridlink_fixtures::District, grid: &str) -> String {
    district
        .users
        .iter()
        .find(|u| u.role == "grid_inspector" && u.grid_ids.iter().any(|g| g == grid))
        .unwrap()
        .id
        .clone()
}

/// Edits the way a modified phone could: a record change written straight into the phone's
/// store with the device's own actor, bypassing the store's checks.
fn forge(phone: &Phone, doc: &mut RecordDoc, before: Option<&[automerge::ChangeHash]>) {
    let bytes = match before {
        Some(heads) => doc.save_after(heads),
        None => doc.save(),
    };
    let report = phone
        .store
        .apply_remote(
            &[RemoteChanges {
                doc_id: doc.id().to_owned(),
                bytes,
            }],
            T0,
        )
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

fn actor_of(phone: &Phone) -> automerge::ActorId {
    device_actor(
        phone.enrollment.actor_prefix.as_slice().try_into().unwrap(),
        0,
    )
}

fn stamp_of(phone: &Phone, at_ms: i64) -> Stamp {
    Stamp {
        actor: phone.user().to_owned(),
        role: phone.enrollment.role,
        device: phone.device_id.clone(),
        at_ms,
        location: None,
    }
}

#[test]
fn a_mediation_file_reaches_only_its_team_the_areas_mediators_and_supervisors() {
    let server = TestServer::start();
    let d = district();
    let person = d
        .addresses
        .iter()
        .flat_map(|a| &a.people)
        .next()
        .unwrap()
        .clone();
    // Village 320509001001 holds GRID and GRID_2.
    let mediator = server.phone("med-0001");
    let team = server.phone(&inspector_of(&d, GRID));
    let neighbour = server.phone(&inspector_of(&d, GRID_2));
    let far = server.phone(&inspector_of(&d, OTHER_TOWN_GRID));
    let chief = server.phone("chief-0001");
    let operator = server.phone("op-01");
    let file_id = uuid::Uuid::new_v4().to_string();
    mediator
        .store
        .open_mediation(
            MediationDetails {
                file_id: file_id.clone(),
                grid_id: GRID.into(),
                dispute_type: DisputeType::Property,
                summary: "物业费纠纷".into(),
                parties: vec![
                    Party {
                        name: person.name.clone(),
                        side: Side::Applicant,
                        id_number: Some(person.id_number.clone()),
                        phone: Some(person.phone.clone()),
                    },
                    Party {
                        name: "某物业公司".into(),
                        side: Side::Respondent,
                        id_number: None,
                        phone: None,
                    },
                ],
                team: Team {
                    inspector: team.user().to_owned(),
                    mediator: mediator.user().to_owned(),
                    legal_adviser: None,
                    judge: None,
                },
                opened_at: Rung::Grid,
                case_id: None,
            },
            moment(T0),
        )
        .unwrap();
    // Pushed before any step: the parties' ID numbers are checked against the server's date.
    let opened = mediator.sync();
    assert_eq!(opened.docs_rejected, 0, "{opened:?}");
    mediator
        .store
        .record_mediation(
            &file_id,
            MediationStep::Session {
                at_ms: T0,
                place: "社区调解室".into(),
                attendees: vec![person.name.clone()],
                notes: "首次调解".into(),
            },
            moment(T0 + 60_000),
        )
        .unwrap();
    let pushed = mediator.sync();
    assert_eq!(pushed.docs_rejected, 0, "{pushed:?}");
    let doc_id = format!("med-{file_id}");
    assert!(server.state.store().load_doc(&doc_id).unwrap().is_some());

    for phone in [&team, &neighbour, &far, &chief, &operator] {
        phone.sync();
    }
    // The team's inspector and the supervisors have it, masked.
    for phone in [&team, &operator] {
        let file = phone.store.mediation_file(&file_id).unwrap();
        assert_eq!(file.steps.len(), 1);
        let shown = serde_json::to_string(&file).unwrap();
        assert!(!shown.contains(&person.id_number), "{}", phone.user());
        assert!(
            file.details.parties[0]
                .id_number
                .as_deref()
                .unwrap()
                .contains("****")
        );
    }
    // The mediator sees the parties in full.
    let own = mediator.store.mediation_file(&file_id).unwrap();
    assert_eq!(
        own.details.parties[0].id_number.as_deref(),
        Some(&*person.id_number)
    );
    // The grid's other inspectors, another town's, and the village chief never receive it:
    // not in the store, and the number is nowhere in their database file.
    for phone in [&neighbour, &far, &chief] {
        assert!(
            phone
                .store
                .document_ids()
                .unwrap()
                .iter()
                .all(|id| !id.starts_with("med-")),
            "{} received a mediation file",
            phone.user()
        );
        assert!(phone.store.mediation_files().unwrap().is_empty());
        let bytes = std::fs::read(phone.db_path()).unwrap();
        let wal = std::fs::read(phone.db_path().with_extension("sqlite-wal")).unwrap_or_default();
        for haystack in [&bytes, &wal] {
            assert!(
                !haystack
                    .windows(person.id_number.len())
                    .any(|w| w == person.id_number.as_bytes()),
                "{} holds the party's ID number",
                phone.user()
            );
        }
    }
    // A citizen cannot sync documents at all.
    let citizen = crate::citizen::register(&server, None, None);
    let err = citizen
        .store
        .sync(&citizen.transport, &options(), &())
        .unwrap_err();
    assert!(
        matches!(err, gridlink_core::Error::Server { status: 403, .. }),
        "{err}"
    );
    assert!(citizen.store.document_ids().unwrap().is_empty());
    // Someone outside the team may not add to it either.
    let stranger = server.phone(&inspector_of(&d, GRID_2));
    let stored = server.state.store().load_doc(&doc_id).unwrap().unwrap();
    let mut doc = RecordDoc::load(&doc_id, &stored.bytes).unwrap();
    doc.set_actor(actor_of(&stranger));
    doc.append::<gridlink_core::mediation::MediationRecord>(
        vec![MediationStep::Withdrawn {
            reason: "不调了".into(),
        }],
        &stamp_of(&stranger, T0 + 120_000),
    )
    .unwrap();
    // (An honest app pushes only its own changes on what the server holds; a modified one
    // sends the file whole.)
    let answer = crate::push_ops::push(&stranger, &doc_id, doc.save());
    assert_eq!(answer.rejections.len(), 1, "{answer:?}");
    assert!(
        answer.rejections[0].server_doc.is_none(),
        "nothing of the file is told"
    );
    let after = server.state.store().load_doc(&doc_id).unwrap().unwrap();
    let after = RecordDoc::load(&doc_id, &after.bytes).unwrap();
    assert_eq!(after.entries_json().unwrap().len(), 1);

    // A signed agreement: the signature page is a photo the file owns, uploaded like a case's
    // and served only to those who may read the file.
    let page = mediator
        .store
        .capture_photo(
            &doc_id,
            gridlink_core::store::PhotoInput::Bytes(&crate::photos::camera_bytes(5)),
            moment(T0 + 180_000),
            None,
        )
        .unwrap();
    mediator
        .store
        .record_mediation(
            &file_id,
            MediationStep::Agreed {
                text: "物业公司减免三个月物业费".into(),
                signatures: vec![page.hash.clone()],
                at_ms: T0 + 180_000,
            },
            moment(T0 + 180_000),
        )
        .unwrap();
    mediator.sync();
    let up = mediator
        .store
        .upload_photos(
            &mediator.transport,
            &crate::photos::upload_options(64 << 10),
            &(),
        )
        .unwrap();
    assert_eq!(
        (up.uploaded, up.failed, up.quarantined),
        (1, 0, 0),
        "{up:?}"
    );
    team.sync();
    assert!(
        !team
            .store
            .fetch_photo(&team.transport, &page.hash, false)
            .unwrap()
            .is_empty()
    );
    let err = neighbour
        .store
        .fetch_photo(&neighbour.transport, &page.hash, false)
        .unwrap_err();
    assert!(
        matches!(err, gridlink_core::Error::Server { status: 404, .. }),
        "{err}"
    );
}

#[test]
fn a_patrol_visit_and_its_hazard_case_reach_the_server_and_show_in_coverage() {
    let server = TestServer::start();
    assert!(server.with_base_data() > 3000);
    let d = district();
    let inspector = server.phone(&inspector_of(&d, GRID));
    let chief = server.phone("chief-0001");
    let operator = server.phone("op-01");
    inspector.sync();
    assert_eq!(inspector.store.templates().unwrap().len(), 7);
    let list = inspector.store.patrol_list(GRID, 30, T0).unwrap();
    let in_grid = d.addresses.iter().filter(|a| a.grid_id == GRID).count();
    assert_eq!(list.len(), in_grid);
    assert!(list.iter().all(|p| p.due));
    // Only its own grid's addresses came down.
    let other = d.addresses.iter().find(|a| a.grid_id == GRID_2).unwrap();
    assert!(inspector.store.address(&other.code).is_err());

    let target = &list[0];
    let address = inspector.store.address(&target.code).unwrap();
    let at = |minutes: i64| Moment {
        at_ms: T0 + minutes * 60_000,
        location: Some(Location {
            point: address.details.point,
            accuracy_m: 10.0,
        }),
    };
    let visit_id = uuid::Uuid::new_v4().to_string();
    inspector
        .store
        .start_visit(&visit_id, &target.code, "household", at(0), 200.0)
        .unwrap();
    let mut hazard = None;
    for (item, answer) in [
        ("residents_match", Answer::YesNo(true)),
        ("residents", Answer::Number(3.0)),
        ("ebike_indoor", Answer::YesNo(true)),
        ("dispute", Answer::YesNo(false)),
        ("needs_care", Answer::YesNo(false)),
    ] {
        let out = inspector
            .store
            .answer_visit(&visit_id, item, answer, at(1))
            .unwrap();
        hazard = hazard.or(out.hazard_case);
    }
    inspector.store.finish_visit(&visit_id, at(2)).unwrap();
    let hazard = hazard.expect("the e-bike answer opens a case");
    assert_eq!(hazard.details.category, Category::FireHazard);
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    let row = server
        .state
        .store()
        .case_row(&hazard.details.id)
        .unwrap()
        .unwrap();
    assert_eq!(row.place.grid_id, GRID);
    // The chief receives the case and the visit.
    chief.sync();
    assert_eq!(
        chief.store.case(&hazard.details.id).unwrap().details.title,
        hazard.details.title
    );
    assert!(
        chief
            .store
            .visit(&visit_id)
            .unwrap()
            .checked_out_at_ms
            .is_some()
    );

    // Coverage, as the command centre reads it.
    let url = format!("{}/v1/patrols/coverage?grid={GRID}&days=366", server.url);
    let body: serde_json::Value = serde_json::from_slice(
        &reqwest::blocking::Client::new()
            .get(&url)
            .bearer_auth(&operator.enrollment.token)
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["addresses"], in_grid);
    assert_eq!(body["visited"], 1, "{body}");
    let first = body["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == target.code.as_str())
        .unwrap();
    assert_eq!(first["overdue"], false);
    // An inspector of another town may not read this grid's coverage.
    let far = server.phone(&inspector_of(&d, OTHER_TOWN_GRID));
    let status = reqwest::blocking::Client::new()
        .get(&url)
        .bearer_auth(&far.enrollment.token)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 404);

    // An address registered at the door and visited before the next sync: both go up in one
    // push, and the visit finds its address in the same batch.
    let new_code = "320509001001-01-9001";
    inspector
        .store
        .register_address(
            AddressDetails {
                code: new_code.into(),
                text: "新建小区 1 幢".into(),
                point: address.details.point,
                grid_id: GRID.into(),
            },
            at(10),
        )
        .unwrap();
    let second = uuid::Uuid::new_v4().to_string();
    inspector
        .store
        .start_visit(&second, new_code, "household", at(11), 200.0)
        .unwrap();
    for (item, answer) in [
        ("residents_match", Answer::YesNo(true)),
        ("residents", Answer::Number(2.0)),
        ("ebike_indoor", Answer::YesNo(false)),
        ("dispute", Answer::YesNo(false)),
        ("needs_care", Answer::YesNo(false)),
    ] {
        inspector
            .store
            .answer_visit(&second, item, answer, at(12))
            .unwrap();
    }
    inspector.store.finish_visit(&second, at(13)).unwrap();
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    assert!(
        server
            .state
            .store()
            .load_doc(&visit_doc_id(&second))
            .unwrap()
            .is_some()
    );
}

#[test]
fn record_pushes_against_the_rules_are_refused_and_nothing_is_stored() {
    let server = TestServer::start();
    server.with_base_data();
    let d = district();
    let own = server.phone(&inspector_of(&d, GRID));
    let other = server.phone(&inspector_of(&d, GRID_2));
    own.sync();
    let template = own.store.template("household").unwrap();
    let address = d.addresses.iter().find(|a| a.grid_id == GRID).unwrap();

    // An address in another inspector's grid.
    let (mut doc, _) = RecordDoc::create::<AddressRecord>(
        &address_doc_id("X-0001"),
        &AddressDetails {
            code: "X-0001".into(),
            text: "伪造地址".into(),
            point: LatLon::new(address.lat, address.lon),
            grid_id: GRID.into(),
        },
        Vec::new(),
        &stamp_of(&other, T0),
        actor_of(&other),
    )
    .unwrap();
    forge(&other, &mut doc, None);
    // A visit recorded in another inspector's name.
    let visit = |inspector: &str, steps: Vec<VisitStep>| {
        let id = uuid::Uuid::new_v4().to_string();
        let (doc, _) = RecordDoc::create::<VisitRecord>(
            &visit_doc_id(&id),
            &VisitDetails {
                visit_id: id,
                inspector: inspector.to_owned(),
                address_code: address.code.clone(),
                grid_id: GRID.into(),
                template: template.clone(),
            },
            steps,
            &stamp_of(&own, T0),
            actor_of(&own),
        )
        .unwrap();
        doc
    };
    let check_in = VisitStep::CheckedIn {
        location: Location {
            point: LatLon::new(address.lat, address.lon),
            accuracy_m: 5.0,
        },
        distance_m: 0.0,
        off_site: false,
    };
    let mut impostor = visit(other.user(), vec![check_in.clone()]);
    // An answer to an item the template version does not have.
    let mut unknown_item = visit(
        own.user(),
        vec![
            check_in,
            VisitStep::Answered {
                item_id: "gas_ok".into(),
                answer: Answer::YesNo(true),
            },
        ],
    );
    // A correction with an ID number whose check digit is wrong.
    let addr_id = address_doc_id(&address.code);
    let stored = server.state.store().load_doc(&addr_id).unwrap().unwrap();
    let mut bad_id = RecordDoc::load(&addr_id, &stored.bytes).unwrap();
    bad_id.set_actor(actor_of(&own));
    let before = bad_id.heads();
    // The register's first person (`p0`) is at every fixture address of the grid.
    assert!(!address.people.is_empty());
    let person = "p0".to_owned();
    bad_id
        .append::<AddressRecord>(
            vec![AddressChange::PersonCorrected {
                person_id: person,
                patch: PersonPatch {
                    id_number: Some("320509199001011235".into()),
                    ..PersonPatch::default()
                },
            }],
            &stamp_of(&own, T0),
        )
        .unwrap();
    // A visit to another grid's address, and one on a template version never published.
    let elsewhere = d.addresses.iter().find(|a| a.grid_id == GRID_2).unwrap();
    let mut foreign_address = visit(own.user(), Vec::new());
    foreign_address = {
        let id = uuid::Uuid::new_v4().to_string();
        let mut details = foreign_address.details::<VisitRecord>().unwrap();
        details.visit_id = id.clone();
        details.address_code = elsewhere.code.clone();
        RecordDoc::create::<VisitRecord>(
            &visit_doc_id(&id),
            &details,
            Vec::new(),
            &stamp_of(&own, T0),
            actor_of(&own),
        )
        .unwrap()
        .0
    };
    let mut made_up = {
        let id = uuid::Uuid::new_v4().to_string();
        let mut lax = template.clone();
        lax.version = 99;
        lax.items.iter_mut().for_each(|i| i.required = false);
        RecordDoc::create::<VisitRecord>(
            &visit_doc_id(&id),
            &VisitDetails {
                visit_id: id,
                inspector: own.user().to_owned(),
                address_code: address.code.clone(),
                grid_id: GRID.into(),
                template: lax,
            },
            vec![VisitStep::CheckedOut],
            &stamp_of(&own, T0),
            actor_of(&own),
        )
        .unwrap()
        .0
    };
    for doc in [
        &mut impostor,
        &mut unknown_item,
        &mut foreign_address,
        &mut made_up,
    ] {
        forge(&own, doc, None);
    }
    forge(&own, &mut bad_id, Some(&before));
    // A second entry under a recorded entry's id (it would skip the checks of new entries).
    let mut twin = RecordDoc::load(&addr_id, &stored.bytes).unwrap();
    twin.set_actor(actor_of(&own));
    let twin_before = twin.heads();
    let mut copy = twin.entries_json().unwrap()[0].clone();
    copy["body"] = serde_json::json!({ "type": "person_moved_out", "person_id": "p0", "on": "2026-01-01", "to": null });
    twin.append_entry_json(&copy).unwrap();
    // A mediation file placed in another town, its opener naming themself on the team.
    let file_id = uuid::Uuid::new_v4().to_string();
    own.store
        .open_mediation(
            MediationDetails {
                file_id: file_id.clone(),
                grid_id: OTHER_TOWN_GRID.into(),
                dispute_type: DisputeType::Other,
                summary: "越界建档".into(),
                parties: vec![
                    Party {
                        name: "甲".into(),
                        side: Side::Applicant,
                        id_number: None,
                        phone: None,
                    },
                    Party {
                        name: "乙".into(),
                        side: Side::Respondent,
                        id_number: None,
                        phone: None,
                    },
                ],
                team: Team {
                    inspector: own.user().to_owned(),
                    mediator: "med-9999".into(),
                    legal_adviser: None,
                    judge: None,
                },
                opened_at: Rung::Grid,
                case_id: None,
            },
            moment(T0),
        )
        .unwrap();

    let r1 = other.sync();
    let r2 = own.sync();
    assert_eq!(r1.docs_rejected, 1, "{r1:?}");
    assert_eq!(r2.docs_rejected, 6, "{r2:?}");
    // The twin goes last, alone, so that the address's own refusal above is not mixed in.
    forge(&own, &mut twin, Some(&twin_before));
    let r3 = own.sync();
    assert_eq!(r3.docs_rejected, 1, "{r3:?}");
    let store = server.state.store();
    let med_id = format!("med-{file_id}");
    for id in [
        doc.id(),
        impostor.id(),
        unknown_item.id(),
        foreign_address.id(),
        made_up.id(),
        med_id.as_str(),
    ] {
        assert!(store.load_doc(id).unwrap().is_none(), "{id} was stored");
    }
    // The refused new file left the phone with what was typed in kept.
    let refused = own.store.rejected_entries().unwrap();
    let file = refused.iter().find(|r| r.doc_id == med_id).unwrap();
    assert_eq!(file.code, "out_of_scope");
    assert_eq!(file.details.as_ref().unwrap()["summary"], "越界建档");
    let stored_entries =
        RecordDoc::load(&addr_id, &store.load_doc(&addr_id).unwrap().unwrap().bytes)
            .unwrap()
            .entries_json()
            .unwrap()
            .len();
    assert_eq!(stored_entries, twin.entries_json().unwrap().len() - 1);
    let mut kept =
        RecordDoc::load(&addr_id, &store.load_doc(&addr_id).unwrap().unwrap().bytes).unwrap();
    assert_eq!(kept.heads(), {
        let mut fresh = RecordDoc::load(&addr_id, &stored.bytes).unwrap();
        fresh.heads()
    });
    // The phone shows what was refused, and its address is back to the server's.
    let refused = own.store.rejected_entries().unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r.doc_id == addr_id && r.code == "malformed"),
        "{refused:?}"
    );
    assert_eq!(
        own.store.address(&address.code).unwrap().entries,
        kept.entries_json().unwrap().len()
    );
    assert!(
        own.store
            .outbox()
            .unwrap()
            .iter()
            .all(|o| o.doc_id != addr_id || o.state != gridlink_core::store::OutboxState::Pending)
    );
}

#[test]
fn concurrent_corrections_through_faulty_links_and_a_restart_all_land() {
    let mut server = TestServer::start();
    server.with_base_data();
    let d = district();
    let a = server.phone(&inspector_of(&d, GRID));
    let b = server.phone("chief-0001");
    a.sync();
    b.sync();
    let address = d
        .addresses
        .iter()
        .find(|x| x.grid_id == GRID && x.people.len() >= 2)
        .unwrap();
    let links = [
        Faulty::new(a.transport.clone(), 11, 0),
        Faulty::new(b.transport.clone(), 12, 0),
    ];
    let mut injected = 0;
    for round in 0..4i64 {
        let at = moment(T0 + round * 60_000);
        a.store
            .change_address(
                &address.code,
                vec![AddressChange::PersonCorrected {
                    person_id: "p0".into(),
                    patch: PersonPatch {
                        phone: Some(format!("1390000{round:04}")),
                        ..PersonPatch::default()
                    },
                }],
                at,
            )
            .unwrap();
        b.store
            .change_address(
                &address.code,
                vec![AddressChange::PersonCorrected {
                    person_id: "p1".into(),
                    patch: PersonPatch {
                        name: Some(format!("改名{round}")),
                        ..PersonPatch::default()
                    },
                }],
                at,
            )
            .unwrap();
        if round == 2 {
            a.store
                .change_address(
                    &address.code,
                    vec![AddressChange::PersonMovedOut {
                        person_id: "p1".into(),
                        on: "2026-05-01".into(),
                        to: None,
                    }],
                    at,
                )
                .unwrap();
        }
        for (phone, link) in [(&a, &links[0]), (&b, &links[1])] {
            *link.faults_left.lock().unwrap() = 6;
            link.log.lock().unwrap().clear();
            let _ = phone.store.sync(link, &options(), &());
            injected += link.injected();
        }
        if round == 1 {
            server.restart(Duration::from_millis(50));
        }
    }
    assert!(injected >= 4, "only {injected} faults");
    for _ in 0..2 {
        a.sync();
        b.sync();
    }
    let on_a = a.store.address(&address.code).unwrap();
    let on_b = b.store.address(&address.code).unwrap();
    // 4 + 4 corrections and a move-out, on top of the register's entries.
    let register = address.houses.len() + address.people.len() + address.enterprises.len();
    assert_eq!(on_b.entries, register + 9);
    assert_eq!(on_a.entries, on_b.entries);
    assert!(on_b.unapplied.is_empty(), "{:?}", on_b.unapplied);
    // The chief sees the data in full: the last phone fix and the last rename both stand,
    // and the renamed person has moved out.
    assert_eq!(
        on_b.people["p0"].person.phone.as_deref(),
        Some("13900000003")
    );
    assert_eq!(on_b.people["p1"].person.name, "改名3");
    assert_eq!(on_b.people["p1"].moved_out.as_deref(), Some("2026-05-01"));
    let stored = server
        .state
        .store()
        .load_doc(&address_doc_id(&address.code))
        .unwrap()
        .unwrap();
    let server_doc = RecordDoc::load(&address_doc_id(&address.code), &stored.bytes).unwrap();
    assert_eq!(server_doc.entries_json().unwrap().len(), register + 9);
}
