//! The mediation file (调解卷宗) as a record document, separate from any case that raised
//! the dispute: the parties, the dispute, the grid's four-in-one team (网格员、人民调解员、
//! 法律顾问、驻点法官), and every step as an entry.
//!
//! Who receives it is decided by its scope keys ([`mediation_scopes`]): the team members by
//! name, the mediators of its grid, village and town, and the district's supervisors — never
//! the other inspectors of the grid, never a citizen. Parties' personal data is shown masked
//! to every role but the mediators and grid chiefs ([`MediationFile::for_role`]).

use super::{MediationError, MediationState, MediationStep, Rung};
use crate::address::{Unapplied, mask_id, mask_name, mask_phone, sees_personal_data};
use crate::case::Role;
use crate::doc::{DocKind, Entry, Record};
use crate::sync::scope::{GridPlace, ScopeKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The mediation record kind.
#[derive(Debug)]
pub struct MediationRecord;

impl Record for MediationRecord {
    const KIND: DocKind = DocKind::Mediation;
    const SCHEMA: i64 = 1;
    type Details = MediationDetails;
    type Body = MediationStep;
}

/// The document id of a mediation file.
pub fn mediation_doc_id(file_id: &str) -> String {
    format!("{}{file_id}", DocKind::Mediation.prefix())
}

/// Kind of dispute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeType {
    /// 邻里纠纷.
    Neighbour,
    /// 婚姻家庭.
    Family,
    /// 房屋物业.
    Property,
    /// 劳动争议.
    Labour,
    /// 土地承包.
    Land,
    /// 消费纠纷.
    Consumer,
    /// 其他.
    Other,
}

/// Which side a party is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// 申请人.
    Applicant,
    /// 被申请人.
    Respondent,
    /// 第三人.
    Third,
}

/// A party to the dispute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    /// Name.
    pub name: String,
    /// Side.
    pub side: Side,
    /// Resident ID number, if given (checked).
    #[serde(default)]
    pub id_number: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
}

/// The four-in-one team of the grid (四位一体).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// 网格员 user id.
    pub inspector: String,
    /// 人民调解员 user id.
    pub mediator: String,
    /// 法律顾问 user id.
    #[serde(default)]
    pub legal_adviser: Option<String>,
    /// 驻点法官 user id.
    #[serde(default)]
    pub judge: Option<String>,
}

impl Team {
    /// Every member's user id.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        [Some(&self.inspector), Some(&self.mediator)]
            .into_iter()
            .chain([self.legal_adviser.as_ref(), self.judge.as_ref()])
            .flatten()
            .map(String::as_str)
    }
}

/// A mediation file as opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationDetails {
    /// File id (UUID).
    pub file_id: String,
    /// The grid where the dispute arose.
    pub grid_id: String,
    /// Kind.
    pub dispute_type: DisputeType,
    /// What it is about.
    pub summary: String,
    /// The parties.
    pub parties: Vec<Party>,
    /// The team.
    pub team: Team,
    /// The rung it opened on.
    pub opened_at: Rung,
    /// The case that raised it, if any.
    #[serde(default)]
    pub case_id: Option<String>,
}

/// Whether `role` may record mediation steps (within the file's scope).
pub fn may_mediate(role: Role) -> bool {
    matches!(
        role,
        Role::Mediator | Role::GridInspector | Role::GridChief | Role::Operator
    )
}

impl MediationDetails {
    /// Checks the file as opened (`today` YYYYMMDD bounds ID birth dates).
    pub fn validate(&self, today: u32) -> Result<(), MediationError> {
        if self.summary.trim().is_empty() || self.summary.chars().count() > 2000 {
            return Err(MediationError::Incomplete("纠纷概要 / summary"));
        }
        if self.parties.len() < 2 {
            return Err(MediationError::Incomplete("至少两方当事人 / two parties"));
        }
        for party in &self.parties {
            if party.name.trim().is_empty() {
                return Err(MediationError::Incomplete("当事人姓名 / a party's name"));
            }
            if let Some(id) = &party.id_number {
                crate::address::ResidentId::parse(id, today)
                    .map_err(|e| MediationError::BadParty(e.to_string()))?;
            }
        }
        if self.team.inspector.trim().is_empty() || self.team.mediator.trim().is_empty() {
            return Err(MediationError::Incomplete(
                "网格员和调解员 / inspector and mediator",
            ));
        }
        Ok(())
    }
}

/// The scope keys of a mediation file: its team by name, the mediators of its grid, village
/// and town, and the district's supervisors. No grid key: the grid's other inspectors and
/// its citizens never receive it.
pub fn mediation_scopes(details: &MediationDetails, place: &GridPlace) -> BTreeSet<ScopeKey> {
    let mut keys = BTreeSet::from([
        ScopeKey::District,
        ScopeKey::Mediation(place.grid_id.clone()),
        ScopeKey::Mediation(place.village_id.clone()),
        ScopeKey::Mediation(place.town_id.clone()),
    ]);
    keys.extend(
        details
            .team
            .members()
            .map(|m| ScopeKey::Member(m.to_owned())),
    );
    keys
}

/// A mediation file as its history leaves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationFile {
    /// As opened.
    pub details: MediationDetails,
    /// Where it stands.
    pub state: MediationState,
    /// Every step that applied, in order, with its entry.
    pub steps: Vec<Entry<MediationStep>>,
    /// Steps kept but not applied (recorded concurrently offline), with the reason.
    pub unapplied: Vec<Unapplied>,
    /// Latest entry time.
    pub updated_at_ms: i64,
}

/// Folds a file's entries (in fold order).
pub fn fold_mediation(
    details: &MediationDetails,
    entries: &[Entry<MediationStep>],
) -> MediationFile {
    let mut file = MediationFile {
        details: details.clone(),
        state: MediationState::new(details.opened_at),
        steps: Vec::new(),
        unapplied: Vec::new(),
        updated_at_ms: 0,
    };
    for entry in entries {
        file.updated_at_ms = file.updated_at_ms.max(entry.at_ms);
        let outcome = if may_mediate(entry.role) {
            file.state.apply(&entry.body).map_err(|e| e.to_string())
        } else {
            Err(format!(
                "role {} may not record mediation steps",
                entry.role.code()
            ))
        };
        match outcome {
            Ok(()) => file.steps.push(entry.clone()),
            Err(reason) => file.unapplied.push(Unapplied {
                entry_id: entry.id.clone(),
                reason,
            }),
        }
    }
    file
}

impl MediationFile {
    /// The file as `role` may see it: parties' personal data masked unless the role needs it.
    pub fn for_role(&self, role: Role) -> MediationFile {
        if sees_personal_data(role) {
            return self.clone();
        }
        let mut shown = self.clone();
        for party in &mut shown.details.parties {
            party.name = mask_name(&party.name);
            party.id_number = party.id_number.as_deref().map(mask_id);
            party.phone = party.phone.as_deref().map(mask_phone);
        }
        shown
    }
}
