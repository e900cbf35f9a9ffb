//! Time limits (办理时限): how long each level has for a case, by category and priority, and
//! the deadline a case is held to now.
//!
//! An `accepted` or `dispatched` event may set a deadline explicitly; otherwise the case must be
//! solved within the limit of the level that holds it, counted from when it reached that level
//! (the report, an escalation, a dispatch or a return). The table is a value the command centre
//! configures; [`TimeLimits::default`] is the district's published one.

use super::{Case, Category, EventKind, Level, Status};
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

    /// The deadline a case is held to at `level`, entered at `entered_at_ms`, unless an event
    /// set one explicitly.
    pub fn due_at(&self, case: &Case, level: Level, entered_at_ms: i64) -> i64 {
        let hours = self.hours(level, case.details.category, case.details.priority);
        entered_at_ms.saturating_add(hours.saturating_mul(3_600_000))
    }
}

/// When the case reached the level that holds it now (device time of that event).
pub fn level_entered_at(case: &Case) -> Option<i64> {
    let flagged = |id: &str| case.state.flagged.iter().any(|f| f.event_id == id);
    case.history
        .iter()
        .filter(|e| !flagged(&e.id))
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Reported { .. }
                    | EventKind::Escalated { .. }
                    | EventKind::Dispatched { .. }
                    | EventKind::Returned { .. }
            )
        })
        .map(|e| e.at_ms)
        .next_back()
}

/// The deadline the case is held to now: the explicit one, else the table's for its level;
/// none once it is solved or closed.
pub fn deadline(case: &Case, limits: &TimeLimits) -> Option<i64> {
    if matches!(
        case.state.status,
        Status::Resolved | Status::Verified | Status::Closed
    ) {
        return None;
    }
    case.state
        .due_at_ms
        .or_else(|| level_entered_at(case).map(|at| limits.due_at(case, case.state.level, at)))
}

/// Whether the case is past its deadline at `now_ms`.
pub fn is_overdue(case: &Case, limits: &TimeLimits, now_ms: i64) -> bool {
    deadline(case, limits).is_some_and(|due| now_ms > due)
}
