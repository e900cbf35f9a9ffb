//! The fixture district's grids: every grid is found by a point inside it, shared edges
//! resolve to exactly one grid, and the grids tile the district without gaps or overlaps.

use geo::{Area, Polygon};
use gridlink_core::geo::{GridIndex, GridKind, LatLon};
use gridlink_fixtures::{BOUNDS, District, Scale};

fn index() -> GridIndex {
    GridIndex::from_geojson(&gridlink_fixtures::committed_grids_geojson().unwrap()).unwrap()
}

#[test]
fn the_committed_grids_are_the_generated_ones() {
    let generated = District::generate(Scale::Small).grids_geojson().to_string();
    let committed: serde_json::Value =
        serde_json::from_str(&gridlink_fixtures::committed_grids_geojson().unwrap()).unwrap();
    assert_eq!(committed.to_string(), generated);
}

#[test]
fn the_district_has_899_basic_and_160_professional_grids() {
    let index = index();
    assert_eq!(index.len(), 1059);
    let professional = index
        .grids()
        .iter()
        .filter(|g| g.kind == GridKind::Professional)
        .count();
    assert_eq!(professional, 160);
}

#[test]
fn every_grid_is_found_by_a_point_inside_it() {
    let index = index();
    let district = District::generate(Scale::Small);
    for grid in &district.grids {
        let corners = &grid.ring[..4];
        let (lon, lat) = corners
            .iter()
            .fold((0.0, 0.0), |(x, y), p| (x + p[0] / 4.0, y + p[1] / 4.0));
        let found = index.grid_at(LatLon::new(lat, lon)).map(|g| g.id.as_str());
        assert_eq!(found, Some(grid.id.as_str()), "centre of {}", grid.id);
    }
}

#[test]
fn every_fixture_address_lies_in_its_grid() {
    let index = index();
    for address in District::generate(Scale::Small).addresses {
        let found = index
            .grid_at(LatLon::new(address.lat, address.lon))
            .map(|g| g.id.clone());
        assert_eq!(
            found.as_deref(),
            Some(address.grid_id.as_str()),
            "address {}",
            address.code
        );
    }
}

#[test]
fn points_on_shared_edges_resolve_to_exactly_one_neighbour() {
    let index = index();
    let district = District::generate(Scale::Small);
    let mut checked = 0;
    for pair in district.grids.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // Grids of one column are stacked: a's top edge (ring[2]..ring[3]) is b's bottom edge.
        if a.ring[3] != b.ring[0] || a.ring[2] != b.ring[1] {
            continue;
        }
        for t in [0.0, 0.25, 0.5, 1.0] {
            let lon = a.ring[3][0] + (a.ring[2][0] - a.ring[3][0]) * t;
            let lat = a.ring[3][1] + (a.ring[2][1] - a.ring[3][1]) * t;
            let found = index
                .grid_at(LatLon::new(lat, lon))
                .expect("an edge point belongs to a grid");
            assert!(
                found.id == a.id || found.id == b.id || t == 0.0 || t == 1.0,
                "{} not {} / {}",
                found.id,
                a.id,
                b.id
            );
            // Asking again gives the same single answer.
            assert_eq!(
                index.grid_at(LatLon::new(lat, lon)).map(|g| &g.id),
                Some(&found.id)
            );
        }
        checked += 1;
    }
    assert!(checked > 1000, "{checked}");
    // Vertical edges between columns (x = column boundary) too.
    let x = district.grids[0].ring[1][0];
    for i in 0..100 {
        let lat = BOUNDS.0[1] + (BOUNDS.1[1] - BOUNDS.0[1]) * (f64::from(i) + 0.5) / 100.0;
        assert!(index.grid_at(LatLon::new(lat, x)).is_some());
    }
}

#[test]
fn grids_tile_the_district_without_gaps_or_overlaps() {
    let district = District::generate(Scale::Small);
    let total: f64 = district
        .grids
        .iter()
        .map(|g| {
            Polygon::new(
                g.ring
                    .iter()
                    .map(|p| (p[0], p[1]))
                    .collect::<Vec<_>>()
                    .into(),
                vec![],
            )
            .unsigned_area()
        })
        .sum();
    let ([x0, y0], [x1, y1]) = BOUNDS;
    let bbox = (x1 - x0) * (y1 - y0);
    assert!(
        (total - bbox).abs() < 1e-9,
        "grid area {total} vs district {bbox}"
    );
    // Areas add up, and no grid centre falls into two grids (checked above), so: a tiling.
    let index = index();
    for i in 0..40 {
        for j in 0..40 {
            let p = LatLon::new(
                y0 + (y1 - y0) * (f64::from(i) + 0.37) / 40.0,
                x0 + (x1 - x0) * (f64::from(j) + 0.61) / 40.0,
            );
            assert!(index.grid_at(p).is_some(), "gap at {p:?}");
        }
    }
    assert!(index.grid_at(LatLon::new(y0 - 0.01, x0)).is_none());
}
