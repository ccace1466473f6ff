//! The shared conformance suite against a real redis-server, one per case.

use keyvalue_conformance::Target;
use keyvalue_redis::{RedisStoreFactory, CONFIG_URL};
use keyvalue_store::StoreConfig;
use test_servers::RedisServer;

async fn redis_target() -> Target {
    let server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .expect("starting redis-server panicked")
        .unwrap_or_else(|err| panic!("cannot start redis-server for the conformance suite: {err}"));
    let config = StoreConfig::from_values([(CONFIG_URL, server.url())]);
    Target::from_factory(RedisStoreFactory::new, config)
        .await
        .keep_alive(server)
}

keyvalue_conformance::suite!(redis_target());
