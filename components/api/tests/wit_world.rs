//! Keeps `wit/world.wit` honest: the `api` world must resolve against the
//! vendored `wit/deps`, export the HTTP handler the component implements and
//! import only abstract `wasi:*` interfaces.

use std::collections::BTreeSet;
use std::path::Path;

use wit_parser::{Resolve, WorldKey};

const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
const PACKAGE: &str = "neongrid:telemetry@0.1.0";
const WORLD: &str = "api";

/// What the component's code calls; the world may pull in more as types.
const REQUIRED_IMPORTS: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:logging/logging@0.1.0-draft",
];

/// The handler `wasmcloud_component::http::export!` implements, whose version
/// follows the `wasi` crate that `wasmcloud-component` 0.2.0 builds on.
const EXPORTS: &[&str] = &["wasi:http/incoming-handler@0.2.2"];

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

#[test]
fn api_world_exports_the_http_handler() {
    let (_, exports) = world_interfaces();
    let expected: BTreeSet<String> = EXPORTS.iter().map(|name| name.to_string()).collect();
    assert_eq!(exports, expected);
}

#[test]
fn api_world_imports_what_the_component_calls() {
    let (imports, _) = world_interfaces();
    for required in REQUIRED_IMPORTS {
        assert!(imports.contains(*required), "{required} not in {imports:?}");
    }
}

#[test]
fn api_world_imports_only_abstract_wasi_interfaces() {
    let (imports, _) = world_interfaces();
    let concrete: Vec<_> = imports
        .iter()
        .filter(|name| !name.starts_with("wasi:"))
        .collect();
    assert!(concrete.is_empty(), "non-wasi imports: {concrete:?}");
}
