//! Every committed manifest passes wash's own validation, with no warnings; and the
//! application and development manifests differ only where a deployment may.

use std::process::Command;

use anyhow::{ensure, Context, Result};
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
    let text = std::fs::read_to_string(repo_root().join(name))?;
    serde_yaml::from_str(&text).with_context(|| format!("{name} is not a wadm manifest"))
}

/// What remains of a manifest once the three things a deployment may change are removed:
/// provider images, provider config and placement (scaler spreads). Swapping databases
/// must leave every component, link, link name, configuration name and instance count
/// as it is.
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
            if let TraitProperty::SpreadScaler(scaler) = &mut t.properties {
                scaler.spread.clear();
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
/// header says: ingest, api and the builtin providers on edge, the validator on core,
/// the key-value providers on data.
#[test]
fn application_manifest_places_each_role_by_its_label() -> Result<()> {
    let application = parse(APPLICATION)?;
    let expected = [
        ("ingest", "neongrid.edge"),
        ("api", "neongrid.edge"),
        ("messaging", "neongrid.edge"),
        ("httpserver", "neongrid.edge"),
        ("validator", "neongrid.core"),
        ("hot-store", "neongrid.data"),
        ("archive-store", "neongrid.data"),
    ];
    ensure!(application.spec.components.len() == expected.len());
    for (name, label) in expected {
        let component = application
            .components()
            .find(|c| c.name == name)
            .with_context(|| format!("{APPLICATION} has no component {name}"))?;
        let requirements: Vec<_> = component
            .traits
            .iter()
            .flatten()
            .filter_map(|t| match &t.properties {
                wadm_types::TraitProperty::SpreadScaler(s) => Some(&s.spread),
                _ => None,
            })
            .flatten()
            .map(|spread| spread.requirements.clone())
            .collect();
        let want: std::collections::BTreeMap<String, String> =
            [(label.to_owned(), "true".to_owned())].into();
        ensure!(
            requirements == [want],
            "{name} should be placed by {label}=true alone, found {requirements:?}"
        );
    }
    Ok(())
}
