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

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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
        let mode = if durable { "on" } else { "off" };
        Self::start_with(
            dir,
            &format!("-c fsync={mode} -c synchronous_commit={mode}"),
        )
    }

    /// A primary whose commits wait until the standby named `gridlink_standby` has the WAL
    /// ([`standby`](Self::standby)): synchronous replication, so an acknowledged commit
    /// survives the primary's death.
    pub(crate) fn start_replicated(dir: &Path) -> Result<Cluster> {
        Self::start_with(
            dir,
            "-c fsync=off -c synchronous_commit=on -c synchronous_standby_names=gridlink_standby -c wal_level=replica",
        )
    }

    /// Creates and starts a cluster in `dir` (emptied first) with these server options.
    fn start_with(dir: &Path, settings: &str) -> Result<Cluster> {
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
        let dir = Self::prepare(dir, as_postgres)?;
        let port = free_port()?;
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
        cluster.run(settings)?;
        Ok(cluster)
    }

    /// A streaming standby of this cluster in `dir`, named `gridlink_standby` (the name
    /// [`start_replicated`](Self::start_replicated) waits for), started and caught up.
    pub(crate) fn standby(&self, dir: &Path) -> Result<Cluster> {
        let dir = Self::prepare(dir, self.as_postgres)?;
        let standby = Cluster {
            bindir: self.bindir.clone(),
            data: dir.join("data"),
            port: free_port()?,
            as_postgres: self.as_postgres,
        };
        self.pg(
            "pg_basebackup",
            &[
                "-d",
                &format!(
                    "host=127.0.0.1 port={} user=postgres application_name=gridlink_standby",
                    self.port
                ),
                "-D",
                &standby.data.to_string_lossy(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )?;
        // Not a synchronous primary itself once promoted: nothing would acknowledge its commits.
        standby.run("-c fsync=off -c synchronous_commit=on -c hot_standby=on")?;
        Ok(standby)
    }

    /// The shell command that kills this primary at once (as a crash would: `-m immediate`)
    /// and promotes `standby`.
    pub(crate) fn failover_command(&self, standby: &Cluster) -> String {
        let pg_ctl = |cluster: &Cluster, args: &str| {
            let binary = cluster.bindir.join("pg_ctl");
            let command = format!("{} -D {} {args}", binary.display(), cluster.data.display());
            if cluster.as_postgres {
                format!("runuser -u postgres -- {command}")
            } else {
                command
            }
        };
        format!(
            "{} && {}",
            pg_ctl(self, "-m immediate -w stop"),
            pg_ctl(standby, "-w -t 60 promote")
        )
    }

    /// The port the cluster listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Empties `dir` (or a temporary directory the `postgres` user can reach) for a cluster.
    fn prepare(dir: &Path, as_postgres: bool) -> Result<PathBuf> {
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
        Ok(dir)
    }

    /// Starts the cluster's server with `settings`, on 127.0.0.1 only.
    fn run(&self, settings: &str) -> Result<()> {
        let (port, dir) = (self.port, self.data.parent().unwrap_or(&self.data));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=300 {settings}"
        );
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
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
        Ok(())
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
