//! 智能考核: the scoring rule, computed from a case's history alone.
//!
//! A case earns points for the unit that solved it and for the person who did, by the level
//! that solved it — the lower the better (grid > village > town = department > law
//! enforcement), so that solving things low pays — plus a bonus when it was solved within its
//! time limit and a penalty per day late. There is **no credit without verification**: the
//! points are granted by the `verified` event, at its time (which decides the period). A
//! return (退单) costs the unit that sent the case back; a failed verification (reopening)
//! costs the unit and person whose fix did not hold. The reporter earns a point for every valid
//! report (not refused as invalid or as a duplicate).
//!
//! Everything is read from the applied events in fold order, so every replica that holds the
//! same history computes the same lines; the server sums them per unit and period.

use super::{Case, DispatchTarget, EventKind, Level, TimeLimits};
use crate::sync::scope::GridPlace;
use serde::{Deserialize, Serialize};

/// Who a score line is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScoreUnit {
    /// A person (user id).
    Person(String),
    /// A grid.
    Grid(String),
    /// A village or community.
    Village(String),
    /// A town or street.
    Town(String),
    /// A department (code).
    Department(String),
    /// A law-enforcement unit (code).
    Enforcement(String),
}

impl ScoreUnit {
    /// The unit as stored and shown: `person:ID`, `grid:ID`, `village:ID`, `town:ID`,
    /// `dept:CODE` or `enf:CODE`.
    pub fn key(&self) -> String {
        let (kind, id) = self.parts();
        format!("{kind}:{id}")
    }

    /// Its kind (`person`, `grid`, `village`, `town`, `dept`, `enf`) and id.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            ScoreUnit::Person(id) => ("person", id),
            ScoreUnit::Grid(id) => ("grid", id),
            ScoreUnit::Village(id) => ("village", id),
            ScoreUnit::Town(id) => ("town", id),
            ScoreUnit::Department(id) => ("dept", id),
            ScoreUnit::Enforcement(id) => ("enf", id),
        }
    }

    /// The unit of a stored key ([`ScoreUnit::key`]); `None` for anything else.
    pub fn from_key(key: &str) -> Option<ScoreUnit> {
        let (kind, id) = key.split_once(':')?;
        let id = id.to_owned();
        Some(match kind {
            "person" => ScoreUnit::Person(id),
            "grid" => ScoreUnit::Grid(id),
            "village" => ScoreUnit::Village(id),
            "town" => ScoreUnit::Town(id),
            "dept" => ScoreUnit::Department(id),
            "enf" => ScoreUnit::Enforcement(id),
            _ => return None,
        })
    }
}

/// Why a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScoreReason {
    /// Solved at this level and verified.
    Solved,
    /// Solved within the time limit.
    OnTime,
    /// Solved after the time limit.
    Late,
    /// Sent back (退单).
    Returned,
    /// The fix failed verification (reopened).
    Reopened,
    /// A valid report.
    Reported,
}

/// One line of a case's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreLine {
    /// Who.
    pub unit: ScoreUnit,
    /// Points (negative for penalties).
    pub points: f64,
    /// Why.
    pub reason: ScoreReason,
    /// When it counts (device time of the deciding event), UTC ms.
    pub at_ms: i64,
}

/// The configurable rule. The defaults are the district's published rule (documented in
/// ADR 0006); every number can be changed by the command centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoringRule {
    /// Points for solving, by level: grid, village, town, department, law enforcement.
    pub solved: [f64; 5],
    /// Bonus for solving within the time limit.
    pub on_time_bonus: f64,
    /// Penalty per started day late (positive number, subtracted).
    pub late_per_day: f64,
    /// Largest lateness penalty.
    pub late_cap: f64,
    /// Penalty for a return (退单), to the returning unit.
    pub returned: f64,
    /// Penalty for a failed verification, to the unit and the person whose fix failed.
    pub reopened: f64,
    /// Points for a valid report, to the reporter.
    pub reported: f64,
    /// The time limits that decide "on time" when no event set a deadline.
    pub limits: TimeLimits,
}

impl Default for ScoringRule {
    fn default() -> Self {
        ScoringRule {
            solved: [10.0, 8.0, 6.0, 6.0, 4.0],
            on_time_bonus: 2.0,
            late_per_day: 1.0,
            late_cap: 6.0,
            returned: 2.0,
            reopened: 4.0,
            reported: 1.0,
            limits: TimeLimits::default(),
        }
    }
}

use crate::day::DAY_MS;

/// The unit that holds a case at `level` in `place`, or at the dispatch `target`.
fn unit_at(level: Level, place: &GridPlace, target: Option<&DispatchTarget>) -> Option<ScoreUnit> {
    Some(match (level, target) {
        (Level::Grid, _) => ScoreUnit::Grid(place.grid_id.clone()),
        (Level::Village, _) => ScoreUnit::Village(place.village_id.clone()),
        (Level::Town, _) => ScoreUnit::Town(place.town_id.clone()),
        (_, Some(DispatchTarget::Department { code, .. })) => ScoreUnit::Department(code.clone()),
        (_, Some(DispatchTarget::LawEnforcement { code, .. })) => {
            ScoreUnit::Enforcement(code.clone())
        }
        (Level::Department | Level::LawEnforcement, None) => return None,
    })
}

/// A fix awaiting verification.
#[derive(Clone)]
struct Fix {
    /// The unit that held the case.
    unit: Option<ScoreUnit>,
    /// Who recorded the fix.
    person: String,
    /// The level it was solved at.
    level: Level,
    /// When.
    at: i64,
    /// Its deadline then.
    due: i64,
}

/// The score lines of one case at its place.
pub fn score(case: &Case, place: &GridPlace, rule: &ScoringRule) -> Vec<ScoreLine> {
    let flagged = |id: &str| case.state.flagged.iter().any(|f| f.event_id == id);
    let mut lines = Vec::new();
    // When: the deadline's own clock. Who: the level and the unit a dispatch named.
    let mut clock = super::deadline::Clock::default();
    let mut level = Level::Grid;
    let mut before_dispatch = Level::Grid;
    let mut target: Option<DispatchTarget> = None;
    let mut fix: Option<Fix> = None;
    // The last verified fix and where its credit lines start in `lines` (nothing is pushed
    // between a verification and a failed re-check of it: the case is verified or closed).
    let mut credited: Option<(usize, Fix)> = None;
    let mut reporter: Option<String> = None;
    // The report counts once the case is taken on (accepted, routed or solved) and not found
    // invalid or a duplicate: no credit for a report nobody could act on.
    let mut taken_on: Option<i64> = None;
    let mut valid = true;
    for event in case.history.iter().filter(|e| !flagged(&e.id)) {
        let at = event.at_ms;
        match &event.kind {
            EventKind::Reported { .. } => {
                reporter = Some(event.actor.clone());
            }
            EventKind::Accepted { .. }
            | EventKind::Escalated { .. }
            | EventKind::Dispatched { .. }
            | EventKind::ResolvedInGrid { .. }
            | EventKind::Resolved { .. }
                if taken_on.is_none() =>
            {
                taken_on = Some(at);
            }
            _ => {}
        }
        // The deadline a fix is held to is the one before the fix.
        let due = clock.due(case, &rule.limits);
        clock.step(event);
        match &event.kind {
            EventKind::Reported { .. } | EventKind::Accepted { .. } => {}
            EventKind::RejectedInvalid { .. } | EventKind::DuplicateOf { .. } => valid = false,
            EventKind::Escalated { to, .. } => level = *to,
            EventKind::Dispatched { target: t, .. } => {
                before_dispatch = level;
                level = t.level();
                target = Some(t.clone());
            }
            EventKind::Returned { .. } => {
                if let Some(unit) = unit_at(level, place, target.as_ref()) {
                    lines.push(ScoreLine {
                        unit,
                        points: -rule.returned,
                        reason: ScoreReason::Returned,
                        at_ms: at,
                    });
                }
                level = before_dispatch;
                target = None;
            }
            EventKind::ResolvedInGrid { .. } | EventKind::Resolved { .. } => {
                fix = Some(Fix {
                    unit: unit_at(level, place, target.as_ref()),
                    person: event.actor.clone(),
                    level,
                    at,
                    due: due.unwrap_or(i64::MAX),
                });
            }
            EventKind::VerificationFailed { .. } => {
                // A fix found wanting before or after it was verified: a credit already
                // granted is withdrawn, and the reopening costs.
                let failed = fix.take().or_else(|| {
                    credited.take().map(|(start, fix)| {
                        lines.truncate(start);
                        fix
                    })
                });
                if let Some(Fix { unit, person, .. }) = failed {
                    for unit in unit.into_iter().chain([ScoreUnit::Person(person)]) {
                        lines.push(ScoreLine {
                            unit,
                            points: -rule.reopened,
                            reason: ScoreReason::Reopened,
                            at_ms: at,
                        });
                    }
                }
            }
            EventKind::Verified { .. } => {
                let Some(verified) = fix.take() else {
                    continue;
                };
                credited = Some((lines.len(), verified.clone()));
                let Fix {
                    unit,
                    person,
                    level: solved_level,
                    at: solved_at,
                    due,
                } = verified;
                let mut credit = |points: f64, reason: ScoreReason| {
                    for unit in unit
                        .iter()
                        .cloned()
                        .chain([ScoreUnit::Person(person.clone())])
                    {
                        lines.push(ScoreLine {
                            unit,
                            points,
                            reason,
                            at_ms: at,
                        });
                    }
                };
                credit(
                    rule.solved[super::deadline::level_index(solved_level)],
                    ScoreReason::Solved,
                );
                if solved_at <= due {
                    credit(rule.on_time_bonus, ScoreReason::OnTime);
                } else {
                    let days = (solved_at.saturating_sub(due) + DAY_MS - 1) / DAY_MS;
                    let penalty = (days as f64 * rule.late_per_day).min(rule.late_cap);
                    credit(-penalty, ScoreReason::Late);
                }
            }
            EventKind::Handling { .. }
            | EventKind::Closed { .. }
            | EventKind::Comment { .. }
            | EventKind::PhotoAdded { .. } => {}
        }
    }
    if let (Some(person), Some(at), true) = (reporter, taken_on, valid) {
        lines.push(ScoreLine {
            unit: ScoreUnit::Person(person),
            points: rule.reported,
            reason: ScoreReason::Reported,
            at_ms: at,
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::ScoreUnit;

    #[test]
    fn unit_keys_round_trip_and_others_are_none() {
        for unit in [
            ScoreUnit::Person("insp-0001".into()),
            ScoreUnit::Grid("320509001001-01".into()),
            ScoreUnit::Village("320509001001".into()),
            ScoreUnit::Town("320509001".into()),
            ScoreUnit::Department("dept-env".into()),
            ScoreUnit::Enforcement("enf-01".into()),
        ] {
            assert_eq!(ScoreUnit::from_key(&unit.key()), Some(unit.clone()));
            assert!(unit.key().starts_with(unit.parts().0));
        }
        assert_eq!(
            ScoreUnit::Town("t".into()).key(),
            "town:t",
            "the stored form"
        );
        for bad in ["", "town", "planet:x"] {
            assert_eq!(ScoreUnit::from_key(bad), None, "{bad:?}");
        }
    }
}
