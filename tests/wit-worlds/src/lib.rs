//! One place that resolves `wit/` the way the components' bindings do, so that each
//! component's WIT test only states what its world must import and export.

use std::collections::BTreeSet;
use std::path::Path;

use wit_parser::{Resolve, WorldKey};

/// This project's WIT package, which every world here belongs to.
pub const PACKAGE: &str = "neongrid:telemetry@0.1.0";
const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");

/// A world's imports and exports, as fully qualified interface names such as
/// `wasi:keyvalue/store@0.2.0-draft`.
pub struct WorldInterfaces {
    pub imports: BTreeSet<String>,
    pub exports: BTreeSet<String>,
}

/// Resolves `wit/` against its vendored deps and names the interfaces of `world`.
///
/// Panics with the resolver's message when the WIT does not resolve or the world is
/// missing: this is test tooling, and that is the clearest failure a test can give.
pub fn world(world: &str) -> WorldInterfaces {
    let mut resolve = Resolve::new();
    let (package, _) = resolve
        .push_dir(Path::new(WIT_DIR))
        .unwrap_or_else(|err| panic!("{WIT_DIR} does not resolve: {err:#}"));
    let name = resolve.packages[package].name.to_string();
    assert_eq!(name, PACKAGE, "wit/ holds another package");
    let id = resolve
        .select_world(package, Some(world))
        .unwrap_or_else(|err| panic!("world `{world}` is missing: {err:#}"));
    let w = &resolve.worlds[id];
    let names = |keys: &mut dyn Iterator<Item = &WorldKey>| {
        keys.map(|key| resolve.name_world_key(key))
            .collect::<BTreeSet<_>>()
    };
    WorldInterfaces {
        imports: names(&mut w.imports.keys()),
        exports: names(&mut w.exports.keys()),
    }
}

/// `names` as a set, to compare with [`WorldInterfaces`] fields.
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// The function names of `interface` (fully qualified, e.g.
/// `neongrid:telemetry/validation@0.1.0`), found anywhere in the resolved WIT.
pub fn interface_functions(interface: &str) -> BTreeSet<String> {
    let mut resolve = Resolve::new();
    resolve
        .push_dir(Path::new(WIT_DIR))
        .unwrap_or_else(|err| panic!("{WIT_DIR} does not resolve: {err:#}"));
    resolve
        .interfaces
        .iter()
        .find(|(id, _)| resolve.id_of(*id).as_deref() == Some(interface))
        .map(|(_, i)| i.functions.keys().cloned().collect())
        .unwrap_or_else(|| panic!("{interface} is missing"))
}
