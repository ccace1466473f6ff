//! The multi-host lattice of `scripts/lattice.sh`: four hosts in their own network
//! namespaces (edge1, edge2, core, data), a NATS cluster with one server per namespace,
//! wadm, Redis and Postgres in the data namespace, and `wadm.yaml` deployed onto it.
//!
//! In order, on one lattice:
//! 1. placement: each host's inventory, read through the control interface, holds
//!    exactly what the manifest's spreads and daemons put on a host with its labels
//!    (ingest and api shared out over both edge hosts);
//! 2. a reading published at the edge, judged on core, stored on data, read back;
//! 3. the validator moved from core to edge and back by manifest alone, while readings
//!    flow, each stored once, the same component image throughout;
//! 4. edge-host loss: edge2's host process killed under load from the load generator
//!    (at-least-once, through both edge hosts' NATS servers); every reading stored
//!    exactly once, wadm forgets the host and moves its share of ingest and api onto
//!    edge1, and a host started again gets its share back;
//! 5. the data host's provider processes killed under load: the host restarts them,
//!    ingest rides out the restart, and every reading is stored exactly once;
//! 6. NATS-server loss: under load, the NATS server holding the leader of the readings
//!    stream (3 replicas) is killed and started again 5 s later. Its host and clients lose
//!    the lattice meanwhile; the stream elects another leader, every reading is stored
//!    exactly once, and the restarted server catches up as a replica;
//! 7. the JetStream messaging provider's order across both edge hosts: the messaging probe
//!    (tests/messaging-probe) shared out over edge1 and edge2, 64 keys × 200 messages
//!    published through both edge hosts' NATS servers at once, each key's messages
//!    handled in stream order and never two at once; then edge2's host killed while a
//!    backlog is handled: nothing lost, nothing reordered;
//! 8. `down` leaves no namespace, link or process behind.
//!
//! Needs root (network namespaces); it takes over the lattice `scripts/lattice.sh`
//! manages, so do not run it while you use one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::manifest::{wadm_manifest, Manifest};
use neongrid_e2e::netns::{
    self, component_id, lattice, placement, wait_deployed, wait_placed, wash_deploy, Workload,
    EDGE1_API, EDGE1_NATS, EDGE2_NATS, HOSTS, STATE_DIR,
};
use neongrid_e2e::pipeline::{self, connect, reading, runtime};
use neongrid_e2e::probe;
use neongrid_e2e::{http, repo_root, trace, wait_for};
use neongrid_loadgen::Report;
use serde_json::Value;
use std::process::Command;

const DEVICE: &str = "move-1";
/// The manifest with the validator moved, written (and removed again) at the repo root.
const MOVED_MANIFEST: &str = ".wadm.multihost-moved.yaml";
/// Load during the host loss and the provider restarts: modest, so that the lattice
/// (four hosts, four NATS servers and two databases on this machine) keeps up, and long
/// enough to span the failure and the recovery.
const LOAD_RATE: u32 = 20;
const LOAD_CONCURRENCY: usize = 16;
const LOAD_SECONDS: u64 = 15;
const LOAD_DEVICES: usize = 4;
/// When, into the load, the failure is caused.
const FAIL_AFTER: Duration = Duration::from_secs(4);
/// wadm.yaml's `handler_timeout_ms` for ingest: a reading whose ingest instance died with
/// its host is delivered again after this, and its device's later readings wait for it,
/// so the load generator's readings in flight stand still that long.
const INGEST_HANDLER_TIMEOUT: Duration = Duration::from_secs(15);
/// The load during the host loss spans the failure, that standstill and the recovery.
const LOSS_LOAD_SECONDS: u64 = 30;
/// Phase 6: the ordering load, as tests/e2e/tests/jetstream_delivery.rs puts it on one host.
const ORDER_KEYS: usize = 64;
const ORDER_PER_KEY: usize = 200;
/// Phase 6's backlog for edge2's loss; each delivery held this long, so that the backlog
/// lasts seconds and the kill lands inside it.
const LOSS_KEYS: usize = 32;
const LOSS_PER_KEY: usize = 60;
const LOSS_HOLD_MS: u64 = 50;
/// The probe's manifest placed on the lattice, written (and removed again) at the repo root.
const PROBE_MANIFEST: &str = ".wadm.multihost-probe.yaml";
/// wadm forgets a silent host after 45 s without a heartbeat (`lattice.sh`), checked
/// every 22.5 s, and hosts beat every 30 s.
const REAP_TIMEOUT: Duration = Duration::from_secs(150);

fn api_get(path: &str) -> Result<Value> {
    http::get(&format!("{EDGE1_API}{path}"))?.json()
}

/// The load generator (`netns::load`) in its own thread.
fn start_load(prefix: &str, seconds: u64) -> std::thread::JoinHandle<Result<Report>> {
    let config = netns::load(prefix, LOAD_RATE, LOAD_CONCURRENCY, seconds, LOAD_DEVICES);
    std::thread::spawn(move || netns::run_load(&config))
}

/// At least `min_sent` readings were sent, and every one was answered (a resend of a
/// reading whose answer was lost counts as a duplicate, or gets the stream's receipt) and
/// stored exactly once.
fn check_exactly_once(what: &str, report: &Report, min_sent: u64) -> Result<()> {
    trace(&format!(
        "{what}: {} sent, {} accepted, {} duplicates, {} receipts, {} resent, {} stored; \
         reply p50 {:.1} ms p99 {:.1} ms max {:.0} ms",
        report.sent,
        report.accepted,
        report.duplicates,
        report.receipts,
        report.retries,
        report.stored,
        report.reply_ms.p50,
        report.reply_ms.p99,
        report.reply_ms.max
    ));
    ensure!(
        report.sent >= min_sent,
        "{what}: only {} readings sent, {min_sent} expected at least",
        report.sent
    );
    ensure!(
        report.failed == 0
            && report.rejected == 0
            && report.accepted + report.duplicates + report.receipts == report.sent,
        "{what}: not every reading was answered: {report:?}"
    );
    ensure!(
        report.stored == report.sent && report.visible == report.sent,
        "{what}: not every reading was stored exactly once: {report:?}"
    );
    Ok(())
}

#[test]
fn lattice_places_moves_scales_and_survives_host_and_provider_loss() -> Result<()> {
    for artifact in probe::ARTIFACTS {
        neongrid_e2e::build_artifact(artifact)?;
    }
    let down = netns::up()?;
    let manifest_path = repo_root().join("wadm.yaml");
    let manifest = wadm_manifest(&manifest_path)?;

    // 1. Placement as declared, read from each host's inventory.
    let placed = wait_placed(&manifest, &HOSTS)?;
    // ingest and api: one spreadscaler each, shared out over both edge hosts.
    let shared = ["ingest", "api"].map(component_id);
    let edge_counts = |placed: &BTreeMap<String, Workload>, id: &String| {
        ["edge1", "edge2"].map(|h| {
            placed
                .get(h)
                .and_then(|w| w.components.get(id))
                .map(|c| c.1)
        })
    };
    for id in &shared {
        let counts = edge_counts(&placed, id);
        ensure!(
            counts[0].is_some() && counts[0] == counts[1],
            "{id} should run on both edge hosts, an equal share each: {counts:?}"
        );
    }

    let rt = runtime()?;
    let nats = rt.block_on(connect(EDGE1_NATS))?;

    // 2. Across the hosts: published at the edge, judged on core, stored on data, read
    // back through the API on edge.
    let summary = rt.block_on(pipeline::request(
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

    // 3. The move, and back: only the validator's placement label changes.
    move_validator(&rt, &nats, &manifest_path, &placed)?;

    // 4. Edge-host loss under load.
    let edge2_before = placed["edge2"].host_id.clone();
    let load = start_load("loss", LOSS_LOAD_SECONDS);
    std::thread::sleep(FAIL_AFTER);
    lattice(&["host-kill", "edge2"])?;
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    let stalled = INGEST_HANDLER_TIMEOUT.as_secs();
    check_exactly_once(
        "edge2 killed under load",
        &report,
        u64::from(LOAD_RATE) * (LOSS_LOAD_SECONDS - stalled) / 2,
    )?;
    let reaped = format!("Will reap node id={edge2_before}");
    wait_for("wadm to forget the killed host", REAP_TIMEOUT, || {
        let log = std::fs::read_to_string(format!("{STATE_DIR}/data/wadm.log"))?;
        Ok(log.contains(&reaped).then_some(()))
    })?;
    trace("wadm reaped edge2");
    // wadm reconciles: edge1 takes edge2's share, so it runs the spreads' whole counts.
    let placed = wait_placed(&manifest, &netns::hosts_without("edge2"))?;
    trace(&format!(
        "edge1 after the loss: ingest {:?}, api {:?}",
        edge_counts(&placed, &shared[0])[0],
        edge_counts(&placed, &shared[1])[0]
    ));
    wait_deployed()?;
    // A replacement host: wadm gives it its share back, with no deploy.
    lattice(&["host-start", "edge2"])?;
    let placed = wait_placed(&manifest, &HOSTS)?;
    ensure!(
        placed["edge2"].host_id != edge2_before,
        "edge2 should be a new host"
    );
    for id in &shared {
        let counts = edge_counts(&placed, id);
        ensure!(
            counts[0].is_some() && counts[0] == counts[1],
            "{id} should be shared out over both edge hosts again: {counts:?}"
        );
    }
    wait_deployed()?;

    // 5. The data host's providers killed under load.
    restart_providers()?;

    // 6. The stream leader's NATS server lost under load.
    nats_server_loss(&rt, &nats)?;

    // 7. Ordered delivery across both edge hosts, and through edge2's loss.
    probe_order_across_edge_hosts()?;

    drop(down);
    check_nothing_left()
}

/// Moves the validator from core to edge by manifest alone while readings flow, then
/// back; each reading is stored once and the image is the same throughout.
///
/// Each move is two deploys, as an operator would do it: first the validator is placed
/// on both roles, so the new place runs before the old one stops; then on the new role
/// alone. (In one step wadm stops the instances on the no-longer-eligible host before it
/// starts new ones, and ingest's validator calls trap in between.)
fn move_validator(
    rt: &tokio::runtime::Runtime,
    nats: &async_nats::Client,
    manifest_path: &std::path::Path,
    placed: &BTreeMap<String, Workload>,
) -> Result<()> {
    let validator = component_id("validator");
    let image_before = placed["core"].components[&validator].0.clone();
    let runs_on = |placed: &BTreeMap<String, Workload>| -> BTreeSet<&'static str> {
        placed
            .iter()
            .filter(|(_, w)| w.components.contains_key(&validator))
            .filter_map(|(_, w)| {
                ["core", "edge"].into_iter().find(|role| {
                    w.labels
                        .get(&format!("neongrid.{role}"))
                        .is_some_and(|v| v == "true")
                })
            })
            .collect()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = rt.spawn(pipeline::publish_until(
        nats.clone(),
        DEVICE,
        "m".to_owned(),
        Arc::clone(&stop),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let mut images = BTreeSet::new();
    let steps: [(&[&str], &[&str]); 4] = [
        (&["core", "edge"], &["core", "edge"]),
        (&["edge"], &["edge"]),
        (&["edge", "core"], &["core", "edge"]),
        (&["core"], &["core"]),
    ];
    for (labels, roles) in steps {
        let mut manifest = Manifest::load(manifest_path)?;
        let labels: Vec<String> = labels.iter().map(|l| format!("neongrid.{l}")).collect();
        manifest.place_by_labels(
            "validator",
            &labels.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        // Next to wadm.yaml: wash resolves the file:// images against its folder.
        let moved = repo_root().join(MOVED_MANIFEST);
        manifest.write(&moved)?;
        trace(&format!(
            "redeploying with the validator placed by {labels:?}"
        ));
        let deployed = wash_deploy(&moved);
        let _ = std::fs::remove_file(&moved);
        deployed?;
        let want: BTreeSet<&str> = roles.iter().copied().collect();
        let now = wait_for(
            &format!("the validator to run on {want:?} only"),
            Duration::from_secs(120),
            || {
                let placed = placement()?;
                Ok((runs_on(&placed) == want).then_some(placed))
            },
        )?;
        images.extend(
            now.values()
                .filter_map(|w| w.components.get(&validator))
                .map(|(image, _)| image.clone()),
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    stop.store(true, Ordering::SeqCst);
    let (sent, retried) = rt.block_on(publisher)??;
    trace(&format!(
        "{sent} readings across the move to edge and back, {retried} sent again"
    ));
    ensure!(
        images == BTreeSet::from([image_before.clone()]),
        "the validator's image changed: {image_before} -> {images:?}"
    );
    ensure!(sent > 10, "only {sent} readings flowed");
    // A reading the stream took may still wait behind one being redelivered.
    wait_for(
        &format!("the API to count the {sent} readings sent across the moves"),
        Duration::from_secs(30),
        || {
            let count = api_get(&format!("/api/devices/{DEVICE}"))?["count"]
                .as_u64()
                .context("no count")?;
            ensure!(
                count <= sent as u64,
                "{sent} readings sent across the moves, the API counts {count}"
            );
            Ok((count == sent as u64).then_some(()))
        },
    )?;
    // The last step deployed what wadm.yaml says, placed by core alone.
    wash_deploy(manifest_path)?;
    wait_deployed()
}

/// The probe's app: the probe shared out over the edge hosts, the JetStream provider on
/// core, the probe's store on data. The queries come through the host's builtin NATS
/// provider, which delivers only to components on its own host, so it runs on edge1, the
/// edge host that stays. Every host's `127.0.0.1:4222` is its own namespace's NATS
/// server, which is what the template names.
fn deploy_probe() -> Result<()> {
    let mut manifest = Manifest::load(&repo_root().join(probe::TEMPLATE))?;
    manifest
        .absolutize_images(&repo_root())?
        .place_by_label("probe", "neongrid.edge")?
        .place_by_label("messaging", "neongrid.core")?
        .place_where("queries", netns::HOST_LABEL, "edge1")?
        .place_by_label("probe-store", "neongrid.data")?;
    let path = repo_root().join(PROBE_MANIFEST);
    manifest.write(&path)?;
    let deployed = wash_deploy(&path);
    let _ = std::fs::remove_file(&path);
    deployed?;
    netns::wait_app_deployed(probe::APP)?;
    let counts = wait_for(
        "the probe to run on both edge hosts",
        Duration::from_secs(120),
        || {
            let placed = placement()?;
            let counts = ["edge1", "edge2"].map(|h| {
                placed.get(h).map_or(0, |w| {
                    w.components
                        .values()
                        .filter(|(image, _)| image.contains("messaging-probe"))
                        .map(|(_, max)| *max)
                        .sum::<u64>()
                })
            });
            Ok((counts.iter().all(|c| *c > 0)).then_some(counts))
        },
    )?;
    trace(&format!(
        "probe instances: {} on edge1, {} on edge2",
        counts[0], counts[1]
    ));
    Ok(())
}

/// What the core host (and the JetStream provider on it) logged.
fn core_log() -> Result<String> {
    let path = format!("{STATE_DIR}/core/wasmcloud.log");
    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// Phase 6: the probe fed from its stream by the provider on core, its instances on both
/// edge hosts. First every key's order with both up, then with edge2's host killed in
/// the middle of a backlog: its deliveries in flight never answer, the provider delivers
/// them again after the handler timeout to edge1's instances, and each key's order holds.
fn probe_order_across_edge_hosts() -> Result<()> {
    deploy_probe()?;
    let rt = runtime()?;
    let nc = rt.block_on(connect(EDGE1_NATS))?;
    let js = async_nats::jetstream::new(nc.clone());
    wait_for(
        "the provider to create the probe's stream",
        Duration::from_secs(90),
        || Ok(rt.block_on(js.get_stream(probe::STREAM)).ok().map(|_| ())),
    )?;
    wait_for(
        "the probe to answer queries",
        Duration::from_secs(90),
        || Ok(rt.block_on(probe::count(&nc, "total")).ok()),
    )?;
    let edges = [EDGE1_NATS, EDGE2_NATS];

    // Order with both edge hosts up.
    let redelivered_before = probe::redeliveries(&core_log()?);
    let started = std::time::Instant::now();
    rt.block_on(probe::publish_keys(
        &edges,
        "o",
        ORDER_KEYS,
        ORDER_PER_KEY,
        "",
    ))?;
    let expected = ORDER_KEYS * ORDER_PER_KEY;
    wait_for(
        "every ordered message to be handled",
        Duration::from_secs(600),
        || Ok((rt.block_on(probe::count(&nc, "total"))? >= expected).then_some(())),
    )?;
    let elapsed = started.elapsed();
    let redelivered = probe::redeliveries(&core_log()?) - redelivered_before;
    let repeats = rt.block_on(probe::check_order(
        &nc,
        "o",
        ORDER_KEYS,
        ORDER_PER_KEY,
        redelivered,
    ))?;
    ensure!(
        rt.block_on(probe::count(&nc, "violations"))? == 0,
        "two deliveries of one key at once, across the edge hosts"
    );
    trace(&format!(
        "{ORDER_KEYS} keys x {ORDER_PER_KEY} over both edge hosts in {:.1} s: in order, \
         one at a time; {repeats} handled again after a lost answer",
        elapsed.as_secs_f64()
    ));

    // Order through edge2's loss.
    let total_before = rt.block_on(probe::count(&nc, "total"))?;
    let redelivered_before = probe::redeliveries(&core_log()?);
    let backlog = LOSS_KEYS * LOSS_PER_KEY;
    rt.block_on(probe::publish_keys(
        &edges,
        "l",
        LOSS_KEYS,
        LOSS_PER_KEY,
        &format!(" sleep={LOSS_HOLD_MS}"),
    ))?;
    wait_for(
        "the backlog to be under way",
        Duration::from_secs(60),
        || {
            let total = rt.block_on(probe::count(&nc, "total"))?;
            Ok((total >= total_before + backlog / 8).then_some(()))
        },
    )?;
    lattice(&["host-kill", "edge2"])?;
    // A query in flight to edge2's instances when it died goes unanswered: ask again.
    let at_kill = wait_for(
        "the probe to answer after the kill",
        Duration::from_secs(60),
        || Ok(rt.block_on(probe::count(&nc, "total")).ok()),
    )? - total_before;
    ensure!(
        at_kill < backlog,
        "the backlog ({backlog}) was handled before edge2 was killed"
    );
    trace(&format!(
        "edge2 killed with {at_kill} of {backlog} backlog messages handled"
    ));
    wait_for(
        "the whole backlog to be handled on edge1",
        Duration::from_secs(300),
        || {
            let complete = rt.block_on(probe::complete_keys(&nc, "l", LOSS_KEYS, LOSS_PER_KEY))?;
            Ok((complete == LOSS_KEYS).then_some(()))
        },
    )?;
    let redelivered = probe::redeliveries(&core_log()?) - redelivered_before;
    let repeats = rt.block_on(probe::check_order(
        &nc,
        "l",
        LOSS_KEYS,
        LOSS_PER_KEY,
        redelivered,
    ))?;
    // A delivery whose host died is never left: the key's next delivery, after the
    // handler timeout, finds it still entered. Each such one was delivered again.
    let violations = rt.block_on(probe::count(&nc, "violations"))?;
    ensure!(
        violations <= redelivered,
        "{violations} deliveries overlapped another of their key, but only {redelivered} \
         were delivered again after a timeout"
    );
    trace(&format!(
        "edge2 lost mid-backlog: {backlog} messages in order; {redelivered} delivered \
         again, {repeats} of them handled twice, {violations} after a dead handler"
    ));
    Ok(())
}

/// The pid of the data host's provider process whose cache file names `image`.
fn provider_pid(image: &str) -> Result<Option<u32>> {
    let out = Command::new("ip")
        .args(["netns", "pids", "ng-data"])
        .output()?;
    let needle = image.replace(['.', '-', '/'], "_");
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmd| String::from_utf8_lossy(&cmd).contains(&needle))
                .unwrap_or(false)
        }))
}

/// Kills the Redis provider, then the Postgres one, while the load generator runs; the
/// host starts each again and no reading is lost or stored twice.
fn restart_providers() -> Result<()> {
    let images = ["keyvalue-redis.par.gz", "keyvalue-postgres.par.gz"];
    let mut before = Vec::new();
    for image in images {
        before.push(provider_pid(image)?.with_context(|| format!("no {image} process"))?);
    }
    let load = start_load("restart", LOAD_SECONDS);
    std::thread::sleep(FAIL_AFTER);
    for (image, pid) in images.iter().zip(&before) {
        trace(&format!("killing the {image} provider (pid {pid})"));
        ensure!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?
                .success(),
            "kill {pid}"
        );
        let again = wait_for(
            &format!("the host to start {image} again"),
            Duration::from_secs(60),
            || Ok(provider_pid(image)?.filter(|p| p != pid)),
        )?;
        trace(&format!("{image} runs again as pid {again}"));
        std::thread::sleep(Duration::from_secs(2));
    }
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    check_exactly_once(
        "providers killed under load",
        &report,
        u64::from(LOAD_RATE) * LOAD_SECONDS / 2,
    )?;
    let placed = placement()?;
    let providers = &placed["data"].providers;
    ensure!(
        providers.contains(&component_id("hot-store"))
            && providers.contains(&component_id("archive-store")),
        "the data host's providers after the restarts: {providers:?}"
    );
    Ok(())
}

/// The stream that devices publish into (wadm.yaml), with 3 replicas on this lattice.
const READINGS_STREAM: &str = "NEONGRID_READINGS";
/// How long the killed NATS server stays down.
const NATS_DOWN: Duration = Duration::from_secs(5);

/// Where the readings stream's replicas are, as its leader reports them.
fn stream_cluster(
    rt: &tokio::runtime::Runtime,
    js: &async_nats::jetstream::Context,
) -> Result<async_nats::jetstream::stream::ClusterInfo> {
    rt.block_on(async {
        let mut stream = js.get_stream(READINGS_STREAM).await?;
        let info = stream.info().await?;
        info.cluster
            .clone()
            .with_context(|| format!("{READINGS_STREAM} reports no cluster: {info:?}"))
    })
}

/// Kills the NATS server of the readings stream's leader under load, starts it again
/// after [`NATS_DOWN`], and checks that every reading was stored exactly once and that the
/// server is a current replica again.
fn nats_server_loss(rt: &tokio::runtime::Runtime, nats: &async_nats::Client) -> Result<()> {
    let js = async_nats::jetstream::new(nats.clone());
    let before = stream_cluster(rt, &js)?;
    let leader = before.leader.clone().context("the stream has no leader")?;
    // Servers are named ng-<host> (lattice.sh); `replicas` lists the followers.
    let host = leader
        .strip_prefix("ng-")
        .with_context(|| format!("unexpected server name {leader}"))?
        .to_owned();
    ensure!(
        before.replicas.len() == 2,
        "{READINGS_STREAM} should have 3 replicas: {before:?}"
    );
    trace(&format!(
        "{READINGS_STREAM} leader: {leader}; killing its NATS server"
    ));
    let load = start_load("natsloss", LOSS_LOAD_SECONDS);
    std::thread::sleep(FAIL_AFTER);
    lattice(&["nats-kill", &host])?;
    std::thread::sleep(NATS_DOWN);
    lattice(&["nats-start", &host])?;
    let report = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
    let stalled = INGEST_HANDLER_TIMEOUT.as_secs();
    check_exactly_once(
        &format!("the stream leader's NATS server ({host}) killed under load"),
        &report,
        u64::from(LOAD_RATE) * (LOSS_LOAD_SECONDS - stalled) / 2,
    )?;
    let after = wait_for(
        &format!("{leader} to be a current replica of {READINGS_STREAM} again"),
        Duration::from_secs(60),
        || {
            let now = stream_cluster(rt, &js)?;
            let back = now.leader.as_deref() == Some(leader.as_str())
                || now.replicas.iter().any(|p| p.name == leader && p.current);
            Ok((back && now.replicas.iter().all(|p| p.current)).then_some(now))
        },
    )?;
    trace(&format!(
        "{READINGS_STREAM} after the loss: leader {:?}, replicas {:?}",
        after.leader,
        after.replicas.iter().map(|p| &p.name).collect::<Vec<_>>()
    ));
    wait_deployed()
}

/// After `down`: no namespace, bridge or veth of ours, and no process that ran from
/// the lattice's state directory.
fn check_nothing_left() -> Result<()> {
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output()?.stdout)?;
    ensure!(
        !netns.split_whitespace().any(|ns| ns.starts_with("ng-")),
        "namespaces left behind: {netns}"
    );
    let links = String::from_utf8(Command::new("ip").args(["-o", "link"]).output()?.stdout)?;
    ensure!(
        !links.contains("ng-br0") && !HOSTS.iter().any(|h| links.contains(&format!("ng-{h}-h"))),
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
