//! Concurrent offline edits of one case document merge without losing anything, whatever the
//! order of exchange; bad bytes and unknown schemas get typed errors.

use crate::common::{MINUTE, T0, details, hash, stamp, uuid};
use gridlink_core::Error;
use gridlink_core::case::{EventKind, FlagReason, Role, Status};
use gridlink_core::doc::{CaseDoc, actor_for_device};

fn actor(n: u128) -> automerge::ActorId {
    actor_for_device(&uuid(n)).unwrap()
}

/// A case reported by an inspector, then forked onto a chief's phone and a second inspector's.
fn replicas() -> (CaseDoc, CaseDoc, Vec<automerge::ChangeHash>) {
    let (mut origin, _) = CaseDoc::create(
        details(&uuid(1), "楼道堆放杂物存在火灾隐患"),
        vec![hash(1)],
        stamp("insp-0001", Role::GridInspector, T0),
        actor(100),
    )
    .unwrap();
    let common = origin.heads();
    let bytes = origin.save();
    let mut a = CaseDoc::load(&uuid(1), &bytes).unwrap();
    a.set_actor(actor(101));
    let mut b = CaseDoc::load(&uuid(1), &bytes).unwrap();
    b.set_actor(actor(102));
    (a, b, common)
}

#[test]
fn concurrent_comments_status_events_and_photos_all_survive_either_exchange_order() {
    let (mut a, mut b, common) = replicas();
    // Offline on the chief's phone.
    a.record(
        EventKind::Accepted {
            assignee: Some("insp-0001".into()),
            due_at_ms: None,
        },
        stamp("chief-0001", Role::GridChief, T0 + MINUTE),
    )
    .unwrap();
    a.record(
        EventKind::Comment {
            text: "已通知物业".into(),
        },
        stamp("chief-0001", Role::GridChief, T0 + 2 * MINUTE),
    )
    .unwrap();
    // Offline on the inspector's phone.
    b.record(
        EventKind::PhotoAdded { hash: hash(2) },
        stamp("insp-0001", Role::GridInspector, T0 + MINUTE),
    )
    .unwrap();
    b.record(
        EventKind::Comment {
            text: "住户说周末清理".into(),
        },
        stamp("insp-0001", Role::GridInspector, T0 + 3 * MINUTE),
    )
    .unwrap();

    let from_a = a.save_after(&common);
    let from_b = b.save_after(&common);
    // Order 1: b's changes into a; order 2: a's into b.
    a.apply(&from_b).unwrap();
    b.apply(&from_a).unwrap();
    // Duplicated and repeated deliveries are harmless.
    a.apply(&from_b).unwrap();
    b.apply(&from_a).unwrap();
    b.apply(&from_b).unwrap();

    assert_eq!(a.heads(), b.heads());
    let (ca, cb) = (a.case().unwrap(), b.case().unwrap());
    assert_eq!(ca, cb);
    assert_eq!(ca.history.len(), 5);
    assert_eq!(ca.state.comments, 2);
    assert_eq!(ca.state.photos, vec![hash(1), hash(2)]);
    assert_eq!(ca.state.status, Status::Accepted);
    assert!(ca.state.flagged.is_empty());

    // A third replica that receives everything in one full save agrees too.
    let mut c = CaseDoc::load(&uuid(1), &a.save()).unwrap();
    assert_eq!(c.heads(), a.heads());
    assert_eq!(c.case().unwrap(), ca);
}

#[test]
fn two_chiefs_accepting_offline_see_the_same_winner() {
    let (mut a, mut b, common) = replicas();
    a.record(
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        stamp("chief-a", Role::GridChief, T0 + 2 * MINUTE),
    )
    .unwrap();
    b.record(
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        stamp("chief-b", Role::GridChief, T0 + MINUTE),
    )
    .unwrap();
    let (from_a, from_b) = (a.save_after(&common), b.save_after(&common));
    b.apply(&from_a).unwrap();
    a.apply(&from_b).unwrap();
    let (ca, cb) = (a.case().unwrap(), b.case().unwrap());
    assert_eq!(ca, cb);
    assert_eq!(ca.history.len(), 3);
    assert_eq!(ca.state.assignee.as_deref(), Some("user:chief-b"));
    assert_eq!(ca.state.flagged.len(), 1);
    // Locally, a second acceptance is refused before it is written.
    let err = a
        .record(
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            stamp("chief-a", Role::GridChief, T0 + 9 * MINUTE),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotAllowed {
                reason: FlagReason::WrongStatus {
                    status: Status::Accepted
                }
            }
        ),
        "{err}"
    );
    assert_eq!(a.case().unwrap().history.len(), 3);
}

#[test]
fn corrupt_bytes_are_a_typed_error_and_change_nothing() {
    let (mut a, _, _) = replicas();
    let before = a.heads();
    for garbage in [
        &b"not automerge"[..],
        &[0x85, 0x6f, 0x4a, 0x83, 0xff, 0xff, 0xff][..],
        &[],
    ] {
        match CaseDoc::load(&uuid(1), garbage) {
            Err(Error::Corrupt { .. } | Error::Malformed { .. }) => {}
            other => panic!("expected a corrupt-document error, got {other:?}"),
        }
    }
    let mut truncated = a.save();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        CaseDoc::load(&uuid(1), &truncated),
        Err(Error::Corrupt { .. })
    ));
    assert!(a.apply(&truncated).is_err());
    assert_eq!(a.heads(), before);
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    use automerge::transaction::Transactable;
    let (mut a, mut b, common) = replicas();
    a.automerge()
        .put(automerge::ROOT, "schema", 99_i64)
        .unwrap();
    a.automerge().commit();
    let newer = a.save();
    let err = CaseDoc::load(&uuid(1), &newer).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedSchema {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("升级"));

    // Applying a change that bumps the schema leaves the replica as it was.
    let heads = b.heads();
    assert!(matches!(
        b.apply(&a.save_after(&common)),
        Err(Error::UnsupportedSchema { .. })
    ));
    assert_eq!(b.heads(), heads);
}

#[test]
fn strings_are_scalars_and_integers_are_signed() {
    use automerge::{ReadDoc, ScalarValue, Value};
    let (mut a, _, _) = replicas();
    let doc = a.automerge();
    let (details, _) = doc.get(automerge::ROOT, "details").unwrap().unwrap();
    assert!(matches!(details, Value::Object(automerge::ObjType::Map)));
    let details_id = doc.get(automerge::ROOT, "details").unwrap().unwrap().1;
    let (title, _) = doc.get(&details_id, "title").unwrap().unwrap();
    assert!(matches!(title, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Str(_))));
    let (schema, _) = doc.get(automerge::ROOT, "schema").unwrap().unwrap();
    assert!(matches!(schema, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Int(1))));
}

#[test]
fn history_matches_autosurgeon() {
    let (mut a, _, _) = replicas();
    let stamp_at = |k: i64| {
        let mut s = stamp("chief-0001", Role::GridChief, T0 + k * MINUTE);
        s.location = Some(gridlink_core::case::Location {
            point: gridlink_core::geo::LatLon::new(31.1, 120.6),
            accuracy_m: 3.5,
        });
        s
    };
    a.record(
        EventKind::Accepted {
            assignee: None,
            due_at_ms: Some(T0 + 99),
        },
        stamp_at(1),
    )
    .unwrap();
    a.record(
        EventKind::Escalated {
            to: gridlink_core::case::Level::Town,
            reason: "跨村".into(),
        },
        stamp_at(2),
    )
    .unwrap();
    a.record(
        EventKind::Dispatched {
            target: gridlink_core::case::DispatchTarget::LawEnforcement {
                code: "enf-1".into(),
                name: "执法局".into(),
            },
            due_at_ms: None,
            note: "请处理".into(),
        },
        stamp_at(3),
    )
    .unwrap();
    a.record(EventKind::PhotoAdded { hash: hash(9) }, stamp_at(4))
        .unwrap();
    assert_eq!(a.history().unwrap(), a.history_via_autosurgeon().unwrap());
    assert_eq!(a.history().unwrap().len(), 5);
    assert_eq!(a.details().unwrap(), a.details_via_autosurgeon().unwrap());
    // Bytes taken as the changes since some heads extend the earlier ones like `save_after`.
    let early = a.history().unwrap().len();
    let (id, saved) = (a.id().to_owned(), a.save());
    let mut b = CaseDoc::load(&id, &saved).unwrap();
    let heads = b.heads();
    b.record(
        EventKind::Comment {
            text: "之后".into(),
        },
        stamp_at(5),
    )
    .unwrap();
    let new = b.changes_since(&heads);
    assert_eq!(new.actors.len(), 1);
    assert_eq!(new.changes.len(), 1);
    a.apply(&new.bytes).unwrap();
    assert_eq!(a.history().unwrap().len(), early + 1);
    assert_eq!(a.case().unwrap(), b.case().unwrap());
}

#[test]
fn a_device_pushes_only_its_own_changes_that_stand_on_what_the_server_holds() {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
    let device = |epoch: u8| ActorId::from([[1u8; 16].as_slice(), &[0, 0, 0, epoch]].concat());
    let own = |a: &ActorId| a.to_bytes().starts_with(&[1u8; 16]);
    let mut doc = AutoCommit::new().with_actor(device(0));
    doc.put(ROOT, "reported", 1).unwrap();
    doc.commit();
    let server = doc.get_heads();
    let mut at_server = AutoCommit::load(&doc.save()).unwrap();
    // Since: someone else's change, this device's change on top of it, and one of its own
    // that stands on what the server holds (made under a later epoch).
    let mut fork = doc.fork().with_actor(device(1));
    doc.set_actor(ActorId::from(vec![2u8; 20]));
    doc.put(ROOT, "accepted", 2).unwrap();
    doc.commit();
    doc.set_actor(device(0));
    doc.put(ROOT, "comment", 3).unwrap();
    doc.commit();
    fork.put(ROOT, "photo", 4).unwrap();
    fork.commit();
    doc.merge(&mut fork).unwrap();

    let out = gridlink_core::doc::own_changes_after(&mut doc, &server, &own);
    assert_eq!((out.taken, out.held_back), (1, 2));
    at_server.load_incremental(&out.bytes).unwrap();
    assert!(at_server.get(ROOT, "photo").unwrap().is_some());
    assert!(at_server.get(ROOT, "accepted").unwrap().is_none());
    assert!(at_server.get(ROOT, "comment").unwrap().is_none());
    // Nothing of anyone else's since: everything goes, as one save.
    let mut mine = AutoCommit::load(&at_server.save())
        .unwrap()
        .with_actor(device(2));
    let held = mine.get_heads();
    mine.put(ROOT, "closed", 5).unwrap();
    mine.commit();
    let all = gridlink_core::doc::own_changes_after(&mut mine, &held, &own);
    assert_eq!((all.taken, all.held_back), (1, 0));
}
