//! The Postgres key-value capability provider, as started by a wasmCloud host.

use keyvalue_postgres::PostgresStoreFactory;

/// Name of the provider in logs and traces.
const PROVIDER_NAME: &str = "keyvalue-postgres-provider";

fn main() -> anyhow::Result<()> {
    keyvalue_adapter::main(PostgresStoreFactory::new(), PROVIDER_NAME)
}
