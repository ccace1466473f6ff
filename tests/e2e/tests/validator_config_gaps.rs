//! The validator's config is deleted, then put back whole, then with a rule missing, then
//! whole again, while readings flow: the states a rollout passes through when wadm deletes
//! the old version's config and puts the new one's, in no fixed order (the host serves a
//! deleted config as an empty one). Forced here by writing the config by hand, which wadm
//! leaves alone when the manifest names it without properties. No reading may be refused
//! for good in between: the validator answers `misconfigured` (retryable), ingest reports
//! that as its handler's error so the stream delivers the message again, and each reading
//! is taken once the config is whole, exactly once.

use std::time::Duration;

use anyhow::{ensure, Result};
use ingest_domain::api::DeviceDetail;
use neongrid_e2e::pipeline::{self, connect, get_json, runtime};
use neongrid_e2e::{trace, wait_for, Lattice};

const MANIFEST: &str = "wadm.dev.yaml";
/// The validator's config in `wadm.dev.yaml`.
const RULES_CONFIG: &str = "neongrid-validation-rules";
const PUBLISHERS: usize = 4;
const DEVICE: &str = "gap-1";
/// Readings flow this long before the first gap and after the last.
const STEADY: Duration = Duration::from_secs(3);
/// How long each state of the config lasts while readings flow: shorter than a
/// publisher's resends of one reading (`pipeline::publish_until`) last.
const GAP: Duration = Duration::from_millis(1500);
/// How long the last readings may take to be stored after the publishers stop: the
/// backoff of a message redelivered after the gaps (wadm.dev.yaml: 0.5, 2, 5 s), twice.
const SETTLE: Duration = Duration::from_secs(30);

#[test]
fn validator_config_replaced_while_readings_flow_loses_no_reading() -> Result<()> {
    Lattice::run_test(&[], run_config_gaps)
}

fn run_config_gaps(lattice: &Lattice) -> Result<()> {
    let mut whole = Vec::new();
    let deployed = pipeline::deploy(lattice, MANIFEST, &["keyvalue-memory.par.gz"], |m| {
        whole = m.take_component_config("validator", RULES_CONFIG)?;
        config_put(lattice, &whole)
    })?;
    let rt = runtime()?;
    let nats = rt.block_on(connect(&deployed.nats_url))?;
    let rule_of_published = "metric.temperature_c";
    ensure!(
        whole.iter().any(|(k, _)| k == rule_of_published),
        "the manifest's rules lack {rule_of_published}, which the publishers send"
    );
    // The config with the publishers' rule missing, but still listed: a partial write.
    let partial: Vec<(String, String)> = whole
        .iter()
        .filter(|(k, _)| k != rule_of_published)
        .cloned()
        .collect();

    let publishers = pipeline::Publishers::start(&rt, &nats, DEVICE, "gap", PUBLISHERS);
    std::thread::sleep(STEADY);
    // Each broken state is short enough for a publisher's bounded resends to outlast it,
    // with the whole config in between.
    trace("deleting the validator's config");
    lattice.wash(&["config", "del", RULES_CONFIG])?;
    std::thread::sleep(GAP);
    trace("putting the whole config back");
    config_put(lattice, &whole)?;
    std::thread::sleep(GAP);
    trace("putting the config back without the publishers' rule");
    config_put(lattice, &partial)?;
    std::thread::sleep(GAP);
    trace("putting the whole config back");
    config_put(lattice, &whole)?;
    std::thread::sleep(STEADY);
    let (sent, retried) = publishers.finish(&rt)?;
    trace(&format!(
        "{sent} readings sent across the config gaps, {retried} sent again"
    ));
    // A refused reading holds its device's queue while the stream delivers it again, so
    // the publishers behind it wait rather than resend: one resend shows a gap was hit.
    ensure!(
        retried >= 1,
        "no reading was sent again: the gaps should have refused the readings in flight"
    );
    // A reading the stream took may still wait behind one being redelivered.
    wait_for(
        &format!("the API to count the {sent} readings sent across the gaps"),
        SETTLE,
        || {
            let detail: DeviceDetail = get_json(&deployed, &format!("/api/devices/{DEVICE}"))?;
            ensure!(
                detail.count <= sent as u64,
                "{sent} readings sent across the gaps, the API counts {}",
                detail.count
            );
            Ok((detail.count == sent as u64).then_some(()))
        },
    )
}

/// Writes the validator's config by hand, as `wash config put NAME k=v ...`.
fn config_put(lattice: &Lattice, pairs: &[(String, String)]) -> Result<()> {
    let assignments: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["config", "put", RULES_CONFIG];
    args.extend(assignments.iter().map(String::as_str));
    lattice.wash(&args).map(drop)
}
