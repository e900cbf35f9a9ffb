//! Separation of duties (职责分离): by default the person who resolved a case may neither
//! verify nor close it, so that no one marks their own work as done. A district may relax it
//! (a small office where one person does everything); the rule is checked when an action is
//! recorded, by the same function on the phone ([`crate::store::Store::record`]) and on the
//! server (every pushed event, and the command centre's actions, which are pushes too).
//!
//! The fold does not apply it: which events count is decided once, when they are recorded, and
//! every replica then folds the same history to the same state whatever its own setting.

use super::{Case, Event, EventKind};
use serde::{Deserialize, Serialize};

/// Who may check their own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Duties {
    /// The person who resolved a case may verify it.
    #[serde(default)]
    pub resolver_may_verify: bool,
    /// The person who resolved a case may close it.
    #[serde(default)]
    pub resolver_may_close: bool,
}

impl Duties {
    /// Separation off: anyone whose role allows it may verify and close.
    pub const RELAXED: Duties = Duties {
        resolver_may_verify: true,
        resolver_may_close: true,
    };

    /// Why recording `event` (the last of `case`'s history, or one in it) breaks the rule, in
    /// Chinese and English; none when it does not.
    pub fn breach(&self, case: &Case, event: &Event) -> Option<String> {
        let (what_zh, what) = match event.kind {
            EventKind::Verified { .. } if !self.resolver_may_verify => ("验收", "verify"),
            EventKind::Closed { .. } if !self.resolver_may_close => ("结案", "close"),
            _ => return None,
        };
        let flagged = |id: &str| case.state.flagged.iter().any(|f| f.event_id == id);
        let resolver = case
            .history
            .iter()
            .take_while(|e| e.id != event.id)
            .filter(|e| !flagged(&e.id))
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Resolved { .. } | EventKind::ResolvedInGrid { .. }
                )
            })
            .last()?;
        (resolver.actor == event.actor).then(|| {
            format!(
                "处置人不能{what_zh}自己处置的案件，请由其他人{what_zh} / the person who resolved a case cannot {what} it: someone else must"
            )
        })
    }
}
