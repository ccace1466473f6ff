//! Keeps `wit/world.wit` honest for the validator: the `validator` world must
//! resolve against the vendored `wit/deps`, export the validation interface the
//! component implements, and import nothing but its config and logging, so
//! that deploying it needs no link at all.

use std::collections::BTreeSet;
use std::path::Path;

use wit_parser::{Resolve, WorldKey};

const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
const PACKAGE: &str = "neongrid:telemetry@0.1.0";
const WORLD: &str = "validator";

/// Exactly what the component calls; anything more would need a provider.
const IMPORTS: &[&str] = &[
    "wasi:config/store@0.2.0-draft",
    "wasi:logging/logging@0.1.0-draft",
];

/// What ingest links to.
const EXPORTS: &[&str] = &["neongrid:telemetry/validation@0.1.0"];

/// The functions ingest calls, whose names are part of the link contract.
const FUNCTIONS: &[&str] = &["validate", "validate-many"];

fn resolve() -> (Resolve, wit_parser::WorldId) {
    let mut resolve = Resolve::new();
    let (package, _) = resolve
        .push_dir(Path::new(WIT_DIR))
        .unwrap_or_else(|err| panic!("{WIT_DIR} does not resolve: {err:#}"));
    let name = resolve.packages[package].name.to_string();
    assert_eq!(name, PACKAGE);
    let world = resolve
        .select_world(package, Some(WORLD))
        .unwrap_or_else(|err| panic!("world `{WORLD}` is missing: {err:#}"));
    (resolve, world)
}

fn world_interfaces() -> (BTreeSet<String>, BTreeSet<String>) {
    let (resolve, world) = resolve();
    let world = &resolve.worlds[world];
    let names = |keys: &mut dyn Iterator<Item = &WorldKey>| {
        keys.map(|key| resolve.name_world_key(key))
            .collect::<BTreeSet<_>>()
    };
    (
        names(&mut world.imports.keys()),
        names(&mut world.exports.keys()),
    )
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[test]
fn validator_world_exports_the_validation_interface() {
    let (_, exports) = world_interfaces();
    assert_eq!(exports, set(EXPORTS));
}

#[test]
fn validator_world_imports_only_config_and_logging() {
    let (imports, _) = world_interfaces();
    assert_eq!(imports, set(IMPORTS));
}

#[test]
fn validation_interface_has_the_functions_ingest_calls() {
    let (resolve, _) = resolve();
    let interface = resolve
        .interfaces
        .iter()
        .find(|(id, _)| resolve.id_of(*id).as_deref() == Some(EXPORTS[0]))
        .map(|(_, interface)| interface)
        .unwrap_or_else(|| panic!("{} is missing", EXPORTS[0]));
    let functions: BTreeSet<String> = interface.functions.keys().cloned().collect();
    assert_eq!(functions, set(FUNCTIONS));
}
