//! Bad input at the HTTP level: every one gets a status and a JSON `{code, message}`, the
//! server stays up, and nothing stored changes.

use crate::common::*;
use gridlink_core::sync::wire::{
    self, EnrollRequest, ErrorBody, PushDoc, RejectCode, SyncRequest, SyncResponse,
};
use gridlink_server::ServerConfig;

fn post(server: &TestServer, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.post(format!("{}{path}", server.url)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    (
        response.status().as_u16(),
        response.bytes().unwrap().to_vec(),
    )
}

fn error(server: &TestServer, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let (status, bytes) = post(server, path, token, body);
    let body: ErrorBody = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    assert!(!body.message.is_empty());
    (status, body.code)
}

fn request(protocol: u32, push: Vec<PushDoc>) -> Vec<u8> {
    wire::encode(&SyncRequest {
        protocol,
        request_id: "r".into(),
        push,
        cursor: Default::default(),
        max_pull_bytes: 1 << 20,
        history: None,
    })
}

#[test]
fn bad_requests_get_typed_errors_and_change_nothing() {
    let server = TestServer::start_with(
        ServerConfig {
            max_body_bytes: 256 << 10,
            ..crate::common::test_config()
        },
        20,
    );
    let phone = server.phone("insp-0001");
    let token = phone.enrollment.token.clone();
    let docs = server.state.store().doc_count().unwrap();
    let audit = server.state.store().audit_log(1000).unwrap().len();

    assert_eq!(
        error(&server, "/v1/sync", None, request(1, vec![])),
        (401, "unauthorized".into())
    );
    assert_eq!(
        error(&server, "/v1/sync", Some("forged"), request(1, vec![])),
        (401, "unauthorized".into())
    );
    assert_eq!(
        error(
            &server,
            "/v1/sync",
            Some(&token),
            b"not a sync body".to_vec()
        ),
        (400, "bad_request".into())
    );
    assert_eq!(
        error(&server, "/v1/sync", Some(&token), wire::encode(&"a string")),
        (400, "bad_request".into())
    );
    assert_eq!(
        error(&server, "/v1/sync", Some(&token), request(99, vec![])),
        (400, "unsupported_protocol".into())
    );
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_eq!(
        error(&server, "/v1/sync", Some(&token), noise),
        (413, "too_large".into())
    );
    // Small on the wire, enormous inflated.
    let bomb = {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; wire::MAX_MESSAGE_BYTES + 1])
            .unwrap();
        z.finish().unwrap()
    };
    assert!(bomb.len() < 256 << 10);
    assert_eq!(
        error(&server, "/v1/sync", Some(&token), bomb),
        (413, "too_large".into())
    );
    assert_eq!(
        error(&server, "/nowhere", None, vec![]),
        (404, "not_found".into())
    );
    assert_eq!(server.state.store().doc_count().unwrap(), docs);
    assert_eq!(server.state.store().audit_log(1000).unwrap().len(), audit);

    // Corrupt Automerge bytes refuse that document only.
    let good = phone.report(GRID, "正常的案件", T0);
    let batch = phone.store.prepare_push(1 << 20).unwrap();
    let mut push = batch.docs.clone();
    let mut garbled = push[0].changes.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 0xff;
    push.insert(
        0,
        PushDoc {
            doc_id: uuid::Uuid::new_v4().to_string(),
            changes: garbled,
        },
    );
    push.insert(
        0,
        PushDoc {
            doc_id: uuid::Uuid::new_v4().to_string(),
            changes: b"\x85\x6f\x4a\x83 garbage".to_vec(),
        },
    );
    let (status, bytes) = post(&server, "/v1/sync", Some(&token), request(1, push));
    assert_eq!(status, 200);
    let response: SyncResponse = wire::decode(&bytes, 1 << 26).unwrap();
    assert_eq!(response.rejections.len(), 2);
    assert!(
        response
            .rejections
            .iter()
            .all(|r| r.code == RejectCode::Corrupt),
        "{:?}",
        response.rejections
    );
    assert_eq!(response.acks.len(), 1);
    assert_eq!(response.acks[0].doc_id, good);
    assert_eq!(server.state.store().doc_count().unwrap(), docs + 1);

    let health = reqwest::blocking::get(format!("{}/healthz", server.url)).unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn enrollment_codes_are_single_use() {
    let server = TestServer::start();
    let code = server.code_for("insp-0001");
    let enroll = |code: &str, device: &str| {
        wire::encode(&EnrollRequest {
            protocol: 1,
            code: code.into(),
            device_id: device.into(),
            device_name: "测试".into(),
        })
    };
    let device = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        error(&server, "/v1/enroll", None, enroll(&code, "not-a-uuid")),
        (400, "bad_request".into())
    );
    // Typed loosely (lower case, spaces) it is the same code.
    let loose = code.to_lowercase().replace('-', " ");
    let (status, _) = post(&server, "/v1/enroll", None, enroll(&loose, &device));
    assert_eq!(status, 200);
    assert_eq!(
        error(&server, "/v1/enroll", None, enroll(&code, &device)),
        (403, "forbidden".into())
    );
    assert_eq!(
        error(
            &server,
            "/v1/enroll",
            None,
            enroll("AAAA-BBBB-CCCC", &device)
        ),
        (403, "forbidden".into())
    );
    let expired =
        gridlink_server::demo::enroll_code(&server.state, "insp-0001", -1, "test").unwrap();
    assert_eq!(
        error(&server, "/v1/enroll", None, enroll(&expired, &device)),
        (403, "forbidden".into())
    );
}

#[test]
fn health_and_metrics_are_served() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    phone.report(GRID, "指标", T0);
    phone.sync();
    let health: serde_json::Value = serde_json::from_str(
        &reqwest::blocking::get(format!("{}/healthz", server.url))
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["documents"], 1);
    let text = reqwest::blocking::get(format!("{}/metrics", server.url))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("gridlink_sync_requests_total{outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("gridlink_docs_merged_total 1"), "{text}");
    assert!(text.contains("gridlink_sync_seconds_bucket"), "{text}");
}

#[test]
fn the_grid_map_is_served_to_enrolled_devices_only() {
    let server = TestServer::start();
    let get = |token: Option<&str>| {
        let mut request = reqwest::blocking::Client::new().get(format!("{}/v1/grids", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(get(None).0, 401);
    assert_eq!(get(Some("not-a-token")).0, 401);
    let phone = server.phone("insp-0001");
    let (status, text) = get(Some(&phone.enrollment.token));
    assert_eq!(status, 200);
    let index = gridlink_core::geo::GridIndex::from_geojson(&text).unwrap();
    assert_eq!(index.len(), 1059);
    assert!(index.get(GRID).is_some());
}

#[test]
fn open311_discovery_and_services_answer_in_xml_and_json_with_the_specs_errors() {
    let server = TestServer::start();
    let get = |path: &str| {
        let response = reqwest::blocking::get(format!("{}/open311/v2/{path}", server.url)).unwrap();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (
            response.status().as_u16(),
            content_type,
            response.text().unwrap(),
        )
    };
    let (status, content_type, body) = get("discovery.json");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let discovery: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        discovery["endpoints"][0]["url"],
        format!("http://{}/open311/v2", server.addr)
    );
    let (status, content_type, body) = get("discovery.xml");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/xml; charset=utf-8")
    );
    assert!(body.contains("<specification>http://wiki.open311.org/GeoReport_v2</specification>"));

    let services: serde_json::Value = serde_json::from_str(&get("services.json").2).unwrap();
    let codes: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.contains(&"fire_hazard"));
    let xml = get("services.xml").2;
    assert_eq!(xml.matches("<service>").count(), 10);
    assert!(xml.contains("<service_name>消防隐患 / Fire hazard</service_name>"));

    let definition: serde_json::Value =
        serde_json::from_str(&get("services/fire_hazard.json").2).unwrap();
    assert_eq!(definition["service_code"], "fire_hazard");
    assert_eq!(definition["attributes"], serde_json::json!([]));

    // Errors: the spec's shape in the asked format; an unknown extension is answered in XML.
    let (status, _, body) = get("services/no_such_service.json");
    assert_eq!(status, 404);
    let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors[0]["code"], 404);
    assert!(
        errors[0]["description"]
            .as_str()
            .unwrap()
            .contains("no service")
    );
    let (status, content_type, body) = get("services.html");
    assert_eq!(
        (status, content_type.as_str()),
        (400, "text/xml; charset=utf-8")
    );
    assert!(body.contains("<errors><error><code>400</code><description>"));
    assert_eq!(get("nothing_here.xml").0, 404);
}
