//! The Postgres key-value capability provider, as started by a wasmCloud host.

use keyvalue_postgres::PostgresStoreFactory;

/// Name of the provider in logs and traces.
const PROVIDER_NAME: &str = "keyvalue-postgres-provider";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keyvalue_adapter::run(PostgresStoreFactory::new(), PROVIDER_NAME).await
}
