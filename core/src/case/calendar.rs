//! Working days (工作日): the official holiday calendar with its make-up working days (调休).
//!
//! Chinese government work orders count their time limits in working days: Monday to Friday,
//! except the public holidays the State Council announces each year (国务院办公厅关于部分节假日
//! 安排的通知), plus the weekend days that notice declares working days to make up for a long
//! holiday. Operators load the notice as a text file, one line per date or range:
//!
//! ```text
//! # 2026年部分节假日安排
//! 2026-02-15..2026-02-23 休 春节
//! 2026-02-14 班 春节调休
//! ```
//!
//! `休` (also `放假`, `holiday`) marks days off, `班` (also `上班`, `workday`) working days;
//! the name is optional; `#` starts a comment. Dates are the district's local days (see
//! [`crate::day`]).

use crate::day::{day_of, start_of};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the notice makes of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// 休: a public holiday (or a weekday given off).
    Holiday,
    /// 班: a weekend day worked to make up for a holiday.
    Workday,
}

/// Why a calendar file was refused: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A line that is not `DATE[..DATE] 休|班 [name]`.
    #[error("第{line}行：{reason_zh} / line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong, in Chinese.
        reason_zh: String,
        /// What is wrong, in English.
        reason: String,
    },
    /// One date marked both a holiday and a working day.
    #[error(
        "{date} 既是假日又是工作日（第{line}行）/ {date} is both a holiday and a working day (line {line})"
    )]
    Contradiction {
        /// The date.
        date: String,
        /// The line that contradicts an earlier one.
        line: usize,
    },
}

/// The holiday calendar: exceptions to "Monday to Friday".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkCalendar {
    /// Local day number (days since 1970-01-01 local) → what the notice makes of it.
    #[serde(with = "by_date")]
    days: BTreeMap<i64, DayKind>,
}

/// The longest range one line may give (the longest holiday is nine days; a year is the most
/// that makes sense).
const MAX_RANGE_DAYS: i64 = 366;

impl WorkCalendar {
    /// Monday to Friday, no holidays.
    pub fn weekdays() -> WorkCalendar {
        WorkCalendar::default()
    }

    /// Reads a notice file (see the module documentation). A bad line refuses the whole file,
    /// naming the line: a calendar half loaded would put wrong deadlines on every case.
    pub fn parse(text: &str) -> Result<WorkCalendar, CalendarError> {
        let mut calendar = WorkCalendar::default();
        calendar.merge(text)?;
        Ok(calendar)
    }

    /// Adds a notice file to this calendar (another year's, usually); a date it gives again
    /// must agree.
    pub fn merge(&mut self, text: &str) -> Result<(), CalendarError> {
        let mut added = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            let content = content.trim_start_matches('\u{feff}');
            if content.is_empty() {
                continue;
            }
            let bad = |zh: &str, en: &str| CalendarError::Line {
                line,
                reason_zh: zh.to_owned(),
                reason: en.to_owned(),
            };
            let mut words = content.split_whitespace();
            let (Some(dates), Some(kind)) = (words.next(), words.next()) else {
                return Err(bad(
                    "应为“日期[..日期] 休|班 [名称]”",
                    "expected `DATE[..DATE] 休|班 [name]`",
                ));
            };
            let kind = match kind {
                "休" | "放假" | "holiday" => DayKind::Holiday,
                "班" | "上班" | "workday" => DayKind::Workday,
                _ => {
                    return Err(bad(
                        "第二项应为“休”或“班”",
                        "the second word must be 休 or 班",
                    ));
                }
            };
            let (first, last) = match dates.split_once("..") {
                Some((a, b)) => (a, b),
                None => (dates, dates),
            };
            let day = |text: &str| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(day_number)
                    .map_err(|_| bad("日期应为 YYYY-MM-DD", "dates are YYYY-MM-DD"))
            };
            let (first, last) = (day(first)?, day(last)?);
            if last < first || last - first >= MAX_RANGE_DAYS {
                return Err(bad(
                    "日期范围应从早到晚且不超过一年",
                    "a range runs forward and spans at most a year",
                ));
            }
            for d in first..=last {
                let known = added.get(&d).or_else(|| self.days.get(&d));
                if known.is_some_and(|k| *k != kind) {
                    return Err(CalendarError::Contradiction {
                        date: date_text(d),
                        line,
                    });
                }
                added.insert(d, kind);
            }
        }
        self.days.extend(added);
        Ok(())
    }

    /// The dates the calendar names, in order, with what it makes of them.
    pub fn exceptions(&self) -> impl Iterator<Item = (String, DayKind)> + '_ {
        self.days.iter().map(|(d, k)| (date_text(*d), *k))
    }

    /// Whether a local day (see [`crate::day::day_of`]) is a working day.
    pub fn is_working_day(&self, day: i64) -> bool {
        match self.days.get(&day) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::Workday) => true,
            // 1970-01-01 was a Thursday: Monday is 0.
            None => (day + 3).rem_euclid(7) < 5,
        }
    }

    /// The instant `duration_ms` of working time after `start_ms`: only time on working days
    /// counts, so a case reported on a Saturday starts its clock on Monday at 00:00, and
    /// 72 hours from Friday 10:00 end on Wednesday 10:00.
    pub fn add_working(&self, start_ms: i64, duration_ms: i64) -> i64 {
        let mut left = duration_ms.max(0);
        let mut at = start_ms;
        // Ten years of days off in a row cannot happen; the bound keeps a corrupt calendar
        // from looping.
        for _ in 0..3_660 {
            let day = day_of(at);
            let end = start_of(day + 1);
            if self.is_working_day(day) {
                let take = left.min(end - at);
                left -= take;
                at += take;
                if left == 0 {
                    return at;
                }
            }
            at = end;
        }
        start_ms.saturating_add(duration_ms)
    }

    /// Working time between two instants (zero if `to_ms` is not after `from_ms`).
    pub fn working_between(&self, from_ms: i64, to_ms: i64) -> i64 {
        let mut spent = 0;
        let mut at = from_ms;
        while at < to_ms {
            let day = day_of(at);
            let end = start_of(day + 1).min(to_ms);
            if self.is_working_day(day) {
                spent += end - at;
            }
            at = end;
        }
        spent
    }
}

/// Days since 1970-01-01 of a date.
fn day_number(date: chrono::NaiveDate) -> i64 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (date - epoch).num_days()
}

/// `YYYY-MM-DD` of a day number.
fn date_text(day: i64) -> String {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    epoch
        .checked_add_signed(chrono::TimeDelta::days(day))
        .map_or_else(
            || format!("day {day}"),
            |d| d.format("%Y-%m-%d").to_string(),
        )
}

/// The calendar serialized by date (`{"2026-02-15": "holiday", …}`), readable in settings.
mod by_date {
    use super::{DayKind, date_text, day_number};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub(super) fn serialize<S: Serializer>(
        days: &BTreeMap<i64, DayKind>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        days.iter()
            .map(|(d, k)| (date_text(*d), *k))
            .collect::<BTreeMap<String, DayKind>>()
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<i64, DayKind>, D::Error> {
        BTreeMap::<String, DayKind>::deserialize(deserializer)?
            .into_iter()
            .map(|(date, kind)| {
                chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d")
                    .map(|d| (day_number(d), kind))
                    .map_err(|_| D::Error::custom(format!("not a date: {date}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-02: 春节 15–23 off, Saturday 14 and Saturday 28 worked.
    const SPRING_FESTIVAL: &str = "\
# 春节
2026-02-15..2026-02-23 休 春节
2026-02-14 班 春节调休
2026-02-28 班 春节调休
";

    fn at(date: &str, hour: i64) -> i64 {
        let day = day_number(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap());
        start_of(day) + hour * 3_600_000
    }

    #[test]
    fn weekends_are_off_and_weekdays_work() {
        let calendar = WorkCalendar::weekdays();
        // 2026-12-04 is a Friday.
        let friday = day_of(at("2026-12-04", 10));
        assert!(calendar.is_working_day(friday));
        assert!(!calendar.is_working_day(friday + 1));
        assert!(!calendar.is_working_day(friday + 2));
        assert!(calendar.is_working_day(friday + 3));
        // 72 hours from Friday 10:00 end on Wednesday 10:00.
        assert_eq!(
            calendar.add_working(at("2026-12-04", 10), 72 * 3_600_000),
            at("2026-12-09", 10)
        );
        // Reported on a Saturday: the clock starts on Monday.
        assert_eq!(
            calendar.add_working(at("2026-12-05", 15), 24 * 3_600_000),
            at("2026-12-08", 0)
        );
    }

    #[test]
    fn a_holiday_stops_the_clock_and_a_make_up_day_runs_it() {
        let calendar = WorkCalendar::parse(SPRING_FESTIVAL).unwrap();
        // Friday 13 Feb 09:00 + 3 working days: the rest of Friday (15 h), Saturday 14 (a
        // make-up working day, 24 h), then nothing until Tuesday 24 Feb (33 h more).
        assert_eq!(
            calendar.add_working(at("2026-02-13", 9), 72 * 3_600_000),
            at("2026-02-25", 9)
        );
        assert!(calendar.is_working_day(day_of(at("2026-02-14", 12))));
        assert!(!calendar.is_working_day(day_of(at("2026-02-16", 12))));
        assert!(calendar.is_working_day(day_of(at("2026-02-28", 12))));
        // And back: the working time between is the limit.
        assert_eq!(
            calendar.working_between(at("2026-02-13", 9), at("2026-02-25", 9)),
            72 * 3_600_000
        );
        // Without the calendar the same limit ends before the festival is over.
        assert_eq!(
            WorkCalendar::weekdays().add_working(at("2026-02-13", 9), 72 * 3_600_000),
            at("2026-02-18", 9)
        );
    }

    #[test]
    fn a_bad_line_refuses_the_file_and_names_the_line() {
        for (text, line) in [
            ("2026-02-15 休\n2026-13-01 休", 2),
            ("2026-02-15 休\n\n2026-02-16 maybe", 3),
            ("2026-02-20..2026-02-15 休", 1),
            ("2026-01-01..2027-06-01 休", 1),
            ("2026-02-15", 1),
        ] {
            match WorkCalendar::parse(text) {
                Err(CalendarError::Line { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            WorkCalendar::parse("2026-02-15 休\n2026-02-15 班"),
            Err(CalendarError::Contradiction { line: 2, .. })
        ));
        // Comments, blank lines, a byte-order mark and names are fine.
        let calendar =
            WorkCalendar::parse("\u{feff}# 通知\n\n2026-10-01..2026-10-07 放假 国庆节 # 七天\n")
                .unwrap();
        assert_eq!(calendar.exceptions().count(), 7);
    }

    #[test]
    fn the_calendar_round_trips_through_json_by_date() {
        let calendar = WorkCalendar::parse(SPRING_FESTIVAL).unwrap();
        let json = serde_json::to_string(&calendar).unwrap();
        assert!(json.contains("\"2026-02-14\":\"workday\""), "{json}");
        assert_eq!(
            serde_json::from_str::<WorkCalendar>(&json).unwrap(),
            calendar
        );
    }
}
