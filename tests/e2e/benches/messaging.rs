//! The JetStream messaging provider beside the host's builtin NATS provider, in one run,
//! into the same trivial handler (the messaging probe's `noop`, answered at once): both
//! providers feed the same probe on one lattice, and the same client drives both the way
//! a device does (`neongrid_loadgen::device::request`).
//!
//! - builtin: a core NATS request on `bench.core.<key>`, which the builtin provider's
//!   queue subscription hands to the probe;
//! - JetStream: the same on `probe.in.bench-<key>`: stored in the stream first (the
//!   receipt comes back on the reply subject), then handed to the probe one key at a
//!   time, acknowledged after its `Ok`.
//!
//! Rounds alternate between the two so that drift on a noisy machine hits both. Each
//! round sends `MESSAGES` messages over `KEYS` keys with `IN_FLIGHT` outstanding; it
//! reports messages/s, latency from publish to the handler's answer (p50/p99) and CPU
//! per message of the host, nats-server and the provider processes.
//!
//! `cargo bench -p neongrid-e2e --bench messaging` (after `scripts/build.sh`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::pipeline::{connect, runtime};
use neongrid_e2e::{build_artifact, repo_root, trace, wait_for, CpuTime, Lattice};
use neongrid_loadgen::{device, Percentiles};
use serde_yaml::Value as Yaml;
use tokio::sync::Semaphore;

const TEMPLATE: &str = "tests/e2e/manifests/messaging-probe.yaml";
const APP: &str = "messaging-probe";
const MESSAGES: usize = 4000;
const KEYS: usize = 64;
const IN_FLIGHT: usize = 64;
const ROUNDS: usize = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Path {
    Builtin,
    JetStream,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Builtin => "builtin (core NATS)",
            Path::JetStream => "messaging-jetstream",
        }
    }

    fn subject(self, key: usize) -> String {
        match self {
            Path::Builtin => format!("bench.core.{key}"),
            Path::JetStream => format!("probe.in.bench-{key}"),
        }
    }
}

struct Round {
    rate: f64,
    latency: Percentiles,
    cpu_us: f64,
}

fn main() -> Result<()> {
    for artifact in [
        "messaging-probe.wasm",
        "keyvalue-memory.par.gz",
        "messaging-jetstream.par.gz",
    ] {
        build_artifact(artifact)?;
    }
    let mut lattice = Lattice::up()?;
    let result = bench(&lattice);
    lattice.down()?;
    result
}

fn bench(lattice: &Lattice) -> Result<()> {
    let nats_url = format!("nats://127.0.0.1:{}", lattice.nats_port);
    let mut manifest = Manifest::load(&repo_root().join(TEMPLATE))?;
    manifest
        .absolutize_images(&repo_root())?
        .set_nats_uris(&nats_url)?;
    let path = lattice.dir().join("messaging-bench.yaml");
    manifest.write(&path)?;
    add_builtin_subscription(&path)?;
    lattice.deploy(&path, APP, Duration::from_secs(180))?;

    let rt = runtime()?;
    let nc = rt.block_on(connect(&nats_url))?;
    for p in [Path::Builtin, Path::JetStream] {
        wait_for(
            &format!("{} to answer", p.name()),
            Duration::from_secs(90),
            || {
                let answer = rt.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        device::request(&nc, p.subject(0), Bytes::from_static(b"noop"), None),
                    )
                    .await
                });
                Ok(matches!(answer, Ok(Ok(_))).then_some(()))
            },
        )?;
    }

    let mut results: Vec<(Path, Vec<Round>)> =
        vec![(Path::Builtin, vec![]), (Path::JetStream, vec![])];
    for round in 0..ROUNDS {
        for (p, rounds) in results.iter_mut() {
            let before = lattice.cpu();
            let r = rt.block_on(drive(&nc, *p))?;
            let cpu: CpuTime = lattice.cpu().since(&before);
            let cpu_us = cpu.call_path() / MESSAGES as f64 * 1e6;
            trace(&format!(
                "round {round} {}: {:.0} msgs/s, p50 {:.2} ms, p99 {:.2} ms, {cpu_us:.0} µs CPU/msg (host {:.0}, nats {:.0}, providers {:.0})",
                p.name(),
                r.0,
                r.1.p50,
                r.1.p99,
                cpu.host / MESSAGES as f64 * 1e6,
                cpu.nats / MESSAGES as f64 * 1e6,
                cpu.providers / MESSAGES as f64 * 1e6,
            ));
            rounds.push(Round {
                rate: r.0,
                latency: r.1,
                cpu_us,
            });
        }
    }

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\n{MESSAGES} messages per round, {KEYS} keys, {IN_FLIGHT} in flight, {ROUNDS} rounds each; medians:");
    println!("| provider | msgs/s | p50 ms | p99 ms | CPU µs/msg (host+nats+providers) |");
    println!("| --- | --: | --: | --: | --: |");
    let mut medians = Vec::new();
    for (p, rounds) in &results {
        let rate = median(rounds.iter().map(|r| r.rate).collect());
        let p50 = median(rounds.iter().map(|r| r.latency.p50).collect());
        let p99 = median(rounds.iter().map(|r| r.latency.p99).collect());
        let cpu = median(rounds.iter().map(|r| r.cpu_us).collect());
        println!(
            "| {} | {rate:.0} | {p50:.2} | {p99:.2} | {cpu:.0} |",
            p.name()
        );
        medians.push((rate, p50, cpu));
    }
    let (b, j) = (medians[0], medians[1]);
    println!(
        "\nJetStream/builtin: msgs/s {:.2}x, p50 {:.2}x, CPU per message {:.2}x",
        j.0 / b.0,
        j.1 / b.1,
        j.2 / b.2
    );
    Ok(())
}

/// `MESSAGES` requests over `KEYS` keys, `IN_FLIGHT` at once: (messages/s, latency ms).
async fn drive(nc: &async_nats::Client, p: Path) -> Result<(f64, Percentiles)> {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        let permit = permits.clone().acquire_owned().await?;
        let (nc, subject) = (nc.clone(), p.subject(n % KEYS));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = tokio::time::timeout(
                REQUEST_TIMEOUT,
                device::request(&nc, subject, Bytes::from_static(b"noop"), None),
            )
            .await
            .context("no answer in time")??
            .handled()?;
            drop(permit);
            ensure!(
                &answer.payload[..] == b"ok noop",
                "answer {:?}",
                answer.payload
            );
            anyhow::Ok(sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(MESSAGES);
    for task in tasks {
        latencies.push(task.await??);
    }
    let rate = MESSAGES as f64 / started.elapsed().as_secs_f64();
    Ok((rate, Percentiles::of(latencies)))
}

/// The builtin provider of the template also subscribes the bench's core subjects.
fn add_builtin_subscription(path: &std::path::Path) -> Result<()> {
    let mut doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    let queries = doc["spec"]["components"]
        .as_sequence_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["name"] == "queries"))
        .context("no queries capability")?;
    let link = queries["traits"]
        .as_sequence_mut()
        .and_then(|ts| ts.iter_mut().find(|t| t["type"] == "link"))
        .context("no link on queries")?;
    let props = &mut link["properties"]["source"]["config"][0]["properties"];
    props["subscriptions"] = Yaml::from("probe.query,bench.core.>|bench");
    std::fs::write(path, serde_yaml::to_string(&doc)?)?;
    Ok(())
}
