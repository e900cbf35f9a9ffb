//! The case list, the case page and the actions taken from it.

use super::page::{SOURCES, frame, page, when};
use super::{Viewer, WebError, blocking, check_csrf, form};
use crate::state::AppState;
use crate::store::{CaseFilter, CaseOrder, CaseRow};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gridlink_core::case::{
    Case, Category, DispatchTarget, Event, EventKind, Level, Stamp, Status, Urgency, fold,
};
use gridlink_core::doc::CaseDoc;
use maud::{Markup, html};
use std::collections::HashMap;

/// Rows on a page of the list.
pub(super) const PAGE_ROWS: u32 = 50;
/// Most rows an export holds.
pub(super) const MAX_EXPORT_ROWS: u32 = 50_000;

/// The list's filter from the query string, within what the viewer may see. Unknown codes are
/// refused by name.
pub(super) fn filter_of(
    viewer: &Viewer,
    q: &HashMap<String, String>,
) -> Result<CaseFilter, WebError> {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |(zh, en): (&str, &str), v: &str| {
        WebError::BadRequest(format!("未知的{zh}“{v}” / unknown {en} {v:?}"))
    };
    let mut filter = CaseFilter {
        area: viewer.area.clone(),
        limit: PAGE_ROWS,
        ..CaseFilter::default()
    };
    match get("status") {
        None => {}
        Some("open") => {
            filter.statuses = Status::ALL
                .into_iter()
                .filter(|s| s.is_open())
                .map(|s| s.code().to_owned())
                .collect();
        }
        Some(s) => {
            let status = Status::from_code(s).ok_or_else(|| bad(("状态", "status"), s))?;
            filter.statuses = vec![status.code().to_owned()];
        }
    }
    if let Some(c) = get("category") {
        filter.categories = vec![
            Category::from_code(c)
                .ok_or_else(|| bad(("类别", "category"), c))?
                .code()
                .to_owned(),
        ];
    }
    if let Some(l) = get("level") {
        filter.level = Some(
            Level::from_code(l)
                .ok_or_else(|| bad(("层级", "level"), l))?
                .code()
                .to_owned(),
        );
    }
    if let Some(s) = get("source") {
        if !SOURCES.contains(&s) {
            return Err(bad(("来源", "source"), s));
        }
        filter.source = Some(s.to_owned());
    }
    filter.town_id = get("town").map(str::to_owned);
    filter.grid_id = get("grid").map(str::to_owned);
    if get("overdue").is_some() {
        filter.overdue_at = Some(crate::state::now_ms());
    }
    if get("warning").is_some() {
        filter.warning_at = Some(crate::state::now_ms());
    }
    if let Some(text) = get("q").map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > 100 {
            return Err(WebError::BadRequest(
                "搜索词最多 100 个字 / the search is at most 100 characters".into(),
            ));
        }
        filter.text = Some(text.to_owned());
    }
    if let Some(s) = get("sort") {
        filter.order = CaseOrder::from_code(s).ok_or_else(|| bad(("排序", "sort order"), s))?;
    }
    let page: u32 = match get("page") {
        None => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .ok_or_else(|| {
                WebError::BadRequest(format!(
                    "页码应为 1 到 10000 / the page must be 1 to 10000: {p:?}"
                ))
            })?,
    };
    filter.offset = (page - 1) * PAGE_ROWS;
    Ok(filter)
}

/// `GET /web/cases`.
pub(super) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    blocking(move || {
        let mut filter = filter_of(&viewer, &q)?;
        filter.limit = PAGE_ROWS + 1;
        let mut rows = state.store().case_list(&filter)?;
        let total = state.store().case_total(&filter)?;
        let more = rows.len() > PAGE_ROWS as usize;
        rows.truncate(PAGE_ROWS as usize);
        let page_no = filter.offset / PAGE_ROWS + 1;
        Ok(page(list_page(
            &state,
            &viewer,
            &q,
            &rows,
            (page_no, more, total),
        )))
    })
    .await
}

/// The query string with one parameter replaced (or removed when `value` is empty).
fn with(q: &HashMap<String, String>, key: &str, value: &str) -> String {
    let mut pairs: Vec<(&String, &String)> = q
        .iter()
        .filter(|(k, v)| k.as_str() != key && !v.is_empty())
        .collect();
    pairs.sort();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    if !value.is_empty() {
        out.append_pair(key, value);
    }
    out.finish()
}

fn list_page(
    state: &AppState,
    viewer: &Viewer,
    q: &HashMap<String, String>,
    rows: &[CaseRow],
    (page_no, more, total): (u32, bool, u64),
) -> Markup {
    let l = viewer.lang;
    let dir = state.web().directory();
    let now = crate::state::now_ms();
    let value = |k: &str| q.get(k).cloned().unwrap_or_default();
    let towns: Vec<&(String, String)> = dir
        .towns
        .iter()
        .filter(|(id, _)| viewer.area.sees_town(id))
        .collect();
    let grids: Vec<_> = dir.grids_in(&viewer.area).collect();
    let export = |ext: &str| format!("/web/cases/export/cases.{ext}?{}", with(q, "page", ""));
    let body = html! {
        h1 { (l.t("案件列表", "Cases")) }
        form.filters method="get" action="/web/cases" {
            label { (l.t("搜索", "Search"))
                input type="search" name="q" value=(value("q")) maxlength="100"
                    placeholder=(l.t("编号、标题、描述、地址、上报人", "number, title, description, address, reporter"));
            }
            label { (l.t("排序", "Sort"))
                select name="sort" {
                    @for o in CaseOrder::ALL {
                        option value=(o.code()) selected[value("sort") == o.code()] {
                            (match o {
                                CaseOrder::ReportedDesc => l.t("最新上报", "Newest report"),
                                CaseOrder::ReportedAsc => l.t("最早上报", "Oldest report"),
                                CaseOrder::DueAsc => l.t("时限最近", "Nearest deadline"),
                                CaseOrder::UpdatedDesc => l.t("最近更新", "Recently changed"),
                            })
                        }
                    }
                }
            }
            label { (l.t("状态", "Status"))
                select name="status" {
                    option value="" { (l.t("全部", "All")) }
                    option value="open" selected[value("status") == "open"] { (l.t("未办结", "Open")) }
                    @for s in Status::ALL {
                        option value=(s.code()) selected[value("status") == s.code()] { (l.status(s.code())) }
                    }
                }
            }
            label { (l.t("类别", "Category"))
                select name="category" {
                    option value="" { (l.t("全部", "All")) }
                    @for c in Category::ALL {
                        option value=(c.code()) selected[value("category") == c.code()] { (l.category(c.code())) }
                    }
                }
            }
            label { (l.t("层级", "Level"))
                select name="level" {
                    option value="" { (l.t("全部", "All")) }
                    @for lv in Level::ALL {
                        option value=(lv.code()) selected[value("level") == lv.code()] { (l.level(lv.code())) }
                    }
                }
            }
            label { (l.t("来源", "Source"))
                select name="source" {
                    option value="" { (l.t("全部", "All")) }
                    @for s in SOURCES {
                        option value=(s) selected[value("source") == s] { (l.source(s)) }
                    }
                }
            }
            label { (l.t("镇街", "Town"))
                select name="town" {
                    option value="" { (l.t("全部", "All")) }
                    @for (id, name) in &towns {
                        option value=(id) selected[&value("town") == id] { (name) }
                    }
                }
            }
            label { (l.t("网格", "Grid"))
                input name="grid" list="grids" value=(value("grid")) placeholder=(l.t("网格编号", "grid id"));
                datalist id="grids" {
                    @for g in &grids { option value=(g.id) { (g.name) } }
                }
            }
            label.check { input type="checkbox" name="overdue" value="1" checked[!value("overdue").is_empty()]; (l.t("仅超期", "Overdue only")) }
            label.check { input type="checkbox" name="warning" value="1" checked[!value("warning").is_empty()]; (l.t("仅预警", "In warning only")) }
            button type="submit" { (l.t("筛选", "Filter")) }
            a href="/web/cases" { (l.t("清除", "Clear")) }
        }
        p.exports {
            (l.t("导出当前筛选", "Export this filter")) ": "
            a href=(export("csv")) { "CSV" } " · "
            a href=(export("xlsx")) { "XLSX" } " · "
            a href=(export("geojson")) { "GeoJSON" }
        }
        p.total id="case-total" { (l.t("共 ", "")) (total) (l.t(" 件", " cases")) }
        @if rows.is_empty() {
            p.empty { (l.t("没有符合条件的案件", "No cases match")) }
        } @else {
            table.cases {
                thead { tr {
                    th { (l.t("上报时间", "Reported")) }
                    th { (l.t("标题", "Title")) }
                    th { (l.t("类别", "Category")) }
                    th { (l.t("位置", "Place")) }
                    th { (l.t("状态", "Status")) }
                    th { (l.t("层级", "Level")) }
                    th { (l.t("承办", "Assignee")) }
                    th { (l.t("时限", "Due")) }
                } }
                tbody {
                    @for r in rows {
                        @let urgency = Status::from_code(&r.status)
                            .filter(|s| s.is_open())
                            .and_then(|_| Urgency::at(r.due_at, r.warn_at, now));
                        @let overdue = urgency == Some(Urgency::Overdue);
                        @let warning = urgency == Some(Urgency::Warning);
                        tr class=[overdue.then_some("overdue").or(warning.then_some("warning"))] {
                            td.nowrap { (when(r.reported_at)) }
                            td { a href={ "/web/cases/" (r.id) } { (r.title) } }
                            td { (l.category(&r.category)) }
                            td { (dir.place(&r.place)) }
                            td { span class={ "status s-" (r.status) } { (l.status(&r.status)) } }
                            td { (l.level(&r.level)) }
                            td { (r.assignee.as_deref().map(|a| assignee_name(&dir, a)).unwrap_or_default()) }
                            td.nowrap {
                                (r.due_at.map(when).unwrap_or_default())
                                @if overdue { " " span.badge { (l.t("超期", "overdue")) } }
                                @if warning { " " span.badge.warn { (l.t("预警", "warning")) } }
                            }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if page_no > 1 {
                a rel="prev" href={ "/web/cases?" (with(q, "page", &(page_no - 1).to_string())) } { "← " (l.t("上一页", "Previous")) }
            }
            span { (l.t("第 ", "Page ")) (page_no) (l.t(" 页", "")) }
            @if more {
                a rel="next" href={ "/web/cases?" (with(q, "page", &(page_no + 1).to_string())) } { (l.t("下一页", "Next")) " →" }
            }
        }
    };
    frame(viewer, l.t("案件列表", "Cases"), "cases", body)
}

/// `user:insp-0001` → insp-0001; `dept:dept-env` → 区生态环境局.
pub(super) fn assignee_name(dir: &super::Directory, assignee: &str) -> String {
    match assignee.split_once(':') {
        Some(("user", id)) => id.to_owned(),
        _ => dir.name(assignee).to_owned(),
    }
}

/// The case if the viewer may see it (an unknown case and a forbidden one look the same).
fn load_case(state: &AppState, viewer: &Viewer, id: &str) -> Result<Case, WebError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(WebError::NotFound);
    }
    let stored = state.store().load_doc(id)?.ok_or(WebError::NotFound)?;
    if !gridlink_core::sync::visibility::sees_document(&viewer.scopes, &stored.scopes) {
        return Err(WebError::NotFound);
    }
    CaseDoc::load(id, &stored.bytes)
        .and_then(|d| d.case())
        .map_err(|e| WebError::Internal(format!("{id}: {e}")))
}

/// `GET /web/cases/{id}`.
pub(super) async fn case_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    blocking(move || {
        let case = load_case(&state, &viewer, &id)?;
        let row = state.store().case_row(&id)?;
        Ok(page(case_markup(&state, &viewer, &case, row.as_ref())))
    })
    .await
}

/// What an event did, in words.
fn describe(l: super::Lang, dir: &super::Directory, kind: &EventKind) -> String {
    match kind {
        EventKind::Reported { photos } => format!(
            "{}（{} {}）",
            l.t("上报", "Reported"),
            photos.len(),
            l.t("张照片", "photos")
        ),
        EventKind::Accepted {
            assignee,
            due_at_ms,
        } => format!(
            "{}{}{}",
            l.t("受理", "Accepted"),
            assignee
                .as_ref()
                .map(|a| format!(" → {a}"))
                .unwrap_or_default(),
            due_at_ms
                .map(|d| format!("，{} {}", l.t("时限", "due"), when(d)))
                .unwrap_or_default()
        ),
        EventKind::RejectedInvalid { reason } => {
            format!("{}：{reason}", l.t("不予受理", "Rejected as invalid"))
        }
        EventKind::DuplicateOf { case_id } => {
            format!("{} {case_id}", l.t("重复案件，同", "Duplicate of"))
        }
        EventKind::ResolvedInGrid { note } => {
            format!("{}：{note}", l.t("网格内办结", "Solved in the grid"))
        }
        EventKind::Escalated { to, reason } => format!(
            "{} {}：{reason}",
            l.t("上报至", "Escalated to"),
            l.level(to.code())
        ),
        EventKind::Dispatched {
            target,
            due_at_ms,
            note,
        } => format!(
            "{} {}{}：{note}",
            l.t("派遣至", "Dispatched to"),
            dir.name(&target.assignee_key()),
            due_at_ms
                .map(|d| format!("（{} {}）", l.t("时限", "due"), when(d)))
                .unwrap_or_default()
        ),
        EventKind::Returned { reason } => format!("{}：{reason}", l.t("退单", "Returned")),
        EventKind::Handling { note } => format!("{}：{note}", l.t("处置中", "In hand")),
        EventKind::Resolved { note } => format!("{}：{note}", l.t("办结", "Resolved")),
        EventKind::Verified { note } => format!("{}：{note}", l.t("核查通过", "Verified")),
        EventKind::VerificationFailed { reason } => {
            format!("{}：{reason}", l.t("核查不通过", "Verification failed"))
        }
        EventKind::Closed { note } => format!("{}：{note}", l.t("结案", "Closed")),
        EventKind::Comment { text } => format!("{}：{text}", l.t("备注", "Comment")),
        EventKind::PhotoAdded { hash } => format!(
            "{} {}",
            l.t("补充照片", "Photo added"),
            hash.get(..12).unwrap_or(hash)
        ),
    }
}

/// The actions an operator may offer on a case, in order: each with a sample event the
/// case's fold accepts now (the real event is built from the form).
const ACTIONS: [&str; 9] = [
    "accept",
    "dispatch",
    "escalate",
    "resolve",
    "verify",
    "verification_failed",
    "close",
    "reject",
    "comment",
];

/// The event an action records, from the form's fields.
fn event_of(
    state: &AppState,
    action: &str,
    f: &HashMap<String, String>,
    now: i64,
) -> Result<EventKind, WebError> {
    let text = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let due = || -> Result<Option<i64>, WebError> {
        match f
            .get("due_days")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=90).contains(d))
                .map(|d| Some(now + d * 86_400_000))
                .ok_or_else(|| {
                    WebError::BadRequest(
                        "时限应为 1 到 90 天 / the time limit must be 1 to 90 days".into(),
                    )
                }),
        }
    };
    Ok(match action {
        "accept" => EventKind::Accepted {
            assignee: None,
            due_at_ms: due()?,
        },
        "dispatch" => {
            let code = text("unit");
            let dir = state.web().directory();
            let unit = dir.units.iter().find(|u| u.code == code).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "请选择派遣单位 / choose a department or unit to dispatch to: {code:?}"
                ))
            })?;
            let target = if unit.kind == "law_enforcement" {
                DispatchTarget::LawEnforcement {
                    code: unit.code.clone(),
                    name: unit.name.clone(),
                }
            } else {
                DispatchTarget::Department {
                    code: unit.code.clone(),
                    name: unit.name.clone(),
                }
            };
            EventKind::Dispatched {
                target,
                due_at_ms: due()?,
                note: text("note"),
            }
        }
        "escalate" => EventKind::Escalated {
            to: Level::ESCALATION_TOP,
            reason: text("note"),
        },
        "resolve" => EventKind::Resolved { note: text("note") },
        "verify" => EventKind::Verified { note: text("note") },
        "verification_failed" => EventKind::VerificationFailed {
            reason: text("note"),
        },
        "close" => EventKind::Closed { note: text("note") },
        "reject" => EventKind::RejectedInvalid {
            reason: text("note"),
        },
        "comment" => EventKind::Comment { text: text("note") },
        other => {
            return Err(WebError::BadRequest(format!(
                "未知操作 {other:?} / unknown action {other:?}"
            )));
        }
    })
}

/// Whether the case's fold would apply this event by this viewer now.
fn applies(case: &Case, viewer: &Viewer, kind: EventKind) -> bool {
    let stamp = Stamp {
        actor: viewer.user.id.clone(),
        role: viewer.user.role,
        device: "web".into(),
        at_ms: crate::state::now_ms().max(case.state.updated_at_ms),
        location: None,
    };
    let event = Event::new(kind, stamp, &case.history);
    let id = event.id.clone();
    let (_, state) = fold(case.history.iter().cloned().chain([event]));
    !state.flagged.iter().any(|f| f.event_id == id)
}

/// The sample event of an action, to test whether it applies.
fn sample(action: &str) -> Option<EventKind> {
    let note = || "—".to_owned();
    Some(match action {
        "accept" => EventKind::Accepted {
            assignee: None,
            due_at_ms: None,
        },
        "dispatch" => EventKind::Dispatched {
            target: DispatchTarget::Department {
                code: "dept-sample".into(),
                name: "—".into(),
            },
            due_at_ms: None,
            note: note(),
        },
        "escalate" => EventKind::Escalated {
            to: Level::ESCALATION_TOP,
            reason: note(),
        },
        "resolve" => EventKind::Resolved { note: note() },
        "verify" => EventKind::Verified { note: note() },
        "verification_failed" => EventKind::VerificationFailed { reason: note() },
        "close" => EventKind::Closed { note: note() },
        "reject" => EventKind::RejectedInvalid { reason: note() },
        "comment" => EventKind::Comment { text: note() },
        _ => return None,
    })
}

fn case_markup(state: &AppState, viewer: &Viewer, case: &Case, row: Option<&CaseRow>) -> Markup {
    let l = viewer.lang;
    let dir = state.web().directory();
    let (d, s) = (&case.details, &case.state);
    let place = row
        .map(|r| dir.place(&r.place))
        .unwrap_or_else(|| d.grid_id.clone());
    let flagged: Vec<&str> = s.flagged.iter().map(|f| f.event_id.as_str()).collect();
    // Staff by name (their id beside it); citizens by id only: their names are personal data.
    let names: HashMap<&str, String> = case
        .history
        .iter()
        .map(|e| e.actor.as_str())
        .chain(s.assignee.as_deref().and_then(|a| a.strip_prefix("user:")))
        .filter_map(|id| {
            let user = state.store().user(id).ok().flatten()?;
            (user.role != gridlink_core::case::Role::Citizen)
                .then(|| (id, format!("{}（{id}）", user.name)))
        })
        .collect();
    let who = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let actions: Vec<&str> = ACTIONS
        .into_iter()
        .filter(|a| sample(a).is_some_and(|k| applies(case, viewer, k)))
        .collect();
    let csrf = &viewer.csrf;
    let label = |a: &str| match a {
        "accept" => l.t("受理", "Accept"),
        "dispatch" => l.t("派遣", "Dispatch"),
        "escalate" => l.t("上报至镇街", "Escalate to the town"),
        "resolve" => l.t("办结", "Resolve"),
        "verify" => l.t("核查通过", "Verify"),
        "verification_failed" => l.t("核查不通过", "Verification failed"),
        "close" => l.t("结案", "Close"),
        "reject" => l.t("不予受理", "Reject as invalid"),
        _ => l.t("备注", "Comment"),
    };
    let body = html! {
        p.back { a href="/web/cases" { "← " (l.t("案件列表", "Cases")) } }
        h1 { (d.title) }
        section.case-head {
            dl.facts {
                dt { (l.t("编号", "Case")) } dd.mono { (d.id) }
                dt { (l.t("状态", "Status")) } dd { span class={ "status s-" (s.status.code()) } { (l.status(s.status.code())) } }
                dt { (l.t("层级", "Level")) } dd { (l.level(s.level.code())) }
                dt { (l.t("类别", "Category")) } dd { (l.category(d.category.code())) }
                dt { (l.t("来源", "Source")) } dd { (l.source(d.source.code())) }
                dt { (l.t("位置", "Place")) } dd { (place) }
                @if let Some(a) = &d.address_id { dt { (l.t("标准地址", "Address code")) } dd.mono { (a) } }
                @if let Some(r) = &d.reporter { dt { (l.t("上报人", "Reporter")) } dd { (r) } }
                @if let Some(a) = &s.assignee {
                    dt { (l.t("承办", "Assignee")) }
                    dd { (a.strip_prefix("user:").map_or_else(|| assignee_name(&dir, a), who)) }
                }
                @if let Some(due) = row.and_then(|r| r.due_at) { dt { (l.t("时限", "Due")) } dd { (when(due)) } }
                @if let Some(at) = s.reported_at_ms { dt { (l.t("上报时间", "Reported")) } dd { (when(at)) } }
            }
            (super::map::case_location(l, &dir, &d.grid_id, d.location.map(|x| x.point)))
        }
        @if !d.description.trim().is_empty() { p.description { (d.description) } }
        @if !s.photos.is_empty() {
            h2 { (l.t("照片", "Photos")) }
            div.photos {
                @for p in &s.photos {
                    a href={ "/web/photos/" (p) } target="_blank" rel="noopener" {
                        img src={ "/web/photos/" (p) "/thumb" } alt=(l.t("案件照片", "case photo")) loading="lazy";
                    }
                }
            }
        }
        @if !actions.is_empty() {
            h2 { (l.t("处置操作", "Actions")) }
            div.actions {
                @for a in &actions {
                    form.action method="post" action={ "/web/cases/" (d.id) "/events" } data-action=(a) {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="action" value=(a);
                        @if *a == "dispatch" {
                            label { (l.t("派遣单位", "Send to"))
                                select name="unit" required {
                                    option value="" { (l.t("请选择", "Choose")) }
                                    @for u in &dir.units {
                                        option value=(u.code) { (u.name) }
                                    }
                                }
                            }
                        }
                        @if *a == "dispatch" || *a == "accept" {
                            label { (l.t("时限（天）", "Time limit (days)")) input name="due_days" type="number" min="1" max="90"; }
                        }
                        @if *a != "accept" {
                            label { (l.t("说明", "Note")) input name="note" maxlength="2000" required[matches!(*a, "escalate" | "verification_failed" | "reject" | "comment")]; }
                        }
                        button type="submit" { (label(a)) }
                    }
                }
            }
        }
        h2 id="timeline" { (l.t("处置过程", "Timeline")) }
        ol.timeline {
            @for e in &case.history {
                li class=[flagged.contains(&e.id.as_str()).then_some("flagged")] data-kind=(e.kind.code()) {
                    div.when { (when(e.at_ms)) }
                    div.what { (describe(l, &dir, &e.kind)) }
                    div.who {
                        (who(&e.actor)) " · " (l.role(e.role)) " · " (l.t("设备", "device")) " " span.mono { (e.device) }
                        @if let Some(loc) = e.location {
                            @let g = gridlink_core::geo::wgs84_to_gcj02(loc.point);
                            " · " (format!("{:.5}, {:.5}", g.lat, g.lon)) " (GCJ-02)"
                        }
                    }
                    @if flagged.contains(&e.id.as_str()) {
                        div.flag { (l.t("未生效：与当时的状态或角色不符", "Not applied: it did not fit the status or role at the time")) }
                    }
                }
            }
        }
    };
    frame(viewer, &d.title, "cases", body)
}

/// `POST /web/cases/{id}/events`: records the chosen action as the operator.
pub(super) async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    blocking(move || {
        let f = form(&body);
        check_csrf(&viewer, &f)?;
        // Only a case the viewer may see; the merge checks writing against the grants again.
        load_case(&state, &viewer, &id)?;
        let action = f.get("action").map(String::as_str).unwrap_or_default();
        let kind = event_of(&state, action, &f, crate::state::now_ms())?;
        let prefix = crate::identity::new_actor_prefix().map_err(WebError::Internal)?;
        let device = state.store().web_device(&viewer.user.id, &prefix)?;
        crate::actions::record_event(&state, &device, &id, kind)?;
        let mut response = Redirect::to(&format!("/web/cases/{id}#timeline")).into_response();
        *response.status_mut() = StatusCode::SEE_OTHER;
        Ok(response)
    })
    .await
}

/// `GET /web/photos/{hash}`.
pub(super) async fn photo(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(hash): Path<String>,
) -> Result<Response, WebError> {
    serve_photo(state, viewer, hash, false).await
}

/// `GET /web/photos/{hash}/thumb`.
pub(super) async fn thumbnail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(hash): Path<String>,
) -> Result<Response, WebError> {
    serve_photo(state, viewer, hash, true).await
}

async fn serve_photo(
    state: AppState,
    viewer: Viewer,
    hash: String,
    thumb: bool,
) -> Result<Response, WebError> {
    blocking(move || {
        let pusher = gridlink_core::sync::access::Pusher {
            user_id: viewer.user.id.clone(),
            role: viewer.user.role,
            device_id: format!("web-{}", viewer.user.id),
            scopes: viewer.scopes.clone(),
        };
        crate::photos::send_photo(&state, &pusher, &hash, thumb).map_err(|e| match e {
            crate::error::ApiError::Refused { status, .. } if status == StatusCode::NOT_FOUND => {
                WebError::NotFound
            }
            other => WebError::from(other),
        })
    })
    .await
}
