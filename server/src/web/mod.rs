//! The command centre (联动指挥中心): server-rendered pages for operators under `/web/`.
//!
//! - `/web/login`: sign-in (argon2 passwords, a session cookie, rate-limited failures);
//! - `/web/cases`: the case list with filters and paging, exported as CSV, XLSX or GeoJSON;
//! - `/web/cases/{id}`: a case's details, photos, location and full timeline, with the
//!   actions the operator's role allows in the case's status;
//! - `/web/map`: the district's grids shaded by open cases, with the newest open cases;
//! - `/web/stats`: cases per day, completion rate, the 721 split, overdue cases, top
//!   categories and scores, as SVG charts and tables.
//!
//! Pages are rendered on the server (maud) with a little plain JavaScript; the stylesheet and
//! script are compiled into the binary, so the pages work on a closed network. Every page
//! and export shows only what the operator's grants cover: a town's operator never sees
//! another town's cases. Forms carry the session's CSRF token. Simplified Chinese by
//! default, English on request.

mod cases;
mod directory;
mod export;
mod map;
mod page;
mod session;
mod stats;

pub use directory::{Directory, GridShape};
pub use page::{LANG_COOKIE, Lang, WebError};
pub use session::{
    Failures, MAX_FAILURES, PasswordError, SESSION_COOKIE, SignIn, may_use_web, open_session,
    set_password, sign_in,
};

use crate::state::AppState;
use crate::store::{Area, User};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gridlink_core::sync::scope::ScopeKey;
use maud::html;
use page::{bare, page};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// The command centre's shared state: sign-in failures, the directory and cached statistics.
#[derive(Debug, Default)]
pub struct WebState {
    failures: Failures,
    password_checks: session::PasswordChecks,
    directory: RwLock<Arc<Directory>>,
    stats: Mutex<HashMap<String, (i64, Arc<stats::StatsData>)>>,
    /// Signed-in operators by session (token hash), as read at a time (UTC ms).
    sessions: Mutex<HashMap<String, (i64, Arc<Signed>)>>,
}

/// How long a session read from the store is trusted without reading it again: grants
/// withdrawn and passwords changed from the command line reach open sessions within this.
const SESSION_CACHE_MS: i64 = 30_000;

/// What a session stands for: its operator, their keys and area.
#[derive(Debug)]
struct Signed {
    user: User,
    scopes: BTreeSet<ScopeKey>,
    area: Area,
    csrf: String,
    session: String,
    expires_at: i64,
}

impl WebState {
    /// Replaces the directory (after an import).
    pub fn set_directory(&self, directory: Directory) {
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(directory);
    }

    /// Forgets every session read from the store (a password changed in this process).
    pub fn forget_sessions(&self) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The signed-in operator of a session token hash, if read recently and still valid.
    fn recent_session(&self, token_hash: &str, now: i64) -> Option<Arc<Signed>> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(token_hash)
            .filter(|(at, s)| now - at < SESSION_CACHE_MS && s.expires_at > now)
            .map(|(_, s)| s.clone())
    }

    fn keep_session(&self, signed: Arc<Signed>, now: i64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() > 10_000 {
            sessions.retain(|_, (at, _)| now - *at < SESSION_CACHE_MS);
        }
        sessions.insert(signed.session.clone(), (now, signed));
    }

    fn forget_session(&self, token_hash: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token_hash);
    }

    /// The directory.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The signed-in operator a page is for.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The user.
    pub user: User,
    /// Their keys (grants and implicit keys).
    pub scopes: BTreeSet<ScopeKey>,
    /// The part of the district they see.
    pub area: Area,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session (its token hash).
    pub session: String,
    /// The page language.
    pub lang: Lang,
    /// The page asked for (path and query), to come back to.
    pub here: String,
}

impl Viewer {
    /// What they see, for the header: 全区 or the towns' names.
    pub fn scope_label(&self) -> String {
        if self.area.district {
            return self.lang.t("全区", "whole district").to_owned();
        }
        self.area
            .towns
            .iter()
            .chain(&self.area.villages)
            .chain(&self.area.grids)
            .map(|id| id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A key naming what they see, for caches.
    fn area_key(&self) -> String {
        self.area.cache_key()
    }
}

/// The value of a cookie.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl Viewer {
    fn of(signed: &Signed, headers: &HeaderMap, next: &str) -> Viewer {
        Viewer {
            user: signed.user.clone(),
            scopes: signed.scopes.clone(),
            area: signed.area.clone(),
            csrf: signed.csrf.clone(),
            session: signed.session.clone(),
            lang: Lang::of(headers),
            here: next.to_owned(),
        }
    }
}

/// The operator a request comes from if their session was read recently (no store access).
fn recent_viewer(state: &AppState, headers: &HeaderMap, next: &str) -> Option<Viewer> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let signed = state.web().recent_session(
        &crate::identity::hash_secret(&token),
        crate::state::now_ms(),
    )?;
    Some(Viewer::of(&signed, headers, next))
}

/// The operator a request comes from (blocking: reads the store unless read recently).
fn viewer(state: &AppState, headers: &HeaderMap, next: &str) -> Result<Viewer, WebError> {
    if let Some(viewer) = recent_viewer(state, headers, next) {
        return Ok(viewer);
    }
    let sign_in = || WebError::SignIn {
        next: next.to_owned(),
    };
    let token = cookie(headers, SESSION_COOKIE).ok_or_else(sign_in)?;
    let (session, user) = session::session(state, &token)?.ok_or_else(sign_in)?;
    if !may_use_web(user.role) {
        return Err(sign_in());
    }
    let mut scopes = state.store().grants(&user.id)?;
    scopes.extend(ScopeKey::implicit(&user.id, user.role));
    let signed = Arc::new(Signed {
        area: Area::of(&scopes),
        user,
        scopes,
        csrf: session.csrf,
        session: session.token_hash,
        expires_at: session.expires_at,
    });
    state
        .web()
        .keep_session(signed.clone(), crate::state::now_ms());
    Ok(Viewer::of(&signed, headers, next))
}

impl axum::extract::FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    /// The signed-in operator, or a redirect to the sign-in page that comes back here (to the
    /// case page after a form on it was posted).
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Viewer, WebError> {
        let next = if parts.method == axum::http::Method::GET {
            here(parts.uri.path(), parts.uri.query())
        } else {
            parts
                .uri
                .path()
                .strip_suffix("/events")
                .unwrap_or("/web/cases")
                .to_owned()
        };
        if let Some(viewer) = recent_viewer(state, &parts.headers, &next) {
            return Ok(viewer);
        }
        let (state, headers) = (state.clone(), parts.headers.clone());
        blocking(move || viewer(&state, &headers, &next)).await
    }
}

/// Checks a form's CSRF token against the session's.
fn check_csrf(viewer: &Viewer, form: &HashMap<String, String>) -> Result<(), WebError> {
    match form.get("csrf") {
        Some(sent) if session::same_token(sent, &viewer.csrf) => Ok(()),
        _ => Err(WebError::Csrf),
    }
}

/// A form body as a map (the last value of a repeated field wins).
fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Runs blocking page work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
}

/// The pages' routes (merged into the server's router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/web/cases") }))
        .route("/web", get(|| async { Redirect::to("/web/cases") }))
        .route("/web/", get(|| async { Redirect::to("/web/cases") }))
        .route("/web/login", get(login_page).post(login))
        .route("/web/logout", post(logout))
        .route("/web/lang/{code}", get(switch_language))
        .route("/web/assets/{file}", get(asset))
        .route("/web/cases", get(cases::list))
        .route("/web/cases/export/{file}", get(export::cases))
        .route("/web/cases/{id}", get(cases::case_page))
        .route("/web/cases/{id}/events", post(cases::act))
        .route("/web/photos/{hash}", get(cases::photo))
        .route("/web/photos/{hash}/thumb", get(cases::thumbnail))
        .route("/web/map", get(map::page))
        .route("/web/grids.geojson", get(export::grids))
        .route("/web/stats", get(stats::page))
}

/// The cookie that carries the sign-in form's CSRF token (double submit: the form and the
/// cookie must agree, so another site cannot sign a browser in to an account of its choice).
const LOGIN_CSRF_COOKIE: &str = "gridlink_login";

/// A cookie of these pages: `HttpOnly`, `SameSite=Lax` (a link to a case from a message opens
/// signed in; every change needs the form's token anyway), and `Secure` when the request came
/// through HTTPS at a proxy the server trusts.
fn cookie_header(name: &str, value: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/web; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the browser reached us over HTTPS (as a trusted proxy says).
fn over_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config().rate_limits.trust_forwarded
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Only paths of these pages are followed after sign-in (no open redirect).
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n)
            if n.starts_with("/web/")
                && !n.starts_with("/web//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.clone()
        }
        _ => "/web/cases".to_owned(),
    }
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let secure = over_https(&state, &headers);
    login_form(
        Lang::of(&headers),
        &safe_next(q.get("next")),
        None,
        StatusCode::OK,
        secure,
    )
}

fn login_form(
    lang: Lang,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
    secure: bool,
) -> Response {
    let token = crate::identity::new_token().unwrap_or_default();
    let l = lang;
    let body = bare(
        l,
        l.t("登录 · 联动指挥中心", "Sign in · command centre"),
        html! {
            section.card.login {
                h1 { (l.t("联动指挥中心", "Command centre")) }
                p.muted { (l.t("网格化社会治理 · gridlink", "Grid governance · gridlink")) }
                @if let Some(error) = error { p.error.message role="alert" { (error) } }
                form method="post" action="/web/login" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    label { (l.t("账号", "User id")) input name="user" autocomplete="username" required autofocus; }
                    label { (l.t("密码", "Password")) input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { (l.t("登录", "Sign in")) }
                }
                p { a href={ "/web/lang/" (l.t("en", "zh")) "?next=/web/login" } { (l.t("English", "中文")) } }
            }
        },
    );
    let mut response = (status, page(body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(LOGIN_CSRF_COOKIE, &token, 3600, secure),
    );
    response
}

async fn login(State(state): State<AppState>, request: Request) -> Response {
    let lang = Lang::of(request.headers());
    let address =
        crate::limits::client_address(&request, state.config().rate_limits.trust_forwarded);
    let headers = request.headers().clone();
    let secure = over_https(&state, &headers);
    let body = match axum::body::to_bytes(request.into_body(), 16 << 10).await {
        Ok(b) => b,
        Err(_) => {
            return WebError::BadRequest("请求过大 / the request is too large".into())
                .into_response();
        }
    };
    let f = form(&body);
    let next = safe_next(f.get("next"));
    let double_submit = match (cookie(&headers, LOGIN_CSRF_COOKIE), f.get("csrf")) {
        (Some(c), Some(sent)) => session::same_token(&c, sent),
        _ => false,
    };
    if !double_submit {
        return WebError::Csrf.into_response();
    }
    let (user, password) = (
        f.get("user")
            .map(|u| u.trim().to_owned())
            .unwrap_or_default(),
        f.get("password").cloned().unwrap_or_default(),
    );
    // Counted before the password is checked: simultaneous guesses cannot outrun the lockout.
    let attempt_at = crate::state::now_ms();
    let failures = &state.web().failures;
    if !failures.attempt(&user, &address, attempt_at) {
        return locked_form(lang, &next, secure);
    }
    let Some(turn) = state.web().password_checks.turn().await else {
        failures.withdraw(&user, &address, attempt_at);
        let mut response = login_form(
            lang,
            &next,
            Some(lang.t(
                "服务器正忙，请几秒后再试 / the server is busy: try again in a few seconds",
                "The server is busy: try again in a few seconds / 服务器正忙，请几秒后再试",
            )),
            StatusCode::SERVICE_UNAVAILABLE,
            secure,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return response;
    };
    let outcome = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let failures = &state.web().failures;
            sign_in(&state, failures, attempt_at, &user, &password, &address)
        })
        .await
    };
    match outcome {
        Ok(Ok(SignIn::Ok(token))) => {
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                cookie_header(
                    SESSION_COOKIE,
                    &token,
                    session::SESSION_HOURS * 3600,
                    secure,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                cookie_header(LOGIN_CSRF_COOKIE, "", 0, secure),
            );
            *response.status_mut() = StatusCode::SEE_OTHER;
            response
        }
        Ok(Ok(SignIn::Refused)) => login_form(
            lang,
            &next,
            Some(lang.t(
                "账号或密码不正确 / wrong user id or password",
                "Wrong user id or password / 账号或密码不正确",
            )),
            StatusCode::UNAUTHORIZED,
            secure,
        ),
        Ok(Err(e)) => WebError::from(e).into_response(),
        Err(e) => WebError::Internal(e.to_string()).into_response(),
    }
}

fn locked_form(lang: Lang, next: &str, secure: bool) -> Response {
    login_form(
        lang,
        next,
        Some(lang.t(
            "登录失败次数过多，请 15 分钟后再试 / too many failed attempts: try again in 15 minutes",
            "Too many failed attempts: try again in 15 minutes / 登录失败次数过多，请 15 分钟后再试",
        )),
        StatusCode::TOO_MANY_REQUESTS,
        secure,
    )
}

async fn logout(State(state): State<AppState>, viewer: Viewer, body: Bytes) -> Response {
    let result = blocking(move || {
        check_csrf(&viewer, &form(&body))?;
        state.store().end_web_session(&viewer.session)?;
        state.web().forget_session(&viewer.session);
        Ok(())
    })
    .await;
    match result {
        Ok(()) => {
            let mut response = Redirect::to("/web/login").into_response();
            *response.status_mut() = StatusCode::SEE_OTHER;
            response.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(SESSION_COOKIE, "", 0, false),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn switch_language(
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = if code == "en" { "en" } else { "zh" };
    let next = match q.get("next") {
        Some(n) if n == "/web/login" => n.clone(),
        n => safe_next(n),
    };
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={lang}; Path=/web; SameSite=Lax; Max-Age=31536000"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("")),
    );
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (include_str!("assets/app.css"), "text/css; charset=utf-8"),
        "app.js" => (
            include_str!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return WebError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The request's path and query, to come back to after signing in.
fn here(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_these_pages_are_followed_after_sign_in() {
        let next = |n: &str| safe_next(Some(&n.to_owned()));
        assert_eq!(next("/web/cases?status=open"), "/web/cases?status=open");
        for bad in [
            "https://evil.example/",
            "//evil.example/web/",
            "/web//evil.example",
            "/web/\\evil",
            "/web/cases\nSet-Cookie: x=y",
            "/web/案件",
            "/v1/sync",
        ] {
            assert_eq!(next(bad), "/web/cases", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/web/cases");
    }
}
