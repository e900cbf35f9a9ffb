//! The push validator against a live server: a push is judged by every operation of every
//! change, not by the state it leaves. Each tamper below left a final state that looked fine
//! (or hid its junk) and was acknowledged before; now each is refused, nothing of it is
//! stored, and a concurrent event from another phone is never lost.

use crate::common::*;
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use autosurgeon::reconcile_insert;
use gridlink_core::address::{AddressChange, AddressRecord, address_doc_id};
use gridlink_core::case::{Event, EventKind, Stamp};
use gridlink_core::doc::{CaseDoc, RecordDoc};
use gridlink_core::sync::device_actor;
use gridlink_core::sync::wire::{self, PushDoc, RejectCode, SyncRequest, SyncResponse};
use gridlink_core::sync::{Transport, scope::ScopeKey};

fn actor_of(phone: &Phone) -> automerge::ActorId {
    device_actor(
        phone.enrollment.actor_prefix.as_slice().try_into().unwrap(),
        0,
    )
}

fn stamp(phone: &Phone, at: i64) -> Stamp {
    Stamp {
        actor: phone.user().into(),
        role: phone.enrollment.role,
        device: phone.device_id.clone(),
        at_ms: at,
        location: None,
    }
}

/// Pushes raw changes for one document, as a modified app could.
pub fn push(phone: &Phone, doc_id: &str, changes: Vec<u8>) -> SyncResponse {
    let request = SyncRequest {
        protocol: wire::PROTOCOL_VERSION,
        request_id: uuid::Uuid::new_v4().to_string(),
        push: vec![PushDoc {
            doc_id: doc_id.to_owned(),
            changes,
        }],
        cursor: phone.store.cursor().unwrap(),
        max_pull_bytes: 1 << 20,
        history: None,
    };
    wire::decode(
        &phone
            .transport
            .post("/v1/sync", &wire::encode(&request))
            .unwrap(),
        1 << 26,
    )
    .unwrap()
}

fn history_of(am: &automerge::AutoCommit) -> automerge::ObjId {
    am.get(automerge::ROOT, "history").unwrap().unwrap().1
}

/// The JavaScript idiom `d.history = [...copyOf(d.history), newEvent]`: a new list at the
/// root holding copies of the recorded events and one more.
fn replace_history(doc: &mut CaseDoc, extra: Event) {
    let events = doc.history().unwrap();
    let am = doc.automerge();
    let list = am
        .put_object(automerge::ROOT, "history", ObjType::List)
        .unwrap();
    for (i, event) in events.iter().chain([&extra]).enumerate() {
        reconcile_insert(am, list.clone(), i, event).unwrap();
    }
    am.commit();
}

#[test]
fn replacing_the_history_list_is_refused_and_a_concurrent_comment_survives() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let id = inspector.report(GRID, "井盖缺失", T0);
    inspector.sync();
    chief.sync();
    chief
        .act(
            &id,
            EventKind::Accepted {
                assignee: None,
                due_at_ms: None,
            },
            T0 + 10,
        )
        .unwrap();
    chief.sync();
    inspector.sync();
    // The inspector comments offline; meanwhile a chief device replaces the list.
    let comment = inspector.comment(&id, "离线备注", T0 + 20);
    let stored = server.doc(&id).unwrap();
    let mut doc = CaseDoc::load(&id, &stored.clone().save()).unwrap();
    doc.set_actor(actor_of(&chief));
    let heads = doc.heads();
    let history = doc.history().unwrap();
    let extra = Event::new(
        EventKind::Comment {
            text: "网格长追加".into(),
        },
        stamp(&chief, T0 + 30),
        &history,
    );
    replace_history(&mut doc, extra);
    let response = push(&chief, &id, doc.save_after(&heads));
    assert!(response.acks.is_empty());
    assert_eq!(response.rejections.len(), 1);
    assert_eq!(response.rejections[0].code, RejectCode::RewritesHistory);
    assert!(
        response.rejections[0].message.contains("history"),
        "{}",
        response.rejections[0].message
    );

    // The inspector's comment lands, on the server and on the chief's phone.
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    let on_server = server.doc(&id).unwrap().case().unwrap();
    assert!(on_server.history.iter().any(|e| e.id == comment));
    chief.sync();
    let on_chief = chief.store.case(&id).unwrap();
    assert!(on_chief.history.iter().any(|e| e.id == comment));
    assert_eq!(on_chief.history.len(), 3);
}

/// Each tamper builds on the synced case as a modified app would and returns the codes the
/// push may be refused with.
type Tamper = fn(&mut automerge::AutoCommit, &Phone, &[Event]) -> &'static [RejectCode];

fn comment_event(phone: &Phone, history: &[Event], text: &str) -> Event {
    Event::new(
        EventKind::Comment { text: text.into() },
        stamp(phone, T0 + 100),
        history,
    )
}

fn append(am: &mut automerge::AutoCommit, event: &Event) -> automerge::ObjId {
    let list = history_of(am);
    let len = am.length(&list);
    reconcile_insert(am, list.clone(), len, event).unwrap();
    am.get(&list, len).unwrap().unwrap().1
}

const TAMPERS: &[(&str, Tamper)] = &[
    ("a large description written and restored", |am, _, _| {
        let (_, details) = am.get(automerge::ROOT, "details").unwrap().unwrap();
        am.put(&details, "description", "长".repeat(100_000))
            .unwrap();
        am.put(&details, "description", "").unwrap();
        &[RejectCode::RewritesHistory, RejectCode::TooLarge]
    }),
    ("a new event with a 900 KB field", |am, phone, history| {
        let event = append(am, &comment_event(phone, history, "附带大字段"));
        am.put(&event, "blob", "x".repeat(900_000)).unwrap();
        &[RejectCode::TooLarge]
    }),
    (
        "a new event with an undefined field",
        |am, phone, history| {
            let event = append(am, &comment_event(phone, history, "附带字段"));
            am.put(&event, "junk", "藏起来的数据").unwrap();
            &[RejectCode::Malformed]
        },
    ),
    ("an event inserted, then deleted", |am, phone, history| {
        append(am, &comment_event(phone, history, "一闪而过"));
        am.commit();
        let list = history_of(am);
        let last = am.length(&list) - 1;
        am.delete(&list, last).unwrap();
        &[RejectCode::RewritesHistory]
    }),
    ("2,000 comments in one change", |am, phone, history| {
        let mut history = history.to_vec();
        for i in 0..2_000 {
            let event = comment_event(phone, &history, &format!("第 {i} 条"));
            append(am, &event);
            history.push(event);
        }
        &[RejectCode::TooLarge]
    }),
    (
        "a recorded event deleted and inserted again",
        |am, _, history| {
            let list = history_of(am);
            am.delete(&list, 1).unwrap();
            reconcile_insert(am, list.clone(), 1, &history[1]).unwrap();
            &[RejectCode::RewritesHistory]
        },
    ),
    ("the reported event moved to the end", |am, _, history| {
        let list = history_of(am);
        am.delete(&list, 0).unwrap();
        let len = am.length(&list);
        reconcile_insert(am, list.clone(), len, &history[0]).unwrap();
        &[RejectCode::RewritesHistory]
    }),
    ("a Text object instead of a string", |am, phone, history| {
        let event = append(am, &comment_event(phone, history, "占位"));
        let (_, kind) = am.get(&event, "kind").unwrap().unwrap();
        let (_, comment) = am.get(&kind, "Comment").unwrap().unwrap();
        // Written as a new key of a new object, so only the Text rule can refuse it.
        am.delete(&comment, "text").unwrap();
        am.put_object(&comment, "text", ObjType::Text).unwrap();
        &[RejectCode::Malformed, RejectCode::RewritesHistory]
    }),
    (
        "an event inserted before the report",
        |am, phone, history| {
            let list = history_of(am);
            reconcile_insert(
                am,
                list.clone(),
                0,
                comment_event(phone, history, "插在最前"),
            )
            .unwrap();
            &[RejectCode::RewritesHistory]
        },
    ),
    (
        "a field of a new event written twice",
        |am, phone, history| {
            let event = append(am, &comment_event(phone, history, "第一版"));
            am.commit();
            let (_, kind) = am.get(&event, "kind").unwrap().unwrap();
            let (_, comment) = am.get(&kind, "Comment").unwrap().unwrap();
            am.put(&comment, "text", "第二版").unwrap();
            &[RejectCode::RewritesHistory]
        },
    ),
    ("a new object at the root", |am, _, _| {
        am.put_object(automerge::ROOT, "details", ObjType::Map)
            .unwrap();
        &[RejectCode::RewritesHistory]
    }),
    ("a counter in a new event", |am, phone, history| {
        let event = append(am, &comment_event(phone, history, "计数"));
        am.put(&event, "votes", automerge::ScalarValue::counter(1))
            .unwrap();
        &[RejectCode::Malformed]
    }),
];

#[test]
fn every_operation_of_a_push_is_judged_and_nothing_of_a_refused_one_is_stored() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let id = inspector.report(GRID, "路灯不亮", T0);
    inspector.comment(&id, "第一条备注", T0 + 1);
    inspector.sync();
    let before = server.doc(&id).unwrap().case().unwrap();
    let saved = server.doc(&id).unwrap().save();
    for (name, tamper) in TAMPERS {
        let mut doc = CaseDoc::load(&id, &saved).unwrap();
        doc.set_actor(actor_of(&inspector));
        let heads = doc.heads();
        let history = doc.history().unwrap();
        let allowed = tamper(doc.automerge(), &inspector, &history);
        doc.automerge().commit();
        let response = push(&inspector, &id, doc.save_after(&heads));
        assert!(response.acks.is_empty(), "{name}: acknowledged");
        assert_eq!(response.rejections.len(), 1, "{name}");
        let refusal = &response.rejections[0];
        assert!(
            allowed.contains(&refusal.code),
            "{name}: refused as {:?} ({})",
            refusal.code,
            refusal.message
        );
        // The refusal carries the server's copy, unchanged, for the phone to reset to.
        let copy = CaseDoc::load(&id, refusal.server_doc.as_ref().unwrap()).unwrap();
        assert_eq!(copy.case().unwrap(), before, "{name}");
        assert_eq!(server.doc(&id).unwrap().case().unwrap(), before, "{name}");
    }
    // An honest append from the same copy still goes in.
    let mut doc = CaseDoc::load(&id, &saved).unwrap();
    doc.set_actor(actor_of(&inspector));
    let heads = doc.heads();
    let history = doc.history().unwrap();
    append(
        doc.automerge(),
        &comment_event(&inspector, &history, "正常追加"),
    );
    doc.automerge().commit();
    let response = push(&inspector, &id, doc.save_after(&heads));
    assert!(response.rejections.is_empty(), "{:?}", response.rejections);
    assert_eq!(server.doc(&id).unwrap().history().unwrap().len(), 3);
}

#[test]
fn a_new_case_with_undefined_fields_or_text_objects_is_refused() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let id = inspector.report(GRID, "新案件", T0);
    let honest = inspector.store.case(&id).unwrap();
    // Built the way a second implementation could: the phone's own document plus a field in
    // `details` that the case type does not define, or the title as a Text object.
    for variant in 0..2 {
        let id = uuid::Uuid::new_v4().to_string();
        let details = gridlink_core::case::CaseDetails {
            id: id.clone(),
            ..honest.details.clone()
        };
        let (mut doc, _) =
            CaseDoc::create(details, vec![], stamp(&inspector, T0), actor_of(&inspector)).unwrap();
        let am = doc.automerge();
        // A second change: the report, then the tamper on the details it created.
        let (_, details) = am.get(automerge::ROOT, "details").unwrap().unwrap();
        match variant {
            0 => {
                am.put(&details, "hidden", "x".repeat(10_000)).unwrap();
            }
            _ => {
                am.put_object(&details, "note", ObjType::Text).unwrap();
            }
        }
        am.commit();
        let response = push(&inspector, &id, doc.save());
        assert_eq!(response.rejections.len(), 1, "variant {variant}");
        assert_eq!(response.rejections[0].code, RejectCode::Malformed);
        assert!(server.doc(&id).is_none());
    }
    // The honest case, pushed by the store, goes in.
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 0);
    assert!(server.doc(&id).is_some());
}

#[test]
fn record_documents_are_judged_by_their_operations_too() {
    let server = TestServer::start();
    server.with_base_data();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let inspector = server.phone(&crate::records::inspector_of(&district, GRID));
    inspector.sync();
    let address = district
        .addresses
        .iter()
        .find(|a| a.grid_id == GRID)
        .unwrap();
    let addr_id = address_doc_id(&address.code);
    let stored = server.state.store().load_doc(&addr_id).unwrap().unwrap();
    assert!(stored.scopes.contains(&ScopeKey::Grid(GRID.into())));
    let before = RecordDoc::load(&addr_id, &stored.bytes)
        .unwrap()
        .entries_json()
        .unwrap();
    for variant in 0..3 {
        let mut doc = RecordDoc::load(&addr_id, &stored.bytes).unwrap();
        doc.set_actor(actor_of(&inspector));
        let heads = doc.heads();
        let expected = match variant {
            // The address text rewritten in place.
            0 => {
                let am = doc.automerge();
                let (_, details) = am.get(automerge::ROOT, "details").unwrap().unwrap();
                am.put(&details, "text", "改写的地址").unwrap();
                am.commit();
                RejectCode::RewritesHistory
            }
            // A valid correction with a field no entry has.
            1 => {
                doc.append::<AddressRecord>(
                    vec![AddressChange::AddressCorrected {
                        text: Some("门牌已更换".into()),
                        point: None,
                    }],
                    &stamp(&inspector, T0),
                )
                .unwrap();
                let am = doc.automerge();
                let list = history_of(am);
                let last = am.length(&list) - 1;
                let (_, entry) = am.get(&list, last).unwrap().unwrap();
                am.put(&entry, "junk", "多余").unwrap();
                am.commit();
                RejectCode::Malformed
            }
            // The whole history replaced by an empty list.
            _ => {
                let am = doc.automerge();
                am.put_object(automerge::ROOT, "history", ObjType::List)
                    .unwrap();
                am.commit();
                RejectCode::RewritesHistory
            }
        };
        let response = push(&inspector, &addr_id, doc.save_after(&heads));
        assert_eq!(response.rejections.len(), 1, "variant {variant}");
        assert_eq!(
            response.rejections[0].code, expected,
            "variant {variant}: {}",
            response.rejections[0].message
        );
        let now = server.state.store().load_doc(&addr_id).unwrap().unwrap();
        let entries = RecordDoc::load(&addr_id, &now.bytes)
            .unwrap()
            .entries_json()
            .unwrap();
        assert_eq!(entries, before, "variant {variant}");
    }
}
