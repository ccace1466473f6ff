//! Deploys the key-value conformance component (`tests/kv-conformance-component`) against
//! one key-value provider, from `tests/e2e/manifests/kv-conformance.yaml` with only the
//! provider image and the link's target config swapped. Shared by the lattice conformance
//! test and the key-value bench.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use serde_yaml::Value as Yaml;

use crate::manifest::Manifest;
use crate::{free_port, http, repo_root, wait_for, Lattice};

pub const COMPONENT: &str = "kv-conformance-component.wasm";
const TEMPLATE: &str = "tests/e2e/manifests/kv-conformance.yaml";
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(180);
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the three key-value providers, as `scripts/build.sh` packs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Memory, Backend::Redis, Backend::Postgres];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
        }
    }

    pub fn archive(self) -> String {
        format!("keyvalue-{}.par.gz", self.name())
    }
}

/// A deployed conformance application and the base URL of its HTTP listener.
pub struct Deployed {
    pub app: String,
    pub base: String,
}

impl Deployed {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// `GET path_and_query`, which must answer 200 within `timeout`; the error names the
    /// URL and carries the answer's body.
    pub fn get_ok(&self, path_and_query: &str, timeout: Duration) -> Result<http::Response> {
        let url = self.url(path_and_query);
        let resp = http::get_with_timeout(&url, timeout).with_context(|| format!("GET {url}"))?;
        ensure!(
            resp.status == 200,
            "GET {url} answered {}: {}",
            resp.status,
            resp.body
        );
        Ok(resp)
    }
}

/// The template, renamed to `app`, with `backend`'s provider archive, the key-value link's
/// target config, and `instances` component instances (how many requests it may serve at
/// once); written into the lattice's directory, ready to deploy.
pub fn manifest_for(
    lattice: &Lattice,
    app: &str,
    backend: Backend,
    link_config: &[(&str, String)],
    instances: u32,
    http_port: u16,
) -> Result<PathBuf> {
    let text = std::fs::read_to_string(repo_root().join(TEMPLATE))?;
    let mut doc: Yaml = serde_yaml::from_str(&text)?;
    doc["metadata"]["name"] = Yaml::from(app);
    let components = doc["spec"]["components"]
        .as_sequence_mut()
        .context("template has no spec.components")?;
    let mut swapped = (false, false);
    for c in components.iter_mut() {
        match c["name"].as_str() {
            Some("keyvalue") => {
                c["properties"]["image"] =
                    Yaml::from(format!("file://./build/{}", backend.archive()));
                swapped.0 = true;
            }
            Some("conformance") => {
                let traits = c["traits"]
                    .as_sequence_mut()
                    .context("conformance component has no traits")?;
                for t in traits.iter_mut() {
                    if t["type"] == "spreadscaler" {
                        t["properties"]["instances"] = Yaml::from(instances);
                    }
                }
                if link_config.is_empty() {
                    continue;
                }
                let link = traits
                    .iter_mut()
                    .find(|t| t["type"] == "link")
                    .context("conformance component has no link")?;
                let mut props = serde_yaml::Mapping::new();
                for (k, v) in link_config {
                    props.insert(Yaml::from(*k), Yaml::from(v.as_str()));
                }
                let mut cfg = serde_yaml::Mapping::new();
                cfg.insert("name".into(), Yaml::from(format!("{app}-keyvalue")));
                cfg.insert("properties".into(), Yaml::Mapping(props));
                link["properties"]["target"]["config"] = Yaml::Sequence(vec![Yaml::Mapping(cfg)]);
                swapped.1 = true;
            }
            Some("httpserver") => {
                // Named configs are lattice-wide; one per application.
                let cfg = c
                    .get_mut("traits")
                    .and_then(Yaml::as_sequence_mut)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        t.get_mut("properties")?
                            .get_mut("source")?
                            .get_mut("config")
                    })
                    .filter_map(Yaml::as_sequence_mut)
                    .flatten()
                    .next()
                    .context("http server link has no source config")?;
                cfg["name"] = Yaml::from(format!("{app}-http"));
            }
            _ => {}
        }
    }
    ensure!(swapped.0, "template has no `keyvalue` provider to swap");
    ensure!(
        link_config.is_empty() || swapped.1,
        "template has no key-value link to configure"
    );

    let raw = lattice.dir().join(format!("{app}.template.yaml"));
    std::fs::write(&raw, serde_yaml::to_string(&doc)?)?;
    let mut manifest = Manifest::load(&raw)?;
    manifest
        .absolutize_images(&repo_root())?
        .set_http_address(&format!("127.0.0.1:{http_port}"))?;
    let path = lattice.dir().join(format!("{app}.yaml"));
    manifest.write(&path)?;
    Ok(path)
}

/// Deploys the component against `backend` and waits until one key-value call gets
/// through: Deployed can precede the HTTP listener and the provider's subscriptions.
pub fn deploy(
    lattice: &Lattice,
    app: &str,
    backend: Backend,
    link_config: &[(&str, String)],
    instances: u32,
) -> Result<Deployed> {
    let port = free_port()?;
    let manifest = manifest_for(lattice, app, backend, link_config, instances, port)?;
    deploy_manifest(lattice, app, &manifest, port)
}

/// Deploys a manifest that [`manifest_for`] wrote (and the caller may have changed), whose
/// HTTP listener is on `http_port`, and waits until one key-value call gets through.
pub fn deploy_manifest(
    lattice: &Lattice,
    app: &str,
    manifest: &std::path::Path,
    http_port: u16,
) -> Result<Deployed> {
    lattice.deploy(manifest, app, DEPLOY_TIMEOUT)?;
    let base = format!("http://127.0.0.1:{http_port}");
    wait_for("GET /ready to answer 200", Duration::from_secs(90), || {
        let r = http::get_with_timeout(&format!("{base}/ready"), READY_TIMEOUT)?;
        ensure!(r.status == 200, "{} {}", r.status, r.body);
        Ok(Some(()))
    })
    .map_err(|e| anyhow!("{e:#}\n{}", lattice.logs()))?;
    Ok(Deployed {
        app: app.to_string(),
        base,
    })
}

/// Undeploys and deletes the application and waits until its workloads left the host, so
/// that the next application starts from a clean host.
pub fn undeploy(lattice: &Lattice, app: &str) -> Result<()> {
    lattice.wash(&["app", "undeploy", app])?;
    lattice.wash(&["app", "delete", app])?;
    wait_for(
        &format!("{app}'s workloads to leave the host"),
        Duration::from_secs(60),
        || {
            let inventory = lattice.wash_json(&["get", "inventory"])?.to_string();
            Ok((!inventory.contains(COMPONENT) && !inventory.contains(".par.gz")).then_some(()))
        },
    )
}
