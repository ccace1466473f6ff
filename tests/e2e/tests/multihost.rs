//! The multi-host lattice of `scripts/lattice.sh`: three hosts in their own network
//! namespaces (edge, core, data), a three-server NATS cluster, wadm, Redis and Postgres
//! in the data namespace, and `wadm.yaml` deployed onto it. The test checks placement
//! through the control interface, a reading's way across the hosts, and that moving the
//! validator from core to edge is a manifest change only: readings keep flowing and are
//! stored exactly once, and the host runs the very same component. Then `down` must
//! leave no namespace, link or process behind.
//!
//! Needs root (network namespaces); it takes over the lattice `scripts/lattice.sh`
//! manages, so do not run it while you use one.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::pipeline::{self, connect, reading, runtime, COMPONENTS};
use neongrid_e2e::{build_artifact, repo_root, trace, wait_for};
use serde_json::Value;

const SCRIPT: &str = "scripts/lattice.sh";
const LATTICE: &str = "neongrid";
/// wash and the test reach the lattice over the bridge: control through the data
/// namespace's NATS server, readings through the edge's.
const CTL_HOST: &str = "10.77.0.13";
const EDGE_NATS: &str = "nats://10.77.0.11:4222";
/// What points wash at that lattice.
const LATTICE_ARGS: [&str; 6] = [
    "--lattice",
    LATTICE,
    "--ctl-host",
    CTL_HOST,
    "--ctl-port",
    "4222",
];
const NAMESPACES: [&str; 3] = ["ng-edge", "ng-core", "ng-data"];
const STATE_DIR: &str = "/run/neongrid-lattice";
const DEVICE: &str = "move-1";
/// The manifest with the validator moved, written (and removed again) at the repo root.
const MOVED_MANIFEST: &str = ".wadm.multihost-moved.yaml";

/// Runs `scripts/lattice.sh down` when dropped, so a failing test leaves nothing behind.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lattice("down");
    }
}

fn lattice(command: &str) -> Result<String> {
    trace(&format!("{SCRIPT} {command}"));
    let out = Command::new("timeout")
        .args(["600", SCRIPT, command])
        .current_dir(repo_root())
        .env("NEONGRID_LATTICE_NO_BUILD", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {SCRIPT} {command}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "{SCRIPT} {command} failed:\n{text}");
    Ok(text)
}

fn wash_json(args: &[&str]) -> Result<Value> {
    let out = Command::new("wash")
        .args(args)
        .args(LATTICE_ARGS)
        .args(["--output", "json"])
        .current_dir(repo_root())
        .output()
        .context("running wash")?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`wash {}` printed no JSON: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What one host runs: the ids of its components and providers, and each component's
/// image.
type HostWorkload = (BTreeSet<String>, BTreeMap<String, String>);

/// Each host's workload, by its role label.
fn placement() -> Result<BTreeMap<String, HostWorkload>> {
    let inventory = wash_json(&["get", "inventory"])?;
    let mut by_role = BTreeMap::new();
    for inv in inventory["inventories"]
        .as_array()
        .context("no inventories")?
    {
        let role = inv["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, v)| k.starts_with("neongrid.") && *v == "true")
            .map(|(k, _)| k.trim_start_matches("neongrid.").to_owned())
            .with_context(|| format!("host without a role label: {}", inv["labels"]))?;
        let mut ids = BTreeSet::new();
        let mut images = BTreeMap::new();
        for c in inv["components"].as_array().into_iter().flatten() {
            let id = c["id"].as_str().unwrap_or_default().to_owned();
            images.insert(
                id.clone(),
                c["image_ref"].as_str().unwrap_or_default().to_owned(),
            );
            ids.insert(id);
        }
        for p in inv["providers"].as_array().into_iter().flatten() {
            ids.insert(p["id"].as_str().unwrap_or_default().to_owned());
        }
        by_role.insert(role, (ids, images));
    }
    Ok(by_role)
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|id| format!("neongrid-{id}")).collect()
}

/// `GET` on the API, which listens on the edge namespace's loopback.
fn api_get(path: &str) -> Result<Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", "ng-edge", "curl", "-sS", "-m", "10"])
        .arg(format!("http://127.0.0.1:8000{path}"))
        .output()?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "GET {path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn lattice_places_by_label_and_moves_the_validator_by_manifest_alone() -> Result<()> {
    let uid = Command::new("id").arg("-u").output()?.stdout;
    ensure!(
        String::from_utf8_lossy(&uid).trim() == "0",
        "this test needs root, for network namespaces"
    );
    for artifact in COMPONENTS
        .iter()
        .chain(&["keyvalue-redis.par.gz", "keyvalue-postgres.par.gz"])
    {
        build_artifact(artifact)?;
    }
    let down = Down;
    lattice("up")?;

    // Placement as declared, read from each host's inventory.
    let placed = placement()?;
    let roles = |role: &str| {
        placed
            .get(role)
            .map(|(ids, _)| ids.clone())
            .unwrap_or_default()
    };
    ensure!(
        roles("edge") == ids(&["ingest", "api", "messaging", "httpserver"])
            && roles("core") == ids(&["validator"])
            && roles("data") == ids(&["hot_store", "archive_store"]),
        "placement differs from wadm.yaml: {placed:?}"
    );
    let validator = "neongrid-validator".to_owned();
    let image_before = placed["core"].1[&validator].clone();

    let rt = runtime()?;
    let nats = rt.block_on(connect(EDGE_NATS))?;

    // Across the hosts: published at the edge, judged on core, stored on data, read
    // back through the API on edge.
    let summary = rt.block_on(neongrid_e2e::pipeline::request(
        &nats,
        "neongrid.readings.cross-1",
        &reading("c-1", "cross-1", "temperature_c", 20.5),
    ))?;
    ensure!(
        summary.counts() == (1, 0, 0, 0),
        "cross-host reading: {summary:?}"
    );
    let device = api_get("/api/devices/cross-1")?;
    ensure!(device["count"] == 1, "the API on edge: {device}");

    // The move: only the validator's placement label changes in the manifest.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = rt.spawn(pipeline::publish_until(
        nats.clone(),
        DEVICE,
        "m".to_owned(),
        Arc::clone(&stop),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let mut manifest = Manifest::load(&repo_root().join("wadm.yaml"))?;
    manifest.place_by_label("validator", "neongrid.edge")?;
    // Next to wadm.yaml: wash resolves the file:// images against the manifest's folder.
    let moved = repo_root().join(MOVED_MANIFEST);
    manifest.write(&moved)?;
    trace("redeploying with the validator placed on edge");
    let out = Command::new("wash")
        .args(["app", "deploy"])
        .arg(&moved)
        .args(LATTICE_ARGS)
        .current_dir(repo_root())
        .output()?;
    let _ = std::fs::remove_file(&moved);
    ensure!(
        out.status.success(),
        "wash app deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = wait_for(
        "the validator to run on edge only",
        Duration::from_secs(120),
        || {
            let placed = placement()?;
            let on_edge = placed["edge"].0.contains(&validator);
            let on_core = placed["core"].0.contains(&validator);
            Ok((on_edge && !on_core).then_some(placed))
        },
    )?;
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let (sent, retried) = rt.block_on(publisher)??;
    trace(&format!(
        "{sent} readings across the move, {retried} sent again"
    ));
    ensure!(
        after["edge"].1[&validator] == image_before,
        "the validator's image changed: {image_before} -> {}",
        after["edge"].1[&validator]
    );
    ensure!(sent > 10, "only {sent} readings flowed");
    let device = api_get(&format!("/api/devices/{DEVICE}"))?;
    ensure!(
        device["count"] == sent as u64,
        "{sent} readings sent across the move, the API counts {}",
        device["count"]
    );

    drop(down);
    check_nothing_left()
}

/// After `down`: no namespace, bridge or veth of ours, and no process that ran from
/// the lattice's state directory.
fn check_nothing_left() -> Result<()> {
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output()?.stdout)?;
    for ns in NAMESPACES {
        ensure!(!netns.contains(ns), "namespace {ns} left behind: {netns}");
    }
    let links = String::from_utf8(Command::new("ip").args(["-o", "link"]).output()?.stdout)?;
    ensure!(
        !links.contains("ng-br0") && !links.contains("ng-edge-h") && !links.contains("ng-data-h"),
        "links left behind:\n{links}"
    );
    let leftovers: Vec<String> = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let ours = cmd.contains(STATE_DIR) || String::from_utf8_lossy(&env).contains(STATE_DIR);
            (ours && !cmd.trim().is_empty()).then(|| format!("{pid} {cmd}"))
        })
        .collect();
    ensure!(leftovers.is_empty(), "processes left behind: {leftovers:?}");
    Ok(())
}
