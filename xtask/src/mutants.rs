//! `cargo xtask mutants [--jobs N] [-- cargo-mutants args]`: mutation testing of the rule
//! files with the whole workspace's tests.
//!
//! cargo-mutants (pinned below, installed into `target/tools/` on first use) changes one
//! operator, condition or return value of the files at a time and runs every test of the
//! workspace (server suites included) against each change. A change no test notices is a
//! rule without a guard. Every viable mutant must be caught, or be listed in
//! `.cargo/mutants.toml` (`exclude_re`) with the reason it changes nothing; the command
//! fails when any other survives, naming it.

use crate::{bindings, root, run};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The files whose rules decide who may do what and how a case moves, and the push validator.
pub(crate) const RULE_FILES: &[&str] = &[
    "core/src/sync/access.rs",
    "core/src/case/lifecycle.rs",
    "core/src/case/role.rs",
    "core/src/sync/ops.rs",
];

const VERSION: &str = "27.1.0";

fn tool() -> Result<PathBuf> {
    let tools = bindings::target_dir().join("tools");
    let program = tools.join("bin").join("cargo-mutants");
    let installed = Command::new(&program)
        .arg("mutants")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(VERSION));
    if !installed {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(
            &cargo,
            &[
                "install",
                "--locked",
                "--quiet",
                "--root",
                &tools.to_string_lossy(),
                "--version",
                VERSION,
                "cargo-mutants",
            ],
        )?;
    }
    Ok(program)
}

pub(crate) fn mutants(args: &[String]) -> Result<()> {
    let program = tool()?;
    let out = bindings::target_dir().join("mutants");
    let mut cmd = Command::new(&program);
    cmd.arg("mutants")
        .arg("--test-workspace=true")
        .arg("--output")
        .arg(&out)
        .current_dir(root());
    for file in RULE_FILES {
        cmd.arg("--file").arg(file);
    }
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--jobs" => {
                let n = it.next().context("--jobs takes a number")?;
                cmd.arg("--jobs").arg(n);
            }
            "--" => {
                cmd.args(it.by_ref());
            }
            other => bail!(
                "unknown mutants option {other:?}; usage: cargo xtask mutants [--jobs N] [-- cargo-mutants args]"
            ),
        }
    }
    eprintln!("\n==> {cmd:?}");
    let status = cmd.status().context("could not start cargo-mutants")?;
    let missed_file = out.join("mutants.out").join("missed.txt");
    let missed = std::fs::read_to_string(&missed_file).unwrap_or_default();
    let missed: Vec<&str> = missed.lines().filter(|l| !l.trim().is_empty()).collect();
    let count = |name: &str| {
        std::fs::read_to_string(out.join("mutants.out").join(name))
            .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
    };
    for (metric, value) in [
        ("caught", count("caught.txt")),
        ("missed", missed.len()),
        ("timeout", count("timeout.txt")),
        ("unviable", count("unviable.txt")),
    ] {
        println!(
            "{{\"bench\":\"mutants\",\"metric\":\"{metric}\",\"value\":{value},\"unit\":\"mutants\"}}"
        );
    }
    if !missed.is_empty() {
        bail!(
            "{} mutants of the rule files survive the workspace's tests: catch each with a test, or list it in .cargo/mutants.toml with the reason it changes nothing:\n{}",
            missed.len(),
            missed.join("\n")
        );
    }
    if !status.success() {
        bail!("cargo-mutants failed ({status}); see {}", out.display());
    }
    Ok(())
}
