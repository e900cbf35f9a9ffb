//! Time limits (办理时限): how long each level has for a case, by category and priority, and
//! the deadline a case is held to now.
//!
//! An `accepted` or `dispatched` event may set a deadline explicitly; otherwise the case must be
//! solved within the limit of the level that holds it, counted from when its clock started:
//! the report, a dispatch to a department or law enforcement, or a return from one. An
//! escalation keeps the clock of the report: the level above gets its own, longer limit, but
//! counted from the report, so the time the case already spent is not given back and a case
//! escalated past the level above's limit is overdue at once. (A lateness carried over as it
//! is would make the platform's automatic escalation of overdue cases climb every rung at once.)
//!
//! Limits of a day or more count working days with the district's holiday calendar
//! ([`WorkCalendar`]), as government work orders do; shorter ones (urgent cases) count clock
//! hours. A case is in warning (预警) once `warn_percent` of its time is spent, and overdue
//! (超期) after its deadline. The table is a value the command centre configures;
//! [`TimeLimits::default`] is the district's published one.

use super::calendar::WorkCalendar;
use super::{Case, Category, Event, EventKind, Level, Status};
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// How urgent a case is (紧急程度).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate,
)]
pub enum Priority {
    /// 紧急: danger to people or property now.
    Urgent,
    /// 一般.
    #[default]
    Normal,
    /// 不急.
    Low,
}

impl Priority {
    /// Every priority.
    pub const ALL: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Low];

    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The priority with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.code() == code)
    }

    /// Simplified Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Priority::Urgent => "紧急",
            Priority::Normal => "一般",
            Priority::Low => "不急",
        }
    }
}

/// One exception to a level's default limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRule {
    /// The level it applies to.
    pub level: Level,
    /// Only for this category, if set.
    pub category: Option<Category>,
    /// Only for this priority, if set.
    pub priority: Option<Priority>,
    /// The limit, hours.
    pub hours: i64,
}

/// The time-limit table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeLimits {
    /// Default limit per level (grid, village, town, department, law enforcement), hours.
    pub default_hours: [i64; 5],
    /// Exceptions (longer or shorter than the default); when several match, the strictest
    /// (shortest) applies, so an urgent case is never slowed by its category's rule.
    pub rules: Vec<LimitRule>,
    /// Count limits of 24 hours or more in working days (24 hours = one working day); off,
    /// every limit counts clock hours.
    #[serde(default = "yes")]
    pub working_days: bool,
    /// The holidays and make-up working days (the State Council's yearly notice).
    #[serde(default)]
    pub calendar: WorkCalendar,
    /// The share of a case's time after which it is in warning (预警), percent.
    #[serde(default = "default_warn_percent")]
    pub warn_percent: u8,
}

fn yes() -> bool {
    true
}

fn default_warn_percent() -> u8 {
    75
}

/// Where a case stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Time is left.
    OnTime,
    /// 预警: most of its time is spent.
    Warning,
    /// 超期: past its deadline.
    Overdue,
}

impl Urgency {
    /// Where an open case with this deadline and warning time stands at `now_ms` (the form the
    /// stored case rows and the SQL filters use); none without a deadline.
    pub fn at(due_ms: Option<i64>, warn_ms: Option<i64>, now_ms: i64) -> Option<Urgency> {
        let due = due_ms?;
        Some(if now_ms > due {
            Urgency::Overdue
        } else if warn_ms.is_some_and(|w| now_ms >= w) {
            Urgency::Warning
        } else {
            Urgency::OnTime
        })
    }

    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Urgency::OnTime => "on_time",
            Urgency::Warning => "warning",
            Urgency::Overdue => "overdue",
        }
    }

    /// Simplified Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Urgency::OnTime => "正常",
            Urgency::Warning => "预警",
            Urgency::Overdue => "超期",
        }
    }
}

impl Default for TimeLimits {
    fn default() -> Self {
        let rule = |level, category, priority, hours| LimitRule {
            level,
            category,
            priority,
            hours,
        };
        TimeLimits {
            default_hours: [72, 120, 168, 240, 360],
            rules: vec![
                rule(Level::Grid, None, Some(Priority::Urgent), 4),
                rule(Level::Village, None, Some(Priority::Urgent), 12),
                rule(Level::Town, None, Some(Priority::Urgent), 24),
                rule(Level::Department, None, Some(Priority::Urgent), 48),
                rule(Level::LawEnforcement, None, Some(Priority::Urgent), 72),
                // Fire hazards and public security do not wait three days in a grid.
                rule(Level::Grid, Some(Category::FireHazard), None, 24),
                rule(Level::Grid, Some(Category::PublicSecurity), None, 24),
                rule(Level::Department, Some(Category::FireHazard), None, 72),
                // Illegal construction goes through enforcement procedure (notice, hearing).
                rule(
                    Level::LawEnforcement,
                    Some(Category::IllegalConstruction),
                    None,
                    720,
                ),
                rule(Level::Grid, None, Some(Priority::Low), 168),
            ],
            working_days: true,
            calendar: WorkCalendar::default(),
            warn_percent: default_warn_percent(),
        }
    }
}

/// Position of a level in `default_hours`.
pub(crate) fn level_index(level: Level) -> usize {
    match level {
        Level::Grid => 0,
        Level::Village => 1,
        Level::Town => 2,
        Level::Department => 3,
        Level::LawEnforcement => 4,
    }
}

impl TimeLimits {
    /// The limit at `level` for a case of this category and priority, hours: the strictest
    /// exception that matches, else the level's default.
    pub fn hours(&self, level: Level, category: Category, priority: Priority) -> i64 {
        self.rules
            .iter()
            .filter(|r| {
                r.level == level
                    && r.category.is_none_or(|c| c == category)
                    && r.priority.is_none_or(|p| p == priority)
            })
            .map(|r| r.hours)
            .min()
            .unwrap_or(self.default_hours[level_index(level)])
    }

    /// The deadline a case is held to at `level`, its clock started at `started_at_ms`, unless
    /// an event set one explicitly.
    pub fn due_at(&self, case: &Case, level: Level, started_at_ms: i64) -> i64 {
        let hours = self.hours(level, case.details.category, case.details.priority);
        self.add(started_at_ms, hours.saturating_mul(3_600_000), hours >= 24)
    }

    /// `span_ms` after `start_ms`: working time when `in_working_days` and the table counts
    /// working days, else clock time.
    fn add(&self, start_ms: i64, span_ms: i64, in_working_days: bool) -> i64 {
        if self.working_days && in_working_days {
            self.calendar.add_working(start_ms, span_ms)
        } else {
            start_ms.saturating_add(span_ms)
        }
    }

    /// The time between two instants as the deadline counts it.
    fn span(&self, from_ms: i64, to_ms: i64, in_working_days: bool) -> i64 {
        if self.working_days && in_working_days {
            self.calendar.working_between(from_ms, to_ms)
        } else {
            to_ms.saturating_sub(from_ms).max(0)
        }
    }
}

/// A case's clock, walked along its history (the applied events, in fold order): the level
/// that holds it, when its clock started, and an explicit deadline. Scoring walks the same
/// clock.
#[derive(Debug, Clone)]
pub struct Clock {
    level: Level,
    started_at: Option<i64>,
    explicit: Option<i64>,
    dispatched_from: Level,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            level: Level::Grid,
            started_at: None,
            explicit: None,
            dispatched_from: Level::Grid,
        }
    }
}

impl Clock {
    /// The clock after `event` (an applied event).
    pub fn step(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Reported { .. } => {
                self.level = Level::Grid;
                self.started_at = Some(event.at_ms);
            }
            EventKind::Accepted {
                due_at_ms: Some(due),
                ..
            } => self.explicit = Some(*due),
            // The level above's limit, from the clock's start: the report's clock.
            EventKind::Escalated { to, .. } => {
                self.level = *to;
                self.explicit = None;
            }
            EventKind::Dispatched {
                target, due_at_ms, ..
            } => {
                self.dispatched_from = self.level;
                self.level = target.level();
                self.started_at = Some(event.at_ms);
                self.explicit = *due_at_ms;
            }
            EventKind::Returned { .. } => {
                self.level = self.dispatched_from;
                self.started_at = Some(event.at_ms);
                self.explicit = None;
            }
            _ => {}
        }
    }

    /// The level that holds the case.
    pub fn level(&self) -> Level {
        self.level
    }

    /// When the clock started.
    pub fn started_at(&self) -> Option<i64> {
        self.started_at
    }

    /// The deadline the clock gives.
    pub fn due(&self, case: &Case, limits: &TimeLimits) -> Option<i64> {
        self.explicit.or_else(|| {
            self.started_at
                .map(|at| limits.due_at(case, self.level, at))
        })
    }

    /// The instant the case goes into warning; none without a deadline.
    pub fn warn_at(&self, case: &Case, limits: &TimeLimits) -> Option<i64> {
        let due = self.due(case, limits)?;
        let start = self.started_at.unwrap_or(due).min(due);
        // A limit of a day or more counts working time; so does its warning.
        let working = limits.span(start, due, false) >= 86_400_000;
        let span = limits.span(start, due, working);
        let share = span.saturating_mul(i64::from(limits.warn_percent.min(100))) / 100;
        Some(limits.add(start, share, working).min(due))
    }
}

/// The clock of a case after its whole history.
pub fn clock(case: &Case) -> Clock {
    let flagged = |id: &str| case.state.flagged.iter().any(|f| f.event_id == id);
    let mut clock = Clock::default();
    for event in case.history.iter().filter(|e| !flagged(&e.id)) {
        clock.step(event);
    }
    clock
}

/// When the case's clock started: the report, or the latest dispatch or return (an escalation
/// keeps the report's clock).
pub fn level_entered_at(case: &Case) -> Option<i64> {
    clock(case).started_at()
}

/// Whether a case is solved or closed: no deadline holds it.
fn finished(case: &Case) -> bool {
    matches!(
        case.state.status,
        Status::Resolved | Status::Verified | Status::Closed
    )
}

/// The deadline the case is held to now: the explicit one, else the table's for its level;
/// none once it is solved or closed.
pub fn deadline(case: &Case, limits: &TimeLimits) -> Option<i64> {
    if finished(case) {
        return None;
    }
    clock(case).due(case, limits)
}

/// When the case goes into warning (预警); none once it is solved or closed.
pub fn warn_at(case: &Case, limits: &TimeLimits) -> Option<i64> {
    if finished(case) {
        return None;
    }
    clock(case).warn_at(case, limits)
}

/// Where the case stands against its deadline at `now_ms`; none without one.
pub fn urgency(case: &Case, limits: &TimeLimits, now_ms: i64) -> Option<Urgency> {
    if finished(case) {
        return None;
    }
    let clock = clock(case);
    Urgency::at(clock.due(case, limits), clock.warn_at(case, limits), now_ms)
}

/// Whether the case is past its deadline at `now_ms`.
pub fn is_overdue(case: &Case, limits: &TimeLimits, now_ms: i64) -> bool {
    deadline(case, limits).is_some_and(|due| now_ms > due)
}
