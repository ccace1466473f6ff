//! The backend-neutral heart of neongrid's key-value providers.
//!
//! A backend (memory, Redis, ...) implements [`Store`] and a [`StoreFactory`] that opens one
//! from a [`StoreConfig`]; the wasmCloud glue lives elsewhere and only ever sees these traits.
//! Semantics every backend must share — how `increment` reads and writes counters, how
//! `list_keys` pages — live in [`semantics`] so backends cannot drift apart.
//!
//! Buckets are namespaces: the same key in two buckets names two unrelated values, and a
//! bucket exists as soon as something is written to it.

mod config;
mod error;
pub mod semantics;

use std::sync::Arc;

use async_trait::async_trait;

pub use bytes::Bytes;
pub use config::StoreConfig;
pub use error::StoreError;
pub use semantics::MAX_PAGE_SIZE;

/// Result type of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a [`Store::list_keys`] walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys of this page; at most the requested limit (itself at most [`MAX_PAGE_SIZE`]).
    pub keys: Vec<String>,
    /// Pass this back to get the next page; `None` when this was the last page.
    pub cursor: Option<u64>,
}

/// What a backend promises beyond the baseline contract of [`Store`].
///
/// The baseline every backend meets: read-your-writes, buckets isolated from each other,
/// `increment` with the exact semantics of [`semantics::apply_increment`], and a `list_keys`
/// walk that yields every key exactly once when nothing is written meanwhile. The conformance
/// suite checks a backend against what it declares here, so declare only what is guaranteed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Concurrent `increment`s of one key never lose an update (their deltas always add up).
    pub atomic_increment: bool,
    /// `set_many` and `delete_many` are all-or-nothing and never observed half applied, and
    /// `get_many` reads one consistent snapshot (so a reader can tell).
    pub atomic_batch: bool,
    /// `list_keys` yields keys in ascending byte order, across pages as well as within one.
    pub sorted_keys: bool,
    /// Data outlives the provider process.
    pub persistent: bool,
    /// Largest value `set` accepts, in bytes; larger ones fail with [`StoreError::TooLarge`].
    /// `None` when the backend itself sets no limit.
    pub max_value_size: Option<usize>,
    /// Most keys a single `list_keys` page ever holds; never more than [`MAX_PAGE_SIZE`].
    pub max_page_size: usize,
}

/// A key-value store holding any number of buckets.
///
/// Object safe: the provider glue holds stores as `Arc<dyn Store>`. Implementations must be
/// cheap to share between tasks; each call stands alone (no sessions or transactions).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// What this backend guarantees beyond the baseline contract.
    fn capabilities(&self) -> Capabilities;

    /// The value stored under `key`, or `None` if there is none.
    async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Bytes>>;

    /// Stores `value` under `key`, replacing any previous value.
    async fn set(&self, bucket: &str, key: &str, value: Bytes) -> StoreResult<()>;

    /// Removes `key`; removing a missing key succeeds and does nothing.
    async fn delete(&self, bucket: &str, key: &str) -> StoreResult<()>;

    /// Whether a value is stored under `key`.
    async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool>;

    /// One page of the bucket's keys. Start with `cursor: None` and pass each page's cursor
    /// back until it comes back `None`. `limit` is clamped into `1..=MAX_PAGE_SIZE` (see
    /// [`semantics::clamp_page_limit`]), so a page is bounded whatever the caller asks for.
    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<u64>,
        limit: usize,
    ) -> StoreResult<KeyPage>;

    /// Adds `delta` to the counter under `key` and returns the new value, with the semantics
    /// of [`semantics::apply_increment`].
    async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64>;

    /// Reads many keys at once: one entry per requested key, in request order, `None` where
    /// the key has no value — the shape of `wasi:keyvalue/batch.get-many`.
    ///
    /// The default issues one `get` per key; override it when the backend can do better.
    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<(String, Bytes)>>> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(bucket, &key).await?;
            found.push(value.map(|value| (key, value)));
        }
        Ok(found)
    }

    /// Stores many entries. Not atomic unless [`Capabilities::atomic_batch`] says so: on error
    /// some entries may already be written. Later duplicates of a key win.
    async fn set_many(&self, bucket: &str, entries: Vec<(String, Bytes)>) -> StoreResult<()> {
        for (key, value) in entries {
            self.set(bucket, &key, value).await?;
        }
        Ok(())
    }

    /// Removes many keys; missing keys are skipped. Not atomic unless
    /// [`Capabilities::atomic_batch`] says so.
    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> StoreResult<()> {
        for key in keys {
            self.delete(bucket, &key).await?;
        }
        Ok(())
    }

    /// Whether the backend can serve requests right now (e.g. its server answers).
    async fn health(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Opens stores of one backend from configuration.
///
/// The provider glue calls `open` once per distinct configuration and shares the result
/// between every link with that configuration, so `open` may be expensive (connecting, say).
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// Short backend name for logs and error messages, e.g. `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;

    /// Opens (or connects to) the store described by `config`.
    ///
    /// Fails with [`StoreError::InvalidConfig`] when `config` is unusable, naming the entry.
    async fn open(&self, config: &StoreConfig) -> StoreResult<Arc<dyn Store>>;
}
