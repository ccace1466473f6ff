//! The shared conformance suite against a real Postgres, one cluster per case.

use keyvalue_conformance::Target;
use keyvalue_postgres::{PostgresStoreFactory, CONFIG_PASSWORD, CONFIG_URL};
use keyvalue_store::StoreConfig;
use test_servers::PostgresServer;

async fn postgres_target() -> Target {
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .expect("starting postgres panicked")
        .unwrap_or_else(|err| panic!("cannot start postgres for the conformance suite: {err}"));
    // The URL without its password, and the password as a secret: the way a deployment
    // should configure it.
    let url = format!(
        "postgres://{}@{}:{}/{}?sslmode=disable",
        server.user(),
        server.host(),
        server.port(),
        server.database()
    );
    let mut config = StoreConfig::from_values([(CONFIG_URL, url)]);
    config
        .secrets
        .insert(CONFIG_PASSWORD.into(), server.password().into());
    Target::from_factory(PostgresStoreFactory::new, config)
        .await
        .keep_alive(server)
}

keyvalue_conformance::suite!(postgres_target());
