//! The statistics page: cases per day, completion rate, the 721 split, overdue cases, top
//! categories, and scores per town, grid and department, as SVG charts and as tables.
//!
//! The figures come from the roll-ups every merge keeps (`case_counts`, the score blocks), so
//! they cost the same however long the history is. They are computed once per viewer area and
//! period and kept until the next change is stored (or for a minute, since overdue counts move
//! with the clock), so a room of operators reloading the page costs one computation.

use super::page::{frame, page as html_page, when};
use super::{Viewer, WebError, blocking};
use crate::scores::UnitScore;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use gridlink_core::case::Level;
use gridlink_core::day;
use maud::{Markup, html};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Periods offered, days.
const PERIODS: [i64; 4] = [7, 30, 90, 365];
/// How long figures may be served without a new change stored (overdue counts age).
const MAX_AGE_MS: i64 = 60_000;
/// Rows of the grid score table.
const GRID_ROWS: usize = 20;

/// The figures of one area and period.
#[derive(Debug, Clone, Default)]
pub(super) struct StatsData {
    /// When computed, UTC ms.
    pub at_ms: i64,
    /// Days of the period, first to last (Asia/Shanghai day numbers) with cases reported and
    /// closed among them.
    pub per_day: Vec<(i64, u64, u64)>,
    /// Reported, closed and solved by level in the period.
    pub cases: crate::store::CaseStats,
    /// Reported and closed per category, most reported first.
    pub categories: Vec<(String, u64, u64)>,
    /// Reported and closed per town.
    pub towns: Vec<(String, u64, u64)>,
    /// Open cases past their deadline now.
    pub overdue: u64,
    /// Open cases in warning now (预警).
    pub warning: u64,
    /// Open cases now, by the level holding them (all of the area's, whenever reported).
    pub open_by_level: Vec<(String, u64)>,
    /// Town scores, best first.
    pub town_scores: Vec<UnitScore>,
    /// Grid scores, best first.
    pub grid_scores: Vec<UnitScore>,
    /// Department and law-enforcement scores, best first (district viewers only).
    pub unit_scores: Vec<UnitScore>,
}

fn compute(state: &AppState, viewer: &Viewer, days: i64, now: i64) -> Result<StatsData, WebError> {
    let store = state.store();
    let today = day::day_of(now);
    let (first, from) = day::last_days(now, days);
    let counts = store.case_counts(from, now + 1, &viewer.area)?;
    let mut data = StatsData {
        at_ms: now,
        per_day: (first..=today).map(|d| (d, 0, 0)).collect(),
        ..StatsData::default()
    };
    let mut categories: HashMap<String, (u64, u64)> = HashMap::new();
    let mut towns: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for c in counts {
        data.cases.add(&c);
        let closed = if c.closed { c.n } else { 0 };
        if let Some(slot) = usize::try_from(c.day - first)
            .ok()
            .and_then(|i| data.per_day.get_mut(i))
        {
            slot.1 += c.n;
            slot.2 += closed;
        }
        let cat = categories.entry(c.category).or_default();
        cat.0 += c.n;
        cat.1 += closed;
        let town = towns.entry(c.town_id).or_default();
        town.0 += c.n;
        town.1 += closed;
    }
    data.categories = categories
        .into_iter()
        .map(|(k, (r, c))| (k, r, c))
        .collect();
    data.categories
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    data.towns = towns.into_iter().map(|(k, (r, c))| (k, r, c)).collect();
    data.overdue = store.overdue_count(now, &viewer.area)?;
    data.warning = store.warning_count(now, &viewer.area)?;
    let open: HashMap<String, u64> = store.open_by_level(&viewer.area)?.into_iter().collect();
    data.open_by_level = Level::ALL
        .into_iter()
        .map(|l| {
            (
                l.code().to_owned(),
                open.get(l.code()).copied().unwrap_or(0),
            )
        })
        .collect();

    // The scores of what the viewer's area sees (`gridlink_core::sync::visibility`).
    let (units, areas) = crate::scores::unit_scores(store.as_ref(), from, now + 1, &viewer.area)?;
    let best_first = |kinds: &[&str], units: &[UnitScore]| {
        let mut v: Vec<UnitScore> = units
            .iter()
            .filter(|u| kinds.contains(&u.kind.as_str()))
            .cloned()
            .collect();
        v.sort_by(|a, b| b.points.total_cmp(&a.points).then_with(|| a.id.cmp(&b.id)));
        v
    };
    data.town_scores = best_first(&["town"], &areas);
    data.grid_scores = best_first(&["grid"], &units);
    data.unit_scores = best_first(&["dept", "enf"], &units);
    Ok(data)
}

/// The figures for a viewer and period, from the cache while nothing new was stored.
fn figures(state: &AppState, viewer: &Viewer, days: i64) -> Result<Arc<StatsData>, WebError> {
    let now = crate::state::now_ms();
    let generation = state.store().change_seq()?;
    let key = format!("{}|{days}", viewer.area_key());
    if let Some((at, data)) = state
        .web()
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        && *at == generation
        && now - data.at_ms < MAX_AGE_MS
    {
        return Ok(data.clone());
    }
    let data = Arc::new(compute(state, viewer, days, now)?);
    let mut cache = state.web().stats.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() > 1_000 {
        cache.clear();
    }
    cache.insert(key, (generation, data.clone()));
    Ok(data)
}

/// `GET /web/stats?days=30`.
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    blocking(move || {
        let days = match q.get("days").map(String::as_str) {
            None | Some("") => 30,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| PERIODS.contains(d))
                .ok_or_else(|| {
                    WebError::BadRequest(format!(
                        "统计周期应为 7、30、90 或 365 天 / the period must be 7, 30, 90 or 365 days: {d:?}"
                    ))
                })?,
        };
        let data = figures(&state, &viewer, days)?;
        Ok(html_page(render(&state, &viewer, days, &data)))
    })
    .await
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Cases reported (bars) and closed (darker bars inside) per day.
fn per_day_chart(viewer: &Viewer, data: &StatsData) -> Markup {
    let l = viewer.lang;
    let (w, h, left, bottom) = (900.0, 220.0, 44.0, 24.0);
    let max = data.per_day.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let n = data.per_day.len().max(1) as f64;
    let step = (w - left - 8.0) / n;
    let bar = (step * 0.8).max(1.0);
    let y = |v: u64| (h - bottom) - (v as f64 / max) * (h - bottom - 10.0);
    let label_every = (data.per_day.len() / 10).max(1);
    html! {
        svg.chart id="chart-per-day" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(l.t("每日案件量", "Cases per day")) {
            line.axis x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) {}
            text.tick x=(left - 4.0) y=(y(max as u64) + 4.0) text-anchor="end" { (max as u64) }
            text.tick x=(left - 4.0) y=(h - bottom) text-anchor="end" { "0" }
            @for (i, (day, reported, closed)) in data.per_day.iter().enumerate() {
                @let x = left + i as f64 * step;
                rect.reported x=(format!("{x:.1}")) y=(format!("{:.1}", y(*reported))) width=(format!("{bar:.1}")) height=(format!("{:.1}", (h - bottom) - y(*reported))) {
                    title { (when(day::start_of(*day)).get(..10).unwrap_or_default()) " · " (l.t("上报 ", "reported ")) (reported) " · " (l.t("结案 ", "closed ")) (closed) }
                }
                rect.closed x=(format!("{x:.1}")) y=(format!("{:.1}", y(*closed))) width=(format!("{bar:.1}")) height=(format!("{:.1}", (h - bottom) - y(*closed))) {}
                @if i % label_every == 0 {
                    text.tick x=(format!("{:.1}", x + bar / 2.0)) y=(h - 6.0) text-anchor="middle" { (when(day::start_of(*day)).get(5..10).unwrap_or_default()) }
                }
            }
        }
    }
}

/// One horizontal bar of three shares (the 721 split).
fn split_chart(viewer: &Viewer, split: [u64; 3]) -> Markup {
    let l = viewer.lang;
    let total = split.iter().sum::<u64>().max(1) as f64;
    let labels = [
        l.t("网格/村/镇", "Grid side"),
        l.t("职能部门", "Departments"),
        l.t("综合执法", "Law enforcement"),
    ];
    // Each share's left edge and width.
    let bars: Vec<(f64, f64)> = split
        .iter()
        .scan(0.0, |x, n| {
            let w = *n as f64 / total * 600.0;
            let at = *x;
            *x += w;
            Some((at, w))
        })
        .collect();
    html! {
        svg.chart id="chart-721" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 60" role="img" aria-label="721" {
            @for (i, (n, (x, w))) in split.iter().zip(&bars).enumerate() {
                rect class={ "share s" (i) } x=(format!("{x:.1}")) y="0" width=(format!("{w:.1}")) height="36" {
                    title { (labels[i]) " " (n) }
                }
                @if *w > 60.0 {
                    text.share-label x=(format!("{:.1}", x + 6.0)) y="23" { (labels[i]) " " (percent(*n as f64 / total)) }
                }
            }
        }
    }
}

/// Horizontal bars of the top categories.
fn category_chart(viewer: &Viewer, data: &StatsData) -> Markup {
    let l = viewer.lang;
    let rows: Vec<_> = data.categories.iter().take(10).collect();
    let max = rows.first().map_or(1, |r| r.1.max(1)) as f64;
    let h = rows.len() as f64 * 26.0 + 4.0;
    html! {
        svg.chart id="chart-categories" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 600 " (h) } role="img" aria-label=(l.t("高发类别", "Top categories")) {
            @for (i, (code, reported, _)) in rows.iter().enumerate() {
                @let y = i as f64 * 26.0 + 2.0;
                text.tick x="150" y=(y + 16.0) text-anchor="end" { (l.category(code)) }
                rect.reported x="156" y=(y) width=(format!("{:.1}", *reported as f64 / max * 400.0)) height="20" {
                    title { (l.category(code)) " " (reported) }
                }
                text.tick x=(format!("{:.1}", 160.0 + *reported as f64 / max * 400.0)) y=(y + 16.0) { (reported) }
            }
        }
    }
}

fn score_table(
    viewer: &Viewer,
    dir: &super::Directory,
    rows: &[UnitScore],
    limit: usize,
) -> Markup {
    let l = viewer.lang;
    html! {
        table.scores {
            thead { tr { th { "#" } th { (l.t("单位", "Unit")) } th.num { (l.t("得分", "Points")) } th.num { (l.t("计分项", "Lines")) } } }
            tbody {
                @for (i, u) in rows.iter().take(limit).enumerate() {
                    @let key = match u.kind.as_str() { "dept" | "enf" => format!("{}:{}", u.kind, u.id), _ => u.id.clone() };
                    tr { td { (i + 1) } td { (dir.name(&key)) } td.num { (format!("{:.1}", u.points)) } td.num { (u.lines) } }
                }
            }
        }
    }
}

fn render(state: &AppState, viewer: &Viewer, days: i64, data: &StatsData) -> Markup {
    let l = viewer.lang;
    let dir = state.web().directory();
    let split = data.cases.split_721();
    let solved: u64 = split.iter().sum();
    let share = |n: u64| {
        if solved == 0 {
            "—".to_owned()
        } else {
            percent(n as f64 / solved as f64)
        }
    };
    let body = html! {
        h1 { (l.t("统计", "Statistics")) }
        nav.periods {
            (l.t("周期", "Period")) ": "
            @for p in PERIODS {
                a href={ "/web/stats?days=" (p) } class=[(p == days).then_some("current")] { (p) (l.t(" 天", " days")) }
            }
            span.muted { " · " (l.t("截至 ", "as of ")) (when(data.at_ms)) }
        }
        section.cards {
            div.card-stat id="stat-reported" { span.big { (data.cases.reported) } span { (l.t("上报案件", "cases reported")) } }
            div.card-stat id="stat-closed" { span.big { (data.cases.closed) } span { (l.t("已结案", "closed")) } }
            div.card-stat id="stat-rate" { span.big { (percent(data.cases.completion_rate())) } span { (l.t("办结率", "completion rate")) } }
            div.card-stat id="stat-overdue" { span.big { (data.overdue) } span { (l.t("当前超期", "overdue now")) } }
            div.card-stat id="stat-warning" { span.big { (data.warning) } span { (l.t("当前预警", "in warning now")) } }
            div.card-stat id="stat-per-day" { span.big { (format!("{:.0}", data.cases.reported as f64 / days as f64)) } span { (l.t("日均上报", "reported per day")) } }
        }
        h2 { (l.t("每日案件量", "Cases per day")) }
        p.legend { span.swatch.reported {} (l.t("上报", "reported")) " " span.swatch.closed {} (l.t("其中已结案", "of which closed")) }
        (per_day_chart(viewer, data))
        h2 { (l.t("在办案件（按当前层级）", "Open cases now, by the level holding them")) }
        table id="table-open-levels" {
            thead { tr { th { (l.t("层级", "Level")) } th.num { (l.t("在办", "Open")) } } }
            tbody {
                @for (level, n) in &data.open_by_level {
                    tr data-level=(level) { td { (l.level(level)) } td.num { (n) } }
                }
            }
        }
        h2 { (l.t("“721”分布（已解决案件）", "The 721 split (solved cases)")) }
        (split_chart(viewer, split))
        table id="table-721" {
            thead { tr { th { (l.t("解决层级", "Solved by")) } th.num { (l.t("件数", "Cases")) } th.num { (l.t("占比", "Share")) } th.num { (l.t("目标", "Target")) } } }
            tbody {
                tr { td { (l.t("网格、村（社区）、镇（街道）", "Grid, village, town")) } td.num { (split[0]) } td.num { (share(split[0])) } td.num { "70%" } }
                tr { td { (l.t("职能部门", "Departments")) } td.num { (split[1]) } td.num { (share(split[1])) } td.num { "20%" } }
                tr { td { (l.t("综合执法", "Law enforcement")) } td.num { (split[2]) } td.num { (share(split[2])) } td.num { "10%" } }
            }
        }
        h2 { (l.t("高发类别", "Top categories")) }
        (category_chart(viewer, data))
        table id="table-categories" {
            thead { tr { th { (l.t("类别", "Category")) } th.num { (l.t("上报", "Reported")) } th.num { (l.t("已结案", "Closed")) } th.num { (l.t("办结率", "Completion")) } } }
            tbody {
                @for (code, r, c) in &data.categories {
                    tr { td { (l.category(code)) } td.num { (r) } td.num { (c) } td.num { (percent(*c as f64 / (*r).max(1) as f64)) } }
                }
            }
        }
        h2 { (l.t("各镇街", "By town")) }
        table id="table-towns" {
            thead { tr { th { (l.t("镇街", "Town")) } th.num { (l.t("上报", "Reported")) } th.num { (l.t("已结案", "Closed")) } th.num { (l.t("办结率", "Completion")) } } }
            tbody {
                @for (town, r, c) in &data.towns {
                    tr { td { (dir.name(town)) } td.num { (r) } td.num { (c) } td.num { (percent(*c as f64 / (*r).max(1) as f64)) } }
                }
            }
        }
        h2 { (l.t("考核得分", "Scores")) }
        div.score-grid {
            section { h3 { (l.t("镇街", "Towns")) } (score_table(viewer, &dir, &data.town_scores, usize::MAX)) }
            section { h3 { (l.t("网格（前 ", "Grids (top ")) (GRID_ROWS) (l.t(" 名）", ")")) } (score_table(viewer, &dir, &data.grid_scores, GRID_ROWS)) }
            @if !data.unit_scores.is_empty() {
                section id="scores-departments" { h3 { (l.t("职能部门与执法单位", "Departments and enforcement")) } (score_table(viewer, &dir, &data.unit_scores, usize::MAX)) }
            }
        }
    };
    frame(viewer, l.t("统计", "Statistics"), "stats", body)
}
