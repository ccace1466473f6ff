//! A total ingest outage, as a device sees it: `wadm.dev.yaml` is deployed, then
//! redeployed without ingest (and so without the messaging provider's link to it). Devices
//! publish 10,000 readings fire and forget, with no reply to wait for; the stream keeps
//! them. Ingest is deployed again: all 10,000 are stored, each exactly once, and the API
//! shows the counts.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use ingest_domain::api::DeviceDetail;
use neongrid_e2e::pipeline::{self, connect, get_json, reading, runtime};
use neongrid_e2e::{trace, wait_for, Lattice};
use serde_yaml::Value as Yaml;

const MANIFEST: &str = "wadm.dev.yaml";
const DEVICES: usize = 100;
const PER_DEVICE: usize = 100;
const STREAM: &str = "NEONGRID_READINGS";
/// How long the whole backlog may take once ingest is back.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn readings_published_while_ingest_is_undeployed_are_all_stored_once_it_returns() -> Result<()> {
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    let pipeline = pipeline::deploy(lattice, MANIFEST, &["keyvalue-memory.par.gz"], |_| Ok(()))?;
    let rt = runtime()?;
    let nats = rt.block_on(connect(&pipeline.nats_url))?;
    let js = async_nats::jetstream::new(nats.clone());
    let stored_before = rt.block_on(async {
        anyhow::Ok(js.get_stream(STREAM).await?.info().await?.state.messages)
    })?;

    // Ingest undeployed: the same manifest without the component and its handler link.
    let without = lattice.dir().join("wadm.dev.without-ingest.yaml");
    write_without_ingest(&pipeline.manifest_path, &without)?;
    lattice.deploy(&without, &pipeline.app, pipeline::DEPLOY_TIMEOUT)?;
    wait_for("ingest to be gone", Duration::from_secs(120), || {
        let inventory = lattice.wash_json(&["get", "inventory"])?.to_string();
        Ok((!inventory.contains("ingest.wasm")).then_some(()))
    })?;
    trace("ingest undeployed");

    // Fire and forget: no reply subject, no receipt awaited.
    rt.block_on(async {
        for n in 0..PER_DEVICE {
            for d in 0..DEVICES {
                let device = format!("outage-{d}");
                let body = reading(&format!("o-{d}-{n}"), &device, "temperature_c", 20.0);
                nats.publish(
                    format!("neongrid.readings.{device}"),
                    body.to_string().into(),
                )
                .await?;
            }
        }
        nats.flush().await?;
        anyhow::Ok(())
    })?;
    let expected = stored_before + (DEVICES * PER_DEVICE) as u64;
    wait_for(
        "the stream to hold every reading",
        Duration::from_secs(60),
        || {
            let stored = rt.block_on(async {
                anyhow::Ok(js.get_stream(STREAM).await?.info().await?.state.messages)
            })?;
            Ok((stored >= expected).then_some(()))
        },
    )?;
    trace(&format!(
        "{} readings stored in the stream while ingest was away",
        DEVICES * PER_DEVICE
    ));

    // Ingest back: everything is handled, each reading counted once.
    lattice.deploy(
        &pipeline.manifest_path,
        &pipeline.app,
        pipeline::DEPLOY_TIMEOUT,
    )?;
    let started = std::time::Instant::now();
    wait_for(
        "every device's readings to be stored",
        DRAIN_TIMEOUT,
        || {
            for d in 0..DEVICES {
                let detail: Result<DeviceDetail> =
                    get_json(&pipeline, &format!("/api/devices/outage-{d}"));
                match detail {
                    Ok(detail) if detail.count as usize >= PER_DEVICE => {}
                    _ => return Ok(None),
                }
            }
            Ok(Some(()))
        },
    )?;
    trace(&format!(
        "ingest redeployed and the backlog drained {:.1}s after the deploy began",
        started.elapsed().as_secs_f64()
    ));
    for d in 0..DEVICES {
        let detail: DeviceDetail = get_json(&pipeline, &format!("/api/devices/outage-{d}"))?;
        ensure!(
            detail.count as usize == PER_DEVICE,
            "outage-{d}: {} readings stored, expected {PER_DEVICE}",
            detail.count
        );
    }
    Ok(())
}

/// `manifest` without the ingest component and without links that target it.
fn write_without_ingest(manifest: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let mut doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(manifest)?)?;
    let components = doc["spec"]["components"]
        .as_sequence_mut()
        .context("no components")?;
    components.retain(|c| c["name"] != "ingest");
    let mut links_removed = 0;
    for c in components.iter_mut() {
        if let Some(traits) = c.get_mut("traits").and_then(Yaml::as_sequence_mut) {
            let before = traits.len();
            traits.retain(|t| {
                !(t["type"] == "link" && t["properties"]["target"]["name"] == "ingest")
            });
            links_removed += before - traits.len();
        }
    }
    ensure!(
        links_removed == 1,
        "expected one link to ingest, removed {links_removed}"
    );
    std::fs::write(out, serde_yaml::to_string(&doc)?)?;
    Ok(())
}
