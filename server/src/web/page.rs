//! What every page shares: the language, labels of codes, the page frame and error pages.

use super::Viewer;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use gridlink_core::case::{Category, Level, Role, Status};
use maud::{DOCTYPE, Markup, html};

/// The language of the pages: Simplified Chinese unless English was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 简体中文.
    Zh,
    /// English.
    En,
}

/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "gridlink_lang";

impl Lang {
    /// From the request's cookie.
    pub fn of(headers: &HeaderMap) -> Lang {
        match super::cookie(headers, LANG_COOKIE).as_deref() {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// A status code's label.
    pub fn status(self, code: &str) -> String {
        match Status::from_code(code) {
            Some(s) => self
                .t(
                    s.label_zh(),
                    match s {
                        Status::Reported => "Reported",
                        Status::Accepted => "Accepted",
                        Status::Dispatched => "Dispatched",
                        Status::Handling => "In hand",
                        Status::Resolved => "Awaiting verification",
                        Status::Verified => "Verified",
                        Status::Closed => "Closed",
                    },
                )
                .to_owned(),
            None => code.to_owned(),
        }
    }

    /// A level code's label.
    pub fn level(self, code: &str) -> String {
        match Level::from_code(code) {
            Some(l) => self
                .t(
                    l.label_zh(),
                    match l {
                        Level::Grid => "Grid",
                        Level::Village => "Village",
                        Level::Town => "Town",
                        Level::Department => "Department",
                        Level::LawEnforcement => "Law enforcement",
                    },
                )
                .to_owned(),
            None => code.to_owned(),
        }
    }

    /// A category code's label.
    pub fn category(self, code: &str) -> String {
        match Category::from_code(code) {
            Some(c) => self.t(c.label_zh(), c.label_en()).to_owned(),
            None => code.to_owned(),
        }
    }

    /// A source code's label.
    pub fn source(self, code: &str) -> String {
        let (zh, en) = match code {
            "grid_inspector" => ("网格员巡查", "Grid inspector"),
            "professional_inspector" => ("专业网格员", "Professional inspector"),
            "citizen" => ("随手拍", "Citizen report"),
            "analytics" => ("数据研判", "Analytics"),
            "open311" => ("Open311 外部系统", "Open311"),
            other => (other, other),
        };
        self.t(zh, en).to_owned()
    }

    /// A role's label.
    pub fn role(self, role: Role) -> String {
        self.t(
            role.label_zh(),
            match role {
                Role::GridInspector => "Grid inspector",
                Role::ProfessionalInspector => "Professional inspector",
                Role::GridChief => "Grid chief",
                Role::Mediator => "Mediator",
                Role::DepartmentHandler => "Department handler",
                Role::LawEnforcement => "Law enforcement",
                Role::Operator => "Command centre",
                Role::Citizen => "Citizen",
                Role::System => "Platform",
            },
        )
        .to_owned()
    }
}

/// Sources a case can have, for the list's filter.
pub(super) const SOURCES: [&str; 5] = [
    "grid_inspector",
    "professional_inspector",
    "citizen",
    "analytics",
    "open311",
];

/// Local time (Asia/Shanghai) of a UTC ms instant, `2026-06-15 08:30`.
pub(super) fn when(ms: i64) -> String {
    use chrono::TimeZone;
    let tz = chrono::FixedOffset::east_opt(gridlink_core::day::OFFSET_SECONDS)
        .unwrap_or_else(|| unreachable!());
    tz.timestamp_millis_opt(ms).single().map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// The frame of a signed-in page: header with navigation, language switch and sign-out.
pub(super) fn frame(viewer: &Viewer, title: &str, current: &str, body: Markup) -> Markup {
    let l = viewer.lang;
    let nav = [
        ("cases", "/web/cases", l.t("案件", "Cases")),
        ("map", "/web/map", l.t("地图", "Map")),
        ("stats", "/web/stats", l.t("统计", "Statistics")),
    ];
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            (head(&format!("{title} · {}", l.t("联动指挥中心", "Command centre")), true))
            body {
                header.top {
                    span.brand { (l.t("gridlink 联动指挥中心", "gridlink command centre")) }
                    nav {
                        @for (key, href, label) in nav {
                            a href=(href) class=[(key == current).then_some("current")] { (label) }
                        }
                    }
                    span.who {
                        (viewer.user.name) " · " (viewer.scope_label())
                        " · "
                        a href={ "/web/lang/" (l.t("en", "zh")) "?next=" (form_urlencoded::byte_serialize(viewer.here.as_bytes()).collect::<String>()) } { (l.t("English", "中文")) }
                        form.inline method="post" action="/web/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { (l.t("退出", "Sign out")) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The `<head>` of every page; the script only where someone is signed in.
fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href="/web/assets/app.css";
            @if script { script src="/web/assets/app.js" defer {} }
        }
    }
}

/// A page outside the session (sign-in, errors).
pub(super) fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(title, false))
            body.bare { main { (body) } }
        }
    }
}

/// A page's answer: HTML that is never cached (it depends on the session).
pub(super) fn page(markup: Markup) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        markup,
    )
        .into_response()
}

/// Why a page cannot be shown. Each answers with a page in both languages, except
/// [`WebError::SignIn`], which sends the browser to the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No session, or it expired: sign in, then come back to `next`.
    #[error("请登录 / sign in")]
    SignIn {
        /// Where to return.
        next: String,
    },
    /// The form's CSRF token is missing or wrong.
    #[error("表单已失效，请刷新页面后重试 / the form has expired: reload the page and try again")]
    Csrf,
    /// Not there, or not the viewer's to see (the same answer).
    #[error("没有这个案件，或无权查看 / no such case, or not yours to see")]
    NotFound,
    /// The request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The action is not allowed now.
    #[error("{0}")]
    Refused(String),
    /// The server cannot store anything now (full disk: 507, database unreachable: 503).
    #[error("{message}")]
    Unavailable {
        /// The disk is full.
        full: bool,
        /// For people (from [`crate::error::ApiError::Unavailable`]).
        message: String,
    },
    /// Something failed on the server.
    #[error("服务器内部错误 / internal error")]
    Internal(String),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

impl From<crate::error::ApiError> for WebError {
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError;
        match e {
            ApiError::Internal(m) => WebError::Internal(m),
            ApiError::Unavailable { full, .. } => WebError::Unavailable {
                full,
                message: e.to_string(),
            },
            ApiError::BadRequest(m) => WebError::BadRequest(m),
            other => WebError::Refused(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::SignIn { next } => {
                let target = format!(
                    "/web/login?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                return Redirect::to(&target).into_response();
            }
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Refused(_) => StatusCode::CONFLICT,
            WebError::Unavailable { full: true, .. } => StatusCode::INSUFFICIENT_STORAGE,
            WebError::Unavailable { full: false, .. } => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(detail) => {
                tracing::error!(%detail, "command centre page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = self.to_string();
        let body = bare(
            Lang::Zh,
            "gridlink",
            html! {
                section.card.error {
                    h1 { (status.as_u16()) }
                    p.message { (message) }
                    p { a href="/web/cases" { "返回案件列表 / back to the case list" } }
                }
            },
        );
        let mut response = (status, page(body)).into_response();
        crate::error::retry_when_unavailable(&mut response);
        response
    }
}
