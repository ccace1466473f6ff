//! What only the Postgres backend can show: where its data lives, configuration by parts
//! with the password from secrets, and recovery after the server restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyvalue_postgres::{
    PostgresStoreFactory, CONFIG_DATABASE, CONFIG_HOST, CONFIG_PASSWORD, CONFIG_POOL_SIZE,
    CONFIG_PORT, CONFIG_SSLMODE, CONFIG_URL, CONFIG_USER,
};
use keyvalue_store::{Bytes, Store, StoreConfig, StoreError, StoreFactory};
use sqlx::Row;
use test_servers::{PostgresServer, TestServer};

fn start_server() -> PostgresServer {
    PostgresServer::start().unwrap_or_else(|err| panic!("cannot start postgres: {err}"))
}

/// Configuration by parts, password as a secret.
fn config_of(server: &PostgresServer, password: &str) -> StoreConfig {
    let mut config = StoreConfig::from_values([
        (CONFIG_HOST, server.host().to_owned()),
        (CONFIG_PORT, server.port().to_string()),
        (CONFIG_USER, server.user().to_owned()),
        (CONFIG_DATABASE, server.database().to_owned()),
        (CONFIG_SSLMODE, "disable".to_owned()),
        (CONFIG_POOL_SIZE, "4".to_owned()),
    ]);
    config
        .secrets
        .insert(CONFIG_PASSWORD.into(), password.to_owned());
    config
}

async fn open(server: &PostgresServer) -> Arc<dyn Store> {
    PostgresStoreFactory::new()
        .open(&config_of(server, server.password()))
        .await
        .expect("open the store")
}

#[tokio::test]
async fn data_lives_in_the_documented_table() {
    let server = tokio::task::spawn_blocking(start_server).await.unwrap();
    let store = open(&server).await;
    store
        .set("telemetry", "device:42", Bytes::from_static(b"21.4"))
        .await
        .unwrap();
    store
        .set("other", "device:42", Bytes::from_static(b"x"))
        .await
        .unwrap();
    store.increment("telemetry", "count", 7).await.unwrap();

    // What the README tells a psql user to run.
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    let rows = sqlx::query(
        "SELECT convert_from(key, 'UTF8') AS key, convert_from(value, 'UTF8') AS value \
         FROM neongrid_kv WHERE bucket = convert_to('telemetry', 'UTF8') ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.get("key"), row.get("value")))
        .collect();
    assert_eq!(
        seen,
        [
            ("device:42".to_owned(), "21.4".to_owned()),
            ("count".to_owned(), "7".to_owned())
        ]
    );
}

#[tokio::test]
async fn wrong_password_is_a_config_error_that_never_shows_it() {
    let server = tokio::task::spawn_blocking(start_server).await.unwrap();
    let err = PostgresStoreFactory::new()
        .open(&config_of(&server, "not-the-password"))
        .await
        .err()
        .expect("a wrong password must not open");
    assert!(
        matches!(&err, StoreError::InvalidConfig { key, .. } if key == CONFIG_PASSWORD),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    // The whole URL, password included, as a secret works too.
    let mut by_url = StoreConfig::default();
    by_url.secrets.insert(CONFIG_URL.into(), server.url());
    let store = PostgresStoreFactory::new().open(&by_url).await.unwrap();
    store.health().await.unwrap();
    assert_eq!(store.increment("b", "k", 0).await.unwrap(), 0);
}

/// Retries `op` until it succeeds, for up to 30 seconds.
async fn eventually<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(err) if Instant::now() < deadline => {
                eprintln!("{what} not yet: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("{what} did not recover: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_give_clear_errors_then_recover_without_reopening() {
    let mut server = tokio::task::spawn_blocking(start_server).await.unwrap();
    let store = open(&server).await;
    store.set("b", "k", Bytes::from_static(b"v")).await.unwrap();

    let mut server = tokio::task::spawn_blocking(move || {
        server.stop().unwrap();
        server
    })
    .await
    .unwrap();
    let started = Instant::now();
    let err = store.get("b", "k").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a call while the server is down must fail promptly, took {:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    assert!(
        message.contains("postgres backend failed to get"),
        "{message}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
    assert!(store.health().await.is_err());

    let mut server = tokio::task::spawn_blocking(move || {
        server.start_again().unwrap();
        server
    })
    .await
    .unwrap();
    let value = eventually("get after restart", || store.get("b", "k")).await;
    assert_eq!(value, Some(Bytes::from_static(b"v")));
    store.health().await.unwrap();

    // An abrupt stop (as in a crash): committed data survives recovery.
    server.kill();
    assert!(store
        .set("b", "k2", Bytes::from_static(b"v"))
        .await
        .is_err());
    let server = tokio::task::spawn_blocking(move || {
        server.start_again().unwrap();
        server
    })
    .await
    .unwrap();
    eventually("increment after crash", || store.increment("b", "n", 2)).await;
    assert_eq!(
        store.get("b", "k").await.unwrap(),
        Some(Bytes::from_static(b"v"))
    );
    drop(server);
}

/// A connection that broke while it sat idle in the pool is noticed before use: the call
/// that takes it gets a fresh connection, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_broken_while_idle_is_replaced_before_use() {
    use sqlx::Connection as _;
    let server = tokio::task::spawn_blocking(start_server).await.unwrap();
    let store = open(&server).await;
    store.set("b", "k", Bytes::from_static(b"v")).await.unwrap();

    let mut admin = sqlx::PgConnection::connect(&server.url()).await.unwrap();
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND datname = current_database()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        terminated >= 1,
        "the store's pooled connection was not found"
    );
    tokio::time::sleep(keyvalue_postgres::PING_IDLE_AFTER + Duration::from_millis(300)).await;

    assert_eq!(
        store.get("b", "k").await.unwrap(),
        Some(Bytes::from_static(b"v"))
    );
}
