//! Helpers shared by the integration tests.

use gridlink_core::case::{CaseDetails, Category, Event, EventKind, Location, Role, Source, Stamp};
use gridlink_core::geo::LatLon;
use std::path::PathBuf;

/// 2026-11-28 08:00 Asia/Shanghai, in UTC ms.
pub const T0: i64 = 1_795_910_400_000;
pub const MINUTE: i64 = 60_000;

pub fn stamp(actor: &str, role: Role, at_ms: i64) -> Stamp {
    Stamp {
        actor: actor.into(),
        role,
        device: format!("dev-{actor}"),
        at_ms,
        location: None,
    }
}

pub fn uuid(n: u128) -> String {
    uuid::Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 + n).to_string()
}

pub fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

pub fn details(id: &str, title: &str) -> CaseDetails {
    CaseDetails {
        id: id.into(),
        category: Category::FireHazard,
        source: Source::GridInspector,
        title: title.into(),
        description: "三楼楼道堆满纸箱，堵住了安全出口。".into(),
        location: Some(Location {
            point: LatLon::new(31.16, 120.64),
            accuracy_m: 8.0,
        }),
        address_id: Some("320509001001-01-0001".into()),
        grid_id: "320509001001-01".into(),
        reporter: None,
        priority: Default::default(),
    }
}

/// An event with a fixed id, for fold tests that control the whole event set.
pub fn event(n: u128, seq: i64, kind: EventKind, actor: &str, role: Role, at_ms: i64) -> Event {
    Event {
        id: uuid(n),
        seq,
        kind,
        actor: actor.into(),
        role,
        device: format!("dev-{actor}"),
        at_ms,
        location: None,
    }
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gridlink-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
