//! The merge engine directly: several pushes of one document in one group-commit batch.

use crate::common::{GRID, T0, TempDir};
use gridlink_core::case::{CaseDetails, Category, EventKind, Role, Source, Stamp};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::access::Pusher;
use gridlink_core::sync::device_actor;
use gridlink_core::sync::scope::GridPlace;
use gridlink_core::sync::wire::{PushDoc, RejectCode};
use gridlink_server::merge::{Merger, Submission};
use gridlink_server::store::{ServerStore, SqliteStore};
use std::sync::Arc;

fn stamp(at: i64) -> Stamp {
    Stamp {
        actor: "insp-1".into(),
        role: Role::GridInspector,
        device: "dev-1".into(),
        at_ms: at,
        location: None,
    }
}

/// A merger over a fresh store with one grid, a grid inspector's device (actor prefix
/// `[prefix_byte; 16]`) and a new case of theirs, not yet pushed.
struct Setup {
    _dir: TempDir,
    store: Arc<dyn ServerStore>,
    merger: Merger,
    prefix: [u8; 16],
    pusher: Pusher,
    doc: CaseDoc,
    id: String,
}

fn setup(prefix_byte: u8, title: &str) -> Setup {
    let dir = TempDir::new();
    let store: Arc<dyn ServerStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store
        .put_grids(&[GridPlace {
            grid_id: GRID.into(),
            village_id: "v".into(),
            town_id: "t".into(),
        }])
        .unwrap();
    let merger = Merger::new(store.clone(), 16, &Default::default()).unwrap();
    let prefix = [prefix_byte; 16];
    let pusher = Pusher {
        user_id: "insp-1".into(),
        role: Role::GridInspector,
        device_id: "dev-1".into(),
        scopes: [format!("grid:{GRID}").parse().unwrap()]
            .into_iter()
            .collect(),
    };
    let details = CaseDetails {
        id: uuid::Uuid::new_v4().to_string(),
        category: Category::Sanitation,
        source: Source::GridInspector,
        title: title.into(),
        description: String::new(),
        location: None,
        address_id: None,
        grid_id: GRID.into(),
        reporter: None,
        priority: Default::default(),
    };
    let id = details.id.clone();
    let (doc, _) = CaseDoc::create(details, vec![], stamp(T0), device_actor(&prefix, 0)).unwrap();
    Setup {
        _dir: dir,
        store,
        merger,
        prefix,
        pusher,
        doc,
        id,
    }
}

#[test]
fn pushes_of_one_document_in_one_batch_build_on_each_other_and_a_refusal_between_loses_nothing() {
    let Setup {
        _dir,
        store,
        mut merger,
        prefix,
        pusher,
        mut doc,
        id,
    } = setup(5, "同一批次");
    let report = PushDoc {
        doc_id: id.clone(),
        changes: doc.save(),
    };
    let mut forged = doc.clone();
    forged.set_actor(automerge::ActorId::from(vec![9u8; 20]));
    let h = forged.heads();
    forged
        .record(
            EventKind::Comment {
                text: "伪造".into(),
            },
            stamp(T0 + 1),
        )
        .unwrap();
    let forged = PushDoc {
        doc_id: id.clone(),
        changes: forged.save_after(&h),
    };
    let h = doc.heads();
    doc.record(
        EventKind::Comment {
            text: "真实".into(),
        },
        stamp(T0 + 2),
    )
    .unwrap();
    let comment = PushDoc {
        doc_id: id.clone(),
        changes: doc.save_after(&h),
    };

    let batch = [report, forged, comment];
    let pushes: Vec<Submission<'_>> = batch
        .iter()
        .map(|p| Submission::device(&pusher, prefix.as_slice(), std::slice::from_ref(p), T0))
        .collect();
    let outcomes = merger.stage_batch(&pushes);
    merger.commit_batch().unwrap();
    assert_eq!(outcomes[0].acks.len(), 1);
    assert_eq!(outcomes[1].rejections[0].code, RejectCode::ForgedActor);
    // The refusal carries the batch's own uncommitted report.
    let copy = CaseDoc::load(&id, outcomes[1].rejections[0].server_doc.as_ref().unwrap()).unwrap();
    assert_eq!(copy.case().unwrap().history.len(), 1);
    assert_eq!(outcomes[2].acks.len(), 1);
    assert_eq!(store.case_row(&id).unwrap().unwrap().events, 2);

    // The merger's copy after the batch is the stored one: the next push builds on it.
    let h = doc.heads();
    doc.record(
        EventKind::Comment {
            text: "再次".into(),
        },
        stamp(T0 + 3),
    )
    .unwrap();
    let next = [PushDoc {
        doc_id: id.clone(),
        changes: doc.save_after(&h),
    }];
    let outcomes = merger.stage_batch(&[Submission::device(
        &pusher,
        prefix.as_slice(),
        next.as_slice(),
        T0,
    )]);
    merger.commit_batch().unwrap();
    assert!(outcomes[0].rejections.is_empty());
    let stored = CaseDoc::load(&id, &store.load_doc(&id).unwrap().unwrap().bytes).unwrap();
    assert_eq!(stored.case().unwrap(), doc.case().unwrap());
    assert_eq!(store.case_row(&id).unwrap().unwrap().events, 3);
}

#[test]
fn a_refusal_is_undone_on_top_of_the_batch_still_being_committed() {
    let Setup {
        _dir,
        store,
        mut merger,
        prefix,
        pusher,
        mut doc,
        id,
    } = setup(6, "提交中");
    // Batch N: the report, handed to the committer but not yet in the store.
    let report = [PushDoc {
        doc_id: id.clone(),
        changes: doc.save(),
    }];
    merger.stage_batch(&[Submission::device(
        &pusher,
        prefix.as_slice(),
        report.as_slice(),
        T0,
    )]);
    let (in_flight, audit) = merger.take_batch();
    // Batch N+1: a forged push, then an honest comment, on the same case.
    let mut forged = doc.clone();
    forged.set_actor(automerge::ActorId::from(vec![9u8; 20]));
    let h = forged.heads();
    forged
        .record(
            EventKind::Comment {
                text: "伪造".into(),
            },
            stamp(T0 + 1),
        )
        .unwrap();
    let h2 = doc.heads();
    doc.record(
        EventKind::Comment {
            text: "真实".into(),
        },
        stamp(T0 + 2),
    )
    .unwrap();
    let next = [
        PushDoc {
            doc_id: id.clone(),
            changes: forged.save_after(&h),
        },
        PushDoc {
            doc_id: id.clone(),
            changes: doc.save_after(&h2),
        },
    ];
    let outcomes = merger.stage_batch(&[
        Submission::device(&pusher, prefix.as_slice(), &next[..1], T0),
        Submission::device(&pusher, prefix.as_slice(), &next[1..], T0),
    ]);
    assert_eq!(outcomes[0].rejections[0].code, RejectCode::ForgedActor);
    // The undone copy holds the report of the batch in flight, and the comment builds on it.
    let copy = CaseDoc::load(&id, outcomes[0].rejections[0].server_doc.as_ref().unwrap()).unwrap();
    assert_eq!(copy.case().unwrap().history.len(), 1);
    assert!(
        outcomes[1].rejections.is_empty(),
        "{:?}",
        outcomes[1].rejections
    );
    store.commit(&in_flight, &audit).unwrap();
    merger.commit_batch().unwrap();
    let stored = CaseDoc::load(&id, &store.load_doc(&id).unwrap().unwrap().bytes).unwrap();
    assert_eq!(stored.case().unwrap(), doc.case().unwrap());
    assert_eq!(store.case_row(&id).unwrap().unwrap().events, 2);
}
