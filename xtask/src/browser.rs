//! The browser suite: the demo server as a child process on 127.0.0.1, and the command
//! centre driven in headless Chromium by Playwright (`server/tests/browser/`). Screenshots go
//! to `target/browser-test/`.

use crate::bindings::missing;
use crate::root;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where `.ci/run` installs Playwright (`npm install --prefix target/browser playwright-core`).
fn node_modules() -> PathBuf {
    root().join("target/browser/node_modules")
}

fn chromium() -> PathBuf {
    std::env::var_os("GRIDLINK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A sign-in the demo printed: user, scope, password.
struct Login {
    user: String,
    scope: String,
    password: String,
}

/// Kills the demo server however the suite ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn browser_suite(server: &Path) -> Result<()> {
    let install = "apt-get install chromium fonts-noto-cjk && npm install --prefix target/browser playwright-core";
    if !chromium().exists() {
        return missing("Browser suite", "Chromium", install);
    }
    if !node_modules().join("playwright-core").exists() {
        return missing("Browser suite", "playwright-core", install);
    }
    let data = std::env::temp_dir().join(format!("gridlink-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    eprintln!("\n==> browser suite: demo server and headless Chromium");
    let mut child = Command::new(server)
        .args(["demo", "--addr", "127.0.0.1:0", "--cases", "600", "--data"])
        .arg(&data)
        .env("GRIDLINK_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the demo server")?;
    let stdout = child.stdout.take().context("the demo's output")?;
    let server = Server(child);
    // Read the banner on a thread, so a silent server cannot hang the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut logins, mut url) = (Vec::new(), None);
    while url.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .context("the demo server printed no command-centre address within 5 minutes")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["web", user, scope, password] = words.as_slice() {
            logins.push(Login {
                user: (*user).to_owned(),
                scope: (*scope).to_owned(),
                password: (*password).to_owned(),
            });
        }
        if line.contains("/web/")
            && let Some(at) = line.find("http://")
        {
            url = line[at..]
                .split_whitespace()
                .next()
                .map(|u| u.trim_end_matches("/web/").to_owned());
        }
    }
    let url = url.unwrap_or_default();
    let district = logins
        .iter()
        .find(|l| l.scope == "district")
        .context("the demo printed no district operator")?;
    let town = logins
        .iter()
        .find(|l| l.scope.starts_with("town:"))
        .context("the demo printed no town operator")?;
    let shots = root().join("target/browser-test");
    let status = Command::new("node")
        .arg(root().join("server/tests/browser/command_centre.cjs"))
        .env("NODE_PATH", node_modules())
        .env("CHROMIUM", chromium())
        .env("BASE_URL", &url)
        .env("OPERATOR", &district.user)
        .env("OPERATOR_PASSWORD", &district.password)
        .env("TOWN_OPERATOR", &town.user)
        .env("TOWN_OPERATOR_PASSWORD", &town.password)
        .env("TOWN_SCOPE", &town.scope)
        .env("SCREENSHOTS", &shots)
        .current_dir(root())
        .status()
        .context("starting node")?;
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    if !status.success() {
        bail!("the browser suite failed ({status})");
    }
    eprintln!("browser suite: screenshots in {}", shots.display());
    Ok(())
}
