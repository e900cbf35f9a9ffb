//! What a modified phone, a revoked device or a citizen cannot do, and what never leaves the
//! server: each refusal is per document, with a reason, and the rest of the batch goes in.

use crate::common::*;
use automerge::ReadDoc;
use automerge::transaction::Transactable;
use autosurgeon::reconcile_insert;
use gridlink_core::Error;
use gridlink_core::case::{
    CaseDetails, Category, DispatchTarget, Event, EventKind, Role, Source, Stamp,
};
use gridlink_core::doc::CaseDoc;
use gridlink_core::sync::wire::{self, PushDoc, RejectCode, SyncRequest, SyncResponse};
use gridlink_core::sync::{Transport, TransportError, device_actor};
use std::sync::Mutex;

fn actor_of(phone: &Phone) -> automerge::ActorId {
    let prefix: [u8; 16] = phone.enrollment.actor_prefix.as_slice().try_into().unwrap();
    device_actor(&prefix, 0)
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

fn new_case(phone: &Phone, grid: &str, actor: automerge::ActorId) -> CaseDoc {
    case_from(phone, grid, actor, Source::GridInspector)
}

fn case_from(phone: &Phone, grid: &str, actor: automerge::ActorId, source: Source) -> CaseDoc {
    let details = CaseDetails {
        id: uuid::Uuid::new_v4().to_string(),
        category: Category::Sanitation,
        source,
        title: "手工构造的案件".into(),
        description: String::new(),
        location: None,
        address_id: None,
        grid_id: grid.into(),
        reporter: None,
        priority: Default::default(),
    };
    CaseDoc::create(details, vec![], stamp(phone, T0), actor)
        .unwrap()
        .0
}

/// Appends an event without the phone's own checks, as a modified app could.
fn force_event(doc: &mut CaseDoc, kind: EventKind, stamp: Stamp) -> String {
    let history = doc.history().unwrap();
    let event = Event::new(kind, stamp, &history);
    let am = doc.automerge();
    let (_, obj) = am.get(automerge::ROOT, "history").unwrap().unwrap();
    reconcile_insert(am, obj, history.len(), &event).unwrap();
    am.commit();
    event.id
}

fn push(phone: &Phone, docs: Vec<PushDoc>) -> SyncResponse {
    let request = SyncRequest {
        protocol: wire::PROTOCOL_VERSION,
        request_id: uuid::Uuid::new_v4().to_string(),
        push: docs,
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

fn whole(doc: &mut CaseDoc) -> PushDoc {
    PushDoc {
        doc_id: doc.id().to_owned(),
        changes: doc.save(),
    }
}

#[test]
fn forged_actors_and_forbidden_events_are_refused_per_document() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let mut forged = new_case(&inspector, GRID, automerge::ActorId::from(vec![7u8; 20]));
    let mut honest = new_case(&inspector, GRID, actor_of(&inspector));
    let mut dispatching = new_case(&inspector, GRID, actor_of(&inspector));
    let dispatch = force_event(
        &mut dispatching,
        EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "dept-env".into(),
                name: "环保".into(),
            },
            due_at_ms: None,
            note: "网格员自行派遣".into(),
        },
        stamp(&inspector, T0 + 1),
    );
    let mut impersonating = new_case(&inspector, GRID, actor_of(&inspector));
    force_event(
        &mut impersonating,
        EventKind::Comment {
            text: "冒充网格长".into(),
        },
        Stamp {
            actor: "chief-0001".into(),
            role: Role::GridChief,
            ..stamp(&inspector, T0 + 2)
        },
    );
    let response = push(
        &inspector,
        vec![
            whole(&mut forged),
            whole(&mut honest),
            whole(&mut dispatching),
            whole(&mut impersonating),
        ],
    );
    let code_of = |id: &str| {
        response
            .rejections
            .iter()
            .find(|r| r.doc_id == id)
            .map(|r| r.code)
    };
    assert_eq!(code_of(forged.id()), Some(RejectCode::ForgedActor));
    assert_eq!(code_of(dispatching.id()), Some(RejectCode::RoleNotAllowed));
    assert_eq!(code_of(impersonating.id()), Some(RejectCode::Impersonation));
    let refusal = response
        .rejections
        .iter()
        .find(|r| r.doc_id == dispatching.id())
        .unwrap();
    assert_eq!(refusal.event_ids, vec![dispatch]);
    assert!(refusal.message.contains("dispatched"));
    // The honest document of the same batch went in; the others left no trace.
    assert_eq!(response.acks.len(), 1);
    assert_eq!(response.acks[0].doc_id, honest.id());
    assert!(server.doc(honest.id()).is_some());
    for doc in [&forged, &dispatching, &impersonating] {
        assert!(server.doc(doc.id()).is_none());
        assert!(server.state.store().case_row(doc.id()).unwrap().is_none());
    }
    let audit = server.state.store().audit_log(50).unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.action == "push_rejected").count(),
        3
    );
}

/// A case must come in under its reporter's own channel: an inspector's phone cannot make a
/// report look like a citizen's 随手拍, an Open311 intake or a professional inspector's.
#[test]
fn a_new_case_whose_source_does_not_match_the_pushers_role_is_refused() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let with_source = |source| case_from(&inspector, GRID, actor_of(&inspector), source);
    let mut own = with_source(Source::GridInspector);
    let mut posing: Vec<CaseDoc> = [
        Source::Citizen,
        Source::Open311,
        Source::Analytics,
        Source::ProfessionalInspector,
    ]
    .into_iter()
    .map(with_source)
    .collect();
    let mut docs = vec![whole(&mut own)];
    docs.extend(posing.iter_mut().map(whole));
    let response = push(&inspector, docs);
    assert_eq!(response.acks.len(), 1);
    assert_eq!(response.acks[0].doc_id, own.id());
    for doc in &posing {
        let refusal = response
            .rejections
            .iter()
            .find(|r| r.doc_id == doc.id())
            .expect("refused");
        assert_eq!(refusal.code, RejectCode::RoleNotAllowed);
        assert!(refusal.message.contains("来源"), "{}", refusal.message);
        assert!(server.doc(doc.id()).is_none());
    }
}

#[test]
fn past_events_cannot_be_rewritten_or_deleted() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let id = inspector.report(GRID, "原始上报", T0);
    inspector.comment(&id, "第一条备注", T0 + 1);
    inspector.sync();
    let before = server.doc(&id).unwrap().case().unwrap();

    // Rewrite the comment's text in place, then delete the report, each from the synced copy.
    let bytes = server.doc(&id).unwrap().save();
    for tamper in 0..3 {
        let mut doc = CaseDoc::load(&id, &bytes).unwrap();
        doc.set_actor(actor_of(&inspector));
        let before_heads = doc.heads();
        let am = doc.automerge();
        let (_, history) = am.get(automerge::ROOT, "history").unwrap().unwrap();
        match tamper {
            0 => {
                let (_, event) = am.get(&history, 1).unwrap().unwrap();
                let (_, kind) = am.get(&event, "kind").unwrap().unwrap();
                let (_, comment) = am.get(&kind, "Comment").unwrap().unwrap();
                am.put(&comment, "text", "篡改后的备注").unwrap();
            }
            1 => am.delete(&history, 0).unwrap(),
            _ => {
                let (_, details) = am.get(automerge::ROOT, "details").unwrap().unwrap();
                am.put(&details, "grid_id", GRID_2).unwrap();
            }
        }
        am.commit();
        let response = push(
            &inspector,
            vec![PushDoc {
                doc_id: id.clone(),
                changes: doc.save_after(&before_heads),
            }],
        );
        assert_eq!(response.rejections.len(), 1, "tamper {tamper}");
        assert_eq!(response.rejections[0].code, RejectCode::RewritesHistory);
        // The refusal carries the server's copy so the phone can reset to it.
        let copy = CaseDoc::load(&id, response.rejections[0].server_doc.as_ref().unwrap()).unwrap();
        assert_eq!(copy.case().unwrap(), before);
    }
    assert_eq!(server.doc(&id).unwrap().case().unwrap(), before);
}

#[test]
fn a_report_outside_the_users_grids_is_refused_and_the_phone_keeps_it_visible() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let inside = inspector.report(GRID, "本网格案件", T0);
    let outside = inspector.report(OTHER_TOWN_GRID, "别的镇的案件", T0 + 1);
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 1);
    assert!(server.doc(&inside).is_some());
    assert!(server.doc(&outside).is_none());
    // The refused report is gone from the phone's cases and listed with the reason.
    assert_eq!(
        inspector.store.document_ids().unwrap(),
        vec![inside.clone()]
    );
    let rejected = inspector.store.rejected_edits().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].doc_id, outside);
    assert_eq!(rejected[0].code, "out_of_scope");
    assert_eq!(rejected[0].details.as_ref().unwrap().title, "别的镇的案件");
    // The next sync is quiet.
    let again = inspector.sync();
    assert_eq!((again.docs_sent, again.docs_rejected), (0, 0));
}

#[test]
fn a_refused_event_is_listed_and_the_users_later_actions_are_kept() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let id = inspector.report(GRID, "需要派遣的案件", T0);
    inspector.sync();
    // A modified phone records a dispatch, then the user comments: the dispatch is refused,
    // the comment survives on top of the server's version.
    let mut doc = CaseDoc::load(&id, &server.doc(&id).unwrap().save()).unwrap();
    doc.set_actor(actor_of(&inspector));
    let before = doc.heads();
    force_event(
        &mut doc,
        EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "dept-env".into(),
                name: "环保".into(),
            },
            due_at_ms: None,
            note: String::new(),
        },
        stamp(&inspector, T0 + 1),
    );
    inspector
        .store
        .apply_remote(
            &[gridlink_core::store::RemoteChanges {
                doc_id: id.clone(),
                bytes: doc.save_after(&before),
            }],
            T0,
        )
        .unwrap();
    let comment = inspector.comment(&id, "已拍照留证", T0 + 2);
    let report = inspector.sync();
    assert_eq!(report.docs_rejected, 1);
    let rejected = inspector.store.rejected_edits().unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(matches!(
        rejected[0].event.kind,
        EventKind::Dispatched { .. }
    ));
    assert_eq!(rejected[0].code, "role_not_allowed");
    let on_server = server.doc(&id).unwrap().case().unwrap();
    assert!(
        on_server
            .history
            .iter()
            .all(|e| !matches!(e.kind, EventKind::Dispatched { .. }))
    );
    let texts: Vec<_> = on_server
        .history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Comment { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["已拍照留证".to_owned()]);
    assert!(
        inspector
            .store
            .case(&id)
            .unwrap()
            .history
            .iter()
            .all(|e| e.id != comment),
        "re-applied as a new event"
    );
    assert_eq!(inspector.store.case(&id).unwrap(), on_server);
    assert!(inspector.store.unacknowledged().unwrap().is_empty());
}

#[test]
fn a_revoked_device_and_an_unknown_token_are_turned_away() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    inspector.report(GRID, "撤销前的案件", T0);
    inspector.sync();
    assert!(
        server
            .state
            .store()
            .revoke_device(&inspector.device_id, "test")
            .unwrap()
    );
    inspector.report(GRID, "撤销后的案件", T0 + 1);
    match inspector.sync_via(&inspector.transport) {
        Err(Error::Server {
            status: 401, code, ..
        }) => assert_eq!(code, "unauthorized"),
        other => panic!("expected 401, got {other:?}"),
    }
    // Nothing was lost on the phone: the report waits for a new enrollment.
    assert_eq!(inspector.store.unacknowledged().unwrap().len(), 1);
    let stranger = gridlink_core::sync::HttpTransport::new(&server.url)
        .unwrap()
        .with_token("00");
    match stranger.post("/v1/sync", &[]) {
        Err(TransportError::Status { status: 401, body }) => assert_eq!(body.code, "unauthorized"),
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Records every pulled document id of every response passing through.
struct Recording<'a> {
    inner: &'a dyn Transport,
    pulled: Mutex<Vec<String>>,
}

impl Transport for Recording<'_> {
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.inner.get(path)
    }

    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.put(path, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        let out = self.inner.post(path, body)?;
        if let Ok(response) = wire::decode::<SyncResponse>(&out, 1 << 26) {
            let mut pulled = self.pulled.lock().unwrap();
            pulled.extend(response.pulled.into_iter().map(|p| p.doc_id));
            pulled.extend(
                response
                    .rejections
                    .into_iter()
                    .filter(|r| r.server_doc.is_some())
                    .map(|r| r.doc_id),
            );
        }
        Ok(out)
    }
}

#[test]
fn no_response_carries_another_grids_data() {
    let server = TestServer::start_with(crate::common::test_config(), 800);
    let store = server.state.store();
    store
        .add_user(
            &gridlink_server::store::User {
                id: "cit-1".into(),
                name: "市民甲".into(),
                role: Role::Citizen,
            },
            "test",
        )
        .unwrap();
    store
        .grant("cit-1", &"reporter:cit-1".parse().unwrap(), "test")
        .unwrap();
    let citizen = server.phone("cit-1");
    let inspector = server.phone("insp-0001");
    let department = server.phone("dept-env-01");
    let other = server.phone("insp-0100");
    // The other inspector's grid gets a fresh case too.
    let other_grid = other.enrollment.scopes[0]
        .trim_start_matches("grid:")
        .to_owned();
    let other_case = other.report(&other_grid, "别的网格", T0);
    other.sync();

    let dispatched_to_env = |id: &str| {
        server.doc(id).unwrap().case().unwrap().history.iter().any(|e| {
            matches!(&e.kind, EventKind::Dispatched { target: DispatchTarget::Department { code, .. }, .. } if code == "dept-env")
        })
    };
    type Allowed<'a> = Box<dyn Fn(&str, &gridlink_server::store::CaseRow) -> bool + 'a>;
    let checks: [(&Phone, Allowed<'_>); 2] = [
        (&inspector, Box::new(|_, row| row.place.grid_id == GRID)),
        (&department, Box::new(|id, _| dispatched_to_env(id))),
    ];
    for (phone, allowed) in checks {
        let recording = Recording {
            inner: &phone.transport,
            pulled: Mutex::new(Vec::new()),
        };
        phone.sync_via(&recording).unwrap();
        let pulled = recording.pulled.into_inner().unwrap();
        for id in &pulled {
            let row = store.case_row(id).unwrap().unwrap();
            assert!(
                allowed(id, &row),
                "{} received {id} of grid {}",
                phone.user(),
                row.place.grid_id
            );
            assert_ne!(id, &other_case);
            if phone.enrollment.role != Role::DepartmentHandler {
                assert_ne!(row.place.grid_id, other_grid);
            }
        }
        assert!(!pulled.is_empty(), "{} received nothing", phone.user());
    }
    // The department holds the cases dispatched to it, whole.
    for id in department.store.document_ids().unwrap() {
        assert!(dispatched_to_env(&id));
        assert_eq!(
            department.store.case(&id).unwrap(),
            server.doc(&id).unwrap().case().unwrap()
        );
    }
    // A citizen neither pulls nor pushes documents: the sync endpoint refuses the account
    // (citizens report through /v1/citizen, see citizen.rs), and nothing is merged.
    let mut doc = new_case(&citizen, GRID, actor_of(&citizen));
    let request = SyncRequest {
        protocol: wire::PROTOCOL_VERSION,
        request_id: uuid::Uuid::new_v4().to_string(),
        push: vec![whole(&mut doc)],
        cursor: Default::default(),
        max_pull_bytes: 1 << 20,
        history: None,
    };
    assert!(matches!(
        citizen.transport.post("/v1/sync", &wire::encode(&request)),
        Err(TransportError::Status { status: 403, .. })
    ));
    assert!(server.doc(doc.id()).is_none());
}

#[test]
fn a_withdrawn_grant_removes_its_documents_from_the_phone() {
    let server = TestServer::start();
    let chief = server.phone("chief-0001");
    let inspector = server.phone("insp-0001");
    let kept = inspector.report(GRID, "仍在范围内", T0);
    inspector.sync();
    let second = server.phone("insp-0002");
    let grid_2 = second.enrollment.scopes[0]
        .trim_start_matches("grid:")
        .to_owned();
    assert_ne!(grid_2, GRID);
    let leaving = second.report(&grid_2, "将移出范围", T0 + 1);
    let leaving_edited = second.report(&grid_2, "移出前有未同步的修改", T0 + 2);
    second.sync();
    chief.sync();
    assert_eq!(chief.store.document_ids().unwrap().len(), 3);

    // The chief now covers only the first grid; one leaving case has an unsent comment.
    chief.comment(&leaving_edited, "网格长离线备注", T0 + 3);
    let store = server.state.store();
    store
        .revoke_grant(
            "chief-0001",
            &"village:320509001001".parse().unwrap(),
            "test",
        )
        .unwrap();
    store
        .grant(
            "chief-0001",
            &format!("grid:{GRID}").parse().unwrap(),
            "test",
        )
        .unwrap();
    let report = chief.sync();
    assert_eq!(chief.store.document_ids().unwrap(), vec![kept]);
    assert!(report.docs_removed >= 1);
    // The unsent comment was pushed first, refused (out of scope), and is listed.
    let rejected = chief.store.rejected_edits().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].doc_id, leaving_edited);
    assert_eq!(rejected[0].code, "out_of_scope");
    assert!(server.doc(&leaving).is_some());
}

#[test]
fn naming_keys_or_documents_reveals_nothing() {
    let server = TestServer::start_with(crate::common::test_config(), 200);
    let inspector = server.phone("insp-0001");
    inspector.sync();
    let other_grid_case = server
        .state
        .store()
        .docs_leaving(
            &["district".parse().unwrap()],
            &[format!("grid:{GRID}").parse().unwrap()],
        )
        .unwrap()
        .remove(0);
    // A cursor naming keys never granted lists no documents as removed.
    let mut cursor = inspector.store.cursor().unwrap();
    cursor.0.insert("district".into(), 0);
    cursor.0.insert("town:320509002".into(), 0);
    let request = SyncRequest {
        protocol: wire::PROTOCOL_VERSION,
        request_id: "probe".into(),
        push: vec![PushDoc {
            doc_id: other_grid_case.clone(),
            changes: server.doc(&other_grid_case).unwrap().save(),
        }],
        cursor,
        max_pull_bytes: 1 << 20,
        history: None,
    };
    let response: SyncResponse = wire::decode(
        &inspector
            .transport
            .post("/v1/sync", &wire::encode(&request))
            .unwrap(),
        1 << 26,
    )
    .unwrap();
    assert!(response.removed.is_empty(), "{:?}", response.removed.len());
    // Pushing another grid's document back (nothing new) is refused, not acknowledged with its heads.
    assert!(response.acks.is_empty());
    assert_eq!(response.rejections[0].code, RejectCode::OutOfScope);
    assert!(response.rejections[0].server_doc.is_none());
    assert!(response.pulled.is_empty());
}

#[test]
fn a_cursor_with_more_keys_than_the_device_can_read_is_refused_and_nothing_is_merged() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    inspector.sync();
    let id = inspector.report(GRID, "游标过大时的上报", T0);
    let push = inspector.store.prepare_push(1 << 20).unwrap().docs;
    let send = |cursor: wire::Cursor| {
        let request = SyncRequest {
            protocol: wire::PROTOCOL_VERSION,
            request_id: "cursor".into(),
            push: push.clone(),
            cursor,
            max_pull_bytes: 1 << 20,
            history: None,
        };
        inspector
            .transport
            .post("/v1/sync", &wire::encode(&request))
    };
    // Many more keys than an inspector's grid: refused, and the push in it is not merged.
    let mut cursor = inspector.store.cursor().unwrap();
    for i in 0..200 {
        cursor.0.insert(format!("grid:fake-{i}"), 0);
    }
    assert!(matches!(
        send(cursor),
        Err(TransportError::Status { status: 400, ref body }) if body.message.contains("cursor")
    ));
    assert!(server.doc(&id).is_none(), "nothing was merged");
    // Over the wire's own cap: refused while decoding.
    let huge = wire::Cursor(
        (0..=wire::MAX_CURSOR_KEYS)
            .map(|i| (format!("k{i}"), 0))
            .collect(),
    );
    assert!(matches!(
        send(huge),
        Err(TransportError::Status { status: 400, .. })
    ));
    assert!(server.doc(&id).is_none());
    // The phone's own cursor goes through.
    inspector.sync();
    assert!(server.doc(&id).is_some());
}

#[test]
fn a_device_id_enrolled_for_another_user_cannot_be_taken_over() {
    let server = TestServer::start();
    let victim = server.phone("insp-0001");
    let code = server.code_for("insp-0002");
    let taken = gridlink_core::sync::enroll(
        &gridlink_core::sync::HttpTransport::new(&server.url).unwrap(),
        &code,
        &victim.device_id,
        "冒用",
    );
    assert!(
        matches!(taken, Err(Error::Server { status: 403, .. })),
        "{taken:?}"
    );
    // The victim still syncs; the code was not used up.
    victim.report(GRID, "仍可同步", T0);
    assert_eq!(victim.sync().docs_accepted, 1);
    let fresh = uuid::Uuid::new_v4().to_string();
    assert!(
        gridlink_core::sync::enroll(
            &gridlink_core::sync::HttpTransport::new(&server.url).unwrap(),
            &code,
            &fresh,
            "新手机"
        )
        .is_ok()
    );
}

#[test]
fn a_grant_given_back_brings_the_documents_back_whole_including_the_phones_own() {
    let server = TestServer::start();
    let chief = server.phone("chief-0001");
    let own = chief.report(GRID, "网格长自己上报的案件", T0);
    chief.comment(&own, "网格长自己的备注", T0 + 1);
    chief.sync();
    let village: gridlink_core::sync::scope::ScopeKey = "village:320509001001".parse().unwrap();
    let store = server.state.store();
    store.revoke_grant("chief-0001", &village, "test").unwrap();
    chief.sync();
    assert!(chief.store.document_ids().unwrap().is_empty());
    store.grant("chief-0001", &village, "test").unwrap();
    chief.sync();
    assert_eq!(chief.store.document_ids().unwrap(), vec![own.clone()]);
    assert_eq!(
        chief.store.case(&own).unwrap(),
        server.doc(&own).unwrap().case().unwrap()
    );
    assert_eq!(chief.store.case(&own).unwrap().history.len(), 2);
}

#[test]
fn no_body_is_read_before_the_device_is_authenticated_and_anonymous_ones_are_small() {
    use std::io::{Read, Write};
    let server = TestServer::start();
    // Headers announcing 20 MiB, a few bytes of it, and a bad token: the answer comes at once,
    // without the server waiting for (or buffering) the body. So for every endpoint that
    // takes a body from an enrolled device.
    let case = uuid::Uuid::from_u128(7).to_string();
    for path in [
        "/v1/sync".to_owned(),
        format!("/v1/cases/{case}/events"),
        "/v1/citizen/reports".to_owned(),
        "/v1/templates".to_owned(),
    ] {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n0123456789",
            wire::CONTENT_TYPE,
            20 << 20
        )
        .unwrap();
        let mut answer = [0u8; 64];
        let n = stream
            .read(&mut answer)
            .unwrap_or_else(|e| panic!("{path}: not answered before the body was sent: {e}"));
        let head = String::from_utf8_lossy(&answer[..n]);
        assert!(head.starts_with("HTTP/1.1 401"), "{path}: {head}");
    }
    // What anyone may send before enrolling is small by nature, and refused when it is not:
    // the answer comes from the announced length, before the megabyte is sent (a client that
    // sent it all at once could see the connection closed under it, which is the point).
    for path in [
        "/v1/enroll",
        "/v1/citizen/register",
        "/open311/v2/requests.json",
    ] {
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\naaaaaaaa",
            1 << 20
        )
        .unwrap();
        let mut answer = [0u8; 64];
        let n = stream
            .read(&mut answer)
            .unwrap_or_else(|e| panic!("{path}: not answered before the body was sent: {e}"));
        let head = String::from_utf8_lossy(&answer[..n]);
        assert!(head.starts_with("HTTP/1.1 413"), "{path}: {head}");
    }
}

#[test]
fn a_client_sending_its_headers_a_byte_at_a_time_is_cut_at_the_header_deadline() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let mut config = test_config();
    config.connections.header_deadline = Duration::from_secs(1);
    let server = TestServer::start_with(config, 0);
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    stream.write_all(b"X-Slow: ").unwrap();
    // One header byte every 100 ms, never the blank line: the idle time-out alone (a read
    // waiting for a byte) would never fire.
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let mut answer = String::new();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if stream.write_all(b"x").is_err() {
            break true;
        }
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                answer.push_str(&String::from_utf8_lossy(&buf[..n]));
                break true;
            }
            // Nothing yet: the read waited its 100 ms.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
    };
    assert!(closed, "still open after 10 s of trickled headers");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // Everyone else is served as before.
    let ok = reqwest::blocking::get(format!("http://{}/healthz", server.addr)).unwrap();
    assert!(ok.status().is_success());
}
