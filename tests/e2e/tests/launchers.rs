//! The offline launchers behave as the binaries wash would otherwise download: the host
//! takes its configuration from the `WASMCLOUD_*` environment `wash up` sets, and both
//! stop cleanly on SIGTERM.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::{versions, wait_for, Lattice};

#[test]
fn host_takes_wash_up_configuration_and_stops_on_sigterm() -> Result<()> {
    let mut lattice =
        Lattice::up_with(&["--label", "neongrid.edge=true", "--label", "zone=lab-1"])?;

    let hosts = lattice.wash_json(&["get", "hosts"])?;
    let host = &hosts["hosts"][0];
    assert_eq!(
        host["version"].as_str(),
        Some(versions()?["HOST_VERSION"].as_str()),
        "{host}"
    );
    assert_eq!(host["labels"]["neongrid.edge"], "true", "{host}");
    assert_eq!(host["labels"]["zone"], "lab-1", "{host}");
    assert_eq!(
        host["lattice"].as_str(),
        Some(lattice.name.as_str()),
        "{host}"
    );

    // wash passes WASMCLOUD_EXPERIMENTAL_FEATURES through; the host must have parsed it.
    let log = lattice.log("wasmcloud.log");
    ensure!(
        log.contains("builtin_http_server: true") && log.contains("builtin_messaging_nats: true"),
        "host did not enable the builtin providers:\n{log}"
    );

    let host_pid = lattice
        .processes()
        .into_iter()
        .find(|(_, cmd)| cmd.contains("wasmcloud_host"))
        .context("no wasmcloud_host process in the lattice")?
        .0;
    Command::new("kill")
        .args(["-TERM", &host_pid.to_string()])
        .status()?;
    wait_for(
        "the host to exit on SIGTERM",
        Duration::from_secs(20),
        || {
            let alive =
                std::fs::read(format!("/proc/{host_pid}/cmdline")).is_ok_and(|c| !c.is_empty());
            Ok((!alive).then_some(()))
        },
    )?;
    let log = lattice.log("wasmcloud.log");
    ensure!(
        log.contains("received SIGTERM, shutting down"),
        "no clean shutdown in the log:\n{log}"
    );
    ensure!(!log.contains("panicked"), "the host panicked:\n{log}");
    // A clean stop says goodbye on the lattice, so the host disappears from `wash get hosts`.
    wait_for(
        "the host to leave the lattice",
        Duration::from_secs(20),
        || {
            let hosts = lattice.wash_json(&["get", "hosts"])?;
            Ok(hosts["hosts"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(()))
        },
    )?;

    let leaked = lattice.down()?;
    assert!(
        leaked.is_empty(),
        "processes outlived `wash down`: {leaked:?}"
    );
    Ok(())
}

#[test]
fn wadm_reports_the_version_wash_checks_for() -> Result<()> {
    // wash compares `wadm --version` against the version it wants before using a binary
    // it finds on disk; any other output makes it try to download wadm from GitHub.
    let v = versions()?;
    let dir = std::env::var("WASH_DOWNLOADS_DIR")
        .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.local/share/wash/downloads")))?;
    let out = Command::new(format!("{dir}/wadm"))
        .arg("--version")
        .output()?;
    assert_eq!(
        String::from_utf8(out.stdout)?.trim(),
        format!("wadm {}", v["WADM_VERSION"])
    );
    Ok(())
}
