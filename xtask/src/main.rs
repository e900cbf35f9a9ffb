//! gridlink's project scripts, run as `cargo xtask <command>`:
//!
//! - `ci`: everything CI checks — formatting, clippy with warnings denied (full and pure builds
//!   of gridlink-core), the committed fixtures being up to date, and every test suite;
//! - `fixtures [--check] [--scale small|full] [--out DIR]`: (re)generate the fixture district;
//! - `bench <name> [args]`: run a benchmark; JSON lines on stdout;
//! - `chaos kill --points N --seed S` and `chaos faults --schedules N --seed S [--debug]`: the
//!   chaos campaigns (`server/examples/chaos`), release builds unless `--debug`; JSON lines;
//! - `fuzz <target> [--seconds T] [--jobs N]`: coverage-guided fuzzing (libFuzzer, stable
//!   Rust) of one target of `fuzz/`; crashes are kept in `fuzz/regressions/`;
//! - `mutants [--jobs N]`: mutation testing (cargo-mutants) of the rule files with the
//!   workspace's tests; explained survivors are listed in `.cargo/mutants.toml`;
//! - `bindings [--release]`: build the phone library and generate its Kotlin, Swift and Python
//!   bindings into `target/bindings/`;
//! - `android`, `ios`: the app libraries, where the Android NDK or Xcode exists;
//! - `browser`: the command centre's browser suite alone (headless Chromium, Playwright).

mod bindings;
mod browser;
mod fuzz;
mod mutants;
mod postgres;
mod s3;

use anyhow::{Context, Result, bail};
use gridlink_fixtures::{District, Scale};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fixtures") => fixtures(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("chaos") => chaos(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("mutants") => mutants::mutants(&args[1..]),
        Some("bindings") => bindings::bindings(&args[1..]).map(drop),
        Some("android") => bindings::android(),
        Some("ios") => bindings::ios(),
        Some("browser") => browser::browser_suite(&bindings::server_binary()?),
        Some("services") => services(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | fixtures [--check] [--scale small|full] [--out DIR] | bench store [--cases N] | bench sync [--docs N] [--devices N] | bench photo | bench workflows [--cases N] [--days N] [--scale full] | bench web [--scale full] [--cases N] [--data DIR] [--clients N] | bench hostile [--seconds N] [--clients N] | bench ffi | bench nodes [--docs N] [--cases N | --scale full] [--phones N] [--seconds N] | chaos kill [--points N] [--seed S] [--nodes N [--failover]] [--debug] | chaos faults [--schedules N] [--seed S] [--debug] | fuzz <sync_body|push|photo|open311> [--seconds T] [--jobs N] | mutants [--jobs N] [-- ARGS] | bindings [--release] | android | ios | browser | services [--minutes N]>"
            );
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// [`run`] with environment variables set for the command.
fn run_with(program: &str, args: &[&str], env: &[(&str, String)]) -> Result<()> {
    let vars: Vec<String> = env.iter().map(|(k, _)| format!("{k}=… ")).collect();
    eprintln!("\n==> {}{program} {}", vars.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs a command in the workspace root; fails with the command line if it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    run_with(program, args, &[])
}

fn ci() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(&cargo, &["fmt", "--all", "--check"])?;
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The server links gridlink-core without SQLite, and an app may sync through its own
    // transport (store without the HTTP client): those builds must stay warning-free too.
    for features in [&[][..], &["--features", "store"][..]] {
        let mut args = vec!["clippy", "-p", "gridlink-core", "--no-default-features"];
        args.extend_from_slice(features);
        args.extend(["--", "-D", "warnings"]);
        run(&cargo, &args)?;
    }
    // The libFuzzer entry points are built only by `cargo xtask fuzz`; they are linted here.
    run(
        &cargo,
        &[
            "clippy",
            "-p",
            "gridlink-fuzz",
            "--features",
            "libfuzzer",
            "--bins",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    fixtures(&["--check".to_owned()])?;
    // A throwaway PostgreSQL for the store's conformance suite on PostgreSQL (in the
    // workspace run) and for the server's whole integration suite on it (the second run).
    // Without PostgreSQL, CI fails here.
    // SeaweedFS for the photo tests over object storage. Without either, CI fails here.
    let pg = postgres::Cluster::start(&root().join("target/pg-ci"), false)?;
    let objects = s3::ObjectStore::start(&root().join("target/s3-ci"))?;
    let server = [
        ("GRIDLINK_TEST_POSTGRES", pg.url()),
        ("GRIDLINK_TEST_S3", objects.endpoint()),
    ];
    run_with(&cargo, &["test", "--workspace", "--all-targets"], &server)?;
    let on_postgres = [
        ("GRIDLINK_TEST_POSTGRES", pg.url()),
        ("GRIDLINK_TEST_S3", objects.endpoint()),
        ("GRIDLINK_TEST_BACKEND", "postgres".to_owned()),
    ];
    run_with(
        &cargo,
        &["test", "-p", "gridlink-server", "--test", "integration"],
        &on_postgres,
    )?;
    drop(objects);
    drop(pg);
    run(&cargo, &["test", "--workspace", "--doc"])?;
    // The chaos campaigns, short (their full runs are `cargo xtask chaos …`).
    // Three nodes over one PostgreSQL and one bucket, a node killed at each point.
    for campaign in [
        &["kill", "--points", "6", "--seed", "1"][..],
        &["kill", "--nodes", "3", "--points", "6", "--seed", "1"][..],
        // The database's primary killed under load, its synchronous standby promoted.
        &[
            "kill",
            "--nodes",
            "2",
            "--points",
            "4",
            "--seed",
            "2",
            "--failover",
        ][..],
        &["faults", "--schedules", "25", "--seed", "1"][..],
    ] {
        let mut args: Vec<String> = campaign.iter().map(|a| (*a).to_owned()).collect();
        args.push("--debug".into());
        chaos(&args)?;
    }
    // The bindings, generated from the library as built now, each driven from its language
    // against a real server (Swift is generated only: no Swift compiler here).
    let generated = bindings::bindings(&[])?;
    let server = bindings::server_binary()?;
    bindings::python_suite(&generated, &server)?;
    bindings::kotlin_suite(&generated, &server)?;
    // The command centre in a real browser, against the demo server.
    browser::browser_suite(&server)?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// `services`: the throwaway PostgreSQL and SeaweedFS that `ci` starts, for running the
/// PostgreSQL and object storage tests by hand; prints the variables the tests read and
/// stops both after `--minutes` (default 60).
fn services(args: &[String]) -> Result<()> {
    let minutes: u64 = match args.iter().position(|a| a == "--minutes") {
        Some(i) => args
            .get(i + 1)
            .and_then(|m| m.parse().ok())
            .context("--minutes takes a number")?,
        None => 60,
    };
    let pg = postgres::Cluster::start(&root().join("target/pg-dev"), false)?;
    let objects = s3::ObjectStore::start(&root().join("target/s3-dev"))?;
    println!("export GRIDLINK_TEST_POSTGRES='{}'", pg.url());
    println!("export GRIDLINK_TEST_S3='{}'", objects.endpoint());
    eprintln!("services: both stop (and their data goes) in {minutes} min");
    std::thread::sleep(std::time::Duration::from_secs(minutes * 60));
    Ok(())
}

fn fixtures(args: &[String]) -> Result<()> {
    let mut check = false;
    let mut scale = Scale::Small;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--scale" => {
                scale = match it.next().map(String::as_str) {
                    Some("small") => Scale::Small,
                    Some("full") => Scale::Full,
                    other => bail!("--scale takes small or full, not {other:?}"),
                }
            }
            "--out" => out = Some(PathBuf::from(it.next().context("--out needs a directory")?)),
            other => bail!("unknown fixtures option {other:?}"),
        }
    }
    let default_dir = match scale {
        Scale::Small => gridlink_fixtures::committed_dir(),
        Scale::Full => root().join("fixtures/full"),
    };
    let dir = out.unwrap_or(default_dir);
    let district = District::generate(scale);
    if check {
        for (name, text) in district.files() {
            let path = dir.join(name);
            let committed = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            if committed != text {
                bail!(
                    "{} is out of date: run `cargo xtask fixtures` and commit the result",
                    path.display()
                );
            }
        }
        if scale == Scale::Small {
            let photos = gridlink_fixtures::committed_photos_dir();
            for (name, bytes) in gridlink_fixtures::photo_files() {
                let path = photos.join(name);
                let committed =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if committed != bytes {
                    bail!(
                        "{} is out of date: run `cargo xtask fixtures` and commit the result",
                        path.display()
                    );
                }
            }
        }
        eprintln!("fixtures: {} is up to date", dir.display());
        return Ok(());
    }
    if scale == Scale::Small {
        let photos = gridlink_fixtures::committed_photos_dir();
        std::fs::create_dir_all(&photos)?;
        for (name, bytes) in gridlink_fixtures::photo_files() {
            std::fs::write(photos.join(name), bytes)?;
        }
    }
    district
        .write_to(&dir)
        .with_context(|| format!("writing {}", dir.display()))?;
    eprintln!(
        "fixtures: wrote {} grids, {} users, {} addresses to {}",
        district.grids.len(),
        district.users.len(),
        district.addresses.len(),
        dir.display()
    );
    Ok(())
}

/// `chaos kill|faults [flags] [--debug]`: builds the server and the campaign program, then
/// runs the campaign (it fails when anything was lost or did not converge).
fn chaos(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let debug = args.iter().any(|a| a == "--debug");
    let rest: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--debug")
        .collect();
    let Some(campaign @ ("kill" | "faults")) = rest.first().copied() else {
        bail!(
            "usage: cargo xtask chaos <kill [--points N] [--seed S] [--nodes N [--failover]] | faults [--schedules N] [--seed S]> [--debug]"
        )
    };
    let mut build = vec![
        "build",
        "--quiet",
        "-p",
        "gridlink-server",
        "--bin",
        "gridlink-server",
        "--example",
        "chaos",
    ];
    if !debug {
        build.push("--release");
    }
    run(&cargo, &build)?;
    let profile = bindings::target_dir().join(if debug { "debug" } else { "release" });
    let program = profile.join("examples").join("chaos");
    let server = profile.join("gridlink-server");
    let dir = bindings::target_dir().join("chaos");
    let mut cmd: Vec<String> = rest.iter().map(|a| (*a).to_owned()).collect();
    // Several nodes share a throwaway PostgreSQL and SeaweedFS (stopped when the campaign ends).
    let nodes = rest
        .iter()
        .position(|a| *a == "--nodes")
        .and_then(|i| rest.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1);
    let failover = rest.contains(&"--failover");
    cmd.retain(|a| a != "--failover");
    let mut services = None;
    if campaign == "kill" && nodes > 1 {
        let objects = s3::ObjectStore::start(&root().join("target/s3-chaos"))?;
        let (primary, standby, database) = if failover {
            // A primary with a synchronous standby; the nodes are given both and keep to the
            // one that takes writes.
            let primary = postgres::Cluster::start_replicated(&root().join("target/pg-chaos"))?;
            let standby = primary.standby(&root().join("target/pg-chaos-standby"))?;
            primary.database("chaos")?;
            let database = format!(
                "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=chaos target_session_attrs=read-write",
                primary.port(),
                standby.port()
            );
            cmd.extend([
                "--failover-cmd".to_owned(),
                primary.failover_command(&standby),
            ]);
            (primary, Some(standby), database)
        } else {
            let pg = postgres::Cluster::start(&root().join("target/pg-chaos"), false)?;
            let database = pg.database("chaos")?;
            (pg, None, database)
        };
        cmd.extend([
            "--database".to_owned(),
            database,
            "--s3".to_owned(),
            objects.endpoint(),
        ]);
        services = Some((primary, standby, objects));
    }
    if campaign == "kill" {
        cmd.extend([
            "--server-bin".to_owned(),
            server.to_string_lossy().into_owned(),
        ]);
    }
    cmd.extend(["--dir".to_owned(), dir.to_string_lossy().into_owned()]);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let ran = run(&program.to_string_lossy(), &args);
    drop(services);
    ran
}

/// `bench nodes`: the same sync workload (`bench sync`) on SQLite and on PostgreSQL (a
/// durable throwaway cluster: fsync and synchronous commit on), in one run. Prints the sync
/// bench's own lines of each run with the backend in the metric's name, and the ratio; then
/// the nodes bench on the same cluster: backups and restores of both backends, no-op syncs
/// through one node and three, and a node killed while phones edit.
fn bench_nodes(cargo: &str, args: &[String]) -> Result<()> {
    let docs = args
        .iter()
        .position(|a| a == "--docs")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "20000".to_owned());
    let pg = postgres::Cluster::start(&root().join("target/pg-bench"), true)?;
    let database = pg.database("bench_nodes")?;
    let mut figures = std::collections::BTreeMap::new();
    for (backend, env) in [
        ("sqlite", Vec::new()),
        ("pg", vec![("GRIDLINK_BENCH_DATABASE", database.clone())]),
    ] {
        eprintln!("\n==> bench sync --docs {docs} on {backend}");
        let out = Command::new(cargo)
            .args([
                "bench",
                "--quiet",
                "-p",
                "gridlink-server",
                "--bench",
                "sync",
                "--",
                "--bench",
                "--docs",
                &docs,
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(root())
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("could not run the sync bench")?;
        if !out.status.success() {
            bail!("the sync bench failed on {backend}");
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(metric), Some(value), Some(unit)) = (
                v["metric"].as_str(),
                v["value"].as_f64(),
                v["unit"].as_str(),
            ) else {
                continue;
            };
            let metric = format!("{metric}_{backend}");
            println!(
                "{}",
                serde_json::json!({"bench": "nodes", "metric": metric, "value": value, "unit": unit})
            );
            figures.insert(metric, value);
        }
    }
    if let (Some(s), Some(p)) = (
        figures.get("merges_per_s_sqlite"),
        figures.get("merges_per_s_pg"),
    ) {
        println!(
            "{}",
            serde_json::json!({"bench": "nodes", "metric": "merges_ratio_pg_to_sqlite", "value": (p / s * 1000.0).round() / 1000.0, "unit": "ratio"})
        );
    }

    // Backups, the move, several nodes and a node's death (server/benches/nodes.rs).
    let bindir = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context("pg_config")?;
    let bindir = String::from_utf8_lossy(&bindir.stdout).trim().to_owned();
    let moved = pg.database("bench_nodes_moved")?;
    let mut cmd = vec![
        "bench",
        "--quiet",
        "-p",
        "gridlink-server",
        "--bench",
        "nodes",
        "--",
        "--bench",
        "--database",
        &moved,
        "--pg-bindir",
        &bindir,
    ];
    for flag in ["--cases", "--scale", "--phones", "--seconds"] {
        if let Some(i) = args.iter().position(|a| a == flag)
            && let Some(value) = args.get(i + 1)
        {
            cmd.extend([flag, value.as_str()]);
        }
    }
    eprintln!("\n==> bench nodes: backups, the move to PostgreSQL, three nodes, a node killed");
    run(cargo, &cmd)
}

fn bench(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let Some(name) = args.first() else {
        bail!(
            "usage: cargo xtask bench <store | sync | photo | workflows | web | hostile | ffi | nodes> [args]"
        )
    };
    if name == "ffi" {
        return bindings::bench_ffi(&args[1..]);
    }
    if name == "nodes" {
        return bench_nodes(&cargo, &args[1..]);
    }
    let (package, target) = match name.as_str() {
        "store" => ("gridlink-core", "store"),
        "sync" => ("gridlink-server", "sync"),
        "photo" => ("gridlink-server", "photo"),
        "workflows" => ("gridlink-server", "workflows"),
        "web" => ("gridlink-server", "web"),
        "hostile" => ("gridlink-server", "hostile"),
        other => {
            bail!(
                "unknown benchmark {other:?}; known: store, sync, photo, workflows, web, hostile, ffi, nodes"
            )
        }
    };
    let mut cmd = vec!["bench", "--quiet", "-p", package, "--bench", target, "--"];
    cmd.extend(args[1..].iter().map(String::as_str));
    run(&cargo, &cmd)
}
