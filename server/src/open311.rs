//! Open311 GeoReport v2 under `/open311/v2/` (<http://wiki.open311.org/GeoReport_v2>), the
//! open standard outside systems (city hotlines, other districts, civic apps) speak.
//!
//! Every resource is served as XML (the spec requires it) and JSON, chosen by the file
//! extension (`services.xml`, `services.json`). One response tree ([`Node`]) renders to both,
//! so the two formats cannot drift apart: lists become JSON arrays, elements become objects.
//! Errors have the spec's shape in the requested format (`<errors><error><code>…`, or
//! `[{"code","description"}]`); an unknown extension is answered in XML, the required format.
//!
//! Served: `discovery`, `services` (our case categories are the services), `services/{code}`
//! (no extra attributes: a category needs none), and `requests` / `requests/{id}` for holders
//! of an API key (our cases are governance data, not public): a key is scoped to the district
//! or one town, and never sees another town's cases. `POST requests` opens a case the way a
//! citizen's report does (placed in its grid by location, with the photo at `media_url` when
//! its host is on the operators' list: [`crate::media`]) and answers with its id at once, so
//! `tokens/{token}` never has a token to resolve. `extensions=true` adds FixMyStreet-style
//! `extended_attributes` (the finer state, level, grid and town) to each request; `page_size`
//! and `page` page through more than the spec's 1,000.

use crate::authored;
use crate::state::AppState;
use crate::store::{ApiKey, Area, CaseFilter, CaseRow};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone};
use gridlink_core::case::{Category, Level, Status};
use gridlink_core::sync::scope::ScopeKey;
use std::collections::HashMap;

/// The most requests one `GET requests` returns, and its default period (the spec's).
const MAX_REQUESTS: u32 = 1000;
const DEFAULT_DAYS: i64 = 90;
use gridlink_core::day::DAY_MS;

/// The API's last change, as `changeset` in discovery (ISO 8601 with time zone).
const CHANGESET: &str = "2026-11-28T00:00:00+08:00";

/// The two formats of GeoReport v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/xml`, required by the spec.
    Xml,
    /// `application/json`.
    Json,
}

/// A scalar value of a response.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// `true` / `false`.
    Bool(bool),
    /// Absent: `null` in JSON, an empty element in XML.
    Null,
}

/// A response tree: renders to the spec's XML and JSON shapes alike.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `<name>value</name>`; a JSON member (or array item) `value`.
    Leaf(&'static str, Scalar),
    /// `<name>…children…</name>`; a JSON object of the children.
    Object(&'static str, Vec<Node>),
    /// `<name>…items…</name>`; a JSON array of the items.
    List(&'static str, Vec<Node>),
}

fn text(name: &'static str, value: impl Into<String>) -> Node {
    Node::Leaf(name, Scalar::Str(value.into()))
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry (C0 controls, U+FFFE, U+FFFF) and the other
            // characters no text may hold are dropped rather than sent broken: intake refuses
            // them, this covers anything stored before it did.
            c if gridlink_core::text::is_unfit(c) => {}
            c => out.push(c),
        }
    }
}

impl Node {
    fn name(&self) -> &'static str {
        match self {
            Node::Leaf(n, _) | Node::Object(n, _) | Node::List(n, _) => n,
        }
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name());
        out.push('>');
        match self {
            Node::Leaf(_, Scalar::Str(s)) => xml_escape(s, out),
            Node::Leaf(_, Scalar::Int(n)) => out.push_str(&n.to_string()),
            Node::Leaf(_, Scalar::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Node::Leaf(_, Scalar::Null) => {}
            Node::Object(_, children) | Node::List(_, children) => {
                for child in children {
                    child.write_xml(out);
                }
            }
        }
        out.push_str("</");
        out.push_str(self.name());
        out.push('>');
    }

    fn json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Leaf(_, Scalar::Str(s)) => Value::String(s.clone()),
            Node::Leaf(_, Scalar::Int(n)) => Value::from(*n),
            Node::Leaf(_, Scalar::Bool(b)) => Value::Bool(*b),
            Node::Leaf(_, Scalar::Null) => Value::Null,
            Node::Object(_, children) => Value::Object(
                children
                    .iter()
                    .map(|c| (c.name().to_owned(), c.json()))
                    .collect(),
            ),
            Node::List(_, items) => Value::Array(items.iter().map(Node::json).collect()),
        }
    }

    /// The document in `format`, UTF-8.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Xml => {
                let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
                self.write_xml(&mut out);
                out
            }
            Format::Json => self.json().to_string(),
        }
    }
}

fn respond(status: StatusCode, format: Format, body: &Node) -> Response {
    let content_type = match format {
        Format::Xml => "text/xml; charset=utf-8",
        Format::Json => "application/json; charset=utf-8",
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        body.render(format),
    )
        .into_response()
}

/// An error in the spec's shape: `[{code, description}]`; the code is the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Error {
    /// HTTP status (also the `code` in the body).
    pub status: StatusCode,
    /// For people, zh-CN first, English second.
    pub description: String,
}

impl Open311Error {
    fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Open311Error {
            status,
            description: description.into(),
        }
    }

    /// A storage failure: 507 or 503 (with `Retry-After`) when the disk is full or the
    /// database unreachable, 500 otherwise; the detail goes to the log only.
    fn storage(e: crate::store::StoreError) -> Self {
        let api = crate::error::ApiError::from(e);
        match &api {
            crate::error::ApiError::Unavailable { full, detail } => {
                tracing::error!(%detail, full, "Open311: storage unavailable");
                Self::new(api.status(), api.to_string())
            }
            other => {
                tracing::error!(error = %other, "Open311: storage error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "存储错误 / storage error",
                )
            }
        }
    }

    fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, description)
    }

    /// The error as a response in `format`.
    pub fn into_response(self, format: Format) -> Response {
        let body = Node::List(
            "errors",
            vec![Node::Object(
                "error",
                vec![
                    Node::Leaf("code", Scalar::Int(i64::from(self.status.as_u16()))),
                    text("description", self.description),
                ],
            )],
        );
        let mut response = respond(self.status, format, &body);
        crate::error::retry_when_unavailable(&mut response);
        response
    }
}

/// Splits `name.ext` into the name and the format. An unknown or missing extension is an
/// error, answered in XML.
pub fn split_format(file: &str) -> Result<(&str, Format), Open311Error> {
    let (name, ext) = file.rsplit_once('.').ok_or_else(|| {
        Open311Error::new(
            StatusCode::BAD_REQUEST,
            "缺少格式扩展名（.xml 或 .json）/ the format extension is missing (.xml or .json)",
        )
    })?;
    let format = match ext {
        "xml" => Format::Xml,
        "json" => Format::Json,
        other => {
            return Err(Open311Error::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "不支持的格式 {other:?}（.xml 或 .json）/ unsupported format {other:?} (.xml or .json)"
                ),
            ));
        }
    };
    Ok((name, format))
}

/// The base URL clients reach this API at, from the request's `Host`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}/open311/v2")
}

/// `discovery`: where the API is and what it speaks.
pub fn discovery(base: &str) -> Node {
    Node::Object(
        "discovery",
        vec![
            text("changeset", CHANGESET),
            text(
                "contact",
                "区联动指挥中心 / the district's linked command centre",
            ),
            text(
                "key_service",
                "API 密钥由指挥中心操作员签发 / API keys are issued by the command centre's operators",
            ),
            Node::List(
                "endpoints",
                vec![Node::Object(
                    "endpoint",
                    vec![
                        text("specification", "http://wiki.open311.org/GeoReport_v2"),
                        text("url", base),
                        text("changeset", CHANGESET),
                        text("type", "production"),
                        Node::List(
                            "formats",
                            vec![
                                text("format", "text/xml"),
                                text("format", "application/json"),
                            ],
                        ),
                    ],
                )],
            ),
        ],
    )
}

fn service_node(category: Category) -> Node {
    Node::Object(
        "service",
        vec![
            text("service_code", category.code()),
            text(
                "service_name",
                format!("{} / {}", category.label_zh(), category.label_en()),
            ),
            text(
                "description",
                format!(
                    "{}：由所在网格受理，按 721 逐级处置 / {}: taken on by the grid where it is, and handled up the 721 ladder",
                    category.label_zh(),
                    category.label_en()
                ),
            ),
            Node::Leaf("metadata", Scalar::Bool(false)),
            text("type", "realtime"),
            text("keywords", category.code().replace('_', ",")),
            text("group", "网格化社会治理 / grid governance"),
        ],
    )
}

/// `services`: our case categories.
pub fn services() -> Node {
    Node::List(
        "services",
        Category::ALL.into_iter().map(service_node).collect(),
    )
}

/// `services/{code}`: a category's definition (no extra attributes).
pub fn service_definition(code: &str) -> Result<Node, Open311Error> {
    let category = Category::from_code(code).ok_or_else(|| {
        Open311Error::not_found(format!("没有服务 {code:?} / no service {code:?}"))
    })?;
    Ok(Node::Object(
        "service_definition",
        vec![
            text("service_code", category.code()),
            Node::List("attributes", Vec::new()),
        ],
    ))
}

/// Issues an API key (shown once; only its hash is kept). `scope` is `district` or `town:ID`.
pub fn issue_key(state: &AppState, name: &str, scope: &str, by: &str) -> anyhow::Result<String> {
    let scope: ScopeKey = scope.parse().map_err(|_| {
        anyhow::anyhow!("范围应为 district 或 town:ID / scope must be district or town:ID")
    })?;
    if !matches!(scope, ScopeKey::District | ScopeKey::Town(_)) {
        anyhow::bail!("范围应为 district 或 town:ID / scope must be district or town:ID");
    }
    if name.trim().is_empty() {
        anyhow::bail!("请给密钥起名（对方系统）/ name the key (the system it is for)");
    }
    let secret = crate::identity::new_token().map_err(anyhow::Error::msg)?;
    let key = ApiKey {
        name: name.trim().to_owned(),
        scope,
        created_at: crate::state::now_ms(),
        revoked: false,
    };
    state
        .store()
        .add_api_key(&crate::identity::hash_secret(&secret), &key, by)?;
    Ok(secret)
}

fn forbidden() -> Open311Error {
    Open311Error::new(
        StatusCode::FORBIDDEN,
        "缺少或无效的 api_key / api_key missing or invalid",
    )
}

fn bad(description: impl Into<String>) -> Open311Error {
    Open311Error::new(StatusCode::BAD_REQUEST, description)
}

/// The key of a request, or 403.
fn authorize(state: &AppState, params: &HashMap<String, String>) -> Result<ApiKey, Open311Error> {
    let secret = params
        .get("api_key")
        .filter(|k| !k.is_empty())
        .ok_or_else(forbidden)?;
    let key = state
        .store()
        .api_key(&crate::identity::hash_secret(secret))
        .map_err(Open311Error::storage)?
        .filter(|k| !k.revoked)
        .ok_or_else(forbidden)?;
    Ok(key)
}

/// ISO 8601 with the district's time zone (UTC+8).
fn datetime(ms: i64) -> String {
    FixedOffset::east_opt(gridlink_core::day::OFFSET_SECONDS)
        .and_then(|tz| tz.timestamp_millis_opt(ms).single())
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_default()
}

/// A W3C/ISO 8601 date-time with a time zone, as UTC ms.
fn parse_datetime(name: &str, value: &str) -> Result<i64, Open311Error> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(format!(
                "{name} 应为带时区的 ISO 8601 时间，如 2026-06-15T08:00:00+08:00 / {name} must be an ISO 8601 date-time with a time zone"
            ))
        })
}

/// Comma-separated values of a parameter; an empty parameter counts as absent.
fn list(params: &HashMap<String, String>, name: &str) -> Vec<String> {
    params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The query of a `GET requests`, checked against the spec's rules.
pub fn request_query(
    params: &HashMap<String, String>,
    key: &ApiKey,
    now_ms: i64,
) -> Result<CaseFilter, Open311Error> {
    let date = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| parse_datetime(name, v))
            .transpose()
    };
    let (from_ms, to_ms) = match (date("start_date")?, date("end_date")?) {
        (Some(from), Some(to)) => (from, to),
        (Some(from), None) => (from, from + DEFAULT_DAYS * DAY_MS),
        (None, Some(to)) => (to - DEFAULT_DAYS * DAY_MS, to),
        (None, None) => (now_ms - DEFAULT_DAYS * DAY_MS, now_ms + 1),
    };
    if to_ms < from_ms {
        return Err(bad(
            "end_date 早于 start_date / end_date is before start_date",
        ));
    }
    if to_ms - from_ms > DEFAULT_DAYS * DAY_MS + 1 {
        return Err(bad(
            "时间范围不能超过 90 天 / the date range may not exceed 90 days",
        ));
    }
    let categories = list(params, "service_code");
    if let Some(unknown) = categories.iter().find(|c| Category::from_code(c).is_none()) {
        return Err(bad(format!(
            "未知的 service_code {unknown:?} / unknown service_code {unknown:?}"
        )));
    }
    let statuses = list(params, "status");
    if statuses.iter().any(|s| s != "open" && s != "closed") {
        return Err(bad(
            "status 应为 open 或 closed / status must be open or closed",
        ));
    }
    // Both or neither: no filter.
    let open = match (
        statuses.iter().any(|s| s == "open"),
        statuses.iter().any(|s| s == "closed"),
    ) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    let ids = list(params, "service_request_id");
    if ids.len() > MAX_REQUESTS as usize {
        return Err(bad(
            "service_request_id 过多 / too many service_request_id values",
        ));
    }
    // Paging beyond the spec (as SeeClickFix's GeoReport does): `page_size` up to 1000,
    // `page` from 1.
    let number = |name: &str, max: u32| -> Result<Option<u32>, Open311Error> {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "{name} 应为 1 到 {max} 的整数 / {name} must be a whole number from 1 to {max}"
                        ))
                    })
            })
            .transpose()
    };
    let limit = number("page_size", MAX_REQUESTS)?.unwrap_or(MAX_REQUESTS);
    let page = number("page", 100_000)?.unwrap_or(1);
    // Open is everything not yet closed (awaiting verification counts as open).
    let statuses = |closed: bool| {
        Status::ALL
            .into_iter()
            .filter(|s| (*s == Status::Closed) == closed)
            .map(|s| s.code().to_owned())
            .collect()
    };
    let filter = CaseFilter {
        area: Area::of_key(&key.scope),
        categories,
        statuses: open.map(|open| statuses(!open)).unwrap_or_default(),
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
        limit,
        offset: (page - 1).saturating_mul(limit),
        ..CaseFilter::default()
    };
    Ok(only(filter, ids))
}

/// With `service_request_id`s, the spec's other filters do not apply (the key's area does).
fn only(filter: CaseFilter, ids: Vec<String>) -> CaseFilter {
    if ids.is_empty() {
        return filter;
    }
    CaseFilter {
        area: filter.area,
        limit: filter.limit,
        ids,
        ..CaseFilter::default()
    }
}

/// The FixMyStreet-style extended state of a case (`extensions=true`): finer than open/closed,
/// in the vocabulary Open311 clients of FixMyStreet already understand.
pub fn extended_status(row: &CaseRow) -> &'static str {
    match Status::from_code(&row.status) {
        Some(Status::Reported) => "open",
        Some(Status::Accepted) => "investigating",
        Some(Status::Dispatched) => "internal_referral",
        Some(Status::Handling) => "in_progress",
        Some(Status::Resolved | Status::Verified) => "fixed",
        // Closed after a fix, or closed without one (invalid, duplicate).
        Some(Status::Closed) if row.solved_level.is_some() => "closed",
        Some(Status::Closed) => "no_further_action",
        None => "open",
    }
}

/// A case as an Open311 request, from its row alone; with `extensions`, also its extended
/// state, level and grid (`extended_attributes`, as FixMyStreet's Open311 does).
fn request_node(row: &CaseRow, extensions: bool) -> Node {
    let category = Category::from_code(&row.category);
    let status = Status::from_code(&row.status);
    let level = Level::from_code(&row.level);
    let status_note = status.map_or(row.status.clone(), |s| s.label_zh().to_owned());
    let agency = match (&row.assignee, level) {
        (Some(assignee), Some(Level::Department | Level::LawEnforcement)) => assignee.clone(),
        (_, Some(level)) => format!("{}（{}）", level.label_zh(), row.place.grid_id),
        _ => row.level.clone(),
    };
    let point = row.point;
    let description = if row.description.trim().is_empty() {
        row.title.clone()
    } else {
        format!("{}：{}", row.title, row.description)
    };
    let or_null = |v: Option<String>| v.map_or(Scalar::Null, Scalar::Str);
    Node::Object(
        "request",
        vec![
            text("service_request_id", row.id.clone()),
            text(
                "status",
                if status == Some(Status::Closed) {
                    "closed"
                } else {
                    "open"
                },
            ),
            text("status_notes", status_note),
            text(
                "service_name",
                category.map_or(row.category.clone(), |c| {
                    format!("{} / {}", c.label_zh(), c.label_en())
                }),
            ),
            text("service_code", row.category.clone()),
            text("description", description),
            text("agency_responsible", agency),
            Node::Leaf("service_notice", Scalar::Null),
            text("requested_datetime", datetime(row.reported_at)),
            text("updated_datetime", datetime(row.updated_at)),
            Node::Leaf("expected_datetime", or_null(row.due_at.map(datetime))),
            Node::Leaf("address", Scalar::Null),
            Node::Leaf("address_id", or_null(row.address_id.clone())),
            Node::Leaf("zipcode", Scalar::Null),
            Node::Leaf("lat", or_null(point.map(|p| p.lat.to_string()))),
            Node::Leaf("long", or_null(point.map(|p| p.lon.to_string()))),
            Node::Leaf("media_url", Scalar::Null),
        ]
        .into_iter()
        .chain(extensions.then(|| {
            Node::Object(
                "extended_attributes",
                vec![
                    text("fms_extended_status", extended_status(row)),
                    text("status_code", row.status.clone()),
                    text("level", row.level.clone()),
                    text("grid_id", row.place.grid_id.clone()),
                    text("town_id", row.place.town_id.clone()),
                ],
            )
        }))
        .collect(),
    )
}

fn requests_list(
    state: &AppState,
    params: &HashMap<String, String>,
    ids: Option<Vec<String>>,
) -> Result<Node, Open311Error> {
    let key = authorize(state, params)?;
    let mut query = request_query(params, &key, crate::state::now_ms())?;
    let single = ids.is_some();
    if let Some(ids) = ids {
        query = only(query, ids);
    }
    let rows = state
        .store()
        .case_list(&query)
        .map_err(Open311Error::storage)?;
    if single && rows.is_empty() {
        // Another town's case is as absent as a case that does not exist.
        return Err(Open311Error::not_found("没有这个请求 / no such request"));
    }
    let extensions = match params.get("extensions").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(bad(
                "extensions 应为 true 或 false / extensions must be true or false",
            ));
        }
    };
    Ok(Node::List(
        "service_requests",
        rows.iter().map(|r| request_node(r, extensions)).collect(),
    ))
}

/// Runs store work on the blocking pool and answers with its tree or its error, in `format`.
async fn off_the_runtime(
    format: Format,
    status: StatusCode,
    work: impl FnOnce() -> Result<Node, Open311Error> + Send + 'static,
) -> Response {
    match crate::http::blocking(move || Ok(work())).await {
        Ok(Ok(body)) => respond(status, format, &body),
        Ok(Err(e)) => e.into_response(format),
        Err(_) => Open311Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "内部错误 / internal error",
        )
        .into_response(format),
    }
}

/// `GET /open311/v2/{file}`: `discovery.{fmt}`, `services.{fmt}`, `requests.{fmt}`.
pub async fn resource(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (name, format) = match split_format(&file) {
        Ok(split) => split,
        Err(e) => return e.into_response(Format::Xml),
    };
    match name {
        "discovery" => respond(StatusCode::OK, format, &discovery(&base_url(&headers))),
        "services" => respond(StatusCode::OK, format, &services()),
        "requests" => {
            off_the_runtime(format, StatusCode::OK, move || {
                requests_list(&state, &params, None)
            })
            .await
        }
        _ => Open311Error::not_found(format!("没有这个资源 {name:?} / no resource {name:?}"))
            .into_response(format),
    }
}

/// `GET /open311/v2/services/{code}.{fmt}`.
pub async fn service(Path(file): Path<String>) -> Response {
    let (code, format) = match split_format(&file) {
        Ok(split) => split,
        Err(e) => return e.into_response(Format::Xml),
    };
    match service_definition(code) {
        Ok(body) => respond(StatusCode::OK, format, &body),
        Err(e) => e.into_response(format),
    }
}

/// Longest accepted `description` (the spec's limit).
const MAX_DESCRIPTION: usize = 4000;
/// Largest accepted form body.
const MAX_FORM_BYTES: usize = 64 << 10;

/// A `POST requests` form, checked as far as it can be without the district's data (its key,
/// its grids, its photo).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestForm {
    /// The service.
    pub category: Category,
    /// Where the problem is.
    pub point: gridlink_core::geo::LatLon,
    /// The photo to fetch, if any.
    pub media_url: Option<String>,
    /// The description (may be empty).
    pub description: String,
    /// The case title: the description's first line, or the service's name.
    pub title: String,
    /// The caller's address id, if given.
    pub address_id: Option<String>,
}

/// Decodes a form-encoded body, refusing one over the form limit.
pub fn form_params(body: &[u8]) -> Result<HashMap<String, String>, Open311Error> {
    if body.len() > MAX_FORM_BYTES {
        return Err(bad("请求体过大 / the form is too large"));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

/// Checks the fields of a `POST requests` form (the key is checked by the caller).
pub fn request_form(params: &HashMap<String, String>) -> Result<RequestForm, Open311Error> {
    use gridlink_core::geo::LatLon;
    // One character XML cannot carry would break every later `requests.xml`: refused whole.
    for (name, value) in params {
        gridlink_core::text::check(name).map_err(|e| bad(format!("{e}")))?;
        gridlink_core::text::check(value).map_err(|e| bad(format!("{name}: {e}")))?;
    }
    let field = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let code =
        field("service_code").ok_or_else(|| bad("缺少 service_code / service_code is missing"))?;
    let category = Category::from_code(code).ok_or_else(|| {
        Open311Error::not_found(format!("没有服务 {code:?} / no service {code:?}"))
    })?;
    let coordinate = |name: &str| {
        field(name)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("{name} 不是数字 / {name} is not a number")))
            })
            .transpose()
    };
    let point = match (coordinate("lat")?, coordinate("long")?) {
        (Some(lat), Some(lon)) => LatLon { lat, lon },
        _ => {
            return Err(bad(
                "需要位置：lat 和 long / a location is needed: lat and long",
            ));
        }
    };
    if !point.is_valid() {
        return Err(bad("位置无效 / the location is invalid"));
    }
    let media_url = field("media_url");
    if media_url.is_some_and(|u| u.len() > 2048) {
        return Err(bad("media_url 过长 / media_url is too long"));
    }
    let description = field("description").unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(bad(format!(
            "description 超过 {MAX_DESCRIPTION} 字 / description is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    // The first line is the title; a request without a description is titled by its service.
    let title: String = description
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(category.label_zh())
        .chars()
        .take(gridlink_core::case::MAX_TITLE_CHARS)
        .collect();
    Ok(RequestForm {
        category,
        point,
        media_url: media_url.map(str::to_owned),
        description: description.to_owned(),
        title,
        address_id: field("address_id").map(str::to_owned),
    })
}

/// Opens a case from a `POST requests` form; returns the response list.
fn create_request(state: &AppState, body: &[u8]) -> Result<Node, Open311Error> {
    use gridlink_core::case::{CaseDetails, Location, Role, Source, Stamp};
    let params = form_params(body)?;
    let key = authorize(state, &params)?;
    let RequestForm {
        category,
        point,
        media_url,
        description,
        title,
        address_id,
    } = request_form(&params)?;
    // The grid index in memory places the point (no grid table read per request).
    let place = state.place_at(point).ok_or_else(|| {
        bad("该位置不在本区网格内 / this location is outside the district's grids")
    })?;
    if !Area::of_key(&key.scope).covers(&place.town_id, &place.village_id, &place.id) {
        return Err(Open311Error::new(
            StatusCode::FORBIDDEN,
            "该位置不在此密钥所属的镇 / this location is outside the key's town",
        ));
    }
    // The photo, fetched and stored before the case that names it (the case is refused whole
    // if its photo cannot be had).
    let photos = match media_url.as_deref() {
        Some(url) => vec![crate::media::fetch_photo(state, url).map_err(|e| match e {
            crate::media::MediaError::Storage(e) => Open311Error::storage(e),
            crate::media::MediaError::Busy => {
                Open311Error::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => bad(other.to_string()),
        })?],
        None => Vec::new(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let now = crate::state::now_ms();
    let location = Location {
        point,
        accuracy_m: 0.0,
    };
    let details = CaseDetails {
        id: id.clone(),
        category,
        source: Source::Open311,
        title,
        description,
        location: Some(location),
        address_id,
        grid_id: place.id.clone(),
        reporter: Some(format!("Open311: {}", key.name)),
        priority: Default::default(),
    };
    let stamp = Stamp {
        actor: format!("open311:{}", key.name),
        role: Role::System,
        device: "open311".into(),
        at_ms: now,
        location: Some(location),
    };
    let opened = authored::open(
        state,
        authored::Intake {
            details,
            photos,
            stamp,
            audit_action: "open311_request",
        },
    )
    .map_err(|e| match e {
        authored::WriteError::Store(e) => Open311Error::storage(e),
        authored::WriteError::Broken(message) => {
            tracing::error!(%message, "Open311: the intake failed");
            Open311Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
        }
        other => bad(other.to_string()),
    })?;
    // The id is new: nobody else can hold it.
    if opened != authored::Opened::Created {
        return Err(Open311Error::new(
            StatusCode::CONFLICT,
            "该编号已被使用 / this id is already used",
        ));
    }
    Ok(Node::List(
        "service_requests",
        vec![Node::Object(
            "request",
            vec![
                text("service_request_id", id),
                text(
                    "service_notice",
                    "已转交所在网格受理 / passed to the grid where it is",
                ),
                Node::Leaf("account_id", Scalar::Null),
            ],
        )],
    ))
}

/// `POST /open311/v2/requests.{fmt}` (form-encoded).
pub async fn post_request(
    State(state): State<AppState>,
    Path(file): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let format = match split_format(&file) {
        Ok(("requests", format)) => format,
        Ok((_, format)) => {
            return Open311Error::not_found("只能向 requests 提交 / only requests accepts a POST")
                .into_response(format);
        }
        Err(e) => return e.into_response(Format::Xml),
    };
    off_the_runtime(format, StatusCode::CREATED, move || {
        create_request(&state, &body)
    })
    .await
}

/// `GET /open311/v2/tokens/{token}.{fmt}`: requests are answered with their id at once, so no
/// token is ever pending.
pub async fn token(Path(file): Path<String>) -> Response {
    match split_format(&file) {
        Ok((_, format)) => Open311Error::not_found(
            "没有这个令牌：请求提交时已直接返回编号 / no such token: requests are answered with their id",
        )
        .into_response(format),
        Err(e) => e.into_response(Format::Xml),
    }
}

/// `GET /open311/v2/requests/{id}.{fmt}`: one request, as a one-element list.
pub async fn request(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (id, format) = match split_format(&file) {
        Ok(split) => split,
        Err(e) => return e.into_response(Format::Xml),
    };
    let id = id.to_owned();
    off_the_runtime(format, StatusCode::OK, move || {
        requests_list(&state, &params, Some(vec![id]))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tree_renders_the_specs_xml_and_json_shapes() {
        let body = services();
        let xml = body.render(Format::Xml);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><services><service><service_code>environment</service_code>"));
        let json: serde_json::Value = serde_json::from_str(&body.render(Format::Json)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), Category::ALL.len());
        assert_eq!(json[0]["metadata"], false);
        let d: serde_json::Value =
            serde_json::from_str(&discovery("http://x/open311/v2").render(Format::Json)).unwrap();
        assert_eq!(d["endpoints"][0]["formats"][1], "application/json");
    }

    #[test]
    fn text_is_escaped_and_control_characters_dropped() {
        let node = text("description", "a<b & \"c\" \u{1}\u{fffe}\u{ffff}d");
        assert_eq!(
            node.render(Format::Xml),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><description>a&lt;b &amp; &quot;c&quot; d</description>"
        );
    }

    #[test]
    fn formats_come_from_the_extension_only() {
        assert_eq!(
            split_format("services.json").unwrap(),
            ("services", Format::Json)
        );
        assert_eq!(split_format("a.b.xml").unwrap(), ("a.b", Format::Xml));
        for bad in ["services", "services.html", "services."] {
            assert_eq!(
                split_format(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
    }
}
