//! The in-memory key-value capability provider, as started by a wasmCloud host.

use keyvalue_memory::MemoryStoreFactory;

/// Name of the provider in logs and traces.
const PROVIDER_NAME: &str = "keyvalue-memory-provider";

fn main() -> anyhow::Result<()> {
    keyvalue_adapter::main(MemoryStoreFactory::new(), PROVIDER_NAME)
}
