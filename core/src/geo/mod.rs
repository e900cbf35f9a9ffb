//! Geography: points, grid polygons and the lookup of the grid that contains a point, distances,
//! and the conversions between WGS-84 (what phones and storage use) and the Chinese map datums
//! GCJ-02 and BD-09 (what map SDKs in China draw in).
//!
//! Everything is stored in WGS-84; conversions happen only at the edge (maps, exports).

mod coords;
mod grids;

pub use coords::{
    bd09_to_gcj02, bd09_to_wgs84, gcj02_to_bd09, gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02,
};
pub use grids::{GridIndex, GridInfo, GridKind};

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres (IUGG), used by [`haversine_m`].
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A position in degrees. Unless a function says otherwise, it is WGS-84.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Serialize,
    Deserialize,
    autosurgeon::Reconcile,
    autosurgeon::Hydrate,
)]
pub struct LatLon {
    /// Latitude in degrees, −90…90.
    pub lat: f64,
    /// Longitude in degrees, −180…180.
    pub lon: f64,
}

impl LatLon {
    /// A point from latitude and longitude in degrees.
    pub const fn new(lat: f64, lon: f64) -> Self {
        Self { lat, lon }
    }

    /// Whether both coordinates are finite and inside their ranges.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }
}

/// Great-circle distance in metres between two WGS-84 points (haversine formula).
pub fn haversine_m(a: LatLon, b: LatLon) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// What is wrong with a grid polygon file.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file is not GeoJSON at all.
    #[error("网格文件不是有效的 GeoJSON / grid file is not valid GeoJSON: {0}")]
    Parse(String),
    /// The GeoJSON is valid but not a FeatureCollection.
    #[error("网格文件必须是 FeatureCollection / grid file must be a FeatureCollection")]
    NotFeatureCollection,
    /// A feature lacks a property the grid needs.
    #[error("第 {index} 个要素缺少属性 `{property}` / feature {index} lacks property `{property}`")]
    MissingProperty {
        /// Position of the feature in the collection.
        index: usize,
        /// Name of the missing property.
        property: &'static str,
    },
    /// A feature's geometry is missing or not a (Multi)Polygon.
    #[error(
        "网格 {grid_id} 的几何不是多边形 / grid {grid_id}: geometry is not a Polygon or MultiPolygon"
    )]
    NotPolygon {
        /// The grid's id.
        grid_id: String,
    },
    /// A ring does not end where it starts.
    #[error("网格 {grid_id} 的第 {ring} 个环未闭合 / grid {grid_id}: ring {ring} is not closed")]
    RingNotClosed {
        /// The grid's id.
        grid_id: String,
        /// Position of the ring in the feature.
        ring: usize,
    },
    /// A coordinate is out of range or not a number.
    #[error("网格 {grid_id} 含有无效坐标 / grid {grid_id} has an invalid coordinate: {detail}")]
    BadCoordinate {
        /// The grid's id.
        grid_id: String,
        /// Which coordinate.
        detail: String,
    },
    /// The polygon is not valid: too few points, self-intersection, holes outside the shell.
    #[error("网格 {grid_id} 的多边形无效 / grid {grid_id}: invalid polygon: {reason}")]
    InvalidPolygon {
        /// The grid's id.
        grid_id: String,
        /// What geo's validation found.
        reason: String,
    },
    /// Two features carry the same grid id.
    #[error("网格编号重复 / duplicate grid id {0}")]
    DuplicateGrid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_matches_a_known_distance() {
        // Checked against an independent haversine computation with the same radius.
        let d = haversine_m(
            LatLon::new(31.3300, 120.6110),
            LatLon::new(31.1610, 120.6450),
        );
        assert!((d - 19_067.92).abs() < 0.5, "{d}");
        assert_eq!(
            haversine_m(LatLon::new(31.0, 120.0), LatLon::new(31.0, 120.0)),
            0.0
        );
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = haversine_m(LatLon::new(30.0, 120.0), LatLon::new(31.0, 120.0));
        assert!((d - 111_195.0).abs() < 5.0, "{d}");
    }
}
