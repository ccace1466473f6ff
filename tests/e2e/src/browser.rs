//! The dashboard as headless Chromium shows it: runs `tests/browser/dashboard.mjs`
//! (Node with playwright-core, both installed by `scripts/setup.sh`) and reads back the
//! JSON line it prints.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::repo_root;

/// How long the page may take to show the devices and refresh once more; the script
/// enforces it and says what it was waiting for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the whole browser run may take: Chromium's start, the page's first render,
/// one more refresh and the screenshot. Past it the script is stopped.
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
    let root = repo_root();
    let script = root.join("tests/browser/dashboard.mjs");
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        bail!("playwright-core is not installed in tests/browser: run scripts/setup.sh");
    }
    crate::trace(&format!("headless Chromium: {url}"));
    let mut child = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(screenshot)
        .args(["--expect-devices", &expect_devices.to_string()])
        .args(["--timeout-ms", &PAGE_TIMEOUT.as_millis().to_string()])
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (is Node.js installed? run scripts/setup.sh)")?;
    // Read both pipes while the script runs, so that neither can fill up and stall it.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    let Some(status) = status else {
        bail!(
            "{} did not finish within {BROWSER_TIMEOUT:?} and was stopped; its stderr:\n{stderr}",
            script.display()
        );
    };
    if !status.success() {
        bail!("{} failed ({status}):\n{stderr}{stdout}", script.display());
    }
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!("the browser check printed no view: stdout {stdout:?}, stderr:\n{stderr}")
    })
}

/// Stops the script: SIGTERM first, which Playwright handles by closing Chromium, then
/// SIGKILL if it is still there.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let grace = Instant::now() + Duration::from_secs(5);
    while Instant::now() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

/// What a [`drain`] thread read. Chromium's children can keep a pipe open after the
/// script was killed, so this waits a moment for the end of the output, not forever.
fn collect(reader: Option<JoinHandle<String>>) -> String {
    let Some(reader) = reader else {
        return String::new();
    };
    let until = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if reader.is_finished() {
        reader.join().unwrap_or_default()
    } else {
        "(output still open; not waiting for it)".to_string()
    }
}
