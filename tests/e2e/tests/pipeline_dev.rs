//! The development manifest end to end: `wadm.dev.yaml` deployed through wadm on one plain
//! host, with both key-value links on in-memory providers, then driven over NATS and HTTP
//! (the checks of `neongrid_e2e::pipeline`), looked at in headless Chromium, and torn
//! down without leaving a process behind.

use anyhow::{ensure, Context, Result};
use ingest_domain::api::{DeviceDetail, DeviceList};
use neongrid_e2e::pipeline::{self, get_json};
use neongrid_e2e::{browser, repo_root, trace, Lattice};

const MANIFEST: &str = "wadm.dev.yaml";

#[test]
fn dev_manifest_runs_the_pipeline_on_memory() -> Result<()> {
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    let pipeline = pipeline::deploy(lattice, MANIFEST, &["keyvalue-memory.par.gz"], |_| Ok(()))?;

    // Everything on the one host, as wadm placed it: three components, two memory
    // providers and the two builtin ones.
    let inventory = lattice.wash_json(&["get", "inventory"])?;
    let text = inventory.to_string();
    for expected in [
        "ingest.wasm",
        "validator.wasm",
        "api.wasm",
        "keyvalue-memory.par.gz",
    ] {
        ensure!(
            text.contains(expected),
            "{expected} not in inventory: {text}"
        );
    }
    let providers = inventory["inventories"][0]["providers"]
        .as_array()
        .context("no providers in inventory")?;
    let memory = providers
        .iter()
        .filter(|p| {
            p["image_ref"]
                .as_str()
                .is_some_and(|i| i.ends_with("keyvalue-memory.par.gz"))
        })
        .count();
    ensure!(
        memory == 2,
        "expected the hot and archive memory providers: {providers:?}"
    );

    pipeline::exercise(lattice, &pipeline)?;
    readings_went_through_the_stream(&pipeline)?;
    dashboard(&pipeline)
}

/// The JetStream provider fed ingest: every reading the checks sent was stored in the
/// stream, and none is left unacknowledged.
fn readings_went_through_the_stream(pipeline: &pipeline::Pipeline) -> Result<()> {
    let rt = pipeline::runtime()?;
    let js = async_nats::jetstream::new(rt.block_on(pipeline::connect(&pipeline.nats_url))?);
    let mut stream = rt.block_on(js.get_stream("NEONGRID_READINGS"))?;
    let stored = rt.block_on(stream.info())?.state.messages;
    ensure!(stored > 1000, "the stream holds only {stored} messages");
    let mut parts = rt.block_on(js.get_stream("NEONGRID_READINGS_PARTS"))?;
    let left = rt.block_on(parts.info())?.state.messages;
    ensure!(left == 0, "{left} messages are still waiting for ingest");
    trace(&format!(
        "{stored} messages went through the stream, none left"
    ));
    Ok(())
}

/// The dashboard in headless Chromium shows what the API says.
fn dashboard(pipeline: &pipeline::Pipeline) -> Result<()> {
    let list: DeviceList = get_json(pipeline, "/api/devices")?;
    let screenshot = repo_root().join("target/e2e/dashboard.png");
    std::fs::create_dir_all(screenshot.parent().unwrap())?;
    let view = browser::load_dashboard(&pipeline.url("/"), &screenshot, list.devices.len())?;
    trace(&format!(
        "dashboard: {} devices after {} refreshes, screenshot {}",
        view.devices.len(),
        view.refreshes,
        screenshot.display()
    ));
    ensure!(
        view.console_errors.is_empty() && view.status.is_empty(),
        "the page reports errors: {:?} {:?}",
        view.status,
        view.console_errors
    );
    ensure!(
        view.devices.len() == list.devices.len(),
        "the page shows {} devices, the API lists {}",
        view.devices.len(),
        list.devices.len()
    );
    for shown in &view.devices {
        let detail: DeviceDetail = get_json(pipeline, &format!("/api/devices/{}", shown.device))?;
        ensure!(
            shown.count == detail.count,
            "{}: the page shows count {}, the API {}",
            shown.device,
            shown.count,
            detail.count
        );
        let metrics: Vec<&str> = shown.metrics.iter().map(|m| m.metric.as_str()).collect();
        let expected: Vec<&str> = detail.metrics.keys().map(String::as_str).collect();
        let (mut sorted, mut want) = (metrics.clone(), expected.clone());
        sorted.sort_unstable();
        want.sort_unstable();
        ensure!(
            sorted == want,
            "{}: metrics {metrics:?}, API {expected:?}",
            shown.device
        );
        for metric in &shown.metrics {
            let latest = detail.metrics[&metric.metric]
                .latest
                .as_ref()
                .map(|r| r.value().to_string())
                .unwrap_or_default();
            ensure!(
                metric.latest == latest,
                "{} {}: the page shows latest {:?}, the API {latest:?}",
                shown.device,
                metric.metric,
                metric.latest
            );
            ensure!(
                metric.chart_points >= 1,
                "{} {}: empty chart",
                shown.device,
                metric.metric
            );
        }
    }
    let size = std::fs::metadata(&screenshot)?.len();
    ensure!(size > 10_000, "screenshot is only {size} bytes");
    Ok(())
}
