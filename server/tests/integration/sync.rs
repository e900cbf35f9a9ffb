//! End-to-end sync: phones offline, syncing in various orders and through faults, against
//! the real server; convergence means equal heads and equal folded cases everywhere, with
//! every event present exactly once.

use crate::common::*;
use crate::link::Faulty;
use gridlink_core::case::{EventKind, Level};
use gridlink_core::store::OutboxState;
use gridlink_core::sync::wire::{self, SyncResponse};
use gridlink_core::sync::{Transport, TransportError};
use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

/// Checks that every phone and the server hold the same documents with equal heads and equal
/// folded cases, and that every event in `events` is on the server exactly once.
pub fn assert_converged(server: &TestServer, phones: &[&Phone], events: &HashSet<String>) {
    let ids: BTreeSet<String> = phones[0]
        .store
        .document_ids()
        .unwrap()
        .into_iter()
        .collect();
    for phone in phones {
        let theirs: BTreeSet<String> = phone.store.document_ids().unwrap().into_iter().collect();
        assert_eq!(theirs, ids, "{} holds other documents", phone.user());
        assert!(
            phone.store.unacknowledged().unwrap().is_empty(),
            "{} has unsent changes",
            phone.user()
        );
    }
    let mut seen = HashSet::new();
    for id in &ids {
        let mut doc = server
            .doc(id)
            .unwrap_or_else(|| panic!("the server lacks {id}"));
        let mut server_heads = doc.heads();
        server_heads.sort();
        let case = doc.case().unwrap();
        for phone in phones {
            assert_eq!(
                phone.store.heads(id).unwrap(),
                server_heads,
                "{} heads of {id}",
                phone.user()
            );
            assert_eq!(
                phone.store.case(id).unwrap(),
                case,
                "{} case {id}",
                phone.user()
            );
        }
        let mut in_case = HashSet::new();
        for e in &case.history {
            assert!(in_case.insert(e.id.clone()), "event {} twice in {id}", e.id);
            seen.insert(e.id.clone());
        }
        assert_eq!(
            server.state.store().case_row(id).unwrap().unwrap().events as usize,
            case.history.len()
        );
    }
    let lost: Vec<&String> = events.iter().filter(|e| !seen.contains(*e)).collect();
    assert!(lost.is_empty(), "events lost: {lost:?}");
}

pub struct Scenario {
    pub server: TestServer,
    pub a: Phone,
    pub b: Phone,
    pub chief: Phone,
    pub events: HashSet<String>,
    pub cases: Vec<String>,
}

/// Two inspectors sharing a grid and their grid chief; three cases known to all, then a round
/// of overlapping offline edits.
fn scenario() -> Scenario {
    scenario_on(TestServer::start())
}

/// [`scenario`] on a given server.
pub fn scenario_on(server: TestServer) -> Scenario {
    server
        .state
        .store()
        .grant(
            "insp-0002",
            &format!("grid:{GRID}").parse().unwrap(),
            "test",
        )
        .unwrap();
    let a = server.phone("insp-0001");
    let b = server.phone("insp-0002");
    let chief = server.phone("chief-0001");
    let mut events = HashSet::new();
    let mut cases = Vec::new();
    for (i, title) in ["河道漂浮垃圾", "楼道堆物", "占道经营"].iter().enumerate() {
        let id = a.report(GRID, title, T0 + i as i64);
        events.extend(a.store.case(&id).unwrap().history.into_iter().map(|e| e.id));
        cases.push(id);
    }
    a.sync();
    b.sync();
    chief.sync();
    assert_eq!(b.store.document_ids().unwrap().len(), 3);
    assert_eq!(chief.store.document_ids().unwrap().len(), 3);
    Scenario {
        server,
        a,
        b,
        chief,
        events,
        cases,
    }
}

impl Scenario {
    /// Overlapping offline edits by all three.
    pub fn edit_offline(&mut self, round: i64) {
        let t = T0 + 1_000_000 * (round + 1);
        let (c0, c1, c2) = (&self.cases[0], &self.cases[1], &self.cases[2]);
        let mut added = Vec::new();
        let mut add = |e: Option<String>| added.extend(e);
        add(Some(self.a.comment(
            c0,
            &format!("A 第{round}次巡查：仍有垃圾"),
            t,
        )));
        add(Some(self.b.comment(
            c0,
            &format!("B 第{round}次巡查：已通知保洁"),
            t + 1,
        )));
        add(Some(self.chief.comment(c0, "网格长已知悉", t + 2)));
        // Concurrent, conflicting actions on one case: accept vs. solve in grid.
        add(self.chief.act(
            c1,
            EventKind::Accepted {
                assignee: Some("insp-0002".into()),
                due_at_ms: None,
            },
            t + 3,
        ));
        add(self.b.act(
            c1,
            EventKind::ResolvedInGrid {
                note: "已清理".into(),
            },
            t + 4,
        ));
        add(self.chief.act(
            c2,
            EventKind::Escalated {
                to: Level::Village,
                reason: "需村里协调".into(),
            },
            t + 5,
        ));
        add(self.a.act(
            c2,
            EventKind::Comment {
                text: "现场照片已补".into(),
            },
            t + 6,
        ));
        add(Some(self.b.comment(c2, "同意上报", t + 8)));
        // A case only A edits: nothing but A's own pushes carry it.
        if let Some(own) = self.cases.get(3) {
            add(Some(self.a.comment(
                own,
                &format!("补充说明 {round}"),
                t + 9,
            )));
        }
        let id = self.a.report(GRID, &format!("新发现 {round}"), t + 7);
        self.events.extend(added);
        self.events.extend(
            self.a
                .store
                .case(&id)
                .unwrap()
                .history
                .into_iter()
                .map(|e| e.id),
        );
        self.cases.push(id);
    }

    pub fn phones(&self) -> [&Phone; 3] {
        [&self.a, &self.b, &self.chief]
    }
}

#[test]
fn three_phones_converge_whatever_the_order_of_syncs() {
    for order in [[0usize, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let mut s = scenario();
        for round in 0..2 {
            s.edit_offline(round);
            for &i in &order {
                s.phones()[i].sync();
            }
        }
        // Everyone syncs once more to receive what the later ones pushed.
        for &i in &order {
            s.phones()[i].sync();
        }
        assert_converged(&s.server, &s.phones(), &s.events);
        assert!(
            s.phones()
                .iter()
                .all(|p| p.store.rejected_edits().unwrap().is_empty())
        );
        let outbox = s.a.store.outbox().unwrap();
        assert!(
            outbox.iter().all(|e| e.state == OutboxState::Accepted),
            "{outbox:?}"
        );
    }
}

#[test]
fn faults_and_a_server_restart_lose_and_duplicate_nothing() {
    let mut s = scenario();
    // More documents than one small push holds, so a sync spans several round trips.
    for i in 0..30 {
        let id = s.a.report(GRID, &format!("批量上报 {i}"), T0 + 50_000 + i);
        s.events.extend(
            s.a.store
                .case(&id)
                .unwrap()
                .history
                .into_iter()
                .map(|e| e.id),
        );
    }
    let mut injected = 0;
    // One faulty link per phone for the whole test, so a response held back in one sync can
    // come back in a later one, after the user has edited the same cases again.
    let links: Vec<Faulty> = s
        .phones()
        .iter()
        .enumerate()
        .map(|(i, p)| Faulty::new(p.transport.clone(), i as u64, 0))
        .collect();
    for round in 0..3 {
        s.edit_offline(round);
        let options = gridlink_core::sync::SyncOptions {
            max_push_bytes: 4096,
            max_pull_bytes: 8192,
            ..options()
        };
        for (phone, faulty) in s.phones().into_iter().zip(&links) {
            *faulty.faults_left.lock().unwrap() = 12;
            faulty.log.lock().unwrap().clear();
            // Faults may exhaust a sync's retries; what it did is kept and the next goes on.
            let _ = phone.store.sync(faulty, &options, &());
            injected += faulty.injected();
        }
        // A restart while a sync is under way: the phone retries through the outage.
        std::thread::scope(|scope| {
            let a = &s.a;
            let syncing = scope.spawn(move || a.store.sync(&a.transport, &options, &()));
            std::thread::sleep(Duration::from_millis(15));
            s.server.restart(Duration::from_millis(100));
            syncing.join().unwrap().unwrap();
        });
    }
    assert!(injected >= 10, "only {injected} faults were injected");
    for phone in s.phones() {
        phone.sync();
    }
    for phone in s.phones() {
        phone.sync();
    }
    assert_converged(&s.server, &s.phones(), &s.events);
}

#[test]
fn a_retried_request_is_harmless() {
    let s = scenario();
    let id = s.a.report(GRID, "重复提交", T0 + 5);
    let batch = s.a.store.prepare_push(1 << 20).unwrap();
    let request = wire::SyncRequest {
        protocol: wire::PROTOCOL_VERSION,
        request_id: "same".into(),
        push: batch.docs.clone(),
        cursor: s.a.store.cursor().unwrap(),
        max_pull_bytes: 1 << 20,
        history: None,
    };
    let body = wire::encode(&request);
    let first: SyncResponse =
        wire::decode(&s.a.transport.post("/v1/sync", &body).unwrap(), 1 << 26).unwrap();
    let second: SyncResponse =
        wire::decode(&s.a.transport.post("/v1/sync", &body).unwrap(), 1 << 26).unwrap();
    assert_eq!(first.acks, second.acks);
    assert!(first.rejections.is_empty() && second.rejections.is_empty());
    let row = s.server.state.store().case_row(&id).unwrap().unwrap();
    assert_eq!(row.events, 1);
    // The change log holds the report once.
    let pushes = s
        .server
        .state
        .store()
        .audit_log(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "push" && e.subject == id)
        .count();
    assert_eq!(pushes, 1);
    s.a.store.apply_response(&second, &batch).unwrap();
    assert!(s.a.store.unacknowledged().unwrap().is_empty());
}

#[test]
fn a_new_device_receives_its_whole_scope_and_nothing_else() {
    let server = TestServer::start_with(crate::common::test_config(), 600);
    let inspector = server.phone("insp-0001");
    let report = inspector.sync();
    let ids = inspector.store.document_ids().unwrap();
    assert!(!ids.is_empty());
    assert!(report.round_trips >= 1);
    for id in &ids {
        assert_eq!(
            server
                .state
                .store()
                .case_row(id)
                .unwrap()
                .unwrap()
                .place
                .grid_id,
            GRID
        );
    }
    // A village chief receives every grid of the village, paged.
    let chief = server.phone("chief-0001");
    let options = gridlink_core::sync::SyncOptions {
        max_pull_bytes: 2048,
        ..options()
    };
    let report = chief.store.sync(&chief.transport, &options, &()).unwrap();
    assert!(report.round_trips > 1, "{report:?}");
    let held = chief.store.document_ids().unwrap();
    assert!(held.len() > ids.len());
    for id in &held {
        let row = server.state.store().case_row(id).unwrap().unwrap();
        assert_eq!(row.place.village_id, "320509001001");
        server.doc(id).unwrap();
        assert_eq!(
            chief.store.case(id).unwrap(),
            server.doc(id).unwrap().case().unwrap()
        );
    }
}

#[test]
fn a_late_answer_to_an_earlier_request_is_set_aside() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let link = Faulty::new(phone.transport.clone(), 0, 0);
    let id = phone.report(GRID, "只有本机编辑的案件", T0);
    phone.sync_via(&link).unwrap();
    let comment = phone.comment(&id, "第二次编辑", T0 + 1);
    // The next request is lost and the answer to the first one arrives in its place. Taken
    // at face value it would acknowledge the comment, which the server never received.
    link.script.lock().unwrap().push_back("late");
    phone.sync_via(&link).unwrap();
    assert_eq!(link.log.lock().unwrap()[1], "late");
    let on_server = server.doc(&id).unwrap().case().unwrap();
    assert!(
        on_server.history.iter().any(|e| e.id == comment),
        "the comment was lost"
    );
    assert_converged(&server, &[&phone], &HashSet::from([comment]));
}

#[test]
fn a_failed_commit_acknowledges_nothing_and_the_next_sync_delivers_everything() {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failing.clone();
    let server = TestServer::start_over(crate::common::test_config(), 0, move |dir| {
        std::sync::Arc::new(FailingStore {
            inner: gridlink_server::store::SqliteStore::open(dir).unwrap(),
            failing: flag,
            failing_loads: Default::default(),
        })
    });
    let a = server.phone("insp-0001");
    let id = a.report(GRID, "提交失败前", T0);
    a.sync();
    let mut events: HashSet<String> = a
        .store
        .case(&id)
        .unwrap()
        .history
        .into_iter()
        .map(|e| e.id)
        .collect();
    // While the disk is full, pushes fail whole (507, retried, then given up, and the phone
    // says what the server said); the server's cached copies that took the changes must not
    // survive.
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    events.insert(a.comment(&id, "磁盘满时的备注", T0 + 1));
    let second = a.report(GRID, "磁盘满时的上报", T0 + 2);
    events.extend(
        a.store
            .case(&second)
            .unwrap()
            .history
            .into_iter()
            .map(|e| e.id),
    );
    let options = gridlink_core::sync::SyncOptions {
        backoff: gridlink_core::sync::Backoff {
            attempts: 3,
            ..options().backoff
        },
        ..options()
    };
    let full = a.store.sync(&a.transport, &options, &());
    assert!(
        matches!(&full, Err(gridlink_core::Error::Server { status: 507, message, .. })
            if message.contains("storage is full")),
        "{full:?}"
    );
    assert_eq!(
        server.state.store().case_row(&id).unwrap().unwrap().events,
        1
    );
    assert!(server.doc(&second).is_none());
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    events.insert(a.comment(&id, "恢复后的备注", T0 + 3));
    a.sync();
    assert_converged(&server, &[&a], &events);
    assert_eq!(
        server.state.store().case_row(&id).unwrap().unwrap().events,
        3
    );
}

#[test]
fn a_server_that_cannot_read_its_copy_makes_the_phone_wait_not_delete() {
    let loads = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = loads.clone();
    let server = TestServer::start_over(crate::common::test_config(), 0, move |dir| {
        std::sync::Arc::new(FailingStore {
            inner: gridlink_server::store::SqliteStore::open(dir).unwrap(),
            failing: Default::default(),
            failing_loads: flag,
        })
    });
    let a = server.phone("insp-0001");
    let id = a.report(GRID, "服务器读不出副本", T0);
    a.sync();
    let comment = a.comment(&id, "读取失败时的备注", T0 + 1);
    server.state.with_merger(|m| m.clear_cache()).unwrap();
    loads.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = a.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    // The phone keeps its case and the unsent comment, and says it is waiting.
    assert!(
        a.store
            .case(&id)
            .unwrap()
            .history
            .iter()
            .any(|e| e.id == comment)
    );
    assert_eq!(a.store.unacknowledged().unwrap(), vec![id.clone()]);
    assert!(a.store.rejected_edits().unwrap().is_empty());
    loads.store(false, std::sync::atomic::Ordering::SeqCst);
    a.sync();
    let events: HashSet<String> = a
        .store
        .case(&id)
        .unwrap()
        .history
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_converged(&server, &[&a], &events);
}

/// A document's scopes are one set in memory, in the store and in the log: a department whose
/// dispatch was overruled by a concurrent rejection still receives the rest of the case, holds
/// it as closed like everyone else, has nothing left unsent, and keeps it through a restart.
#[test]
fn a_dispatch_overruled_by_a_concurrent_rejection_leaves_the_department_in_step() {
    use gridlink_core::case::{DispatchTarget, Status};
    use gridlink_core::sync::scope::ScopeKey;
    let mut server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let chief = server.phone("chief-0001");
    let operator = server.phone("op-01");
    let department = server.phone("dept-env-01");
    let id = inspector.report(GRID, "河道漂浮物", T0);
    let mut made: HashSet<String> = inspector
        .store
        .case(&id)
        .unwrap()
        .history
        .into_iter()
        .map(|e| e.id)
        .collect();
    inspector.sync();
    chief.sync();
    operator.sync();
    // Offline at once: the operator rejects the case, the chief accepts and dispatches it.
    made.insert(
        operator
            .act(
                &id,
                EventKind::RejectedInvalid {
                    reason: "不属于受理范围".into(),
                },
                T0 + 10,
            )
            .unwrap(),
    );
    made.insert(
        chief
            .act(
                &id,
                EventKind::Accepted {
                    assignee: None,
                    due_at_ms: None,
                },
                T0 + 20,
            )
            .unwrap(),
    );
    made.insert(
        chief
            .act(
                &id,
                EventKind::Dispatched {
                    target: DispatchTarget::Department {
                        code: "dept-env".into(),
                        name: "区生态环境局".into(),
                    },
                    due_at_ms: None,
                    note: "请处置".into(),
                },
                T0 + 30,
            )
            .unwrap(),
    );
    chief.sync();
    department.sync();
    assert_eq!(
        department.store.case(&id).unwrap().state.status,
        Status::Dispatched
    );
    // The department starts work offline while the operator's rejection reaches the server.
    let handling = department
        .act(
            &id,
            EventKind::Handling {
                note: "已派人前往".into(),
            },
            T0 + 40,
        )
        .unwrap();
    operator.sync();
    let report = department.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    assert_eq!(report.docs_removed, 0, "{report:?}");
    let held = department.store.case(&id).unwrap();
    assert_eq!(held.state.status, Status::Closed);
    assert!(held.history.iter().any(|e| e.id == handling));
    made.insert(handling.clone());
    // Kept and shown as not applied, like every event a concurrent action overruled.
    assert!(held.state.flagged.iter().any(|f| f.event_id == handling));
    assert!(department.store.unacknowledged().unwrap().is_empty());
    let stored = server.state.store().load_doc(&id).unwrap().unwrap();
    assert!(
        stored
            .scopes
            .contains(&ScopeKey::Department("dept-env".into()))
    );

    // After a restart the server reads the same scopes back, and a further edit still reaches
    // every phone.
    server.restart(Duration::from_millis(10));
    let comment = department.comment(&id, "现场已无漂浮物", T0 + 50);
    let report = department.sync();
    assert_eq!(report.docs_rejected, 0, "{report:?}");
    let phones = [&inspector, &chief, &operator, &department];
    for phone in phones {
        phone.sync();
    }
    // Every event any phone made is on every phone and the server, which all agree.
    assert_converged(
        &server,
        &phones,
        &made.into_iter().chain([comment]).collect(),
    );
}

/// The link to a server whose storage fails for the documents it names: each push of them is
/// answered as the server answers when it cannot load or store a document (`server_error`).
struct StorageFails<'a> {
    inner: &'a gridlink_core::sync::HttpTransport,
    failing: Mutex<HashSet<String>>,
}

impl Transport for StorageFails<'_> {
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.inner.get(path)
    }

    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.put(path, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        let bytes = self.inner.post(path, body)?;
        let failing = self.failing.lock().unwrap();
        let mut response: SyncResponse = wire::decode(&bytes, wire::MAX_MESSAGE_BYTES).unwrap();
        let (failed, kept): (Vec<_>, Vec<_>) = response
            .acks
            .into_iter()
            .partition(|a| failing.contains(&a.doc_id));
        response.acks = kept;
        // Nor is it among what the server sends back.
        response.pulled.retain(|p| !failing.contains(&p.doc_id));
        response
            .rejections
            .extend(failed.into_iter().map(|a| wire::Rejection {
                doc_id: a.doc_id,
                code: wire::RejectCode::ServerError,
                message: "服务器存储错误，请稍后重试 / server storage error, retry later".into(),
                event_ids: Vec::new(),
                server_doc: None,
            }));
        Ok(wire::encode(&response))
    }
}

#[test]
fn a_push_the_server_could_not_store_is_shown_as_waiting_with_its_reason_and_goes_later() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let id = phone.report(GRID, "服务器磁盘已满时上报", T0);
    let link = StorageFails {
        inner: &phone.transport,
        failing: Mutex::new(HashSet::from([id.clone()])),
    };
    let report = phone.sync_via(&link).unwrap();
    assert_eq!(report.docs_deferred, 1, "{report:?}");
    assert_eq!(report.docs_rejected, 0);
    // Not refused, not silently pending: waiting, with the server's reason.
    let state = |phone: &Phone| {
        phone
            .store
            .outbox()
            .unwrap()
            .into_iter()
            .find(|e| e.doc_id == id)
            .map(|e| e.state)
    };
    assert!(
        matches!(state(&phone), Some(OutboxState::Deferred { ref code, ref message })
            if code == "server_error" && message.contains("retry later")),
        "{:?}",
        state(&phone)
    );
    assert!(
        phone.store.rejected_edits().unwrap().is_empty(),
        "nothing was refused"
    );
    assert!(phone.store.case(&id).is_ok(), "the case is kept");
    // Once the server can store again, the next sync sends it and the waiting ends.
    link.failing.lock().unwrap().clear();
    let report = phone.sync_via(&link).unwrap();
    assert_eq!(report.docs_deferred, 0);
    assert!(
        matches!(state(&phone), None | Some(OutboxState::Accepted)),
        "{:?}",
        state(&phone)
    );
    assert!(server.doc(&id).is_some());
}
