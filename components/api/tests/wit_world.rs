//! Keeps `wit/world.wit` honest: the `api` world must resolve against the
//! vendored `wit/deps`, export the HTTP handler the component implements and
//! import exactly what the component calls: abstract interfaces only, none
//! that names a database.

use wit_worlds::{set, world};

const WORLD: &str = "api";

/// What the component calls, plus the messaging types those functions use.
const IMPORTS: &[&str] = &[
    // The `hot` and `archive` links.
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
    // `set-link-name`, to pick `hot` or `archive`.
    "wasmcloud:bus/lattice@2.0.0",
    // `POST /api/readings`, a request to ingest.
    "wasmcloud:messaging/consumer@0.2.0",
    "wasmcloud:messaging/types@0.2.0",
    "wasi:logging/logging@0.1.0-draft",
    // Types of the exported HTTP handler, which the host provides.
    "wasi:http/types@0.2.2",
    "wasi:io/error@0.2.2",
    "wasi:io/poll@0.2.2",
    "wasi:io/streams@0.2.2",
    "wasi:clocks/monotonic-clock@0.2.2",
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
fn api_world_imports_exactly_what_the_component_calls() {
    let imports = world(WORLD).imports;
    assert_eq!(imports, set(IMPORTS));
}
