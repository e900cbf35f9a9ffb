//! WGS-84 → GCJ-02, the coordinate system maps published in China use (国测局坐标).
//!
//! Cases are stored in WGS-84 (what GNSS gives the phones). Coordinates the command centre
//! shows, and the GeoJSON it exports for Chinese map software, are GCJ-02: the published
//! transform (Krasovsky 1940 ellipsoid, a fixed polynomial-and-sine offset of a few hundred
//! metres), applied only inside mainland China's rough bounding box.

use gridlink_core::geo::LatLon;
use std::f64::consts::PI;

/// Semi-major axis of the Krasovsky 1940 ellipsoid, metres.
const A: f64 = 6_378_245.0;
/// Its first eccentricity squared.
const EE: f64 = 0.006_693_421_622_965_943;

/// Whether the transform applies (outside China GCJ-02 equals WGS-84).
pub(crate) fn in_china(p: LatLon) -> bool {
    (72.004..=137.8347).contains(&p.lon) && (0.8293..=55.8271).contains(&p.lat)
}

fn offset_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn offset_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// The GCJ-02 position of a WGS-84 point.
pub(crate) fn from_wgs84(p: LatLon) -> LatLon {
    if !in_china(p) {
        return p;
    }
    let (x, y) = (p.lon - 105.0, p.lat - 35.0);
    let rad = p.lat / 180.0 * PI;
    let magic = 1.0 - EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = offset_lat(x, y) * 180.0 / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = offset_lon(x, y) * 180.0 / (A / sqrt_magic * rad.cos() * PI);
    LatLon::new(p.lat + d_lat, p.lon + d_lon)
}

/// The WGS-84 point whose GCJ-02 position is `p` (by iteration, to well under a millimetre).
#[cfg(test)]
pub(crate) fn to_wgs84(p: LatLon) -> LatLon {
    let mut guess = p;
    for _ in 0..20 {
        let there = from_wgs84(guess);
        guess = LatLon::new(
            guess.lat + (p.lat - there.lat),
            guess.lon + (p.lon - there.lon),
        );
    }
    guess
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metres(a: LatLon, b: LatLon) -> f64 {
        let dy = (a.lat - b.lat) * 111_320.0;
        let dx = (a.lon - b.lon) * 111_320.0 * (a.lat.to_radians()).cos();
        (dx * dx + dy * dy).sqrt()
    }

    #[test]
    fn the_offset_in_wujiang_is_a_few_hundred_metres_to_the_south_east() {
        let wgs = LatLon::new(31.1600, 120.6400);
        let gcj = from_wgs84(wgs);
        let d = metres(wgs, gcj);
        assert!((300.0..700.0).contains(&d), "{d} m");
        // In the Suzhou area GCJ-02 lies east of and slightly south of WGS-84.
        assert!(gcj.lon > wgs.lon);
        assert!(gcj.lat < wgs.lat);
    }

    #[test]
    fn it_is_the_identity_outside_china_and_inverts_inside() {
        let tokyo = LatLon::new(35.68, 139.76);
        assert_eq!(from_wgs84(tokyo), tokyo);
        for (lat, lon) in [
            (31.16, 120.64),
            (39.9087, 116.3975),
            (22.54, 114.06),
            (43.8, 87.6),
        ] {
            let wgs = LatLon::new(lat, lon);
            let back = to_wgs84(from_wgs84(wgs));
            assert!(metres(wgs, back) < 0.001, "{lat},{lon}");
        }
    }
}
