//! The phone's session (`gridlink_core::session`), path by path, without a server: sign-in
//! kept across restarts, a damaged sign-in set aside, sign-out with unsent work, the device id
//! retired at sign-out, one sync at a time, a background job that panics, the camera's files
//! taken from the photo directory only, and the patrol list's default grid.

use crate::common::{T0, TempDir, uuid};
use gridlink_core::Error;
use gridlink_core::case::{Category, Location, Role, Source};
use gridlink_core::geo::LatLon;
use gridlink_core::session::{PhoneSession, SessionConfig, SessionError};
use gridlink_core::store::{Moment, NewCase};
use gridlink_core::sync::wire::EnrollResponse;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const INSTALLATION: u128 = 7;

fn config(dir: &TempDir) -> SessionConfig {
    SessionConfig {
        database_path: dir.path("phone.sqlite"),
        photo_dir: dir.path("camera"),
        // Nothing listens there: a sync fails fast, as offline.
        server_url: "http://127.0.0.1:9".into(),
        device_id: uuid(INSTALLATION),
        device_name: "测试手机".into(),
        max_attempts: 1,
        orphan_photo_grace_ms: 3_600_000,
    }
}

fn enrollment(device_id: &str) -> EnrollResponse {
    EnrollResponse {
        protocol: 1,
        device_id: device_id.into(),
        token: "token".into(),
        actor_prefix: vec![4; 16],
        user_id: "insp-0001".into(),
        user_name: "张军".into(),
        role: Role::GridInspector,
        scopes: vec!["grid:320509001001-01".into()],
    }
}

fn signed_in(dir: &TempDir) -> PhoneSession {
    let session = PhoneSession::open(config(dir)).unwrap();
    let user = session
        .adopt_enrollment(enrollment(&session.next_device_id()))
        .unwrap();
    assert_eq!(user.grids(), vec!["320509001001-01"]);
    session
}

/// A session signed in as `role` holding one scope key.
fn signed_in_as(dir: &TempDir, role: Role, scope: &str) -> PhoneSession {
    let session = PhoneSession::open(config(dir)).unwrap();
    session
        .adopt_enrollment(EnrollResponse {
            role,
            scopes: vec![scope.into()],
            ..enrollment(&session.next_device_id())
        })
        .unwrap();
    session
}

fn report(session: &PhoneSession) {
    session
        .signed()
        .unwrap()
        .store
        .report(
            NewCase {
                id: uuid(100),
                category: Category::FireHazard,
                source: Source::GridInspector,
                title: "楼道堆放杂物".into(),
                description: String::new(),
                location: Some(Location {
                    point: LatLon::new(31.16, 120.64),
                    accuracy_m: 5.0,
                }),
                address_id: None,
                grid_id: "320509001001-01".into(),
                photos: vec![],
                priority: Default::default(),
            },
            Moment {
                at_ms: T0,
                location: None,
            },
        )
        .unwrap();
}

fn set_aside(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".unreadable-"))
        .collect()
}

fn session_error(e: Error) -> SessionError {
    match e {
        Error::Session(e) => e,
        other => panic!("not a session error: {other:?}"),
    }
}

#[test]
fn a_sign_in_is_kept_across_restarts_and_a_second_one_is_refused() {
    let dir = TempDir::new();
    let first = signed_in(&dir);
    report(&first);
    drop(first);
    let again = PhoneSession::open(config(&dir)).unwrap();
    let user = again.user().expect("the same user, reopened");
    assert_eq!(
        (user.user_id.as_str(), user.role),
        ("insp-0001", Role::GridInspector)
    );
    let store = again.signed().unwrap().store.clone();
    assert_eq!(
        store.unacknowledged().unwrap().len(),
        1,
        "the offline work is there"
    );
    drop(store);
    assert_eq!(
        session_error(again.adopt_enrollment(enrollment(&uuid(8))).unwrap_err()),
        SessionError::AlreadySignedIn
    );
    assert!(set_aside(&dir.0).is_empty());
}

#[test]
fn a_damaged_sign_in_record_is_set_aside_never_opened_for_the_next_user() {
    let dir = TempDir::new();
    drop(signed_in(&dir));
    std::fs::write(dir.path("phone.sqlite.session.json"), b"{not json").unwrap();
    let session = PhoneSession::open(config(&dir)).unwrap();
    assert!(session.user().is_none());
    assert_eq!(
        session_error(session.signed().err().unwrap()),
        SessionError::NotSignedIn
    );
    let aside = set_aside(&dir.0);
    assert!(
        aside
            .iter()
            .any(|p| p.to_string_lossy().contains("phone.sqlite.unreadable-")),
        "the database is kept for support: {aside:?}"
    );
    assert!(!dir.path("phone.sqlite").exists());
    // The next user starts on an empty database.
    let next = session
        .adopt_enrollment(enrollment(&session.next_device_id()))
        .unwrap();
    assert_eq!(next.user_id, "insp-0001");
    assert!(
        session
            .signed()
            .unwrap()
            .store
            .unacknowledged()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_database_without_a_sign_in_record_is_set_aside() {
    let dir = TempDir::new();
    drop(signed_in(&dir));
    std::fs::remove_file(dir.path("phone.sqlite.session.json")).unwrap();
    let session = PhoneSession::open(config(&dir)).unwrap();
    assert!(session.user().is_none());
    assert!(!set_aside(&dir.0).is_empty());
}

#[test]
fn a_device_id_that_is_not_a_uuid_is_refused() {
    let dir = TempDir::new();
    let bad = SessionConfig {
        device_id: "phone-1".into(),
        ..config(&dir)
    };
    assert!(matches!(PhoneSession::open(bad), Err(Error::Config(_))));
}

#[test]
fn sign_out_keeps_unsent_work_unless_told_and_retires_the_device_id() {
    let dir = TempDir::new();
    let session = signed_in(&dir);
    assert_eq!(session.next_device_id(), uuid(INSTALLATION));
    report(&session);
    assert_eq!(
        session_error(session.sign_out(false, Duration::ZERO).unwrap_err()),
        SessionError::UnsentWork { count: 1 }
    );
    assert!(session.user().is_some(), "still signed in, work kept");
    // A call still holding the store: sign-out waits, then says so.
    let held = session.signed().unwrap().store.clone();
    assert_eq!(
        session_error(
            session
                .sign_out(true, Duration::from_millis(50))
                .unwrap_err()
        ),
        SessionError::Busy
    );
    drop(held);
    session.sign_out(true, Duration::from_secs(5)).unwrap();
    assert!(session.user().is_none());
    assert!(!dir.path("phone.sqlite").exists());
    assert!(!dir.path("phone.sqlite.session.json").exists());
    let next = session.next_device_id();
    assert_ne!(
        next,
        uuid(INSTALLATION),
        "the server ties a device id to one user"
    );
    assert!(uuid::Uuid::parse_str(&next).is_ok());
    assert_eq!(
        session_error(session.sign_out(true, Duration::ZERO).unwrap_err()),
        SessionError::NotSignedIn
    );
    // Kept across restarts too.
    assert_eq!(
        PhoneSession::open(config(&dir)).unwrap().next_device_id(),
        next
    );
}

#[test]
fn syncs_run_one_at_a_time() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    // A server on 127.0.0.1 that holds each connection a moment and hangs up, counting how
    // many are open at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    const SYNCS: usize = 4;
    let server = {
        let (open, most) = (open.clone(), most.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: it stops after the syncs' connections or 30 s, whichever comes first.
            listener.set_nonblocking(true).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while held.len() < SYNCS && std::time::Instant::now() < deadline {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (open, most) = (open.clone(), most.clone());
                held.push(std::thread::spawn(move || {
                    let now = open.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    open.fetch_sub(1, SeqCst);
                    drop(conn);
                }));
            }
            for h in held {
                h.join().unwrap();
            }
        })
    };
    let dir = TempDir::new();
    let session = PhoneSession::open(SessionConfig {
        server_url: url,
        ..config(&dir)
    })
    .unwrap();
    session
        .adopt_enrollment(enrollment(&session.next_device_id()))
        .unwrap();
    report(&session);
    std::thread::scope(|s| {
        for _ in 0..SYNCS {
            // The server hangs up: each sync fails, and its work stays.
            s.spawn(|| assert!(session.sync(&(), &()).is_err()));
        }
    });
    server.join().unwrap();
    assert_eq!(most.load(SeqCst), 1, "one sync at a time");
    assert_eq!(
        session
            .signed()
            .unwrap()
            .store
            .unacknowledged()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_background_job_that_panics_leaves_the_thread_for_the_next() {
    let dir = TempDir::new();
    let session = PhoneSession::open(config(&dir)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    session
        .in_background(Box::new(|| panic!("an observer threw")))
        .unwrap();
    session
        .in_background(Box::new(move || tx.send("ran").unwrap()))
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok("ran"));
}

#[test]
fn a_grid_map_is_kept_beside_the_database_and_a_bad_one_refused() {
    let dir = TempDir::new();
    let session = PhoneSession::open(config(&dir)).unwrap();
    assert!(session.grids().is_none());
    assert!(matches!(session.load_grids("{}"), Err(Error::Config(_))));
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let n = session
        .load_grids(&district.grids_geojson().to_string())
        .unwrap();
    assert!(n > 0);
    let reopened = PhoneSession::open(config(&dir)).unwrap();
    assert_eq!(reopened.grids().unwrap().len(), n);
}

#[test]
fn a_case_is_reported_under_the_roles_source_in_the_users_grid() {
    let dir = TempDir::new();
    let session = signed_in(&dir);
    let report = gridlink_core::session::CaseReport {
        id: uuid(200),
        category: Category::FireHazard,
        title: "消防通道堵塞".into(),
        description: String::new(),
        location: None,
        address_id: None,
        grid_id: None,
        photos: vec![],
        priority: Default::default(),
    };
    let at = Moment {
        at_ms: T0,
        location: None,
    };
    let case = session.report_case(report.clone(), at).unwrap();
    assert_eq!(case.details.source, Source::GridInspector);
    assert_eq!(
        case.details.grid_id, "320509001001-01",
        "the user's first grid"
    );
    // A department's handler reports none; a user without grids must name one.
    let dept = TempDir::new();
    let handler = signed_in_as(&dept, Role::DepartmentHandler, "dept:dept-env");
    assert!(matches!(
        session_error(handler.report_case(report.clone(), at).unwrap_err()),
        SessionError::MayNotReport(_)
    ));
    let operator = TempDir::new();
    let centre = signed_in_as(&operator, Role::Operator, "district");
    assert_eq!(
        session_error(centre.report_case(report, at).unwrap_err()),
        SessionError::NoGrid
    );
}

#[test]
fn a_camera_file_is_taken_from_the_photo_directory_only() {
    let dir = TempDir::new();
    let session = signed_in(&dir);
    let jpeg = gridlink_fixtures::photos::CameraPhoto::small(3).jpeg();
    let at = Moment {
        at_ms: T0,
        location: None,
    };
    // Elsewhere (a file the app did not have the camera write): refused, and left alone.
    let elsewhere = dir.path("downloads.jpg");
    std::fs::write(&elsewhere, &jpeg).unwrap();
    assert_eq!(
        session_error(
            session
                .capture_camera_file(&uuid(100), &elsewhere, at, None)
                .unwrap_err()
        ),
        SessionError::PhotoOutsideDirectory
    );
    assert!(elsewhere.exists());
    // A path in the photo directory that leads out of it is elsewhere too.
    let sneaky = dir.path("camera").join("..").join("downloads.jpg");
    assert_eq!(
        session_error(
            session
                .capture_camera_file(&uuid(100), &sneaky, at, None)
                .unwrap_err()
        ),
        SessionError::PhotoOutsideDirectory
    );
    // Where the session said: queued (the camera's file goes once the server has the photo).
    let path = session.new_photo_path();
    assert!(path.starts_with(dir.path("camera")));
    std::fs::write(&path, &jpeg).unwrap();
    let photo = session
        .capture_camera_file(&uuid(100), &path, at, None)
        .unwrap();
    let queue = session.signed().unwrap().store.photo_queue().unwrap();
    assert!(queue.iter().any(|p| p.hash == photo.hash));
}

#[test]
fn the_patrol_list_is_of_the_users_first_grid_unless_another_is_chosen() {
    let dir = TempDir::new();
    let session = signed_in(&dir);
    assert!(session.patrol_list(None, 30).is_ok());
    assert!(session.patrol_list(Some("320509001001-02"), 30).is_ok());
    // A department has no grid to default to.
    let other = TempDir::new();
    let department = signed_in_as(&other, Role::DepartmentHandler, "dept:dept-env");
    assert_eq!(
        session_error(department.patrol_list(None, 30).unwrap_err()),
        SessionError::NoGrid
    );
}
