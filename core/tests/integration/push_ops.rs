//! The push validator on its own: each rule of `sync::ops` with a change that breaks it, and
//! the honest changes the app writes, which must all pass.

use crate::common::{T0, details, hash, stamp, uuid};
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc};
use autosurgeon::reconcile_insert;
use gridlink_core::case::{Event, EventKind, Role};
use gridlink_core::doc::{CaseDoc, DocKind, actor_for_device};
use gridlink_core::sync::ops::{Caps, judge, surplus};
use gridlink_core::sync::wire::RejectCode;
use serde_json::json;

fn new_case() -> CaseDoc {
    CaseDoc::create(
        details(&uuid(1), "楼道堆放杂物"),
        vec![hash(1)],
        stamp("insp-0001", Role::GridInspector, T0),
        actor_for_device(&uuid(100)).unwrap(),
    )
    .unwrap()
    .0
}

/// Judges what `edit` adds to a synced copy of a case; `None` when it passes.
fn judged(caps: &Caps, edit: impl FnOnce(&mut CaseDoc, &[Event])) -> Option<(RejectCode, String)> {
    let (mut doc, changes, stored) = edited(edit);
    judge(
        doc.automerge(),
        DocKind::Case,
        &changes,
        false,
        stored,
        caps,
    )
    .err()
    .map(|r| (r.code, r.message))
}

fn comment(history: &[Event], text: &str) -> Event {
    Event::new(
        EventKind::Comment { text: text.into() },
        stamp("chief-0001", Role::GridChief, T0 + 1),
        history,
    )
}

fn history_obj(doc: &mut CaseDoc) -> automerge::ObjId {
    doc.automerge()
        .get(automerge::ROOT, "history")
        .unwrap()
        .unwrap()
        .1
}

fn insert(doc: &mut CaseDoc, at: usize, event: &Event) -> automerge::ObjId {
    let list = history_obj(doc);
    let am = doc.automerge();
    reconcile_insert(am, list.clone(), at, event).unwrap();
    am.get(&list, at).unwrap().unwrap().1
}

#[test]
fn the_apps_own_changes_pass() {
    let caps = Caps::DEFAULT;
    assert_eq!(
        judged(&caps, |doc, _| {
            doc.record(
                EventKind::Comment {
                    text: "备注".into(),
                },
                stamp("chief-0001", Role::GridChief, T0 + 1),
            )
            .unwrap();
            doc.record(
                EventKind::Accepted {
                    assignee: None,
                    due_at_ms: Some(T0 + 86_400_000),
                },
                stamp("chief-0001", Role::GridChief, T0 + 2),
            )
            .unwrap();
        }),
        None
    );
    // A whole new document, as the phone creates it.
    let mut doc = new_case();
    let new = doc.changes_since(&[]);
    assert_eq!(
        judge(doc.automerge(), DocKind::Case, &new.changes, true, 0, &caps).map(|j| j.entries),
        Ok(1)
    );
    // The same changes judged as if the document existed: the root may not be written.
    let refused = judge(
        doc.automerge(),
        DocKind::Case,
        &new.changes,
        false,
        0,
        &caps,
    );
    assert_eq!(refused.unwrap_err().code, RejectCode::RewritesHistory);
}

#[test]
fn each_rule_refuses_its_own_break() {
    let caps = Caps::DEFAULT;
    let code = |edit: fn(&mut CaseDoc, &[Event])| judged(&caps, edit).map(|(code, _)| code);
    // Rule 1: the root, the details and recorded events are not written to.
    assert_eq!(
        code(|doc, history| {
            let am = doc.automerge();
            let list = am
                .put_object(automerge::ROOT, "history", ObjType::List)
                .unwrap();
            for (i, e) in history.iter().enumerate() {
                reconcile_insert(am, list.clone(), i, e).unwrap();
            }
        }),
        Some(RejectCode::RewritesHistory)
    );
    assert_eq!(
        code(|doc, _| {
            let am = doc.automerge();
            let (_, details) = am.get(automerge::ROOT, "details").unwrap().unwrap();
            am.put(&details, "title", "改").unwrap();
        }),
        Some(RejectCode::RewritesHistory)
    );
    assert_eq!(
        code(|doc, _| {
            let list = history_obj(doc);
            let am = doc.automerge();
            let (_, first) = am.get(&list, 0).unwrap().unwrap();
            // A key the event did not have: no overwrite, still a write to a recorded event.
            am.put(&first, "later", "x").unwrap();
        }),
        Some(RejectCode::RewritesHistory)
    );
    assert_eq!(
        code(|doc, history| {
            insert(doc, 0, &comment(history, "最前"));
        }),
        Some(RejectCode::RewritesHistory)
    );
    assert_eq!(
        code(|doc, _| {
            let list = history_obj(doc);
            doc.automerge().delete(&list, 0).unwrap();
        }),
        Some(RejectCode::RewritesHistory)
    );
    assert_eq!(
        code(|doc, _| {
            let list = history_obj(doc);
            doc.automerge().insert(&list, 1, "标量").unwrap();
        }),
        Some(RejectCode::Malformed)
    );
    let scalar = judged(&caps, |doc, _| {
        let list = history_obj(doc);
        doc.automerge().insert(&list, 1, "标量").unwrap();
    });
    assert!(
        scalar.is_some_and(|(_, m)| m.contains("only takes new entries")),
        "a scalar in `history` is refused as what it is"
    );
    // Rule 2: nothing written is overwritten, even in the push's own objects.
    assert_eq!(
        code(|doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            doc.automerge().put(&event, "actor", "chief-0002").unwrap();
        }),
        Some(RejectCode::RewritesHistory)
    );
    // Rule 3: plain values only.
    assert_eq!(
        code(|doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            doc.automerge()
                .put_object(&event, "extra", ObjType::Text)
                .unwrap();
        }),
        Some(RejectCode::Malformed)
    );
    assert_eq!(
        code(|doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            doc.automerge()
                .put(&event, "n", automerge::ScalarValue::Timestamp(1))
                .unwrap();
        }),
        Some(RejectCode::Malformed)
    );
    // Rule 4: new entries hold only what an event defines.
    assert_eq!(
        code(|doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            doc.automerge().put(&event, "junk", "x").unwrap();
        }),
        Some(RejectCode::Malformed)
    );
    assert_eq!(
        code(|doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            // A value the type reads differently: a number where a string goes.
            let am = doc.automerge();
            let (_, kind) = am.get(&event, "kind").unwrap().unwrap();
            am.put(&kind, "Comment2", 1).unwrap();
        }),
        Some(RejectCode::Malformed)
    );
}

#[test]
fn caps_hold_per_change_per_push_and_per_document() {
    let tight = Caps {
        entries_per_change: 2,
        entries_per_push: 3,
        doc_entries: 4,
        string_bytes: 100,
        ..Caps::DEFAULT
    };
    let many = |n: usize, per_change: bool| {
        move |doc: &mut CaseDoc, history: &[Event]| {
            let mut history = history.to_vec();
            for i in 0..n {
                let event = comment(&history, &format!("第{i}条"));
                insert(doc, history.len(), &event);
                history.push(event);
                if per_change {
                    doc.automerge().commit();
                }
            }
        }
    };
    assert_eq!(judged(&tight, many(2, false)), None);
    assert_eq!(
        judged(&tight, many(3, false)).map(|r| r.0),
        Some(RejectCode::TooLarge)
    );
    assert_eq!(judged(&tight, many(3, true)), None);
    assert_eq!(
        judged(&tight, many(4, true)).map(|r| r.0),
        Some(RejectCode::TooLarge)
    );
    let roomy_push = Caps {
        entries_per_push: 100,
        ..tight
    };
    assert_eq!(
        judged(&roomy_push, many(4, true)).map(|r| r.0),
        Some(RejectCode::TooLarge),
        "five entries in a document capped at four"
    );
    assert_eq!(
        judged(&tight, |doc, history| {
            insert(doc, 1, &comment(history, &"长".repeat(40)));
        })
        .map(|r| r.0),
        Some(RejectCode::TooLarge)
    );
    let small_doc = Caps {
        doc_bytes: 10,
        ..Caps::DEFAULT
    };
    assert_eq!(
        judged(&small_doc, many(1, true)).map(|r| r.0),
        Some(RejectCode::TooLarge)
    );
    let small_change = Caps {
        change_bytes: 50,
        ..Caps::DEFAULT
    };
    assert_eq!(
        judged(&small_change, many(1, true)).map(|r| r.0),
        Some(RejectCode::TooLarge)
    );
}

#[test]
fn surplus_finds_what_the_type_does_not_hold() {
    let canonical = json!({"a": 1.0, "b": {"c": "x", "d": null}, "l": [1, 2]});
    assert_eq!(surplus(&json!({"a": 1, "b": {"c": "x"}}), &canonical), None);
    assert_eq!(surplus(&json!({"a": 1, "z": null}), &canonical), None);
    assert_eq!(
        surplus(&json!({"a": 1, "b": {"c": "x", "e": 0}}), &canonical),
        Some("b.e".into())
    );
    assert_eq!(
        surplus(&json!({"b": {"c": "y"}}), &canonical),
        Some("b.c".into())
    );
    assert_eq!(
        surplus(&json!({"l": [1, 2, 3]}), &canonical),
        Some("l".into())
    );
    assert_eq!(
        surplus(&json!({"l": [1, 5]}), &canonical),
        Some("l.[1]".into())
    );
    assert_eq!(surplus(&json!({"a": 2}), &canonical), Some("a".into()));
}

/// Item 2 of issue 15: a character XML cannot carry (U+FFFE, U+FFFF, C0 controls) is refused
/// in every pushed string, and the phone refuses it before anything is written.
#[test]
fn text_no_export_could_carry_is_refused_on_the_phone_and_in_a_push() {
    let caps = Caps::DEFAULT;
    for bad in ["坏\u{ffff}", "\u{fffe}", "a\u{0}b", "\u{fdd0}"] {
        let refused = judged(&caps, |doc, history| {
            insert(doc, history.len(), &comment(history, bad));
        });
        let (code, message) = refused.unwrap_or_else(|| panic!("{bad:?} passed"));
        assert_eq!(code, RejectCode::Malformed, "{bad:?}");
        assert!(message.contains("不能使用的字符"), "{message}");
        // The phone's own entry points say so first, and leave the case as it was.
        let mut doc = new_case();
        let before = doc.heads();
        let err = doc
            .record(
                EventKind::Comment { text: bad.into() },
                stamp("chief-0001", Role::GridChief, T0 + 1),
            )
            .unwrap_err();
        assert!(err.to_string().contains("U+"), "{err}");
        assert_eq!(doc.heads(), before);
        assert!(
            CaseDoc::create(
                details(&uuid(2), bad),
                vec![hash(1)],
                stamp("insp-0001", Role::GridInspector, T0),
                actor_for_device(&uuid(100)).unwrap(),
            )
            .is_err()
        );
    }
    // Line breaks and tabs are ordinary text.
    assert_eq!(
        judged(&caps, |doc, history| {
            insert(
                doc,
                history.len(),
                &comment(history, "第一行\n第二行\t（完）"),
            );
        }),
        None
    );
}

/// The changes `edit` adds to a synced copy of a case, with the edited document and the size
/// of what the server held, so one set of changes can be judged under several caps.
fn edited(edit: impl FnOnce(&mut CaseDoc, &[Event])) -> (CaseDoc, Vec<automerge::Change>, usize) {
    let mut doc = CaseDoc::load(&uuid(1), &new_case().save()).unwrap();
    let stored = doc.save().len();
    doc.set_actor(actor_for_device(&uuid(101)).unwrap());
    let heads = doc.heads();
    let history = doc.history().unwrap();
    edit(&mut doc, &history);
    doc.automerge().commit();
    let new = doc.changes_since(&heads);
    (doc, new.changes, stored)
}

/// Each cap is a limit that may be reached, not passed: a push exactly at it is acknowledged,
/// one byte over is refused, and the bytes a push adds are those of its changes.
#[test]
fn caps_are_reached_exactly_and_passed_by_nothing() {
    let (mut doc, changes, stored) = edited(|doc, history| {
        insert(doc, history.len(), &comment(history, &"a".repeat(100)));
        doc.automerge().commit();
        insert(doc, history.len() + 1, &comment(history, "二"));
    });
    assert_eq!(changes.len(), 2);
    let bytes: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
    let largest = changes.iter().map(|c| c.raw_bytes().len()).max().unwrap();
    let am = doc.automerge().clone();
    let run = |caps: Caps| judge(&am, DocKind::Case, &changes, false, stored, &caps);
    let judged = run(Caps::DEFAULT).unwrap();
    assert_eq!((judged.entries, judged.bytes), (2, bytes));
    let at = |caps: Caps| run(caps).map(|j| j.entries);
    let over = |caps: Caps| run(caps).map_err(|r| r.code);
    // Each cap set exactly to what the push needs, then one below it.
    type WithCap = fn(usize) -> Caps;
    let edges: [(WithCap, usize); 3] = [
        (
            |n| Caps {
                doc_bytes: n,
                ..Caps::DEFAULT
            },
            stored + bytes,
        ),
        (
            |n| Caps {
                change_bytes: n,
                ..Caps::DEFAULT
            },
            largest,
        ),
        (
            |n| Caps {
                string_bytes: n,
                ..Caps::DEFAULT
            },
            100,
        ),
    ];
    for (cap, needed) in edges {
        assert_eq!(at(cap(needed)), Ok(2), "{:?}", cap(needed));
        assert_eq!(
            over(cap(needed - 1)),
            Err(RejectCode::TooLarge),
            "{:?}",
            cap(needed - 1)
        );
    }
}

#[test]
fn a_change_message_may_reach_its_cap_but_not_pass_it() {
    let with_message = |len: usize| {
        let (mut doc, changes, stored) = edited(|doc, history| {
            insert(doc, history.len(), &comment(history, "一"));
            doc.automerge().commit_with(
                automerge::transaction::CommitOptions::default().with_message("m".repeat(len)),
            );
        });
        judge(
            doc.automerge(),
            DocKind::Case,
            &changes,
            false,
            stored,
            &Caps::DEFAULT,
        )
        .map(|j| j.entries)
        .map_err(|r| r.code)
    };
    let cap = Caps::DEFAULT.message_bytes;
    assert_eq!(with_message(cap), Ok(1));
    assert_eq!(with_message(cap + 1), Err(RejectCode::Malformed));
    assert_eq!(with_message(cap + 40), Err(RejectCode::Malformed));
}

/// The operation a refusal names is the one the push used.
#[test]
fn a_refused_operation_is_named() {
    let caps = Caps::DEFAULT;
    for (value, name) in [
        (automerge::ScalarValue::counter(1), "counter"),
        (automerge::ScalarValue::Timestamp(1), "timestamp"),
        (automerge::ScalarValue::Bytes(vec![1]), "bytes"),
    ] {
        let (code, message) = judged(&caps, |doc, history| {
            let event = insert(doc, 1, &comment(history, "一"));
            doc.automerge().put(&event, "n", value).unwrap();
        })
        .unwrap();
        assert_eq!(code, RejectCode::Malformed);
        assert!(message.ends_with(&format!(": {name}")), "{message}");
    }
}

/// A new document writes each of its four root keys once and nothing else at the root.
#[test]
fn a_new_document_holds_its_four_root_keys_and_no_other() {
    let mut doc = new_case();
    doc.automerge().put(automerge::ROOT, "junk", "x").unwrap();
    doc.automerge().commit();
    let new = doc.changes_since(&[]);
    let refused = judge(
        doc.automerge(),
        DocKind::Case,
        &new.changes,
        true,
        0,
        &Caps::DEFAULT,
    );
    let refused = refused.unwrap_err();
    assert_eq!(refused.code, RejectCode::Malformed);
    assert!(refused.message.contains("`junk`"), "{}", refused.message);
}

/// Changes no Automerge library writes, made by hand as a modified app could: an insertion
/// under a map key, and an overwrite of a list element that names no predecessor (so the
/// overwritten value would stay hidden as a conflict). Both are refused as rewrites.
#[test]
fn hand_made_operations_that_no_library_writes_are_refused() {
    use automerge::legacy::{Key, ObjectId, OpType};
    let forged = |pick: fn(&automerge::legacy::Op) -> bool,
                  alter: fn(&mut automerge::legacy::Op)| {
        let mut doc = new_case();
        let new = doc.changes_since(&[]);
        let mut altered = 0;
        let changes: Vec<automerge::Change> = new
            .changes
            .iter()
            .map(|c| {
                let mut expanded = c.decode();
                if let Some(op) = expanded.operations.iter_mut().find(|op| pick(op)) {
                    alter(op);
                    altered += 1;
                }
                expanded.hash = None;
                automerge::Change::from(expanded)
            })
            .collect();
        assert_eq!(altered, 1, "the operation to alter is in the change");
        judge(
            doc.automerge(),
            DocKind::Case,
            &changes,
            true,
            0,
            &Caps::DEFAULT,
        )
        .map(|j| j.entries)
        .map_err(|r| r.code)
    };
    // Untouched, the new case passes.
    assert_eq!(forged(|_| true, |_| {}), Ok(1));
    // A field of the new event written as an insertion.
    assert_eq!(
        forged(
            |op| matches!((&op.obj, &op.key), (ObjectId::Id(_), Key::Map(k)) if k == "actor"),
            |op| op.insert = true,
        ),
        Err(RejectCode::RewritesHistory)
    );
    // The report itself written over a slot of `history` instead of appended.
    assert_eq!(
        forged(
            |op| op.insert && matches!(&op.action, OpType::Make(automerge::ObjType::Map)),
            |op| op.insert = false,
        ),
        Err(RejectCode::Malformed)
    );
    // The report's photo written over its list slot instead of inserted.
    assert_eq!(
        forged(
            |op| {
                matches!(&op.key, Key::Seq(_))
                    && matches!(&op.action, OpType::Put(automerge::ScalarValue::Str(_)))
            },
            |op| op.insert = false,
        ),
        Err(RejectCode::RewritesHistory)
    );
}
