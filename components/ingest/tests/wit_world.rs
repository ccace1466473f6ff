//! Keeps `wit/world.wit` honest for ingest: the `ingest` world must resolve
//! against the vendored `wit/deps`, export the messaging handler the builtin
//! NATS provider calls, and import exactly what the component calls, each of
//! which the manifest must link (or the host provides).

use wit_worlds::{set, world};

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

#[test]
fn ingest_world_exports_the_messaging_handler() {
    let exports = world(WORLD).exports;
    assert_eq!(exports, set(EXPORTS));
}

#[test]
fn ingest_world_imports_exactly_what_the_component_calls() {
    let imports = world(WORLD).imports;
    assert_eq!(imports, set(IMPORTS));
}
