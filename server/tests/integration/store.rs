//! The `ServerStore` conformance suite: what every backend must do, written against the
//! trait. Each backend runs all of it with one line: `conformance_suite!(name, open)`.

use crate::common::{T0, TempDir};
use gridlink_core::case::{
    CaseDetails, Category, DispatchTarget, EventKind, Level, Role, Source, Stamp,
};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::scope::{GridPlace, ScopeKey, case_scopes};
use gridlink_server::store::{
    CaseQueries, CaseRow, DocumentStore, Merge, NewDevice, PgStore, ServerStore, SettingsAudit,
    SqliteStore, StoreError, User,
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
        // Unconditional; the stale-heads tests set it.
        base_heads: None,
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

/// The rest of the contract, method by method: the directory's other half (revoked grants,
/// citizens, web passwords, sessions and devices, API keys), settings and audit, blobs and
/// photo owners, records and coverage, case queries and the roll-ups.
pub fn conformance_queries(store: Arc<dyn ServerStore>) {
    use gridlink_core::case::{ScoreLine, ScoreReason, ScoreUnit};
    use gridlink_core::doc::DocKind;
    use gridlink_core::sync::records::RecordSummary;
    use gridlink_server::store::{
        ApiKey, Area, AuditEntry, BlobRow, CaseFilter, Citizen, WebSession,
    };
    let chief = User {
        id: "u1".into(),
        name: "甲".into(),
        role: Role::GridChief,
    };
    store.add_user(&chief, "t").unwrap();
    // The grid directory places the per-grid roll-ups.
    store.put_grids(&[place("g1"), place("g2")]).unwrap();

    // Grants withdrawn are remembered as withdrawn.
    let grid: ScopeKey = "grid:g1".parse().unwrap();
    let town: ScopeKey = "town:t1".parse().unwrap();
    store.grant("u1", &grid, "t").unwrap();
    store.grant("u1", &town, "t").unwrap();
    assert!(store.revoke_grant("u1", &town, "t").unwrap());
    assert!(!store.revoke_grant("u1", &town, "t").unwrap());
    assert_eq!(store.grants("u1").unwrap(), [grid.clone()].into());
    assert_eq!(store.revoked_grants("u1").unwrap(), [town.clone()].into());
    store.grant("u1", &town, "t").unwrap();
    assert!(
        store.revoked_grants("u1").unwrap().is_empty(),
        "granted again"
    );

    // Citizens: registered with their device, at most so many per phone number.
    let citizen = Citizen {
        user_id: "cit-1".into(),
        name: Some("王五".into()),
        phone_hash: Some("ph".into()),
        phone_masked: Some("138****1234".into()),
        registered_at_ms: T0,
    };
    let phone = |id: &str, token: &str| NewDevice {
        id: id.into(),
        name: "市民手机".into(),
        token_hash: token.into(),
        actor_prefix: vec![3; 16],
    };
    store
        .register_citizen(&citizen, &phone("cdev-1", "ctok-1"), 1)
        .unwrap();
    assert_eq!(store.citizen("cit-1").unwrap(), Some(citizen.clone()));
    assert_eq!(store.citizen("cit-2").unwrap(), None);
    let device = store.device_by_token("ctok-1").unwrap().unwrap();
    assert_eq!(device.user.role, Role::Citizen);
    let again = Citizen {
        user_id: "cit-2".into(),
        ..citizen.clone()
    };
    assert!(matches!(
        store.register_citizen(&again, &phone("cdev-2", "ctok-2"), 1),
        Err(StoreError::Conflict(_))
    ));
    let other_phone = Citizen {
        user_id: "cit-3".into(),
        phone_hash: Some("ph-3".into()),
        ..citizen.clone()
    };
    assert!(matches!(
        store.register_citizen(&other_phone, &phone("cdev-1", "ctok-3"), 1),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.citizen("cit-3").unwrap(),
        None,
        "nothing of a refusal"
    );

    // Web passwords, sessions and the web device.
    assert_eq!(store.web_password("u1").unwrap(), None);
    store.set_web_password("u1", "$argon2id$a", "t").unwrap();
    assert_eq!(
        store.web_password("u1").unwrap().as_deref(),
        Some("$argon2id$a")
    );
    assert!(matches!(
        store.set_web_password("nobody", "$argon2id$a", "t"),
        Err(StoreError::NotFound(_))
    ));
    let session = WebSession {
        token_hash: "sess".into(),
        user_id: "u1".into(),
        csrf: "csrf".into(),
        created_at: T0,
        expires_at: T0 + 1_000,
    };
    store.add_web_session(&session).unwrap();
    let (found, user) = store.web_session("sess", T0 + 1).unwrap().unwrap();
    assert_eq!((found, user), (session.clone(), chief.clone()));
    assert!(
        store.web_session("sess", T0 + 1_000).unwrap().is_none(),
        "expired"
    );
    assert!(store.web_session("other", T0).unwrap().is_none());
    store.end_web_session("sess").unwrap();
    assert!(
        store.web_session("sess", T0 + 1).unwrap().is_none(),
        "signed out"
    );
    store.add_web_session(&session).unwrap();
    store.set_web_password("u1", "$argon2id$b", "t").unwrap();
    assert!(
        store.web_session("sess", T0 + 1).unwrap().is_none(),
        "a new password ends every session"
    );
    let web = store.web_device("u1", &[5; 16]).unwrap();
    assert_eq!(web.user, chief);
    assert_eq!(web.actor_prefix, vec![5; 16]);
    assert_eq!(
        store.web_device("u1", &[6; 16]).unwrap().device_id,
        web.device_id
    );
    assert!(store.web_device("nobody", &[5; 16]).is_err());

    // Open311 keys, settings, the audit log.
    let key = ApiKey {
        name: "12345 热线".into(),
        scope: town.clone(),
        created_at: T0,
        revoked: false,
    };
    store.add_api_key("kh", &key, "t").unwrap();
    assert_eq!(store.api_key("kh").unwrap(), Some(key));
    assert_eq!(store.api_key("nope").unwrap(), None);
    assert_eq!(store.setting("k").unwrap(), None);
    store.put_setting("k", b"1").unwrap();
    store.put_setting("k", b"2").unwrap();
    assert_eq!(store.setting("k").unwrap().as_deref(), Some(&b"2"[..]));
    let entry = AuditEntry {
        at_ms: T0,
        actor: "u1".into(),
        device: None,
        action: "test_action".into(),
        subject: "s".into(),
        detail: "d".into(),
    };
    store.audit(&entry).unwrap();
    assert_eq!(store.audit_log(1).unwrap(), vec![entry]);

    // Blobs and their thumbnails.
    let blob = |hash: &str, thumb_of: Option<&str>, at: i64| BlobRow {
        hash: hash.into(),
        size: 10,
        kind: if thumb_of.is_some() { "thumb" } else { "photo" }.into(),
        thumb_of: thumb_of.map(Into::into),
        device_id: "dev-a".into(),
        received_at_ms: at,
    };
    assert_eq!(store.blob("p1").unwrap(), None);
    store.put_blob(&blob("p1", None, T0)).unwrap();
    store.put_blob(&blob("p1", None, T0)).unwrap();
    store.put_blob(&blob("t1", Some("p1"), T0 + 1)).unwrap();
    store.put_blob(&blob("t2", Some("p1"), T0 + 2)).unwrap();
    assert_eq!(store.blob("p1").unwrap(), Some(blob("p1", None, T0)));
    assert_eq!(
        store.thumbnail_of("p1").unwrap(),
        Some(blob("t1", Some("p1"), T0 + 1)),
        "the first thumbnail"
    );
    assert_eq!(store.thumbnail_of("t1").unwrap(), None);

    // Cases: three in two grids, with photos, deadlines and score lines.
    let seq0 = store.change_seq().unwrap();
    let case_in = |grid: &str, n: u128, reporter: &str, due: Option<i64>, at: i64| {
        let mut doc = new_doc(grid, n);
        let changes = doc.save();
        let mut m = merge(&mut doc, "dev-a", changes);
        let row = m.row.as_mut().unwrap();
        row.reporter = Some(reporter.into());
        row.due_at = due;
        row.reported_at = at;
        m.photos = vec![format!("photo-{n}"), "shared".into()];
        m.scores = vec![ScoreLine {
            unit: ScoreUnit::Grid(grid.into()),
            points: n as f64,
            reason: ScoreReason::Reported,
            at_ms: at,
        }];
        (doc, m)
    };
    let day = 86_400_000;
    let (a, ma) = case_in("g1", 201, "u1", Some(T0 + day), T0);
    let (b, mb) = case_in("g1", 202, "cit-1", Some(T0 + 3 * day), T0 + day);
    let (c, mc) = case_in("g2", 203, "u1", None, T0 + 2 * day);
    store.commit(&[ma], &[]).unwrap();
    let seq1 = store.change_seq().unwrap();
    assert!(seq1 > seq0);
    store.commit(&[mb, mc], &[]).unwrap();
    assert!(store.change_seq().unwrap() > seq1);

    let owner = store.photo_owner("shared").unwrap().unwrap();
    assert_eq!(
        owner.case_id,
        a.id(),
        "the first case to name a photo owns it"
    );
    assert_eq!(owner.reporter.as_deref(), Some("u1"));
    assert!(owner.scopes.contains(&grid));
    assert_eq!(
        store.photo_owner("photo-202").unwrap().unwrap().case_id,
        b.id()
    );
    assert_eq!(store.photo_owner("none").unwrap(), None);

    let ids = |rows: Vec<CaseRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.reported_by("u1", 10).unwrap()),
        vec![c.id().to_owned(), a.id().to_owned()],
        "newest first"
    );
    assert_eq!(
        ids(store.reported_by("u1", 1).unwrap()),
        vec![c.id().to_owned()]
    );

    let list = |filter: CaseFilter| ids(store.case_list(&filter).unwrap());
    let everywhere = CaseFilter {
        area: Area::district(),
        limit: 100,
        ..CaseFilter::default()
    };
    assert_eq!(
        list(everywhere.clone()),
        vec![c.id().to_owned(), b.id().to_owned(), a.id().to_owned()]
    );
    let g2_only = Area::of(&["grid:g2".parse().unwrap()].into());
    assert_eq!(
        list(CaseFilter {
            area: g2_only.clone(),
            ..everywhere.clone()
        }),
        vec![c.id().to_owned()]
    );
    assert!(
        list(CaseFilter {
            area: Area::default(),
            ..everywhere.clone()
        })
        .is_empty(),
        "an empty area sees nothing"
    );
    assert_eq!(
        list(CaseFilter {
            grid_id: Some("g1".into()),
            limit: 1,
            offset: 1,
            ..everywhere.clone()
        }),
        vec![a.id().to_owned()]
    );

    // Overdue: open and past the deadline.
    let now = T0 + 2 * day;
    assert_eq!(
        ids(store.overdue_cases(now, None, 10).unwrap()),
        vec![a.id().to_owned()]
    );
    assert_eq!(
        ids(store
            .overdue_cases(T0 + 4 * day, Some(&[grid.clone()].into()), 10)
            .unwrap()),
        vec![a.id().to_owned(), b.id().to_owned()]
    );
    assert!(
        store
            .overdue_cases(now, Some(&["grid:g2".parse().unwrap()].into()), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.overdue_count(now, &Area::district()).unwrap(), 1);
    assert_eq!(store.overdue_count(now, &g2_only).unwrap(), 0);

    // Roll-ups: open cases per grid and level, counts per day, score totals.
    let mut open = store.open_by_grid().unwrap();
    open.sort();
    assert_eq!(open, vec![("g1".to_owned(), 2), ("g2".to_owned(), 1)]);
    assert_eq!(
        store.open_by_level(&Area::district()).unwrap(),
        vec![(Level::Grid.code().to_owned(), 3)]
    );
    assert_eq!(
        store.open_by_level(&g2_only).unwrap(),
        vec![(Level::Grid.code().to_owned(), 1)]
    );
    let counts = store
        .case_counts(T0, T0 + 3 * day, &Area::district())
        .unwrap();
    assert_eq!(counts.iter().map(|c| c.n).sum::<u64>(), 3);
    assert!(counts.iter().all(|c| c.town_id == "t1" && !c.closed));
    // Whole local days: the day holding the period's one millisecond.
    let stats = store.case_stats(T0, T0 + 1, &Area::district()).unwrap();
    assert_eq!(stats.reported, 1);
    assert_eq!(
        store
            .case_stats(T0, T0 + 3 * day, &Area::of_key(&"town:t2".parse().unwrap()))
            .unwrap()
            .reported,
        0
    );
    let totals = store.score_totals(T0, T0 + 3 * day).unwrap();
    let points = |unit: &str| {
        totals
            .iter()
            .find(|t| t.unit == unit)
            .map(|t| (t.points, t.lines))
    };
    assert_eq!(points("grid:g1"), Some((403.0, 2)));
    assert_eq!(points("grid:g2"), Some((203.0, 1)));
    assert_eq!(
        store
            .score_totals(T0, T0 + 1)
            .unwrap()
            .iter()
            .map(|t| t.lines)
            .sum::<u64>(),
        1,
        "whole days: the day holding the period"
    );

    // Records: ids by kind, and the coverage of a grid's addresses by visits.
    let record = |id: &str, kind: DocKind, subject: &str, done: Option<i64>| {
        let mut m = merge(&mut new_doc("g1", 300), "dev-a", vec![1, 2, 3]);
        m.doc_id = id.into();
        m.row = None;
        m.scores = Vec::new();
        m.photos = Vec::new();
        m.record = Some(RecordSummary {
            kind,
            grid_id: Some("g1".into()),
            subject: Some(subject.into()),
            title: format!("苏州市吴江区 {subject} 号"),
            actor: Some("u1".into()),
            started_at_ms: done.map(|d| d - 60_000),
            done_at_ms: done,
            updated_at_ms: T0,
            photos: Vec::new(),
        });
        m
    };
    store
        .commit(
            &[
                record("addr-A1", DocKind::Address, "A1", None),
                record("addr-A2", DocKind::Address, "A2", None),
                record("visit-1", DocKind::Visit, "A1", Some(T0 + 5)),
                record("visit-2", DocKind::Visit, "A1", Some(T0 + 9)),
                record("visit-3", DocKind::Visit, "A2", None),
            ],
            &[],
        )
        .unwrap();
    assert_eq!(
        store.record_ids("address").unwrap(),
        vec!["addr-A1", "addr-A2"]
    );
    assert_eq!(store.record_ids("visit").unwrap().len(), 3);
    let coverage = store.coverage("g1").unwrap();
    let last = |code: &str| {
        coverage
            .iter()
            .find(|r| r.code == code)
            .map(|r| r.last_visit_ms)
    };
    assert_eq!(last("A1"), Some(Some(T0 + 9)), "the last completed visit");
    assert_eq!(
        last("A2"),
        Some(None),
        "a visit not checked out does not count"
    );
    assert!(store.coverage("g2").unwrap().is_empty());
}

/// What every backend must keep with two writers on one district record (two server nodes,
/// or two handles of one process): a commit whose document moved since it was read is
/// refused whole (`Stale`, nothing written), and a reader following its cursors never misses
/// a change, whatever order the writers commit in. `open` gives a new handle on the same
/// stored record each time it is called.
pub fn conformance_two_writers(open: &dyn Fn() -> Arc<dyn ServerStore>) {
    let (a, b) = (open(), open());
    let grid: ScopeKey = "grid:g1".parse().unwrap();

    // A new document: the first commit creates it, the second (also "new") is stale.
    let mut doc = new_doc("g1", 100);
    let created = doc.save();
    let mut first = merge(&mut doc, "dev-a", created.clone());
    first.base_heads = Some(Vec::new());
    let twin = first.clone();
    a.commit(&[first], &[]).unwrap();
    assert!(matches!(
        b.commit(&[twin], &[]),
        Err(StoreError::Stale { doc_id }) if doc_id == doc.id()
    ));

    // Both writers start from the same heads; the later commit is refused whole, with the
    // other merge of its batch.
    let base = doc.heads();
    let mut theirs = CaseDoc::load(doc.id(), &created).unwrap();
    doc.record(
        EventKind::Comment { text: "甲".into() },
        stamp("u1", Role::GridChief, T0 + 1),
    )
    .unwrap();
    theirs
        .record(
            EventKind::Comment { text: "乙".into() },
            stamp("u2", Role::GridChief, T0 + 2),
        )
        .unwrap();
    let mine = doc.save_after(&base);
    let mut m = merge(&mut doc, "dev-a", mine);
    m.base_heads = Some(base.clone());
    let lost = theirs.save_after(&base);
    let mut other = merge(&mut theirs, "dev-b", lost);
    other.base_heads = Some(base.clone());
    let mut bystander = new_doc("g1", 101);
    let bystander_bytes = bystander.save();
    let mut alongside = merge(&mut bystander, "dev-b", bystander_bytes);
    alongside.base_heads = Some(Vec::new());
    let seq_before = b.change_seq().unwrap();
    a.commit(&[m], &[]).unwrap();
    let seq_after = b.change_seq().unwrap();
    assert!(matches!(
        b.commit(&[alongside, other], &[]),
        Err(StoreError::Stale { .. })
    ));
    assert_eq!(
        b.change_seq().unwrap(),
        seq_after,
        "nothing of the stale batch"
    );
    assert!(seq_after > seq_before);
    assert!(b.load_doc(bystander.id()).unwrap().is_none());
    let stored = CaseDoc::load(doc.id(), &b.load_doc(doc.id()).unwrap().unwrap().bytes)
        .unwrap()
        .case()
        .unwrap();
    assert_eq!(
        stored,
        doc.case().unwrap(),
        "the first writer's comment, alone"
    );
    // Built on what is stored now, the second writer's edit goes in.
    let now = doc.heads();
    theirs.merge(&mut doc).unwrap();
    theirs
        .record(
            EventKind::Comment { text: "乙".into() },
            stamp("u2", Role::GridChief, T0 + 3),
        )
        .unwrap();
    let again = theirs.save_after(&now);
    let mut retry = merge(&mut theirs, "dev-b", again);
    retry.base_heads = Some(now);
    b.commit(&[retry], &[]).unwrap();

    // The cursor guarantee: two writers commit new documents as fast as they can while a
    // reader follows its cursor; when they stop, the reader has every document, and a pull
    // from its final cursor has nothing more.
    const EACH: u128 = 60;
    let mut cursor = vec![(grid.clone(), 0)];
    let mut seen = std::collections::BTreeSet::new();
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (w, store) in [(0u128, a.clone()), (1, b.clone())] {
            let done = &done;
            s.spawn(move || {
                for n in 0..EACH {
                    let mut d = new_doc("g1", 1_000 + w * EACH + n);
                    let bytes = d.save();
                    let mut m = merge(&mut d, &format!("dev-{w}"), bytes);
                    m.base_heads = Some(Vec::new());
                    store.commit(&[m], &[]).unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let reader = open();
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == 2;
            let page = reader.pull(&cursor, "nobody", 64 * 1024).unwrap();
            seen.extend(page.docs.iter().map(|d| d.doc_id.clone()));
            cursor = page.positions;
            if finished && !page.more {
                break;
            }
        }
    });
    for n in 0..2 * EACH {
        let id = uuid::Uuid::from_u128(1_000 + n).to_string();
        assert!(seen.contains(&id), "the reader's cursor skipped {id}");
    }
    assert!(
        a.pull(&cursor, "nobody", u64::MAX).unwrap().docs.is_empty(),
        "nothing after the final cursor"
    );
}

/// The whole suite against one backend: `open` makes a handle on the stored record in a data
/// directory (called again for a second writer). A second backend adds one line below.
macro_rules! conformance_suite {
    ($backend:ident, $open:expr $(, when: $there:expr)?) => {
        mod $backend {
            use super::*;

            fn open(dir: &std::path::Path) -> Arc<dyn ServerStore> {
                ($open)(dir)
            }

            #[test]
            fn conforms() {
                $(if !$there() { return; })?
                let dir = TempDir::new();
                conformance(open(dir.path()));
            }

            #[test]
            fn answers_every_query_as_the_contract_says() {
                $(if !$there() { return; })?
                let dir = TempDir::new();
                conformance_queries(open(dir.path()));
            }

            #[test]
            fn keeps_its_promises_to_two_writers() {
                $(if !$there() { return; })?
                let dir = TempDir::new();
                conformance_two_writers(&|| open(dir.path()));
            }
        }
    };
}

conformance_suite!(sqlite, |dir: &std::path::Path| Arc::new(
    SqliteStore::open(dir).unwrap()
));

// PostgreSQL, on the server `cargo xtask ci` starts (a schema per test).
conformance_suite!(
    postgres,
    |dir: &std::path::Path| -> Arc<dyn ServerStore> {
        let server = crate::common::postgres_server().unwrap();
        Arc::new(PgStore::open(&crate::common::schema_for(&server, dir)).unwrap())
    },
    when: postgres_is_there
);

fn postgres_is_there() -> bool {
    crate::common::postgres_for_test().is_some()
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
    let mut server = crate::common::TestServer::start_sqlite();
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

const FROZEN: [&str; 8] = [
    include_str!("../fixtures/schema_v1.sql"),
    include_str!("../fixtures/schema_v2.sql"),
    include_str!("../fixtures/schema_v3.sql"),
    include_str!("../fixtures/schema_v4.sql"),
    include_str!("../fixtures/schema_v5.sql"),
    include_str!("../fixtures/schema_v6.sql"),
    include_str!("../fixtures/schema_v7.sql"),
    include_str!("../fixtures/schema_v8.sql"),
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
