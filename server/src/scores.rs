//! Scores (智能考核) per unit and period: sums of the score lines the merge keeps for every
//! case (see `gridlink_core::case::score` and ADR 0006), with grids rolled up into their
//! villages and towns.
//!
//! `GET /v1/scores?from=MS&to=MS` (operators): JSON, every unit as credited and every area with
//! what it and the areas under it solved, over whole days (Asia/Shanghai): from the day holding
//! `from` through the day holding the last millisecond before `to`; with the cases reported
//! in `[from, to)`: how many, how many closed (the completion rate), and the 721 split of the
//! solved ones.

use crate::error::ApiError;
use crate::store::{ServerStore, StoreResult};
use crate::{AppState, now_ms};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gridlink_core::case::Role;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One unit's score in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitScore {
    /// `person`, `grid`, `village`, `town`, `dept` or `enf`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Points.
    pub points: f64,
    /// Score lines that contributed.
    pub lines: u64,
}

/// The scores of a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreReport {
    /// Start, UTC ms (inclusive).
    pub from_ms: i64,
    /// End, UTC ms (exclusive).
    pub to_ms: i64,
    /// People, departments and enforcement units, and each area's own lines, as credited.
    pub units: Vec<UnitScore>,
    /// Villages with their grids, and towns with their villages and grids.
    pub areas: Vec<UnitScore>,
    /// The cases reported in the period.
    pub cases: crate::store::CaseStats,
    /// Their completion rate (办结率).
    pub completion_rate: f64,
    /// Solved cases by share of the 721 split: grid side, departments, law enforcement.
    pub split_721: [u64; 3],
}

/// Computes the report from the stored lines.
pub fn report(store: &dyn ServerStore, from_ms: i64, to_ms: i64) -> StoreResult<ScoreReport> {
    let totals = store.score_totals(from_ms, to_ms)?;
    let cases = store.case_stats(from_ms, to_ms)?;
    let grids = store.grids()?;
    let village_of: HashMap<&str, &str> = grids
        .iter()
        .map(|g| (g.grid_id.as_str(), g.village_id.as_str()))
        .collect();
    let town_of_village: HashMap<&str, &str> = grids
        .iter()
        .map(|g| (g.village_id.as_str(), g.town_id.as_str()))
        .collect();
    let mut units = Vec::with_capacity(totals.len());
    let mut areas: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    let mut add = |kind: &str, id: &str, points: f64, lines: u64| {
        let entry = areas
            .entry((kind.to_owned(), id.to_owned()))
            .or_insert((0.0, 0));
        entry.0 += points;
        entry.1 += lines;
    };
    for t in totals {
        let (kind, id) = t.unit.split_once(':').unwrap_or(("", t.unit.as_str()));
        match kind {
            "grid" => {
                if let Some(village) = village_of.get(id) {
                    add("village", village, t.points, t.lines);
                    if let Some(town) = town_of_village.get(village) {
                        add("town", town, t.points, t.lines);
                    }
                }
            }
            "village" => {
                add("village", id, t.points, t.lines);
                if let Some(town) = town_of_village.get(id) {
                    add("town", town, t.points, t.lines);
                }
            }
            "town" => add("town", id, t.points, t.lines),
            _ => {}
        }
        units.push(UnitScore {
            kind: kind.to_owned(),
            id: id.to_owned(),
            points: t.points,
            lines: t.lines,
        });
    }
    Ok(ScoreReport {
        from_ms,
        to_ms,
        units,
        areas: areas
            .into_iter()
            .map(|((kind, id), (points, lines))| UnitScore {
                kind,
                id,
                points,
                lines,
            })
            .collect(),
        completion_rate: cases.completion_rate(),
        split_721: cases.split_721(),
        cases,
    })
}

/// The period of `GET /v1/scores`.
#[derive(Debug, Deserialize)]
pub struct Period {
    from: Option<i64>,
    to: Option<i64>,
}

/// `GET /v1/scores`: operators only. The default period is the last 30 days.
pub async fn scores(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(period): Query<Period>,
) -> Result<Response, ApiError> {
    crate::blocking(move || {
        let device = state.authenticate(&headers)?;
        if device.user.role != Role::Operator {
            return Err(ApiError::Forbidden(
                "只有指挥中心可查看考核分数 / only the command centre sees scores".into(),
            ));
        }
        let to = period.to.unwrap_or_else(now_ms);
        let from = period.from.unwrap_or(to - 30 * 24 * 3_600_000);
        if from >= to {
            return Err(ApiError::BadRequest(
                "起始时间须早于结束时间 / from must be before to".into(),
            ));
        }
        Ok(axum::Json(report(state.store().as_ref(), from, to)?).into_response())
    })
    .await
}
