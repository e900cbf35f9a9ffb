//! Cases (工单, work orders): what a case is, the events of its history, who may author which
//! event, and the fold that turns a history into the case's current state.
//!
//! The history is the source of truth. Status, level, assignee and due time are never stored
//! as fields that two people could overwrite: they are computed by [`fold`] from the events, so
//! every replica that holds the same events shows the same state (see `lifecycle.rs`).

mod calendar;
mod deadline;
mod duties;
mod event;
mod lifecycle;
mod role;
mod scoring;

pub use calendar::{CalendarError, DayKind, WorkCalendar};
pub use deadline::{
    Clock, LimitRule, Priority, TimeLimits, Urgency, clock, deadline, is_overdue, level_entered_at,
    urgency, warn_at,
};
pub use duties::Duties;
pub use event::{DispatchTarget, Event, EventError, EventKind, Stamp};
pub use lifecycle::{CaseState, Closure, FlagReason, FlaggedEvent, Level, Status, fold};
pub use role::Role;
pub use scoring::{ScoreLine, ScoreReason, ScoreUnit, ScoringRule, score};

use crate::geo::LatLon;
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// The taxonomy of what a case is about (事件类别).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
pub enum Category {
    /// 环境保护: pollution, illegal discharge, smoke, noise.
    Environment,
    /// 消防隐患: blocked exits, flying wires, e-bikes charged indoors.
    FireHazard,
    /// 违章建筑: illegal construction and extensions.
    IllegalConstruction,
    /// 群租房: illegal group rentals.
    GroupRental,
    /// 环境卫生: rubbish, sanitation.
    Sanitation,
    /// 市政道路: roads, street lights, manholes, drains.
    RoadMunicipal,
    /// 社会治安: public security.
    PublicSecurity,
    /// 矛盾纠纷: disputes between residents, neighbours, tenants.
    Dispute,
    /// 企业安全生产: enterprise work-safety duties.
    EnterpriseSafety,
    /// 其他.
    Other,
}

impl Category {
    /// Every category, in display order.
    pub const ALL: [Category; 10] = [
        Category::Environment,
        Category::FireHazard,
        Category::IllegalConstruction,
        Category::GroupRental,
        Category::Sanitation,
        Category::RoadMunicipal,
        Category::PublicSecurity,
        Category::Dispute,
        Category::EnterpriseSafety,
        Category::Other,
    ];

    /// Stable machine code, as stored in index rows and on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Category::Environment => "environment",
            Category::FireHazard => "fire_hazard",
            Category::IllegalConstruction => "illegal_construction",
            Category::GroupRental => "group_rental",
            Category::Sanitation => "sanitation",
            Category::RoadMunicipal => "road_municipal",
            Category::PublicSecurity => "public_security",
            Category::Dispute => "dispute",
            Category::EnterpriseSafety => "enterprise_safety",
            Category::Other => "other",
        }
    }

    /// The category with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.code() == code)
    }

    /// English name, for the English pages and Open311 clients that ask for it.
    pub fn label_en(self) -> &'static str {
        match self {
            Category::Environment => "Environmental protection",
            Category::FireHazard => "Fire hazard",
            Category::IllegalConstruction => "Illegal construction",
            Category::GroupRental => "Group rental",
            Category::Sanitation => "Sanitation",
            Category::RoadMunicipal => "Roads and municipal facilities",
            Category::PublicSecurity => "Public security",
            Category::Dispute => "Dispute",
            Category::EnterpriseSafety => "Enterprise work safety",
            Category::Other => "Other",
        }
    }

    /// Simplified Chinese label for screens.
    pub fn label_zh(self) -> &'static str {
        match self {
            Category::Environment => "环境保护",
            Category::FireHazard => "消防隐患",
            Category::IllegalConstruction => "违章建筑",
            Category::GroupRental => "群租房",
            Category::Sanitation => "环境卫生",
            Category::RoadMunicipal => "市政道路",
            Category::PublicSecurity => "社会治安",
            Category::Dispute => "矛盾纠纷",
            Category::EnterpriseSafety => "企业安全生产",
            Category::Other => "其他",
        }
    }
}

/// Through which channel a case entered the single queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
pub enum Source {
    /// 基层网格员 on patrol.
    GridInspector,
    /// 专业网格员.
    ProfessionalInspector,
    /// 随手拍: a citizen's report.
    Citizen,
    /// 数据研判: found by analysis, e.g. abnormal water use.
    Analytics,
    /// An outside system through Open311 GeoReport v2.
    Open311,
}

impl Source {
    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Source::GridInspector => "grid_inspector",
            Source::ProfessionalInspector => "professional_inspector",
            Source::Citizen => "citizen",
            Source::Analytics => "analytics",
            Source::Open311 => "open311",
        }
    }
}

/// Where something was, as the phone reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Location {
    /// WGS-84 position.
    pub point: LatLon,
    /// Horizontal accuracy in metres, as the positioning service estimated it.
    pub accuracy_m: f64,
}

impl Location {
    /// Whether the point is a real WGS-84 position and the accuracy a finite, non-negative
    /// number of metres.
    pub fn is_valid(&self) -> bool {
        self.point.is_valid() && self.accuracy_m.is_finite() && self.accuracy_m >= 0.0
    }
}

/// Longest title a case may carry, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest description or note, in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;

/// The facts a reporter gives when a case is opened. They never change afterwards; everything
/// that happens later is an [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct CaseDetails {
    /// Case id: a UUID chosen by the reporting device, so a retried report is the same case.
    pub id: String,
    /// What the case is about.
    pub category: Category,
    /// How it was reported.
    pub source: Source,
    /// One line, e.g. 楼道堆放杂物堵塞消防通道.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Where it is.
    pub location: Option<Location>,
    /// Standard address code (一标多实), when the case hangs off an address.
    pub address_id: Option<String>,
    /// The grid the case belongs to; decides who sees it.
    pub grid_id: String,
    /// The reporter as handlers see them, masked (张** 138****1234): set by the server on
    /// citizen reports; absent on staff reports, whose author is in the event stamps. Absent in
    /// documents written before it existed.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub reporter: Option<String>,
    /// How urgent it is; decides the time limits. Normal in documents written before it
    /// existed.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub priority: Priority,
}

impl CaseDetails {
    /// Checks what a person typed: non-empty title within limits, a valid location.
    pub fn validate(&self) -> Result<(), EventError> {
        if uuid::Uuid::parse_str(&self.id).is_err() {
            return Err(EventError::Invalid(format!(
                "案件编号不是 UUID / case id is not a UUID: {:?}",
                self.id
            )));
        }
        let title = self.title.trim();
        if title.is_empty() {
            return Err(EventError::Invalid(
                "标题不能为空 / the title is empty".into(),
            ));
        }
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(EventError::Invalid(format!(
                "标题超过 {MAX_TITLE_CHARS} 字 / the title is longer than {MAX_TITLE_CHARS} characters"
            )));
        }
        if self.description.chars().count() > MAX_TEXT_CHARS {
            return Err(EventError::Invalid(format!(
                "描述超过 {MAX_TEXT_CHARS} 字 / the description is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if self.grid_id.trim().is_empty() {
            return Err(EventError::Invalid("缺少网格 / the grid is missing".into()));
        }
        for (field, value) in [
            ("标题 / title", Some(&self.title)),
            ("描述 / description", Some(&self.description)),
            ("地址编码 / address code", self.address_id.as_ref()),
            ("上报人 / reporter", self.reporter.as_ref()),
            ("网格 / grid", Some(&self.grid_id)),
        ] {
            if let Some(value) = value {
                crate::text::check(value)
                    .map_err(|e| EventError::Invalid(format!("{field}: {e}")))?;
            }
        }
        if self.location.as_ref().is_some_and(|l| !l.is_valid()) {
            return Err(EventError::Invalid(
                "位置无效 / the location is invalid".into(),
            ));
        }
        Ok(())
    }
}

/// A case as a screen shows it: the reported facts, the whole history, and the folded state.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// What was reported.
    pub details: CaseDetails,
    /// Every event, in fold order (causal, then by device time, then by id).
    pub history: Vec<Event>,
    /// The state computed from the history.
    pub state: CaseState,
}
