//! WGS-84 ↔ GCJ-02 ↔ BD-09.
//!
//! GCJ-02 is the obfuscated datum that every map published in mainland China must use; BD-09 is
//! Baidu's further offset of it. The forward transform (WGS-84 → GCJ-02) is the widely published
//! polynomial on the Krasovsky ellipsoid; its inverse has no closed form, so it is solved by fixed-
//! point iteration to well under a millimetre. Outside mainland China GCJ-02 equals WGS-84.

use super::LatLon;
use std::f64::consts::PI;

/// Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses it.
const A: f64 = 6_378_245.0;
/// Krasovsky 1940 first eccentricity squared.
const EE: f64 = 0.006_693_421_622_965_943;
/// Baidu's angular constant.
const X_PI: f64 = PI * 3000.0 / 180.0;

/// The rough box outside which GCJ-02 applies no offset.
fn outside_china(p: LatLon) -> bool {
    !(72.004..=137.8347).contains(&p.lon) || !(0.8293..=55.8271).contains(&p.lat)
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

/// WGS-84 → GCJ-02.
pub fn wgs84_to_gcj02(p: LatLon) -> LatLon {
    if outside_china(p) {
        return p;
    }
    let d_lat = offset_lat(p.lon - 105.0, p.lat - 35.0);
    let d_lon = offset_lon(p.lon - 105.0, p.lat - 35.0);
    let rad_lat = p.lat.to_radians();
    let magic = 1.0 - EE * rad_lat.sin().powi(2);
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (A / sqrt_magic * rad_lat.cos() * PI);
    LatLon::new(p.lat + d_lat, p.lon + d_lon)
}

/// GCJ-02 → WGS-84, by iterating the forward transform until it reproduces the input.
pub fn gcj02_to_wgs84(p: LatLon) -> LatLon {
    if outside_china(p) {
        return p;
    }
    invert(wgs84_to_gcj02, p, p, 10)
}

/// Solves `forward(x) = target` by fixed-point iteration from `start`, to 1e-10 degrees
/// (about 10 µm): both offsets vary so slowly that each step shrinks the error a thousandfold.
fn invert(
    forward: fn(LatLon) -> LatLon,
    target: LatLon,
    start: LatLon,
    max_steps: usize,
) -> LatLon {
    let mut guess = start;
    for _ in 0..max_steps {
        let there = forward(guess);
        let (dlat, dlon) = (there.lat - target.lat, there.lon - target.lon);
        guess = LatLon::new(guess.lat - dlat, guess.lon - dlon);
        if dlat.abs() < 1e-10 && dlon.abs() < 1e-10 {
            break;
        }
    }
    guess
}

/// GCJ-02 → BD-09.
pub fn gcj02_to_bd09(p: LatLon) -> LatLon {
    let (x, y) = (p.lon, p.lat);
    let z = (x * x + y * y).sqrt() + 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) + 0.000003 * (x * X_PI).cos();
    LatLon::new(z * theta.sin() + 0.006, z * theta.cos() + 0.0065)
}

/// BD-09 → GCJ-02. Starts from Baidu's published closed-form inverse (good to ~5 cm) and
/// refines it with the forward transform, as for GCJ-02, to well under a millimetre.
pub fn bd09_to_gcj02(p: LatLon) -> LatLon {
    let (x, y) = (p.lon - 0.0065, p.lat - 0.006);
    let z = (x * x + y * y).sqrt() - 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000003 * (x * X_PI).cos();
    invert(
        gcj02_to_bd09,
        p,
        LatLon::new(z * theta.sin(), z * theta.cos()),
        5,
    )
}

/// WGS-84 → BD-09.
pub fn wgs84_to_bd09(p: LatLon) -> LatLon {
    gcj02_to_bd09(wgs84_to_gcj02(p))
}

/// BD-09 → WGS-84.
pub fn bd09_to_wgs84(p: LatLon) -> LatLon {
    gcj02_to_wgs84(bd09_to_gcj02(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::haversine_m;

    /// Reference pairs published with the open-source "eviltransform" and "coordtransform"
    /// libraries (their test suites), which map SDK outputs were checked against.
    const WGS_GCJ: [(f64, f64, f64, f64); 3] = [
        (
            31.1774276,
            121.5272106,
            31.175_303_983_645_97,
            121.531_541_859_215,
        ),
        (
            22.543847,
            113.912316,
            22.540_796_131_694_766,
            113.917_176_480_836_3,
        ),
        (
            39.911954,
            116.377817,
            39.913_345_455_360_69,
            116.384_047_224_556_57,
        ),
    ];

    fn assert_within_1m(got: LatLon, want: LatLon) {
        let d = haversine_m(got, want);
        assert!(d < 1.0, "got {got:?}, want {want:?}: {d:.3} m apart");
    }

    #[test]
    fn wgs84_to_gcj02_matches_reference_points() {
        for (wlat, wlon, glat, glon) in WGS_GCJ {
            assert_within_1m(
                wgs84_to_gcj02(LatLon::new(wlat, wlon)),
                LatLon::new(glat, glon),
            );
        }
    }

    #[test]
    fn gcj02_to_wgs84_inverts_within_a_millimetre() {
        for (wlat, wlon, glat, glon) in WGS_GCJ {
            let back = gcj02_to_wgs84(LatLon::new(glat, glon));
            assert!(haversine_m(back, LatLon::new(wlat, wlon)) < 0.01);
        }
    }

    #[test]
    fn bd09_matches_reference_points() {
        // coordtransform: gcj02tobd09(116.404, 39.915) and bd09togcj02(116.404, 39.915).
        let p = LatLon::new(39.915, 116.404);
        assert_within_1m(
            gcj02_to_bd09(p),
            LatLon::new(39.921_336_993_510_21, 116.410_369_493_710_29),
        );
        assert_within_1m(
            bd09_to_gcj02(p),
            LatLon::new(39.908_656_739_576_31, 116.397_627_291_193_15),
        );
        // And the chain BD-09 → WGS-84 inverts WGS-84 → BD-09 over the district.
        let wgs = LatLon::new(31.1610, 120.6450);
        assert!(haversine_m(bd09_to_wgs84(wgs84_to_bd09(wgs)), wgs) < 0.001);
    }

    #[test]
    fn outside_china_nothing_moves() {
        let paris = LatLon::new(48.8566, 2.3522);
        assert_eq!(wgs84_to_gcj02(paris), paris);
        assert_eq!(gcj02_to_wgs84(paris), paris);
    }

    #[test]
    fn round_trips_over_the_fixture_district() {
        for i in 0..50 {
            let p = LatLon::new(30.78 + f64::from(i) * 0.008, 120.36 + f64::from(i) * 0.01);
            assert!(haversine_m(gcj02_to_wgs84(wgs84_to_gcj02(p)), p) < 0.01);
            assert!(haversine_m(bd09_to_wgs84(wgs84_to_bd09(p)), p) < 0.01);
        }
    }
}
