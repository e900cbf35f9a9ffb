//! Record documents on the phone: base data at the door (concurrent corrections merge, a
//! move-out and an edit both survive, bad identifiers are refused and nothing saved is lost),
//! search and "near me", visits on their template version with hazards opening cases, and
//! mediation files offline with masked parties.

use crate::common::{MINUTE, T0, TempDir, stamp, uuid};
use gridlink_core::Error;
use gridlink_core::address::{
    AddressChange, AddressDetails, BaseError, Enterprise, EnterpriseKind, IdError, Person,
    PersonPatch, Residency,
};
use gridlink_core::case::{Category, Location, Role};
use gridlink_core::checklist::{
    Answer, ChecklistError, TemplateChange, TemplateDetails, TemplateRecord, standard_templates,
    template_doc_id,
};
use gridlink_core::doc::RecordDoc;
use gridlink_core::geo::LatLon;
use gridlink_core::mediation::{
    DisputeType, MediationDetails, MediationError, MediationStep, Party, Rung, Side, Team,
};
use gridlink_core::store::{Moment, RemoteChanges, Store, StoreConfig};

const GRID: &str = "320509001001-01";
const HOME: LatLon = LatLon {
    lat: 31.1600,
    lon: 120.6400,
};

fn open(dir: &TempDir, device: u128, user: &str, role: Role) -> Store {
    Store::open(
        dir.path(&format!("{user}.sqlite")),
        StoreConfig::new(uuid(device), user, role),
    )
    .unwrap()
}

fn at(minutes: i64) -> Moment {
    Moment {
        at_ms: T0 + minutes * MINUTE,
        location: None,
    }
}

fn here(minutes: i64, point: LatLon) -> Moment {
    Moment {
        at_ms: T0 + minutes * MINUTE,
        location: Some(Location {
            point,
            accuracy_m: 10.0,
        }),
    }
}

fn address(code: &str, text: &str, point: LatLon) -> AddressDetails {
    AddressDetails {
        code: code.into(),
        text: text.into(),
        point,
        grid_id: GRID.into(),
    }
}

/// Real-looking people and firms from the fixture district (valid check characters).
fn fixture_people() -> (
    Vec<gridlink_fixtures::Person>,
    Vec<gridlink_fixtures::Enterprise>,
) {
    // Generated once for every test of this module.
    static DISTRICT: std::sync::OnceLock<gridlink_fixtures::District> = std::sync::OnceLock::new();
    let district = DISTRICT
        .get_or_init(|| gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small));
    let people = district
        .addresses
        .iter()
        .flat_map(|a| a.people.clone())
        .take(4)
        .collect();
    let firms = district
        .addresses
        .iter()
        .flat_map(|a| a.enterprises.clone())
        .take(2)
        .collect();
    (people, firms)
}

fn person(p: &gridlink_fixtures::Person) -> Person {
    Person {
        name: p.name.clone(),
        id_number: p.id_number.clone(),
        phone: Some(p.phone.clone()),
        residency: Residency::RegisteredResident,
        house_id: None,
        moved_in: Some(p.moved_in.clone()),
    }
}

/// Sends every change `from` holds to `to` (what a sync through the server does).
fn exchange(from: &Store, to: &Store) {
    let batch: Vec<RemoteChanges> = from
        .document_ids()
        .unwrap()
        .into_iter()
        .map(|doc_id| RemoteChanges {
            bytes: from.unacknowledged_changes(&doc_id).unwrap(),
            doc_id,
        })
        .collect();
    let report = to.apply_remote(&batch, T0).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

#[test]
fn concurrent_corrections_of_one_address_merge_and_a_move_out_and_an_edit_both_survive() {
    let dir = TempDir::new();
    let a = open(&dir, 1, "insp-a", Role::GridInspector);
    let b = open(&dir, 2, "insp-b", Role::GridInspector);
    let (people, firms) = fixture_people();
    a.register_address(address("A-0001", "流虹路88号", HOME), at(0))
        .unwrap();
    a.change_address(
        "A-0001",
        vec![
            AddressChange::PersonAdded {
                person_id: "p1".into(),
                person: person(&people[0]),
            },
            AddressChange::PersonAdded {
                person_id: "p2".into(),
                person: person(&people[1]),
            },
        ],
        at(1),
    )
    .unwrap();
    exchange(&a, &b);

    // Offline, at the same time: A moves p1 out and fixes p2's phone; B corrects p1's phone
    // and residency, fixes p2's house, and records an enterprise.
    a.change_address(
        "A-0001",
        vec![
            AddressChange::PersonMovedOut {
                person_id: "p1".into(),
                on: "2026-11-20".into(),
                to: Some("吴中区".into()),
            },
            AddressChange::PersonCorrected {
                person_id: "p2".into(),
                patch: PersonPatch {
                    phone: Some("13900001111".into()),
                    ..PersonPatch::default()
                },
            },
        ],
        at(10),
    )
    .unwrap();
    b.change_address(
        "A-0001",
        vec![
            AddressChange::PersonCorrected {
                person_id: "p1".into(),
                patch: PersonPatch {
                    phone: Some("13900002222".into()),
                    residency: Some(Residency::NonRegistered),
                    ..PersonPatch::default()
                },
            },
            AddressChange::PersonCorrected {
                person_id: "p2".into(),
                patch: PersonPatch {
                    house_id: Some("h-301".into()),
                    ..PersonPatch::default()
                },
            },
            AddressChange::EnterpriseAdded {
                enterprise_id: "e1".into(),
                enterprise: Enterprise {
                    name: firms[0].name.clone(),
                    credit_code: firms[0].credit_code.clone(),
                    kind: EnterpriseKind::Business,
                    contact: firms[0].contact.clone(),
                    phone: Some(firms[0].phone.clone()),
                    responsibilities: vec!["门前三包".into()],
                },
            },
        ],
        at(11),
    )
    .unwrap();
    exchange(&a, &b);
    exchange(&b, &a);

    // A grid chief sees personal data in full; both phones agree.
    let chief = open(&dir, 3, "chief", Role::GridChief);
    exchange(&a, &chief);
    let merged = chief.address("A-0001").unwrap();
    let p1 = &merged.people["p1"];
    assert_eq!(p1.moved_out.as_deref(), Some("2026-11-20"));
    assert_eq!(p1.person.phone.as_deref(), Some("13900002222"));
    assert_eq!(p1.person.residency, Residency::NonRegistered);
    let p2 = &merged.people["p2"];
    assert_eq!(p2.person.phone.as_deref(), Some("13900001111"));
    assert_eq!(p2.person.house_id.as_deref(), Some("h-301"));
    assert_eq!(merged.enterprises.len(), 1);
    assert!(merged.unapplied.is_empty(), "{:?}", merged.unapplied);
    assert_eq!(merged.entries, 7);
    assert_eq!(merged.residents().count(), 1);
    // The inspectors see the same facts, masked.
    let on_a = a.address("A-0001").unwrap();
    let on_b = b.address("A-0001").unwrap();
    assert_eq!(on_a, on_b);
    assert_eq!(on_a.people["p1"].moved_out, p1.moved_out);
    assert_ne!(on_a.people["p1"].person.id_number, people[0].id_number);
    assert!(on_a.people["p1"].person.id_number.contains("********"));
    assert_eq!(
        on_a.people["p2"].person.phone.as_deref(),
        Some("139****1111")
    );
}

#[test]
fn a_bad_id_number_or_credit_code_is_refused_and_nothing_saved_is_lost() {
    let dir = TempDir::new();
    let store = open(&dir, 1, "insp-a", Role::GridInspector);
    let (people, firms) = fixture_people();
    store
        .register_address(address("A-0002", "笠泽路5号", HOME), at(0))
        .unwrap();
    store
        .change_address(
            "A-0002",
            vec![AddressChange::PersonAdded {
                person_id: "p1".into(),
                person: person(&people[0]),
            }],
            at(1),
        )
        .unwrap();
    // One digit off: the check character catches it.
    let mut typo = person(&people[1]);
    let mut digits: Vec<char> = typo.id_number.chars().collect();
    digits[15] = if digits[15] == '1' { '2' } else { '1' };
    typo.id_number = digits.into_iter().collect();
    let err = store
        .change_address(
            "A-0002",
            vec![
                AddressChange::PersonCorrected {
                    person_id: "p1".into(),
                    patch: PersonPatch {
                        phone: Some("13900003333".into()),
                        ..PersonPatch::default()
                    },
                },
                AddressChange::PersonAdded {
                    person_id: "p2".into(),
                    person: typo,
                },
            ],
            at(2),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Base(BaseError::Id(IdError::BadCheck { .. }))),
        "{err}"
    );
    assert!(err.to_string().contains("校验位"), "{err}");
    let mut bad_firm = Enterprise {
        name: firms[0].name.clone(),
        credit_code: "91320509MA1X".into(),
        kind: EnterpriseKind::Industrial,
        contact: "王强".into(),
        phone: None,
        responsibilities: Vec::new(),
    };
    let err = store
        .change_address(
            "A-0002",
            vec![AddressChange::EnterpriseAdded {
                enterprise_id: "e1".into(),
                enterprise: bad_firm.clone(),
            }],
            at(3),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Base(BaseError::Id(IdError::Malformed { .. }))),
        "{err}"
    );
    // A correction of someone who is not there.
    let err = store
        .change_address(
            "A-0002",
            vec![AddressChange::PersonMovedOut {
                person_id: "nobody".into(),
                on: "2026-11-01".into(),
                to: None,
            }],
            at(4),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Base(BaseError::Unknown(_))), "{err}");
    // Nothing of the refused changes landed, and what was saved before is intact.
    let kept = store.address("A-0002").unwrap();
    assert_eq!(kept.entries, 1);
    assert_eq!(kept.people.len(), 1);
    assert_eq!(
        kept.people["p1"].person.phone.as_deref(),
        Some(&*gridlink_core::address::mask_phone(&people[0].phone))
    );
    bad_firm.credit_code = firms[0].credit_code.clone();
    store
        .change_address(
            "A-0002",
            vec![AddressChange::EnterpriseAdded {
                enterprise_id: "e1".into(),
                enterprise: bad_firm,
            }],
            at(5),
        )
        .unwrap();
    // A role that does not keep base data.
    let citizen = open(&dir, 2, "cit-1", Role::Citizen);
    assert!(matches!(
        citizen.register_address(address("A-0003", "x", HOME), at(0)),
        Err(Error::Base(BaseError::RoleNotAllowed(_)))
    ));
}

#[test]
fn addresses_are_found_by_text_by_resident_and_enterprise_name_and_by_distance() {
    let dir = TempDir::new();
    let store = open(&dir, 1, "insp-a", Role::GridInspector);
    let (people, firms) = fixture_people();
    let near = LatLon {
        lat: HOME.lat + 0.0005,
        lon: HOME.lon,
    };
    let far = LatLon {
        lat: HOME.lat + 0.02,
        lon: HOME.lon,
    };
    for (code, text, point) in [
        ("A-0010", "流虹路88号3幢", HOME),
        ("A-0011", "流虹路90号", near),
        ("A-0012", "鲈乡南路1号", far),
    ] {
        store
            .register_address(address(code, text, point), at(0))
            .unwrap();
    }
    store
        .change_address(
            "A-0012",
            vec![
                AddressChange::PersonAdded {
                    person_id: "p1".into(),
                    person: person(&people[2]),
                },
                AddressChange::EnterpriseAdded {
                    enterprise_id: "e1".into(),
                    enterprise: Enterprise {
                        name: firms[1].name.clone(),
                        credit_code: firms[1].credit_code.clone(),
                        kind: EnterpriseKind::Service,
                        contact: firms[1].contact.clone(),
                        phone: None,
                        responsibilities: Vec::new(),
                    },
                },
            ],
            at(1),
        )
        .unwrap();
    let codes = |hits: Vec<gridlink_core::store::AddressHit>| {
        hits.into_iter().map(|h| h.code).collect::<Vec<_>>()
    };
    assert_eq!(
        codes(store.search_addresses("流虹路", 10).unwrap()),
        ["A-0010", "A-0011"]
    );
    let by_name = store.search_addresses(&people[2].name, 10).unwrap();
    assert_eq!(codes(by_name.clone()), ["A-0012"]);
    // Found by the full name, shown masked to an inspector.
    assert_eq!(
        by_name[0].residents,
        [gridlink_core::address::mask_name(&people[2].name)]
    );
    assert_ne!(by_name[0].residents[0], people[2].name);
    assert_eq!(
        codes(store.search_addresses(&firms[1].name, 10).unwrap()),
        ["A-0012"]
    );
    assert!(store.search_addresses("不存在的路", 10).unwrap().is_empty());
    let around = store.addresses_near(HOME, 500.0, 10).unwrap();
    assert_eq!(codes(around.clone()), ["A-0010", "A-0011"]);
    assert!(around[0].distance_m.unwrap() < 1.0);
    assert!((around[1].distance_m.unwrap() - 55.6).abs() < 2.0);
    assert_eq!(store.addresses_near(HOME, 5_000.0, 10).unwrap().len(), 3);
    assert!(matches!(
        store.addresses_near(HOME, -1.0, 10),
        Err(Error::Base(_))
    ));
}

/// Publishes a template version as the command centre would, into a phone's store.
fn publish(
    to: &Store,
    doc: &mut Option<RecordDoc>,
    template: gridlink_core::checklist::Template,
    minutes: i64,
) {
    let operator = stamp("op-1", Role::Operator, T0 + minutes * MINUTE);
    let actor = automerge::ActorId::from(vec![9u8; 16]);
    let change = TemplateChange::Published {
        template: template.clone(),
    };
    let bytes = match doc {
        None => {
            let (mut created, _) = RecordDoc::create::<TemplateRecord>(
                &template_doc_id(&template.id),
                &TemplateDetails {
                    template_id: template.id.clone(),
                },
                vec![change],
                &operator,
                actor,
            )
            .unwrap();
            let bytes = created.save();
            *doc = Some(created);
            bytes
        }
        Some(existing) => {
            let before = existing.heads();
            existing
                .append::<TemplateRecord>(vec![change], &operator)
                .unwrap();
            existing.save_after(&before)
        }
    };
    let report = to
        .apply_remote(
            &[RemoteChanges {
                doc_id: template_doc_id(&template.id),
                bytes,
            }],
            T0,
        )
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

#[test]
fn a_visit_finishes_on_its_template_version_and_a_failed_item_opens_a_linked_case() {
    let dir = TempDir::new();
    let store = open(&dir, 1, "insp-a", Role::GridInspector);
    store
        .register_address(address("A-0020", "流虹路88号", HOME), at(0))
        .unwrap();
    let v1 = standard_templates()
        .into_iter()
        .find(|t| t.id == "household")
        .unwrap();
    let mut template_doc = None;
    publish(&store, &mut template_doc, v1.clone(), 0);
    assert_eq!(store.template("household").unwrap().version, 1);

    // No location: refused, nothing saved.
    let err = store
        .start_visit(&uuid(1), "A-0020", "household", at(5), 200.0)
        .unwrap_err();
    assert!(
        matches!(err, Error::Checklist(ChecklistError::NoLocation)),
        "{err}"
    );
    assert!(store.patrol_list(GRID, 30, T0).unwrap()[0].due);

    let visit = store
        .start_visit(&uuid(1), "A-0020", "household", here(5, HOME), 200.0)
        .unwrap();
    assert_eq!(visit.details.template.version, 1);
    assert!(!visit.check_in.unwrap().off_site);

    // Version 2 arrives mid-visit: `needs_care` is gone and a required `gas_ok` is new.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.items.retain(|i| i.id != "needs_care");
    let mut gas = v2.items[0].clone();
    gas.id = "gas_ok".into();
    gas.text = "燃气管道是否完好".into();
    gas.required = true;
    gas.hazard = None;
    v2.items.push(gas);
    publish(&store, &mut template_doc, v2, 6);
    assert_eq!(store.template("household").unwrap().version, 2);

    // The visit keeps its version: the v1 item is answerable, the v2 one unknown.
    store
        .answer_visit(&uuid(1), "needs_care", Answer::YesNo(false), at(7))
        .unwrap();
    let err = store
        .answer_visit(&uuid(1), "gas_ok", Answer::YesNo(true), at(7))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Checklist(ChecklistError::UnknownItem { version: 1, .. })
        ),
        "{err}"
    );
    // Required items still open: check-out refused.
    assert!(matches!(
        store.finish_visit(&uuid(1), at(8)),
        Err(Error::Checklist(ChecklistError::Unanswered(_)))
    ));
    for (item, answer) in [
        ("residents_match", Answer::YesNo(true)),
        ("dispute", Answer::YesNo(false)),
    ] {
        let out = store.answer_visit(&uuid(1), item, answer, at(9)).unwrap();
        assert!(out.hazard_case.is_none());
    }
    // More than ten people living here: the group-rental rule opens a case.
    let out = store
        .answer_visit(&uuid(1), "residents", Answer::Number(14.0), here(10, HOME))
        .unwrap();
    let case = out.hazard_case.expect("a hazard case");
    assert_eq!(case.details.category, Category::GroupRental);
    assert_eq!(case.details.address_id.as_deref(), Some("A-0020"));
    assert_eq!(case.details.grid_id, GRID);
    assert_eq!(out.visit.hazard_cases["residents"], case.details.id);
    assert_eq!(
        store.case(&case.details.id).unwrap().details.title,
        "疑似群租"
    );
    // Answering again does not open a second case.
    let again = store
        .answer_visit(&uuid(1), "residents", Answer::Number(15.0), at(11))
        .unwrap();
    assert!(again.hazard_case.is_none());
    store
        .answer_visit(&uuid(1), "ebike_indoor", Answer::YesNo(false), at(11))
        .unwrap();
    let done = store.finish_visit(&uuid(1), at(12)).unwrap();
    assert!(done.checked_out_at_ms.is_some());
    assert!(done.unapplied.is_empty(), "{:?}", done.unapplied);
    assert!(matches!(
        store.answer_visit(&uuid(1), "notes", Answer::Text("晚".into()), at(13)),
        Err(Error::Checklist(_))
    ));
    // The address is covered now; a new visit starts on version 2, and off-site is flagged.
    let list = store.patrol_list(GRID, 30, T0 + 20 * MINUTE).unwrap();
    assert!(!list[0].due);
    let far = LatLon {
        lat: HOME.lat + 0.01,
        lon: HOME.lon,
    };
    let next = store
        .start_visit(&uuid(2), "A-0020", "household", here(30, far), 200.0)
        .unwrap();
    assert_eq!(next.details.template.version, 2);
    let check_in = next.check_in.unwrap();
    assert!(check_in.off_site && (check_in.distance_m - 1112.0).abs() < 10.0);
}

fn file_details(file_id: &str) -> MediationDetails {
    let (people, _) = fixture_people();
    MediationDetails {
        file_id: file_id.into(),
        grid_id: GRID.into(),
        dispute_type: DisputeType::Neighbour,
        summary: "楼上漏水，双方就维修费用产生争执".into(),
        parties: vec![
            Party {
                name: people[0].name.clone(),
                side: Side::Applicant,
                id_number: Some(people[0].id_number.clone()),
                phone: Some(people[0].phone.clone()),
            },
            Party {
                name: people[1].name.clone(),
                side: Side::Respondent,
                id_number: None,
                phone: None,
            },
        ],
        team: Team {
            inspector: "insp-a".into(),
            mediator: "med-1".into(),
            legal_adviser: Some("law-1".into()),
            judge: None,
        },
        opened_at: Rung::Grid,
        case_id: None,
    }
}

#[test]
fn a_mediator_keeps_a_file_offline_the_ladder_and_confirmation_rules_hold_and_parties_are_masked() {
    let dir = TempDir::new();
    let mediator = open(&dir, 1, "med-1", Role::Mediator);
    let (people, _) = fixture_people();
    let mut bad = file_details(&uuid(7));
    bad.parties[1].id_number = Some("320509199001011235".into());
    assert!(matches!(
        mediator.open_mediation(bad, at(0)),
        Err(Error::Mediation(MediationError::BadParty(_)))
    ));
    // A character no export could carry: refused, and no file is kept.
    let mut unfit = file_details(&uuid(7));
    unfit.parties[1].name = "李\u{ffff}四".into();
    assert!(matches!(
        mediator.open_mediation(unfit, at(0)),
        Err(Error::Invalid(_))
    ));
    assert!(mediator.mediation_file(&uuid(7)).is_err());
    let file = mediator
        .open_mediation(file_details(&uuid(7)), at(0))
        .unwrap();
    assert_eq!(
        file.details.parties[0].id_number.as_deref(),
        Some(&*people[0].id_number)
    );
    let id = uuid(7);
    mediator
        .record_mediation(
            &id,
            MediationStep::Session {
                at_ms: T0,
                place: "村委会调解室".into(),
                attendees: vec![people[0].name.clone(), people[1].name.clone()],
                notes: "双方陈述".into(),
            },
            at(1),
        )
        .unwrap();
    let steps_before = mediator.mediation_file(&id).unwrap().steps.len();
    assert!(matches!(
        mediator.record_mediation(
            &id,
            MediationStep::Session {
                at_ms: T0,
                place: "村委会".into(),
                attendees: vec![people[0].name.clone()],
                notes: "坏\u{fffe}".into(),
            },
            at(2),
        ),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        mediator.mediation_file(&id).unwrap().steps.len(),
        steps_before
    );
    for (step, want) in [
        (
            MediationStep::Escalated {
                to: Rung::Town,
                reason: " ".into(),
            },
            MediationError::SkipWithoutReason,
        ),
        (
            MediationStep::ConfirmationRequested {
                court: "吴江区人民法院".into(),
                at_ms: T0,
            },
            MediationError::NoAgreement,
        ),
    ] {
        let err = mediator.record_mediation(&id, step, at(2)).unwrap_err();
        assert!(matches!(&err, Error::Mediation(e) if *e == want), "{err}");
    }
    mediator
        .record_mediation(
            &id,
            MediationStep::Escalated {
                to: Rung::Village,
                reason: String::new(),
            },
            at(3),
        )
        .unwrap();
    mediator
        .record_mediation(
            &id,
            MediationStep::Agreed {
                text: "楼上住户承担维修费用 1200 元".into(),
                signatures: vec!["aa".repeat(32), "bb".repeat(32)],
                at_ms: T0 + 4 * MINUTE,
            },
            at(4),
        )
        .unwrap();
    let file = mediator
        .record_mediation(
            &id,
            MediationStep::ConfirmationRequested {
                court: "吴江区人民法院".into(),
                at_ms: T0 + 5 * MINUTE,
            },
            at(5),
        )
        .unwrap();
    assert_eq!(file.state.rung, Rung::Village);
    assert_eq!(file.steps.len(), 4);
    assert_eq!(mediator.mediation_files().unwrap()[0].file_id, id);
    assert!(mediator.mediation_files().unwrap()[0].ended);
    // The team's inspector receives the file, with the parties masked.
    let inspector = open(&dir, 2, "insp-a", Role::GridInspector);
    exchange(&mediator, &inspector);
    let seen = inspector.mediation_file(&id).unwrap();
    assert_eq!(seen.steps.len(), 4);
    let party = &seen.details.parties[0];
    assert_ne!(party.name, people[0].name);
    assert!(party.id_number.as_deref().unwrap().contains("********"));
    assert!(
        !serde_json::to_string(&seen)
            .unwrap()
            .contains(&people[0].id_number)
    );
}
