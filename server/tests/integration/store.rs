//! The `ServerStore` conformance suite: what every backend must do, written against the
//! trait. Each backend gets one `#[test]` calling [`conformance`].

use crate::common::{T0, TempDir};
use gridlink_core::case::{
    CaseDetails, Category, DispatchTarget, EventKind, Level, Role, Source, Stamp,
};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_server::store::{
    CaseRow, Merge, NewDevice, ServerStore, SqliteStore, StoreError, User,
};
use std::sync::Arc;

fn place(grid: &str) -> GridPlace {
    GridPlace {
        grid_id: grid.into(),
        village_id: "v1".into(),
        town_id: "t1".into(),
    }
}

fn stamp(user: &str, role: Role, at: i64) -> Stamp {
    Stamp {
        actor: user.into(),
        role,
        device: "d".into(),
        at_ms: at,
        location: None,
    }
}

fn merge(doc: &mut CaseDoc, device: &str, changes: Vec<u8>) -> Merge {
    let case = doc.case().unwrap();
    let place = place(&case.details.grid_id);
    Merge {
        doc_id: doc.id().into(),
        device_id: device.into(),
        changes,
        heads: doc.heads(),
        // Every key, as if new: keys the document already has are skipped by the store.
        new_scopes: case_scopes(&case, &place),
        scopes: case_scopes(&case, &place),
        row: Some(CaseRow::of(&case, &place, &Default::default())),
        record: None,
        compacted: None,
        photos: case.state.photos.clone(),
        scores: Vec::new(),
    }
}

fn new_doc(grid: &str, n: u128) -> CaseDoc {
    let details = CaseDetails {
        id: uuid::Uuid::from_u128(n).to_string(),
        category: Category::Sanitation,
        source: Source::GridInspector,
        title: format!("案件 {n}"),
        description: String::new(),
        location: None,
        address_id: None,
        grid_id: grid.into(),
        reporter: None,
        priority: Default::default(),
    };
    CaseDoc::create(
        details,
        vec![],
        stamp("u1", Role::GridInspector, T0),
        automerge::ActorId::from(vec![1u8; 20]),
    )
    .unwrap()
    .0
}

pub fn conformance(store: Arc<dyn ServerStore>) {
    // Users and grants.
    let user = User {
        id: "u1".into(),
        name: "甲".into(),
        role: Role::GridChief,
    };
    store.add_user(&user, "t").unwrap();
    assert!(matches!(
        store.add_user(&user, "t"),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.user("u1").unwrap(), Some(user.clone()));
    assert_eq!(store.user("nobody").unwrap(), None);
    let grid: ScopeKey = "grid:g1".parse().unwrap();
    store.grant("u1", &grid, "t").unwrap();
    store.grant("u1", &grid, "t").unwrap();
    assert!(matches!(
        store.grant("nobody", &grid, "t"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.grants("u1").unwrap().into_iter().collect::<Vec<_>>(),
        vec![grid.clone()]
    );

    // Enrollment codes: single use, expiring.
    store.add_enroll_code("u1", "h1", T0 + 10, "t").unwrap();
    store.add_enroll_code("u1", "h2", T0 - 10, "t").unwrap();
    let device = NewDevice {
        id: "dev-1".into(),
        name: "手机".into(),
        token_hash: "tok".into(),
        actor_prefix: vec![9; 16],
    };
    assert_eq!(store.enroll("h1", &device, T0).unwrap(), user);
    assert!(matches!(
        store.enroll("h1", &device, T0),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.enroll("h2", &device, T0),
        Err(StoreError::NotFound(_))
    ));
    let auth = store.device_by_token("tok").unwrap().unwrap();
    assert_eq!(
        (auth.device_id.as_str(), auth.actor_prefix.as_slice()),
        ("dev-1", [9u8; 16].as_slice())
    );
    assert!(store.revoke_device("dev-1", "t").unwrap());
    assert!(!store.revoke_device("dev-1", "t").unwrap());
    assert_eq!(store.device_by_token("tok").unwrap(), None);

    // Documents: commit, load, pull by scope, excluding the pusher, paged by size.
    store.put_grids(&[place("g1"), place("g2")]).unwrap();
    assert_eq!(store.grids().unwrap().len(), 2);
    let mut a = new_doc("g1", 1);
    let bytes = a.save();
    store.commit(&[merge(&mut a, "dev-a", bytes)], &[]).unwrap();
    let before = a.heads();
    a.record(
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        stamp("u1", Role::GridChief, T0 + 1),
    )
    .unwrap();
    a.record(
        EventKind::Escalated {
            to: Level::Town,
            reason: "需要部门".into(),
        },
        stamp("u1", Role::GridChief, T0 + 2),
    )
    .unwrap();
    let changes = a.save_after(&before);
    store
        .commit(&[merge(&mut a, "dev-b", changes)], &[])
        .unwrap();
    let mut others = Vec::new();
    for n in 2..12 {
        let mut doc = new_doc(if n % 2 == 0 { "g1" } else { "g2" }, n);
        let bytes = doc.save();
        others.push(merge(&mut doc, "dev-a", bytes));
    }
    store.commit(&others, &[]).unwrap();
    assert_eq!(store.doc_count().unwrap(), 11);
    let stored = store.load_doc(a.id()).unwrap().unwrap();
    assert_eq!(
        CaseDoc::load(a.id(), &stored.bytes)
            .unwrap()
            .case()
            .unwrap(),
        a.case().unwrap()
    );
    assert!(stored.scopes.contains(&grid));
    assert_eq!(store.case_row(a.id()).unwrap().unwrap().status, "accepted");

    let all = store
        .pull(&[(grid.clone(), 0)], "nobody", u64::MAX)
        .unwrap();
    assert!(!all.more);
    assert_eq!(all.docs.len(), 6);
    let pulled_a = all.docs.iter().find(|d| d.doc_id == a.id()).unwrap();
    assert_eq!(
        CaseDoc::load(a.id(), &pulled_a.bytes)
            .unwrap()
            .case()
            .unwrap(),
        a.case().unwrap()
    );
    // A device's own changes are left out once it has read a key, not on its first read (a
    // reinstalled phone, a grant given back).
    let first_read = store.pull(&[(grid.clone(), 0)], "dev-a", u64::MAX).unwrap();
    assert_eq!(first_read.docs.len(), 6);
    let not_mine = store.pull(&[(grid.clone(), 1)], "dev-a", u64::MAX).unwrap();
    assert_eq!(not_mine.docs.len(), 1, "only dev-b's change of a");
    let mut positions = vec![(grid.clone(), 0)];
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    loop {
        let page = store.pull(&positions, "nobody", 1).unwrap();
        pages += 1;
        seen.extend(page.docs.iter().map(|d| d.doc_id.clone()));
        positions = page.positions;
        if !page.more {
            break;
        }
    }
    assert!(pages > 3);
    assert_eq!(seen.len(), 6);

    // A dispatch brings the document into the department's scope, whole.
    let before = a.heads();
    a.record(
        EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "env".into(),
                name: "环保".into(),
            },
            due_at_ms: None,
            note: String::new(),
        },
        stamp("u1", Role::Operator, T0 + 3),
    )
    .unwrap();
    let changes = a.save_after(&before);
    store
        .commit(&[merge(&mut a, "dev-c", changes)], &[])
        .unwrap();
    let dept: ScopeKey = "dept:env".parse().unwrap();
    let page = store
        .pull(&[(dept.clone(), 0)], "nobody", u64::MAX)
        .unwrap();
    assert_eq!(page.docs.len(), 1);
    assert_eq!(
        CaseDoc::load(a.id(), &page.docs[0].bytes)
            .unwrap()
            .case()
            .unwrap(),
        a.case().unwrap()
    );

    // Leaving a scope.
    let leaving = store
        .docs_leaving(std::slice::from_ref(&grid), std::slice::from_ref(&dept))
        .unwrap();
    assert_eq!(leaving.len(), 5);
    assert!(!leaving.contains(&a.id().to_owned()));
    assert!(store.docs_leaving(&[], &[grid]).unwrap().is_empty());

    // The audit log keeps administrative actions.
    let audit = store.audit_log(100).unwrap();
    for action in [
        "user_add",
        "grant",
        "enroll_code",
        "enroll",
        "revoke_device",
    ] {
        assert!(audit.iter().any(|e| e.action == action), "{action}");
    }
}

#[test]
fn sqlite_store_conforms() {
    let dir = TempDir::new();
    conformance(Arc::new(SqliteStore::open(dir.path()).unwrap()));
}

#[test]
fn sqlite_store_refuses_a_newer_data_directory() {
    let dir = TempDir::new();
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("gridlink.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[test]
fn case_rows_written_before_they_carried_details_are_filled_when_the_store_opens() {
    let mut server = crate::common::TestServer::start();
    let phone = server.phone("insp-0001");
    let case = phone.report(crate::common::GRID, "旧版本写入的案件", crate::common::T0);
    phone.sync();
    let data = server.data.path().to_path_buf();
    server.stop();
    // As a version-6 server left it: no location, address or description in the row, and the
    // request migration 0007 makes when it finds cases.
    let raw = rusqlite::Connection::open(data.join("gridlink.sqlite")).unwrap();
    raw.execute(
        "UPDATE cases SET lat = NULL, lon = NULL, address_id = NULL, description = ''",
        [],
    )
    .unwrap();
    raw.execute(
        "INSERT INTO settings (key, value) VALUES ('refresh_case_rows', X'01')
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [],
    )
    .unwrap();
    drop(raw);
    let store = SqliteStore::open(&data).unwrap();
    let row = store.case_row(&case).unwrap().unwrap();
    let point = row.point.expect("the location is back");
    assert!((point.lat - 31.16).abs() < 1e-9 && (point.lon - 120.64).abs() < 1e-9);
    assert_eq!(
        store.setting("refresh_case_rows").unwrap().as_deref(),
        Some(&[0][..])
    );
}

/// The schema of a database file: every object's type, name and SQL (whitespace folded).
fn schema_of(path: &std::path::Path) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?)))
        .unwrap()
        .map(|r| {
            let (t, n, sql) = r.unwrap();
            (t, n, sql.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

const FROZEN: [&str; 7] = [
    include_str!("../fixtures/schema_v1.sql"),
    include_str!("../fixtures/schema_v2.sql"),
    include_str!("../fixtures/schema_v3.sql"),
    include_str!("../fixtures/schema_v4.sql"),
    include_str!("../fixtures/schema_v5.sql"),
    include_str!("../fixtures/schema_v6.sql"),
    include_str!("../fixtures/schema_v7.sql"),
];

/// A data directory whose database is the frozen schema of `version`.
fn frozen(version: usize) -> TempDir {
    let dir = TempDir::new();
    let conn = rusqlite::Connection::open(dir.path().join("gridlink.sqlite")).unwrap();
    conn.execute_batch(FROZEN[version - 1]).unwrap();
    conn.pragma_update(None, "user_version", version as i64)
        .unwrap();
    dir
}

#[test]
fn every_released_schema_upgrades_to_the_fresh_one() {
    assert_eq!(
        FROZEN.len() as i64,
        gridlink_server::store::SQLITE_SCHEMA_VERSION,
        "a new migration needs its frozen schema in tests/fixtures"
    );
    let fresh = TempDir::new();
    drop(SqliteStore::open(fresh.path()).unwrap());
    let want = schema_of(&fresh.path().join("gridlink.sqlite"));
    for version in 1..=FROZEN.len() {
        let old = frozen(version);
        let path = old.path().join("gridlink.sqlite");
        if version < FROZEN.len() {
            assert_ne!(schema_of(&path), want, "v{version} is an old schema");
        }
        let store = SqliteStore::open(old.path()).unwrap();
        assert_eq!(schema_of(&path), want, "v{version} upgraded");
        let found: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(found, gridlink_server::store::SQLITE_SCHEMA_VERSION);
        // The upgraded store works: a case goes in and comes out.
        let mut doc = new_doc("g1", version as u128);
        let changes = doc.save();
        store.commit(&[merge(&mut doc, "d", changes)], &[]).unwrap();
        assert!(store.load_doc(doc.id()).unwrap().is_some(), "v{version}");
    }
}

/// Migration 0007's data work runs in its own transaction: a version-6 case row, written
/// before rows carried where the case is, gets its location and description from the
/// document, and nothing is left pending.
#[test]
fn the_v6_to_v7_upgrade_fills_case_rows_from_their_documents() {
    let old = frozen(6);
    let mut details = new_doc("g1", 1).case().unwrap().details;
    details.description = "楼道里堆满了纸箱".into();
    details.location = Some(gridlink_core::case::Location {
        point: gridlink_core::geo::LatLon::new(31.16, 120.64),
        accuracy_m: 5.0,
    });
    let (mut doc, _) = CaseDoc::create(
        details.clone(),
        vec![],
        stamp("u1", Role::GridInspector, T0),
        automerge::ActorId::from(vec![1u8; 20]),
    )
    .unwrap();
    let conn = rusqlite::Connection::open(old.path().join("gridlink.sqlite")).unwrap();
    conn.execute(
        "INSERT INTO documents (id, kind, heads, base, base_seq, chunks) VALUES (?1, 'case', X'', ?2, 0, 0)",
        rusqlite::params![details.id, doc.save()],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cases (id, grid_id, village_id, town_id, category, source, status, level,
                            title, reported_at, updated_at, flagged, events)
         VALUES (?1, 'g1', 'v1', 't1', 'sanitation', 'grid_inspector', 'reported', 'grid', ?2, ?3, ?3, 0, 1)",
        rusqlite::params![details.id, details.title, T0],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(old.path()).unwrap();
    let row = store.case_row(&details.id).unwrap().unwrap();
    assert_eq!(row.description, "楼道里堆满了纸箱");
    let point = row.point.expect("the location is filled");
    assert!((point.lat - 31.16).abs() < 1e-9 && (point.lon - 120.64).abs() < 1e-9);
    assert_eq!(
        store.setting("refresh_case_rows").unwrap().as_deref(),
        Some(&[0][..])
    );
}
