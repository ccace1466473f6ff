//! One edge host against two, in one run, on the multi-host lattice of
//! `scripts/lattice.sh` (root): the load generator sends readings through both edge
//! hosts' NATS servers, as devices at two sites would, while edge2's host runs (two edge
//! hosts share the readings through NATS queue groups, and wadm shares ingest's and api's
//! instances out over them) or is stopped (edge1 takes all of both).
//!
//! Each configuration is measured twice, in the order two, one, one, two, so that drift
//! over the run falls on both alike. Each measurement is two load runs:
//! - **saturated**: far more offered than the lattice can take; the accepted rate is
//!   its throughput, and the latencies are those of a full queue;
//! - **steady**: a modest rate every configuration keeps up with; its latencies are
//!   those of a lattice at work but not queueing.
//!
//! Run after `scripts/build.sh`: `cargo bench -p neongrid-e2e --bench edge_scaling`
//! (about 4 minutes). The table goes to stdout and to `target/edge-scaling.md`.

use std::fmt::Write as _;

use anyhow::{ensure, Result};
use neongrid_e2e::manifest::wadm_manifest;
use neongrid_e2e::netns::{self, lattice};
use neongrid_e2e::{repo_root, trace};
use neongrid_loadgen::Report;

const SATURATED_RATE: u32 = 400;
const SATURATED_CONCURRENCY: usize = 64;
const STEADY_RATE: u32 = 20;
const STEADY_CONCURRENCY: usize = 16;
const SECONDS: u64 = 10;
/// Ingest serialises the readings of one device's metric (the min/max lock), so the
/// saturated runs spread over many devices: the hosts, not one lock, should be the limit.
const SATURATED_DEVICES: usize = 32;
const STEADY_DEVICES: usize = 4;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Edge {
    One,
    Two,
}

#[derive(Default)]
struct Figures {
    saturated: Vec<Report>,
    steady: Vec<Report>,
}

fn main() -> Result<()> {
    let down = netns::up()?;
    let manifest = wadm_manifest(&repo_root().join("wadm.yaml"))?;
    // Warm-up: first calls compile and cache; none of it is measured.
    netns::run_load(&netns::load(
        "warm",
        STEADY_RATE,
        STEADY_CONCURRENCY,
        5,
        STEADY_DEVICES,
    ))?;

    let mut two = Figures::default();
    let mut one = Figures::default();
    let mut running = Edge::Two;
    for (round, edge) in [Edge::Two, Edge::One, Edge::One, Edge::Two]
        .into_iter()
        .enumerate()
    {
        if edge != running {
            switch(&manifest, edge)?;
            running = edge;
        }
        let figures = if edge == Edge::Two {
            &mut two
        } else {
            &mut one
        };
        let tag = format!("{edge:?}-{round}").to_lowercase();
        for (kind, rate, concurrency, devices, into) in [
            (
                "saturated",
                SATURATED_RATE,
                SATURATED_CONCURRENCY,
                SATURATED_DEVICES,
                &mut figures.saturated,
            ),
            (
                "steady",
                STEADY_RATE,
                STEADY_CONCURRENCY,
                STEADY_DEVICES,
                &mut figures.steady,
            ),
        ] {
            let report = netns::run_load(&netns::load(
                &format!("{tag}-{kind}"),
                rate,
                concurrency,
                SECONDS,
                devices,
            ))?;
            trace(&format!(
                "{edge:?} edge host(s), {kind}: {:.1}/s accepted, e2e p50 {:.0} ms p99 {:.0} ms",
                report.accepted_per_second, report.end_to_end_ms.p50, report.end_to_end_ms.p99
            ));
            ensure!(
                report.failed == 0 && report.stored == report.sent,
                "{tag} {kind}: readings lost or stored twice: {report:?}"
            );
            into.push(report);
        }
    }
    drop(down);

    let table = table(&one, &two);
    println!("{table}");
    let out = repo_root().join("target/edge-scaling.md");
    std::fs::write(&out, &table)?;
    eprintln!("written to {}", out.display());
    Ok(())
}

/// Stops edge2's host gracefully (it tells the lattice, and wadm drops it at once), or
/// starts it again; then waits until wadm has shared ingest and api out over the edge
/// hosts that are left.
fn switch(manifest: &wadm_types::Manifest, to: Edge) -> Result<()> {
    let hosts = match to {
        Edge::One => {
            lattice(&["host-stop", "edge2"])?;
            netns::hosts_without("edge2")
        }
        Edge::Two => {
            lattice(&["host-start", "edge2"])?;
            netns::HOSTS.to_vec()
        }
    };
    netns::wait_placed(manifest, &hosts)?;
    netns::wait_deployed()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn table(one: &Figures, two: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| edge hosts | load | offered /s | accepted /s | reply p50 ms | reply p99 ms | end-to-end p50 ms | end-to-end p99 ms |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (name, figures) in [("1", one), ("2", two)] {
        for (kind, rate, reports) in [
            ("saturated", SATURATED_RATE, &figures.saturated),
            ("steady", STEADY_RATE, &figures.steady),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {kind} | {rate} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
                mean(reports.iter().map(|r| r.accepted_per_second)),
                mean(reports.iter().map(|r| r.reply_ms.p50)),
                mean(reports.iter().map(|r| r.reply_ms.p99)),
                mean(reports.iter().map(|r| r.end_to_end_ms.p50)),
                mean(reports.iter().map(|r| r.end_to_end_ms.p99)),
            );
        }
    }
    let ratio = |f: fn(&Report) -> f64, of: fn(&Figures) -> &Vec<Report>| {
        mean(of(two).iter().map(f)) / mean(of(one).iter().map(f))
    };
    let _ = writeln!(
        s,
        "\nTwo edge hosts / one: throughput {:.2}×, saturated end-to-end p50 {:.2}×, \
         steady end-to-end p50 {:.2}× and p99 {:.2}× (each the mean of two runs).",
        ratio(|r| r.accepted_per_second, |f| &f.saturated),
        ratio(|r| r.end_to_end_ms.p50, |f| &f.saturated),
        ratio(|r| r.end_to_end_ms.p50, |f| &f.steady),
        ratio(|r| r.end_to_end_ms.p99, |f| &f.steady),
    );
    s
}
