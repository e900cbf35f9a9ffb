//! A throwaway PostgreSQL cluster for `cargo xtask ci` and the benchmarks: Debian's
//! `postgresql-15` binaries (found with `pg_config --bindir`), a data directory under
//! `target/`, listening on 127.0.0.1 only, on a free port. `initdb` refuses to run as root,
//! so as root the cluster runs as the `postgres` system user the package creates. Stopped
//! (and its data removed) when dropped.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub(crate) struct Cluster {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether the `postgres` user can enter the directory that will hold `dir`.
fn reachable_by_postgres(dir: &Path) -> bool {
    let Some(parent) = dir.parent().and_then(|p| p.canonicalize().ok()) else {
        return false;
    };
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(parent)
        .status()
        .is_ok_and(|s| s.success())
}

impl Cluster {
    /// Creates and starts a cluster in `dir` (emptied first). `durable: false` turns fsync
    /// off (the test suites); benchmarks keep it on.
    pub(crate) fn start(dir: &Path, durable: bool) -> Result<Cluster> {
        let out = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .context("pg_config not found: install postgresql-15 (.ci/run does)")?;
        if !out.status.success() {
            bail!("pg_config --bindir failed");
        }
        let bindir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !bindir.join("initdb").exists() {
            bail!(
                "{} has no initdb: install postgresql-15 (.ci/run does)",
                bindir.display()
            );
        }
        let as_postgres = is_root();
        let dir = if as_postgres && !reachable_by_postgres(dir) {
            // A checkout under a directory the `postgres` user may not enter (`/root`).
            let elsewhere = std::env::temp_dir().join(format!(
                "gridlink-{}",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            eprintln!(
                "postgres: {} is not reachable by the postgres user; the cluster lives in {}",
                dir.display(),
                elsewhere.display()
            );
            elsewhere
        } else {
            dir.to_path_buf()
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?;
            if !status.success() {
                bail!("chown postgres {} failed", dir.display());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Cluster {
            bindir,
            data: dir.join("data"),
            port,
            as_postgres,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=300 -c fsync={} -c synchronous_commit={}",
            if durable { "on" } else { "off" },
            if durable { "on" } else { "off" },
        );
        cluster.pg(
            "pg_ctl",
            &[
                "-D",
                &cluster.data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &dir.join("log").to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        eprintln!(
            "postgres: a throwaway cluster on 127.0.0.1:{port} ({})",
            dir.display()
        );
        Ok(cluster)
    }

    /// Runs one of the cluster's binaries (as `postgres` when we are root).
    fn pg(&self, program: &str, args: &[&str]) -> Result<()> {
        let binary = self.bindir.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        // What the tools print goes to stderr: a benchmark's stdout is JSON lines only.
        let out = command
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("could not run {}", binary.display()))?;
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!("{program} {} failed ({})", args.join(" "), out.status);
        }
        Ok(())
    }

    /// The connection string of the cluster's `postgres` database, as its superuser.
    pub(crate) fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A connection string for a new, empty database `name`.
    pub(crate) fn database(&self, name: &str) -> Result<String> {
        self.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        )?;
        Ok(format!(
            "host=127.0.0.1 port={} user=postgres dbname={name}",
            self.port
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let _ = self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
