//! The mediation ladder: one rung at a time unless a reason is given, an ended mediation takes
//! no more steps, and judicial confirmation only follows an agreement, within 30 days.

use gridlink_core::mediation::{
    Confirmation, MediationError, MediationState, MediationStep, Outcome, Rung,
};

const T0: i64 = 1_795_910_400_000;
const DAY: i64 = 86_400_000;

fn session() -> MediationStep {
    MediationStep::Session {
        at_ms: T0,
        place: "村调解室".into(),
        attendees: vec!["med-0001".into(), "当事人甲".into(), "当事人乙".into()],
        notes: "双方陈述".into(),
    }
}

fn agreed(at_ms: i64) -> MediationStep {
    MediationStep::Agreed {
        text: "乙方于十日内拆除违建围墙，甲方不再追究。".into(),
        signatures: vec!["ab".repeat(32)],
        at_ms,
    }
}

#[test]
fn a_dispute_climbs_one_rung_at_a_time_unless_a_reason_is_given() {
    let mut m = MediationState::new(Rung::Grid);
    m.apply(&session()).unwrap();
    let skip = MediationStep::Escalated {
        to: Rung::Town,
        reason: " ".into(),
    };
    assert_eq!(m.apply(&skip), Err(MediationError::SkipWithoutReason));
    assert_eq!(m.rung, Rung::Grid, "nothing changed");
    m.apply(&MediationStep::Escalated {
        to: Rung::Village,
        reason: String::new(),
    })
    .unwrap();
    assert_eq!(
        m.apply(&MediationStep::Escalated {
            to: Rung::Grid,
            reason: "x".into()
        }),
        Err(MediationError::NotUpward)
    );
    let mut urgent = MediationState::new(Rung::Grid);
    urgent
        .apply(&MediationStep::Escalated {
            to: Rung::Town,
            reason: "涉及两个村，村级无法调处".into(),
        })
        .unwrap();
    assert_eq!(urgent.rung, Rung::Town);
}

#[test]
fn confirmation_follows_an_agreement_within_thirty_days_and_an_ended_mediation_takes_no_more_steps()
{
    let mut m = MediationState::new(Rung::Village);
    let early = MediationStep::ConfirmationRequested {
        court: "吴江区人民法院".into(),
        at_ms: T0,
    };
    assert_eq!(m.apply(&early), Err(MediationError::NoAgreement));
    assert_eq!(
        m.apply(&MediationStep::Agreed {
            text: "协议".into(),
            signatures: vec![],
            at_ms: T0
        }),
        Err(MediationError::Incomplete("当事人签名 / signatures"))
    );
    m.apply(&agreed(T0)).unwrap();
    assert_eq!(m.outcome, Some(Outcome::Agreed));
    assert_eq!(
        m.confirmation,
        Some(Confirmation::NotRequested {
            deadline_ms: T0 + 30 * DAY
        })
    );
    assert_eq!(m.apply(&session()), Err(MediationError::Ended));
    assert_eq!(
        m.apply(&MediationStep::ConfirmationDecided { granted: true }),
        Err(MediationError::ConfirmationOrder)
    );
    let late = MediationStep::ConfirmationRequested {
        court: "吴江区人民法院".into(),
        at_ms: T0 + 31 * DAY,
    };
    assert_eq!(m.clone().apply(&late), Err(MediationError::TooLate));
    m.apply(&MediationStep::ConfirmationRequested {
        court: "吴江区人民法院".into(),
        at_ms: T0 + 5 * DAY,
    })
    .unwrap();
    m.apply(&MediationStep::ConfirmationDecided { granted: true })
        .unwrap();
    assert_eq!(m.confirmation, Some(Confirmation::Granted));

    let mut refused = MediationState::new(Rung::Grid);
    refused
        .apply(&MediationStep::Refused {
            reason: "乙方拒绝调解".into(),
        })
        .unwrap();
    assert_eq!(refused.outcome, Some(Outcome::Refused));
    assert_eq!(
        refused.apply(&MediationStep::ConfirmationRequested {
            court: "法院".into(),
            at_ms: T0
        }),
        Err(MediationError::NoAgreement)
    );
}
