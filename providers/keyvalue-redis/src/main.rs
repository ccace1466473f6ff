//! The Redis key-value capability provider, as started by a wasmCloud host.

use keyvalue_redis::RedisStoreFactory;

/// Name of the provider in logs and traces.
const PROVIDER_NAME: &str = "keyvalue-redis-provider";

fn main() -> anyhow::Result<()> {
    keyvalue_adapter::main(RedisStoreFactory::new(), PROVIDER_NAME)
}
