//! Exports: the case list (with the list's filters) as CSV, XLSX or GeoJSON, and the grids as
//! GeoJSON. Only what the viewer may see; GeoJSON in WGS-84 (RFC 7946) unless `crs=gcj02`
//! asks for the coordinates Chinese map software uses.

use super::cases::{MAX_EXPORT_ROWS, assignee_name, filter_of};
use super::page::when;
use super::{Viewer, WebError, blocking};
use crate::state::AppState;
use crate::store::CaseRow;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gridlink_core::geo::LatLon;
use std::collections::HashMap;

fn wants_gcj02(q: &HashMap<String, String>) -> Result<bool, WebError> {
    match q.get("crs").map(String::as_str) {
        None | Some("" | "wgs84") => Ok(false),
        Some("gcj02") => Ok(true),
        Some(other) => Err(WebError::BadRequest(format!(
            "坐标系应为 wgs84 或 gcj02 / crs must be wgs84 or gcj02: {other:?}"
        ))),
    }
}

fn position(p: LatLon, gcj: bool) -> serde_json::Value {
    let p = if gcj {
        gridlink_core::geo::wgs84_to_gcj02(p)
    } else {
        p
    };
    serde_json::json!([p.lon, p.lat])
}

fn attachment(kind: &str, name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// The columns of the table exports: (zh, en) heading and the cell of a row.
type Column = (
    &'static str,
    &'static str,
    fn(&Viewer, &super::Directory, &CaseRow) -> String,
);

const COLUMNS: [Column; 14] = [
    ("编号", "Case", |_, _, r| r.id.clone()),
    ("标题", "Title", |_, _, r| r.title.clone()),
    ("类别", "Category", |v, _, r| v.lang.category(&r.category)),
    ("来源", "Source", |v, _, r| v.lang.source(&r.source)),
    ("状态", "Status", |v, _, r| v.lang.status(&r.status)),
    ("层级", "Level", |v, _, r| v.lang.level(&r.level)),
    ("镇街", "Town", |_, d, r| {
        d.name(&r.place.town_id).to_owned()
    }),
    ("村社区", "Village", |_, d, r| {
        d.name(&r.place.village_id).to_owned()
    }),
    ("网格", "Grid", |_, _, r| r.place.grid_id.clone()),
    ("承办", "Assignee", |_, d, r| {
        r.assignee
            .as_deref()
            .map(|a| assignee_name(d, a))
            .unwrap_or_default()
    }),
    ("上报时间", "Reported", |_, _, r| when(r.reported_at)),
    ("时限", "Due", |_, _, r| {
        r.due_at.map(when).unwrap_or_default()
    }),
    ("结案时间", "Closed", |_, _, r| {
        r.closed_at.map(when).unwrap_or_default()
    }),
    ("标准地址", "Address code", |_, _, r| {
        r.address_id.clone().unwrap_or_default()
    }),
];

fn csv_field(s: &str) -> String {
    // Quote everything; a leading = + - @ is prefixed so spreadsheets do not run it.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv(viewer: &Viewer, dir: &super::Directory, rows: &[CaseRow]) -> Vec<u8> {
    // A byte-order mark, so Excel opens UTF-8 Chinese text correctly.
    let mut out = String::from("\u{feff}");
    let heading: Vec<String> = COLUMNS
        .iter()
        .map(|(zh, en, _)| csv_field(viewer.lang.t(zh, en)))
        .collect();
    out.push_str(&heading.join(","));
    out.push_str("\r\n");
    for r in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|(_, _, cell)| csv_field(&cell(viewer, dir, r)))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn xlsx(viewer: &Viewer, dir: &super::Directory, rows: &[CaseRow]) -> Result<Vec<u8>, WebError> {
    use rust_xlsxwriter::{Format, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| WebError::Internal(format!("xlsx: {e}"));
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .set_name(viewer.lang.t("案件", "Cases"))
        .map_err(fail)?;
    let bold = Format::new().set_bold();
    for (c, (zh, en, _)) in COLUMNS.iter().enumerate() {
        let col = u16::try_from(c).unwrap_or(u16::MAX);
        sheet
            .write_string_with_format(0, col, viewer.lang.t(zh, en), &bold)
            .map_err(fail)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = u32::try_from(i + 1).unwrap_or(u32::MAX);
        for (c, (_, _, cell)) in COLUMNS.iter().enumerate() {
            let col = u16::try_from(c).unwrap_or(u16::MAX);
            sheet
                .write_string(row, col, cell(viewer, dir, r))
                .map_err(fail)?;
        }
    }
    sheet.set_freeze_panes(1, 0).map_err(fail)?;
    book.save_to_buffer().map_err(fail)
}

fn cases_geojson(viewer: &Viewer, dir: &super::Directory, rows: &[CaseRow], gcj: bool) -> Vec<u8> {
    let features: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "type": "Feature",
                "id": r.id,
                "geometry": r.point.map(|p| serde_json::json!({ "type": "Point", "coordinates": position(p, gcj) })),
                "properties": {
                    "title": r.title,
                    "category": r.category,
                    "category_name": viewer.lang.category(&r.category),
                    "status": r.status,
                    "level": r.level,
                    "town_id": r.place.town_id,
                    "town": dir.name(&r.place.town_id),
                    "village_id": r.place.village_id,
                    "grid_id": r.place.grid_id,
                    "reported_at": when(r.reported_at),
                    "due_at": r.due_at.map(when),
                    "address_id": r.address_id,
                },
            })
        })
        .collect();
    let collection = serde_json::json!({
        "type": "FeatureCollection",
        "crs_note": if gcj { "GCJ-02" } else { "WGS-84" },
        "features": features,
    });
    collection.to_string().into_bytes()
}

/// `GET /web/cases/export/cases.{csv,xlsx,geojson}` with the list's filters.
pub(super) async fn cases(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    blocking(move || {
        let ext = match file.rsplit_once('.') {
            Some(("cases", ext @ ("csv" | "xlsx" | "geojson"))) => ext.to_owned(),
            _ => return Err(WebError::NotFound),
        };
        let gcj = wants_gcj02(&q)?;
        let mut filter = filter_of(&viewer, &q)?;
        filter.offset = 0;
        filter.limit = MAX_EXPORT_ROWS;
        let rows = state.store().case_list(&filter)?;
        let dir = state.web().directory();
        let stamp = when(crate::state::now_ms()).replace([' ', ':'], "-");
        let name = format!("gridlink-cases-{stamp}.{ext}");
        Ok(match ext.as_str() {
            "csv" => attachment("text/csv; charset=utf-8", &name, csv(&viewer, &dir, &rows)),
            "xlsx" => attachment(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &name,
                xlsx(&viewer, &dir, &rows)?,
            ),
            _ => attachment(
                "application/geo+json",
                &name,
                cases_geojson(&viewer, &dir, &rows, gcj),
            ),
        })
    })
    .await
}

/// `GET /web/grids.geojson`: the viewer's grids with their open cases.
pub(super) async fn grids(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    blocking(move || {
        let gcj = wants_gcj02(&q)?;
        let dir = state.web().directory();
        let open: HashMap<String, u64> = state.store().open_by_grid()?.into_iter().collect();
        let features: Vec<serde_json::Value> = dir
            .grids_in(&viewer.area)
            .map(|g| {
                let ring: Vec<serde_json::Value> = g
                    .ring
                    .iter()
                    .map(|xy| position(LatLon::new(xy[1], xy[0]), gcj))
                    .collect();
                serde_json::json!({
                    "type": "Feature",
                    "id": g.id,
                    "geometry": { "type": "Polygon", "coordinates": [ring] },
                    "properties": {
                        "name": g.name,
                        "village_id": g.village_id,
                        "village": dir.name(&g.village_id),
                        "town_id": g.town_id,
                        "town": dir.name(&g.town_id),
                        "open_cases": open.get(&g.id).copied().unwrap_or(0),
                    },
                })
            })
            .collect();
        let body = serde_json::json!({
            "type": "FeatureCollection",
            "crs_note": if gcj { "GCJ-02" } else { "WGS-84" },
            "features": features,
        });
        Ok(attachment(
            "application/geo+json",
            "gridlink-grids.geojson",
            body.to_string().into_bytes(),
        ))
    })
    .await
}
