//! Roll-up arithmetic, backend-neutral: what a case adds to the period sums (score points per
//! unit and day, case counts per day, town, category and outcome, open cases per grid and
//! level). A backend reads what a case contributed before a merge from its stored rows, the
//! merge says what it contributes after, [`RollupDelta`] is the difference, and the backend
//! only adds the delta's entries to its sums.

use super::CaseRow;
use gridlink_core::case::Status;
use gridlink_core::day::day_of;
use std::collections::BTreeMap;

/// Days summed into one block of the long-period score sums.
pub const BLOCK_DAYS: i64 = 30;

/// What a case counts for, as its stored row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCounted {
    /// Report time, UTC ms.
    pub reported_at: i64,
    /// Town.
    pub town_id: String,
    /// Grid.
    pub grid_id: String,
    /// Category code.
    pub category: String,
    /// Status code.
    pub status: String,
    /// Level code.
    pub level: String,
    /// The level that solved it, if solved.
    pub solved_level: Option<String>,
}

impl CaseCounted {
    /// From a case row.
    pub fn of(row: &CaseRow) -> CaseCounted {
        CaseCounted {
            reported_at: row.reported_at,
            town_id: row.place.town_id.clone(),
            grid_id: row.place.grid_id.clone(),
            category: row.category.clone(),
            status: row.status.clone(),
            level: row.level.clone(),
            solved_level: row.solved_level.clone(),
        }
    }
}

/// A stored score line, as it counts: its unit key, points and time (UTC ms).
pub type CountedLine = (String, f64, i64);

/// Key of `case_counts`: day, town, category, closed, solved level (`''` while unsolved).
pub type CountKey = (i64, String, String, bool, String);

/// What one merge changes in the roll-ups. Entries that cancel out are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupDelta {
    /// (unit, day) → (points, lines).
    pub score_days: BTreeMap<(String, i64), (f64, i64)>,
    /// Cases per day, town, category and outcome.
    pub case_counts: BTreeMap<CountKey, i64>,
    /// Open cases per (grid, level).
    pub open_cases: BTreeMap<(String, String), i64>,
}

impl RollupDelta {
    /// The change from what a case counted for (`before`: its stored row and lines) to what it
    /// counts for after a merge. A merge without a case row (a record) touches only the lines.
    pub fn between(
        before: Option<&CaseCounted>,
        before_lines: &[CountedLine],
        after: Option<&CaseCounted>,
        after_lines: &[CountedLine],
    ) -> RollupDelta {
        let mut delta = RollupDelta::default();
        for (lines, sign) in [(before_lines, -1), (after_lines, 1)] {
            for (unit, points, at) in lines {
                let e = delta
                    .score_days
                    .entry((unit.clone(), day_of(*at)))
                    .or_insert((0.0, 0));
                e.0 += f64::from(sign) * points;
                e.1 += i64::from(sign);
            }
        }
        for (case, sign) in [(before, -1), (after, 1)] {
            let Some(c) = case else { continue };
            let key = (
                day_of(c.reported_at),
                c.town_id.clone(),
                c.category.clone(),
                c.status == Status::Closed.code(),
                c.solved_level.clone().unwrap_or_default(),
            );
            *delta.case_counts.entry(key).or_default() += sign;
            if Status::from_code(&c.status).is_some_and(Status::is_open) {
                *delta
                    .open_cases
                    .entry((c.grid_id.clone(), c.level.clone()))
                    .or_default() += sign;
            }
        }
        delta.score_days.retain(|_, (p, n)| *n != 0 || *p != 0.0);
        delta.case_counts.retain(|_, n| *n != 0);
        delta.open_cases.retain(|_, n| *n != 0);
        delta
    }

    /// The score sums by block of [`BLOCK_DAYS`] days.
    pub fn score_blocks(&self) -> BTreeMap<(String, i64), (f64, i64)> {
        let mut blocks: BTreeMap<(String, i64), (f64, i64)> = BTreeMap::new();
        for ((unit, day), (points, lines)) in &self.score_days {
            let e = blocks
                .entry((unit.clone(), day.div_euclid(BLOCK_DAYS)))
                .or_insert((0.0, 0));
            e.0 += points;
            e.1 += lines;
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(status: &str, level: &str, solved: Option<&str>) -> CaseCounted {
        CaseCounted {
            reported_at: 1_781_452_800_000,
            town_id: "t1".into(),
            grid_id: "g1".into(),
            category: "sanitation".into(),
            status: status.into(),
            level: level.into(),
            solved_level: solved.map(Into::into),
        }
    }

    #[test]
    fn a_new_case_adds_itself_and_a_merge_moves_it_between_keys() {
        let new = RollupDelta::between(None, &[], Some(&case("reported", "grid", None)), &[]);
        assert_eq!(new.case_counts.values().sum::<i64>(), 1);
        assert_eq!(
            new.open_cases,
            BTreeMap::from([(("g1".into(), "grid".into()), 1)])
        );
        let closed = RollupDelta::between(
            Some(&case("reported", "grid", None)),
            &[],
            Some(&case("closed", "grid", Some("grid"))),
            &[],
        );
        assert_eq!(
            closed.case_counts.values().sum::<i64>(),
            0,
            "moved, not added"
        );
        assert_eq!(closed.case_counts.len(), 2);
        assert_eq!(
            closed.open_cases,
            BTreeMap::from([(("g1".into(), "grid".into()), -1)])
        );
        let same = RollupDelta::between(
            Some(&case("accepted", "grid", None)),
            &[],
            Some(&case("handling", "grid", None)),
            &[],
        );
        assert_eq!(
            same,
            RollupDelta::default(),
            "still open, same keys: nothing to add"
        );
    }

    #[test]
    fn score_lines_are_replaced_by_day_and_block() {
        let at = 1_781_452_800_000;
        let before = [
            ("grid:g1".to_owned(), 10.0, at),
            ("person:p".to_owned(), 1.0, at),
        ];
        let after = [
            ("grid:g1".to_owned(), -4.0, at + 86_400_000),
            ("person:p".to_owned(), 1.0, at),
        ];
        let delta = RollupDelta::between(None, &before, None, &after);
        let day = day_of(at);
        assert_eq!(
            delta.score_days,
            BTreeMap::from([
                (("grid:g1".to_owned(), day), (-10.0, -1)),
                (("grid:g1".to_owned(), day + 1), (-4.0, 1)),
            ])
        );
        let blocks = delta.score_blocks();
        let total: f64 = blocks.values().map(|(p, _)| p).sum();
        assert_eq!(total, -14.0);
    }
}
