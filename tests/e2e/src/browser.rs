//! The dashboard as headless Chromium shows it: runs `tests/browser/dashboard.mjs`
//! (Node with playwright-core, both installed by `scripts/setup.sh`) and reads back the
//! JSON line it prints.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::repo_root;

/// How long the whole browser run may take: Chromium's start, the page's first render
/// and one more refresh.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// What the page shows.
#[derive(Debug, Deserialize)]
pub struct DashboardView {
    pub title: String,
    pub refreshes: u64,
    /// The page's error line; empty when its last refresh succeeded.
    pub status: String,
    pub devices: Vec<DashboardDevice>,
    pub console_errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct DashboardDevice {
    pub device: String,
    pub count: u64,
    pub metrics: Vec<DashboardMetric>,
}

#[derive(Debug, Deserialize)]
pub struct DashboardMetric {
    pub metric: String,
    /// The latest value as the page prints it (JavaScript's `String(value)`).
    pub latest: String,
    /// Points drawn in the metric's history chart.
    pub chart_points: u64,
}

/// Loads the dashboard at `url`, waits for at least `expect_devices` devices, saves a
/// screenshot to `screenshot` and returns what the page shows.
pub fn load_dashboard(
    url: &str,
    screenshot: &Path,
    expect_devices: usize,
) -> Result<DashboardView> {
    let script = repo_root().join("tests/browser/dashboard.mjs");
    crate::trace(&format!("headless Chromium: {url}"));
    let mut child = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(screenshot)
        .args(["--expect-devices", &expect_devices.to_string()])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (is Node.js installed? run scripts/setup.sh)")?;
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} did not finish within {BROWSER_TIMEOUT:?}",
                script.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    // The output is one line and a few messages; the pipes can't have filled up.
    child
        .stdout
        .take()
        .context("no stdout")?
        .read_to_string(&mut stdout)?;
    child
        .stderr
        .take()
        .context("no stderr")?
        .read_to_string(&mut stderr)?;
    if !status.success() {
        bail!("{} failed ({status}):\n{stderr}{stdout}", script.display());
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("the browser check printed no view: {stdout:?} {stderr}"))
}
