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
    let town = server
        .state
        .store()
        .grids()
        .unwrap()
        .into_iter()
        .find(|g| g.grid_id == GRID)
        .unwrap()
        .town_id;
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

    // Bad input: 400 with the reason, nothing else changes.
    for bad in [
        format!("requests.json?{RANGE}&service_code=no_such&api_key={hotline}"),
        format!("requests.json?{RANGE}&status=pending&api_key={hotline}"),
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
