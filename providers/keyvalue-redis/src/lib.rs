//! A key-value [`Store`] in Redis.
//!
//! # Where the data lives
//!
//! Every entry is a plain Redis string under the key
//! `neongrid:kv:<bucket>:<key>` (see [`keys`]), where `<bucket>` has `%` and `:` escaped as
//! `%25` and `%3A` so that the first `:` after the prefix always ends the bucket name: bucket
//! `a:b` with key `c` and bucket `a` with key `b:c` can never meet. The key itself is stored
//! verbatim. So `redis-cli GET 'neongrid:kv:telemetry:device:42'` reads key `device:42` of
//! bucket `telemetry`, and `redis-cli --scan --pattern 'neongrid:kv:telemetry:*'` lists the
//! bucket. Counters are ASCII decimal strings, readable (and `INCRBY`-able) by any client.
//!
//! # How operations map onto Redis
//!
//! - `get`, `set`, `delete`, `exists`: `GET`, `SET`, `DEL`, `EXISTS`.
//! - `increment`: a Lua script (atomic: Redis runs scripts alone) that applies the shared
//!   semantics over the whole `u64` range, which `INCRBY` (signed 64-bit) cannot. Below
//!   2^53 it is one `INCRBY` inside the script.
//! - `get_many`, `set_many`, `delete_many`: one `MGET`, `MSET` or `DEL` naming every key,
//!   so one round trip each. Single commands, hence atomic: declared as `atomic_batch`.
//! - `list_keys`: `SCAN` with a `MATCH` pattern for the bucket's prefix (see [`list_keys`]
//!   for the cursor).
//! - health: `PING`.
//!
//! One multiplexed connection per store ([`redis::aio::ConnectionManager`]) carries every
//! call and reconnects by itself after the server restarts; while it is down, calls fail
//! with an error naming the server and the operation.

mod config;
pub mod keys;
mod list_keys;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyvalue_store::semantics::{apply_increment, parse_counter};
use keyvalue_store::{
    Bytes, Capabilities, KeyPage, Store, StoreConfig, StoreError, StoreFactory, StoreResult,
    MAX_PAGE_SIZE,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, Script};

pub use config::{
    RedisConfig, CONFIG_MAX_VALUE_SIZE, CONFIG_PASSWORD, CONFIG_URL, CONFIG_USERNAME,
    DEFAULT_MAX_VALUE_SIZE, DEFAULT_URL,
};

/// Name of this backend in logs and error messages.
pub const BACKEND: &str = "redis";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command may wait for its reply. Generous: a 16 MiB value crosses in well under
/// a second even on a slow link, and a hung server should still fail calls eventually.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection attempts per failure before calls see the error. Few, so that calls fail
/// promptly while the server is down; the next call starts a new round of attempts.
const RECONNECT_RETRIES: usize = 2;
/// First delay between reconnection attempts (it doubles each time).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// A backend failure, naming the server (never the URL, which may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("{source} (server {server})")]
struct RedisFailure {
    server: String,
    #[source]
    source: RedisError,
}

/// A Redis-backed [`Store`]. Cheap to share: one multiplexed connection serves every call.
pub struct RedisStore {
    connection: ConnectionManager,
    /// `host:port` of the server, for error messages.
    server: String,
    max_value_size: usize,
    increment: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.server)
            .field("max_value_size", &self.max_value_size)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the server `config` names.
    ///
    /// A server that cannot be reached yet is not an error: the store connects when it can,
    /// and calls fail with a clear error until then. A server that refuses the credentials
    /// is one, since waiting will not fix it.
    pub async fn connect(config: &RedisConfig) -> StoreResult<Self> {
        if config.uses_tls() {
            // Ignoring the result: another part of the process may have installed one first,
            // which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let server = config.server();
        let client = Client::open(config.connection_info().clone()).map_err(|err| {
            StoreError::InvalidConfig {
                key: CONFIG_URL.to_owned(),
                reason: err.to_string(),
            }
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|err| StoreError::backend(BACKEND, "connect", failure(&server, err)))?;
        let store = Self {
            connection,
            server,
            max_value_size: config.max_value_size,
            increment: Script::new(include_str!("increment.lua")),
        };
        match store.ping().await {
            Err(err) if is_config_problem(&err) => Err(StoreError::InvalidConfig {
                key: CONFIG_PASSWORD.to_owned(),
                reason: format!("{} refused the connection: {err}", store.server),
            }),
            _ => Ok(store),
        }
    }

    /// The `host:port` this store talks to.
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(())
    }

    fn fail(&self, op: &'static str, err: RedisError) -> StoreError {
        StoreError::backend(BACKEND, op, failure(&self.server, err))
    }

    fn check_size(&self, bucket: &str, key: &str, value: &[u8]) -> StoreResult<()> {
        keyvalue_store::semantics::check_value_size(bucket, key, value, self.max_value_size)
    }

    /// Runs `cmd`, mapping a failure to a backend error for `op`.
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        cmd.query_async(&mut connection)
            .await
            .map_err(|err| self.fail(op, err))
    }
}

fn failure(server: &str, source: RedisError) -> RedisFailure {
    RedisFailure {
        server: server.to_owned(),
        source,
    }
}

/// Errors that mean the configuration is wrong rather than the server being away.
fn is_config_problem(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig
    ) || matches!(err.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
}

#[async_trait]
impl Store for RedisStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_increment: true,
            // MGET, MSET and a multi-key DEL are each one command, which Redis applies alone.
            atomic_batch: true,
            // SCAN walks the hash table, not the keys in order.
            sorted_keys: false,
            persistent: true,
            max_value_size: Some(self.max_value_size),
            max_page_size: MAX_PAGE_SIZE,
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Bytes>> {
        let value: Option<Vec<u8>> = self
            .query("get", redis::cmd("GET").arg(keys::entry_key(bucket, key)))
            .await?;
        Ok(value.map(Bytes::from))
    }

    async fn set(&self, bucket: &str, key: &str, value: Bytes) -> StoreResult<()> {
        self.check_size(bucket, key, &value)?;
        self.query::<()>(
            "set",
            redis::cmd("SET")
                .arg(keys::entry_key(bucket, key))
                .arg(&value[..]),
        )
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> StoreResult<()> {
        self.query::<()>(
            "delete",
            redis::cmd("DEL").arg(keys::entry_key(bucket, key)),
        )
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        let count: u64 = self
            .query(
                "exists",
                redis::cmd("EXISTS").arg(keys::entry_key(bucket, key)),
            )
            .await?;
        Ok(count > 0)
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<KeyPage> {
        list_keys::page(self, bucket, cursor, limit).await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        let mut connection = self.connection.clone();
        let (applied, value): (i64, redis::Value) = self
            .increment
            .key(keys::entry_key(bucket, key))
            .arg(delta.to_string())
            .invoke_async(&mut connection)
            .await
            .map_err(|err| self.fail("increment", err))?;
        let not_a_counter = || {
            StoreError::backend(
                BACKEND,
                "increment",
                "the increment script returned something that is not a counter",
            )
        };
        match (applied, value) {
            // The fast path's INCRBY answers an integer, the digit-string path a string.
            (1, redis::Value::Int(value)) => u64::try_from(value).map_err(|_| not_a_counter()),
            (1, redis::Value::BulkString(value)) => parse_counter(&value).ok_or_else(not_a_counter),
            // The script refused: let the shared rules say why, in the shared words.
            (0, redis::Value::BulkString(value)) => {
                match apply_increment(bucket, key, Some(&value), delta) {
                    Err(err) => Err(err),
                    Ok(_) => Err(StoreError::backend(
                        BACKEND,
                        "increment",
                        "the increment script refused a value the shared semantics accept",
                    )),
                }
            }
            _ => Err(not_a_counter()),
        }
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<(String, Bytes)>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(keys::entry_key(bucket, key));
        }
        let values: Vec<Option<Vec<u8>>> = self.query("get-many", &cmd).await?;
        if values.len() != keys.len() {
            return Err(StoreError::backend(
                BACKEND,
                "get-many",
                format!(
                    "MGET of {} keys answered {} values",
                    keys.len(),
                    values.len()
                ),
            ));
        }
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, Bytes::from(value))))
            .collect())
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Bytes)>) -> StoreResult<()> {
        keyvalue_store::semantics::check_batch_sizes(bucket, &entries, self.max_value_size)?;
        if entries.is_empty() {
            return Ok(());
        }
        // MSET applies its pairs in order, so a later duplicate of a key wins.
        let mut cmd = redis::cmd("MSET");
        for (key, value) in &entries {
            cmd.arg(keys::entry_key(bucket, key)).arg(&value[..]);
        }
        self.query::<()>("set-many", &cmd).await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in &keys {
            cmd.arg(keys::entry_key(bucket, key));
        }
        self.query::<()>("delete-many", &cmd).await
    }

    async fn health(&self) -> StoreResult<()> {
        self.ping().await.map_err(|err| self.fail("ping", err))
    }
}

/// Opens [`RedisStore`]s from link configuration (see [`RedisConfig`] for the keys).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisStoreFactory;

impl RedisStoreFactory {
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl StoreFactory for RedisStoreFactory {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn open(&self, config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
        let config = RedisConfig::from_store_config(config)?;
        Ok(Arc::new(RedisStore::connect(&config).await?))
    }
}
