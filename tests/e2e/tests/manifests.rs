//! Every committed manifest passes wash's own validation, with no warnings; and the
//! application and development manifests differ only where a deployment may.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::manifest::wadm_manifest;
use neongrid_e2e::repo_root;
use serde_json::Value;

const MANIFESTS: &[&str] = &[
    "wadm.yaml",
    "wadm.dev.yaml",
    "tests/e2e/manifests/kv-conformance.yaml",
];

#[test]
fn manifests_pass_wash_app_validate() -> Result<()> {
    for name in MANIFESTS {
        let out = Command::new("wash")
            .args(["app", "validate", name, "--output", "json"])
            .current_dir(repo_root())
            .output()
            .context("running wash (is it on PATH? run scripts/setup.sh)")?;
        let report: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("wash printed no JSON for {name}: {out:?}"))?;
        ensure!(
            out.status.success() && report["valid"] == true,
            "{name} is invalid: {report}"
        );
        ensure!(
            report["warnings"].as_array().is_some_and(Vec::is_empty),
            "{name} has warnings: {report}"
        );
    }
    Ok(())
}

/// The application manifest and the development one, as wadm reads them.
const APPLICATION: &str = "wadm.yaml";
const DEVELOPMENT: &str = "wadm.dev.yaml";

/// The capability providers that wadm.yaml puts on Redis and Postgres and wadm.dev.yaml on
/// the in-memory provider: the only components whose image and config may differ.
const SWAPPED_PROVIDERS: &[&str] = &["hot-store", "archive-store"];

fn parse(name: &str) -> Result<wadm_types::Manifest> {
    wadm_manifest(&repo_root().join(name))
}

/// The HTTP server's link config, whose listen address is a deployment's choice: loopback
/// on a developer's machine, every address of an edge host in production.
const HTTP_CONFIG: &str = "neongrid-http";
const HTTP_ADDRESS_KEY: &str = "address";

/// What remains of a manifest once the things a deployment may change are removed:
/// provider images, provider config, placement (scaler spreads, and whether a scaler
/// shares its count out over the matching hosts or runs it on each) and the HTTP listen
/// address. Swapping databases must leave every component, link, link name,
/// configuration name and instance count as it is.
fn without_deployment_choices(mut manifest: wadm_types::Manifest) -> wadm_types::Manifest {
    use wadm_types::{Properties, TraitProperty};
    for component in &mut manifest.spec.components {
        if let Properties::Capability { properties } = &mut component.properties {
            if SWAPPED_PROVIDERS.contains(&component.name.as_str()) {
                properties.image = None;
                properties.config.clear();
            }
        }
        for t in component.traits.iter_mut().flatten() {
            match &mut t.properties {
                TraitProperty::SpreadScaler(scaler) => {
                    scaler.spread.clear();
                    t.trait_type = wadm_types::SPREADSCALER_TRAIT.to_owned();
                }
                TraitProperty::Link(link) => {
                    let configs = link.source.iter_mut().flat_map(|s| s.config.iter_mut());
                    for config in configs.filter(|c| c.name == HTTP_CONFIG) {
                        config.properties.iter_mut().flatten().for_each(|(k, v)| {
                            if k == HTTP_ADDRESS_KEY {
                                v.clear();
                            }
                        });
                    }
                }
                _ => {}
            }
        }
    }
    manifest
}

#[test]
fn application_and_development_manifests_differ_only_in_providers_and_placement() -> Result<()> {
    let application = parse(APPLICATION)?;
    let development = parse(DEVELOPMENT)?;
    ensure!(
        application != development,
        "the manifests are identical; expected them to differ in the key-value providers"
    );
    let (a, d) = (
        without_deployment_choices(application.clone()),
        without_deployment_choices(development.clone()),
    );
    // Component by component, for a readable failure.
    ensure!(
        a.spec.components.len() == d.spec.components.len(),
        "{APPLICATION} has {} components, {DEVELOPMENT} {}",
        a.spec.components.len(),
        d.spec.components.len()
    );
    for (ca, cd) in a.spec.components.iter().zip(&d.spec.components) {
        ensure!(
            ca == cd,
            "component {} differs beyond provider image, provider config and placement:\n\
             {APPLICATION}: {ca:?}\n{DEVELOPMENT}: {cd:?}",
            ca.name
        );
    }
    ensure!(a == d, "the manifests differ outside spec.components");

    // And the differences are the intended ones: real databases and labelled hosts in
    // the application, the memory provider on any host in development.
    let image = |m: &wadm_types::Manifest, name: &str| {
        m.capability_providers()
            .find(|c| c.name == name)
            .and_then(|c| match &c.properties {
                wadm_types::Properties::Capability { properties } => properties.image.clone(),
                _ => None,
            })
            .unwrap_or_default()
    };
    for (name, backend) in [("hot-store", "redis"), ("archive-store", "postgres")] {
        ensure!(
            image(&application, name).ends_with(&format!("keyvalue-{backend}.par.gz")),
            "{APPLICATION}'s {name} should be the {backend} provider"
        );
        ensure!(
            image(&development, name).ends_with("keyvalue-memory.par.gz"),
            "{DEVELOPMENT}'s {name} should be the memory provider"
        );
    }
    let spreads = |m: &wadm_types::Manifest| {
        m.components()
            .flat_map(|c| c.traits.iter().flatten())
            .filter_map(|t| match &t.properties {
                wadm_types::TraitProperty::SpreadScaler(s) => Some(s.spread.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    ensure!(
        spreads(&development).iter().all(|&n| n == 0),
        "{DEVELOPMENT} must run on one unlabelled host: no spread requirements"
    );
    ensure!(
        spreads(&application).iter().all(|&n| n == 1),
        "every scaler in {APPLICATION} should place by one role label"
    );
    Ok(())
}

/// Each role in wadm.yaml is one label, and the components sit where the manifest's
/// header says: ingest and api shared out over the edge hosts (a spreadscaler, so that
/// edge hosts scale out), the builtin providers on every edge host (a daemonscaler), the
/// validator on core, the key-value providers on data.
#[test]
fn application_manifest_places_each_role_by_its_label() -> Result<()> {
    use wadm_types::{DAEMONSCALER_TRAIT as EVERY_HOST, SPREADSCALER_TRAIT as SHARED};
    let application = parse(APPLICATION)?;
    let expected = [
        ("ingest", "neongrid.edge", SHARED),
        ("api", "neongrid.edge", SHARED),
        ("messaging", "neongrid.edge", EVERY_HOST),
        ("httpserver", "neongrid.edge", EVERY_HOST),
        ("validator", "neongrid.core", SHARED),
        ("hot-store", "neongrid.data", SHARED),
        ("archive-store", "neongrid.data", SHARED),
    ];
    ensure!(application.spec.components.len() == expected.len());
    for (name, label, kind) in expected {
        let component = application
            .components()
            .find(|c| c.name == name)
            .with_context(|| format!("{APPLICATION} has no component {name}"))?;
        let placements: Vec<_> = component
            .traits
            .iter()
            .flatten()
            .filter_map(|t| match &t.properties {
                wadm_types::TraitProperty::SpreadScaler(s) => Some((t.trait_type.as_str(), s)),
                _ => None,
            })
            .flat_map(|(kind, s)| s.spread.iter().map(move |s| (kind, s.requirements.clone())))
            .collect();
        let want: std::collections::BTreeMap<String, String> =
            [(label.to_owned(), "true".to_owned())].into();
        ensure!(
            placements == [(kind, want)],
            "{name} should be placed by a {kind} on {label}=true alone, found {placements:?}"
        );
    }
    Ok(())
}
