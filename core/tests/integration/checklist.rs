//! Checklists: every standard template is consistent; answers are checked against the visit's
//! own template version (a later version never breaks a visit in progress); required items are
//! enforced at check-out; failed items raise the hazards their rules name; check-in distance.

use gridlink_core::case::{Category, Location, Priority};
use gridlink_core::checklist::{
    Answer, ChecklistError, Item, ItemKind, Subject, check_in, standard_templates,
};
use gridlink_core::geo::LatLon;
use std::collections::{BTreeMap, BTreeSet};

fn household() -> gridlink_core::checklist::Template {
    standard_templates()
        .into_iter()
        .find(|t| t.id == "household")
        .unwrap()
}

#[test]
fn the_standard_templates_cover_every_subject_and_are_consistent() {
    let templates = standard_templates();
    let subjects: BTreeSet<Subject> = templates.iter().map(|t| t.subject).collect();
    assert_eq!(subjects.len(), 7);
    for t in &templates {
        t.validate().unwrap_or_else(|e| panic!("{e}"));
    }
    let mut broken = household();
    broken.items.push(broken.items[0].clone());
    assert!(matches!(
        broken.validate(),
        Err(ChecklistError::BadTemplate(_))
    ));
}

#[test]
fn answers_are_checked_against_the_visits_version_and_required_items_at_check_out() {
    let v1 = household();
    let mut answers = BTreeMap::from([
        ("residents_match".to_owned(), Answer::YesNo(true)),
        ("residents".to_owned(), Answer::Number(3.0)),
        ("ebike_indoor".to_owned(), Answer::YesNo(false)),
    ]);
    assert!(matches!(
        v1.check_out(&answers),
        Err(ChecklistError::Unanswered(missing)) if missing == vec!["dispute".to_owned(), "needs_care".to_owned()]
    ));
    answers.insert("dispute".into(), Answer::YesNo(false));
    answers.insert("needs_care".into(), Answer::YesNo(false));
    v1.check_out(&answers).unwrap();

    // Version 2 adds an item while a visit on version 1 is in progress.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.items.push(Item {
        id: "smoke_alarm".into(),
        text: "是否安装烟感报警器".into(),
        kind: ItemKind::YesNo,
        required: true,
        hazard: None,
    });
    v2.validate().unwrap();
    // The v1 visit still completes on v1, and may not answer the v2 item.
    v1.check_out(&answers).unwrap();
    assert!(matches!(
        v1.check_answer("smoke_alarm", &Answer::YesNo(true)),
        Err(ChecklistError::UnknownItem { version: 1, .. })
    ));
    assert!(matches!(
        v2.check_out(&answers),
        Err(ChecklistError::Unanswered(_))
    ));

    // Bad answers.
    for (item, answer) in [
        ("residents", Answer::Number(-1.0)),
        ("residents", Answer::Number(f64::NAN)),
        ("residents", Answer::YesNo(true)),
        ("dispute", Answer::Text("有".into())),
    ] {
        assert!(matches!(
            v1.check_answer(item, &answer),
            Err(ChecklistError::BadAnswer { .. })
        ));
    }
}

#[test]
fn failed_items_raise_their_hazards() {
    let t = household();
    let answers = BTreeMap::from([
        ("residents".to_owned(), Answer::Number(14.0)),
        ("ebike_indoor".to_owned(), Answer::YesNo(true)),
        ("dispute".to_owned(), Answer::YesNo(false)),
    ]);
    let raised: Vec<(String, Category, Priority)> = t
        .hazards(&answers)
        .into_iter()
        .map(|(item, rule)| (item.id.clone(), rule.category, rule.priority))
        .collect();
    assert_eq!(
        raised,
        vec![
            ("residents".into(), Category::GroupRental, Priority::Normal),
            (
                "ebike_indoor".into(),
                Category::FireHazard,
                Priority::Urgent
            ),
        ]
    );
}

#[test]
fn check_in_needs_a_location_and_flags_a_distant_one() {
    let door = LatLon::new(30.789896, 120.375757);
    let near = Location {
        point: LatLon::new(30.7900, 120.3758),
        accuracy_m: 10.0,
    };
    let far = Location {
        point: LatLon::new(30.80, 120.38),
        accuracy_m: 10.0,
    };
    let ok = check_in(door, Some(near), 50.0).unwrap();
    assert!(!ok.off_site && ok.distance_m < 30.0, "{ok:?}");
    let away = check_in(door, Some(far), 50.0).unwrap();
    assert!(away.off_site && away.distance_m > 1000.0, "{away:?}");
    assert_eq!(check_in(door, None, 50.0), Err(ChecklistError::NoLocation));
    let nonsense = Location {
        point: LatLon::new(91.0, 0.0),
        accuracy_m: 1.0,
    };
    assert_eq!(
        check_in(door, Some(nonsense), 50.0),
        Err(ChecklistError::NoLocation)
    );
}
