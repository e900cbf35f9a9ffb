//! Roles, and which history events each role may author. The same table is applied by the
//! fold on every phone and by the server when it validates a push, so an event that one side
//! accepts the other cannot refuse.

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
}
