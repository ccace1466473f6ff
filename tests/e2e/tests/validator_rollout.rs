//! A new validator rolls out by manifest alone while readings flow, and no reading is
//! lost: `wadm.dev.yaml` is deployed, publishers send readings without pause, and the
//! application is redeployed with only the validator's image (a new artifact) and rules
//! changed. Ingest is untouched. Publishers treat a reading as delivered once ingest
//! answers for it; one that is not answered is sent again with the same id
//! (at-least-once), which ingest's idempotency makes safe. Afterwards the API must
//! hold every reading exactly once, and the new rules must be the ones in force.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use ingest_domain::api::{DeviceDetail, History};
use ingest_domain::MAX_HISTORY_LIMIT;
use neongrid_e2e::pipeline::{self, connect, get_json, reading, runtime};
use neongrid_e2e::{build_artifact, trace, wait_for, Lattice};
use validation_rules::METRICS_KEY;

const MANIFEST: &str = "wadm.dev.yaml";
const PUBLISHERS: usize = 4;
const DEVICE: &str = "roll-1";
/// Readings flow this long before the rollout starts, and again after it completed.
const STEADY: Duration = Duration::from_secs(3);
/// The rule the new validator version brings: a metric the old rules reject.
const NEW_METRIC: &str = "pressure_hpa";
const NEW_RULE: (&str, &str) = ("metric.pressure_hpa", "valid=800..1100;alert=950..1050");
/// How long the last readings may take to be stored after the publishers stop: the
/// backoff of a message delivered again (wadm.dev.yaml: 0.5, 2, 5 s), twice.
const SETTLE: Duration = Duration::from_secs(30);
/// The validator's config in `wadm.dev.yaml`.
const RULES_CONFIG: &str = "neongrid-validation-rules";

/// The custom section that marks the new artifact's version.
const VERSION_SECTION: &str = "neongrid-validator-version";

#[test]
fn validator_rolls_out_by_manifest_while_readings_flow() -> Result<()> {
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    let mut deployed =
        pipeline::deploy(lattice, MANIFEST, &["keyvalue-memory.par.gz"], |_| Ok(()))?;
    let rt = runtime()?;

    // Before: the old rules reject the new metric.
    let nats = rt.block_on(connect(&deployed.nats_url))?;
    let before = rt.block_on(pipeline::request(
        &nats,
        "neongrid.readings.roll-2",
        &reading("p-before", "roll-2", "pressure_hpa", 1000.0),
    ))?;
    ensure!(
        before.counts() == (0, 1, 0, 0) && before.rejections[0].code == "unknown_metric",
        "the old validator should reject pressure_hpa: {before:?}"
    );
    let old_image = validator_image(lattice)?;

    // The new version: a distinct artifact (the build stamped with a version section, so
    // its digest differs) and new rules, both in the manifest only.
    let v2 = lattice.dir().join("validator-v2.wasm");
    std::fs::write(
        &v2,
        stamped(&std::fs::read(build_artifact("validator.wasm")?)?, "2"),
    )?;
    let v2_image = format!("file://{}", v2.display());
    let metrics =
        deployed
            .manifest
            .component_config_value("validator", RULES_CONFIG, METRICS_KEY)?;
    deployed
        .manifest
        .set_image("validator", &v2_image)?
        .set_component_config("validator", RULES_CONFIG, NEW_RULE.0, NEW_RULE.1)?
        .set_component_config(
            "validator",
            RULES_CONFIG,
            METRICS_KEY,
            &format!("{metrics},{NEW_METRIC}"),
        )?;
    let v2_manifest = lattice.dir().join("wadm.dev.v2.yaml");
    deployed.manifest.write(&v2_manifest)?;

    // Readings flow throughout.
    let publishers = pipeline::Publishers::start(&rt, &nats, DEVICE, "roll", PUBLISHERS);
    std::thread::sleep(STEADY);
    trace("rolling out the new validator");
    lattice.wash(&["app", "deploy", &v2_manifest.display().to_string()])?;
    wait_for(
        "the new validator to replace the old one",
        Duration::from_secs(120),
        || Ok((validator_image(lattice)? == v2_image).then_some(())),
    )?;
    lattice.wait_deployed(&deployed.app, pipeline::DEPLOY_TIMEOUT)?;
    trace("new validator in place");
    std::thread::sleep(STEADY);
    let (sent, retried) = publishers.finish(&rt)?;
    trace(&format!(
        "{sent} readings sent across the rollout ({retried} sent again after no answer); \
         validator {old_image} -> {v2_image}"
    ));
    ensure!(old_image != v2_image, "the validator image did not change");
    ensure!(
        sent > 20,
        "only {sent} readings flowed; the test proves nothing"
    );

    // Every reading stored exactly once: counted, and archived under consecutive
    // numbers with distinct ids (the newest 1000, the most one history query returns).
    // A reading the stream took may still wait behind one being delivered again.
    let detail = wait_for(
        &format!("the API to count the {sent} readings sent across the rollout"),
        SETTLE,
        || {
            let detail: DeviceDetail = get_json(&deployed, &format!("/api/devices/{DEVICE}"))?;
            Ok((detail.count >= sent as u64).then_some(detail))
        },
    )?;
    let shown = sent.min(MAX_HISTORY_LIMIT);
    let history: History = get_json(
        &deployed,
        &format!("/api/devices/{DEVICE}/history?limit={shown}"),
    )?;
    let seqs: Vec<u64> = history.readings.iter().map(|e| e.seq).collect();
    let mut ids: Vec<String> = history
        .readings
        .iter()
        .map(|e| e.reading.id().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ensure!(
        detail.count == sent as u64
            && ids.len() == shown
            && seqs
                == (sent as u64 - shown as u64 + 1..=sent as u64)
                    .rev()
                    .collect::<Vec<_>>(),
        "{sent} readings sent, the API counts {} and archived {} ({} distinct ids) of the \
         newest {shown}",
        detail.count,
        history.readings.len(),
        ids.len()
    );

    // After: the new rules are in force, with ingest untouched.
    let after = rt.block_on(pipeline::request(
        &nats,
        "neongrid.readings.roll-2",
        &reading("p-after", "roll-2", "pressure_hpa", 1000.0),
    ))?;
    ensure!(
        after.counts() == (1, 0, 0, 0),
        "the new validator should accept pressure_hpa: {after:?}"
    );

    // What at-least-once delivery covered: a message whose validator call was cut off by
    // the swap traps ingest (the `validation` interface has no error case, so a failed
    // call can't be answered as a retryable rejection), or its call hangs until a timeout.
    // The JetStream provider delivers such a message again by itself after the backoff,
    // and logs why; with the builtin provider the publisher gets no answer and sends it
    // again. Either way it is stored then, as the counts above showed. So is a message
    // the validator could not judge while its config was being replaced, which ingest
    // reports as its handler's error. Any other failure fails the test.
    let failures = pipeline::host_log_failures(lattice, &deployed);
    let log = lattice.log("wasmcloud.log");
    let cut_off = log.matches("validation13validate_many").count();
    let redeliveries: Vec<&str> = log
        .get(deployed.log_start..)
        .unwrap_or(&log)
        .lines()
        .filter(|line| line.contains("handler failed; delivering again after the backoff"))
        .collect();
    trace(&format!(
        "{} handler calls failed during the swap, {cut_off} of them in validate-many; \
         {} delivered again by the messaging provider",
        failures.len(),
        redeliveries.len()
    ));
    let unexplained_redeliveries: Vec<&&str> = redeliveries
        .iter()
        .filter(|line| {
            !(line.contains("failed to invoke `wasmcloud:messaging/handler")
                || line.contains("the handler did not answer within")
                || line.contains("could not be judged or stored yet"))
        })
        .collect();
    ensure!(
        failures
            .iter()
            .all(|line| line.contains("failed to call component"))
            && failures.len() <= cut_off
            && unexplained_redeliveries.is_empty()
            && cut_off <= retried + redeliveries.len(),
        "unexpected component failures ({cut_off} validator calls cut off, {retried} readings \
         sent again, {} delivered again by the provider):\n{}\n{}",
        redeliveries.len(),
        failures.join("\n"),
        redeliveries.join("\n")
    );
    Ok(())
}

/// The image the host runs for the validator component.
fn validator_image(lattice: &Lattice) -> Result<String> {
    let inventory = lattice.wash_json(&["get", "inventory"])?;
    let components = inventory["inventories"][0]["components"]
        .as_array()
        .context("no components in inventory")?;
    let images: Vec<&str> = components
        .iter()
        .filter(|c| {
            c["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("-validator"))
        })
        .filter_map(|c| c["image_ref"].as_str())
        .collect();
    match images.as_slice() {
        [image] => Ok(image.to_string()),
        other => Err(anyhow!("expected one validator, found {other:?}")),
    }
}

/// `component` with a custom section naming its version appended. Custom sections may
/// appear anywhere in a component and do not change what it does.
fn stamped(component: &[u8], version: &str) -> Vec<u8> {
    let mut payload = leb128(VERSION_SECTION.len());
    payload.extend_from_slice(VERSION_SECTION.as_bytes());
    payload.extend_from_slice(version.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.extend(leb128(payload.len()));
    out.extend(payload);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}
