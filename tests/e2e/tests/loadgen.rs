//! The load generator against a real pipeline: `wadm.dev.yaml` deployed, a few seconds
//! of readings at a fixed rate, and its report checked against the API.

use std::time::Duration;

use anyhow::{ensure, Result};
use ingest_domain::api::DeviceList;
use neongrid_e2e::pipeline::{self, get_json, runtime};
use neongrid_e2e::{trace, Lattice};
use neongrid_loadgen::{run, Config};

const RATE: u32 = 100;
const SECONDS: u64 = 3;
const DEVICES: usize = 4;

#[test]
fn loadgen_reports_what_the_api_stores() -> Result<()> {
    Lattice::run_test(&[], |lattice| {
        let deployed = pipeline::deploy(
            lattice,
            "wadm.dev.yaml",
            &["keyvalue-memory.par.gz"],
            |_| Ok(()),
        )?;
        let config = Config {
            nats_urls: vec![deployed.nats_url.clone()],
            api_url: deployed.base.clone(),
            rate: RATE,
            concurrency: 16,
            duration: Duration::from_secs(SECONDS),
            devices: DEVICES,
            device_prefix: "lg-test".into(),
            progress: false,
        };
        let report = runtime()?.block_on(run(&config))?;
        trace(&format!(
            "loadgen report: {}",
            serde_json::to_string(&report)?
        ));

        // Everything sent was answered, stored once and seen in the API.
        let expected = u64::from(RATE) * SECONDS;
        ensure!(
            report.sent >= expected * 8 / 10 && report.sent <= expected + 1,
            "sent {} readings in {SECONDS}s at {RATE}/s",
            report.sent
        );
        ensure!(
            report.failed == 0
                && report.rejected == 0
                && report.accepted + report.duplicates + report.receipts == report.sent
                && report.visible == report.sent
                && report.stored == report.accepted + report.receipts,
            "report: {report:?}"
        );
        ensure!(
            report.reply_ms.count as u64 == report.sent
                && report.end_to_end_ms.count as u64 == report.sent
                && report.end_to_end_ms.p50 > 0.0
                && report.end_to_end_ms.p99 >= report.end_to_end_ms.p50,
            "latencies: {report:?}"
        );
        let list: DeviceList = get_json(&deployed, "/api/devices")?;
        let stored: u64 = list
            .devices
            .iter()
            .filter(|d| d.device.as_str().starts_with("lg-test-"))
            .map(|d| d.count)
            .sum();
        ensure!(
            stored == report.accepted,
            "the API stores {stored} readings of the run, the report says {} accepted",
            report.accepted
        );
        Ok(())
    })
}
