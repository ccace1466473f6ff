//! Keeps `wit/world.wit` honest: the `api` world must resolve against the
//! vendored `wit/deps`, export the HTTP handler the component implements and
//! import only abstract `wasi:*` interfaces.

use wit_worlds::{set, world};

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

#[test]
fn api_world_exports_the_http_handler() {
    let exports = world(WORLD).exports;
    assert_eq!(exports, set(EXPORTS));
}

#[test]
fn api_world_imports_what_the_component_calls() {
    let imports = world(WORLD).imports;
    for required in REQUIRED_IMPORTS {
        assert!(imports.contains(*required), "{required} not in {imports:?}");
    }
}

#[test]
fn api_world_imports_only_abstract_wasi_interfaces() {
    let imports = world(WORLD).imports;
    let concrete: Vec<_> = imports
        .iter()
        .filter(|name| !name.starts_with("wasi:"))
        .collect();
    assert!(concrete.is_empty(), "non-wasi imports: {concrete:?}");
}
