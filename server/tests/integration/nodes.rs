//! Several server nodes over one PostgreSQL database (ADR 0014): phones sync through any
//! node, at random, through faulty links, while nodes restart; nothing acknowledged is lost
//! and every phone and node ends up agreeing.

use crate::common::*;
use crate::link::Faulty;
use crate::sync::{assert_converged, scenario_on};
use gridlink_core::sync::HttpTransport;
use std::time::Duration;

#[test]
fn phones_syncing_through_two_nodes_at_random_with_faults_and_restarts_lose_nothing() {
    let Some(postgres) = postgres_for_test() else {
        return;
    };
    let first = TestServer::start_on_postgres(&postgres);
    let mut second = first.another_node();
    let mut s = scenario_on(first);
    // Each phone has a faulty link to each node, seeded.
    let links: Vec<[Faulty; 2]> = s
        .phones()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let to = |url: &str, seed: u64| {
                Faulty::new(
                    HttpTransport::new(url)
                        .unwrap()
                        .with_token(&p.enrollment.token),
                    seed,
                    0,
                )
            };
            [
                to(&s.server.url, 2 * i as u64),
                to(&second.url, 2 * i as u64 + 1),
            ]
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(17);
    let options = gridlink_core::sync::SyncOptions {
        max_push_bytes: 4096,
        max_pull_bytes: 8192,
        ..options()
    };
    let mut through = [0usize; 2];
    let mut injected = 0;
    for round in 0..5 {
        s.edit_offline(round);
        let choices: Vec<usize> = (0..3).map(|_| rng.usize(0..2)).collect();
        for c in &choices {
            through[*c] += 1;
        }
        for (link, c) in links.iter().zip(&choices) {
            *link[*c].faults_left.lock().unwrap() = 6;
        }
        // The three phones sync at once, so two nodes merge the same documents concurrently.
        std::thread::scope(|scope| {
            for ((phone, link), c) in s.phones().into_iter().zip(&links).zip(&choices) {
                let link = &link[*c];
                let options = &options;
                scope.spawn(move || {
                    // Faults may exhaust a sync's retries; what it did is kept.
                    let _ = phone.store.sync(link, options, &());
                });
            }
            if round % 2 == 1 {
                // A node goes down in the middle of the syncs and comes back.
                std::thread::sleep(Duration::from_millis(20));
                second.restart(Duration::from_millis(100));
            }
        });
        injected += links.iter().flatten().map(Faulty::injected).sum::<usize>();
        for link in links.iter().flatten() {
            link.log.lock().unwrap().clear();
        }
    }
    assert!(injected >= 5, "only {injected} faults were injected");
    assert!(
        through.iter().all(|n| *n > 0),
        "both nodes served: {through:?}"
    );
    for link in links.iter().flatten() {
        link.flush_held();
    }
    // Healed links: each phone syncs through the second node, then through the first.
    for _ in 0..2 {
        for (phone, link) in s.phones().into_iter().zip(&links) {
            *link[1].faults_left.lock().unwrap() = 0;
            phone.sync_via(&link[1]).unwrap();
        }
        for phone in s.phones() {
            phone.sync();
        }
    }
    assert_converged(&s.server, &s.phones(), &s.events);
    // The second node reads the same record as the first.
    for id in &s.cases {
        let mut mine = s.server.doc(id).unwrap().heads();
        let mut theirs = second.doc(id).unwrap().heads();
        mine.sort();
        theirs.sort();
        assert_eq!(mine, theirs, "{id} on the two nodes");
    }
}

/// `gridlink-server move-to-postgres`: a SQLite installation with history moves whole; the
/// same server (now on PostgreSQL) answers the same lists and figures, and a phone that synced
/// before the move carries on from its cursor with nothing lost or pulled again.
#[test]
fn a_sqlite_installation_moves_to_postgresql_whole_and_its_phones_carry_on() {
    let Some(postgres) = postgres_for_test() else {
        return;
    };
    use gridlink_server::store::{Area, CaseFilter};
    let mut server = TestServer::start_sqlite_with(test_config(), 60);
    let phone = server.phone("insp-0001");
    let case = phone.report(GRID, "迁移前的案件", T0);
    phone.sync();
    let district = Area {
        district: true,
        ..Area::default()
    };
    let all = CaseFilter {
        area: district.clone(),
        limit: 1_000,
        ..CaseFilter::default()
    };
    let figures = |server: &TestServer| {
        let store = server.state.store();
        (
            store.case_list(&all).unwrap(),
            store.case_stats(0, i64::MAX / 2, &district).unwrap(),
            store.score_totals(0, i64::MAX / 2).unwrap(),
            store.change_seq().unwrap(),
            server.state.history().to_owned(),
        )
    };
    let before = figures(&server);
    server.stop();

    let target = TempDir::new();
    let url = schema_for(&postgres, target.path());
    let moved =
        gridlink_server::store::postgres::move_from_sqlite(server.data.path(), &url).unwrap();
    assert!(moved.tables >= 20 && moved.rows > 1_000, "{moved:?}");
    // Moving again into the filled database is refused, and changes nothing.
    assert!(gridlink_server::store::postgres::move_from_sqlite(server.data.path(), &url).is_err());
    server.serve_over_postgres(url);
    assert_eq!(figures(&server), before);

    // The phone carries on: nothing to pull again, and its next edit goes in.
    let report = phone.sync();
    assert_eq!(report.docs_received, 0, "{report:?}");
    phone.comment(&case, "迁移后的补充", T0 + 10);
    phone.sync();
    assert_eq!(server.doc(&case).unwrap().case().unwrap().history.len(), 2);
}

/// Photos in a bucket both nodes share: a phone's link to one node dies in the middle of a
/// chunk and finished through the other, which resumes at the byte the first node kept; both
/// nodes serve the photo, and nothing of it is in either node's data directory.
#[test]
fn a_photo_upload_cut_on_one_node_resumes_on_another_over_object_storage() {
    use crate::photos::{camera_bytes, report_with_photo, upload_options};
    use gridlink_core::sync::Transport;
    use gridlink_core::sync::wire::{BlobStatus, decode};
    use std::io::Write;
    let (Some(postgres), Some(s3)) = (postgres_for_test(), s3_for_test()) else {
        return;
    };
    // A link that goes silent mid-chunk is given up after 300 ms (as a cut one at once).
    let config = gridlink_server::ServerConfig {
        chunk_idle_ms: 300,
        ..test_config()
    };
    let first = TestServer::start_on_postgres_and_s3(&postgres, &s3, config);
    let second = first.another_node();
    let phone = first.phone("insp-0001");
    let (_, hash) = report_with_photo(&phone.store, &camera_bytes(31));
    phone.sync();
    let bytes = phone.store.photo_bytes(&hash, false).unwrap().unwrap();
    let size = bytes.len();
    // The first node receives 70,000 bytes of a chunk, then the link goes silent.
    let mut cut = std::net::TcpStream::connect(first.addr).unwrap();
    write!(
        cut,
        "PUT /v1/blobs/{hash}?kind=photo&size={size}&offset=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Length: 131072\r\n\r\n",
        phone.enrollment.token
    )
    .unwrap();
    cut.write_all(&bytes[..70_000]).unwrap();
    cut.flush().unwrap();
    // Once the first node has stored what arrived, the second node sees it too.
    let transport = |node: &TestServer| {
        HttpTransport::new(&node.url)
            .unwrap()
            .with_token(&phone.enrollment.token)
    };
    let status = |t: &HttpTransport| -> BlobStatus {
        decode(
            &t.get(&format!("/v1/blobs/{hash}?kind=photo&size={size}"))
                .unwrap(),
            1 << 16,
        )
        .unwrap()
    };
    let to_first = transport(&first);
    let mut kept = 0;
    for _ in 0..200 {
        kept = status(&to_first).received;
        if kept == 70_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        kept, 70_000,
        "the first node keeps what arrived before the link died"
    );
    drop(cut);
    let to_second = transport(&second);
    assert_eq!(
        status(&to_second).received,
        70_000,
        "the second node resumes where the first stopped"
    );
    // The phone's queue finishes through the second node from there.
    let report = phone
        .store
        .upload_photos(&to_second, &upload_options(64 << 10), &())
        .unwrap();
    assert_eq!(report.uploaded, 1);
    let thumb = phone.store.photo_bytes(&hash, true).unwrap().unwrap();
    assert_eq!(
        report.bytes_sent,
        (size - 70_000 + thumb.len()) as u64,
        "nothing the first node kept was sent again"
    );
    // Both nodes serve it, from the bucket; neither data directory holds it, and no chunk
    // of the upload is left behind.
    for node in [&first, &second] {
        let served = transport(node).get(&format!("/v1/photos/{hash}")).unwrap();
        assert_eq!(served, bytes);
        assert_eq!(node.state.blobs().received(&hash).unwrap(), 0);
        assert!(node.state.blobs().is_object_storage());
        assert!(!node.data.path().join("blobs").exists());
    }
    let health: serde_json::Value = serde_json::from_str(
        &reqwest::blocking::get(format!("{}/healthz", second.url))
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(health["blobs"], "s3", "{health}");
    // The node's metrics show its connection pool and how long pushes waited to merge.
    let metrics = reqwest::blocking::get(format!("{}/metrics", first.url))
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "gridlink_db_pool_idle ",
        "gridlink_db_connections_opened ",
        "gridlink_db_connect_failures 0",
        "gridlink_merge_queue 0",
    ] {
        assert!(metrics.contains(line), "{line:?} not in\n{metrics}");
    }
    let merged: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gridlink_merge_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(merged >= 1.0, "the report's push was timed: {merged}");
}

/// A node's cached copy of a case falls behind when another node writes it. A phone that
/// pulled the newer version through the other node then pushes a change built on it: the
/// lagging node must not hold that change back unseen (Automerge queues a change whose
/// dependencies it lacks, and the document looks unchanged) and acknowledge it; it reads
/// the case again and merges. Found by `cargo xtask chaos kill --nodes 3`.
#[test]
fn a_node_whose_copy_is_behind_merges_a_change_built_on_the_newer_one() {
    let Some(postgres) = postgres_for_test() else {
        return;
    };
    let first = TestServer::start_on_postgres(&postgres);
    let second = first.another_node();
    let (a, b) = (first.phone("insp-0001"), first.phone("insp-0001"));
    let via_second = |p: &Phone| {
        HttpTransport::new(&second.url)
            .unwrap()
            .with_token(&p.enrollment.token)
    };
    let case = a.report("320509001001-01", "楼道堆物", 1_795_910_400_000);
    a.sync(); // through the first node, which keeps the case in its cache
    b.sync_via(&via_second(&b)).unwrap();
    b.comment(&case, "第二个节点写入", 1_795_910_401_000);
    b.sync_via(&via_second(&b)).unwrap();
    a.sync_via(&via_second(&a)).unwrap();
    let event = a.comment(&case, "回到第一个节点", 1_795_910_402_000);
    let report = a.sync(); // through the first node, whose copy lacks b's comment
    assert!(
        a.store.unacknowledged().unwrap().is_empty(),
        "acknowledged: {report:?}"
    );
    let stored = first.doc(&case).unwrap().case().unwrap();
    assert!(
        stored.history.iter().any(|e| e.id == event),
        "the store holds what the first node acknowledged"
    );
    assert!(a.store.rejected_edits().unwrap().is_empty());
}
