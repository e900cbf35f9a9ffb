//! The names and shapes the pages show: towns, villages, grids (with their polygons) and the
//! departments cases are dispatched to. Built from the settings an import writes
//! (`district_admin`, `grid_shapes`, read once by `AppState::reload_grid_index`) and kept in
//! memory until the next import.

use crate::store::{Area, StoreError, StoreResult};
use gridlink_core::sync::scope::GridPlace;
use std::collections::HashMap;

/// A grid with its outline (WGS-84 `[lon, lat]`).
#[derive(Debug, Clone, PartialEq)]
pub struct GridShape {
    /// Grid id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Village.
    pub village_id: String,
    /// Town.
    pub town_id: String,
    /// Outer ring.
    pub ring: Vec<[f64; 2]>,
}

impl GridShape {
    /// Whether the grid lies in an area.
    pub fn lies_in(&self, area: &Area) -> bool {
        area.covers(&self.town_id, &self.village_id, &self.id)
    }
}

/// A department or law-enforcement unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Unit {
    /// Code (`dept-env`, `enf-…`).
    pub code: String,
    /// Name.
    pub name: String,
    /// `department` or `law_enforcement`.
    pub kind: String,
    /// The town a law-enforcement unit serves.
    #[serde(default)]
    pub town_id: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Named {
    id: String,
    name: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Admin {
    #[serde(default)]
    name: String,
    #[serde(default)]
    towns: Vec<Named>,
    #[serde(default)]
    villages: Vec<Named>,
    #[serde(default)]
    departments: Vec<Unit>,
}

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The district's name.
    pub district: String,
    /// Towns in order: (id, name).
    pub towns: Vec<(String, String)>,
    /// Grids in order.
    pub grids: Vec<GridShape>,
    /// Departments and law-enforcement units.
    pub units: Vec<Unit>,
    names: HashMap<String, String>,
    /// Position of each grid in `grids`.
    grid_at: HashMap<String, usize>,
}

impl Directory {
    /// The directory from the settings `district_admin` and `grid_shapes` (empty before any
    /// import).
    pub fn load(admin: Option<&[u8]>, shapes: Option<&str>) -> StoreResult<Directory> {
        let mut dir = Directory::default();
        if let Some(bytes) = admin {
            let admin: Admin = serde_json::from_slice(bytes)
                .map_err(|e| StoreError::Database(format!("district_admin: {e}")))?;
            dir.district = admin.name;
            for t in admin.towns {
                dir.names.insert(t.id.clone(), t.name.clone());
                dir.towns.push((t.id, t.name));
            }
            for v in admin.villages {
                dir.names.insert(v.id, v.name);
            }
            for u in &admin.departments {
                dir.names.insert(format!("dept:{}", u.code), u.name.clone());
                dir.names.insert(format!("enf:{}", u.code), u.name.clone());
            }
            dir.units = admin.departments;
        }
        if let Some(text) = shapes {
            let shapes: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| StoreError::Database(format!("grid_shapes: {e}")))?;
            let features = shapes["features"].as_array().cloned().unwrap_or_default();
            for f in features {
                let p = &f["properties"];
                let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                let ring = f["geometry"]["coordinates"][0]
                    .as_array()
                    .map(|points| {
                        points
                            .iter()
                            .filter_map(|xy| Some([xy[0].as_f64()?, xy[1].as_f64()?]))
                            .collect()
                    })
                    .unwrap_or_default();
                let grid = GridShape {
                    id: text("id"),
                    name: text("name"),
                    village_id: text("village_id"),
                    town_id: text("town_id"),
                    ring,
                };
                dir.names.insert(grid.id.clone(), grid.name.clone());
                dir.grid_at.insert(grid.id.clone(), dir.grids.len());
                dir.grids.push(grid);
            }
        }
        Ok(dir)
    }

    /// The name of a town, village, grid or unit (`dept:…`, `enf:…`), or the id itself.
    pub fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    /// A place as "town · village · grid".
    pub fn place(&self, place: &GridPlace) -> String {
        format!(
            "{} · {} · {}",
            self.name(&place.town_id),
            self.name(&place.village_id),
            self.name(&place.grid_id)
        )
    }

    /// A grid's shape.
    pub fn grid(&self, id: &str) -> Option<&GridShape> {
        self.grid_at.get(id).and_then(|&i| self.grids.get(i))
    }

    /// The grids lying in an area.
    pub fn grids_in<'a>(&'a self, area: &'a Area) -> impl Iterator<Item = &'a GridShape> {
        self.grids.iter().filter(|g| g.lies_in(area))
    }
}
