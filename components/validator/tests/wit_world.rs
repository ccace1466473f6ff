//! Keeps `wit/world.wit` honest for the validator: the `validator` world must
//! resolve against the vendored `wit/deps`, export the validation interface the
//! component implements, and import nothing but its config and logging, so
//! that deploying it needs no link at all.

use wit_worlds::{set, world};

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

#[test]
fn validator_world_exports_the_validation_interface() {
    let exports = world(WORLD).exports;
    assert_eq!(exports, set(EXPORTS));
}

#[test]
fn validator_world_imports_only_config_and_logging() {
    let imports = world(WORLD).imports;
    assert_eq!(imports, set(IMPORTS));
}

#[test]
fn validation_interface_has_the_functions_ingest_calls() {
    assert_eq!(wit_worlds::interface_functions(EXPORTS[0]), set(FUNCTIONS));
}
