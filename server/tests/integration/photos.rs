//! Photos end to end: the case syncs first, then thumbnails and photos upload in chunks through
//! connections that are cut mid-chunk, resume after the app is killed, and are served back to
//! whoever may see the case.

use crate::common::{TempDir, TestServer, moment};
use gridlink_core::case::{Category, EventKind, Location, Source};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{NewCase, PhotoInput, PhotoState, Store, StoreConfig};
use gridlink_core::sync::{
    Backoff, HttpTransport, Transport, TransportError, UploadOptions, UploadReport,
};
use gridlink_fixtures::photos::CameraPhoto;
use gridlink_server::faults::CuttingProxy;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const T0: i64 = 1_795_910_400_000;
const GRID: &str = "320509001001-01";

pub fn upload_options(chunk: usize) -> UploadOptions {
    UploadOptions {
        backoff: Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(40),
            attempts: 12,
        },
        chunk_bytes: chunk,
        ..UploadOptions::default()
    }
}

/// A camera photo big enough to need many chunks (~200 KB processed).
pub fn camera_bytes(seed: u64) -> Vec<u8> {
    CameraPhoto {
        width: 2400,
        height: 1800,
        noise: 6,
        quality: 90,
        seed,
        ..CameraPhoto::small(6)
    }
    .jpeg()
}

/// Reports a case with one photo captured from `bytes`; returns (case id, photo hash).
pub fn report_with_photo(store: &Store, bytes: &[u8]) -> (String, String) {
    let id = uuid::Uuid::new_v4().to_string();
    let photo = store
        .capture_photo(&id, PhotoInput::Bytes(bytes), moment(T0), None)
        .unwrap();
    assert_eq!(photo.state, PhotoState::Processed);
    store
        .report(
            NewCase {
                id: id.clone(),
                category: Category::FireHazard,
                source: Source::GridInspector,
                title: "楼道堆放杂物".into(),
                description: String::new(),
                location: Some(Location {
                    point: LatLon::new(30.7899, 120.3757),
                    accuracy_m: 8.0,
                }),
                address_id: None,
                grid_id: GRID.into(),
                photos: vec![photo.hash.clone()],
                priority: Default::default(),
            },
            moment(T0),
        )
        .unwrap();
    (id, photo.hash)
}

fn stored_blob(server: &TestServer, hash: &str) -> Vec<u8> {
    server
        .state
        .blobs()
        .read(hash)
        .unwrap()
        .expect("blob stored")
}

#[test]
fn photos_wait_for_their_case_then_upload_thumbnail_first_and_are_served_to_those_who_may_see_them()
{
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let (_, hash) = report_with_photo(&phone.store, &camera_bytes(1));
    let options = upload_options(64 << 10);

    // The case has not been synced: the server knows no case referencing the photo.
    let early = phone
        .store
        .upload_photos(&phone.transport, &options, &())
        .unwrap();
    assert_eq!(early.waiting, 1, "{early:?}");
    let status = phone.store.photo_status(&hash).unwrap();
    assert_eq!(status.state, PhotoState::Processed);
    assert!(status.last_error.is_some());
    assert_eq!(status.attempts, 0, "waiting is not a failure");

    phone.sync();
    phone.store.retry_photo_now(&hash).unwrap();
    let report = phone
        .store
        .upload_photos(&phone.transport, &options, &())
        .unwrap();
    assert_eq!((report.uploaded, report.thumbnails), (1, 1), "{report:?}");
    let status = phone.store.photo_status(&hash).unwrap();
    assert_eq!(status.state, PhotoState::Uploaded);
    assert_eq!(status.confirmed_bytes, status.size);
    assert!(status.thumbnail_sent);
    let local = phone.store.photo_bytes(&hash, false).unwrap().unwrap();
    assert_eq!(stored_blob(&server, &hash), local);

    // Served back, with its thumbnail, to the grid's chief; not to another grid's inspector.
    let chief = server.phone("chief-0001");
    let photo = chief.transport.get(&format!("/v1/photos/{hash}")).unwrap();
    assert_eq!(photo, local);
    let thumb = chief
        .transport
        .get(&format!("/v1/photos/{hash}/thumb"))
        .unwrap();
    assert_eq!(
        thumb,
        phone.store.photo_bytes(&hash, true).unwrap().unwrap()
    );
    let stranger = server.phone("insp-0002");
    for path in [
        format!("/v1/photos/{hash}"),
        format!("/v1/photos/{hash}/thumb"),
    ] {
        assert!(matches!(
            stranger.transport.get(&path),
            Err(TransportError::Status { status: 404, .. })
        ));
    }
    // Nor can the stranger upload into it, or probe whether it exists.
    assert!(matches!(
        stranger.transport.get(&format!("/v1/blobs/{hash}?kind=photo&size={}", local.len())),
        Err(TransportError::Status { status: 403, ref body }) if body.code == "blob_not_referenced"
    ));

    // Nothing is sent again; a second phone with the same photo sends nothing either.
    let again = phone
        .store
        .upload_photos(&phone.transport, &options, &())
        .unwrap();
    assert_eq!(again, UploadReport::default());
}

#[test]
fn uploads_through_connections_cut_mid_chunk_arrive_complete_and_once() {
    let server = TestServer::start();
    let direct = server.phone("insp-0001");
    let (_, hash) = report_with_photo(&direct.store, &camera_bytes(2));
    direct.sync();
    let size = direct.store.photo_status(&hash).unwrap().size;
    let chunk = 16 << 10;
    // Ten cuts spread over the upload, landing inside request bodies.
    let cuts: Vec<u64> = (0..10).map(|i| 9_000 + i * (size / 11)).collect();
    let proxy = CuttingProxy::start(server.addr, cuts).unwrap();
    let transport = HttpTransport::new(&proxy.url())
        .unwrap()
        .with_token(&direct.enrollment.token);
    let mut sent = UploadReport::default();
    // Each call retries within its back-off budget; calls repeat until the photo is in.
    for _ in 0..20 {
        direct.store.retry_all_photos_now().unwrap();
        let r = direct
            .store
            .upload_photos(&transport, &upload_options(chunk), &())
            .unwrap();
        sent.bytes_sent += r.bytes_sent;
        sent.uploaded += r.uploaded;
        if direct.store.photo_status(&hash).unwrap().state == PhotoState::Uploaded {
            break;
        }
    }
    assert_eq!(sent.uploaded, 1);
    assert_eq!(proxy.cuts_done(), 10, "every planned cut happened");
    let status = direct.store.photo_status(&hash).unwrap();
    assert_eq!(status.state, PhotoState::Uploaded);
    let thumb = direct.store.photo_bytes(&hash, true).unwrap().unwrap();
    let total = status.size + thumb.len() as u64;
    assert!(
        sent.bytes_sent <= total + 10 * chunk as u64,
        "sent {} bytes for {total}: more than one chunk per cut",
        sent.bytes_sent
    );
    // Complete, verified, once.
    let stored = stored_blob(&server, &hash);
    assert_eq!(gridlink_core::photo::sha256_hex(&stored), hash);
    let row = server.state.store().blob(&hash).unwrap().unwrap();
    assert_eq!(row.size, status.size);
    assert_eq!(
        server.state.blobs().received(&hash).unwrap(),
        0,
        "no partial copy left"
    );
}

/// Refuses every `put` after the first `allow` (the app killed mid-upload).
struct DiesAfter<'a> {
    inner: &'a dyn Transport,
    allow: u32,
    puts: AtomicU32,
}

impl Transport for DiesAfter<'_> {
    fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.inner.post(path, body)
    }
    fn get(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.inner.get(path)
    }
    fn put(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.puts.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(TransportError::Unreachable("killed".into()));
        }
        self.inner.put(path, body)
    }
}

#[test]
fn an_upload_interrupted_by_a_killed_app_resumes_after_reopening_the_store() {
    let server = TestServer::start();
    let dir = TempDir::new();
    let path = dir.path().join("phone.sqlite");
    let device = uuid::Uuid::new_v4().to_string();
    let enrollment = gridlink_core::sync::enroll(
        &HttpTransport::new(&server.url).unwrap(),
        &server.code_for("insp-0001"),
        &device,
        "测试手机",
    )
    .unwrap();
    let open = || {
        let store = Store::open(
            &path,
            StoreConfig::new(device.clone(), "insp-0001", enrollment.role),
        )
        .unwrap();
        store.set_enrollment(&enrollment).unwrap();
        store
    };
    let transport = HttpTransport::new(&server.url)
        .unwrap()
        .with_token(&enrollment.token);
    let chunk = 16 << 10;
    let options = UploadOptions {
        backoff: Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
            attempts: 2,
        },
        ..upload_options(chunk)
    };
    let hash = {
        let store = open();
        let (_, hash) = report_with_photo(&store, &camera_bytes(3));
        store
            .sync(&transport, &crate::common::options(), &())
            .unwrap();
        // Thumbnail plus four chunks, then the app dies.
        let dying = DiesAfter {
            inner: &transport,
            allow: 5,
            puts: AtomicU32::new(0),
        };
        let first = store.upload_photos(&dying, &options, &()).unwrap();
        assert_eq!((first.thumbnails, first.uploaded, first.failed), (1, 0, 1));
        let status = store.photo_status(&hash).unwrap();
        assert_eq!(status.state, PhotoState::Failed);
        assert_eq!(status.confirmed_bytes, 4 * chunk as u64);
        assert!(status.next_attempt_at_ms > 0);
        hash
        // The store is dropped here, as a killed process drops it.
    };
    let store = open();
    let status = store.photo_status(&hash).unwrap();
    assert_eq!(
        status.confirmed_bytes,
        4 * chunk as u64,
        "progress survived"
    );
    assert!(status.thumbnail_sent);
    store.retry_photo_now(&hash).unwrap();
    let second = store.upload_photos(&transport, &options, &()).unwrap();
    assert_eq!(second.uploaded, 1);
    assert_eq!(
        second.bytes_sent,
        status.size - 4 * chunk as u64,
        "resumed from the last confirmed chunk"
    );
    assert_eq!(
        store.photo_status(&hash).unwrap().state,
        PhotoState::Uploaded
    );
    assert_eq!(
        gridlink_core::photo::sha256_hex(&stored_blob(&server, &hash)),
        hash
    );
}

#[test]
fn non_images_oversized_and_unreferenced_uploads_are_refused_and_quarantined() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    // A case referencing the hash of a text file.
    let text = b"this is not a photo at all, just text pretending to be one\n".repeat(50);
    let fake = gridlink_core::photo::sha256_hex(&text);
    let id = phone.report(GRID, "井盖缺失", T0);
    phone.act(&id, EventKind::PhotoAdded { hash: fake.clone() }, T0 + 1);
    phone.sync();
    let put = |offset: usize, body: &[u8]| {
        phone.transport.put(
            &format!(
                "/v1/blobs/{fake}?kind=photo&size={}&offset={offset}",
                text.len()
            ),
            body,
        )
    };
    assert!(matches!(
        put(0, &text),
        Err(TransportError::Status { status: 415, ref body }) if body.code == "not_an_image"
    ));
    // JPEG magic followed by text: caught when complete, by its header.
    let mut disguised = vec![0xFF, 0xD8, 0xFF];
    disguised.extend_from_slice(&text[3..]);
    let disguised_hash = gridlink_core::photo::sha256_hex(&disguised);
    phone.act(
        &id,
        EventKind::PhotoAdded {
            hash: disguised_hash.clone(),
        },
        T0 + 2,
    );
    phone.sync();
    assert!(matches!(
        phone.transport.put(
            &format!(
                "/v1/blobs/{disguised_hash}?kind=photo&size={}&offset=0",
                disguised.len()
            ),
            &disguised,
        ),
        Err(TransportError::Status { status: 415, .. })
    ));
    assert!(
        server
            .state
            .blobs()
            .read(&disguised_hash)
            .unwrap()
            .is_none()
    );
    // A size beyond the cap, a chunk at the wrong offset, a blob with the wrong bytes.
    assert!(matches!(
        phone
            .transport
            .get(&format!("/v1/blobs/{fake}?kind=photo&size={}", 64 << 20)),
        Err(TransportError::Status { status: 413, .. })
    ));
    assert!(matches!(
        put(100, &text[100..200]),
        Err(TransportError::Status { status: 409, ref body }) if body.code == "offset_mismatch"
    ));
    let real = camera_bytes(4);
    let wrong_bytes = {
        let mut v = real.clone();
        v.truncate(text.len());
        v
    };
    assert!(matches!(
        put(0, &wrong_bytes),
        Err(TransportError::Status { status: 422, ref body }) if body.code == "hash_mismatch"
    ));
    assert_eq!(
        server.state.blobs().received(&fake).unwrap(),
        0,
        "discarded"
    );
    // Bad names and kinds.
    for path in [
        "/v1/blobs/XYZ?kind=photo&size=10".to_owned(),
        format!("/v1/blobs/{fake}?kind=video&size=10"),
        format!("/v1/blobs/{fake}?kind=thumb&size=10"),
    ] {
        assert!(matches!(
            phone.transport.get(&path),
            Err(TransportError::Status { status: 400, .. })
        ));
    }
    // Without a token: nothing.
    assert!(matches!(
        HttpTransport::new(&server.url)
            .unwrap()
            .get(&format!("/v1/blobs/{fake}?kind=photo&size=10")),
        Err(TransportError::Status { status: 401, .. })
    ));
}

#[test]
fn photos_and_thumbnails_larger_than_the_phone_pipeline_makes_are_refused() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let id = phone.report(GRID, "井盖缺失", T0);
    // A camera's original (2400×1800) where the pipeline uploads at most 1600 px, and a
    // processed photo (1600 px) offered as the thumbnail of another.
    let original = camera_bytes(8);
    let processed = gridlink_core::photo::process(&camera_bytes(9), &Default::default())
        .unwrap()
        .jpeg;
    let small = gridlink_core::photo::process(&camera_bytes(10), &Default::default()).unwrap();
    let [original_hash, processed_hash] =
        [&original, &processed].map(|b| gridlink_core::photo::sha256_hex(b));
    for (t, hash) in [&original_hash, &small.hash].into_iter().enumerate() {
        phone.act(
            &id,
            EventKind::PhotoAdded { hash: hash.clone() },
            T0 + 1 + t as i64,
        );
    }
    phone.sync();
    let put = |hash: &str, query: &str, bytes: &[u8]| {
        phone.transport.put(
            &format!("/v1/blobs/{hash}?{query}&size={}&offset=0", bytes.len()),
            bytes,
        )
    };
    let refused = |r: Result<_, TransportError>| {
        matches!(r, Err(TransportError::Status { status: 415, ref body })
            if body.code == "not_an_image" && body.message.contains("too large"))
    };
    assert!(refused(put(&original_hash, "kind=photo", &original)));
    assert!(refused(put(
        &processed_hash,
        &format!("kind=thumb&of={}", small.hash),
        &processed
    )));
    for hash in [&original_hash, &processed_hash] {
        assert!(server.state.blobs().read(hash).unwrap().is_none());
        assert_eq!(server.state.blobs().received(hash).unwrap(), 0, "discarded");
    }
    // What the pipeline makes goes in.
    assert!(put(&small.hash, "kind=photo", &small.jpeg).is_ok());
    assert!(
        put(
            &small.thumbnail_hash,
            &format!("kind=thumb&of={}", small.hash),
            &small.thumbnail
        )
        .is_ok()
    );
}

#[test]
fn a_photo_the_server_refuses_is_quarantined_and_the_queue_moves_on() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let (_, good) = report_with_photo(&phone.store, &camera_bytes(5));
    let (_, bad) = report_with_photo(&phone.store, &camera_bytes(6));
    phone.sync();
    // Damage the second photo's stored bytes (a bad flash page): the server's hash check
    // fails, the client starts over once, fails again, and sets the photo aside.
    rusqlite::Connection::open(phone.db_path())
        .unwrap()
        .execute(
            "UPDATE photo_data SET data = CAST(substr(data, 1, 1000) || x'00' || substr(data, 1002) AS BLOB)
             WHERE hash = ?1 AND kind = 'full'",
            [&bad],
        )
        .unwrap();
    let report = phone
        .store
        .upload_photos(&phone.transport, &upload_options(64 << 10), &())
        .unwrap();
    assert_eq!((report.uploaded, report.quarantined), (1, 1), "{report:?}");
    assert_eq!(
        phone.store.photo_status(&good).unwrap().state,
        PhotoState::Uploaded
    );
    let status = phone.store.photo_status(&bad).unwrap();
    assert_eq!(status.state, PhotoState::Quarantined);
    assert!(status.last_error.unwrap().contains("校验"));
    // Retry now puts it back in the queue (still failing, but the user asked).
    assert_eq!(
        phone.store.retry_photo_now(&bad).unwrap().state,
        PhotoState::Processed
    );
}

#[test]
fn the_original_file_is_deleted_only_once_the_server_has_confirmed_the_photo() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let dir = TempDir::new();
    let original = dir.path().join("IMG_0001.jpg");
    std::fs::write(&original, camera_bytes(7)).unwrap();
    let id = phone.report(GRID, "违章搭建", T0);
    let photo = phone
        .store
        .capture_photo(&id, PhotoInput::File(&original), moment(T0), None)
        .unwrap();
    phone
        .act(
            &id,
            EventKind::PhotoAdded {
                hash: photo.hash.clone(),
            },
            T0 + 1,
        )
        .unwrap();
    // Not confirmed yet (the case is not even on the server): the original stays.
    let waiting = phone
        .store
        .upload_photos(&phone.transport, &upload_options(64 << 10), &())
        .unwrap();
    assert_eq!(waiting.waiting, 1);
    assert!(original.exists());
    phone.sync();
    phone.store.retry_all_photos_now().unwrap();
    let done = phone
        .store
        .upload_photos(&phone.transport, &upload_options(64 << 10), &())
        .unwrap();
    assert_eq!(done.uploaded, 1);
    assert!(!original.exists(), "purged after the receipt");
    // The processed copy stays on the phone for the case screen.
    assert!(
        phone
            .store
            .photo_bytes(&photo.hash, false)
            .unwrap()
            .is_some()
    );
}

#[test]
fn photos_the_server_has_leave_the_phone_with_their_case() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let (case_id, uploaded) = report_with_photo(&inspector.store, &camera_bytes(8));
    inspector.sync();
    inspector
        .store
        .upload_photos(&inspector.transport, &upload_options(64 << 10), &())
        .unwrap();
    // A second photo of the same case that never reaches the server.
    let pending = inspector
        .store
        .capture_photo(
            &case_id,
            PhotoInput::Bytes(&camera_bytes(9)),
            moment(T0),
            None,
        )
        .unwrap()
        .hash;
    let store = server.state.store();
    store
        .revoke_grant(
            "insp-0001",
            &format!("grid:{GRID}").parse().unwrap(),
            "test",
        )
        .unwrap();
    inspector.sync();
    assert!(inspector.store.document_ids().unwrap().is_empty());
    assert!(matches!(
        inspector.store.photo_status(&uploaded),
        Err(gridlink_core::Error::NotFound(_))
    ));
    assert!(
        inspector
            .store
            .photo_bytes(&uploaded, true)
            .unwrap()
            .is_none()
    );
    // The unconfirmed one stays, listed, for the user to see.
    assert_eq!(
        inspector.store.photo_status(&pending).unwrap().state,
        PhotoState::Processed
    );
}

#[test]
fn naming_someone_elses_photo_hash_in_a_case_gives_no_access_to_it() {
    let server = TestServer::start();
    let owner = server.phone("insp-0001");
    let (_, hash) = report_with_photo(&owner.store, &camera_bytes(10));
    owner.sync();
    owner
        .store
        .upload_photos(&owner.transport, &upload_options(64 << 10), &())
        .unwrap();
    // Another grid's inspector learns the hash and references it from a case of their own.
    let other = server.phone("insp-0002");
    let other_grid = other.enrollment.scopes[0]
        .trim_start_matches("grid:")
        .to_owned();
    let theirs = other.report(&other_grid, "借用别人的照片", T0);
    other
        .act(
            &theirs,
            EventKind::PhotoAdded { hash: hash.clone() },
            T0 + 1,
        )
        .unwrap();
    other.sync();
    assert!(matches!(
        other.transport.get(&format!("/v1/photos/{hash}")),
        Err(TransportError::Status { status: 404, .. })
    ));
    // Nor may they replace its thumbnail.
    let fake_thumb = camera_bytes(11);
    let fake_hash = gridlink_core::photo::sha256_hex(&fake_thumb);
    assert!(matches!(
        other.transport.put(
            &format!(
                "/v1/blobs/{fake_hash}?kind=thumb&of={hash}&size={}&offset=0",
                fake_thumb.len()
            ),
            &fake_thumb
        ),
        Err(TransportError::Status { status: 403, .. })
    ));
    // The owner's side still sees it.
    let chief = server.phone("chief-0001");
    assert!(chief.transport.get(&format!("/v1/photos/{hash}")).is_ok());
}

#[test]
fn a_silent_connection_releases_the_blob_and_a_stale_request_cannot_erase_progress() {
    use std::io::Write;
    let server = TestServer::start_with(
        gridlink_server::ServerConfig {
            chunk_idle_ms: 300,
            ..crate::common::test_config()
        },
        0,
    );
    let phone = server.phone("insp-0001");
    let (_, hash) = report_with_photo(&phone.store, &camera_bytes(12));
    phone.sync();
    let bytes = phone.store.photo_bytes(&hash, false).unwrap().unwrap();
    // A phone sends a chunk's head and 1,000 bytes, then goes silent without closing.
    let mut stalled = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stalled,
        "PUT /v1/blobs/{hash}?kind=photo&size={}&offset=0 HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Length: 65536\r\n\r\n",
        bytes.len(),
        phone.enrollment.token
    )
    .unwrap();
    stalled.write_all(&bytes[..1000]).unwrap();
    stalled.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // The server gave up on it, kept what arrived, and released the blob.
    let status: gridlink_core::sync::wire::BlobStatus = gridlink_core::sync::wire::decode(
        &phone
            .transport
            .get(&format!("/v1/blobs/{hash}?kind=photo&size={}", bytes.len()))
            .unwrap(),
        1 << 16,
    )
    .unwrap();
    assert_eq!(status.received, 1000);
    // A stale first chunk (not a JPEG's bytes, offset 0) is refused without touching them.
    assert!(matches!(
        phone.transport.put(
            &format!("/v1/blobs/{hash}?kind=photo&size={}&offset=0", bytes.len()),
            b"garbage"
        ),
        Err(TransportError::Status { status: 409, ref body }) if body.code == "offset_mismatch"
    ));
    assert_eq!(server.state.blobs().received(&hash).unwrap(), 1000);
    drop(stalled);
    // The queue finishes the upload from there.
    let report = phone
        .store
        .upload_photos(&phone.transport, &upload_options(64 << 10), &())
        .unwrap();
    assert_eq!(report.uploaded, 1);
    assert_eq!(
        report.bytes_sent,
        bytes.len() as u64 - 1000 + {
            phone.store.photo_bytes(&hash, true).unwrap().unwrap().len() as u64
        }
    );
}

/// Answers every `get` with these bytes.
struct Lying(Vec<u8>);

impl Transport for Lying {
    fn post(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Unreachable("offline".into()))
    }
    fn get(&self, _: &str) -> Result<Vec<u8>, TransportError> {
        if self.0.is_empty() {
            return Err(TransportError::Unreachable("offline".into()));
        }
        Ok(self.0.clone())
    }
    fn put(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Unreachable("offline".into()))
    }
}

#[test]
fn a_chief_downloads_a_photo_once_checks_it_and_sees_it_again_offline() {
    let server = TestServer::start();
    let inspector = server.phone("insp-0001");
    let (_, hash) = report_with_photo(&inspector.store, &camera_bytes(13));
    inspector.sync();
    inspector
        .store
        .upload_photos(&inspector.transport, &upload_options(64 << 10), &())
        .unwrap();
    let chief = server.phone("chief-0001");
    chief.sync();
    // Bytes that do not hash to the name are refused and not kept.
    assert!(matches!(
        chief
            .store
            .fetch_photo(&Lying(camera_bytes(14)), &hash, false),
        Err(gridlink_core::Error::Corrupt { .. })
    ));
    let photo = chief
        .store
        .fetch_photo(&chief.transport, &hash, false)
        .unwrap();
    let thumb = chief
        .store
        .fetch_photo(&chief.transport, &hash, true)
        .unwrap();
    assert_eq!(gridlink_core::photo::sha256_hex(&photo), hash);
    assert_eq!(
        thumb,
        inspector.store.photo_bytes(&hash, true).unwrap().unwrap()
    );
    // Offline now: both come from the phone.
    let offline = Lying(Vec::new());
    assert_eq!(
        chief.store.fetch_photo(&offline, &hash, false).unwrap(),
        photo
    );
    assert_eq!(
        chief.store.fetch_photo(&offline, &hash, true).unwrap(),
        thumb
    );
    // Not in the chief's upload queue: it is not theirs to send.
    assert!(chief.store.photo_queue().unwrap().is_empty());
}
