//! The SQLite store: persistence across reopen, migrations from frozen old schemas, lists,
//! Chinese search, remote changes, quarantine.

use crate::common::{MINUTE, T0, TempDir, details, hash, uuid};
use gridlink_core::Error;
use gridlink_core::case::{Category, DispatchTarget, EventKind, Location, Role, Source, Status};
use gridlink_core::doc::{CaseDoc, actor_for_device};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{
    CaseFilter, CaseOrder, CaseQuery, Moment, NewCase, RemoteChanges, Store, StoreConfig,
};

fn config(device: u128, user: &str, role: Role) -> StoreConfig {
    StoreConfig::new(uuid(device), user, role)
}

fn new_case(n: u128, title: &str) -> NewCase {
    NewCase {
        id: uuid(n),
        category: Category::FireHazard,
        source: Source::GridInspector,
        title: title.into(),
        description: "现场描述".into(),
        location: Some(Location {
            point: LatLon::new(31.16, 120.64),
            accuracy_m: 5.0,
        }),
        address_id: None,
        grid_id: "320509001001-01".into(),
        photos: vec![hash(1)],
        priority: Default::default(),
    }
}

fn at(minutes: i64) -> Moment {
    Moment {
        at_ms: T0 + minutes * MINUTE,
        location: None,
    }
}

fn ids(store: &Store, filter: CaseFilter) -> Vec<String> {
    let page = store
        .list(&CaseQuery {
            filter,
            limit: 500,
            ..CaseQuery::default()
        })
        .unwrap();
    page.items.into_iter().map(|c| c.id).collect()
}

#[test]
fn everything_survives_close_and_reopen() {
    let dir = TempDir::new();
    let path = dir.path("phone.sqlite");
    let before = {
        let store = Store::open(&path, config(1, "insp-0001", Role::GridInspector)).unwrap();
        store.report(new_case(10, "楼道堆放杂物"), at(0)).unwrap();
        store
            .record(
                &uuid(10),
                EventKind::Comment {
                    text: "已拍照".into(),
                },
                at(1),
            )
            .unwrap();
        for i in 0..40 {
            // Enough changes to pass the compaction threshold.
            store
                .record(
                    &uuid(10),
                    EventKind::Comment {
                        text: format!("第{i}次巡查"),
                    },
                    at(2 + i),
                )
                .unwrap();
        }
        store.case(&uuid(10)).unwrap()
    };
    let store = Store::open(&path, config(1, "insp-0001", Role::GridInspector)).unwrap();
    let after = store.case(&uuid(10)).unwrap();
    assert_eq!(after, before);
    assert_eq!(after.history.len(), 42);
    assert_eq!(
        ids(
            &store,
            CaseFilter {
                reported_by_me: true,
                ..CaseFilter::default()
            }
        ),
        vec![uuid(10)]
    );
    store.compact(&uuid(10)).unwrap();
    assert_eq!(store.case(&uuid(10)).unwrap(), before);
}

#[test]
fn reporting_the_same_case_twice_is_harmless() {
    let store = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    let first = store.report(new_case(1, "井盖缺失"), at(0)).unwrap();
    let again = store.report(new_case(1, "井盖缺失"), at(5)).unwrap();
    assert_eq!(first, again);
    let clash = store.report(new_case(1, "另一个问题"), at(6)).unwrap_err();
    assert!(matches!(clash, Error::Invalid(_)), "{clash}");
}

#[test]
fn refused_actions_write_nothing() {
    let store = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    store.report(new_case(1, "违建"), at(0)).unwrap();
    let dispatch = EventKind::Dispatched {
        target: DispatchTarget::Department {
            code: "dept-urban".into(),
            name: "区城市管理局".into(),
        },
        due_at_ms: None,
        note: String::new(),
    };
    assert!(matches!(
        store.record(&uuid(1), dispatch, at(1)),
        Err(Error::NotAllowed { .. })
    ));
    assert!(matches!(
        store.record(&uuid(1), EventKind::Comment { text: " ".into() }, at(1)),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        store.record(&uuid(2), EventKind::Comment { text: "x".into() }, at(1)),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.case(&uuid(1)).unwrap().history.len(), 1);
    let mut bad = new_case(3, "");
    assert!(matches!(
        store.report(bad.clone(), at(1)),
        Err(Error::Invalid(_))
    ));
    bad.title = "好".repeat(101);
    assert!(matches!(store.report(bad, at(1)), Err(Error::Invalid(_))));
    assert!(matches!(store.case(&uuid(3)), Err(Error::NotFound(_))));
}

#[test]
fn lists_filter_by_what_the_screens_need() {
    let chief = Store::open(":memory:", config(2, "chief-0001", Role::GridChief)).unwrap();
    for n in 0..6u128 {
        let mut c = new_case(n, &format!("问题{n}"));
        c.category = if n % 2 == 0 {
            Category::FireHazard
        } else {
            Category::Sanitation
        };
        c.grid_id = format!("g-{}", n % 3);
        chief.report(c, at(n as i64)).unwrap();
    }
    chief
        .record(
            &uuid(0),
            EventKind::Accepted {
                assignee: None,
                due_at_ms: Some(T0 + 60 * MINUTE),
            },
            at(10),
        )
        .unwrap();
    chief
        .record(
            &uuid(1),
            EventKind::Accepted {
                assignee: Some("insp-0009".into()),
                due_at_ms: Some(T0 + 600 * MINUTE),
            },
            at(11),
        )
        .unwrap();
    chief
        .record(
            &uuid(2),
            EventKind::ResolvedInGrid {
                note: "已处理".into(),
            },
            at(12),
        )
        .unwrap();

    let f = CaseFilter::default;
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                assigned_to_me: true,
                ..f()
            }
        ),
        vec![uuid(0)]
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                assignee: Some("user:insp-0009".into()),
                ..f()
            }
        ),
        vec![uuid(1)]
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                statuses: vec![Status::Resolved],
                ..f()
            }
        ),
        vec![uuid(2)]
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                grid_ids: vec!["g-0".into()],
                ..f()
            }
        )
        .len(),
        2
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                category: Some(Category::Sanitation),
                ..f()
            }
        )
        .len(),
        3
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                open_only: true,
                ..f()
            }
        )
        .len(),
        5
    );
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                reported_by_me: true,
                ..f()
            }
        )
        .len(),
        6
    );
    // Due within two hours of T0: only case 0.
    assert_eq!(
        ids(
            &chief,
            CaseFilter {
                due_before_ms: Some(T0 + 120 * MINUTE),
                ..f()
            }
        ),
        vec![uuid(0)]
    );
    let due = chief
        .list(&CaseQuery {
            order: CaseOrder::DueAsc,
            ..CaseQuery::default()
        })
        .unwrap();
    assert_eq!(due.items[0].id, uuid(0));
    assert_eq!(due.items[1].id, uuid(1));
    // Most recently changed first by default.
    assert_eq!(ids(&chief, f())[0], uuid(2));
}

#[test]
fn paging_is_stable_and_complete() {
    let store = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    for n in 0..130u128 {
        // Many share one timestamp, so the id breaks ties.
        store
            .report(
                new_case(n, &format!("巡查发现问题{n}")),
                at((n / 10) as i64),
            )
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut query = CaseQuery {
        limit: 50,
        ..CaseQuery::default()
    };
    loop {
        let page = store.list(&query).unwrap();
        assert!(page.items.len() <= 50);
        seen.extend(page.items.iter().map(|c| (c.updated_at_ms, c.id.clone())));
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 130);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(seen, sorted);
    sorted.dedup();
    assert_eq!(sorted.len(), 130);
}

#[test]
fn chinese_search_finds_two_character_words() {
    let store = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    store
        .report(new_case(1, "楼道堆放杂物存在火灾隐患"), at(0))
        .unwrap();
    store.report(new_case(2, "道路井盖缺失"), at(1)).unwrap();
    let mut c = new_case(3, "群租房消防通道堵塞");
    c.description = "A栋3楼电动车室内充电".into();
    store.report(c, at(2)).unwrap();
    let search = |text: &str| {
        let mut found = ids(
            &store,
            CaseFilter {
                text: Some(text.into()),
                ..CaseFilter::default()
            },
        );
        found.sort();
        found
    };
    assert_eq!(search("火灾"), vec![uuid(1)]);
    assert_eq!(search("井盖"), vec![uuid(2)]);
    assert_eq!(search("群租"), vec![uuid(3)]);
    assert_eq!(search("消防通道"), vec![uuid(3)]);
    assert_eq!(search("火灾隐患"), vec![uuid(1)]);
    assert_eq!(search("灾火"), Vec::<String>::new());
    assert_eq!(search("充电"), vec![uuid(3)]);
    assert_eq!(search("a栋"), vec![uuid(3)]);
    // One character: substring fallback.
    assert_eq!(search("井"), vec![uuid(2)]);
    assert_eq!(search("道"), vec![uuid(1), uuid(2), uuid(3)]);
    // Operators typed by a user are not operators.
    assert_eq!(search("火灾\" OR \"井盖"), Vec::<String>::new());
}

#[test]
fn remote_changes_update_documents_and_rows_and_bad_ones_are_quarantined() {
    let inspector = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    let chief = Store::open(":memory:", config(2, "chief-0001", Role::GridChief)).unwrap();
    inspector.report(new_case(1, "垃圾满溢"), at(0)).unwrap();
    inspector.report(new_case(2, "占道经营"), at(1)).unwrap();
    let batch: Vec<RemoteChanges> = inspector
        .unacknowledged()
        .unwrap()
        .into_iter()
        .map(|id| RemoteChanges {
            bytes: inspector.unacknowledged_changes(&id).unwrap(),
            doc_id: id,
        })
        .collect();
    assert_eq!(batch.len(), 2);

    // A batch with a corrupt entry and a mislabelled one: the good ones go in.
    let mut mixed = batch.clone();
    mixed.push(RemoteChanges {
        doc_id: uuid(3),
        bytes: b"\x85\x6f\x4a\x83garbage".to_vec(),
    });
    mixed.push(RemoteChanges {
        doc_id: uuid(4),
        bytes: batch[0].bytes.clone(),
    });
    let report = chief.apply_remote(&mixed, T0).unwrap();
    assert_eq!(report.applied.len(), 2);
    assert_eq!(report.rejected.len(), 2);
    assert!(matches!(report.rejected[0].1, Error::Corrupt { .. }));
    assert!(matches!(report.rejected[1].1, Error::Malformed { .. }));
    let quarantined = chief.quarantined().unwrap();
    assert_eq!(quarantined.len(), 2);
    assert!(
        quarantined
            .iter()
            .all(|q| q.origin == "remote" && q.size > 0)
    );
    assert_eq!(ids(&chief, CaseFilter::default()).len(), 2);

    // Duplicate delivery changes nothing.
    let again = chief.apply_remote(&batch, T0).unwrap();
    assert_eq!((again.applied.len(), again.unchanged.len()), (0, 2));

    // The chief accepts; the inspector gets the change and the row follows.
    let acked = chief.acknowledged(&uuid(1)).unwrap();
    assert_eq!(acked, None);
    chief
        .set_acknowledged(
            &uuid(1),
            &CaseDoc::load(
                &uuid(1),
                &batch.iter().find(|b| b.doc_id == uuid(1)).unwrap().bytes,
            )
            .unwrap()
            .heads(),
        )
        .unwrap();
    chief
        .record(
            &uuid(1),
            EventKind::Accepted {
                assignee: Some("insp-0001".into()),
                due_at_ms: None,
            },
            at(5),
        )
        .unwrap();
    let delta = chief.unacknowledged_changes(&uuid(1)).unwrap();
    assert!(delta.len() < batch[0].bytes.len() * 4);
    let report = inspector
        .apply_remote(
            &[RemoteChanges {
                doc_id: uuid(1),
                bytes: delta,
            }],
            T0,
        )
        .unwrap();
    assert_eq!(report.applied, vec![uuid(1)]);
    assert_eq!(
        ids(
            &inspector,
            CaseFilter {
                assigned_to_me: true,
                ..CaseFilter::default()
            }
        ),
        vec![uuid(1)]
    );
    assert_eq!(
        inspector.case(&uuid(1)).unwrap(),
        chief.case(&uuid(1)).unwrap()
    );
}

#[test]
fn a_remote_schema_bump_is_refused_and_the_stored_version_kept() {
    use automerge::transaction::Transactable;
    let store = Store::open(":memory:", config(1, "insp-0001", Role::GridInspector)).unwrap();
    let reported = store.report(new_case(1, "噪音扰民"), at(0)).unwrap();
    let mut doc =
        CaseDoc::load(&uuid(1), &store.unacknowledged_changes(&uuid(1)).unwrap()).unwrap();
    let heads = doc.heads();
    doc.set_actor(actor_for_device(&uuid(50)).unwrap());
    doc.automerge()
        .put(automerge::ROOT, "schema", 2_i64)
        .unwrap();
    doc.automerge().commit();
    let report = store
        .apply_remote(
            &[RemoteChanges {
                doc_id: uuid(1),
                bytes: doc.save_after(&heads),
            }],
            T0,
        )
        .unwrap();
    assert!(matches!(
        report.rejected[0].1,
        Error::UnsupportedSchema { found: 2, .. }
    ));
    assert_eq!(store.case(&uuid(1)).unwrap(), reported);
}

#[test]
fn a_corrupt_stored_document_is_quarantined_not_lost() {
    let dir = TempDir::new();
    let path = dir.path("phone.sqlite");
    {
        let store = Store::open(&path, config(1, "insp-0001", Role::GridInspector)).unwrap();
        store.report(new_case(1, "路灯不亮"), at(0)).unwrap();
        store.report(new_case(2, "污水外溢"), at(1)).unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE documents SET base = x'856f4a83deadbeef' WHERE id = ?1",
        [uuid(1)],
    )
    .unwrap();
    drop(raw);
    let store = Store::open(&path, config(1, "insp-0001", Role::GridInspector)).unwrap();
    assert!(matches!(store.case(&uuid(1)), Err(Error::Corrupt { .. })));
    let q = store.quarantined().unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].doc_id.as_str(), q[0].origin.as_str(), q[0].size),
        (uuid(1).as_str(), "local", 8)
    );
    // The rest keeps working, and the list no longer offers the broken case.
    assert_eq!(store.case(&uuid(2)).unwrap().details.title, "污水外溢");
    assert_eq!(ids(&store, CaseFilter::default()), vec![uuid(2)]);
    // The server's full copy brings it back.
    let mut fresh = CaseDoc::create(
        details(&uuid(1), "路灯不亮"),
        vec![],
        crate::common::stamp("insp-0001", Role::GridInspector, T0),
        actor_for_device(&uuid(1)).unwrap(),
    )
    .unwrap()
    .0;
    let report = store
        .apply_remote(
            &[RemoteChanges {
                doc_id: uuid(1),
                bytes: fresh.save(),
            }],
            T0,
        )
        .unwrap();
    assert_eq!(report.applied, vec![uuid(1)]);
}

/// A database at an old schema version (from its frozen SQL) holding one case, `uuid(n)`.
fn old_database(path: &std::path::Path, frozen_sql: &str, version: i64, n: u128, title: &str) {
    let (mut doc, _) = CaseDoc::create(
        details(&uuid(n), title),
        vec![],
        crate::common::stamp("insp-0001", Role::GridInspector, T0),
        actor_for_device(&uuid(1)).unwrap(),
    )
    .unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(frozen_sql).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    let heads: Vec<u8> = doc.heads().iter().flat_map(|h| h.0).collect();
    conn.execute(
        "INSERT INTO documents (id, kind, base, chunk_count, heads, updated_at) VALUES (?1, 'case', ?2, 0, ?3, ?4)",
        rusqlite::params![uuid(n), doc.save(), heads, T0],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cases (doc_id, status, level, category, source, grid_id, title, description, created_at, updated_at)
         VALUES (?1, 'reported', 'grid', 'sanitation', 'grid_inspector', '320509001001-01', ?2, '', ?3, ?3)",
        rusqlite::params![uuid(n), title, T0],
    )
    .unwrap();
}

/// Opens `old` (upgrading it) and checks its schema against a fresh database's.
fn upgrade_and_compare(dir: &TempDir, old: &std::path::Path) -> Store {
    let upgraded = Store::open(old, config(1, "insp-0001", Role::GridInspector)).unwrap();
    let fresh_path = dir.path("fresh.sqlite");
    drop(Store::open(&fresh_path, config(1, "insp-0001", Role::GridInspector)).unwrap());
    let schema = |path: &std::path::Path| -> Vec<(String, String, String)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)))
            .unwrap();
        rows.map(|r| {
            let (t, n, sql) = r.unwrap();
            (t, n, sql.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
    };
    assert_eq!(schema(old), schema(&fresh_path));
    let version: i64 = rusqlite::Connection::open(old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, gridlink_core::store::SCHEMA_VERSION);
    upgraded
}

#[test]
fn migrations_upgrade_a_frozen_v1_database_to_the_fresh_schema() {
    let dir = TempDir::new();
    let old = dir.path("v1.sqlite");
    old_database(
        &old,
        include_str!("../fixtures/schema_v1.sql"),
        1,
        1,
        "河道漂浮垃圾",
    );
    let upgraded = upgrade_and_compare(&dir, &old);
    // The old row was back-filled into the search index.
    assert_eq!(
        ids(
            &upgraded,
            CaseFilter {
                text: Some("垃圾".into()),
                ..CaseFilter::default()
            }
        ),
        vec![uuid(1)]
    );
    assert_eq!(
        upgraded.case(&uuid(1)).unwrap().details.title,
        "河道漂浮垃圾"
    );
}

#[test]
fn a_database_from_a_newer_app_is_refused() {
    let dir = TempDir::new();
    let path = dir.path("new.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Store::open(&path, config(1, "insp-0001", Role::GridInspector)).unwrap_err();
    assert!(
        matches!(err, Error::DatabaseTooNew { found: 99, .. }),
        "{err}"
    );
    let bad_device = Store::open(
        dir.path("x.sqlite"),
        StoreConfig::new("not-a-uuid", "u", Role::Citizen),
    )
    .unwrap_err();
    assert!(matches!(bad_device, Error::Config(_)));
}

#[test]
fn migrations_upgrade_a_frozen_v2_database_and_its_documents_wait_to_be_sent() {
    let dir = TempDir::new();
    let old = dir.path("v2.sqlite");
    old_database(
        &old,
        include_str!("../fixtures/schema_v2.sql"),
        2,
        2,
        "井盖缺失",
    );
    let upgraded = upgrade_and_compare(&dir, &old);
    // The document kept from before sync existed is unsent, and shown as waiting.
    assert_eq!(upgraded.unacknowledged().unwrap(), vec![uuid(2)]);
    assert_eq!(
        upgraded.outbox().unwrap(),
        vec![gridlink_core::store::OutboxEntry {
            doc_id: uuid(2),
            state: gridlink_core::store::OutboxState::Pending
        }]
    );
    assert!(upgraded.credentials().unwrap().is_none());
    assert!(upgraded.rejected_edits().unwrap().is_empty());
}

#[test]
fn migrations_upgrade_a_frozen_v3_database_with_an_empty_photo_queue() {
    let dir = TempDir::new();
    let old = dir.path("v3.sqlite");
    old_database(
        &old,
        include_str!("../fixtures/schema_v3.sql"),
        3,
        3,
        "违章搭建",
    );
    let upgraded = upgrade_and_compare(&dir, &old);
    assert!(upgraded.photo_queue().unwrap().is_empty());
    assert!(upgraded.citizen_reports().unwrap().is_empty());
    assert_eq!(upgraded.case(&uuid(3)).unwrap().details.title, "违章搭建");
}

#[test]
fn migrations_upgrade_a_frozen_v4_database_with_no_records() {
    let dir = TempDir::new();
    let old = dir.path("v4.sqlite");
    old_database(
        &old,
        include_str!("../fixtures/schema_v4.sql"),
        4,
        4,
        "占道经营",
    );
    let upgraded = upgrade_and_compare(&dir, &old);
    assert!(upgraded.templates().unwrap().is_empty());
    assert!(upgraded.mediation_files().unwrap().is_empty());
    assert!(upgraded.search_addresses("路", 10).unwrap().is_empty());
    assert_eq!(upgraded.case(&uuid(4)).unwrap().details.title, "占道经营");
}

#[test]
fn an_enrollment_for_another_device_user_or_role_is_refused() {
    let dir = TempDir::new();
    let store = Store::open(
        dir.path("phone.sqlite"),
        config(1, "insp-0001", Role::GridInspector),
    )
    .unwrap();
    let enrollment = gridlink_core::sync::wire::EnrollResponse {
        protocol: 1,
        device_id: uuid(1),
        token: "t".into(),
        actor_prefix: vec![1; 16],
        user_id: "insp-0001".into(),
        user_name: "张军".into(),
        role: Role::GridInspector,
        scopes: vec![],
    };
    for wrong in [
        gridlink_core::sync::wire::EnrollResponse {
            device_id: uuid(2),
            ..enrollment.clone()
        },
        gridlink_core::sync::wire::EnrollResponse {
            user_id: "insp-0002".into(),
            ..enrollment.clone()
        },
        gridlink_core::sync::wire::EnrollResponse {
            role: Role::GridChief,
            ..enrollment.clone()
        },
        gridlink_core::sync::wire::EnrollResponse {
            actor_prefix: vec![1; 3],
            ..enrollment.clone()
        },
    ] {
        assert!(matches!(
            store.set_enrollment(&wrong),
            Err(Error::Config(_))
        ));
        assert!(store.credentials().unwrap().is_none());
    }
    store.set_enrollment(&enrollment).unwrap();
    assert_eq!(store.credentials().unwrap().unwrap().token, "t");
}
