//! Open311 `requests`: an API key is needed, a town's key sees only its town, the filters and
//! date rules of GeoReport v2 hold, and single requests come as one-element lists.

use crate::common::*;
use crate::records::inspector_of;
use gridlink_server::open311::issue_key;

/// T0 is 2026-05-28 (UTC+8); the range holds every case of the test.
const RANGE: &str = "start_date=2026-05-20T00:00:00%2B08:00&end_date=2026-06-10T00:00:00%2B08:00";

fn get(server: &TestServer, path: &str) -> (u16, String) {
    let response = reqwest::blocking::get(format!("{}/open311/v2/{path}", server.url)).unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn json(server: &TestServer, path: &str) -> serde_json::Value {
    let (status, body) = get(server, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn town_of(server: &TestServer, grid: &str) -> String {
    let grids = server.state.store().grids().unwrap();
    grids
        .into_iter()
        .find(|g| g.grid_id == grid)
        .unwrap()
        .town_id
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service_request_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn open311_requests_need_a_key_and_a_town_key_sees_only_its_town() {
    let server = TestServer::start();
    let near = server.phone("insp-0001");
    let a = near.report(GRID, "河道漂浮垃圾", T0);
    let b = near.report(GRID, "垃圾桶满溢", T0 + 60_000);
    near.sync();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let far = server.phone(&inspector_of(&district, OTHER_TOWN_GRID));
    let c = far.report(OTHER_TOWN_GRID, "占道经营", T0 + 120_000);
    far.sync();
    let town = town_of(&server, GRID);
    let hotline = issue_key(&server.state, "12345 市民热线", "district", "test").unwrap();
    let town_app = issue_key(&server.state, "镇平台", &format!("town:{town}"), "test").unwrap();
    assert!(issue_key(&server.state, "x", "grid:1", "test").is_err());

    // No key, or a wrong one: 403 in the spec's shape.
    for path in [
        format!("requests.json?{RANGE}"),
        format!("requests.json?{RANGE}&api_key=not-a-key"),
    ] {
        let (status, body) = get(&server, &path);
        assert_eq!(status, 403);
        let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(errors[0]["code"], 403);
    }

    // The district's key sees all three, newest first, with the spec's fields.
    let all = json(&server, &format!("requests.json?{RANGE}&api_key={hotline}"));
    let mut expected = vec![a.clone(), b.clone(), c.clone()];
    expected.sort();
    assert_eq!(ids(&all), expected);
    assert_eq!(all[0]["service_request_id"], c);
    let first = &all[2];
    assert_eq!(first["status"], "open");
    assert_eq!(first["service_code"], "sanitation");
    assert_eq!(first["description"], "河道漂浮垃圾");
    assert_eq!(first["lat"], "31.16");
    assert_eq!(first["requested_datetime"], "2026-05-29T04:26:40+08:00");

    // The town's key never sees the other town's case, in a list or alone.
    let mine = json(
        &server,
        &format!("requests.json?{RANGE}&api_key={town_app}"),
    );
    let mut near_ids = vec![a.clone(), b.clone()];
    near_ids.sort();
    assert_eq!(ids(&mine), near_ids);
    assert_eq!(
        get(&server, &format!("requests/{c}.json?api_key={town_app}")).0,
        404
    );
    let by_ids = json(
        &server,
        &format!("requests.json?service_request_id={a},{c}&api_key={town_app}"),
    );
    assert_eq!(ids(&by_ids), vec![a.clone()]);

    // One request is a one-element list, in XML too.
    let one = json(&server, &format!("requests/{a}.json?api_key={town_app}"));
    assert_eq!(one.as_array().unwrap().len(), 1);
    let (status, xml) = get(&server, &format!("requests/{a}.xml?api_key={town_app}"));
    assert_eq!(status, 200);
    assert_eq!(xml.matches("<request>").count(), 1);
    assert!(xml.contains(&format!("<service_request_id>{a}</service_request_id>")));

    // Filters.
    let closed = json(
        &server,
        &format!("requests.json?{RANGE}&status=closed&api_key={hotline}"),
    );
    assert_eq!(closed.as_array().unwrap().len(), 0);
    let open = json(
        &server,
        &format!("requests.json?{RANGE}&status=open&service_code=sanitation&api_key={hotline}"),
    );
    assert_eq!(open.as_array().unwrap().len(), 3);
    let none = json(
        &server,
        &format!("requests.json?{RANGE}&service_code=fire_hazard&api_key={hotline}"),
    );
    assert_eq!(none.as_array().unwrap().len(), 0);
    // Paging beyond the spec: two per page, newest first.
    let page = |n: u32| {
        ids(&json(
            &server,
            &format!("requests.json?{RANGE}&page_size=2&page={n}&api_key={hotline}"),
        ))
    };
    let (first_page, second_page) = (page(1), page(2));
    assert_eq!(first_page.len(), 2);
    assert_eq!(second_page, vec![a.clone()]);
    // FixMyStreet-style extended states, when asked (and only then).
    assert!(all[0].get("extended_attributes").is_none());
    let extended = json(
        &server,
        &format!("requests.json?{RANGE}&extensions=true&api_key={hotline}"),
    );
    let attributes = &extended[0]["extended_attributes"];
    assert_eq!(attributes["fms_extended_status"], "open");
    assert_eq!(attributes["status_code"], "reported");
    assert_eq!(attributes["level"], "grid");
    assert_eq!(attributes["grid_id"], OTHER_TOWN_GRID);
    let (_, xml) = get(
        &server,
        &format!("requests/{a}.xml?extensions=true&api_key={hotline}"),
    );
    assert!(xml.contains("<extended_attributes><fms_extended_status>open</fms_extended_status>"));

    // Bad input: 400 with the reason, nothing else changes.
    for bad in [
        format!("requests.json?{RANGE}&service_code=no_such&api_key={hotline}"),
        format!("requests.json?{RANGE}&status=pending&api_key={hotline}"),
        format!("requests.json?{RANGE}&extensions=yes&api_key={hotline}"),
        format!("requests.json?{RANGE}&page_size=0&api_key={hotline}"),
        format!("requests.json?{RANGE}&page_size=1001&api_key={hotline}"),
        format!("requests.json?{RANGE}&page=x&api_key={hotline}"),
        format!("requests.json?start_date=yesterday&api_key={hotline}"),
        format!(
            "requests.json?start_date=2026-06-10T00:00:00%2B08:00&end_date=2026-05-20T00:00:00%2B08:00&api_key={hotline}"
        ),
        format!(
            "requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-10T00:00:00Z&api_key={hotline}"
        ),
    ] {
        let (status, body) = get(&server, &bad);
        assert_eq!(status, 400, "{bad}: {body}");
        let errors: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(errors[0]["code"], 400);
    }
    assert_eq!(
        get(&server, &format!("requests.csv?api_key={hotline}")).0,
        400
    );
}

fn post(server: &TestServer, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/open311/v2/{path}", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn an_open311_post_becomes_a_case_the_grids_inspector_receives() {
    let server = TestServer::start();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let spot = district
        .addresses
        .iter()
        .find(|a| a.grid_id == GRID)
        .unwrap();
    let far_spot = district
        .addresses
        .iter()
        .find(|a| a.grid_id.starts_with("320509002"))
        .unwrap();
    let (lat, lon) = (spot.lat.to_string(), spot.lon.to_string());
    let hotline = issue_key(&server.state, "12345 市民热线", "district", "test").unwrap();
    let town = town_of(&server, GRID);
    let town_app = issue_key(&server.state, "镇平台", &format!("town:{town}"), "test").unwrap();

    let (status, body) = post(
        &server,
        "requests.json",
        &[
            ("api_key", &hotline),
            ("service_code", "sanitation"),
            ("lat", &lat),
            ("long", &lon),
            ("description", "小区门口垃圾堆放三天无人清运\n热线来电转办"),
        ],
    );
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The grid's inspector receives it at the next sync, as an Open311 case in the grid.
    let inspector = server.phone("insp-0001");
    inspector.sync();
    let case = inspector.store.case(&id).unwrap();
    assert_eq!(case.details.grid_id, GRID);
    assert_eq!(case.details.source, gridlink_core::case::Source::Open311);
    assert_eq!(case.details.title, "小区门口垃圾堆放三天无人清运");
    // And the hotline reads it back in XML.
    let (status, xml) = get(&server, &format!("requests/{id}.xml?api_key={hotline}"));
    assert_eq!(status, 200);
    assert!(xml.contains("<status>open</status>"), "{xml}");

    // Refused, with nothing created: no key, an unknown service, no location, outside the
    // district, too long, and a town's key writing in another town.
    let long = "长".repeat(4001);
    let far = (far_spot.lat.to_string(), far_spot.lon.to_string());
    let mut cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (
            vec![
                ("service_code", "sanitation"),
                ("lat", &lat),
                ("long", &lon),
            ],
            403,
        ),
        (
            vec![("api_key", &hotline), ("lat", &lat), ("long", &lon)],
            400,
        ),
        (
            vec![
                ("api_key", &hotline),
                ("service_code", "nope"),
                ("lat", &lat),
                ("long", &lon),
            ],
            404,
        ),
        (
            vec![("api_key", &hotline), ("service_code", "sanitation")],
            400,
        ),
        (
            vec![
                ("api_key", &hotline),
                ("service_code", "sanitation"),
                ("lat", "0"),
                ("long", "0"),
            ],
            400,
        ),
        (
            vec![
                ("api_key", &hotline),
                ("service_code", "sanitation"),
                ("lat", &lat),
                ("long", &lon),
                ("description", &long),
            ],
            400,
        ),
        (
            vec![
                ("api_key", &town_app),
                ("service_code", "sanitation"),
                ("lat", &far.0),
                ("long", &far.1),
            ],
            403,
        ),
    ];
    // Characters XML cannot carry, in the description or any other field (issue 15 item 2).
    for unfit in [
        ("description", "井盖缺失\u{ffff}"),
        ("address_string", "\u{fffe}吴江路 1 号"),
        ("description", "响铃\u{7}"),
    ] {
        let form = vec![
            ("api_key", hotline.as_str()),
            ("service_code", "sanitation"),
            ("lat", &lat),
            ("long", &lon),
            unfit,
        ];
        cases.push((form, 400));
    }
    let before = server.state.store().doc_count().unwrap();
    for (form, expected) in cases {
        let (status, body) = post(&server, "requests.xml", &form);
        assert_eq!(status, expected, "{form:?}: {body}");
        assert!(body.contains("<errors><error><code>"), "{body}");
    }
    assert_eq!(server.state.store().doc_count().unwrap(), before);
    let (status, xml) = get(&server, &format!("requests.xml?api_key={hotline}"));
    assert_eq!(status, 200);
    assert!(
        !xml.chars().any(gridlink_core::text::is_unfit),
        "requests.xml carries a character XML cannot hold"
    );
    // No token is ever pending: requests are answered with their id.
    assert_eq!(get(&server, "tokens/abc.json").0, 404);
}

/// The start of a 6000×6000 PNG: signature and header, no pixels. Decoding it would need
/// about 108 MB; the server refuses it from the header alone.
fn huge_png_header() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(&body);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc.sum().to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend_from_slice(&6000u32.to_be_bytes());
    header.extend_from_slice(&6000u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    png
}

/// A media server on 127.0.0.1 for `media_url`: answers exactly `requests` requests, then stops.
fn media_server(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let photo = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/photos/orientation-6.jpg"),
    )
    .unwrap();
    let handle = std::thread::spawn(move || {
        let mut paths = Vec::new();
        for _ in 0..requests {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (head, body): (&str, Vec<u8>) = match path.as_str() {
                "/photo.jpg" => ("200 OK\r\nContent-Type: image/jpeg", photo.clone()),
                "/text" => (
                    "200 OK\r\nContent-Type: text/plain",
                    b"not a photo".to_vec(),
                ),
                "/moved" => ("302 Found\r\nLocation: /photo.jpg", Vec::new()),
                "/huge.png" => ("200 OK\r\nContent-Type: image/png", huge_png_header()),
                _ => ("404 Not Found", Vec::new()),
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(&body);
            paths.push(path);
        }
        paths
    });
    (host, handle)
}

#[test]
fn a_media_url_photo_comes_with_the_case_only_from_a_listed_host() {
    let server = TestServer::start();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let spot = district
        .addresses
        .iter()
        .find(|a| a.grid_id == GRID)
        .unwrap();
    let (lat, lon) = (spot.lat.to_string(), spot.lon.to_string());
    let hotline = issue_key(&server.state, "12345 市民热线", "district", "test").unwrap();
    let (host, media) = media_server(5);
    let request = |media_url: &str| {
        post(
            &server,
            "requests.json",
            &[
                ("api_key", &hotline),
                ("service_code", "sanitation"),
                ("lat", &lat),
                ("long", &lon),
                ("description", "井盖破损"),
                ("media_url", media_url),
            ],
        )
    };
    let docs = || server.state.store().doc_count().unwrap();
    let before = docs();

    // No host is listed yet: refused, nothing fetched, nothing created.
    let (status, body) = request(&format!("http://{host}/photo.jpg"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not accepted"), "{body}");
    gridlink_server::media::set_allowed_hosts(&server.state, std::slice::from_ref(&host)).unwrap();
    // Other hosts, schemes and ports stay refused.
    for url in [
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "file:///etc/passwd".to_owned(),
        "http://127.0.0.1:1/photo.jpg".to_owned(),
    ] {
        assert_eq!(request(&url).0, 400, "{url}");
    }
    // A listed host that answers 404, a redirect (not followed) or no photo: refused whole.
    for path in ["/missing", "/moved", "/text"] {
        let (status, body) = request(&format!("http://{host}{path}"));
        assert_eq!(status, 400, "{path}: {body}");
    }
    // A photo larger than a server decodes from elsewhere (36 MP, where a phone's camera may
    // give 64 MP): refused by its size, read from the header, not as a broken file.
    let (status, body) = request(&format!("http://{host}/huge.png"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("6000×6000"), "{body}");
    assert_eq!(docs(), before, "no case was created by a refused request");

    // The photo: processed like a phone's, stored with its thumbnail, named by the case.
    let (status, body) = request(&format!("http://{host}/photo.jpg"));
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let case = server.doc(&id).unwrap().case().unwrap();
    assert_eq!(case.state.photos.len(), 1);
    let hash = &case.state.photos[0];
    let stored = server.state.blobs().read(hash).unwrap().unwrap();
    assert!(stored.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(server.state.store().thumbnail_of(hash).unwrap().is_some());
    // The redirect was not followed: the media server saw exactly these paths.
    assert_eq!(
        media.join().unwrap(),
        vec!["/missing", "/moved", "/text", "/huge.png", "/photo.jpg"]
    );
    // The grid's inspector receives the case with the photo, and may fetch it.
    let inspector = server.phone("insp-0001");
    inspector.sync();
    assert_eq!(
        inspector.store.case(&id).unwrap().state.photos,
        vec![hash.clone()]
    );
}
