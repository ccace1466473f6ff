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

    let host_pid = pid_of(&lattice, "wasmcloud_host")?;
    signal(host_pid, "-TERM")?;
    wait_for(
        "the host to exit on SIGTERM",
        Duration::from_secs(20),
        || Ok((!alive(host_pid)).then_some(())),
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

/// `wash down` stops nats-server as soon as the hosts acknowledge their stop, and the
/// host's last shutdown step, a flush of its NATS clients, never completes once the server
/// is gone. The launcher bounds the shutdown, so such a host still exits.
#[test]
fn host_exits_when_its_nats_server_is_gone() -> Result<()> {
    let lattice = Lattice::up()?;
    let nats_pid = pid_of(&lattice, "nats-server")?;
    let host_pid = pid_of(&lattice, "wasmcloud_host")?;

    signal(nats_pid, "-KILL")?;
    wait_for("nats-server to exit", Duration::from_secs(10), || {
        Ok((!alive(nats_pid)).then_some(()))
    })?;
    // A client that has not yet seen the connection drop fails its flush at once, and the
    // host then stops cleanly; one that has seen it reconnects without end, and its flush
    // never completes. The signal waits for the second case, the one the bound is for.
    wait_for(
        "the host to notice that its NATS server is gone",
        Duration::from_secs(15),
        || {
            Ok(lattice
                .log("wasmcloud.log")
                .contains("async_nats: event: disconnected")
                .then_some(()))
        },
    )?;
    signal(host_pid, "-TERM")?;
    // The launcher's bound is 5 s; the wait leaves room for a machine three times slower.
    let exited = wait_for(
        "the host to exit without its NATS server",
        Duration::from_secs(20),
        || Ok((!alive(host_pid)).then_some(())),
    );
    let log = lattice.log("wasmcloud.log");
    exited.with_context(|| format!("host log:\n{log}"))?;
    ensure!(
        log.contains("received SIGTERM, shutting down"),
        "the host did not log the signal:\n{log}"
    );
    ensure!(
        log.contains("host shutdown did not finish by its deadline"),
        "the host exited without saying that its shutdown was cut short:\n{log}"
    );
    ensure!(!log.contains("panicked"), "the host panicked:\n{log}");
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

/// The pid of the lattice's process whose command line contains `name`.
fn pid_of(lattice: &Lattice, name: &str) -> Result<u32> {
    Ok(lattice
        .processes()
        .into_iter()
        .find(|(_, cmd)| cmd.contains(name))
        .with_context(|| format!("no {name} process in the lattice"))?
        .0)
}

/// Whether `pid` is still running (a zombie has an empty command line).
fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn signal(pid: u32, which: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill {which} {pid} failed: {status}");
    Ok(())
}
