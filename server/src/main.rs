//! `gridlink-server`: the district server.
//!
//! Until the sync issue lands this binary has one honest job: `demo` loads the fixture
//! district through the same gridlink-core code the server will use (grid index, case rules)
//! and prints what the running demo will serve. It starts no listener yet.

#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gridlink_core::geo::{GridIndex, GridKind, LatLon};
use gridlink_fixtures::{District, Scale};

/// gridlink district server (网格化社会治理 同步服务器).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the fixture district and describe the demo (the sync server itself comes with the sync issue).
    Demo,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo => demo(),
    }
}

fn demo() -> Result<()> {
    let district = District::generate(Scale::Small);
    let grids = GridIndex::from_geojson(&district.grids_geojson().to_string())
        .context("loading the fixture grids")?;
    let professional = grids
        .grids()
        .iter()
        .filter(|g| g.kind == GridKind::Professional)
        .count();
    let centre = LatLon::new(31.16, 120.645);
    let here = grids
        .grid_at(centre)
        .map_or("—".to_owned(), |g| format!("{} ({})", g.name, g.id));
    println!("gridlink 演示 / demo — {}", district.name);
    println!(
        "  {} 个镇街, {} 个村社区, {} 个网格 ({} 基层 + {} 专业) / towns, villages, grids",
        district.towns.len(),
        district.villages.len(),
        grids.len(),
        grids.len() - professional,
        professional
    );
    println!(
        "  {} 名用户, {} 个标准地址 / users, standard addresses",
        district.users.len(),
        district.addresses.len()
    );
    println!("  区中心点所在网格 / grid at the district centre: {here}");
    println!();
    println!("同步服务器将在同步功能完成后在 http://127.0.0.1:8080 提供服务。");
    println!("The sync server (http://127.0.0.1:8080, embedded SQLite data directory, demo device");
    println!(
        "credentials) arrives with the sync issue; today the demo checks the fixture district loads."
    );
    Ok(())
}
