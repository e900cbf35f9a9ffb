//! People's mediation (人民调解): the rules of a mediation file's history.
//!
//! A dispute climbs "小事不出格、大事不出村、难事不出镇": grid → village → town, one rung at a
//! time; skipping a rung (grid straight to town) needs a stated reason. A mediation ends in an
//! agreement (with the parties' signatures as captured images), a refusal or a withdrawal; an
//! agreement may then go to the court for judicial confirmation (司法确认), which must be
//! requested within 30 days of the agreement (Civil Procedure Law art. 205) and is then granted
//! or refused. [`MediationState::apply`] checks each step against the state so far, so a
//! mediator working offline gets a typed error at once and nothing recorded is ever lost.

mod file;

pub use file::{
    DisputeType, MediationDetails, MediationFile, MediationRecord, Party, Side, Team,
    fold_mediation, may_mediate, mediation_doc_id, mediation_scopes,
};

use serde::{Deserialize, Serialize};

/// A rung of the mediation ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rung {
    /// 网格.
    Grid,
    /// 村(社区)调委会.
    Village,
    /// 镇(街道)调委会.
    Town,
}

/// Something that happened in a mediation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MediationStep {
    /// A session (time, place, attendees, notes).
    Session {
        /// When, UTC ms.
        at_ms: i64,
        /// Where.
        place: String,
        /// Who attended (user ids or party names as recorded).
        attendees: Vec<String>,
        /// Notes.
        notes: String,
    },
    /// Moved up the ladder.
    Escalated {
        /// The rung it goes to.
        to: Rung,
        /// Why (required when a rung is skipped).
        reason: String,
    },
    /// 调解协议: the parties agreed.
    Agreed {
        /// The agreement.
        text: String,
        /// Photo hashes of the signed pages, one or more.
        signatures: Vec<String>,
        /// When signed, UTC ms.
        at_ms: i64,
    },
    /// A party refused to settle.
    Refused {
        /// Why.
        reason: String,
    },
    /// The applicant withdrew.
    Withdrawn {
        /// Why.
        reason: String,
    },
    /// Judicial confirmation requested from a court.
    ConfirmationRequested {
        /// The court.
        court: String,
        /// When filed, UTC ms.
        at_ms: i64,
    },
    /// The court decided.
    ConfirmationDecided {
        /// Confirmed (enforceable) or not.
        granted: bool,
    },
}

/// How a mediation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Agreed.
    Agreed,
    /// Refused.
    Refused,
    /// Withdrawn.
    Withdrawn,
}

/// Where judicial confirmation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confirmation {
    /// Not requested (yet); the deadline is 30 days after the agreement.
    NotRequested {
        /// Last day to request it, UTC ms.
        deadline_ms: i64,
    },
    /// Requested, awaiting the court.
    Requested,
    /// Confirmed by the court.
    Granted,
    /// Refused by the court.
    Denied,
}

/// What is wrong with a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediationError {
    /// Escalating down or to the same rung.
    #[error("只能向上一级调解 / a mediation only moves up the ladder")]
    NotUpward,
    /// Skipping a rung without saying why.
    #[error("越级上报须说明理由 / skipping a rung needs a reason")]
    SkipWithoutReason,
    /// The mediation has ended.
    #[error("调解已结束，不能再记录该步骤 / the mediation has ended")]
    Ended,
    /// Judicial confirmation needs an agreement first.
    #[error("须先达成调解协议才能申请司法确认 / judicial confirmation needs an agreement first")]
    NoAgreement,
    /// Requested after the 30 days.
    #[error(
        "已超过协议生效后 30 日的司法确认申请期限 / the 30 days to request judicial confirmation have passed"
    )]
    TooLate,
    /// A decision without a request, or a second request.
    #[error("司法确认的步骤顺序不对 / judicial confirmation steps are out of order")]
    ConfirmationOrder,
    /// Missing text, signatures, court.
    #[error("内容不完整：{0} / incomplete: {0}")]
    Incomplete(&'static str),
    /// A party's data does not pass its check (an ID number's check digit).
    #[error("当事人信息有误：{0} / a party's data is wrong: {0}")]
    BadParty(String),
}

/// The state of a mediation file, folded from its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediationState {
    /// The rung that holds it.
    pub rung: Rung,
    /// Sessions held.
    pub sessions: u32,
    /// How it ended, if it has.
    pub outcome: Option<Outcome>,
    /// When the agreement was signed.
    pub agreed_at_ms: Option<i64>,
    /// Judicial confirmation, once there is an agreement.
    pub confirmation: Option<Confirmation>,
}

/// Days within which judicial confirmation must be requested after an agreement.
pub const CONFIRMATION_DAYS: i64 = 30;

impl MediationState {
    /// A new file at a rung (usually the grid).
    pub fn new(rung: Rung) -> MediationState {
        MediationState {
            rung,
            sessions: 0,
            outcome: None,
            agreed_at_ms: None,
            confirmation: None,
        }
    }

    /// Applies a step if the state allows it; leaves the state untouched otherwise.
    pub fn apply(&mut self, step: &MediationStep) -> Result<(), MediationError> {
        use MediationStep::*;
        let ended = self.outcome.is_some();
        match step {
            Session { .. }
            | Escalated { .. }
            | Agreed { .. }
            | Refused { .. }
            | Withdrawn { .. }
                if ended =>
            {
                return Err(MediationError::Ended);
            }
            Session { .. } => self.sessions += 1,
            Escalated { to, reason } => {
                if *to <= self.rung {
                    return Err(MediationError::NotUpward);
                }
                let skips = (*to as u8) - (self.rung as u8) > 1;
                if skips && reason.trim().is_empty() {
                    return Err(MediationError::SkipWithoutReason);
                }
                self.rung = *to;
            }
            Agreed {
                text,
                signatures,
                at_ms,
            } => {
                if text.trim().is_empty() {
                    return Err(MediationError::Incomplete("协议内容 / agreement text"));
                }
                if signatures.is_empty() {
                    return Err(MediationError::Incomplete("当事人签名 / signatures"));
                }
                self.outcome = Some(Outcome::Agreed);
                self.agreed_at_ms = Some(*at_ms);
                self.confirmation = Some(Confirmation::NotRequested {
                    deadline_ms: at_ms.saturating_add(CONFIRMATION_DAYS * 86_400_000),
                });
            }
            Refused { reason } | Withdrawn { reason } => {
                if reason.trim().is_empty() {
                    return Err(MediationError::Incomplete("原因 / reason"));
                }
                self.outcome = Some(if matches!(step, Refused { .. }) {
                    Outcome::Refused
                } else {
                    Outcome::Withdrawn
                });
            }
            ConfirmationRequested { court, at_ms } => match self.confirmation {
                None => return Err(MediationError::NoAgreement),
                Some(Confirmation::NotRequested { deadline_ms }) => {
                    if court.trim().is_empty() {
                        return Err(MediationError::Incomplete("法院 / court"));
                    }
                    if *at_ms > deadline_ms {
                        return Err(MediationError::TooLate);
                    }
                    self.confirmation = Some(Confirmation::Requested);
                }
                Some(_) => return Err(MediationError::ConfirmationOrder),
            },
            ConfirmationDecided { granted } => match self.confirmation {
                Some(Confirmation::Requested) => {
                    self.confirmation = Some(if *granted {
                        Confirmation::Granted
                    } else {
                        Confirmation::Denied
                    });
                }
                None => return Err(MediationError::NoAgreement),
                Some(_) => return Err(MediationError::ConfirmationOrder),
            },
        }
        Ok(())
    }
}
