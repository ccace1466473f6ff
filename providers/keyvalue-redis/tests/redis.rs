//! What only the Redis backend can show: where its data lives, that batches are single
//! commands, credentials from secrets, and recovery after the server restarts.

use std::time::{Duration, Instant};

use keyvalue_redis::{RedisStoreFactory, CONFIG_PASSWORD, CONFIG_URL};
use keyvalue_store::{Bytes, Store, StoreConfig, StoreError, StoreFactory};
use redis::aio::MultiplexedConnection;
use test_servers::{RedisServer, TestServer};

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|err| panic!("cannot start redis-server: {err}"))
}

async fn open(url: &str) -> std::sync::Arc<dyn Store> {
    RedisStoreFactory::new()
        .open(&StoreConfig::from_values([(CONFIG_URL, url)]))
        .await
        .expect("open the store")
}

/// A plain client, as `redis-cli` would be.
async fn raw(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Calls of `command` since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
async fn calls(conn: &mut MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn data_lives_under_the_documented_keys() {
    let server = start_server();
    let store = open(&server.url()).await;
    let mut conn = raw(&server.url()).await;

    store
        .set("telemetry", "device:42", Bytes::from_static(b"21.4"))
        .await
        .unwrap();
    store
        .set("a:b", "c", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let value: Vec<u8> = redis::cmd("GET")
        .arg("neongrid:kv:telemetry:device:42")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, b"21.4");
    let escaped: Vec<u8> = redis::cmd("GET")
        .arg("neongrid:kv:a%3Ab:c")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(escaped, b"x");

    // Counters are numbers to other clients too, both ways.
    store.increment("telemetry", "count", 41).await.unwrap();
    let after: i64 = redis::cmd("INCRBY")
        .arg("neongrid:kv:telemetry:count")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, 42);
    assert_eq!(store.increment("telemetry", "count", 1).await.unwrap(), 43);

    let mut listed: Vec<String> = redis::cmd("KEYS")
        .arg("neongrid:kv:telemetry:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    listed.sort();
    assert_eq!(
        listed,
        [
            "neongrid:kv:telemetry:count",
            "neongrid:kv:telemetry:device:42"
        ]
    );
}

#[tokio::test]
async fn batches_are_single_commands() {
    let server = start_server();
    let store = open(&server.url()).await;
    let mut conn = raw(&server.url()).await;
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let entries = keys
        .iter()
        .map(|key| (key.clone(), Bytes::from(key.clone())))
        .collect();

    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    store.set_many("b", entries).await.unwrap();
    let got = store.get_many("b", keys.clone()).await.unwrap();
    assert!(got.iter().all(Option::is_some));
    store.delete_many("b", keys).await.unwrap();

    assert_eq!(calls(&mut conn, "mset").await, 1);
    assert_eq!(calls(&mut conn, "mget").await, 1);
    assert_eq!(calls(&mut conn, "del").await, 1);
    assert_eq!(calls(&mut conn, "set").await, 0);
    assert_eq!(calls(&mut conn, "get").await, 0);
}

#[tokio::test]
async fn password_comes_from_secrets_and_is_never_shown() {
    let server = start_server();
    let mut conn = raw(&server.url()).await;
    let password = "s3cret-pass";
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async(&mut conn)
        .await
        .unwrap();

    let factory = RedisStoreFactory::new();
    let mut config = StoreConfig::from_values([(CONFIG_URL, server.url())]);
    config
        .secrets
        .insert(CONFIG_PASSWORD.into(), "wrong-password".into());
    let err = factory.open(&config).await.err().expect("wrong password");
    assert!(
        matches!(&err, StoreError::InvalidConfig { key, .. } if key == CONFIG_PASSWORD),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-password"), "{err}");

    config
        .secrets
        .insert(CONFIG_PASSWORD.into(), password.into());
    let store = factory.open(&config).await.unwrap();
    store.set("b", "k", Bytes::from_static(b"v")).await.unwrap();
    store.health().await.unwrap();

    // A URL with the password inside, given as a secret, works and never shows up in errors.
    let url = format!("redis://:{password}@127.0.0.1:{}/", server.port());
    let mut secret_url = StoreConfig::default();
    secret_url.secrets.insert(CONFIG_URL.into(), url);
    let store = factory.open(&secret_url).await.unwrap();
    let err = store.increment("b", "k", 1).await.unwrap_err();
    assert!(!err.to_string().contains(password), "{err}");
}

/// Retries `op` until it succeeds, for up to 20 seconds.
async fn eventually<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(err) if Instant::now() < deadline => {
                eprintln!("{what} not yet: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{what} did not recover: {err}"),
        }
    }
}

#[tokio::test]
async fn restarts_give_clear_errors_then_recover_without_reopening() {
    let mut server = start_server();
    let store = open(&server.url()).await;
    store.set("b", "k", Bytes::from_static(b"v")).await.unwrap();

    server.stop().unwrap();
    let started = Instant::now();
    let err = store.get("b", "k").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a call while the server is down must fail promptly, took {:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(message.contains("redis backend failed to get"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
    assert!(store.health().await.is_err());

    server.start_again().unwrap();
    let value = eventually("get after restart", || store.get("b", "k")).await;
    assert_eq!(value, Some(Bytes::from_static(b"v")), "stop saved the data");
    store.health().await.unwrap();

    // A crash loses this server's unsaved data, but the store recovers all the same.
    server.kill();
    assert!(store
        .set("b", "k2", Bytes::from_static(b"v"))
        .await
        .is_err());
    server.start_again().unwrap();
    eventually("set after crash", || {
        store.set("b", "k2", Bytes::from_static(b"again"))
    })
    .await;
    assert_eq!(store.increment("b", "n", 2).await.unwrap(), 2);
}

#[tokio::test]
async fn unreachable_server_opens_then_fails_calls_clearly() {
    // Nothing listens here: opening still works (the store connects once the server is up).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = open(&format!("redis://127.0.0.1:{port}/")).await;
    let err = store.exists("b", "k").await.unwrap_err();
    assert!(
        err.to_string().contains("redis backend failed to exists"),
        "{err}"
    );
    assert!(store.health().await.is_err());
}
