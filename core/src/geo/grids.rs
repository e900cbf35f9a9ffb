//! Grid polygons (网格) loaded from GeoJSON, and `grid_at`, the point-in-grid lookup behind
//! every report's placement. An R-tree of bounding boxes narrows ~1,100 grids to a few
//! candidates; exact point-in-polygon tests decide.

use super::{GeoError, LatLon};
use geo::{
    BoundingRect, Contains, Coord, Intersects, LineString, MultiPolygon, Point, Polygon, Validation,
};
use rstar::{RTree, primitives::GeomWithData, primitives::Rectangle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The two kinds of grid in the district (see DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridKind {
    /// 基层网格: residential, one inspector.
    Basic,
    /// 专业网格: industrial parks and other specialised areas, two inspectors.
    Professional,
}

/// What the district says about one grid, from its GeoJSON feature properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridInfo {
    /// Grid code, unique in the district.
    pub id: String,
    /// Display name, e.g. 松陵镇南厍社区第3网格.
    pub name: String,
    /// Basic or professional.
    pub kind: GridKind,
    /// Code of the town (镇/街道) the grid belongs to.
    pub town_id: String,
    /// Code of the village or community (村/社区) the grid belongs to.
    pub village_id: String,
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// All grids of a district, indexed for point lookup.
#[derive(Debug)]
pub struct GridIndex {
    infos: Vec<GridInfo>,
    shapes: Vec<MultiPolygon<f64>>,
    by_id: HashMap<String, usize>,
    tree: RTree<Entry>,
}

impl GridIndex {
    /// Parses a GeoJSON FeatureCollection whose features are (Multi)Polygons with the properties
    /// `id`, `name`, `kind` (`basic`/`professional`), `town_id` and `village_id`.
    ///
    /// Every ring is checked (closed, finite, in range, at least three distinct points, no
    /// self-intersection); the first problem is returned as a [`GeoError`] naming the grid.
    pub fn from_geojson(text: &str) -> Result<Self, GeoError> {
        let parsed: geojson::GeoJson = text
            .parse()
            .map_err(|e: geojson::Error| GeoError::Parse(e.to_string()))?;
        let geojson::GeoJson::FeatureCollection(collection) = parsed else {
            return Err(GeoError::NotFeatureCollection);
        };
        let mut infos = Vec::with_capacity(collection.features.len());
        let mut shapes = Vec::with_capacity(collection.features.len());
        let mut by_id = HashMap::with_capacity(collection.features.len());
        for (index, feature) in collection.features.iter().enumerate() {
            let info = grid_info(index, feature)?;
            let shape = grid_shape(&info.id, feature)?;
            if by_id.insert(info.id.clone(), infos.len()).is_some() {
                return Err(GeoError::DuplicateGrid(info.id));
            }
            infos.push(info);
            shapes.push(shape);
        }
        let entries = shapes
            .iter()
            .enumerate()
            .filter_map(|(i, shape)| {
                let rect = shape.bounding_rect()?;
                let envelope = Rectangle::from_corners(
                    [rect.min().x, rect.min().y],
                    [rect.max().x, rect.max().y],
                );
                Some(GeomWithData::new(envelope, i))
            })
            .collect();
        Ok(Self {
            infos,
            shapes,
            by_id,
            tree: RTree::bulk_load(entries),
        })
    }

    /// The grid that contains `point` (WGS-84), if any.
    ///
    /// A point on an edge shared by several grids belongs to exactly one of them: the one with
    /// the smallest id. A point strictly inside a grid always belongs to that grid.
    pub fn grid_at(&self, point: LatLon) -> Option<&GridInfo> {
        let p = Point::new(point.lon, point.lat);
        let mut on_edge: Option<usize> = None;
        for entry in self.tree.locate_all_at_point(&[point.lon, point.lat]) {
            let shape = &self.shapes[entry.data];
            if shape.contains(&p) {
                return Some(&self.infos[entry.data]);
            }
            if shape.intersects(&p)
                && on_edge.is_none_or(|best| self.infos[entry.data].id < self.infos[best].id)
            {
                on_edge = Some(entry.data);
            }
        }
        on_edge.map(|i| &self.infos[i])
    }

    /// The grid with this id.
    pub fn get(&self, id: &str) -> Option<&GridInfo> {
        self.by_id.get(id).map(|&i| &self.infos[i])
    }

    /// The polygon of the grid with this id.
    pub fn shape(&self, id: &str) -> Option<&MultiPolygon<f64>> {
        self.by_id.get(id).map(|&i| &self.shapes[i])
    }

    /// All grids, in file order.
    pub fn grids(&self) -> &[GridInfo] {
        &self.infos
    }

    /// Number of grids.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether the index holds no grid.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }
}

fn grid_info(index: usize, feature: &geojson::Feature) -> Result<GridInfo, GeoError> {
    let prop = |property: &'static str| -> Result<String, GeoError> {
        feature
            .property(property)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(GeoError::MissingProperty { index, property })
    };
    let kind = match prop("kind")?.as_str() {
        "basic" => GridKind::Basic,
        "professional" => GridKind::Professional,
        _ => {
            return Err(GeoError::MissingProperty {
                index,
                property: "kind",
            });
        }
    };
    Ok(GridInfo {
        id: prop("id")?,
        name: prop("name")?,
        kind,
        town_id: prop("town_id")?,
        village_id: prop("village_id")?,
    })
}

fn grid_shape(grid_id: &str, feature: &geojson::Feature) -> Result<MultiPolygon<f64>, GeoError> {
    let not_polygon = || GeoError::NotPolygon {
        grid_id: grid_id.to_owned(),
    };
    let geometry = feature.geometry.as_ref().ok_or_else(not_polygon)?;
    let polygons: Vec<&geojson::PolygonType> = match &geometry.value {
        geojson::GeometryValue::Polygon { coordinates } => vec![coordinates],
        geojson::GeometryValue::MultiPolygon { coordinates } => coordinates.iter().collect(),
        _ => return Err(not_polygon()),
    };
    let mut ring_no = 0;
    for rings in &polygons {
        for ring in *rings {
            check_ring(grid_id, ring_no, ring)?;
            ring_no += 1;
        }
    }
    let ring = |positions: &Vec<geojson::Position>| -> LineString<f64> {
        positions
            .iter()
            .map(|p| Coord {
                x: p.as_slice()[0],
                y: p.as_slice()[1],
            })
            .collect()
    };
    let shape = MultiPolygon::new(
        polygons
            .iter()
            .filter_map(|rings| {
                let (exterior, interiors) = rings.split_first()?;
                Some(Polygon::new(
                    ring(exterior),
                    interiors.iter().map(ring).collect(),
                ))
            })
            .collect(),
    );
    if shape.0.is_empty() {
        return Err(not_polygon());
    }
    if let Err(problem) = shape.check_validation() {
        return Err(GeoError::InvalidPolygon {
            grid_id: grid_id.to_owned(),
            reason: problem.to_string(),
        });
    }
    Ok(shape)
}

/// Checks what geo-types would silently repair: it closes open rings itself, so an unclosed ring
/// in the file must be caught here, before conversion.
fn check_ring(grid_id: &str, ring_no: usize, ring: &[geojson::Position]) -> Result<(), GeoError> {
    for (i, position) in ring.iter().enumerate() {
        let xy = position.as_slice();
        let ok = xy.len() >= 2 && LatLon::new(xy[1], xy[0]).is_valid();
        if !ok {
            return Err(GeoError::BadCoordinate {
                grid_id: grid_id.to_owned(),
                detail: format!("ring {ring_no}, point {i}: {position:?}"),
            });
        }
    }
    if ring.len() < 4 {
        return Err(GeoError::InvalidPolygon {
            grid_id: grid_id.to_owned(),
            reason: format!(
                "ring {ring_no} has {} points; a closed ring needs at least 4",
                ring.len()
            ),
        });
    }
    if ring.first() != ring.last() {
        return Err(GeoError::RingNotClosed {
            grid_id: grid_id.to_owned(),
            ring: ring_no,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(features: &str) -> String {
        format!(r#"{{"type":"FeatureCollection","features":[{features}]}}"#)
    }

    fn square(id: &str, x0: f64, y0: f64, size: f64) -> String {
        let (x1, y1) = (x0 + size, y0 + size);
        format!(
            r#"{{"type":"Feature","properties":{{"id":"{id}","name":"{id}","kind":"basic","town_id":"t","village_id":"v"}},
            "geometry":{{"type":"Polygon","coordinates":[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]}}}}"#
        )
    }

    #[test]
    fn shared_edges_and_corners_resolve_to_one_grid() {
        let text = collection(
            &[
                square("b", 120.0, 31.0, 0.01),
                square("a", 120.01, 31.0, 0.01),
            ]
            .join(","),
        );
        let index = GridIndex::from_geojson(&text).unwrap();
        assert_eq!(index.grid_at(LatLon::new(31.005, 120.005)).unwrap().id, "b");
        assert_eq!(index.grid_at(LatLon::new(31.005, 120.015)).unwrap().id, "a");
        // The shared edge x = 120.01 belongs to the smaller id.
        assert_eq!(index.grid_at(LatLon::new(31.005, 120.01)).unwrap().id, "a");
        assert!(index.grid_at(LatLon::new(31.5, 120.005)).is_none());
    }

    #[test]
    fn an_open_ring_is_named() {
        let text = collection(
            r#"{"type":"Feature","properties":{"id":"g1","name":"n","kind":"basic","town_id":"t","village_id":"v"},
            "geometry":{"type":"Polygon","coordinates":[[[120,31],[120.1,31],[120.1,31.1],[120,31.1]]]}}"#,
        );
        let err = GridIndex::from_geojson(&text).unwrap_err();
        assert!(
            matches!(&err, GeoError::RingNotClosed { grid_id, ring: 0 } if grid_id == "g1"),
            "{err}"
        );
    }

    #[test]
    fn a_self_intersecting_ring_is_rejected() {
        let text = collection(
            r#"{"type":"Feature","properties":{"id":"bow","name":"n","kind":"basic","town_id":"t","village_id":"v"},
            "geometry":{"type":"Polygon","coordinates":[[[120,31],[120.1,31.1],[120.1,31],[120,31.1],[120,31]]]}}"#,
        );
        let err = GridIndex::from_geojson(&text).unwrap_err();
        assert!(
            matches!(&err, GeoError::InvalidPolygon { grid_id, .. } if grid_id == "bow"),
            "{err}"
        );
    }

    #[test]
    fn bad_files_get_typed_errors() {
        assert!(matches!(
            GridIndex::from_geojson("{not json"),
            Err(GeoError::Parse(_))
        ));
        assert!(matches!(
            GridIndex::from_geojson(r#"{"type":"Point","coordinates":[1,2]}"#),
            Err(GeoError::NotFeatureCollection)
        ));
        let dup = collection(
            &[
                square("x", 120.0, 31.0, 0.01),
                square("x", 120.1, 31.0, 0.01),
            ]
            .join(","),
        );
        assert!(
            matches!(GridIndex::from_geojson(&dup), Err(GeoError::DuplicateGrid(id)) if id == "x")
        );
        let far = collection(&square("far", 200.0, 31.0, 0.01));
        assert!(matches!(
            GridIndex::from_geojson(&far),
            Err(GeoError::BadCoordinate { .. })
        ));
        let no_props = collection(r#"{"type":"Feature","properties":{},"geometry":null}"#);
        assert!(matches!(
            GridIndex::from_geojson(&no_props),
            Err(GeoError::MissingProperty { index: 0, .. })
        ));
    }
}
