//! 随手拍 end to end: a citizen registers, reports offline, syncs later; the case lands in the
//! right grid for its inspector with the reporter masked; the citizen follows the status; a
//! repeated submission creates nothing; abuse limits hold.

use crate::common::{TempDir, TestServer, moment, options, test_config};
use crate::photos::{camera_bytes, upload_options};
use gridlink_core::case::{Category, EventKind, Location, Role, Source};
use gridlink_core::geo::LatLon;
use gridlink_core::store::{
    CitizenReportState, NewCitizenReport, PhotoInput, PhotoState, Store, StoreConfig,
};
use gridlink_core::sync::wire::{self, CitizenReceipt, CitizenReport, MyReports};
use gridlink_core::sync::{HttpTransport, Transport, TransportError, register_citizen};
use gridlink_server::limits::{Rate, RateLimits};

const T0: i64 = 1_795_910_400_000;

pub struct Citizen {
    pub store: Store,
    pub transport: HttpTransport,
    _dir: TempDir,
}

pub fn register(server: &TestServer, name: Option<&str>, phone: Option<&str>) -> Citizen {
    let device = uuid::Uuid::new_v4().to_string();
    let enrollment = register_citizen(
        &HttpTransport::new(&server.url).unwrap(),
        &device,
        "市民的手机",
        name,
        phone,
    )
    .unwrap();
    assert_eq!(enrollment.role, Role::Citizen);
    assert!(enrollment.scopes.is_empty());
    let dir = TempDir::new();
    let store = Store::open(
        dir.path().join("citizen.sqlite"),
        StoreConfig::new(device, enrollment.user_id.clone(), Role::Citizen),
    )
    .unwrap();
    store.set_enrollment(&enrollment).unwrap();
    let transport = HttpTransport::new(&server.url)
        .unwrap()
        .with_token(&enrollment.token);
    Citizen {
        store,
        transport,
        _dir: dir,
    }
}

/// A point inside the grid of the first fixture address (and that grid's id).
fn place() -> (Location, String) {
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let a = &district.addresses[0];
    (
        Location {
            point: LatLon::new(a.lat, a.lon),
            accuracy_m: 10.0,
        },
        a.grid_id.clone(),
    )
}

impl Citizen {
    /// Takes a photo and writes a report, offline.
    fn report(&self, text: &str, location: Location, seed: u64) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let photo = self
            .store
            .capture_photo(
                &id,
                PhotoInput::Bytes(&camera_bytes(seed)),
                moment(T0),
                None,
            )
            .unwrap();
        self.store
            .submit_citizen_report(
                NewCitizenReport {
                    id: id.clone(),
                    category: Category::Sanitation,
                    text: text.into(),
                    location,
                    photos: vec![photo.hash],
                },
                moment(T0),
            )
            .unwrap();
        id
    }

    fn sync(
        &self,
        transport: &dyn Transport,
    ) -> gridlink_core::Result<gridlink_core::sync::CitizenSyncReport> {
        self.store
            .sync_citizen(transport, &options(), &upload_options(64 << 10), &())
    }
}

/// A transport with no network.
struct Offline;

impl Transport for Offline {
    fn post(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Unreachable("no signal".into()))
    }
    fn get(&self, _: &str) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Unreachable("no signal".into()))
    }
    fn put(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, TransportError> {
        Err(TransportError::Unreachable("no signal".into()))
    }
}

#[test]
fn a_citizen_report_made_offline_reaches_the_grid_inspector_and_the_citizen_follows_it() {
    let server = TestServer::start();
    let citizen = register(&server, Some("张三"), Some("138 1234 1234"));
    let (location, grid) = place();
    let id = citizen.report("小区门口垃圾堆积三天无人清理", location, 11);

    // No signal: nothing is lost, the report waits.
    let few = gridlink_core::sync::SyncOptions {
        backoff: gridlink_core::sync::Backoff {
            attempts: 2,
            ..options().backoff
        },
        ..options()
    };
    assert!(matches!(
        citizen
            .store
            .sync_citizen(&Offline, &few, &upload_options(64 << 10), &()),
        Err(gridlink_core::Error::Network(_))
    ));
    let mine = citizen.store.citizen_reports().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].state, CitizenReportState::Pending);

    // Later, with signal: submitted, photo uploaded, list refreshed.
    let report = citizen.sync(&citizen.transport).unwrap();
    assert_eq!((report.submitted, report.refused, report.listed), (1, 0, 1));
    assert_eq!(report.photos.uploaded, 1);
    let mine = citizen.store.citizen_reports().unwrap();
    assert_eq!(mine[0].state, CitizenReportState::Submitted);
    assert_eq!(mine[0].grid_id.as_deref(), Some(grid.as_str()));
    assert_eq!(mine[0].status.as_deref(), Some("reported"));
    let photo = citizen.store.photos_of_case(&id).unwrap().remove(0);
    assert_eq!(photo.state, PhotoState::Uploaded);

    // The grid's inspector receives the case, from a citizen, reporter masked.
    let inspector = server.phone("insp-0001");
    assert_eq!(grid, "320509001001-01", "insp-0001's grid");
    inspector.sync();
    let case = inspector.store.case(&id).unwrap();
    assert_eq!(case.details.source, Source::Citizen);
    assert_eq!(case.details.grid_id, grid);
    assert_eq!(case.details.reporter.as_deref(), Some("张** 138****1234"));
    assert_eq!(case.state.photos, vec![photo.hash.clone()]);
    assert_eq!(
        inspector
            .transport
            .get(&format!("/v1/photos/{}", photo.hash))
            .unwrap(),
        citizen
            .store
            .photo_bytes(&photo.hash, false)
            .unwrap()
            .unwrap()
    );
    // Who reported it: masked for the inspector, in full for the command centre.
    let who = |t: &HttpTransport| -> serde_json::Value {
        serde_json::from_slice(&t.get(&format!("/v1/cases/{id}/reporter")).unwrap()).unwrap()
    };
    assert_eq!(who(&inspector.transport)["display"], "张** 138****1234");
    assert_eq!(who(&inspector.transport)["name"], "张**");
    let operator = server.phone("op-01");
    assert_eq!(who(&operator.transport)["name"], "张三");
    assert_eq!(who(&operator.transport)["phone"], "138****1234");
    // Another grid's inspector does not get it.
    let stranger = server.phone("insp-0002");
    stranger.sync();
    assert!(stranger.store.case(&id).is_err());
    assert!(matches!(
        stranger.transport.get(&format!("/v1/cases/{id}/reporter")),
        Err(TransportError::Status { status: 404, .. })
    ));

    // The chief handles it; the citizen sees each step and the closing note.
    let chief = server.phone("chief-0001");
    chief.sync();
    chief.act(
        &id,
        EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        T0 + 10,
    );
    chief.sync();
    citizen.sync(&citizen.transport).unwrap();
    assert_eq!(
        citizen.store.citizen_reports().unwrap()[0]
            .status
            .as_deref(),
        Some("accepted")
    );
    chief.act(
        &id,
        EventKind::ResolvedInGrid {
            note: "已联系保洁清运".into(),
        },
        T0 + 20,
    );
    chief.sync();
    citizen.sync(&citizen.transport).unwrap();
    let mine = citizen.store.citizen_reports().unwrap().remove(0);
    assert_ne!(mine.status.as_deref(), Some("accepted"));
    assert_eq!(mine.closing_note.as_deref(), Some("已联系保洁清运"));
    assert!(mine.status_label.is_some());

    // The same submission again (a retry after a lost answer) creates nothing new.
    let docs_before = server.state.store().doc_count().unwrap();
    let again = CitizenReport {
        protocol: wire::PROTOCOL_VERSION,
        id: id.clone(),
        category: "sanitation".into(),
        text: "小区门口垃圾堆积三天无人清理".into(),
        location,
        photos: vec![photo.hash.clone()],
        reported_at_ms: T0,
    };
    let receipt: CitizenReceipt = wire::decode(
        &citizen
            .transport
            .post("/v1/citizen/reports", &wire::encode(&again))
            .unwrap(),
        1 << 16,
    )
    .unwrap();
    assert!(!receipt.created);
    assert_eq!(receipt.grid_id, grid);
    assert_eq!(server.state.store().doc_count().unwrap(), docs_before);
    // Another citizen cannot claim that id.
    let other = register(&server, None, None);
    assert!(matches!(
        other
            .transport
            .post("/v1/citizen/reports", &wire::encode(&again)),
        Err(TransportError::Status { status: 409, .. })
    ));
    // …nor see the first citizen's report or photo.
    let theirs: MyReports = wire::decode(
        &other.transport.get("/v1/citizen/reports").unwrap(),
        1 << 20,
    )
    .unwrap();
    assert!(theirs.reports.is_empty());
    assert!(matches!(
        other.transport.get(&format!("/v1/photos/{}", photo.hash)),
        Err(TransportError::Status { status: 404, .. })
    ));
}

#[test]
fn citizens_never_sync_documents_and_bad_reports_are_refused_with_reasons() {
    let server = TestServer::start();
    let citizen = register(&server, None, None);
    // No raw CRDT history, either way.
    let sync = citizen.store.sync(&citizen.transport, &options(), &());
    assert!(
        matches!(sync, Err(gridlink_core::Error::Server { status: 403, .. })),
        "{sync:?}"
    );
    // Outside the district: refused, kept with the reason.
    let id = citizen.report(
        "路灯不亮",
        Location {
            point: LatLon::new(39.9042, 116.4074),
            accuracy_m: 5.0,
        },
        12,
    );
    let report = citizen.sync(&citizen.transport).unwrap();
    assert_eq!(report.refused, 1);
    let kept = citizen.store.citizen_reports().unwrap().remove(0);
    assert_eq!(kept.id, id);
    assert_eq!(kept.state, CitizenReportState::Refused);
    assert!(kept.error.unwrap().contains("不在本区"));
    // Its photo has no case to go to: set aside, not retried forever.
    let photo = citizen.store.photos_of_case(&id).unwrap().remove(0);
    assert_eq!(photo.state, PhotoState::Quarantined);
    // Invalid content straight to the endpoint.
    let (location, _) = place();
    let base = CitizenReport {
        protocol: wire::PROTOCOL_VERSION,
        id: uuid::Uuid::new_v4().to_string(),
        category: "sanitation".into(),
        text: "一行字".into(),
        location,
        photos: vec!["a".repeat(64)],
        reported_at_ms: T0,
    };
    for bad in [
        CitizenReport {
            id: "not-a-uuid".into(),
            ..base.clone()
        },
        CitizenReport {
            category: "ufo".into(),
            ..base.clone()
        },
        CitizenReport {
            text: "两行\n文字".into(),
            ..base.clone()
        },
        CitizenReport {
            text: "长".repeat(101),
            ..base.clone()
        },
        CitizenReport {
            text: "路灯不亮\u{ffff}".into(),
            ..base.clone()
        },
        CitizenReport {
            text: "\u{fffe}".into(),
            ..base.clone()
        },
        CitizenReport {
            photos: vec![],
            ..base.clone()
        },
        CitizenReport {
            photos: vec!["a".repeat(64); 10],
            ..base.clone()
        },
        CitizenReport {
            photos: vec!["../../etc/passwd".into()],
            ..base.clone()
        },
    ] {
        assert!(matches!(
            citizen
                .transport
                .post("/v1/citizen/reports", &wire::encode(&bad)),
            Err(TransportError::Status { status: 422, .. })
        ));
    }
    // Phone-side validation says the same before anything is stored.
    let no_photo = citizen.store.submit_citizen_report(
        NewCitizenReport {
            id: uuid::Uuid::new_v4().to_string(),
            category: Category::Other,
            text: "x".into(),
            location,
            photos: vec![],
        },
        moment(T0),
    );
    assert!(matches!(no_photo, Err(gridlink_core::Error::Invalid(_))));
    // Staff accounts do not use the citizen endpoints.
    let inspector = server.phone("insp-0001");
    assert!(matches!(
        inspector
            .transport
            .post("/v1/citizen/reports", &wire::encode(&base)),
        Err(TransportError::Status { status: 403, .. })
    ));
    // A bad phone number is refused at registration.
    assert!(matches!(
        register_citizen(
            &HttpTransport::new(&server.url).unwrap(),
            &uuid::Uuid::new_v4().to_string(),
            "x",
            None,
            Some("12345"),
        ),
        Err(gridlink_core::Error::Server { status: 400, .. })
    ));
}

#[test]
fn registrations_and_requests_are_rate_limited_per_address_device_and_phone() {
    let server = TestServer::start_with(
        gridlink_server::ServerConfig {
            rate_limits: RateLimits {
                register_per_address: Rate {
                    per_minute: 1,
                    burst: 3,
                },
                per_device: Rate {
                    per_minute: 1,
                    burst: 5,
                },
                ..RateLimits::default()
            },
            max_registrations_per_phone: 2,
            ..test_config()
        },
        0,
    );
    let http = HttpTransport::new(&server.url).unwrap();
    let attempt = |phone: Option<&str>| {
        register_citizen(&http, &uuid::Uuid::new_v4().to_string(), "x", None, phone)
    };
    let first = attempt(Some("13900000000")).unwrap();
    attempt(Some("13900000000")).unwrap();
    // A third account on the same number: refused whatever the address.
    assert!(matches!(
        attempt(Some("13900000000")),
        Err(gridlink_core::Error::Server { status: 409, .. })
    ));
    // The address has used its registrations.
    assert!(matches!(
        attempt(None),
        Err(gridlink_core::Error::Server { status: 429, ref code, .. }) if code == "rate_limited"
    ));
    // A device gets its burst, then waits.
    let device = HttpTransport::new(&server.url)
        .unwrap()
        .with_token(&first.token);
    let outcomes: Vec<_> = (0..8).map(|_| device.get("/v1/citizen/reports")).collect();
    assert!(outcomes[..5].iter().all(Result::is_ok));
    assert!(
        outcomes[5..]
            .iter()
            .all(|r| matches!(r, Err(TransportError::Status { status: 429, .. })))
    );
    // The raw answer carries Retry-After.
    let raw = reqwest::blocking::Client::new()
        .get(format!("{}/v1/citizen/reports", server.url))
        .bearer_auth(&first.token)
        .send()
        .unwrap();
    assert_eq!(raw.status().as_u16(), 429);
    assert!(raw.headers().get("retry-after").is_some());
    assert!(server.state.metrics().rate_limited.get() >= 4);
}
