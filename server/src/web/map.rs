//! The district map: grid outlines drawn as SVG (no tiles: the network may be closed), shaded
//! by open cases, with the newest open cases as points. Positions are shown in GCJ-02.

use super::page::{Lang, frame, page as html_page};
use super::{Directory, GridShape, Viewer, WebError, blocking};
use crate::state::AppState;
use crate::store::CaseFilter;
use axum::extract::State;
use axum::response::Response;
use gridlink_core::case::Status;
use gridlink_core::geo::LatLon;
use maud::{Markup, html};
use std::collections::HashMap;

/// Open cases drawn as points on the district map (the newest first).
const MAX_POINTS: u32 = 2_000;

/// Maps GCJ-02 positions onto an SVG canvas `width` wide, north up, keeping distances true
/// at the middle latitude.
struct Projection {
    west: f64,
    north: f64,
    scale: f64,
    squeeze: f64,
    width: f64,
    height: f64,
}

impl Projection {
    fn fit(points: impl Iterator<Item = LatLon>, width: f64, margin: f64) -> Option<Projection> {
        let (mut w, mut e, mut s, mut n) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in points {
            w = w.min(p.lon);
            e = e.max(p.lon);
            s = s.min(p.lat);
            n = n.max(p.lat);
        }
        if w > e {
            return None;
        }
        let squeeze = ((s + n) / 2.0).to_radians().cos();
        let span_x = ((e - w) * squeeze).max(1e-6);
        let span_y = (n - s).max(1e-6);
        let scale = (width - 2.0 * margin) / span_x;
        Some(Projection {
            west: w - margin / scale / squeeze,
            north: n + margin / scale,
            scale,
            squeeze,
            width,
            height: span_y * scale + 2.0 * margin,
        })
    }

    fn xy(&self, p: LatLon) -> (f64, f64) {
        (
            (p.lon - self.west) * self.squeeze * self.scale,
            (self.north - p.lat) * self.scale,
        )
    }

    fn path(&self, ring: &[[f64; 2]]) -> String {
        let mut d = String::with_capacity(ring.len() * 16);
        for (i, xy) in ring.iter().enumerate() {
            let (x, y) = self.xy(gcj(xy));
            d.push_str(&format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }));
        }
        d.push('Z');
        d
    }
}

/// A `[lon, lat]` WGS-84 pair in GCJ-02.
fn gcj(xy: &[f64; 2]) -> LatLon {
    gridlink_core::geo::wgs84_to_gcj02(LatLon::new(xy[1], xy[0]))
}

/// The small map of a case page: its grid's outline and the case's point, with the
/// coordinates in GCJ-02 (and the stored WGS-84 beside them).
pub(super) fn case_location(
    l: Lang,
    dir: &Directory,
    grid_id: &str,
    point: Option<LatLon>,
) -> Markup {
    let grid = dir.grid(grid_id);
    let outline: Vec<LatLon> = grid
        .map(|g| g.ring.iter().map(gcj).collect())
        .unwrap_or_default();
    let shown = point.map(gridlink_core::geo::wgs84_to_gcj02);
    let projection = Projection::fit(outline.iter().copied().chain(shown), 320.0, 16.0);
    html! {
        figure.case-map {
            @if let Some(p) = projection {
                svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (p.width) " " (format!("{:.0}", p.height)) } role="img" aria-label=(l.t("案件位置", "Case location")) {
                    @if let Some(g) = grid {
                        path.grid d=(p.path(&g.ring)) {}
                    }
                    @if let Some(pt) = shown {
                        @let (x, y) = p.xy(pt);
                        circle.case-point cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6" {}
                    }
                }
            }
            figcaption {
                @match (shown, point) {
                    (Some(g), Some(w)) => {
                        (format!("GCJ-02 {:.6}, {:.6}", g.lat, g.lon))
                        br;
                        span.muted { (format!("WGS-84 {:.6}, {:.6}", w.lat, w.lon)) }
                    }
                    _ => { (l.t("无定位", "No location")) }
                }
            }
        }
    }
}

/// `GET /web/map`.
pub(super) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    blocking(move || {
        let l = viewer.lang;
        let dir = state.web().directory();
        let grids: Vec<&GridShape> = dir.grids_in(&viewer.area).collect();
        let open: HashMap<String, u64> = state.store().open_by_grid()?.into_iter().collect();
        let points = state.store().case_list(&CaseFilter {
            area: viewer.area.clone(),
            statuses: Status::ALL
                .into_iter()
                .filter(|s| s.is_open())
                .map(|s| s.code().to_owned())
                .collect(),
            limit: MAX_POINTS,
            ..CaseFilter::default()
        })?;
        let max = grids
            .iter()
            .map(|g| open.get(&g.id).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        // Four classes of equal width above zero: class i holds counts in
        // ((i - 1) * max / 4, i * max / 4].
        let class = |n: u64| -> usize {
            if n == 0 || max == 0 {
                0
            } else {
                usize::try_from((n * 4).div_ceil(max)).unwrap_or(4).min(4)
            }
        };
        let range = |i: u64| ((i - 1) * max / 4 + 1, i * max / 4);
        let projection = Projection::fit(
            grids.iter().flat_map(|g| g.ring.iter().map(gcj)),
            960.0,
            12.0,
        );
        let total: u64 = grids
            .iter()
            .map(|g| open.get(&g.id).copied().unwrap_or(0))
            .sum();
        let body = html! {
            h1 { (l.t("区域地图", "District map")) }
            p.muted {
                (grids.len()) (l.t(" 个网格，未办结案件 ", " grids, open cases: ")) (total)
                (l.t("。圆点为最新的 ", ". Points: the newest "))
                (points.len()) (l.t(" 个未办结案件（坐标系 GCJ-02）。", " open cases (coordinates in GCJ-02)."))
            }
            @if let Some(p) = &projection {
                figure.district-map {
                    svg id="district-map" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (p.width) " " (format!("{:.0}", p.height)) } role="img" aria-label=(l.t("网格与未办结案件分布", "Grids and open cases")) {
                        g.grids {
                            @for g in &grids {
                                @let n = open.get(&g.id).copied().unwrap_or(0);
                                a href={ "/web/cases?status=open&grid=" (form_urlencoded::byte_serialize(g.id.as_bytes()).collect::<String>()) } {
                                    path class={ "grid d" (class(n)) } d=(p.path(&g.ring)) data-open=(n) {
                                        title { (g.name) " · " (dir.name(&g.town_id)) " · " (l.t("未办结 ", "open ")) (n) }
                                    }
                                }
                            }
                        }
                        g.points {
                            @for r in &points {
                                @if let Some(pt) = r.point {
                                    @let (x, y) = p.xy(gridlink_core::geo::wgs84_to_gcj02(pt));
                                    a href={ "/web/cases/" (r.id) } {
                                        circle.case-point cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" {
                                            title { (r.title) " · " (l.status(&r.status)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    figcaption.legend {
                        span.hovered {}
                        (l.t("未办结案件数", "Open cases")) ": "
                        span.swatch.d0 {} "0 "
                        @for i in 1..=4u64 {
                            @let (low, high) = range(i);
                            @if low <= high {
                                span class={ "swatch d" (i) } {}
                                @if low == high { (low) " " } @else { (low) "–" (high) " " }
                            }
                        }
                    }
                }
            } @else {
                p.empty { (l.t("尚未导入网格", "No grids imported yet")) }
            }
        };
        Ok(html_page(frame(&viewer, l.t("区域地图", "District map"), "map", body)))
    })
    .await
}
