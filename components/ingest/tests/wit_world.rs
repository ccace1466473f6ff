//! Keeps `wit/world.wit` honest for ingest: the `ingest` world must resolve
//! against the vendored `wit/deps`, export the messaging handler the builtin
//! NATS provider calls, and import exactly what the component calls, each of
//! which the manifest must link (or the host provides).

use std::collections::BTreeSet;
use std::path::Path;

use wit_parser::{Resolve, WorldKey};

const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
const PACKAGE: &str = "neongrid:telemetry@0.1.0";
const WORLD: &str = "ingest";

/// What the component calls, plus the messaging types those functions use.
const IMPORTS: &[&str] = &[
    // Publishing rejections, alerts and reply-to summaries.
    "wasmcloud:messaging/consumer@0.2.0",
    "wasmcloud:messaging/types@0.2.0",
    // The validator, linked component to component.
    "neongrid:telemetry/validation@0.1.0",
    // The `hot` and `archive` links.
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
    // `set-link-name`, to pick `hot` or `archive`. 2.0.0 is what `wit/deps`
    // vendors; wasmCloud 1.9 hosts link both 1.0.0 and 2.0.x.
    "wasmcloud:bus/lattice@2.0.0",
    "wasi:logging/logging@0.1.0-draft",
];

/// What the builtin messaging provider calls with each message.
const EXPORTS: &[&str] = &["wasmcloud:messaging/handler@0.2.0"];

fn world_interfaces() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut resolve = Resolve::new();
    let (package, _) = resolve
        .push_dir(Path::new(WIT_DIR))
        .unwrap_or_else(|err| panic!("{WIT_DIR} does not resolve: {err:#}"));
    let name = resolve.packages[package].name.to_string();
    assert_eq!(name, PACKAGE);
    let world = resolve
        .select_world(package, Some(WORLD))
        .unwrap_or_else(|err| panic!("world `{WORLD}` is missing: {err:#}"));
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
fn ingest_world_exports_the_messaging_handler() {
    let (_, exports) = world_interfaces();
    assert_eq!(exports, set(EXPORTS));
}

#[test]
fn ingest_world_imports_exactly_what_the_component_calls() {
    let (imports, _) = world_interfaces();
    assert_eq!(imports, set(IMPORTS));
}
