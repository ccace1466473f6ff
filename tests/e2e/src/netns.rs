//! Driving the multi-host lattice of `scripts/lattice.sh` (network namespaces; root)
//! from tests and benches: the script itself, wash pointed at that lattice, each host's
//! inventory, and the load generator aimed at the edge hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use neongrid_loadgen::{Config, Report};
use serde_json::Value;

use crate::{repo_root, trace};

pub const SCRIPT: &str = "scripts/lattice.sh";
pub const LATTICE: &str = "neongrid";
/// wash reaches the lattice over the bridge, through the data namespace's NATS server.
pub const CTL_HOST: &str = "10.77.0.13";
pub const EDGE1_NATS: &str = "nats://10.77.0.11:4222";
pub const EDGE2_NATS: &str = "nats://10.77.0.14:4222";
/// The API on edge1, the edge host the tests keep up.
pub const EDGE1_API: &str = "http://10.77.0.11:8000";
/// What points wash at that lattice.
pub const LATTICE_ARGS: [&str; 6] = [
    "--lattice",
    LATTICE,
    "--ctl-host",
    CTL_HOST,
    "--ctl-port",
    "4222",
];
/// The label `lattice.sh` gives each host, with its name.
pub const HOST_LABEL: &str = "neongrid.host";
pub const HOSTS: [&str; 4] = ["edge1", "edge2", "core", "data"];

/// The lattice's hosts but `gone`.
pub fn hosts_without(gone: &str) -> Vec<&'static str> {
    HOSTS.into_iter().filter(|h| *h != gone).collect()
}
pub const STATE_DIR: &str = "/run/neongrid-lattice";

/// Fails unless this process is root, which network namespaces need.
pub fn require_root() -> Result<()> {
    let uid = Command::new("id").arg("-u").output()?.stdout;
    ensure!(
        String::from_utf8_lossy(&uid).trim() == "0",
        "the multi-host lattice needs root, for network namespaces"
    );
    Ok(())
}

/// Runs `scripts/lattice.sh down` when dropped, so a failure leaves nothing behind.
pub struct Down;

/// What `wadm.yaml` needs built, beyond the components.
const PROVIDERS: [&str; 2] = ["keyvalue-redis.par.gz", "keyvalue-postgres.par.gz"];

/// Checks for root and the built artifacts, then `scripts/lattice.sh up`; the lattice
/// goes down again when the returned guard is dropped.
pub fn up() -> Result<Down> {
    require_root()?;
    for artifact in crate::pipeline::COMMON_ARTIFACTS.iter().chain(&PROVIDERS) {
        crate::build_artifact(artifact)?;
    }
    let down = Down;
    lattice(&["up"])?;
    Ok(down)
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lattice(&["down"]);
    }
}

/// Runs `scripts/lattice.sh <args>` (without its build step: the caller has built).
pub fn lattice(args: &[&str]) -> Result<String> {
    trace(&format!("{SCRIPT} {}", args.join(" ")));
    let out = Command::new("timeout")
        .arg("600")
        .arg(SCRIPT)
        .args(args)
        .current_dir(repo_root())
        // Under cargo's environment the script's own build would rebuild everything.
        .env("NEONGRID_LATTICE_NO_BUILD", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {SCRIPT} {}", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "{SCRIPT} {} failed:\n{text}",
        args.join(" ")
    );
    Ok(text)
}

/// `wash <args> --output json` against the lattice.
pub fn wash_json(args: &[&str]) -> Result<Value> {
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

pub fn wash_deploy(manifest: &Path) -> Result<()> {
    let out = Command::new("wash")
        .args(["app", "deploy"])
        .arg(manifest)
        .args(LATTICE_ARGS)
        .current_dir(repo_root())
        .output()?;
    ensure!(
        out.status.success(),
        "wash app deploy {}: {}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits for `wadm.yaml`'s app (named after the lattice) to be Deployed.
pub fn wait_deployed() -> Result<()> {
    wait_app_deployed(LATTICE)
}

pub fn wait_app_deployed(app: &str) -> Result<()> {
    crate::wait_for(
        &format!("{app} to be Deployed"),
        Duration::from_secs(120),
        || {
            let status = wash_json(&["app", "status", app])?;
            Ok((status["status"]["status"]["type"] == "deployed").then_some(()))
        },
    )
}

/// What one host runs, from its inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    /// Component id → (image, max instances).
    pub components: BTreeMap<String, (String, u64)>,
    pub providers: BTreeSet<String>,
}

impl Workload {
    pub fn ids(&self) -> BTreeSet<String> {
        self.components
            .keys()
            .chain(&self.providers)
            .cloned()
            .collect()
    }
}

/// Each host's workload, by its name (its [`HOST_LABEL`]).
pub fn placement() -> Result<BTreeMap<String, Workload>> {
    let inventory = wash_json(&["get", "inventory"])?;
    let mut by_name = BTreeMap::new();
    for inv in inventory["inventories"]
        .as_array()
        .context("no inventories")?
    {
        let labels: BTreeMap<String, String> = serde_json::from_value(inv["labels"].clone())?;
        let name = labels
            .get(HOST_LABEL)
            .with_context(|| format!("host without a {HOST_LABEL} label: {labels:?}"))?
            .clone();
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let workload = Workload {
            host_id: str_of(&inv["host_id"]),
            labels,
            components: inv["components"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let max = c["max_instances"].as_u64().unwrap_or_default();
                    (str_of(&c["id"]), (str_of(&c["image_ref"]), max))
                })
                .collect(),
            providers: inv["providers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| str_of(&p["id"]))
                .collect(),
        };
        by_name.insert(name, workload);
    }
    Ok(by_name)
}

/// What `manifest` puts on each of `hosts` (by name), with component instance counts,
/// as wadm places it: a daemonscaler runs its count on every host whose labels meet the
/// spread; a component spreadscaler shares its count out over those hosts, an equal part
/// each and one more for the first ones in host id order (our patched wadm,
/// third_party/README.md); a provider runs once on each matching host.
pub fn expected_placement(
    manifest: &wadm_types::Manifest,
    hosts: &BTreeMap<String, Workload>,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>> {
    let mut placed: BTreeMap<String, BTreeMap<String, u64>> = hosts
        .keys()
        .map(|name| (name.clone(), BTreeMap::new()))
        .collect();
    for component in manifest.components() {
        let Some((kind, scaler)) =
            component
                .traits
                .iter()
                .flatten()
                .find_map(|t| match &t.properties {
                    wadm_types::TraitProperty::SpreadScaler(s) if t.is_scaler() => {
                        Some((t.trait_type.as_str(), s))
                    }
                    _ => None,
                })
        else {
            continue;
        };
        ensure!(
            scaler.spread.len() <= 1,
            "{}: only a scaler with at most one spread is predicted here",
            component.name
        );
        let fits = |labels: &BTreeMap<String, String>| {
            scaler.spread.iter().all(|spread| {
                spread
                    .requirements
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
        };
        let mut matching: Vec<(&String, &Workload)> =
            hosts.iter().filter(|(_, w)| fits(&w.labels)).collect();
        matching.sort_by(|a, b| a.1.host_id.cmp(&b.1.host_id));
        let id = component_id(&component.name);
        let count = scaler.instances as u64;
        let is_provider = matches!(
            component.properties,
            wadm_types::Properties::Capability { .. }
        );
        ensure!(
            !is_provider
                || kind == wadm_types::DAEMONSCALER_TRAIT
                || matching.len() as u64 <= count,
            "{}: {count} provider(s) for {} matching hosts; which ones run it is wadm's choice",
            component.name,
            matching.len()
        );
        let n = matching.len() as u64;
        for (index, (name, _)) in matching.into_iter().enumerate() {
            let want = if is_provider || kind == wadm_types::DAEMONSCALER_TRAIT {
                count
            } else {
                count / n + u64::from((index as u64) < count % n)
            };
            if want > 0 {
                placed
                    .get_mut(name)
                    .expect("a host of `hosts`")
                    .insert(id.clone(), want);
            }
        }
    }
    Ok(placed)
}

/// Every host runs exactly what `manifest` places on it ([`expected_placement`]), its
/// components at their instance counts.
fn check_placement(
    manifest: &wadm_types::Manifest,
    placed: &BTreeMap<String, Workload>,
) -> Result<()> {
    let expected = expected_placement(manifest, placed)?;
    for (name, workload) in placed {
        let want = &expected[name];
        let ids: BTreeSet<String> = want.keys().cloned().collect();
        ensure!(
            workload.ids() == ids,
            "host {name} runs {:?}, the manifest places {ids:?} there",
            workload.ids()
        );
        for (id, (_, max)) in &workload.components {
            ensure!(
                want[id] == *max,
                "host {name} runs {id} with {max} instances, the manifest says {}",
                want[id]
            );
        }
    }
    Ok(())
}

/// Waits until the lattice's hosts are exactly `hosts` (by name) and each runs what
/// `manifest` places on it, and returns the placement. On a timeout it says what was
/// last wrong.
pub fn wait_placed(
    manifest: &wadm_types::Manifest,
    hosts: &[&str],
) -> Result<BTreeMap<String, Workload>> {
    let want: BTreeSet<&str> = hosts.iter().copied().collect();
    crate::wait_for(
        &format!("hosts {want:?} to run what the manifest places on them"),
        Duration::from_secs(120),
        || {
            let placed = placement()?;
            let names: BTreeSet<&str> = placed.keys().map(String::as_str).collect();
            ensure!(names == want, "the lattice's hosts are {names:?}");
            check_placement(manifest, &placed)?;
            Ok(Some(placed))
        },
    )
}

/// wadm's id for a manifest component: `<app>-<name>`, dashes in the name made `_`.
pub fn component_id(name: &str) -> String {
    format!("{LATTICE}-{}", name.replace('-', "_"))
}

/// The load generator's settings for this lattice: readings through both edge hosts'
/// NATS servers (as devices at two sites), visibility read from edge1's API.
pub fn load(prefix: &str, rate: u32, concurrency: usize, seconds: u64, devices: usize) -> Config {
    Config {
        nats_urls: vec![EDGE1_NATS.into(), EDGE2_NATS.into()],
        api_url: EDGE1_API.into(),
        rate,
        concurrency,
        duration: Duration::from_secs(seconds),
        devices,
        device_prefix: prefix.into(),
        progress: false,
    }
}

/// Runs the load generator on its own runtime.
pub fn run_load(config: &Config) -> Result<Report> {
    crate::pipeline::runtime()?.block_on(neongrid_loadgen::run(config))
}
