//! A link put while its provider is still starting reaches the provider, and a call on a
//! link the provider does not know never reaches a store the link did not configure.
//!
//! The race, forced: the Redis provider is packed behind a wrapper that waits
//! [`START_DELAY`] before it runs the real binary, as a provider on a slow machine takes
//! long to subscribe. The application is deployed first without its key-value link; as
//! soon as the host lists the provider (it has started the process and taken the links of
//! the start-up data, none), the manifest's next version adds the link and a second
//! component instance, so wadm puts the link as the component scales, while nobody
//! listens for it yet. The stock host published that put once, to nobody,
//! and never again: the component's calls then failed for good (or, before the adapter
//! refused unknown links, went to the provider-wide default store). With the host patch
//! (third_party/wasmcloud-host-0.27.1.link-puts.diff) the put is delivered once the provider
//! subscribed, and a witness written through the component lands in the test's Redis.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use neongrid_e2e::kv::{self, Backend};
use neongrid_e2e::manifest::Manifest;
use neongrid_e2e::{
    build_artifact, free_port, http, run_tool, trace, wait_for, wrapped_provider_archive, Lattice,
};
use serde_yaml::Value as Yaml;
use test_servers::{RedisServer, TestServer};

/// How long the wrapped provider waits before it starts: far longer than the test needs
/// to see the provider listed and deploy the link, even on a slow, loaded machine.
const START_DELAY: Duration = Duration::from_secs(8);
/// The provider in the application, as `tests/e2e/manifests/kv-conformance.yaml` names it.
const PROVIDER: &str = "keyvalue";
/// The Redis provider's key layout (providers/README.md, "Where the data lives").
const REDIS_PREFIX: &str = "neongrid:kv:";
const WITNESS_BUCKET: &str = "kvc-link-race";
/// What the host logs when it delivered a link put only after the provider subscribed.
const LATE_DELIVERY: &str = "provider link put delivered once the provider subscribed";
/// The wrapped provider's name, which the host's cache path and inventory carry.
const SLOW_NAME: &str = "keyvalue_redis_slow_start";

#[test]
fn a_link_put_while_the_provider_starts_reaches_it() -> Result<()> {
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    build_artifact(kv::COMPONENT)?;
    build_artifact(&Backend::Redis.archive())?;
    let mut redis = RedisServer::start()?;
    // The host clears the provider's environment, PATH included: absolute paths only.
    let slow = wrapped_provider_archive(lattice, "keyvalue-redis", SLOW_NAME, |binary| {
        format!(
            "/bin/sleep {}\nexec '{}' \"$@\"",
            START_DELAY.as_secs(),
            binary.display()
        )
    })?;
    let app = "kvc-link-race";
    let port = free_port()?;

    // Version 2: the link to the test's Redis, and a second component instance. Version 1:
    // one instance and no link. wadm puts a link when the provider's health check passes
    // (the host's first check comes 5 s after the start, too early for this provider, the
    // next 30 s later) or when the component scales: the second instance is what makes
    // wadm put the link while the provider still waits.
    let with_link = kv::manifest_for(
        lattice,
        app,
        Backend::Redis,
        &[("url", redis.url())],
        2,
        port,
    )?;
    let mut v2 = Manifest::load(&with_link)?;
    v2.set_image(PROVIDER, &format!("file://{}", slow.display()))?;
    v2.write(&with_link)?;
    let without_link = lattice.dir().join(format!("{app}.v1.yaml"));
    write_without_keyvalue_link(&with_link, &without_link)?;

    // The link's config exists before the link, so that the host takes the link at once
    // (it refuses a link whose config is missing, and wadm would try again only later).
    let url = format!("url={}", redis.url());
    lattice.wash(&["config", "put", &format!("{app}-keyvalue"), &url])?;
    lattice.wash(&["app", "deploy", &without_link.display().to_string()])?;
    let started = wait_for(
        "the host to list the wrapped provider",
        Duration::from_secs(60),
        || {
            let inventory = lattice.wash_json(&["get", "inventory"])?.to_string();
            Ok(inventory.contains(SLOW_NAME).then(Instant::now))
        },
    )?;
    lattice.wash(&["app", "deploy", &with_link.display().to_string()])?;
    let link_deployed = started.elapsed();
    trace(&format!(
        "link deployed {link_deployed:?} after the provider was listed; it subscribes after {START_DELAY:?}"
    ));
    ensure!(
        link_deployed < START_DELAY,
        "the link went out {link_deployed:?} after the provider started, later than its \
         {START_DELAY:?} delay: the race was not forced"
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("GET /ready to answer 200", Duration::from_secs(90), || {
        let r = http::get_with_timeout(&format!("{base}/ready"), Duration::from_secs(10))?;
        trace(&format!("/ready: {} {}", r.status, r.body));
        Ok((r.status == 200).then_some(()))
    })
    .map_err(|e| anyhow!("{e:#}\n{}", lattice.logs()))?;

    // The witness: written through the component, found in the test's own Redis.
    let r = http::get_with_timeout(
        &format!("{base}/probe?bucket={WITNESS_BUCKET}"),
        Duration::from_secs(30),
    )?;
    ensure!(r.status == 200, "probe: {} {}", r.status, r.body);
    let count = r.json()?["count"].as_u64().context("no count")?;
    let key = format!("{REDIS_PREFIX}{WITNESS_BUCKET}:probe/count");
    let stored = run_tool(
        Command::new("redis-cli").args(["-u", &redis.url(), "--raw", "GET", &key]),
        "redis-cli",
    )?;
    ensure!(
        stored.trim() == count.to_string(),
        "the witness {key} should hold {count} in the test's Redis, found {stored:?}"
    );
    ensure!(
        lattice.log("wasmcloud.log").contains(LATE_DELIVERY),
        "the host never logged {LATE_DELIVERY:?}: the link was not put while the provider started"
    );

    kv::undeploy(lattice, app)?;
    redis.stop()?;
    Ok(())
}

/// A provider archive whose binary waits [`START_DELAY`], then runs the real `provider`
/// binary that `scripts/build.sh` built, with the host data on its standard input.
/// `manifest` without the component's key-value link, and with one component instance:
/// the application's first version.
fn write_without_keyvalue_link(manifest: &Path, out: &Path) -> Result<()> {
    let mut doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(manifest)?)?;
    let component = doc["spec"]["components"]
        .as_sequence_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["name"] == "conformance"))
        .context("no conformance component")?;
    let traits = component["traits"]
        .as_sequence_mut()
        .context("conformance component has no traits")?;
    let before = traits.len();
    traits.retain(|t| t["type"] != "link");
    ensure!(traits.len() + 1 == before, "expected one key-value link");
    let spread = traits
        .iter_mut()
        .find(|t| t["type"] == "spreadscaler")
        .context("conformance component has no spreadscaler")?;
    spread["properties"]["instances"] = Yaml::from(1);
    std::fs::write(out, serde_yaml::to_string(&doc)?)?;
    Ok(())
}
