//! Visibility: what a viewer may see. One answer for every reader of the district's record:
//! a phone's sync scope, the command centre's pages, exports and statistics, `GET /v1/scores`,
//! coverage and Open311. No handler decides visibility by itself; the store backends build
//! their row filters from [`Area::filter`] and [`Area::town_filter`].
//!
//! Three things can be seen:
//! - **a document** (a case, a record): when one of the viewer's grants is among the
//!   document's scope keys ([`sees_document`]);
//! - **a row about a place** (a case row, a grid on the map): when the place lies in the
//!   viewer's [`Area`], the place keys among their grants. For place keys the two answers
//!   agree: a case's scope keys hold its grid, village, town and the district;
//! - **an aggregate** (a score, a count): when everything summed into it lies in the area. A
//!   grid's or a village's figures lie in their town; a town's figures need the whole town; a
//!   person's, a department's or a law-enforcement unit's sum cases of several towns, so only
//!   a viewer of the whole district sees them ([`Area::sees_unit`]).

use super::scope::{GridPlace, ScopeKey};
use crate::case::ScoreUnit;
use std::collections::{BTreeSet, HashMap};

/// Whether a viewer holding `grants` may read a document with these scope keys.
pub fn sees_document(grants: &BTreeSet<ScopeKey>, doc_scopes: &BTreeSet<ScopeKey>) -> bool {
    doc_scopes.iter().any(|k| grants.contains(k))
}

/// Whether a viewer holding `grants` may write a document with these scope keys (a
/// `reporter:` or `shared` key only ever grants reading).
pub fn writes_document(grants: &BTreeSet<ScopeKey>, doc_scopes: &BTreeSet<ScopeKey>) -> bool {
    doc_scopes
        .iter()
        .any(|k| k.grants_write() && grants.contains(k))
}

/// The part of the district a viewer sees, from the place keys among their grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Area {
    /// The whole district.
    pub district: bool,
    /// Towns.
    pub towns: Vec<String>,
    /// Villages.
    pub villages: Vec<String>,
    /// Grids.
    pub grids: Vec<String>,
}

/// Which rows of a table keyed by place an area keeps: what a backend turns into its own
/// filter (SQL `WHERE`, an index range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceFilter<'a> {
    /// Every row.
    All,
    /// No row.
    Nothing,
    /// Rows whose town, village or grid is among these (any of the three).
    AnyOf {
        /// Town ids.
        towns: &'a [String],
        /// Village ids.
        villages: &'a [String],
        /// Grid ids.
        grids: &'a [String],
    },
}

impl Area {
    /// The whole district.
    pub fn district() -> Area {
        Area {
            district: true,
            ..Area::default()
        }
    }

    /// The area the place keys among `grants` cover.
    pub fn of(grants: &BTreeSet<ScopeKey>) -> Area {
        let mut area = Area::default();
        for key in grants {
            area.add(key);
        }
        area
    }

    /// The area of one key (an Open311 API key is `district` or `town:ID`).
    pub fn of_key(key: &ScopeKey) -> Area {
        let mut area = Area::default();
        area.add(key);
        area
    }

    fn add(&mut self, key: &ScopeKey) {
        match key {
            ScopeKey::District => self.district = true,
            ScopeKey::Town(t) => self.towns.push(t.clone()),
            ScopeKey::Village(v) => self.villages.push(v.clone()),
            ScopeKey::Grid(g) => self.grids.push(g.clone()),
            _ => {}
        }
    }

    /// Whether it covers nothing.
    pub fn is_empty(&self) -> bool {
        !self.district && self.towns.is_empty() && self.villages.is_empty() && self.grids.is_empty()
    }

    /// Whether a place lies in it.
    pub fn contains(&self, place: &GridPlace) -> bool {
        self.covers(&place.town_id, &place.village_id, &place.grid_id)
    }

    /// Whether a grid, in its village and town, lies in it.
    pub fn covers(&self, town_id: &str, village_id: &str, grid_id: &str) -> bool {
        self.district
            || self.towns.iter().any(|t| t == town_id)
            || self.villages.iter().any(|v| v == village_id)
            || self.grids.iter().any(|g| g == grid_id)
    }

    /// Whether the whole of a town lies in it (what a figure summed over a town needs).
    pub fn sees_town(&self, town_id: &str) -> bool {
        self.district || self.towns.iter().any(|t| t == town_id)
    }

    /// Whether a village lies in it, whole.
    pub fn sees_village(&self, village_id: &str, places: &Places) -> bool {
        self.district
            || self.villages.iter().any(|v| v == village_id)
            || places
                .town_of_village(village_id)
                .is_some_and(|t| self.sees_town(t))
    }

    /// Whether a score unit's figures may be shown: grids, villages and towns lying in the
    /// area; people, departments and law-enforcement units only to the whole district.
    pub fn sees_unit(&self, unit: &ScoreUnit, places: &Places) -> bool {
        match unit {
            ScoreUnit::Grid(id) => places.grid(id).is_some_and(|p| self.contains(p)),
            ScoreUnit::Village(id) => self.sees_village(id, places),
            ScoreUnit::Town(id) => self.sees_town(id),
            ScoreUnit::Person(_) | ScoreUnit::Department(_) | ScoreUnit::Enforcement(_) => {
                self.district
            }
        }
    }

    /// The rows of a table keyed by town, village and grid that lie in the area.
    pub fn filter(&self) -> PlaceFilter<'_> {
        if self.district {
            PlaceFilter::All
        } else if self.is_empty() {
            PlaceFilter::Nothing
        } else {
            PlaceFilter::AnyOf {
                towns: &self.towns,
                villages: &self.villages,
                grids: &self.grids,
            }
        }
    }

    /// The rows of a table summed per town (no village or grid) that lie in the area: only
    /// the towns seen whole.
    pub fn town_filter(&self) -> PlaceFilter<'_> {
        if self.district {
            PlaceFilter::All
        } else if self.towns.is_empty() {
            PlaceFilter::Nothing
        } else {
            PlaceFilter::AnyOf {
                towns: &self.towns,
                villages: &[],
                grids: &[],
            }
        }
    }

    /// A key naming the area, for caches of what it sees.
    pub fn cache_key(&self) -> String {
        if self.district {
            "district".to_owned()
        } else {
            format!("t{:?}v{:?}g{:?}", self.towns, self.villages, self.grids)
        }
    }
}

/// Where every grid and village of the district lies: what [`Area::sees_unit`] needs to place
/// a grid's or a village's figures.
#[derive(Debug, Clone, Default)]
pub struct Places {
    grids: HashMap<String, GridPlace>,
    town_of_village: HashMap<String, String>,
}

impl Places {
    /// From the district's grids.
    pub fn new(grids: impl IntoIterator<Item = GridPlace>) -> Places {
        let mut places = Places::default();
        for g in grids {
            places
                .town_of_village
                .insert(g.village_id.clone(), g.town_id.clone());
            places.grids.insert(g.grid_id.clone(), g);
        }
        places
    }

    /// Where a grid lies.
    pub fn grid(&self, grid_id: &str) -> Option<&GridPlace> {
        self.grids.get(grid_id)
    }

    /// The town of a village.
    pub fn town_of_village(&self, village_id: &str) -> Option<&str> {
        self.town_of_village.get(village_id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::scope::grid_scopes;

    fn place(town: &str, village: &str, grid: &str) -> GridPlace {
        GridPlace {
            grid_id: grid.into(),
            village_id: village.into(),
            town_id: town.into(),
        }
    }

    fn places() -> Places {
        Places::new([
            place("t1", "t1-v1", "t1-v1-g1"),
            place("t1", "t1-v2", "t1-v2-g1"),
            place("t2", "t2-v1", "t2-v1-g1"),
        ])
    }

    fn grants(keys: &[ScopeKey]) -> BTreeSet<ScopeKey> {
        keys.iter().cloned().collect()
    }

    #[test]
    fn a_document_and_its_row_are_seen_by_the_same_place_grants() {
        let all = places();
        let viewers = [
            grants(&[ScopeKey::District]),
            grants(&[ScopeKey::Town("t1".into())]),
            grants(&[ScopeKey::Village("t1-v2".into())]),
            grants(&[ScopeKey::Grid("t2-v1-g1".into())]),
            grants(&[ScopeKey::Department("dept-env".into())]),
            grants(&[]),
        ];
        for viewer in &viewers {
            let area = Area::of(viewer);
            for p in all.grids.values() {
                assert_eq!(
                    sees_document(viewer, &grid_scopes(p)),
                    area.contains(p),
                    "{viewer:?} {p:?}"
                );
            }
        }
    }

    #[test]
    fn reading_and_writing_differ_only_by_read_only_keys() {
        let doc = grants(&[ScopeKey::Reporter("cit-1".into()), ScopeKey::Shared]);
        let citizen = grants(&[ScopeKey::Reporter("cit-1".into())]);
        assert!(sees_document(&citizen, &doc));
        assert!(!writes_document(&citizen, &doc));
        let grid = grants(&[ScopeKey::Grid("g".into())]);
        assert!(writes_document(&grid, &grid));
        assert!(!sees_document(&grid, &doc));
    }

    #[test]
    fn a_town_sees_its_own_places_and_figures_only() {
        let all = places();
        let town = Area::of_key(&ScopeKey::Town("t1".into()));
        assert!(town.sees_unit(&ScoreUnit::Grid("t1-v2-g1".into()), &all));
        assert!(!town.sees_unit(&ScoreUnit::Grid("t2-v1-g1".into()), &all));
        assert!(town.sees_unit(&ScoreUnit::Village("t1-v1".into()), &all));
        assert!(!town.sees_unit(&ScoreUnit::Village("t2-v1".into()), &all));
        assert!(town.sees_unit(&ScoreUnit::Town("t1".into()), &all));
        assert!(!town.sees_unit(&ScoreUnit::Town("t2".into()), &all));
        for unit in [
            ScoreUnit::Person("insp-1".into()),
            ScoreUnit::Department("dept-env".into()),
            ScoreUnit::Enforcement("enf-1".into()),
            ScoreUnit::Grid("unknown".into()),
            ScoreUnit::Village("unknown".into()),
        ] {
            assert!(!town.sees_unit(&unit, &all), "{unit:?}");
        }
        let district = Area::district();
        assert!(district.sees_unit(&ScoreUnit::Department("dept-env".into()), &all));
        assert!(district.sees_unit(&ScoreUnit::Person("insp-1".into()), &all));
    }

    #[test]
    fn a_village_sees_its_grids_but_not_its_town_figures() {
        let all = places();
        let village = Area::of(&grants(&[ScopeKey::Village("t1-v1".into())]));
        assert!(village.sees_unit(&ScoreUnit::Grid("t1-v1-g1".into()), &all));
        assert!(village.sees_unit(&ScoreUnit::Village("t1-v1".into()), &all));
        assert!(!village.sees_unit(&ScoreUnit::Village("t1-v2".into()), &all));
        assert!(!village.sees_unit(&ScoreUnit::Town("t1".into()), &all));
        assert!(!village.sees_town("t1"));
        assert_eq!(village.town_filter(), PlaceFilter::Nothing);
        assert!(
            matches!(village.filter(), PlaceFilter::AnyOf { villages, .. } if villages == ["t1-v1"])
        );
    }

    #[test]
    fn filters_name_everything_nothing_or_the_granted_places() {
        assert_eq!(Area::district().filter(), PlaceFilter::All);
        assert_eq!(Area::district().town_filter(), PlaceFilter::All);
        assert_eq!(Area::default().filter(), PlaceFilter::Nothing);
        let mine = Area::of(&grants(&[
            ScopeKey::Town("t2".into()),
            ScopeKey::Grid("t1-v1-g1".into()),
            ScopeKey::Department("dept-env".into()),
        ]));
        assert_eq!(
            mine.filter(),
            PlaceFilter::AnyOf {
                towns: &["t2".to_owned()],
                villages: &[],
                grids: &["t1-v1-g1".to_owned()],
            }
        );
        assert_eq!(
            mine.town_filter(),
            PlaceFilter::AnyOf {
                towns: &["t2".to_owned()],
                villages: &[],
                grids: &[],
            }
        );
        assert_ne!(mine.cache_key(), Area::district().cache_key());
        assert!(Area::of_key(&ScopeKey::Department("x".into())).is_empty());
    }
}
