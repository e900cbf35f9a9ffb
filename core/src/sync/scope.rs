//! Scope: which documents a grant covers. Every document carries a set of scope keys — its
//! grid, village, town and the district; the reporter, for citizens' own reports; and every
//! department or law-enforcement unit the case was dispatched to. A user is granted keys; a
//! device reads a document when one of its user's keys is among the document's keys, and
//! writes it on the same condition, except that a `reporter:` key only ever grants reading.

use crate::case::{Case, DispatchTarget, EventKind};
use std::collections::BTreeSet;
use std::fmt;

/// One scope key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKey {
    /// The whole district (the command centre).
    District,
    /// A town (镇/街道).
    Town(String),
    /// A village or community (村/社区).
    Village(String),
    /// A grid.
    Grid(String),
    /// A department the case was dispatched to.
    Department(String),
    /// A law-enforcement unit the case was dispatched to.
    Enforcement(String),
    /// The user who reported the case (read access for citizens to their own reports).
    Reporter(String),
    /// One user by id: every user implicitly holds their own (a mediation file's team).
    Member(String),
    /// The mediators of a grid, village or town (by its id).
    Mediation(String),
    /// Read by every staff user (checklist templates); grants no writing.
    Shared,
}

impl ScopeKey {
    /// Whether this key lets its holder write documents (not only read them).
    pub fn grants_write(&self) -> bool {
        !matches!(self, ScopeKey::Reporter(_) | ScopeKey::Shared)
    }

    /// The keys every user holds without a grant: their own `member:` key, and `shared` for
    /// staff (not citizens).
    pub fn implicit(user_id: &str, role: crate::case::Role) -> Vec<ScopeKey> {
        let mut keys = vec![ScopeKey::Member(user_id.to_owned())];
        if role != crate::case::Role::Citizen {
            keys.push(ScopeKey::Shared);
        }
        keys
    }
}

impl fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeKey::District => f.write_str("district"),
            ScopeKey::Town(id) => write!(f, "town:{id}"),
            ScopeKey::Village(id) => write!(f, "village:{id}"),
            ScopeKey::Grid(id) => write!(f, "grid:{id}"),
            ScopeKey::Department(id) => write!(f, "dept:{id}"),
            ScopeKey::Enforcement(id) => write!(f, "enf:{id}"),
            ScopeKey::Reporter(id) => write!(f, "reporter:{id}"),
            ScopeKey::Member(id) => write!(f, "member:{id}"),
            ScopeKey::Mediation(id) => write!(f, "mediation:{id}"),
            ScopeKey::Shared => f.write_str("shared"),
        }
    }
}

/// A scope key that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "无效的授权范围 {0:?}（应为 district、shared、town:…、village:…、grid:…、dept:…、enf:…、reporter:…、member:… 或 mediation:…）/ not a scope: {0:?} (expected district, shared, town:…, village:…, grid:…, dept:…, enf:…, reporter:…, member:… or mediation:…)"
)]
pub struct BadScope(pub String);

impl std::str::FromStr for ScopeKey {
    type Err = BadScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "district" {
            return Ok(ScopeKey::District);
        }
        if s == "shared" {
            return Ok(ScopeKey::Shared);
        }
        let bad = || BadScope(s.to_owned());
        let (kind, id) = s.split_once(':').ok_or_else(bad)?;
        if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == ':') {
            return Err(bad());
        }
        let id = id.to_owned();
        Ok(match kind {
            "town" => ScopeKey::Town(id),
            "village" => ScopeKey::Village(id),
            "grid" => ScopeKey::Grid(id),
            "dept" => ScopeKey::Department(id),
            "enf" => ScopeKey::Enforcement(id),
            "reporter" => ScopeKey::Reporter(id),
            "member" => ScopeKey::Member(id),
            "mediation" => ScopeKey::Mediation(id),
            _ => return Err(bad()),
        })
    }
}

/// Where a grid sits in the district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridPlace {
    /// The grid.
    pub grid_id: String,
    /// Its village or community.
    pub village_id: String,
    /// Its town or street.
    pub town_id: String,
}

/// The keys of a place: the district, its town, its village and the grid. A case, an
/// address or a visit in that grid carries them; a user holding any of them covers the grid.
pub fn grid_scopes(place: &GridPlace) -> BTreeSet<ScopeKey> {
    BTreeSet::from([
        ScopeKey::District,
        ScopeKey::Town(place.town_id.clone()),
        ScopeKey::Village(place.village_id.clone()),
        ScopeKey::Grid(place.grid_id.clone()),
    ])
}

/// The scope keys of a case: its place, its reporter, and every unit it was dispatched to by
/// an event that the fold applied (a flagged dispatch grants nothing).
pub fn case_scopes(case: &Case, place: &GridPlace) -> BTreeSet<ScopeKey> {
    let mut keys = grid_scopes(place);
    if let Some(reporter) = &case.state.reporter {
        keys.insert(ScopeKey::Reporter(reporter.clone()));
    }
    for event in &case.history {
        let EventKind::Dispatched { target, .. } = &event.kind else {
            continue;
        };
        if case.state.flagged.iter().any(|f| f.event_id == event.id) {
            continue;
        }
        keys.insert(match target {
            DispatchTarget::Department { code, .. } => ScopeKey::Department(code.clone()),
            DispatchTarget::LawEnforcement { code, .. } => ScopeKey::Enforcement(code.clone()),
        });
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_keys_are_refused() {
        for key in [
            ScopeKey::District,
            ScopeKey::Town("320509001".into()),
            ScopeKey::Grid("320509001001-01".into()),
            ScopeKey::Department("urban".into()),
            ScopeKey::Reporter("cit-1".into()),
            ScopeKey::Member("u-1".into()),
            ScopeKey::Mediation("320509001".into()),
            ScopeKey::Shared,
        ] {
            assert_eq!(key.to_string().parse::<ScopeKey>(), Ok(key));
        }
        for bad in ["", "grid", "grid:", "planet:x", "grid:a:b", "town:\n"] {
            assert!(bad.parse::<ScopeKey>().is_err(), "{bad:?}");
        }
    }
}
