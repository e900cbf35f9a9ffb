//! Scores (智能考核) per unit and period: sums of the score lines the merge keeps for every
//! case (see `gridlink_core::case::score` and ADR 0006), with grids rolled up into their
//! villages and towns.
//!
//! `GET /v1/scores?from=MS&to=MS` (operators): JSON, every unit as credited and every area with
//! what it and the areas under it solved, of what the operator's grants let them see
//! (`gridlink_core::sync::visibility`: a town's operator sees its grids, villages and town,
//! and the cases reported there; people and departments only the district's), over whole days (Asia/Shanghai): from the day holding
//! `from` through the day holding the last millisecond before `to`; with the cases reported
//! in `[from, to)`: how many, how many closed (the completion rate), and the 721 split of the
//! solved ones.

use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::{Area, ServerStore, StoreResult};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use gridlink_core::case::{Role, ScoreUnit};
use gridlink_core::sync::visibility::Places;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// Computes the report of what `area` may see (`gridlink_core::sync::visibility`) from the
/// stored lines: the units it sees, and the areas it sees with what they and the areas under
/// them solved; the cases reported in its towns.
pub fn report(
    store: &dyn ServerStore,
    from_ms: i64,
    to_ms: i64,
    area: &Area,
) -> StoreResult<ScoreReport> {
    let (units, areas) = unit_scores(store, from_ms, to_ms, area)?;
    let cases = store.case_stats(from_ms, to_ms, area)?;
    Ok(ScoreReport {
        from_ms,
        to_ms,
        units,
        areas,
        completion_rate: cases.completion_rate(),
        split_721: cases.split_721(),
        cases,
    })
}

/// The scores of the report alone: every unit `area` sees as credited, and every area it sees
/// with what it and the areas under it solved.
pub fn unit_scores(
    store: &dyn ServerStore,
    from_ms: i64,
    to_ms: i64,
    area: &Area,
) -> StoreResult<(Vec<UnitScore>, Vec<UnitScore>)> {
    let totals = store.score_totals(from_ms, to_ms)?;
    let places = Places::new(store.grids()?);
    let mut units = Vec::with_capacity(totals.len());
    let mut areas: BTreeMap<(&'static str, String), (f64, u64)> = BTreeMap::new();
    let mut add = |unit: ScoreUnit, points: f64, lines: u64| {
        if area.sees_unit(&unit, &places) {
            let (kind, id) = unit.parts();
            let entry = areas.entry((kind, id.to_owned())).or_insert((0.0, 0));
            entry.0 += points;
            entry.1 += lines;
        }
    };
    for t in totals {
        let Some(unit) = ScoreUnit::from_key(&t.unit) else {
            continue;
        };
        if !area.sees_unit(&unit, &places) {
            continue;
        }
        // A grid's lines count for its village and town, a village's for its town.
        let (village, town) = match &unit {
            ScoreUnit::Grid(id) => match places.grid(id) {
                Some(p) => (Some(p.village_id.clone()), Some(p.town_id.clone())),
                None => (None, None),
            },
            ScoreUnit::Village(id) => (
                Some(id.clone()),
                places.town_of_village(id).map(str::to_owned),
            ),
            ScoreUnit::Town(id) => (None, Some(id.clone())),
            _ => (None, None),
        };
        if let Some(v) = village {
            add(ScoreUnit::Village(v), t.points, t.lines);
        }
        if let Some(town) = town {
            add(ScoreUnit::Town(town), t.points, t.lines);
        }
        units.push(UnitScore::of(&unit, t.points, t.lines));
    }
    let areas = areas
        .into_iter()
        .map(|((kind, id), (points, lines))| UnitScore {
            kind: kind.to_owned(),
            id,
            points,
            lines,
        })
        .collect();
    Ok((units, areas))
}

impl UnitScore {
    fn of(unit: &ScoreUnit, points: f64, lines: u64) -> UnitScore {
        let (kind, id) = unit.parts();
        UnitScore {
            kind: kind.to_owned(),
            id: id.to_owned(),
            points,
            lines,
        }
    }
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
    crate::http::blocking(move || {
        let device = state.authenticate(&headers)?;
        let area = Area::of(&state.store().grants(&device.user.id)?);
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
        Ok(axum::Json(report(state.store().as_ref(), from, to, &area)?).into_response())
    })
    .await
}
