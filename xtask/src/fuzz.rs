//! `cargo xtask fuzz <target> --seconds T`: coverage-guided fuzzing on stable Rust.
//!
//! The targets live in the `gridlink-fuzz` crate (`fuzz/`). They are built with LLVM's
//! sanitizer-coverage instrumentation, which stable `rustc` takes as `-C` flags, and linked to
//! libFuzzer through `libfuzzer-sys` (it compiles libFuzzer from source with the machine's C++
//! compiler); no nightly toolchain and no `cargo fuzz` are needed. The build is a release
//! build, as shipped (a panic is a crash, as on the server). The instrumentation flags reach
//! only the target's code, not build scripts or proc-macros, because the build names the host
//! as its `--target`.
//!
//! The corpus grows under `target/fuzz/corpus/<target>/`, starting from the target's seeds.
//! A crash is written to `fuzz/regressions/<target>/` (committed with its fix): the crate's
//! regression test replays every file there in each `cargo xtask ci`.

use crate::{bindings, root, run};
use anyhow::{Context, Result, bail};
use std::process::Command;

const USAGE: &str =
    "usage: cargo xtask fuzz <sync_body | push | photo | open311> [--seconds T] [--jobs N]";

/// The instrumentation libFuzzer feeds on (what `cargo fuzz` passes, without a sanitizer).
const COVERAGE_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let mut target: Option<&str> = None;
    let mut seconds: u64 = 60;
    let mut jobs: u32 = 1;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds takes a whole number")?;
            }
            "--jobs" => {
                jobs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .context("--jobs takes a positive number")?;
            }
            name if target.is_none() && !name.starts_with('-') => target = Some(name),
            other => bail!("unknown fuzz option {other:?}\n{USAGE}"),
        }
    }
    let Some(target) = target else { bail!(USAGE) };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let work = bindings::target_dir().join("fuzz");
    let corpus = work.join("corpus").join(target);
    // The seeds (and a check that the target exists), from an ordinary build.
    run(
        &cargo,
        &[
            "run",
            "--quiet",
            "-p",
            "gridlink-fuzz",
            "--bin",
            "fuzz-seeds",
            "--",
            target,
            &corpus.to_string_lossy(),
        ],
    )?;
    let host = host_triple()?;
    let build_dir = work.join("build");
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    for flag in COVERAGE_FLAGS {
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(flag);
    }
    let args = [
        "build",
        "--release",
        "-p",
        "gridlink-fuzz",
        "--features",
        "libfuzzer",
        "--bin",
        target,
        "--target",
        &host,
        "--target-dir",
        &build_dir.to_string_lossy(),
    ];
    eprintln!("\n==> RUSTFLAGS=\"{flags}\" {cargo} {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .env("RUSTFLAGS", &flags)
        .current_dir(root())
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!("building the fuzz target {target} failed ({status})");
    }
    let program = build_dir.join(&host).join("release").join(target);
    let regressions = root().join("fuzz").join("regressions").join(target);
    std::fs::create_dir_all(&regressions)?;
    let kept_before = std::fs::read_dir(&regressions).map_or(0, |d| d.count());
    let log = work.join(format!("{target}.log"));
    let mut cmd = Command::new(&program);
    cmd.arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", regressions.display()))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=262144")
        .arg("-print_final_stats=1")
        .current_dir(root())
        .stderr(std::fs::File::create(&log)?);
    if jobs > 1 {
        cmd.arg(format!("-fork={jobs}"));
    }
    eprintln!(
        "\n==> {} {} (libFuzzer's log: {})",
        program.display(),
        corpus.display(),
        log.display()
    );
    let status = cmd.status().context("could not start the fuzz target")?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let stat = |name: &str| {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .find_map(|v| v.trim().parse::<u64>().ok())
    };
    let execs = stat("number_of_executed_units").unwrap_or(0);
    let corpus_len = std::fs::read_dir(&corpus).map_or(0, |d| d.count());
    let coverage = text
        .lines()
        .rev()
        .find_map(|l| l.split(" cov: ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let crashes = std::fs::read_dir(&regressions)
        .map_or(0, |d| d.count())
        .saturating_sub(kept_before);
    for (metric, value, unit) in [
        ("seconds", seconds, "s"),
        ("execs", execs, "runs"),
        ("execs_per_s", execs / seconds.max(1), "runs/s"),
        ("coverage", coverage, "edges"),
        ("corpus", corpus_len as u64, "inputs"),
        ("new_crashes", crashes as u64, "inputs"),
    ] {
        println!(
            "{{\"bench\":\"fuzz_{target}\",\"metric\":\"{metric}\",\"value\":{value},\"unit\":\"{unit}\"}}"
        );
    }
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.into_iter().rev() {
            eprintln!("{line}");
        }
        bail!(
            "the fuzz target {target} crashed ({status}); the input is kept in {}: fix the cause and commit it with the fix, `cargo xtask ci` replays it",
            regressions.display()
        );
    }
    Ok(())
}

fn host_triple() -> Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("could not run rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}
