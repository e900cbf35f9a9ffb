//! Roles, and which history events each role may author. The same table is applied by the
//! fold on every phone and by the server when it validates a push, so an event that one side
//! accepts the other cannot refuse.

use super::Source;
use super::event::EventKind;
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

/// Who a user is in the governance system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
pub enum Role {
    /// 网格巡查员 (basic grid).
    GridInspector,
    /// 专业网格员.
    ProfessionalInspector,
    /// 网格长: accepts, resolves in grid, escalates, dispatches.
    GridChief,
    /// 人民调解员.
    Mediator,
    /// 职能部门处置人员.
    DepartmentHandler,
    /// 综合执法队员.
    LawEnforcement,
    /// 联动指挥中心 operator.
    Operator,
    /// A resident reporting through 随手拍.
    Citizen,
    /// The platform itself: analytics that open cases, Open311 intake.
    System,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::GridInspector,
        Role::ProfessionalInspector,
        Role::GridChief,
        Role::Mediator,
        Role::DepartmentHandler,
        Role::LawEnforcement,
        Role::Operator,
        Role::Citizen,
        Role::System,
    ];

    /// Parses [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            Role::GridInspector => "grid_inspector",
            Role::ProfessionalInspector => "professional_inspector",
            Role::GridChief => "grid_chief",
            Role::Mediator => "mediator",
            Role::DepartmentHandler => "department_handler",
            Role::LawEnforcement => "law_enforcement",
            Role::Operator => "operator",
            Role::Citizen => "citizen",
            Role::System => "system",
        }
    }

    /// Simplified Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::GridInspector => "网格员",
            Role::ProfessionalInspector => "专业网格员",
            Role::GridChief => "网格长",
            Role::Mediator => "调解员",
            Role::DepartmentHandler => "部门处置人员",
            Role::LawEnforcement => "执法队员",
            Role::Operator => "指挥中心",
            Role::Citizen => "市民",
            Role::System => "系统",
        }
    }

    /// The source a case carries when this role reports it from its own device: inspectors
    /// and the staff who patrol with them report as grid inspectors, professional inspectors
    /// as themselves, citizens through 随手拍; departments and law enforcement report none.
    pub fn report_source(self) -> Option<Source> {
        use Role::*;
        match self {
            ProfessionalInspector => Some(Source::ProfessionalInspector),
            GridInspector | GridChief | Mediator | Operator => Some(Source::GridInspector),
            Citizen => Some(Source::Citizen),
            DepartmentHandler | LawEnforcement | System => None,
        }
    }

    /// Whether a case reported by this role may carry `source`: its own report source, and
    /// for the platform itself the systems it takes cases from (Open311, analytics). The
    /// server checks this on every new case it is sent.
    pub fn may_report_as(self, source: Source) -> bool {
        self.report_source() == Some(source)
            || (self == Role::System && matches!(source, Source::Open311 | Source::Analytics))
    }

    /// [`may_report_as`](Self::may_report_as) with the message a refusal carries.
    pub fn check_report_source(self, source: Source) -> Result<(), String> {
        if self.may_report_as(source) {
            return Ok(());
        }
        Err(format!(
            "{}上报的案件来源不能是“{}” / a case reported by the {} role cannot have the source {}",
            self.label_zh(),
            source.code(),
            self.code(),
            source.code()
        ))
    }

    /// Whether this role may author an event of this kind ("巡办分离": inspectors patrol and
    /// report, chiefs and the command centre handle and route, the receiving side handles what
    /// was dispatched to it, and the reporting side verifies).
    pub fn may_author(self, kind: &EventKind) -> bool {
        use Role::*;
        match kind {
            EventKind::Reported { .. } => !matches!(self, DepartmentHandler | LawEnforcement),
            EventKind::Accepted { .. }
            | EventKind::RejectedInvalid { .. }
            | EventKind::DuplicateOf { .. }
            | EventKind::Dispatched { .. }
            | EventKind::Closed { .. } => matches!(self, GridChief | Operator),
            // The platform escalates a case left past its time limit (超时自动上报).
            EventKind::Escalated { .. } => matches!(self, GridChief | Operator | System),
            EventKind::ResolvedInGrid { .. } => {
                matches!(
                    self,
                    GridInspector | ProfessionalInspector | GridChief | Mediator
                )
            }
            EventKind::Returned { .. } => matches!(self, DepartmentHandler | LawEnforcement),
            EventKind::Handling { .. } => !matches!(self, Citizen | System),
            EventKind::Resolved { .. } => {
                matches!(
                    self,
                    GridChief | Mediator | DepartmentHandler | LawEnforcement | Operator
                )
            }
            EventKind::Verified { .. } | EventKind::VerificationFailed { .. } => {
                matches!(
                    self,
                    GridInspector | ProfessionalInspector | GridChief | Operator
                )
            }
            EventKind::Comment { .. } | EventKind::PhotoAdded { .. } => self != System,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_code_is_a_distinct_machine_code_that_parses_back() {
        let mut codes = std::collections::BTreeSet::new();
        for role in Role::ALL {
            let code = role.code();
            assert!(codes.insert(code), "{code} is used twice");
            assert_eq!(Role::from_code(code), Some(role));
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code:?} is not a machine code"
            );
        }
        assert_eq!(Role::from_code("grid_inspector"), Some(Role::GridInspector));
        assert_eq!(Role::from_code("system"), Some(Role::System));
        assert_eq!(Role::from_code(""), None);
        assert_eq!(Role::from_code("Grid_Inspector"), None);
        assert_eq!(Role::from_code("admin"), None);
    }

    #[test]
    fn every_role_has_its_own_chinese_label() {
        let mut labels = std::collections::BTreeSet::new();
        for role in Role::ALL {
            let label = role.label_zh();
            assert!(labels.insert(label), "{label} is used twice");
            assert!(
                label
                    .chars()
                    .all(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)),
                "{label:?} is not a Chinese label"
            );
        }
        assert_eq!(Role::GridInspector.label_zh(), "网格员");
        assert_eq!(Role::GridChief.label_zh(), "网格长");
        assert_eq!(Role::Operator.label_zh(), "指挥中心");
    }

    #[test]
    fn each_role_reports_under_its_own_source_only() {
        use Source::*;
        let sources = [
            GridInspector,
            ProfessionalInspector,
            Citizen,
            Analytics,
            Open311,
        ];
        for role in Role::ALL {
            let allowed: Vec<Source> = sources
                .into_iter()
                .filter(|s| role.may_report_as(*s))
                .collect();
            let expected: Vec<Source> = match role {
                Role::GridInspector | Role::GridChief | Role::Mediator | Role::Operator => {
                    vec![GridInspector]
                }
                Role::ProfessionalInspector => vec![ProfessionalInspector],
                Role::Citizen => vec![Citizen],
                Role::System => vec![Analytics, Open311],
                Role::DepartmentHandler | Role::LawEnforcement => vec![],
            };
            assert_eq!(allowed, expected, "{role:?}");
            if let Some(own) = role.report_source() {
                assert!(role.may_report_as(own), "{role:?}");
            }
        }
    }
}
