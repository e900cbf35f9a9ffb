//! The main job, as a person runs it: the `gridlink-server demo` binary as a child process on
//! 127.0.0.1, a phone enrolled with a code it printed, a sync, the command centre signed in
//! to with the operator login it printed, and a clean stop on SIGTERM.

use crate::common::{GRID, Phone, T0, TempDir};
use gridlink_core::sync::{HttpTransport, enroll};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_demo_serves_the_fixture_district_to_an_enrolled_phone_and_stops_cleanly() {
    let data = TempDir::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gridlink-server"))
        .args(["demo", "--addr", "127.0.0.1:0", "--cases", "120", "--data"])
        .arg(data.path())
        .env("GRIDLINK_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut code, mut mediator_code, mut url) = (None, None, None);
    let mut web_login: Option<(String, String)> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while url.is_none() && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"insp-0001") {
            code = words.last().map(|c| c.to_string());
        }
        if words.first() == Some(&"med-0001") {
            mediator_code = words.last().map(|c| c.to_string());
        }
        if let ["web", user, "district", password] = words.as_slice() {
            web_login = Some((user.to_string(), password.to_string()));
        }
        if let Some(at) = line.find("http://") {
            url = line[at..].split_whitespace().next().map(str::to_owned);
        }
    }
    let (code, url) = (
        code.expect("no enrollment code printed"),
        url.expect("no URL printed"),
    );

    let device = uuid::Uuid::new_v4().to_string();
    let enrollment = enroll(
        &HttpTransport::new(&url).unwrap(),
        &code,
        &device,
        "演示手机",
    )
    .unwrap();
    assert_eq!(enrollment.user_id, "insp-0001");
    let phone = Phone::open(&url, device, enrollment);
    let first = phone.sync();
    let held = phone.store.document_ids().unwrap();
    assert!(
        !held.is_empty(),
        "the demo history has cases in insp-0001's grid: {first:?}"
    );
    // Base data, checklists and patrols came with it.
    assert_eq!(phone.store.templates().unwrap().len(), 7);
    let patrols = phone
        .store
        .patrol_list(GRID, 30, gridlink_server::now_ms())
        .unwrap();
    assert!(!patrols.is_empty());
    phone.report(GRID, "演示：上报一个新案件", T0);
    let second = phone.sync();
    assert_eq!(second.docs_accepted, 1);
    // The village's mediator holds its mediation file.
    let device = uuid::Uuid::new_v4().to_string();
    let enrollment = enroll(
        &HttpTransport::new(&url).unwrap(),
        &mediator_code.expect("no mediator code printed"),
        &device,
        "调解员手机",
    )
    .unwrap();
    let mediator = Phone::open(&url, device, enrollment);
    mediator.sync();
    assert!(!mediator.store.mediation_files().unwrap().is_empty());

    // The command centre: the printed operator signs in and sees the demo district's cases.
    let (user, password) = web_login.expect("no command-centre sign-in printed");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http.get(format!("{url}/web/login")).send().unwrap();
    let cookie = |r: &reqwest::blocking::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .unwrap()
    };
    let login_cookie = cookie(&login, "gridlink_login");
    let html = login.text().unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap();
    let csrf = csrf.split('"').next().unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("csrf", csrf), ("user", &user), ("password", &password)])
        .finish();
    let signed_in = http
        .post(format!("{url}/web/login"))
        .header("cookie", format!("gridlink_login={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let session = cookie(&signed_in, gridlink_server::web::SESSION_COOKIE);
    let list = http
        .get(format!("{url}/web/cases?grid={GRID}"))
        .header(
            "cookie",
            format!("{}={session}", gridlink_server::web::SESSION_COOKIE),
        )
        .send()
        .unwrap();
    assert_eq!(list.status(), 200);
    let list = list.text().unwrap();
    assert!(
        list.contains("演示：上报一个新案件"),
        "the case just synced is listed"
    );
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let grid_name = &district.grids.iter().find(|g| g.id == GRID).unwrap().name;
    assert!(
        list.contains(grid_name.as_str()),
        "with the district's names"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
