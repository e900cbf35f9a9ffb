//! The photo queue on the phone: capture is all-or-nothing and idempotent, the storage floor
//! and budget refuse new captures with a clear error, uploaded full-size copies make room,
//! bad captures leave the queue untouched. Also: a citizen's report is checked before it is
//! kept, and case documents from before `reporter` existed still read.

use crate::common::{T0, TempDir, details, uuid};
use gridlink_core::Error;
use gridlink_core::case::{Category, Location, Role};
use gridlink_core::doc::{CaseDoc, actor_for_device};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{
    CitizenReportState, Moment, NewCitizenReport, PhotoBudget, PhotoInput, PhotoState, Store,
    StoreConfig,
};
use gridlink_fixtures::photos::CameraPhoto;

fn moment() -> Moment {
    Moment {
        at_ms: T0,
        location: None,
    }
}

fn photo(seed: u64) -> Vec<u8> {
    CameraPhoto {
        seed,
        ..CameraPhoto::small(1)
    }
    .jpeg()
}

fn store_with(dir: &TempDir, role: Role, budget: PhotoBudget) -> Store {
    let config = StoreConfig {
        photo_budget: budget,
        ..StoreConfig::new(uuid(1), "insp-0001", role)
    };
    Store::open(dir.path("phone.sqlite"), config).unwrap()
}

#[test]
fn a_capture_is_kept_whole_once_and_bad_input_leaves_the_queue_as_it_was() {
    let dir = TempDir::new();
    let store = store_with(&dir, Role::GridInspector, PhotoBudget::default());
    let case = uuid(100);
    let first = store
        .capture_photo(
            &case,
            PhotoInput::Bytes(&photo(1)),
            moment(),
            Some(u64::MAX),
        )
        .unwrap();
    assert_eq!(first.state, PhotoState::Processed);
    assert!(first.local && !first.thumbnail_sent);
    assert_eq!((first.width, first.height), (600, 400));
    // The same photo again is the same queue entry.
    let again = store
        .capture_photo(&case, PhotoInput::Bytes(&photo(1)), moment(), None)
        .unwrap();
    assert_eq!(again, first);
    // Garbage, a missing file, a bad case id: typed errors, nothing added.
    assert!(matches!(
        store.capture_photo(&case, PhotoInput::Bytes(b"not a photo"), moment(), None),
        Err(Error::Photo(gridlink_core::photo::PhotoError::NotAnImage))
    ));
    assert!(matches!(
        store.capture_photo(
            &case,
            PhotoInput::File(&dir.path("missing.jpg")),
            moment(),
            None
        ),
        Err(Error::Photo(gridlink_core::photo::PhotoError::Io(_)))
    ));
    assert!(matches!(
        store.capture_photo("nope", PhotoInput::Bytes(&photo(2)), moment(), None),
        Err(Error::Config(_))
    ));
    assert_eq!(store.photo_queue().unwrap(), vec![first.clone()]);
    assert_eq!(store.photos_of_case(&case).unwrap(), vec![first.clone()]);
    let bytes = store.photo_bytes(&first.hash, false).unwrap().unwrap();
    assert_eq!(gridlink_core::photo::sha256_hex(&bytes), first.hash);
    assert!(store.photo_bytes(&first.hash, true).unwrap().is_some());
    // A reopened store has it all.
    drop(store);
    let store = store_with(&dir, Role::GridInspector, PhotoBudget::default());
    assert_eq!(store.photo_status(&first.hash).unwrap(), first);
    assert!(matches!(
        store.retry_photo_now(&"0".repeat(64)),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn captures_below_the_free_space_floor_or_over_the_budget_are_refused() {
    let dir = TempDir::new();
    let one = photo(3);
    let processed =
        gridlink_core::photo::process(&one, &gridlink_core::photo::PhotoConfig::default()).unwrap();
    // Room for one photo and a half.
    let budget = PhotoBudget {
        max_bytes: (processed.jpeg.len() + processed.thumbnail.len()) as u64 * 3 / 2,
        min_free_bytes: 100 << 20,
        ..PhotoBudget::default()
    };
    let store = store_with(&dir, Role::GridInspector, budget);
    let err = store
        .capture_photo(&uuid(1), PhotoInput::Bytes(&one), moment(), Some(10 << 20))
        .unwrap_err();
    assert!(matches!(err, Error::StorageFull { available, .. } if available == 10 << 20));
    assert!(err.to_string().starts_with("存储空间不足"));
    // Within the floor: the first photo fits the budget, the second does not (nothing is
    // uploaded yet, so nothing may be evicted).
    let first = store
        .capture_photo(&uuid(1), PhotoInput::Bytes(&one), moment(), Some(1 << 30))
        .unwrap();
    assert!(matches!(
        store.capture_photo(&uuid(1), PhotoInput::Bytes(&photo(4)), moment(), None),
        Err(Error::StorageFull { .. })
    ));
    assert_eq!(store.photo_queue().unwrap().len(), 1);
    // Once the server has the first photo, its full-size copy makes room (the thumbnail
    // stays, and the server keeps the photo).
    drop(store);
    rusqlite::Connection::open(dir.path("phone.sqlite"))
        .unwrap()
        .execute(
            "UPDATE photos SET state = 'uploaded', uploaded_at = 1 WHERE hash = ?1",
            [&first.hash],
        )
        .unwrap();
    let store = store_with(&dir, Role::GridInspector, budget);
    let second = store
        .capture_photo(&uuid(1), PhotoInput::Bytes(&photo(4)), moment(), None)
        .unwrap();
    assert_eq!(second.state, PhotoState::Processed);
    let evicted = store.photo_status(&first.hash).unwrap();
    assert!(!evicted.local);
    assert!(store.photo_bytes(&first.hash, false).unwrap().is_none());
    assert!(store.photo_bytes(&first.hash, true).unwrap().is_some());
}

#[test]
fn a_citizen_report_is_checked_before_it_is_kept_and_is_idempotent() {
    let dir = TempDir::new();
    let store = store_with(&dir, Role::Citizen, PhotoBudget::default());
    let id = uuid(7);
    let hash = store
        .capture_photo(&id, PhotoInput::Bytes(&photo(5)), moment(), None)
        .unwrap()
        .hash;
    let other = store
        .capture_photo(&uuid(8), PhotoInput::Bytes(&photo(6)), moment(), None)
        .unwrap()
        .hash;
    let location = Location {
        point: LatLon::new(30.79, 120.37),
        accuracy_m: 12.0,
    };
    let report = NewCitizenReport {
        id: id.clone(),
        category: Category::RoadMunicipal,
        text: " 井盖缺失，很危险 ".into(),
        location,
        photos: vec![hash.clone()],
    };
    for bad in [
        NewCitizenReport {
            text: "   ".into(),
            ..report.clone()
        },
        NewCitizenReport {
            text: "第一行\n第二行".into(),
            ..report.clone()
        },
        NewCitizenReport {
            text: "字".repeat(101),
            ..report.clone()
        },
        NewCitizenReport {
            photos: vec![],
            ..report.clone()
        },
        NewCitizenReport {
            photos: vec![hash.clone(); 10],
            ..report.clone()
        },
        NewCitizenReport {
            photos: vec![other.clone()],
            ..report.clone()
        },
        NewCitizenReport {
            id: "x".into(),
            ..report.clone()
        },
        NewCitizenReport {
            location: Location {
                point: LatLon::new(95.0, 0.0),
                accuracy_m: 1.0,
            },
            ..report.clone()
        },
    ] {
        assert!(matches!(
            store.submit_citizen_report(bad, moment()),
            Err(Error::Invalid(_))
        ));
    }
    assert!(store.citizen_reports().unwrap().is_empty());
    let kept = store
        .submit_citizen_report(report.clone(), moment())
        .unwrap();
    assert_eq!(kept.state, CitizenReportState::Pending);
    assert_eq!(kept.text, "井盖缺失，很危险");
    assert_eq!(
        store
            .submit_citizen_report(report.clone(), moment())
            .unwrap(),
        kept
    );
    assert!(matches!(
        store.submit_citizen_report(
            NewCitizenReport {
                category: Category::Other,
                ..report
            },
            moment()
        ),
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.citizen_reports().unwrap(), vec![kept]);
}

#[test]
fn a_case_document_without_the_newer_fields_reads_with_their_defaults() {
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};
    let (mut doc, _) = CaseDoc::create(
        details(&uuid(9), "老文档"),
        vec![],
        crate::common::stamp("insp-0001", Role::GridInspector, T0),
        actor_for_device(&uuid(1)).unwrap(),
    )
    .unwrap();
    // Remove the key, as a document written before the field existed lacks it.
    let mut raw = automerge::AutoCommit::load(&doc.save()).unwrap();
    let (_, details_obj) = raw.get(ROOT, "details").unwrap().unwrap();
    raw.delete(&details_obj, "reporter").unwrap();
    raw.delete(&details_obj, "priority").unwrap();
    let old = CaseDoc::load(&uuid(9), &raw.save()).unwrap();
    assert_eq!(old.details().unwrap().reporter, None);
    assert_eq!(old.details_via_autosurgeon().unwrap().reporter, None);
    assert_eq!(
        old.details().unwrap().priority,
        gridlink_core::case::Priority::Normal
    );
    assert_eq!(
        old.details_via_autosurgeon().unwrap().priority,
        gridlink_core::case::Priority::Normal
    );
    assert_eq!(old.case().unwrap().details.title, "老文档");
}

/// Serves photos by hash from memory.
struct Serving(std::collections::HashMap<String, Vec<u8>>);

impl gridlink_core::sync::Transport for Serving {
    fn post(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, gridlink_core::sync::TransportError> {
        Err(gridlink_core::sync::TransportError::Unreachable(
            "no".into(),
        ))
    }
    fn get(&self, path: &str) -> Result<Vec<u8>, gridlink_core::sync::TransportError> {
        let hash = path.trim_start_matches("/v1/photos/");
        self.0
            .get(hash)
            .cloned()
            .ok_or_else(|| gridlink_core::sync::TransportError::Unreachable("no".into()))
    }
    fn put(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, gridlink_core::sync::TransportError> {
        Err(gridlink_core::sync::TransportError::Unreachable(
            "no".into(),
        ))
    }
}

#[test]
fn downloaded_photos_are_kept_within_their_own_budget_oldest_out_first() {
    let config = gridlink_core::photo::PhotoConfig::default();
    let a = gridlink_core::photo::process(&photo(20), &config).unwrap();
    let b = gridlink_core::photo::process(&photo(21), &config).unwrap();
    let dir = TempDir::new();
    let store = store_with(
        &dir,
        Role::GridChief,
        PhotoBudget {
            cache_bytes: (a.jpeg.len() + b.jpeg.len()) as u64 - 1,
            ..PhotoBudget::default()
        },
    );
    let server = Serving(
        [
            (a.hash.clone(), a.jpeg.clone()),
            (b.hash.clone(), b.jpeg.clone()),
        ]
        .into_iter()
        .collect(),
    );
    assert_eq!(store.fetch_photo(&server, &a.hash, false).unwrap(), a.jpeg);
    assert_eq!(
        store.photo_bytes(&a.hash, false).unwrap(),
        Some(a.jpeg.clone())
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(store.fetch_photo(&server, &b.hash, false).unwrap(), b.jpeg);
    // Both do not fit: the older went.
    assert_eq!(store.photo_bytes(&a.hash, false).unwrap(), None);
    assert_eq!(store.photo_bytes(&b.hash, false).unwrap(), Some(b.jpeg));
}

#[test]
fn a_photo_whose_report_was_never_saved_is_orphaned_after_the_grace_period_listed_and_discardable()
{
    let dir = TempDir::new();
    // No grace: every photo whose report is not saved is orphaned at once.
    let store = store_with(
        &dir,
        Role::GridInspector,
        PhotoBudget {
            orphan_grace_ms: 0,
            ..PhotoBudget::default()
        },
    );
    // The app wrote the camera file, captured it for a report the user then abandoned.
    let camera = dir.path("camera-1.jpg");
    std::fs::write(&camera, photo(30)).unwrap();
    let abandoned = store
        .capture_photo(&uuid(300), PhotoInput::File(&camera), moment(), None)
        .unwrap();
    assert!(abandoned.orphaned, "{abandoned:?}");
    let kept = store
        .capture_photo(&uuid(301), PhotoInput::Bytes(&photo(31)), moment(), None)
        .unwrap();
    store
        .report(
            gridlink_core::store::NewCase {
                id: uuid(301),
                category: Category::FireHazard,
                source: gridlink_core::case::Source::GridInspector,
                title: "楼道堆放杂物".into(),
                description: "现场描述".into(),
                location: None,
                address_id: None,
                grid_id: "320509001001-01".into(),
                photos: vec![kept.hash.clone()],
                priority: Default::default(),
            },
            moment(),
        )
        .unwrap();
    let listed: Vec<String> = store
        .orphaned_photos()
        .unwrap()
        .into_iter()
        .map(|p| p.hash)
        .collect();
    assert_eq!(listed, vec![abandoned.hash.clone()]);
    assert!(!store.photo_status(&kept.hash).unwrap().orphaned);

    // An upload round tries the saved case's photo and leaves the orphan alone (the server
    // would refuse a photo no case references).
    store
        .upload_photos(
            &Serving(Default::default()),
            &gridlink_core::sync::UploadOptions::default(),
            &(),
        )
        .unwrap();
    assert!(store.photo_status(&kept.hash).unwrap().attempts >= 1);
    let untouched = store.photo_status(&abandoned.hash).unwrap();
    assert_eq!(
        (untouched.state, untouched.attempts),
        (PhotoState::Processed, 0)
    );

    // A photo of a saved case cannot be discarded; the orphan can, with its camera file.
    assert!(matches!(
        store.discard_photo(&kept.hash),
        Err(Error::PhotoInUse { .. })
    ));
    assert!(store.photo_bytes(&kept.hash, false).unwrap().is_some());
    store.discard_photo(&abandoned.hash).unwrap();
    assert!(matches!(
        store.photo_status(&abandoned.hash),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.photo_bytes(&abandoned.hash, false).unwrap(), None);
    assert!(!camera.exists());
    assert!(matches!(
        store.discard_photo(&abandoned.hash),
        Err(Error::NotFound(_))
    ));
    assert!(store.orphaned_photos().unwrap().is_empty());
}

#[test]
fn within_the_grace_period_a_photo_waiting_for_its_report_is_not_orphaned_and_goes_once_saved() {
    let dir = TempDir::new();
    let store = store_with(&dir, Role::GridInspector, PhotoBudget::default());
    let waiting = store
        .capture_photo(&uuid(310), PhotoInput::Bytes(&photo(32)), moment(), None)
        .unwrap();
    assert!(!waiting.orphaned);
    assert!(store.orphaned_photos().unwrap().is_empty());
    // A citizen's report owns its photos as a case does.
    let citizen_dir = TempDir::new();
    let citizen = store_with(
        &citizen_dir,
        Role::Citizen,
        PhotoBudget {
            orphan_grace_ms: 0,
            ..PhotoBudget::default()
        },
    );
    let shot = citizen
        .capture_photo(&uuid(311), PhotoInput::Bytes(&photo(33)), moment(), None)
        .unwrap();
    assert!(shot.orphaned);
    citizen
        .submit_citizen_report(
            NewCitizenReport {
                id: uuid(311),
                category: Category::FireHazard,
                text: "路灯不亮".into(),
                location: Location {
                    point: LatLon::new(31.16, 120.64),
                    accuracy_m: 10.0,
                },
                photos: vec![shot.hash.clone()],
            },
            moment(),
        )
        .unwrap();
    assert!(!citizen.photo_status(&shot.hash).unwrap().orphaned);
    assert!(citizen.orphaned_photos().unwrap().is_empty());
}
