//! The command centre's pages over HTTP, as a browser without JavaScript uses them: sign-in
//! (CSRF, rate limit, no user enumeration, expiry, sign-out), the list and its filters, the
//! case page and an action taken from it, statistics, exports, and the rule that a town's
//! operator never sees another town's cases in any page or export.

use crate::common::*;
use crate::records::inspector_of;
use gridlink_server::store::WebSession;
use gridlink_server::web;
use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const PASSWORD: &str = "correct horse battery";

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The value of a hidden field `name` in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A signed-in browser: the session cookie, and the CSRF token of its pages.
struct Browser {
    base: String,
    cookie: String,
    csrf: String,
}

/// Posts the sign-in form as a browser would (the login page's cookie and token).
fn try_sign_in(server: &TestServer, user: &str, password: &str) -> Response {
    let http = client();
    let page = http
        .get(format!("{}/web/login", server.url))
        .send()
        .unwrap();
    let token = set_cookie(&page, "gridlink_login").unwrap();
    let html = page.text().unwrap();
    let csrf = field(&html, "csrf");
    http.post(format!("{}/web/login", server.url))
        .header(COOKIE, format!("gridlink_login={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", &csrf),
            ("next", "/web/cases"),
            ("user", user),
            ("password", password),
        ]))
        .send()
        .unwrap()
}

/// Simultaneous wrong passwords cannot outrun the lockout (issue 15 item 4): each attempt is
/// counted before its password is checked, so of forty sent at once exactly the allowed number
/// are checked and answered 401, the rest 429; the operator then signs in from elsewhere.
#[test]
fn simultaneous_wrong_passwords_are_counted_before_they_are_checked() {
    let server = TestServer::start();
    operator(&server, "op-03", None);
    // Every form fetched first, so the posts themselves race.
    let forms: Vec<(String, String)> = (0..40)
        .map(|_| {
            let page = client()
                .get(format!("{}/web/login", server.url))
                .send()
                .unwrap();
            let token = set_cookie(&page, "gridlink_login").unwrap();
            (token, field(&page.text().unwrap(), "csrf"))
        })
        .collect();
    let barrier = std::sync::Barrier::new(forms.len());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = forms
            .iter()
            .map(|(token, csrf)| {
                let (barrier, url) = (&barrier, &server.url);
                s.spawn(move || {
                    let http = client();
                    barrier.wait();
                    http.post(format!("{url}/web/login"))
                        .header(COOKIE, format!("gridlink_login={token}"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(encode(&[
                            ("csrf", csrf),
                            ("user", "op-03"),
                            ("password", "a wrong guess"),
                        ]))
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count = |code| statuses.iter().filter(|&&s| s == code).count();
    assert_eq!(count(401), web::MAX_FAILURES as usize, "{statuses:?}");
    assert_eq!(count(429), 40 - web::MAX_FAILURES as usize, "{statuses:?}");
    // Locked from here, the right password too.
    assert_eq!(try_sign_in(&server, "op-03", PASSWORD).status(), 429);
}

fn sign_in(server: &TestServer, user: &str) -> Browser {
    let response = try_sign_in(server, user, PASSWORD);
    assert_eq!(response.status(), 303, "sign-in of {user}");
    assert_eq!(response.headers()[LOCATION], "/web/cases");
    let cookie = set_cookie(&response, web::SESSION_COOKIE).unwrap();
    let mut browser = Browser {
        base: server.url.clone(),
        cookie,
        csrf: String::new(),
    };
    let (_, html) = browser.get("/web/cases");
    browser.csrf = field(&html, "csrf");
    browser
}

impl Browser {
    fn get_raw(&self, path: &str) -> Response {
        client()
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("{}={}", web::SESSION_COOKIE, self.cookie))
            .send()
            .unwrap()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self.get_raw(path);
        (r.status().as_u16(), r.text().unwrap())
    }

    fn post(&self, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
        let r = client()
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("{}={}", web::SESSION_COOKIE, self.cookie))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(pairs))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }
}

fn operator(server: &TestServer, id: &str, town: Option<&str>) {
    let store = server.state.store();
    if store.user(id).unwrap().is_none() {
        store
            .add_user(
                &gridlink_server::store::User {
                    id: id.into(),
                    name: "镇指挥分中心".into(),
                    role: gridlink_core::case::Role::Operator,
                },
                "test",
            )
            .unwrap();
        let scope = gridlink_core::sync::scope::ScopeKey::Town(town.unwrap().to_owned());
        store.grant(id, &scope, "test").unwrap();
    }
    web::set_password(&server.state, id, PASSWORD, "test").unwrap();
}

fn events_of(server: &TestServer, case: &str) -> usize {
    server.doc(case).unwrap().case().unwrap().history.len()
}

#[test]
fn sign_in_needs_the_form_token_refuses_alike_and_locks_after_repeated_failures() {
    let server = TestServer::start();
    operator(&server, "op-01", None);
    // Not signed in: to the sign-in page, coming back afterwards.
    let r = client()
        .get(format!("{}/web/cases?status=open", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()[LOCATION],
        "/web/login?next=%2Fweb%2Fcases%3Fstatus%3Dopen"
    );
    // A passwords that is too short, or a user who is not an operator, cannot be set.
    assert!(web::set_password(&server.state, "op-01", "short", "test").is_err());
    assert!(web::set_password(&server.state, "insp-0001", PASSWORD, "test").is_err());

    // A forged form (no matching login cookie) is refused and opens no session.
    let forged = client()
        .post(format!("{}/web/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(COOKIE, "gridlink_login=aaaa")
        .body(encode(&[
            ("csrf", "bbbb"),
            ("user", "op-01"),
            ("password", PASSWORD),
        ]))
        .send()
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, web::SESSION_COOKIE).is_none());

    // A wrong password and an unknown user get the same answer.
    let wrong = try_sign_in(&server, "op-01", "not the password");
    let unknown = try_sign_in(&server, "nobody-here", "not the password");
    let inspector = try_sign_in(&server, "insp-0001", PASSWORD);
    for r in [wrong, unknown, inspector] {
        assert_eq!(r.status(), 401);
        assert!(set_cookie(&r, web::SESSION_COOKIE).is_none());
        assert!(r.text().unwrap().contains("账号或密码不正确"));
    }
    // Four more wrong passwords for op-01 (five in all): now even the right one is refused.
    for _ in 0..web::MAX_FAILURES - 1 {
        assert_eq!(try_sign_in(&server, "op-01", "guess").status(), 401);
    }
    let locked = try_sign_in(&server, "op-01", PASSWORD);
    assert_eq!(locked.status(), 429);
    assert!(set_cookie(&locked, web::SESSION_COOKIE).is_none());
    // Another operator from the same address is not locked out by op-01's failures.
    operator(&server, "op-02", None);
    sign_in(&server, "op-02");

    // An expired session is no session.
    let token = "0".repeat(64);
    server
        .state
        .store()
        .add_web_session(&WebSession {
            token_hash: gridlink_server::identity::hash_secret(&token),
            user_id: "op-02".into(),
            csrf: "x".repeat(64),
            created_at: 0,
            expires_at: 1,
        })
        .unwrap();
    let stale = Browser {
        base: server.url.clone(),
        cookie: token,
        csrf: "x".repeat(64),
    };
    assert_eq!(stale.get_raw("/web/stats").status(), 303);
}

#[test]
fn an_operator_filters_opens_a_case_dispatches_it_and_sees_it_everywhere() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let case = phone.report(GRID, "河道漂浮垃圾需要清理", T0);
    let other = phone.report(GRID, "垃圾桶满溢", T0 + 60_000);
    phone.sync();
    operator(&server, "op-01", None);
    let op = sign_in(&server, "op-01");

    // The list and its filters.
    let (status, html) = op.get("/web/cases");
    assert_eq!(status, 200);
    assert!(html.contains(&case) && html.contains(&other));
    let (_, html) = op.get("/web/cases?status=reported&category=sanitation&town=320509001");
    assert!(html.contains(&case));
    let (_, html) = op.get("/web/cases?status=closed");
    assert!(!html.contains(&case));
    // Reported half a year ago and never accepted: past its time limit.
    let (_, html) = op.get("/web/cases?overdue=1");
    assert!(html.contains(&case) && html.contains("<tr class=\"overdue\">"));
    let (_, html) = op.get("/web/cases?overdue=1&level=department");
    assert!(!html.contains(&case));
    for (bad, zh, en) in [
        ("status=nonsense", "未知的状态", "/ unknown status "),
        ("category=x", "未知的类别", "/ unknown category "),
        ("level=y", "未知的层级", "/ unknown level "),
        ("source=z", "未知的来源", "/ unknown source "),
        ("page=0", "页码应为", "/ the page must be"),
    ] {
        let (status, html) = op.get(&format!("/web/cases?{bad}"));
        assert_eq!(status, 400, "{bad}");
        assert!(
            html.contains(zh) && html.contains(en),
            "zh-CN and English: {html}"
        );
    }
    // English on request.
    let english = client()
        .get(format!("{}/web/cases", server.url))
        .header(
            COOKIE,
            format!("{}={}; gridlink_lang=en", web::SESSION_COOKIE, op.cookie),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(english.contains("Cases") && english.contains("lang=\"en\""));

    // The case page: details, location, timeline, and the actions an operator may take.
    let (status, html) = op.get(&format!("/web/cases/{case}"));
    assert_eq!(status, 200);
    assert!(html.contains("河道漂浮垃圾需要清理"));
    assert!(html.contains("GCJ-02"));
    assert!(html.contains("data-kind=\"reported\""));
    assert!(html.contains("data-action=\"accept\""));
    assert!(
        !html.contains("data-action=\"dispatch\""),
        "accepted first, then dispatched"
    );
    assert!(
        !html.contains("data-action=\"verify\""),
        "nothing to verify yet"
    );
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[("csrf", &op.csrf), ("action", "accept"), ("due_days", "3")],
    );
    assert_eq!(status, 303);
    let (_, html) = op.get(&format!("/web/cases/{case}"));
    assert!(html.contains("data-action=\"dispatch\""));

    // A dispatch without the session's token changes nothing.
    let before = events_of(&server, &case);
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[("action", "dispatch"), ("unit", "dept-env"), ("note", "x")],
    );
    assert_eq!(status, 403);
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[
            ("csrf", &"f".repeat(64)),
            ("action", "dispatch"),
            ("unit", "dept-env"),
        ],
    );
    assert_eq!(status, 403);
    // Nor does an unknown unit or action.
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[
            ("csrf", &op.csrf),
            ("action", "dispatch"),
            ("unit", "dept-nowhere"),
        ],
    );
    assert_eq!(status, 400);
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[("csrf", &op.csrf), ("action", "teleport")],
    );
    assert_eq!(status, 400);
    assert_eq!(events_of(&server, &case), before);

    // The dispatch, with the token.
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[
            ("csrf", &op.csrf),
            ("action", "dispatch"),
            ("unit", "dept-env"),
            ("due_days", "5"),
            ("note", "请尽快清理"),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(events_of(&server, &case), before + 1);
    let row = server.state.store().case_row(&case).unwrap().unwrap();
    assert_eq!(row.status, "dispatched");
    assert_eq!(row.assignee.as_deref(), Some("dept:dept-env"));
    let (_, html) = op.get(&format!("/web/cases/{case}"));
    assert!(html.contains("data-kind=\"dispatched\""));
    assert!(html.contains("请尽快清理"));
    assert!(
        html.contains("web-op-01"),
        "the device is named in the timeline"
    );
    // The grid's inspector receives the event by sync.
    phone.sync();
    let held = phone.store.case(&case).unwrap();
    assert_eq!(held.state.status, gridlink_core::case::Status::Dispatched);
    // Dispatched once: dispatching again is no longer offered, and refused if sent.
    assert!(!html.contains("data-action=\"dispatch\""));
    let (status, _) = op.post(
        &format!("/web/cases/{case}/events"),
        &[
            ("csrf", &op.csrf),
            ("action", "dispatch"),
            ("unit", "dept-env"),
            ("note", "再派"),
        ],
    );
    assert_eq!(status, 409);

    // Statistics (the cases were reported half a year ago: the 365-day period): the
    // dispatched case is open at the department level.
    let (status, html) = op.get("/web/stats?days=365");
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-level="department"><td>职能部门</td><td class="num">1<"#));
    assert!(html.contains(r#"data-level="grid"><td>网格</td><td class="num">1<"#));
    assert!(html.contains("id=\"chart-per-day\"") && html.contains("id=\"chart-721\""));
    assert!(html.contains("id=\"stat-reported\"><span class=\"big\">2<"));
    assert_eq!(op.get("/web/stats?days=12").0, 400);
    let (status, html) = op.get("/web/map");
    assert_eq!(status, 200);
    assert!(html.contains("id=\"district-map\""));

    // Exports of the filtered list.
    let csv = op.get_raw("/web/cases/export/cases.csv?status=dispatched");
    assert_eq!(csv.status(), 200);
    let text = csv.text().unwrap();
    assert!(text.starts_with('\u{feff}'));
    assert!(text.contains(&case) && !text.contains(&other));
    let xlsx = op.get_raw("/web/cases/export/cases.xlsx").bytes().unwrap();
    assert_eq!(&xlsx[..2], b"PK");
    let geo: serde_json::Value =
        serde_json::from_str(&op.get("/web/cases/export/cases.geojson?crs=gcj02").1).unwrap();
    assert_eq!(geo["features"].as_array().unwrap().len(), 2);
    let point = &geo["features"][0]["geometry"]["coordinates"];
    assert!(
        point[0].as_f64().unwrap() > 120.64,
        "GCJ-02 lies east of WGS-84 here"
    );
    assert_eq!(op.get("/web/cases/export/cases.geojson?crs=bd09").0, 400);
    assert_eq!(op.get("/web/cases/export/cases.pdf").0, 404);

    // Signing out ends the session (with the token only).
    assert_eq!(op.post("/web/logout", &[("csrf", "wrong")]).0, 403);
    assert_eq!(op.get_raw("/web/cases").status(), 200);
    assert_eq!(op.post("/web/logout", &[("csrf", &op.csrf)]).0, 303);
    assert_eq!(op.get_raw("/web/cases").status(), 303);
}

#[test]
fn a_town_operator_never_sees_another_towns_cases_in_any_page_or_export() {
    let server = TestServer::start();
    let near = server.phone("insp-0001");
    let mine = near.report(GRID, "本镇案件", T0);
    near.sync();
    let district = gridlink_fixtures::District::generate(gridlink_fixtures::Scale::Small);
    let far = server.phone(&inspector_of(&district, OTHER_TOWN_GRID));
    let theirs = far.report(OTHER_TOWN_GRID, "外镇案件", T0 + 60_000);
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
    operator(&server, "op-town", Some(&town));
    let op = sign_in(&server, "op-town");

    for path in [
        "/web/cases".to_owned(),
        "/web/cases?status=open".to_owned(),
        "/web/cases?grid=320509002001-01".to_owned(),
        "/web/cases?town=320509002".to_owned(),
        "/web/map".to_owned(),
        "/web/stats?days=365".to_owned(),
        "/web/grids.geojson".to_owned(),
        "/web/cases/export/cases.csv".to_owned(),
        "/web/cases/export/cases.geojson".to_owned(),
    ] {
        let (status, body) = op.get(&path);
        assert_eq!(status, 200, "{path}");
        assert!(!body.contains(&theirs), "{path} shows another town's case");
        assert!(!body.contains("外镇案件"), "{path}");
        // (The grid filter's field shows back what was typed into it.)
        if !path.contains(OTHER_TOWN_GRID) {
            assert!(
                !body.contains(OTHER_TOWN_GRID),
                "{path} names another town's grid"
            );
        }
    }
    assert!(op.get("/web/cases").1.contains(&mine));
    let xlsx = op.get_raw("/web/cases/export/cases.xlsx").bytes().unwrap();
    let unzipped = String::from_utf8_lossy(&xlsx);
    assert!(!unzipped.contains(&theirs));
    // The other town's case is as absent as a case that does not exist, and cannot be acted on.
    assert_eq!(op.get(&format!("/web/cases/{theirs}")).0, 404);
    assert_eq!(
        op.get(&format!("/web/cases/{}", uuid::Uuid::new_v4())).0,
        404
    );
    let before = events_of(&server, &theirs);
    let (status, _) = op.post(
        &format!("/web/cases/{theirs}/events"),
        &[("csrf", &op.csrf), ("action", "comment"), ("note", "越权")],
    );
    assert_eq!(status, 404);
    assert_eq!(events_of(&server, &theirs), before);
    // Department scores are the district's: not on a town's page.
    assert!(!op.get("/web/stats").1.contains("scores-departments"));
}

#[test]
fn an_operator_searches_by_number_and_text_sorts_and_sees_the_total() {
    let server = TestServer::start();
    let phone = server.phone("insp-0001");
    let drain = phone.report(GRID, "下水道井盖缺失", T0);
    let bins = phone.report(GRID, "垃圾桶满溢 100%", T0 + 60_000);
    let lights = phone.report(GRID, "路灯不亮", T0 + 120_000);
    phone.sync();
    operator(&server, "op-01", None);
    let op = sign_in(&server, "op-01");
    let listed = |query: &str| {
        let (status, html) = op.get(&format!("/web/cases?{query}"));
        assert_eq!(status, 200, "{query}");
        let found: Vec<bool> = [&drain, &bins, &lights]
            .iter()
            .map(|id| html.contains(id.as_str()))
            .collect();
        (found, html)
    };
    // Every case, and the total.
    let (found, html) = listed("");
    assert_eq!(found, [true, true, true]);
    assert!(html.contains("共 3 件"), "{html}");
    // By words of the title.
    let (found, html) = listed("q=%E4%BA%95%E7%9B%96"); // 井盖
    assert_eq!(found, [true, false, false]);
    assert!(html.contains("共 1 件"));
    // By the start of the case number, as read over the phone.
    let (found, _) = listed(&format!("q={}", &lights[..8]));
    assert_eq!(found, [false, false, true]);
    let (found, _) = listed(&format!("q={}", lights[..13].to_uppercase()));
    assert_eq!(found, [false, false, true]);
    // Part of a number, from its middle: found by the text search.
    let (found, _) = listed(&format!("q={}", &bins[9..13]));
    assert!(found[1], "{}", &bins[9..13]);
    // `%` is a character, not a wildcard.
    let (found, _) = listed("q=100%25");
    assert_eq!(found, [false, true, false]);
    let (found, html) = listed("q=%25%25%25");
    assert_eq!(found, [false, false, false]);
    assert!(html.contains("共 0 件"));
    // Oldest report first, and newest first (the default).
    let (_, html) = listed("sort=reported_asc");
    assert!(html.find(&drain).unwrap() < html.find(&lights).unwrap());
    let (_, html) = listed("");
    assert!(html.find(&lights).unwrap() < html.find(&drain).unwrap());
    // The case's page names the staff who acted (their id beside the name).
    let name = server
        .state
        .store()
        .user("insp-0001")
        .unwrap()
        .unwrap()
        .name;
    let (_, html) = op.get(&format!("/web/cases/{drain}"));
    assert!(html.contains(&format!("{name}（insp-0001）")), "{html}");
    // A bad order or an overlong search is refused, in one language at a time.
    let (status, html) = op.get("/web/cases?sort=sideways");
    assert_eq!(status, 400);
    assert!(html.contains("未知的排序") && html.contains("unknown sort order"));
    let (status, _) = op.get(&format!("/web/cases?q={}", "x".repeat(101)));
    assert_eq!(status, 400);
}
